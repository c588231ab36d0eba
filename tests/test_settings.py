"""Settings a communications officer may get wrong are refused at once, naming the setting and
the fix; those that work but will hurt are warnings; the documented defaults work."""

from __future__ import annotations

import email
import email.policy
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.cli import main
from distributor.cli.worker_commands import sending_processes
from distributor.config import Settings
from distributor.devservers.ports import free_port
from distributor.errors import ConfigurationError
from distributor.render.mime import mailbox
from distributor.startup import check_settings
from tests.support.sending import SECRET, import_sample
from tests.support.smtp import RecordingHandler

GOOD = Settings(secret_key=SECRET, mail_from="杭州工运 <newsletter@hzgh.org.cn>")


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.output


def test_a_short_secret_key_is_refused_with_how_to_make_one(sqlite_url: str) -> None:
    env = {"DATABASE_URL": sqlite_url, "DISTRIBUTOR_SECRET_KEY": "k"}
    code, output = run(env, "send", "create", "--issue", "1", "--list", "members")
    assert code == 2
    assert output == (
        "Error: DISTRIBUTOR_SECRET_KEY has 1 characters, fewer than 32: it signs every public "
        "link. Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'\n"
    )
    with pytest.raises(ConfigurationError, match="fewer than 32"):
        check_settings(replace(GOOD, secret_key="x" * 31))
    assert check_settings(replace(GOOD, secret_key="x" * 32, public_base_url="https://a.org")) == []


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://news.example.org\r\nBcc: victim@example.org", "contains a space or control"),
        ("https://news.example.org/\nX: y", "contains a space or control"),
        ("news.example.org", "is not an http(s) URL"),
        ("javascript:alert(1)", "is not an http(s) URL"),
        ("ftp://news.example.org", "is not an http(s) URL"),
        ("https://", "is not an http(s) URL"),
    ],
)
def test_a_public_base_url_that_is_not_a_clean_http_url_is_refused(
    sqlite_url: str, url: str, problem: str
) -> None:
    code, output = run({"DATABASE_URL": sqlite_url, "PUBLIC_BASE_URL": url}, "issue", "list")
    assert code == 2
    assert output.startswith(f"Error: PUBLIC_BASE_URL={url!r} {problem}")
    assert output.endswith("e.g. https://news.example.org\n") and output.count("\n") == 1


