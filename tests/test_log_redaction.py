"""No secret in a log line: WeChat's access token and app secret travel in URLs, which httpx logs
at INFO; every record the worker makes has them masked."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
from distributor.redaction import redact, redact_every_log_record
from tests.support.wechat import client_for


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        (
            'HTTP Request: GET http://127.0.0.1:5/cgi-bin/tags/get?access_token=81_AbC-x "200"',
            'HTTP Request: GET http://127.0.0.1:5/cgi-bin/tags/get?access_token=*** "200"',
        ),
        (
            "GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=s3cr%2Bt&x=1",
            "GET /cgi-bin/token?grant_type=client_credential&appid=wx1&secret=***&x=1",
        ),
        (
            "POST /wechat/callback?signature=ab12&timestamp=1&nonce=2&msg_signature=cd34",
            "POST /wechat/callback?signature=***&timestamp=1&nonce=2&msg_signature=***",
        ),
        ("redis://:hunter2@redis:6379/0 at /token?x=1", "redis://:***@redis:6379/0 at /token?x=1"),
        ("a monkey=1 sees no_token=2 as a word", "a monkey=1 sees no_token=2 as a word"),
    ],
    ids=["access-token", "app-secret", "callback-signature", "url-password", "look-alikes"],
)
def test_secret_values_are_masked_and_nothing_else(line: str, masked: str) -> None:
    assert redact(line) == masked


@pytest.fixture
def worker_log() -> Iterator[io.StringIO]:
    """The worker's logging as its process has it: every record redacted, httpx at INFO,
    written by a handler in Celery's format (the factory is restored afterwards)."""
    before = logging.getLogRecordFactory()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(asctime)s: %(levelname)s/MainProcess] %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    redact_every_log_record()
    try:
        yield stream
    finally:
        logging.setLogRecordFactory(before)
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_real_call_to_wechat_logs_its_urls_without_the_token_or_the_secret(
    sqlite_url: str, worker_log: io.StringIO
) -> None:
    # An older gateway without stable_token: the classic token call puts the secret in the URL.
    with SandboxServer(SandboxConfig(stable_token_enabled=False)) as sandbox:
        with client_for(sandbox, sqlite_url) as client:
            client.tags()
            token = client.tokens.current()
        try:
            raise RuntimeError(f"failed at {sandbox.url}/cgi-bin/tags/get?access_token={token}")
        except RuntimeError:
            logging.getLogger("distributor.tasks").exception("Task raised")
    output = worker_log.getvalue()
    secret = sandbox.sandbox.config.app_secret
    assert "/cgi-bin/token?" in output and "secret=***" in output, output
    assert "/cgi-bin/tags/get?access_token=***" in output, output
    assert "Traceback" in output
    assert token not in output and secret not in output, output
