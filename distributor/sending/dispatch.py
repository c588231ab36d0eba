"""Dispatch: claim a batch, drop the recipients who left, send each message, record each answer.

Each result is committed as soon as the server has answered, before the next message goes out, so
a killed worker leaves at most its in-flight transaction unrecorded: the bound on duplicates.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Channel, Envelope, Outcome, Receipt
from distributor.db import utcnow
from distributor.errors import RenderError
from distributor.sending.claim import ClaimedDelivery, claim_batch, release_claims, renew_claims
from distributor.sending.lifecycle import (
    cancel_waiting_deliveries,
    finish_if_complete,
    send_state,
)
from distributor.sending.limits import Throttle
from distributor.sending.models import Delivery, DeliveryAttempt, DeliveryState, Send, SendState
from distributor.sending.policy import RetryPolicy, decide
from subscribers.query import still_sendable


class Composer(Protocol):
    """Builds the exact bytes for one delivery (rendered once per send, personalised per row)."""

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope: ...


@dataclass(frozen=True)
class DrainConfig:
    batch_size: int = 100
    lease_seconds: float = 30.0
    budget_seconds: float = 10.0  # then hand over, so ticks and planners get a process
    recheck_seconds: float = 1.0  # how stale an unsubscribe may be when its message would go
    policy: RetryPolicy = field(default_factory=RetryPolicy)


@dataclass
class DrainStats:
    counts: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    out_of_time: bool = False

    def add(self, state: DeliveryState, n: int = 1) -> None:
        self.counts[state.value] = self.counts.get(state.value, 0) + n


def record_result(
    session: Session,
    delivery: ClaimedDelivery,
    *,
    token: str,
    receipt: Receipt,
    policy: RetryPolicy,
    now: datetime,
    worker: str,
) -> DeliveryState:
    """Write one attempt's answer onto its row (if we still hold it) and into the log."""
    attempt = delivery.attempts + 1
    decision = decide(receipt, attempt=attempt, policy=policy, now=now)
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery.id,
            Delivery.claim_token == token,
            Delivery.state == DeliveryState.CLAIMED,
        )
        .values(
            state=decision.state,
            attempts=attempt,
            not_before=decision.not_before,
            last_error=decision.error,
            smtp_code=receipt.code,
            smtp_response=receipt.response[:1000] or None,
            sent_at=now if decision.state is DeliveryState.SENT else None,
            claim_token=None,
            lease_until=None,
            updated_at=now,
        )
    )
    held = result.rowcount == 1  # type: ignore[attr-defined]
    session.execute(
        insert(DeliveryAttempt).values(
            delivery_id=delivery.id,
            attempt=attempt,
            outcome=decision.state.value if held else f"late-{receipt.outcome.value}",
            smtp_code=receipt.code,
            detail=(receipt.response[:1000] or None)
            if held
            else "answer came after the claim expired",
            worker=worker,
            at=now,
        )
    )
    return decision.state


def suppress_departed(
    session: Session, claimed: list[ClaimedDelivery], *, token: str, now: datetime
) -> list[ClaimedDelivery]:
    """Honour unsubscribes that came after the audience was frozen; return who may still receive."""
    subscriber_ids = [c.subscriber_id for c in claimed if c.subscriber_id is not None]
    sendable = still_sendable(session, subscriber_ids) if subscriber_ids else set()
    keep = [c for c in claimed if c.subscriber_id is None or c.subscriber_id in sendable]
    gone = [
        c.id for c in claimed if c.subscriber_id is not None and c.subscriber_id not in sendable
    ]
    if gone:
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(gone), Delivery.claim_token == token)
            .values(
                state=DeliveryState.SUPPRESSED,
                claim_token=None,
                lease_until=None,
                last_error="unsubscribed or suppressed before sending",
                updated_at=now,
            )
        )
        session.execute(
            insert(DeliveryAttempt),
            [
                {
                    "delivery_id": delivery_id,
                    "attempt": 0,
                    "outcome": "suppressed",
                    "detail": "no longer subscribed",
                    "at": now,
                }
                for delivery_id in gone
            ],
        )
    return keep


