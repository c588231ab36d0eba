"""Staff control of a running send, with a real worker and SMTP server: pause, resume, cancel,
retry the failed, expiry."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result

from distributor.campaigns.schedule import create_send
from distributor.cli import main
from distributor.db import transaction, utcnow
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.vocabulary import Variant
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import (
    SECRET,
    created_by_cli,
    engine_env,
    import_sample,
    status_of,
    wait_for_ticks,
    wait_until_done,
)
from tests.support.sizes import sized
from tests.support.smtp import RecordingHandler, SmtpServer

PAUSED_READERS = sized(2000, 5000)

pytestmark = pytest.mark.slow


def cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def state_of(url: str, send_id: int) -> str:
    return status_of(url, send_id).state


@pytest.mark.timeout(600)
@pytest.mark.xdist_group("timing")  # not alongside the global rate limit test (test_limits)
def test_pause_stops_within_2s_and_resume_sends_everyone_exactly_once(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    database_url = postgres_url
    emails = make_audience(database_url, "members", PAUSED_READERS)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer() as smtp:
        env = engine_env(database_url, redis_server.url, smtp)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            smtp.handler.wait_for(PAUSED_READERS // 5, timeout=90)
            paused_at = time.monotonic()
            cli(env, "send", "pause", str(send_id))
            # Paused once no delivery is claimed: the dispatchers have recorded what was in
            # flight (the server took it before they did) and given the rest of their batches back.
            wait_until(
                lambda: status_of(database_url, send_id),
                lambda status: "claimed" not in status.counts,
                timeout=30,
                what="every claim given back after the pause",
            )
            during_pause = len(smtp.handler.received)
            # The window the assertion covers: two more ticks, neither of which may send.
            wait_for_ticks(database_url, 2)
            arrivals = [r.at for r in smtp.handler.received]
            assert state_of(database_url, send_id) == "paused"
            cli(env, "send", "resume", str(send_id))
            status = wait_until_done(database_url, send_id, timeout=300)
        counts = smtp.handler.counts()
    assert len(arrivals) == during_pause, "nothing goes out while paused"
    assert arrivals[-1] - paused_at < 2.0
    assert during_pause < PAUSED_READERS
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert status.counts == {"sent": PAUSED_READERS}


def test_cancel_leaves_the_rest_cancelled(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 600)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.01)) as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            smtp.handler.wait_for(100, timeout=60)
            cli(env, "send", "cancel", str(send_id))
            # Settled once every delivery is final: the dispatchers have recorded what was in
            # flight and cancelled the rest of their batches.
            status = wait_until(
                lambda: status_of(sqlite_url, send_id),
                lambda status: status.finished_deliveries == 600,
                timeout=30,
                what="every delivery final after the cancel",
            )
            sent_by_server = len(smtp.handler.received)
    assert status.state == "cancelled"
    assert status.counts["sent"] == sent_by_server < 600
    assert status.counts == {"sent": sent_by_server, "cancelled": 600 - sent_by_server}


def test_retry_failed_delivers_the_failed_ones_and_nobody_else(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    """On PostgreSQL only, as the pause test here: the reopening itself runs on both databases
    in test_api (the deliveries page, retried)."""
    database_url = postgres_url
    emails = make_audience(database_url, "members", 200)
    refused = set(emails[::10])
    accepting = {"now": False}

    def fault(recipient: str, attempt: int) -> str | None:
        if recipient in refused and not accepting["now"]:
            return "550 5.2.1 mailbox disabled"
        return None

    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(RecordingHandler(fault=fault)) as smtp:
        env = engine_env(database_url, redis_server.url, smtp)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            first = wait_until_done(database_url, send_id, timeout=90)
            assert first.counts == {"sent": 180, "failed": 20}
            accepting["now"] = True
            output = cli(env, "send", "retry-failed", str(send_id), "--code", "550").output
            assert (
                output.strip() == f"Reopened 20 failed deliveries with code 550 of send {send_id}."
            )
            second = wait_until_done(database_url, send_id, timeout=90)
        counts = smtp.handler.counts()
    assert second.counts == {"sent": 200}
    assert sorted(counts) == emails and set(counts.values()) == {1}
    again = cli(env, "send", "retry-failed", str(send_id)).output
    assert again.startswith("Reopened 0 failed deliveries")


def test_an_expired_send_does_not_start_until_resumed(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(sqlite_url, "members", 50)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    seven_hours_ago = utcnow() - timedelta(hours=7)
    with transaction(sqlite_url) as session:  # the CLI refuses a past time: made while it was due
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            at=seven_hours_ago,
            now=seven_hours_ago,
            zone=ZoneInfo("Asia/Shanghai"),
        ).id
    with SmtpServer() as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp)
        with running_worker(env, tmp_path):
            wait_until(
                lambda: state_of(sqlite_url, send_id),
                lambda state: state == "expired",
                timeout=30,
                what="the send expired by a tick",
            )
            # The window the assertion covers: three more ticks, none of which may start it.
            wait_for_ticks(sqlite_url, 3)
            assert smtp.handler.received == []
            assert state_of(sqlite_url, send_id) == "expired"
            status = cli(env, "send", "status", str(send_id)).output
            assert "expired" in status
            cli(env, "send", "resume", str(send_id))
            wait_until_done(sqlite_url, send_id, timeout=60)
        assert sorted(smtp.handler.counts()) == emails


def test_refused_transitions_say_why(sqlite_url: str, sample_issue_path: Path) -> None:
    make_audience(sqlite_url, "members", 1)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    env = {"DATABASE_URL": sqlite_url, "DISTRIBUTOR_SECRET_KEY": SECRET}
    send_id = created_by_cli(env, issue_id, "--draft")
    result = CliRunner().invoke(main, ["send", "resume", str(send_id)], env=env)
    assert result.exit_code == 2
    assert result.output.strip() == (
        f"Error: send {send_id} is draft: only a send that is paused or expired can be resumed"
    )
    missing = CliRunner().invoke(main, ["send", "pause", "999"], env=env)
    assert missing.output.strip() == "Error: there is no send with ID 999"