def test_one_click_unsubscribe_is_only_offered_over_https(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    issue_id = import_sample(sqlite_url, sample_issue_path)
    headers = {}
    for base in ("http://news.example.org", "https://news.example.org"):
        env = {
            "DATABASE_URL": sqlite_url,
            "DISTRIBUTOR_SECRET_KEY": SECRET,
            "PUBLIC_BASE_URL": base,
        }
        result = CliRunner().invoke(main, ["issue", "render", str(issue_id)], env=env)
        assert result.exit_code == 0, result.output
        message = email.message_from_bytes(result.stdout_bytes)
        assert message["List-Unsubscribe"].startswith(f"<{base}/")
        headers[base] = message["List-Unsubscribe-Post"]
    assert headers == {
        "http://news.example.org": None,
        "https://news.example.org": "List-Unsubscribe=One-Click",
    }
    assert Settings(public_base_url="https://a.org").one_click_unsubscribe
    assert not Settings(public_base_url="http://a.org").one_click_unsubscribe
    (warning,) = check_settings(replace(GOOD, public_base_url="http://news.example.org"))
    assert "is not https: messages offer no one-click unsubscribe" in warning


def test_a_claim_shorter_than_one_answer_may_take_is_a_warning() -> None:
    https = replace(GOOD, public_base_url="https://news.example.org")
    assert check_settings(https) == []  # the defaults: a 30 s lease, answers within 30 s
    (warning,) = check_settings(replace(https, claim_lease_seconds=20, smtp_timeout=45))
    assert warning == (
        "CLAIM_LEASE_SECONDS (20) is shorter than SMTP_TIMEOUT (45): one answer that takes that "
        "long outlasts the claim, and its message may go out twice (flagged as a possible "
        "duplicate). Set CLAIM_LEASE_SECONDS to at least 45"
    )


def write_key(path: Path, bits: int, mode: int) -> Path:
    if bits < 1024:  # cryptography refuses to make one; OpenSSL still can
        pem = subprocess.run(
            ["openssl", "genrsa", str(bits)], check=True, capture_output=True
        ).stdout
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    path.write_bytes(pem)
    path.chmod(mode)
    return path


def dkim(key_file: Path) -> Settings:
    return replace(
        GOOD,
        public_base_url="https://news.hzgh.org.cn",
        dkim_domain="hzgh.org.cn",
        dkim_selector="s1",
        dkim_private_key_file=str(key_file),
    )


def test_a_dkim_key_others_can_read_or_under_2048_bits_is_a_warning_under_1024_an_error(
    tmp_path: Path,
) -> None:
    good = write_key(tmp_path / "good.pem", 2048, 0o600)
    assert check_settings(dkim(good)) == []
    readable = write_key(tmp_path / "readable.pem", 2048, 0o644)
    (warning,) = check_settings(dkim(readable))
    assert warning == (
        f"DKIM_PRIVATE_KEY_FILE={str(readable)!r} can be read by other users (mode 644): "
        "anyone who reads it can sign mail as hzgh.org.cn; make it readable by its owner only "
        "(mode 600)"
    )
    small = write_key(tmp_path / "small.pem", 1024, 0o640)
    warnings = check_settings(dkim(small))
    assert len(warnings) == 2 and "(mode 640)" in warnings[0]
    assert "holds a 1024-bit key: receivers are moving to 2048 bits" in warnings[1]
    weak = write_key(tmp_path / "weak.pem", 512, 0o600)
    with pytest.raises(ConfigurationError, match="at least 1024 bits"):
        check_settings(dkim(weak))


def test_the_default_mail_from_works_with_a_warning_and_a_bad_one_is_refused_with_an_example() -> (
    None
):
    default = replace(GOOD, mail_from=Settings.mail_from, public_base_url="https://a.org")
    (warning,) = check_settings(default)
    assert warning.startswith("MAIL_FROM is at localhost: a mail server on this machine takes it")
    (warning,) = check_settings(replace(default, mail_from="newsletter@demo.example"))
    assert warning.startswith("MAIL_FROM is at demo.example")
    with pytest.raises(ConfigurationError) as refused:
        check_settings(replace(default, mail_from="杭州工运 <newsletter@intranet>"))
    assert str(refused.value) == (
        "MAIL_FROM cannot be used: the address in MAIL_FROM 'newsletter@intranet' is not a plain "
        "ASCII email address like name@example.org; "
        "e.g. MAIL_FROM='杭州工运 <newsletter@your-domain.cn>'"
    )


@pytest.mark.parametrize(
    "name",
    ["=?utf-8?b?5p2O5piO?=", "Wang =?utf-8?q?=E6=9D=8E?= Ming", '"=?utf-8?b?5p2O?="', "a=?b"],
)
def test_a_display_name_that_looks_like_an_encoded_word_reaches_the_reader_as_written(
    name: str,
) -> None:
    header = mailbox(name, "reader@example.org")
    parsed = email.message_from_bytes(
        f"To: {header}\r\n\r\n".encode("ascii"), policy=email.policy.default
    )
    (address,) = parsed["To"].addresses
    assert (address.display_name, address.addr_spec) == (name, "reader@example.org")


@dataclass
class RecordingAuthenticator:
    """Accepts one user and remembers every AUTH the server received."""

    logins: list[tuple[bytes, bytes]] = field(default_factory=list)

    def __call__(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data == LoginPassword(b"hzgh", b"s3cret"))


@pytest.fixture
def auth_smtp() -> Iterator[tuple[Controller, RecordingHandler, RecordingAuthenticator]]:
    handler, authenticator = RecordingHandler(), RecordingAuthenticator()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,  # as a relay on loopback, or a careless one, would
    )
    controller.start()
    yield controller, handler, authenticator
    controller.stop()


