"""``LOG_FORMAT=json``: every line a worker writes is one JSON object naming the time, level,
logger, send and delivery, with no secret, signed token or reader's address in it; plain text
stays the default."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from distributor.config import Settings
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
from distributor.errors import ConfigurationError
from distributor.logs import JsonFormatter, log_context
from distributor.render.tracking import open_pixel_url
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner
from tests.support.audience import make_audience
from tests.support.sending import SECRET, created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.smtp import SmtpServer
from tests.support.web import web_process
from tests.support.wechat import wechat_env
from tests.support.wechat_sends import LIST, synced

LINKS = PublicLinks("", TokenSigner(SECRET))
FIELDS = ["time", "level", "logger", "send_id", "delivery_id", "message"]


def test_log_format_is_text_unless_json_is_asked_for() -> None:
    assert Settings.from_env({}).log_format == "text"
    assert Settings.from_env({"LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(ConfigurationError, match="LOG_FORMAT='xml' is not one of text, json"):
        Settings.from_env({"LOG_FORMAT": "xml"})


def test_a_record_names_its_send_and_delivery_from_the_context_and_keeps_to_one_line() -> None:
    logger = logging.getLogger("distributor.test")
    with log_context(send_id=7):
        with log_context(delivery_id=70):
            inner = logger.makeRecord(logger.name, logging.WARNING, "f", 1, "two\nlines", (), None)
            line = JsonFormatter().format(inner)
        outer = JsonFormatter().format(logger.makeRecord(logger.name, 20, "f", 1, "x", (), None))
    after = JsonFormatter().format(logger.makeRecord(logger.name, 20, "f", 1, "y", (), None))
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == FIELDS
    assert entry["level"] == "WARNING" and entry["logger"] == "distributor.test"
    assert (entry["send_id"], entry["delivery_id"], entry["message"]) == (7, 70, "two\nlines")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])
    assert (json.loads(outer)["send_id"], json.loads(outer)["delivery_id"]) == (7, None)
    assert (json.loads(after)["send_id"], json.loads(after)["delivery_id"]) == (None, None)


@pytest.mark.slow
def test_a_worker_sending_by_email_with_tracking_and_by_wechat_logs_clean_json_lines(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    # An older gateway: the classic token call puts the app secret in the URL httpx logs.
    config = SandboxConfig(job_finish_delay=0.2, stable_token_enabled=False)
    with SandboxServer(config) as sandbox, SmtpServer() as smtp:
        synced(sandbox, sqlite_url, 3)
        emails = make_audience(sqlite_url, LIST, 5)
        issue_id = import_sample(sqlite_url, sample_issue_path)
        env = engine_env(
            sqlite_url, redis_server.url, smtp, LOG_FORMAT="json", **wechat_env(sandbox)
        )
        send_id = created_by_cli(
            env, issue_id, "--variant", "preference", "--track", list_name=LIST
        )
        worker = WorkerProcess(env, tmp_path, supervised=True)  # as `distributor worker --beat`
        worker.start()
        try:
            status = wait_until_done(sqlite_url, send_id, timeout=120)
        finally:
            worker.stop()
        tokens = list(sandbox.sandbox.tokens)
        messages = [received.data.decode() for received in smtp.handler.received]
    assert status.counts["sent"] >= 5
    links = {token for text in messages for token in re.findall(r"/[a-z]+/([\w.-]{20,})", text)}
    assert tokens and links
    lines = worker.logs().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, or this fails
    assert all(list(entry)[:6] == FIELDS for entry in entries)
    assert {entry["logger"] for entry in entries} >= {"distributor.supervisor", "httpx"}
    assert any(entry["send_id"] == send_id for entry in entries)
    assert any("access_token=***" in entry["message"] for entry in entries)
    assert any("secret=***" in entry["message"] for entry in entries)
    text = "\n".join(lines)
    for secret in (SECRET, config.app_secret, *tokens, *links, *emails):
        assert secret not in text, secret


def test_distributor_web_with_log_format_json_writes_json_lines_from_every_process(
    sqlite_url: str, tmp_path: Path
) -> None:
    token = LINKS.tracking_token(1, 1)
    with web_process(tmp_path, sqlite_url, LOG_FORMAT="json", WEB_WORKERS="2") as (base, log):
        httpx.get(open_pixel_url(base, token), timeout=30)
    lines = log.read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line, or this fails
    assert all(list(entry)[:6] == FIELDS for entry in entries)
    assert sum("Application startup complete" in entry["message"] for entry in entries) >= 2
    assert token not in log.read_text() and SECRET not in log.read_text()
