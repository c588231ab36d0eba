"""A sender that stalls longer than its claim's lease (a server that takes its time to answer):
the sweep gives its batch back meanwhile, and the stalled sender must then leave that batch to
whoever claims it next. Otherwise every row behind the stalled one goes out twice. And a batch
merely slower than its lease renews it, so no sweep takes it; a quicker one never rewrites it."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from distributor.config import Settings
from distributor.db import transaction, utcnow
from distributor.runtime import WorkerRuntime
from distributor.sending.claim import sweep_expired_claims
from distributor.sending.models import Delivery
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import engine_env, import_sample, started_send
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.statements import statements_run

SLOW = "reader00001@example.org"


class StallsOnce(RecordingHandler):
    """Takes ``seconds`` to answer the first message to ``SLOW``, then answers at once."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.stalled = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos[0] == SLOW and not self.stalled:
            self.stalled = True
            await asyncio.sleep(self.seconds)
        return await super().handle_DATA(server, session, envelope)


def test_rows_swept_while_their_sender_stalled_go_out_once(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 5)
    issue_id = import_sample(database_url, sample_issue_path)
    handler = StallsOnce(seconds=4.0)
    with SmtpServer(handler) as smtp:
        env = engine_env(
            database_url, "memory://", smtp, CLAIM_LEASE_SECONDS="1", RECHECK_SECONDS="0.2"
        )
        send_id = started_send(database_url, issue_id, "members")
        runtime = WorkerRuntime.from_settings(Settings.from_env(env))

        def sweep_while_it_waits() -> None:  # the scheduler's tick, past the lease
            wait_until(lambda: handler.stalled, bool, timeout=30, what="the stalled answer")
            time.sleep(1.5)  # the lease (1 s) is over, the answer (4 s) still to come
            with transaction(database_url) as session:
                assert sweep_expired_claims(session, utcnow(), max_attempts=5) == 5

        sweeper = threading.Thread(target=sweep_while_it_waits)
        try:
            runtime.plan(send_id)
            sweeper.start()
            runtime.drain_now()  # stalls on the first message, then finds its claims gone
            sweeper.join()
            runtime.drain_now()  # whatever is left, as any worker would
        finally:
            runtime.close()
    counts = smtp.handler.counts()
    assert {address: n for address, n in counts.items() if address != SLOW} == {
        f"reader0000{i}@example.org": 1 for i in range(2, 6)
    }
    # In flight when it was swept: it may have arrived, so it went again, flagged as such.
    assert counts[SLOW] == 2
    with transaction(database_url) as session:
        flagged = session.scalars(
            select(Delivery.address).where(Delivery.send_id == send_id, Delivery.possible_duplicate)
        ).all()
    assert flagged == [SLOW]


def test_a_batch_slower_than_its_lease_renews_it_and_a_quicker_one_never_rewrites_it(
    database_url: str, sample_issue_path: Path
) -> None:
    """Five answers of 0.3 s each: a 1 s lease is renewed on the way (a sweep every 0.1 s meanwhile
    takes nothing back). A 60 s lease always outlasts one more answer (SMTP_TIMEOUT, 30 s) and
    a recheck: it is never rewritten."""
    issue_id = import_sample(database_url, sample_issue_path)
    for lease in ("1", "60"):
        with statements_run(database_url) as statements:
            send_id = _drain_while_sweeping(database_url, issue_id, lease)
        renewals = [s for s, _ in statements if s.startswith("UPDATE deliveries SET lease_until")]
        with transaction(database_url) as session:
            assert not session.scalars(
                select(Delivery.id).where(Delivery.send_id == send_id, Delivery.possible_duplicate)
            ).all()
        if lease == "1":
            assert len(renewals) >= 2  # 1.5 s of answers, a recheck after each
        else:
            assert renewals == []


def _drain_while_sweeping(url: str, issue_id: int, lease: str) -> int:
    """A send to five new readers, drained with ``lease`` (seconds) while a sweep runs every
    0.1 s; checks each reader got it once and no sweep took a row. The send's id."""
    list_name = f"lease{lease}"
    make_audience(url, list_name, 5, prefix=f"{list_name}-")
    swept: list[int] = []
    done = threading.Event()

    def sweeping() -> None:  # the scheduler's tick, as often as can be
        while not done.wait(0.1):
            with transaction(url) as session:
                swept.append(sweep_expired_claims(session, utcnow(), max_attempts=5))

    with SmtpServer(RecordingHandler(delay=0.3)) as smtp:
        env = engine_env(
            url,
            "memory://",
            smtp,
            CLAIM_LEASE_SECONDS=lease,
            SMTP_TIMEOUT="30",
            RECHECK_SECONDS="0.05",
        )
        send_id = started_send(url, issue_id, list_name)
        runtime = WorkerRuntime.from_settings(Settings.from_env(env))
        sweeper = threading.Thread(target=sweeping)
        try:
            runtime.plan(send_id)
            sweeper.start()
            runtime.drain_now()
        finally:
            done.set()
            if sweeper.is_alive():
                sweeper.join()
            runtime.close()
    assert list(smtp.handler.counts().values()) == [1] * 5
    assert swept and not any(swept), swept
    return send_id
