"""Faults that used to loop or fail a send one recipient at a time, with a real worker process:
a recipient whose message kills the worker every time, and an issue that cannot be rendered."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from distributor.campaigns.status import SendStatus
from distributor.cli import main
from distributor.db import transaction
from distributor.devservers.celery_worker import WorkerProcess, running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.issues.document import Article, Block, IssueDocument
from distributor.issues.store import save_issue
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, status_of
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow


def process_with_local_port(port: int) -> int | None:
    """The pid of the process whose TCP socket is bound to 127.0.0.1:``port`` (from /proc)."""
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rpartition(":")[2], 16) == port:
            inode = fields[9]
            break
    if inode is None:
        return None
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = [os.readlink(fd) for fd in fd_dir.iterdir()]
        except OSError:
            continue
        if f"socket:[{inode}]" in links:
            return int(fd_dir.parent.name)
    return None


class KillsItsSender(RecordingHandler):
    """An SMTP server at which one recipient is poison: whoever sends to it dies (SIGKILL), as a
    worker would if that message crashed it (out of memory, a segfault in a C library)."""

    def __init__(self, poison: str) -> None:
        super().__init__()
        self.poison = poison
        self.kills = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address == self.poison:
            pid = None
            for _ in range(40):  # on a busy machine the scan of /proc may miss the socket once
                pid = process_with_local_port(session.peer[1])
                if pid is not None:
                    break
                time.sleep(0.05)
            if pid is not None and pid != os.getpid():
                os.kill(pid, signal.SIGKILL)
                self.kills += 1
            return "451 4.3.0 try again"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture
def poison_smtp() -> Iterator[SmtpServer]:
    with SmtpServer(KillsItsSender("reader00010@example.org")) as server:
        yield server


def test_a_recipient_that_kills_its_worker_ends_failed_and_the_send_goes_on(
    postgres_url: str, redis_server: RedisServer, poison_smtp: SmtpServer, tmp_path: Path
) -> None:
    emails = make_audience(postgres_url, "members", 30)
    issue_id = save_small_issue(postgres_url, articles=3)
    # A lease longer than the poison's search of /proc on a busy machine (it holds the server's
    # answer), so that only the kills, never a lease running out meanwhile, count as deaths.
    env = engine_env(
        postgres_url, redis_server.url, poison_smtp, DISPATCH_SLOTS="1", RETRY_MAX_ATTEMPTS="3",
        CLAIM_LEASE_SECONDS="6",
    )
    send_id = created_by_cli(env, issue_id)
    worker = WorkerProcess(env, tmp_path)
    worker.start()
    try:
        status = supervise_until_done(worker, postgres_url, send_id, timeout=180)
    finally:
        worker.stop()
    assert status.counts == {"sent": 29, "failed": 1}, worker.logs()[-3000:]
    handler = poison_smtp.handler
    assert isinstance(handler, KillsItsSender) and handler.kills == 3
    counts = handler.counts()
    assert sorted(counts) == [e for e in emails if e != handler.poison]
    assert set(counts.values()) == {1}  # nobody else got it twice
    with transaction(postgres_url) as session:
        poison = session.scalars(select(Delivery).where(Delivery.address == handler.poison)).one()
    assert (poison.state, poison.attempts) == (DeliveryState.FAILED, 3)
    assert poison.last_error == "the worker died 3 times while sending this; gave up"
    shown = CliRunner().invoke(main, ["send", "deliveries", str(send_id), "--state", "failed"],
                               env=env)
    assert "the worker died 3 times while sending this" in shown.output


def supervise_until_done(
    worker: WorkerProcess, url: str, send_id: int, timeout: float
) -> SendStatus:
    """Wait for the send to finish, starting the worker again whenever it died, as systemd or a
    container's restart policy does: the poison message kills the worker's one process (its
    pool threads with it), and what is left of its group (an embedded beat) goes with it."""
    deadline = time.monotonic() + timeout
    while (status := status_of(url, send_id)).state != "done":
        assert time.monotonic() < deadline, f"not done: {status}\n{worker.logs()[-3000:]}"
        assert worker.process is not None
        if worker.exit_code() is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGKILL)
            worker.start()
        time.sleep(0.2)
    return status


def test_an_issue_that_cannot_be_rendered_pauses_the_send_before_its_first_message(
    sqlite_url: str, redis_server: RedisServer, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 20)
    issue_id = save_small_issue(sqlite_url, articles=400)  # far over the 90 KB HTML budget
    with SmtpServer() as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp)
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            state = wait_for_state(sqlite_url, send_id, "paused", timeout=60)
        assert smtp.handler.received == []
    assert state == "paused"
    with transaction(sqlite_url) as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
    shown = CliRunner().invoke(main, ["send", "status", str(send_id)], env=env)
    assert "It stopped by itself:" in shown.output
    assert "the budget is 90 KB" in shown.output
    as_json = CliRunner().invoke(main, ["send", "status", str(send_id), "--json"], env=env)
    assert "Gmail clips at 102 KB" in as_json.output


def save_small_issue(url: str, *, articles: int) -> int:
    text = "杭州市总工会持续深化产业工人队伍建设改革,推动职工技能提升。" * 3
    doc = IssueDocument(
        title="杭州工运",
        number=900 + articles,
        date=date(2026, 11, 28),
        articles=[
            Article(headline=f"第{n}篇", blocks=[Block("paragraph", text)])
            for n in range(1, articles + 1)
        ],
    )
    with transaction(url) as session:
        return save_issue(session, doc, source_format="json").id


def wait_for_state(url: str, send_id: int, state: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        shown = CliRunner().invoke(main, ["send", "status", str(send_id), "--json"],
                                   env={"DATABASE_URL": url})
        if f'"state": "{state}"' in shown.output or time.monotonic() > deadline:
            return state if f'"state": "{state}"' in shown.output else shown.output
        time.sleep(0.2)
