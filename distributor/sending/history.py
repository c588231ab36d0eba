"""What was sent to one subscriber: their deliveries, newest first (a staff page shows them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.issues.models import Issue
from distributor.sending.models import Delivery, Send

HISTORY_SHOWN = 100


@dataclass(frozen=True)
class SentToSubscriber:
    send_id: int
    issue_number: int
    address: str
    variant: str
    state: str
    attempts: int
    detail: str | None
    sent_at: datetime | None


def subscriber_history(
    session: Session, subscriber_id: int, limit: int = HISTORY_SHOWN
) -> list[SentToSubscriber]:
    rows = session.execute(
        select(Delivery, Issue.number)
        .join(Send, Send.id == Delivery.send_id)
        .join(Issue, Issue.id == Send.issue_id)
        .where(Delivery.subscriber_id == subscriber_id)
        .order_by(Delivery.id.desc())
        .limit(limit)
    )
    return [
        SentToSubscriber(
            d.send_id,
            number,
            d.address,
            d.variant.value,
            d.state.value,
            d.attempts,
            d.last_error or d.smtp_response,
            d.sent_at,
        )
        for d, number in rows
    ]
