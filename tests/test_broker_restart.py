"""A broker restart or outage stops nothing: ``distributor worker`` as shipped (a supervisor, its
sending process of threads, beat) rides out Redis killed and back after 2 s, or down for a while
(20 s; a minute under ``FULL_SIZE=1``, tests/support/sizes.py), and starts a fresh sending process
when one is killed with kill -9 (on PostgreSQL one of several, each forked from the supervisor).
Nobody is lost; duplicates stay within the SMTP transactions in flight at the kill (one per
dispatcher slot)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from distributor.campaigns.status import SendStatus
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.sizes import sized
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow

SLOTS = 2
OUTAGE_SECONDS = sized(20, 60)


@dataclass
class Sending:
    emails: list[str]
    send_id: int
    smtp: SmtpServer
    worker: WorkerProcess


@contextmanager
def sending(
    url: str, redis: RedisServer, sample: Path, workdir: Path, recipients: int, delay: float,
    **settings: str,
) -> Iterator[Sending]:
    """A send to ``recipients`` under way with ``distributor worker`` as shipped, against an SMTP
    server that takes ``delay`` seconds per message; the worker is stopped when the block ends."""
    emails = make_audience(url, "members", recipients)
    issue_id = import_sample(url, sample)
    with SmtpServer(RecordingHandler(delay=delay)) as smtp:
        env = engine_env(url, redis.url, smtp, DISPATCH_SLOTS=str(SLOTS), **settings)
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, workdir, concurrency=None, supervised=True)
        worker.start()
        try:
            yield Sending(emails, send_id, smtp, worker)
        finally:
            worker.stop()


def assert_nobody_lost(run: Sending, status: SendStatus) -> None:
    """Every recipient got the message; those twice at most one per slot in flight at a kill,
    each counted as a possible duplicate."""
    counts = run.smtp.handler.counts()
    assert sorted(counts) == run.emails, "every recipient got the message"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= SLOTS, run.worker.logs()[-3000:]
    assert status.counts == {"sent": len(run.emails)}
    assert duplicates <= status.possible_duplicates <= SLOTS
    assert "Unrecoverable error" not in run.worker.logs()


def test_a_redis_restart_and_a_killed_sending_process_lose_nobody(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    recipients = sized(1500, 3000)
    with sending(sqlite_url, redis_server, sample_issue_path, tmp_path, recipients, 0.005) as run:
        run.smtp.handler.wait_for(recipients // 10, timeout=60)
        redis_server.stop()  # kill -9
        time.sleep(2)
        redis_server.start()
        restarted_at = len(run.smtp.handler.received)
        run.smtp.handler.wait_for(restarted_at + recipients // 10, timeout=60)
        (first,) = run.worker.started_pids()  # the worker rode out the restart by itself
        os.kill(first, signal.SIGKILL)
        killed_at = len(run.smtp.handler.received)
        status = wait_until_done(sqlite_url, run.send_id, timeout=120)
        pids = run.worker.started_pids()
    assert killed_at < recipients, "the kill came too late"
    assert len(pids) == 2 and pids[0] == first, "a fresh sending process took over"
    assert_nobody_lost(run, status)


def shared_kb(pid: int) -> int:
    """How much of the process's written memory it shares with others (kB)."""
    rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return sum(
        int(line.split()[1]) for line in rollup.splitlines() if line.startswith("Shared_Dirty:")
    )


def test_two_sending_processes_forked_from_the_supervisor_and_one_killed_lose_nobody(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    """On PostgreSQL the worker sends from several processes; each is forked from the supervisor,
    whose modules it shares instead of loading its own copy (about 80 MB each)."""
    recipients = sized(1500, 3000)
    with sending(
        postgres_url, redis_server, sample_issue_path, tmp_path, recipients, 0.005,
        WORKER_PROCESSES="2",
    ) as run:
        run.smtp.handler.wait_for(recipients // 10, timeout=60)
        first, second = run.worker.started_pids()
        shared = {pid: shared_kb(pid) for pid in (first, second)}
        os.kill(first, signal.SIGKILL)
        killed_at = len(run.smtp.handler.received)
        status = wait_until_done(postgres_url, run.send_id, timeout=120)
        pids = run.worker.started_pids()
    assert all(kb > 20_000 for kb in shared.values()), shared
    assert killed_at < recipients, "the kill came too late"
    assert len(pids) == 3 and pids[:2] == [first, second], "a fresh sending process took over"
    assert_nobody_lost(run, status)


def test_redis_down_mid_send_and_the_worker_sends_on_when_it_returns(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    recipients = 1500
    # Drains hand their slot on every 2 s, so sending soon waits for the broker.
    with sending(
        sqlite_url, redis_server, sample_issue_path, tmp_path, recipients, 0.01,
        DISPATCH_BUDGET_SECONDS="2",
    ) as run:
        run.smtp.handler.wait_for(200, timeout=60)
        redis_server.stop()
        time.sleep(OUTAGE_SECONDS)
        back_at = len(run.smtp.handler.received)
        redis_server.start()
        status = wait_until_done(sqlite_url, run.send_id, timeout=120)
        pids = run.worker.started_pids()
    counts = run.smtp.handler.counts()
    assert back_at < recipients, "the send ended before Redis came back"
    assert len(pids) == 1, "the worker rode out the outage by itself"
    assert sorted(counts) == run.emails and set(counts.values()) == {1}
    assert status.counts == {"sent": recipients} and status.possible_duplicates == 0
