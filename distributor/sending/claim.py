"""Claiming deliveries: one conditional UPDATE per batch, so two workers never take the same row.

PostgreSQL skips rows another worker has locked (``FOR UPDATE SKIP LOCKED``); SQLite serialises
writers, so the same single statement is atomic there too. A claim is a lease: a worker that dies
stops renewing it, and :func:`sweep_expired_claims` sends those rows out again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, insert, or_, select, update
from sqlalchemy.orm import Session

from distributor.sending.models import Delivery, DeliveryAttempt, DeliveryState, Send, SendState


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    send_id: int
    subscriber_id: int | None
    address: str
    name: str | None
    variant: str
    attempts: int


def _ready(send_id: int, state: DeliveryState, now: datetime) -> ColumnElement[bool]:
    condition = and_(Delivery.send_id == send_id, Delivery.state == state)
    if state is DeliveryState.DEFERRED:
        condition = and_(condition, or_(Delivery.not_before.is_(None), Delivery.not_before <= now))
    return condition


def claimable(send_id: int, now: datetime) -> ColumnElement[bool]:
    """The one definition of 'ready to go out now' for a send's deliveries."""
    return or_(
        _ready(send_id, DeliveryState.PENDING, now), _ready(send_id, DeliveryState.DEFERRED, now)
    )


def claim_batch(
    session: Session,
    send_id: int,
    *,
    token: str,
    limit: int,
    lease_until: datetime,
    now: datetime,
) -> list[ClaimedDelivery]:
    """Take up to ``limit`` ready deliveries of ``send_id`` for this worker: retries that are due
    first, then pending rows, each lowest id first. One state per statement, so each walks the
    (send_id, state, id) index in order instead of sorting every open row of a large send."""
    claimed: list[ClaimedDelivery] = []
    for state in (DeliveryState.DEFERRED, DeliveryState.PENDING):
        if len(claimed) == limit:
            break
        # A materialised CTE, not `id IN (subquery)`: PostgreSQL may run such a subquery again
        # per row and so take more than LIMIT rows.
        candidates = (
            select(Delivery.id)
            .where(_ready(send_id, state, now))
            .order_by(Delivery.id)
            .limit(limit - len(claimed))
            .with_for_update(skip_locked=True)
            .cte("candidates")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        rows = session.execute(
            update(Delivery)
            .where(
                Delivery.id == candidates.c.id,
                Delivery.state == state,
                select(Send.state).where(Send.id == send_id).scalar_subquery() == SendState.RUNNING,
            )
            .values(state=DeliveryState.CLAIMED, claim_token=token, lease_until=lease_until)
            .returning(*_CLAIMED_COLUMNS)
        ).all()
        claimed.extend(ClaimedDelivery(*row) for row in rows)
    return sorted(claimed, key=lambda delivery: delivery.id)


_CLAIMED_COLUMNS = (
    Delivery.id,
    Delivery.send_id,
    Delivery.subscriber_id,
    Delivery.address,
    Delivery.name,
    Delivery.variant,
    Delivery.attempts,
)


def renew_claims(session: Session, token: str, lease_until: datetime) -> int:
    """Extend this worker's lease on rows it still holds: a slow server must not cause a sweep."""
    result = session.execute(
        update(Delivery)
        .where(Delivery.claim_token == token, Delivery.state == DeliveryState.CLAIMED)
        .values(lease_until=lease_until)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def release_claims(session: Session, token: str, ids: Sequence[int]) -> int:
    """Give back rows this worker claimed but never attempted (e.g. its time budget ran out).

    Nothing was sent for them, so they return to ``deferred`` due now: ready for the next claim.
    """
    if not ids:
        return 0
    result = session.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(ids),
            Delivery.claim_token == token,
            Delivery.state == DeliveryState.CLAIMED,
        )
        .values(state=DeliveryState.DEFERRED, not_before=None, claim_token=None, lease_until=None)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def sweep_expired_claims(session: Session, now: datetime, *, limit: int = 10_000) -> int:
    """Rows whose worker died go out again. A batch is sent in id order with each answer recorded
    before the next message, so only its lowest unrecorded row can have reached the server: that
    one is flagged as a possible duplicate."""
    expired = session.execute(
        select(Delivery.id, Delivery.attempts, Delivery.claim_token)
        .where(Delivery.state == DeliveryState.CLAIMED, Delivery.lease_until < now)
        .order_by(Delivery.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    if not expired:
        return 0
    first_of_batch: dict[str | None, int] = {}
    for row in expired:
        first_of_batch.setdefault(row.claim_token, row.id)
    in_flight = set(first_of_batch.values())
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_([row.id for row in expired]))
        .values(
            state=DeliveryState.DEFERRED,
            not_before=now,
            claim_token=None,
            lease_until=None,
            reclaims=Delivery.reclaims + 1,
            possible_duplicate=Delivery.id.in_(in_flight) | Delivery.possible_duplicate,
            last_error="the worker holding this delivery stopped; sending it again",
        )
    )
    session.execute(
        insert(DeliveryAttempt),
        [
            {
                "delivery_id": row.id,
                "attempt": row.attempts,
                "outcome": "reclaimed",
                "detail": "claim lease expired (worker lost)"
                + ("; may have reached the server" if row.id in in_flight else ""),
                "at": now,
            }
            for row in expired
        ],
    )
    return len(expired)
