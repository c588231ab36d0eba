"""A send through a server that offers PIPELINING (RFC 2920): each message of a batch is started
behind the content of the one before, and whatever then keeps one from following (a reader who
left meanwhile, a rate to keep) never makes it arrive twice, empty, or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from distributor.db import transaction
from distributor.runtime import WorkerRuntime
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from subscribers.models import Subscriber
from subscribers.store import unsubscribe
from tests.support.audience import make_audience
from tests.support.sending import (
    engine_env,
    import_sample,
    send_in_this_process,
    started_send,
)
from tests.support.smtp import PipeliningHandler, SmtpServer, Tap

READERS = 12
STARTED_BEHIND = b"\r\n.\r\nMAIL FROM:"  # a message's end and the next one's first command


def send_through_tap(
    database_url: str, sample_issue_path: Path, handler: PipeliningHandler, **extra: str
) -> tuple[SmtpServer, Tap, WorkerRuntime]:
    """Plan and drain a send to ``READERS`` readers in this process, through a tap."""
    make_audience(database_url, "members", READERS)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(handler) as smtp, Tap(smtp.port) as tap:
        env = engine_env(database_url, "memory://", smtp, SMTP_PORT=str(tap.port), **extra)
        runtime = send_in_this_process(env, started_send(database_url, issue_id, "members"))
    return smtp, tap, runtime


def started_behind(tap: Tap) -> int:
    return sum(data.count(STARTED_BEHIND) for side, data in tap.turns() if side == "client")


def test_each_message_of_a_batch_is_started_behind_the_one_before(
    database_url: str, sample_issue_path: Path
) -> None:
    smtp, tap, runtime = send_through_tap(database_url, sample_issue_path, PipeliningHandler())
    assert set(smtp.handler.counts().values()) == {1}
    assert len(smtp.handler.counts()) == READERS
    assert started_behind(tap) == READERS - 1  # every one but the batch's first
    assert runtime.router.channels["default"].connections_opened == 1


class UnsubscribesTheNext(PipeliningHandler):
    """While it takes the first reader's message, the second reader unsubscribes; the answer
    takes longer than the engine's re-check interval, so the engine looks before it goes on."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if envelope.rcpt_tos[0] == "reader00001@example.org":
            with transaction(self.database_url) as db:
                reader = db.scalars(
                    select(Subscriber).where(Subscriber.email == "reader00002@example.org")
                ).one()
                unsubscribe(db, reader)
            await asyncio.sleep(0.4)
        return await super().handle_DATA(server, session, envelope)


def test_a_started_message_whose_reader_left_meanwhile_is_taken_back(
    database_url: str, sample_issue_path: Path
) -> None:
    smtp, _, runtime = send_through_tap(
        database_url, sample_issue_path, UnsubscribesTheNext(database_url),
        RECHECK_SECONDS="0.2",
    )  # fmt: skip
    counts = smtp.handler.counts()
    assert "reader00002@example.org" not in counts  # started, then dropped: never delivered
    assert len(counts) == READERS - 1 and set(counts.values()) == {1}
    with transaction(database_url) as session:
        state = session.scalar(
            select(Delivery.state).where(Delivery.address == "reader00002@example.org")
        )
    assert state is DeliveryState.SUPPRESSED
    # Its connection was closed to take it back (no "." that would deliver it empty).
    assert runtime.router.channels["default"].connections_opened == 2


def test_a_message_that_may_have_to_wait_its_turn_is_not_started_early(
    database_url: str, sample_issue_path: Path
) -> None:
    """Under a rate the next message may wait: the server would be left holding it."""
    smtp, tap, _ = send_through_tap(
        database_url, sample_issue_path, PipeliningHandler(), RATE_LIMIT="1000"
    )
    assert len(smtp.handler.counts()) == READERS and set(smtp.handler.counts().values()) == {1}
    assert started_behind(tap) == 0
