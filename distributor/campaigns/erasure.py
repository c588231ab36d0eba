"""Erasing a person at their request (personal-data deletion): their subscriber row, lists,
tags, status log and engagement go; what was sent stays counted, but no longer says to whom.

Their deliveries keep their state (the per-send counts do not move) with the address, name and
server answers (which quote the address) replaced; bounce reports lose their link to them and
their raw bytes. The staff audit keeps that an erasure happened, not who it was.
"""

from __future__ import annotations

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.orm import Session

from distributor.bounces.models import FeedbackMessage
from distributor.readers.models import EngagementEvent
from distributor.sending.models import Delivery, DeliveryAttempt
from distributor.staff.models import AuditEntry
from subscribers.store import get_subscriber

ERASED = "erased"


def erase_subscriber(session: Session, subscriber_id: int) -> int:
    """Erase subscriber ``subscriber_id``; returns how many deliveries were made anonymous."""
    subscriber = get_subscriber(session, subscriber_id)
    deliveries = select(Delivery.id).where(Delivery.subscriber_id == subscriber_id)
    session.execute(
        update(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id.in_(deliveries))
        .values(detail=None)
    )
    anonymous = session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber_id)
        .values(
            # Unique per send and channel, as the address was; it names nobody.
            address=literal(f"{ERASED}-").concat(cast(Delivery.id, String)),
            name=None,
            subscriber_id=None,
            last_error=None,
            smtp_response=None,
        )
    )
    session.execute(
        update(FeedbackMessage)
        .where(FeedbackMessage.subscriber_id == subscriber_id)
        .values(subscriber_id=None, raw=None, diagnostic=None)
    )
    session.execute(delete(EngagementEvent).where(EngagementEvent.subscriber_id == subscriber_id))
    session.execute(
        update(AuditEntry)
        .where(AuditEntry.target_kind == "subscriber", AuditEntry.target_id == str(subscriber_id))
        .values(detail={})
    )
    session.delete(subscriber)
    session.flush()
    return int(anonymous.rowcount)  # type: ignore[attr-defined]