def test_a_password_never_goes_over_plain_smtp_unless_the_operator_allows_it(
    sqlite_url: str,
    sample_issue_path: Path,
    auth_smtp: tuple[Controller, RecordingHandler, RecordingAuthenticator],
) -> None:
    controller, handler, authenticator = auth_smtp
    issue_id = import_sample(sqlite_url, sample_issue_path)
    env = {
        "DATABASE_URL": sqlite_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "MAIL_FROM": "杭州工运 <newsletter@hzgh.org.cn>",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(controller.port),
        "SMTP_SECURITY": "none",
        "SMTP_USERNAME": "hzgh",
        "SMTP_PASSWORD": "s3cret",
    }
    send_test = ("send", "test", "--issue", str(issue_id), "--to", "editor@hzgh.org.cn")
    code, output = run(env, *send_test)
    assert (code, output) == (
        2,
        "Error: SMTP_USERNAME is set but SMTP_SECURITY is none: the password would cross the "
        "network in clear. Use SMTP_SECURITY=starttls or ssl; for a relay on this machine "
        "(loopback) only, set SMTP_ALLOW_PLAINTEXT_AUTH=1\n",
    )
    assert authenticator.logins == [] and handler.received == []
    code, output = run({**env, "SMTP_ALLOW_PLAINTEXT_AUTH": "1"}, *send_test)
    assert code == 0, output
    assert authenticator.logins == [(b"hzgh", b"s3cret")]
    # (the refused attempt's test delivery is still queued and goes out with this one)
    assert {r.recipient for r in handler.received} == {"editor@hzgh.org.cn"}
    code, output = run({**env, "SMTP_ALLOW_PLAINTEXT_AUTH": "maybe"}, *send_test)
    assert (code, output) == (2, "Error: SMTP_ALLOW_PLAINTEXT_AUTH='maybe' is not 1 or 0\n")


