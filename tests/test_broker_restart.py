"""A broker restart or outage stops nothing: ``distributor worker`` as shipped (a supervisor, its
sending process of threads, beat) rides out Redis killed and back after 2 s, or down for a minute,
and starts a fresh sending process when one is killed with kill -9. Nobody is lost; duplicates stay
within the SMTP transactions in flight at the kill (one per dispatcher slot)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow

SLOTS = 2


def test_a_redis_restart_and_a_killed_sending_process_lose_nobody(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    recipients = 3000
    emails = make_audience(sqlite_url, "members", recipients)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.005)) as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp, DISPATCH_SLOTS=str(SLOTS))
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, tmp_path, concurrency=None, supervised=True)
        worker.start()
        try:
            smtp.handler.wait_for(300, timeout=60)
            redis_server.stop()  # kill -9
            time.sleep(2)
            redis_server.start()
            restarted_at = len(smtp.handler.received)
            smtp.handler.wait_for(restarted_at + 300, timeout=60)
            (first,) = worker.started_pids()  # the worker rode out the restart by itself
            os.kill(first, signal.SIGKILL)
            killed_at = len(smtp.handler.received)
            status = wait_until_done(sqlite_url, send_id, timeout=120)
            pids = worker.started_pids()
        finally:
            worker.stop()
        counts = smtp.handler.counts()
    assert killed_at < recipients, "the kill came too late"
    assert len(pids) == 2 and pids[0] == first, "a fresh sending process took over"
    assert sorted(counts) == emails, "every recipient got the message"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= SLOTS, worker.logs()[-3000:]
    assert status.counts == {"sent": recipients}
    assert duplicates <= status.possible_duplicates <= SLOTS
    assert "Unrecoverable error" not in worker.logs()


def test_redis_down_for_a_minute_mid_send_and_the_worker_sends_on_when_it_returns(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    recipients = 1500
    emails = make_audience(sqlite_url, "members", recipients)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.01)) as smtp:
        # Drains hand their slot on every 2 s, so sending soon waits for the broker.
        env = engine_env(
            sqlite_url,
            redis_server.url,
            smtp,
            DISPATCH_SLOTS=str(SLOTS),
            DISPATCH_BUDGET_SECONDS="2",
        )
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, tmp_path, concurrency=None, supervised=True)
        worker.start()
        try:
            smtp.handler.wait_for(200, timeout=60)
            redis_server.stop()
            time.sleep(60)
            back_at = len(smtp.handler.received)
            redis_server.start()
            status = wait_until_done(sqlite_url, send_id, timeout=120)
            pids = worker.started_pids()
        finally:
            worker.stop()
        counts = smtp.handler.counts()
    assert back_at < recipients, "the send ended before Redis came back"
    assert len(pids) == 1, "the worker rode out the outage by itself"
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert status.counts == {"sent": recipients} and status.possible_duplicates == 0