def running_sends(session: Session) -> list[int]:
    return list(
        session.scalars(select(Send.id).where(Send.state == SendState.RUNNING).order_by(Send.id))
    )


def drain(
    factory: sessionmaker[Session],
    channel: Channel,
    composer: Composer,
    *,
    config: DrainConfig,
    worker: str,
    clock: Callable[[], datetime] = utcnow,
    keep_going: Callable[[], bool] = lambda: True,
    throttle: Throttle | None = None,
) -> DrainStats:
    """Send every ready delivery of every running send, batch by batch, until none is left.

    Stops early when ``budget_seconds`` are spent or ``keep_going`` says so (the caller then
    queues another drain); rows claimed but not attempted are given back.
    """
    stats = DrainStats()
    deadline = time.monotonic() + config.budget_seconds
    lease = timedelta(seconds=config.lease_seconds)
    while True:
        with factory.begin() as session:
            send_ids = running_sends(session)
        progressed = False
        for send_id in send_ids:
            token = uuid.uuid4().hex
            now = clock()
            with factory.begin() as session:
                claimed = claim_batch(
                    session,
                    send_id,
                    token=token,
                    limit=config.batch_size,
                    lease_until=now + lease,
                    now=now,
                )
                if not claimed:
                    finish_if_complete(session, send_id, now)
                    continue
            progressed = True
            stats.batches += 1
            with factory.begin() as session:
                sendable = suppress_departed(session, claimed, token=token, now=now)
            stats.add(DeliveryState.SUPPRESSED, len(claimed) - len(sendable))
            _send_batch(
                factory,
                channel,
                composer,
                sendable,
                token=token,
                config=config,
                worker=worker,
                clock=clock,
                deadline=deadline,
                stats=stats,
                keep_going=keep_going,
                throttle=throttle,
            )
            break  # re-read running sends after every batch: earlier sends go first
        if not progressed:
            return stats
        if stats.out_of_time:
            return stats


def _send_batch(
    factory: sessionmaker[Session],
    channel: Channel,
    composer: Composer,
    batch: list[ClaimedDelivery],
    *,
    token: str,
    config: DrainConfig,
    worker: str,
    clock: Callable[[], datetime],
    deadline: float,
    stats: DrainStats,
    keep_going: Callable[[], bool],
    throttle: Throttle | None,
) -> None:
    """Send a claimed batch in order. Every ``recheck_seconds`` the rest of the batch is checked
    again for unsubscribes, and the lease is renewed, so neither goes stale on a slow server."""
    lease = timedelta(seconds=config.lease_seconds)
    pending = list(batch)
    send_id = batch[0].send_id
    with factory.begin() as session:
        send_rate = session.scalar(select(Send.rate_limit).where(Send.id == send_id))
    next_check = time.monotonic() + config.recheck_seconds
    while pending:
        if time.monotonic() > deadline or not keep_going():
            stats.out_of_time = True
            with factory.begin() as session:
                release_claims(session, token, [d.id for d in pending])
            return
        if time.monotonic() > next_check:
            with factory.begin() as session:
                if send_state(session, send_id) is not SendState.RUNNING:
                    # paused or cancelled: nothing more goes out; the rest waits (or is cancelled)
                    release_claims(session, token, [d.id for d in pending])
                    cancel_waiting_deliveries(session, clock(), send_id=send_id)
                    return
                renew_claims(session, token, clock() + lease)
                still = suppress_departed(session, pending, token=token, now=clock())
            stats.add(DeliveryState.SUPPRESSED, len(pending) - len(still))
            pending = still
            next_check = time.monotonic() + config.recheck_seconds
            continue
        delivery = pending.pop(0)
        try:
            envelope = composer.compose(delivery.send_id, delivery)
        except RenderError as error:
            receipt = Receipt(Outcome.FAILED, None, f"could not render: {error}")
        else:
            if throttle is None:
                receipt = channel.send(envelope)
            else:
                throttle.wait_for_turn(send_id, send_rate)
                with throttle.hold_domain(delivery.address):
                    receipt = channel.send(envelope)
        with factory.begin() as session:
            state = record_result(
                session,
                delivery,
                token=token,
                receipt=receipt,
                policy=config.policy,
                now=clock(),
                worker=worker,
            )
        stats.add(state)
