"""A cancelled send finished after all (issue 10), with a real worker and SMTP server: it reaches
the readers it had not reached, never again those who got it."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from distributor.campaigns.status import SendStatus
from distributor.cli import main
from distributor.db import session_factory, transaction, utcnow
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.sending.lifecycle import cancel_send, reopen_send
from distributor.sending.models import Send
from distributor.sending.planner import plan_next_batch, plan_send
from tests.support.audience import make_audience
from tests.support.sending import (
    created_by_cli,
    engine_env,
    import_sample,
    started_send,
    status_of,
    wait_until_done,
)
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow


def cli(env: dict[str, str], *args: str) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result


def wait_until_settled(url: str, send_id: int, timeout: float) -> SendStatus:
    """Cancelled, and no message of it still in a worker's hands."""
    deadline = time.monotonic() + timeout
    while True:
        status = status_of(url, send_id)
        if status.state == "cancelled" and set(status.counts) <= {"sent", "cancelled"}:
            return status
        assert time.monotonic() < deadline, f"send {send_id} never settled: {status}"
        time.sleep(0.1)


def test_a_send_cancelled_midway_reaches_the_rest_once_reopened(
    database_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(database_url, "members", 600)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.01)) as smtp:
        env = engine_env(database_url, redis_server.url, smtp)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            smtp.handler.wait_for(100, timeout=60)
            cli(env, "send", "cancel", str(send_id))
            cancelled = wait_until_settled(database_url, send_id, timeout=30)
            assert 0 < cancelled.counts["sent"] < 600 and cancelled.counts["cancelled"] > 0
            reopened = cli(env, "send", "reopen", str(send_id)).output
            assert reopened.startswith(
                f"Send {send_id} reopened: it goes on to the readers it had not reached "
                f"({cancelled.counts['cancelled']:,} cancelled messages wait again)"
            )
            status = wait_until_done(database_url, send_id, timeout=90)
        counts = smtp.handler.counts()
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert status.counts == {"sent": 600}


def test_a_send_cancelled_while_planning_plans_the_rest_once_reopened(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(sqlite_url, "members", 300)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    factory = session_factory(sqlite_url)
    send_id = started_send(sqlite_url, issue_id, "members")
    with factory.begin() as session:
        lease = timedelta(seconds=60)
        assert plan_next_batch(session, send_id, batch_size=100, now=utcnow(), lease=lease) == 100
    with transaction(sqlite_url) as session:
        assert cancel_send(session, send_id, utcnow()) == 100
    planned = plan_send(factory, send_id, batch_size=100, lease=lease)
    assert planned == 0, "a cancelled send is not planned further"
    with transaction(sqlite_url) as session:
        assert reopen_send(session, send_id, utcnow()) == 100
        send = session.get(Send, send_id)
        assert send is not None and send.planned_at is None and send.planned_through > 0
    with SmtpServer() as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp)
        with running_worker(env, tmp_path):
            status = wait_until_done(sqlite_url, send_id, timeout=90)
        counts = smtp.handler.counts()
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert status.counts == {"sent": 300}