def test_the_web_runs_a_worker_per_core_only_where_its_rate_limits_are_shared() -> None:
    """Without Redis each process would count, and allow, the limits on its own."""
    embedded = Settings.from_env({"DISTRIBUTOR_SECRET_KEY": SECRET})
    assert embedded.shared_redis_url is None and embedded.web_worker_count == 1
    shared = Settings.from_env({"REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert shared.web_worker_count == max(1, os.cpu_count() or 1)
    broker = Settings.from_env({"CELERY_BROKER_URL": "redis://127.0.0.1:6379/0"})
    assert broker.web_worker_count == shared.web_worker_count
    assert Settings.from_env({"WEB_WORKERS": "3"}).web_worker_count == 3
    with pytest.raises(ConfigurationError, match="WEB_WORKERS"):
        Settings.from_env({"WEB_WORKERS": "many"})


def test_sqlite_gets_fewer_dispatcher_slots_than_a_database_server() -> None:
    """SQLite's one writer is shared by every dispatcher: there more slots only queue."""
    assert Settings.from_env({}).dispatch_slots == 4
    server = {"DATABASE_URL": "postgresql+psycopg://localhost/distributor"}
    assert Settings.from_env(server).dispatch_slots == 6
    assert Settings.from_env({**server, "DISPATCH_SLOTS": "3"}).dispatch_slots == 3
    assert Settings.from_env({"DISPATCH_SLOTS": "8"}).dispatch_slots == 8


def test_a_worker_can_send_from_a_process_per_core_with_the_slots_spread_over_them() -> None:
    """One interpreter's threads share one core: more processes than cores, or than slots,
    would only wait; on SQLite they would wait for its one writer."""
    cores = max(1, os.cpu_count() or 1)
    server = {"DATABASE_URL": "postgresql+psycopg://localhost/distributor"}
    assert Settings.from_env(server).worker_process_count == min(cores, 6)  # the default
    per_core = {**server, "WORKER_PROCESSES": "0"}
    assert Settings.from_env(per_core).worker_process_count == min(cores, 6)
    assert Settings.from_env({**server, "WORKER_PROCESSES": "1"}).worker_process_count == 1
    assert Settings.from_env({}).worker_process_count == 1  # SQLite: its one writer
    assert Settings.from_env({**per_core, "DISPATCH_SLOTS": "1"}).worker_process_count == 1
    assert Settings.from_env({"WORKER_PROCESSES": "0"}).worker_process_count == 1  # SQLite
    three = Settings.from_env({"WORKER_PROCESSES": "3", "DISPATCH_SLOTS": "8"})
    assert three.worker_process_count == 3
    assert sending_processes(three, None, supervisor=7) == [
        ["--concurrency=5", f"--hostname=worker{i}.7@%h"] for i in (1, 2, 3)
    ]  # 3 of the 8 slots each, and two threads for ticks and planning
    assert sending_processes(three, 2, supervisor=7)[0][0] == "--concurrency=2"
    one = Settings.from_env({"WORKER_PROCESSES": "1"})
    assert sending_processes(one, None, supervisor=7) == [[]]  # Celery's own: slots + 2
    assert sending_processes(one, 3, supervisor=7) == [["--concurrency=3"]]


@pytest.mark.parametrize(
    ("env", "problem"),
    [
        (
            {"WECHAT_ENCODING_AES_KEY": "short", "WECHAT_APP_ID": "wx1"},
            "Error: WECHAT_ENCODING_AES_KEY is 5 characters, not the 43 letters, digits, '+' and "
            "'/' of the EncodingAESKey shown in the WeChat console\n",
        ),
        (
            {"WECHAT_ENCODING_AES_KEY": "!" * 43, "WECHAT_APP_ID": "wx1"},
            "Error: WECHAT_ENCODING_AES_KEY is 43 characters, not the 43 letters, digits, '+' and "
            "'/' of the EncodingAESKey shown in the WeChat console\n",
        ),
        (
            {"WECHAT_ENCODING_AES_KEY": "a" * 43},
            "Error: WECHAT_ENCODING_AES_KEY needs WECHAT_APP_ID: a safe-mode message names its "
            "account\n",
        ),
    ],
)
def test_a_wechat_encoding_aes_key_that_is_not_one_is_refused(
    sqlite_url: str, env: dict[str, str], problem: str
) -> None:
    code, output = run({"DATABASE_URL": sqlite_url, **env}, "issue", "list")
    assert (code, output) == (2, problem)
    good = Settings.from_env({"WECHAT_ENCODING_AES_KEY": "a" * 43, "WECHAT_APP_ID": "wx1"})
    assert good.wechat_encoding_aes_key == "a" * 43 and "aaaa" not in repr(good)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("BOUNCE_PAUSE_RATE", "5", "must be from 0 to 1"),  # a share: 5 would never pause
        ("REFUSAL_PAUSE_RATE", "-0.1", "must be from 0 to 1"),
        ("REFUSAL_PAUSE_RATE", "nan", "is not a finite number"),  # NaN > x is always false
        ("BOUNCE_PAUSE_MIN_SENT", "-1", "must be at least 0"),
        ("REFUSAL_PAUSE_MIN_ATTEMPTS", "-5", "must be at least 0"),
        ("DISPATCH_SLOTS", "0", "must be at least 1"),
        ("DISPATCH_BATCH_SIZE", "0", "must be at least 1"),
        ("SMTP_PORT", "70000", "must be from 1 to 65535"),
        ("TICK_SECONDS", "0", "must be more than 0"),  # beat would tick without pause
        ("CLAIM_LEASE_SECONDS", "inf", "is not a finite number"),
        ("RECHECK_SECONDS", "-1", "must be at least 0"),
        ("WEB_FORM_RATE_LIMIT", "0", "must be at least 1"),
    ],
)
def test_a_number_setting_out_of_its_range_is_refused_naming_the_range(
    sqlite_url: str, name: str, value: str, problem: str
) -> None:
    code, output = run({"DATABASE_URL": sqlite_url, name: value}, "issue", "list")
    assert (code, output) == (2, f"Error: {name}={value!r} {problem}\n")


def test_the_edges_of_each_range_are_taken() -> None:
    edges = Settings.from_env(
        {
            "BOUNCE_PAUSE_RATE": "0",
            "REFUSAL_PAUSE_RATE": "1",
            "REFUSAL_PAUSE_MIN_ATTEMPTS": "0",
            "DISPATCH_SLOTS": "1",
            "SMTP_PORT": "65535",
            "RECHECK_SECONDS": "0",
            "RETRY_BASE_SECONDS": "0",
            "TICK_SECONDS": "0.05",
            "RATE_LIMIT": "0",
        }
    )
    assert (edges.bounce_pause_rate, edges.refusal_pause_rate) == (0.0, 1.0)
    assert (edges.refusal_pause_min_attempts, edges.dispatch_slots, edges.smtp_port) == (
        0, 1, 65535,
    )  # fmt: skip
    assert (edges.recheck_seconds, edges.retry_base_seconds, edges.tick_seconds) == (0, 0, 0.05)
    assert edges.rate_limit is None  # 0: no rate limit
