"""The welcome's acceptance: readers confirm while the worker (beat with it) is killed with kill -9
and started again; each gets the welcome exactly once. Exactly once in the database: one claim row
and one delivery per reader, every one sent. At the SMTP server, as for any send, a message in
flight at the kill may arrive twice (at most one per dispatcher slot): the same message, with the
same Message-ID, which the send reports as a possible duplicate. ``FULL_SIZE=1`` (or
``AUTOMATION_CRASH_READERS=1000``) runs the acceptance's thousand (README)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from distributor.automations.models import AutomationRun
from distributor.cli import main
from distributor.db import transaction
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from tests.support.automations import confirm, signed_up
from tests.support.polling import wait_until
from tests.support.sending import engine_env, import_sample, status_of
from tests.support.sizes import sized
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

READERS = int(os.environ.get("AUTOMATION_CRASH_READERS", sized(150, 1000)))
SLOTS = 2


def test_readers_confirming_through_a_kill_9_get_the_welcome_once(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    url = postgres_url
    issue_id = import_sample(url, sample_issue_path)
    emails = [f"reader{i:05d}@example.org" for i in range(READERS)]
    readers = signed_up(url, "members", emails)
    with SmtpServer() as smtp:
        env = engine_env(url, redis_server.url, smtp, DISPATCH_SLOTS=str(SLOTS))
        made = CliRunner().invoke(
            main, ["automations", "welcome", "members", "--issue", str(issue_id)], env=env
        )
        assert made.exit_code == 0, made.output
        send_id = int(made.output.rstrip(".\n").rpartition(" ")[2])
        worker = WorkerProcess(env, tmp_path, concurrency=SLOTS)
        confirming = threading.Thread(target=lambda: [confirm(url, r) for r in readers])
        worker.start()
        t0 = time.monotonic()
        try:
            confirming.start()
            smtp.handler.wait_for(READERS // 5, timeout=60)
            t1 = time.monotonic()
            worker.kill()
            killed_at = len(smtp.handler.received)
            worker.start()
            confirming.join(timeout=120)
            t2 = time.monotonic()
            status = wait_until(
                lambda: status_of(url, send_id),
                lambda status: status.counts.get("sent") == READERS,
                timeout=120,
                what=f"{READERS} welcomes sent",
            )
            t3 = time.monotonic()
        finally:
            worker.kill()  # every welcome is out (or the test failed): nothing to finish
        received = list(smtp.handler.received)
    with transaction(url) as session:
        claims = session.scalar(select(func.count()).select_from(AutomationRun))
    assert killed_at < READERS, "the kill came after every welcome"
    assert claims == READERS
    assert status.counts == {"sent": READERS}, "one delivery per reader, each sent"
    counts = Counter(r.recipient for r in received)
    assert sorted(counts) == emails, "every reader got the welcome"
    duplicates = sum(n - 1 for n in counts.values())
    assert duplicates <= SLOTS, worker.logs()[-3000:]
    assert duplicates <= status.possible_duplicates
    message_ids: dict[str, set[str]] = {r.recipient: set() for r in received}
    for r in received:
        message_ids[r.recipient].add(str(r.message["Message-ID"]))
    assert all(len(ids) == 1 for ids in message_ids.values()), "a duplicate is the same message"
    print(
        f"\n{READERS} readers: killed at {killed_at} welcomes after {t1 - t0:.1f} s, every "
        f"confirmation made by {t2 - t0:.1f} s, every welcome sent by {t3 - t0:.1f} s; "
        f"duplicates {duplicates}"
    )
