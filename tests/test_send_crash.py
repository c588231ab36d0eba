"""The crash test: kill -9 the worker mid-send and restart it, then restart Redis mid-send.

Nobody may be left without the message; duplicates are bounded by the SMTP transactions in flight
at the kill (one per dispatcher slot) and the send's status reports them. The server offers
PIPELINING, as real ones do: each message was started behind the one before, and a message
started on a connection the kill cut never arrives (empty or whole) from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.sizes import sized
from tests.support.smtp import PipeliningHandler, SmtpServer

pytestmark = pytest.mark.slow

RECIPIENTS = sized(2000, 5000)
SLOTS = 2


def test_kill_9_and_a_redis_restart_lose_nobody(
    database_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(database_url, "members", RECIPIENTS)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(PipeliningHandler()) as smtp:
        env = engine_env(database_url, redis_server.url, smtp, DISPATCH_SLOTS=str(SLOTS))
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, tmp_path, concurrency=SLOTS)
        worker.start()
        try:
            smtp.handler.wait_for(RECIPIENTS // 5, timeout=90)
            worker.kill()
            killed_at = len(smtp.handler.received)
            worker.start()
            smtp.handler.wait_for(killed_at + RECIPIENTS * 3 // 10, timeout=90)
            redis_server.stop()
            restarted_at = len(smtp.handler.received)
            redis_server.start()
            status = wait_until_done(database_url, send_id, timeout=180)
        finally:
            worker.stop()
        counts = smtp.handler.counts()
    assert killed_at < RECIPIENTS and restarted_at < RECIPIENTS, "the faults came too late"
    assert sorted(counts) == emails, "every recipient got the message"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= SLOTS, worker.logs()[-3000:]
    assert status.counts == {"sent": RECIPIENTS}
    assert duplicates <= status.possible_duplicates <= SLOTS
    print(
        f"\nkilled at {killed_at}, redis restarted at {restarted_at}, duplicates {duplicates}, "
        f"reported possible duplicates {status.possible_duplicates}"
    )
