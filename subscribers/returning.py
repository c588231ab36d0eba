"""A reader who said stop signs up again: nothing changes until they confirm from their address.

Anyone can type an address into a sign-up form, so a sign-up for someone who unsubscribed only
records a request (:class:`~subscribers.models.Resubscription`) and has one confirmation sent,
at most once a day; the link in it names the request by a random code, is used once, and only
then is the person active again, with an event row saying so.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from distributor.db import insert_ignoring_duplicates, utcnow
from distributor.errors import InvalidToken
from subscribers.models import (
    List,
    Resubscription,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from subscribers.store import come_back

REQUEST_INTERVAL = timedelta(days=1)  # at most one confirmation a day to someone who said stop
_REQUESTS = cast(Table, Resubscription.__table__)


@dataclass(frozen=True)
class ReturnRequest:
    """A request waiting for the person's confirmation: the list, and the link's subject part."""

    list_name: str
    list_id: int
    code: str

    @property
    def link_subject(self) -> str:
        """``<list>.<code>``, after the subscriber's id in the confirm link's token."""
        return f"{self.list_id}.{self.code}"


def request_return(
    session: Session, subscriber_id: int, list_id: int, *, now: datetime | None = None
) -> bool:
    """Record that the unsubscribed ``subscriber_id`` asked for ``list_id``; True when a
    confirmation is to be sent: no request of theirs is younger than :data:`REQUEST_INTERVAL`
    (then this one replaces it). Decided by the database, so two web processes agree."""
    now = now or utcnow()
    code = secrets.token_hex(16)
    values = {"list_id": list_id, "code": code, "requested_at": now}
    renewed = session.execute(
        update(_REQUESTS)
        .where(_REQUESTS.c.subscriber_id == subscriber_id)
        .where(_REQUESTS.c.requested_at <= now - REQUEST_INTERVAL)
        .values(**values)
        .returning(_REQUESTS.c.code)
    ).scalar()
    if renewed is None:
        insert_ignoring_duplicates(session, _REQUESTS, [{"subscriber_id": subscriber_id, **values}])
    stored = session.scalar(
        select(_REQUESTS.c.code).where(_REQUESTS.c.subscriber_id == subscriber_id)
    )
    return stored == code


def pending_return(session: Session, subscriber_id: int) -> ReturnRequest | None:
    """The request an unsubscribed person has to confirm; None when there is none."""
    row = session.execute(
        select(List.name, _REQUESTS.c.list_id, _REQUESTS.c.code)
        .join(List, List.id == _REQUESTS.c.list_id)
        .where(_REQUESTS.c.subscriber_id == subscriber_id)
    ).first()
    return None if row is None else ReturnRequest(row.name, row.list_id, row.code)


def confirm_return(
    session: Session, subscriber: Subscriber, list_id: int, code: str, *, source: str
) -> None:
    """The person followed the link of their request: active again on that list, logged.

    Following it twice is harmless; a link whose request was replaced, used or is for someone
    no longer unsubscribed is refused (:class:`InvalidToken`)."""
    request = session.get(Resubscription, subscriber.id)
    if (
        request is not None
        and request.list_id == list_id
        and hmac.compare_digest(request.code, code)
        and subscriber.status is SubscriberStatus.UNSUBSCRIBED
    ):
        session.delete(request)
        come_back(session, subscriber, list_id, source=source)
        return
    subscription = session.get(Subscription, (subscriber.id, list_id))
    if (
        request is None
        and subscriber.status is SubscriberStatus.ACTIVE
        and subscription is not None
        and subscription.status is SubscriptionStatus.ACTIVE
    ):
        return  # confirmed already
    raise InvalidToken(
        "this confirmation link is no longer valid: please subscribe again",
        code="link.confirmation_stale",
    )
