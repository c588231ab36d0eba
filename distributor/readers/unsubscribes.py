"""Unsubscribes through a message's link, counted against the send the message came from.

The link names the subscriber and, since sends were named in it, the send (see
:meth:`subscribers.links.PublicLinks.unsubscribe`). Each unsubscribe that changed something is an
event, so a send's status can say how many people it made leave.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from distributor.errors import NotFound
from distributor.readers.models import UnsubscribeEvent
from distributor.sending.models import Send
from subscribers.models import List, SubscriberStatus, Subscription, SubscriptionStatus
from subscribers.tokens import TokenSigner


@dataclass(frozen=True)
class ListOption:
    id: int
    name: str


@dataclass(frozen=True)
class UnsubscribePage:
    """What the unsubscribe page offers: everything, or one of the lists the send went to that
    the person is still on."""

    subscriber_id: int
    name: str
    locale: str
    already: bool  # unsubscribed from everything already
    lists: tuple[ListOption, ...]


def unsubscribe_page(session: Session, signer: TokenSigner, token: str) -> UnsubscribePage:
    """Read-only: mail scanners fetch every link, so looking never unsubscribes."""
    from subscribers.public import read_unsubscribe_link  # here: a status counts without it

    link = read_unsubscribe_link(session, signer, token)
    subscriber = link.subscriber
    send = session.get(Send, link.send_id) if link.send_id is not None else None
    names = list(send.audience.lists) if send is not None else []
    options = session.execute(
        select(List.id, List.name)
        .join(Subscription, Subscription.list_id == List.id)
        .where(
            Subscription.subscriber_id == subscriber.id,
            Subscription.status != SubscriptionStatus.UNSUBSCRIBED,
            List.name.in_(names),
        )
        .order_by(List.name)
    )
    return UnsubscribePage(
        subscriber_id=subscriber.id,
        name=subscriber.name,
        locale=subscriber.locale,
        already=subscriber.status is SubscriberStatus.UNSUBSCRIBED,
        lists=tuple(ListOption(list_id, name) for list_id, name in options),
    )


@dataclass(frozen=True)
class Unsubscribed:
    locale: str
    list_name: str | None  # None: from everything


def unsubscribe_from_link(
    session: Session, signer: TokenSigner, token: str, *, list_id: int | None = None
) -> Unsubscribed:
    """Leave ``list_id`` or everything, and count it against the link's send. Doing it twice
    changes nothing and records nothing the second time."""
    from subscribers.public import leave, read_unsubscribe_link, unsubscribe_link_ids
    from subscribers.store import leave_everything

    if list_id is None:
        subscriber_id, send_id = unsubscribe_link_ids(signer, token)
        left = leave_everything(session, subscriber_id)
        if left is None:
            raise NotFound("this subscription no longer exists", code="link.subscription_gone")
        locale, changed = left
        list_name = None
    else:
        link = read_unsubscribe_link(session, signer, token)
        subscriber_id, send_id, locale = link.subscriber.id, link.send_id, link.subscriber.locale
        found = session.get(List, list_id)
        if found is None:
            raise NotFound("that list no longer exists", code="list.gone")
        list_name = found.name
        changed = leave(session, link.subscriber, list_id)
    if changed:
        # One statement, no object (providers send these by the thousand); the send is named
        # if it still exists.
        sent = select(Send.id).where(Send.id == send_id).scalar_subquery()
        session.execute(
            insert(UnsubscribeEvent).values(
                subscriber_id=subscriber_id,
                send_id=sent if send_id is not None else None,
                list_id=list_id,
            )
        )
    return Unsubscribed(locale, list_name)


def unsubscribes_by_send(session: Session, send_id: int) -> int:
    """How many people left (a list or everything) through the links of this send's messages."""
    count = session.scalar(
        select(func.count(func.distinct(UnsubscribeEvent.subscriber_id))).where(
            UnsubscribeEvent.send_id == send_id
        )
    )
    return int(count or 0)
