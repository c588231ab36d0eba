"""A crash of the PostgreSQL server mid-send: what ``synchronous_commit = off`` for result writes
may cost is bounded and no recipient is skipped.

The answers are committed without waiting for the WAL flush, so an immediate shutdown (SIGQUIT to
the postmaster: every server process aborts, crash recovery at the next start) may forget the
answers of the last ``3 × wal_writer_delay``; those recipients get the message again. The test runs
a server of its own (initdb in a temporary folder, as the ``postgres`` user), never the shared one.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from distributor.db import dispose_engines, upgrade
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.sizes import sized
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

RECIPIENTS = sized(1600, 4000)
SLOTS = 2
FORGETS_AT_MOST_SECONDS = 3 * 0.2  # 3 × wal_writer_delay (the default, set below)
MARGIN_SECONDS = 0.4  # between the sink taking a message and its answer's commit


class PrivateServer:
    """A PostgreSQL cluster in a temporary folder on a free port, run by the ``postgres`` user."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not binaries or shutil.which("runuser") is None:
            pytest.fail("PostgreSQL server binaries (pg_ctl, initdb) and runuser are needed")
        self.bin = Path(binaries[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="pg-crash-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / program), *args],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c wal_writer_delay=200ms -c fsync=on"
        )
        self._as_postgres(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
            "-w", "start",
        )

    def crash(self) -> None:
        """SIGQUIT to the postmaster: an immediate shutdown, as a crash (recovery on start)."""
        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + 30
        while (self.data / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def remove(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivateServer]:
    server = PrivateServer()
    try:
        server.start()
        upgrade(server.url)
        yield server
    finally:
        dispose_engines()
        server.remove()


def test_a_postgres_crash_mid_send_skips_nobody_and_resends_only_its_last_answers(
    private_postgres: PrivateServer,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    url = private_postgres.url
    emails = make_audience(url, "members", RECIPIENTS)
    issue_id = import_sample(url, sample_issue_path)
    with SmtpServer() as smtp:
        env = engine_env(url, redis_server.url, smtp, DISPATCH_SLOTS=str(SLOTS))
        send_id = created_by_cli(env, issue_id)
        worker = WorkerProcess(env, tmp_path, concurrency=None)
        worker.start()
        try:
            smtp.handler.wait_for(RECIPIENTS // 4, timeout=120)
            private_postgres.crash()
            crashed = time.monotonic()
            crashed_at = len(smtp.handler.received)
            dispose_engines()  # this process's connections died with the server
            private_postgres.start()
            status = wait_until_done(url, send_id, timeout=180)
        finally:
            worker.stop()
        window = FORGETS_AT_MOST_SECONDS + MARGIN_SECONDS
        last_answers = sum(1 for r in smtp.handler.received if crashed - window <= r.at <= crashed)
        counts = smtp.handler.counts()
    assert crashed_at < RECIPIENTS, "the crash came too late"
    assert sorted(counts) == emails, "every recipient got the message"
    assert status.counts == {"sent": RECIPIENTS}
    duplicates = sum(n - 1 for n in counts.values())
    # The message in flight per dispatcher (reported), plus at most the answers of the last
    # 3 × wal_writer_delay before the crash (not reported: the server forgot them).
    assert duplicates <= SLOTS + last_answers, (duplicates, last_answers, worker.logs()[-3000:])
    print(
        f"\ncrashed at {crashed_at}, {last_answers} answers in the last {window:.1f} s, "
        f"duplicates {duplicates}, reported possible duplicates {status.possible_duplicates}"
    )
