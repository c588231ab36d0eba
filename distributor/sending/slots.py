"""A fixed number of dispatcher slots, each held by at most one live drain task.

The tick marks a free slot 'queued' and sends one task for it; the task takes the slot over with a
conditional UPDATE. A duplicated task message finds the slot held and exits; a lost one leaves the
slot's short lease to run out, and the next tick queues it again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from distributor.sending.models import DispatchSlot

QUEUED = "queued"


def ensure_slots(session: Session, count: int) -> None:
    existing = set(session.scalars(select(DispatchSlot.slot)))
    for slot in range(count):
        if slot not in existing:
            session.add(DispatchSlot(slot=slot))
    session.flush()


def reserve_free_slots(
    session: Session, *, count: int, now: datetime, grace: timedelta
) -> list[int]:
    """Mark every free slot (of the first ``count``) as queued; the caller sends one task each."""
    ensure_slots(session, count)
    rows = session.execute(
        update(DispatchSlot)
        .where(
            DispatchSlot.slot < count,
            or_(DispatchSlot.lease_until.is_(None), DispatchSlot.lease_until < now),
        )
        .values(holder=QUEUED, lease_until=now + grace)
        .returning(DispatchSlot.slot)
    )
    return sorted(row.slot for row in rows)


def take_slot(session: Session, slot: int, holder: str, *, now: datetime, lease: timedelta) -> bool:
    result = session.execute(
        update(DispatchSlot)
        .where(
            DispatchSlot.slot == slot,
            or_(
                DispatchSlot.holder == QUEUED,
                DispatchSlot.lease_until.is_(None),
                DispatchSlot.lease_until < now,
            ),
        )
        .values(holder=holder, lease_until=now + lease)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def renew_slot(session: Session, slot: int, holder: str, *, until: datetime) -> bool:
    result = session.execute(
        update(DispatchSlot)
        .where(DispatchSlot.slot == slot, DispatchSlot.holder == holder)
        .values(lease_until=until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_slot(session: Session, slot: int, holder: str) -> None:
    session.execute(
        update(DispatchSlot)
        .where(DispatchSlot.slot == slot, DispatchSlot.holder == holder)
        .values(holder=None, lease_until=None)
    )


def hand_over_slot(
    session: Session, slot: int, holder: str, *, now: datetime, grace: timedelta
) -> bool:
    """Pass a held slot to a task about to be queued, without letting the tick take it."""
    result = session.execute(
        update(DispatchSlot)
        .where(DispatchSlot.slot == slot, DispatchSlot.holder == holder)
        .values(holder=QUEUED, lease_until=now + grace)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
