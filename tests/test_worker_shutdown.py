"""A worker asked to stop (SIGTERM, as ``docker stop`` and systemd do) stops within 10 s, giving
back or finishing what it holds, and the next worker finishes the send: everyone exactly once."""

from __future__ import annotations

import contextlib
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

RECIPIENTS = 800  # at 50 a second a slot: the stop comes mid-send
STOP_WITHIN_SECONDS = 10
SLOTS = 2


def terminate(worker: WorkerProcess, *, whole_group: bool) -> tuple[float, int]:
    """SIGTERM as systemd sends it (every process of the unit) or as ``docker stop`` does (the
    main process only); the seconds until the worker exited, and its exit code."""
    process = worker.process
    assert process is not None
    started = time.monotonic()
    if whole_group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):  # (nothing of the group is left)
            worker.kill()
        worker.process = None
    return time.monotonic() - started, code


@pytest.mark.parametrize("whole_group", [True, False], ids=["systemd", "docker-stop"])
def test_sigterm_mid_send_stops_within_10_s_and_the_next_worker_finishes_exactly_once(
    sqlite_url: str,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
    whole_group: bool,
) -> None:
    emails = make_audience(sqlite_url, "members", RECIPIENTS)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.02)) as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp, DISPATCH_SLOTS=str(SLOTS))
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, tmp_path, concurrency=SLOTS)
        worker.start()
        try:
            smtp.handler.wait_for(200, timeout=60)
            asked_at = len(smtp.handler.received)
            took, code = terminate(worker, whole_group=whole_group)
            stopped_at = len(smtp.handler.received)
            worker.start()
            status = wait_until_done(sqlite_url, send_id, timeout=180)
        finally:
            worker.stop()
        counts = smtp.handler.counts()
    assert took < STOP_WITHIN_SECONDS, f"stopped in {took:.1f} s\n{worker.logs()[-3000:]}"
    assert code == 0
    # Each slot finishes the message in hand (and one it may have begun as the signal came),
    # instead of sending on for the rest of its drain's time budget.
    assert stopped_at - asked_at <= 2 * SLOTS, (asked_at, stopped_at)
    assert sorted(counts) == emails and set(counts.values()) == {1}
    assert status.counts == {"sent": RECIPIENTS} and status.possible_duplicates == 0
