"""Who joined a list with an automation, and when: the moment each reader's steps count from.

Faces call :func:`record_joins` in the transaction that confirms a subscription (the sign-up
confirmation, an import with ``--welcome``, the API's ``welcome``), with the moment that
transaction began: every subscription it made active since is a join. Nothing is written for a
list without an automation, and a reader joins a list once (a second confirmation, or leaving
and coming back, does not start the steps again).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from distributor.automations.models import Automation, AutomationJoin
from distributor.db import UTCDateTime, insert_ignoring_duplicates, utcnow
from subscribers.models import Subscriber, SubscriberStatus, Subscription, SubscriptionStatus
from subscribers.public import confirm_by_token
from subscribers.tokens import TokenSigner


def record_joins(
    session: Session, since: datetime, now: datetime, *, subscriber_id: int | None = None
) -> None:
    """A join at ``now`` for each active subscription (of ``subscriber_id``, or anyone's) made
    or changed since ``since``, on a list that has an automation, of an active reader."""
    joined: list[Any] = [
        Subscription.list_id,
        Subscription.subscriber_id,
        literal(now, UTCDateTime()),
    ]
    rows = select(*joined).where(
        Subscription.status == SubscriptionStatus.ACTIVE,
        Subscription.updated_at >= since,
        Subscription.list_id.in_(select(Automation.list_id)),
        Subscription.subscriber_id.in_(
            select(Subscriber.id).where(Subscriber.status == SubscriberStatus.ACTIVE)
        ),
    )
    if subscriber_id is not None:
        rows = rows.where(Subscription.subscriber_id == subscriber_id)
    insert_ignoring_duplicates(
        session, AutomationJoin, rows=rows, columns=("list_id", "subscriber_id", "joined_at")
    )


def confirm_and_join(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """The sign-up confirmation (double opt-in), and the joins it makes, in one transaction: a
    confirmed reader is owed their welcome whatever happens after the commit."""
    since = utcnow()
    subscriber = confirm_by_token(session, signer, token)
    record_joins(session, since, utcnow(), subscriber_id=subscriber.id)
    return subscriber
