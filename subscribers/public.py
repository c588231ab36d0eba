"""What a subscriber does through the links in their messages; the web pages call only these.

Each takes the token from the link (see :mod:`subscribers.links`) and acts on the subscriber it
names, for the purpose it was signed for: an unsubscribe token cannot confirm, a confirm token
cannot unsubscribe. :class:`~distributor.errors.InvalidToken` for anything not genuine.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.errors import DistributorError, InvalidToken, NotFound
from distributor.outbox import EventKind, record_event
from distributor.vocabulary import Variant
from subscribers.models import (
    LOCALE_MAX,
    ChannelPreference,
    List,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from subscribers.returning import confirm_return
from subscribers.signup import SIGNUP_SOURCE
from subscribers.store import confirm, set_preferences, unsubscribe
from subscribers.tokens import TokenPurpose, TokenSigner

CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
# Unsubscribe and preferences links never expire: an old issue's footer must still work.


@dataclass(frozen=True)
class UnsubscribeLink:
    subscriber: Subscriber
    send_id: int | None  # the send whose message carried the link; None in older links


@dataclass(frozen=True)
class ListChoice:
    """A public list as a subscriber's preferences page shows it."""

    id: int
    name: str
    description: str
    subscribed: bool


@dataclass(frozen=True)
class Preferences:
    subscriber_id: int
    name: str
    status: SubscriberStatus
    channel: ChannelPreference
    format: Variant
    locale: str
    lists: tuple[ListChoice, ...]


def _subscriber(
    session: Session,
    signer: TokenSigner,
    token: str,
    purpose: TokenPurpose,
    max_age: int | None = None,
) -> Subscriber:
    return _subscriber_by_id(session, _ids(signer.verify(token, purpose, max_age=max_age), 1)[0])


def _ids(subject: str, most: int) -> list[int]:
    """The ids a subject names: ``<subscriber>``, or ``<subscriber>.<send>`` (unsubscribe)."""
    parts = subject.split(".")
    if len(parts) > most or not all(part.isdigit() for part in parts):
        raise InvalidToken("this link is not valid for this page", code="link.elsewhere")
    return [int(part) for part in parts]


