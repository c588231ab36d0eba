"""What staff change for one person at their request, in the dashboard: stop or restart their
mail with the person's consent written down, and the lists, tags and attributes they carry.

Every status change is logged with the note staff give (who asked, how): the person's word is
the only thing that moves them on or off, and the log is the proof of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.errors import DistributorError
from subscribers.models import (
    SOURCE_MAX,
    TAG_NAME_MAX,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Tag,
)
from subscribers.store import StatusChange, get_list, log_status_changes, unsubscribe
from subscribers.text import shorten


def required_note(note: str) -> str:
    """What staff write of why they changed a reader (who asked, how): kept in the history."""
    text = note.strip()
    if not text:
        raise DistributorError("a note is required: who asked for it, and how", code="care.note")
    return text


def unsubscribe_at_request(
    session: Session, subscriber: Subscriber, *, note: str, source: str
) -> None:
    """The person asked staff to stop (by phone, in person): unsubscribed from everything, the
    note logged."""
    text = required_note(note)
    if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
        raise DistributorError(
            f"{shorten(subscriber.email)} is unsubscribed already",
            code="care.unsubscribed_already",
            email=shorten(subscriber.email),
        )
    old = subscriber.status
    unsubscribe(session, subscriber)
    change = StatusChange(subscriber.id, old, SubscriberStatus.UNSUBSCRIBED, text, source)
    log_status_changes(session, [change])
    session.refresh(subscriber)


def resubscribe_at_request(
    session: Session,
    subscriber: Subscriber,
    lists: Sequence[str],
    *,
    note: str,
    source: str,
) -> None:
    """The person who unsubscribed asked staff to send again: active on ``lists``, their consent
    (the note) recorded. A bounce or complaint is lifted with the suppression tools instead."""
    text = required_note(note)
    if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
        raise DistributorError(
            f"{shorten(subscriber.email)} is {subscriber.status.value}, not unsubscribed",
            code="care.not_unsubscribed",
            email=shorten(subscriber.email),
            status=subscriber.status,
        )
    if not lists:
        raise DistributorError(
            "choose at least one list to send them again", code="care.no_lists"
        )
    change = StatusChange(
        subscriber.id, SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.ACTIVE, text, source
    )
    log_status_changes(session, [change])
    session.refresh(subscriber)
    subscriber.consent_source = f"{source}: {text}"[:SOURCE_MAX]
    subscriber.consent_at = utcnow()
    set_lists(session, subscriber, lists)


def set_lists(session: Session, subscriber: Subscriber, names: Sequence[str]) -> None:
    """On exactly ``names``: joined (pending for a person not confirmed yet), the others left.
    A person who said stop joins nothing here."""
    wanted = {get_list(session, name).id for name in names}
    if wanted and subscriber.status is not SubscriberStatus.ACTIVE and (
        subscriber.status is not SubscriberStatus.PENDING
    ):
        raise DistributorError(
            f"{shorten(subscriber.email)} is {subscriber.status.value}: they join no list "
            "until they are sent again",
            code="care.no_join",
            email=shorten(subscriber.email),
            status=subscriber.status,
        )
    joined = (
        SubscriptionStatus.ACTIVE
        if subscriber.status is SubscriberStatus.ACTIVE
        else SubscriptionStatus.PENDING
    )
    current = {sub.list_id: sub for sub in subscriber.subscriptions}
    for list_id, subscription in current.items():
        if list_id not in wanted:
            subscription.status = SubscriptionStatus.UNSUBSCRIBED
        elif subscription.status is not SubscriptionStatus.ACTIVE:
            subscription.status = joined
    for list_id in wanted - set(current):
        subscriber.subscriptions.append(Subscription(list_id=list_id, status=joined))
    session.flush()


def set_tags(session: Session, subscriber: Subscriber, names: Sequence[str]) -> None:
    """Carries exactly the tags ``names`` (made if new)."""
    clean = list(dict.fromkeys(name.strip() for name in names if name.strip()))
    for name in clean:
        if len(name) > TAG_NAME_MAX:
            raise DistributorError(
                f"a tag is at most {TAG_NAME_MAX} characters: {shorten(name)}",
                code="care.tag_long",
                most=TAG_NAME_MAX,
                tag=shorten(name),
            )
    known = {tag.name: tag for tag in session.scalars(select(Tag).where(Tag.name.in_(clean)))}
    for name in clean:
        if name not in known:
            known[name] = Tag(name=name)
            session.add(known[name])
    subscriber.tags = [known[name] for name in clean]
    session.flush()


def set_attributes(subscriber: Subscriber, attributes: Mapping[str, str]) -> None:
    """Exactly these attributes (key: value, as text); an empty key is refused."""
    if any(not key.strip() for key in attributes):
        raise DistributorError("an attribute needs a name", code="care.attribute_name")
    subscriber.attributes = {key.strip(): value for key, value in attributes.items()}
