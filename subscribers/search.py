"""Find subscribers by a part of their address or name, for the staff pages."""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from subscribers.models import Subscriber, Subscription


def search_subscribers(
    session: Session, text: str, *, after_id: int = 0, limit: int = 50
) -> list[Subscriber]:
    """Subscribers whose address or name contains ``text`` (any case), in id order; page with
    ``after_id``. Empty ``text``: everyone."""
    query = (
        select(Subscriber)
        .where(Subscriber.id > after_id)
        .options(selectinload(Subscriber.subscriptions).selectinload(Subscription.mailing_list))
        .order_by(Subscriber.id)
        .limit(limit)
    )
    text = text.strip().lower()
    if text:
        query = query.where(
            or_(
                Subscriber.email_key.contains(text, autoescape=True),
                func.lower(Subscriber.name).contains(text, autoescape=True),
            )
        )
    return list(session.scalars(query))