def _subscriber_by_id(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound("this subscription no longer exists", code="link.subscription_gone")
    return subscriber


def unsubscribe_link_ids(signer: TokenSigner, token: str) -> tuple[int, int | None]:
    """The subscriber an unsubscribe link is for, and the send it came with (None in links
    older than that); a forged or other-purpose token is refused."""
    ids = _ids(signer.verify(token, TokenPurpose.UNSUBSCRIBE), 2)
    return ids[0], ids[1] if len(ids) == 2 else None


def read_unsubscribe_link(session: Session, signer: TokenSigner, token: str) -> UnsubscribeLink:
    """Who an unsubscribe link is for and which send it came with; changes nothing."""
    subscriber_id, send_id = unsubscribe_link_ids(signer, token)
    return UnsubscribeLink(_subscriber_by_id(session, subscriber_id), send_id)


def leave(session: Session, subscriber: Subscriber, list_id: int | None = None) -> bool:
    """Leave one list, or (``None``) everything; False when that was done already."""
    if list_id is None:
        if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
            return False
        unsubscribe(session, subscriber)
        return True
    subscription = session.get(Subscription, (subscriber.id, list_id))
    if subscription is None or subscription.status is SubscriptionStatus.UNSUBSCRIBED:
        return False
    subscription.status = SubscriptionStatus.UNSUBSCRIBED
    session.flush()
    record_event(
        session,
        EventKind.READER_UNSUBSCRIBED,
        {"subscriber_id": subscriber.id, "email": subscriber.email, "list_id": list_id},
    )
    return True


def unsubscribe_by_token(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """Unsubscribe from everything; following the link twice is harmless."""
    subscriber = read_unsubscribe_link(session, signer, token).subscriber
    leave(session, subscriber)
    return subscriber


@dataclass(frozen=True)
class ConfirmLink:
    subscriber_id: int
    request: tuple[int, str] | None  # a returning reader's request: the list and its code


def _confirm_link(signer: TokenSigner, token: str) -> ConfirmLink:
    """``<subscriber>`` (a sign-up's pending lists) or ``<subscriber>.<list>.<code>`` (a
    returning reader's request, :mod:`subscribers.returning`)."""
    parts = signer.verify(token, TokenPurpose.CONFIRM, max_age=CONFIRM_MAX_AGE).split(".")
    if len(parts) == 3 and parts[2].isalnum():
        return ConfirmLink(_ids(".".join(parts[:2]), 2)[0], (int(parts[1]), parts[2]))
    return ConfirmLink(_ids(".".join(parts), 1)[0], None)


def read_confirm_link(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """Who a confirm link is for; changes nothing (the page asks for a press of a button)."""
    return _subscriber_by_id(session, _confirm_link(signer, token).subscriber_id)


def confirm_by_token(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """Double opt-in: the person proves the address is theirs and becomes active (someone who
    had unsubscribed: on the one list of their request, see :mod:`subscribers.returning`)."""
    link = _confirm_link(signer, token)
    subscriber = _subscriber_by_id(session, link.subscriber_id)
    if link.request is None:
        confirm(session, subscriber)
    else:
        list_id, code = link.request
        confirm_return(session, subscriber, list_id, code, source=SIGNUP_SOURCE)
    return subscriber


def preferences_by_token(session: Session, signer: TokenSigner, token: str) -> Preferences:
    """What the person chose, and every public list with whether they are on it."""
    subscriber = _subscriber(session, signer, token, TokenPurpose.PREFERENCES)
    on = {
        sub.list_id
        for sub in subscriber.subscriptions
        if sub.status is not SubscriptionStatus.UNSUBSCRIBED
    }
    public = session.scalars(select(List).where(List.public).order_by(List.name))
    return Preferences(
        subscriber_id=subscriber.id,
        name=subscriber.name,
        status=subscriber.status,
        channel=subscriber.channel,
        format=subscriber.format,
        locale=subscriber.locale,
        lists=tuple(
            ListChoice(found.id, found.name, found.description, found.id in on) for found in public
        ),
    )


def update_preferences_by_token(
    session: Session,
    signer: TokenSigner,
    token: str,
    *,
    channel: ChannelPreference | None = None,
    format: Variant | None = None,
    locale: str | None = None,
    public_lists: Collection[int] | None = None,
) -> Subscriber:
    """Change how (email, WeChat, both) and what (full, digest, text) the person receives, the
    language of their pages and messages, and which public lists they are on (``public_lists``:
    the ids to be on; every other public list is left)."""
    subscriber = _subscriber(session, signer, token, TokenPurpose.PREFERENCES)
    set_preferences(subscriber, channel=channel, format=format)
    if locale is not None:
        if not locale or len(locale) > LOCALE_MAX:
            raise DistributorError(
                f"the language {locale[:40]!r} is not a language tag",
                code="prefs.language",
                language=locale[:40],
            )
        subscriber.locale = locale
    if public_lists is not None:
        _choose_public_lists(session, subscriber, set(public_lists))
    session.flush()
    return subscriber


def _choose_public_lists(session: Session, subscriber: Subscriber, wanted: set[int]) -> None:
    """Leave the public lists not wanted, join the wanted ones. Only an active person joins here
    (the link proves who they are); anyone else comes back through a sign-up and its
    confirmation, which is the one way back for someone who said stop."""
    may_join = subscriber.status is SubscriberStatus.ACTIVE
    current = {sub.list_id: sub for sub in subscriber.subscriptions}
    for list_id in session.scalars(select(List.id).where(List.public)):
        subscription = current.get(list_id)
        if list_id not in wanted:
            if subscription is not None:
                subscription.status = SubscriptionStatus.UNSUBSCRIBED
        elif may_join:
            if subscription is None:
                subscriber.subscriptions.append(
                    Subscription(list_id=list_id, status=SubscriptionStatus.ACTIVE)
                )
            else:
                subscription.status = SubscriptionStatus.ACTIVE
