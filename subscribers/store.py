"""Subscribers and lists as the staff keep them: add, find, page through, unsubscribe; lists.

What a subscriber does themselves through a link (confirm, unsubscribe, preferences) is in
:mod:`subscribers.public`; both sides change statuses only through the functions here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, bindparam, func, insert, select, tuple_, update
from sqlalchemy.orm import Session, selectinload

from distributor.db import like_prefix, prefix_key, utcnow
from distributor.errors import (
    AddressTaken,
    DistributorError,
    DuplicateList,
    InvalidAddress,
    InvalidToken,
    NotFound,
    UnknownList,
)
from distributor.outbox import EventKind, record_event
from distributor.vocabulary import EMAIL_VARIANTS, FailureCause, Variant
from subscribers.address import normalise_address
from subscribers.bulk import write_rows
from subscribers.csvfile import ColumnMap, check_label, parse_row
from subscribers.models import (
    DESCRIPTION_MAX,
    LIST_NAME_MAX,
    SOURCE_MAX,
    SUPPRESSED,
    ChannelPreference,
    List,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from subscribers.query import subscriber_has
from subscribers.text import one_line, shorten

ADD_SOURCE = "distributor subscribers add"


@dataclass(frozen=True)
class Added:
    subscriber: Subscriber
    created: bool  # False: the address was known; its details were updated, its status kept


@dataclass(frozen=True)
class SubscriberPage:
    subscribers: list[Subscriber]  # with subscriptions and their lists loaded
    total: int  # how many match, over all pages


@dataclass(frozen=True)
class ListSummary:
    name: str
    description: str
    created_at: datetime
    active: int
    pending: int
    unsubscribed: int
    id: int = 0
    public: bool = False  # anyone may sign up on its page


# --- subscribers ---------------------------------------------------------------------------------


def find_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber with this address, however it is capitalised.

    An address stored under an older, looser rule (``hugang@qq.com.``) is found as typed, so
    that it can be corrected with :func:`change_address`.
    """
    typed = unicodedata.normalize("NFKC", email).strip().lower()
    try:
        keys = {normalise_address(email).key, typed}
    except InvalidAddress:
        keys = {typed}
    found = session.scalars(select(Subscriber).where(Subscriber.email_key.in_(keys))).all()
    if not found:
        raise NotFound(
            f"no subscriber has the address {shorten(email)}",
            code="subscriber.unknown_address",
            address=shorten(email),
        )
    return min(found, key=lambda subscriber: subscriber.email_key != typed)


def change_address(session: Session, email: str, new_email: str) -> Subscriber:
    """Correct the address of the subscriber at ``email``: the same person, with the same ID,
    status, lists, tags and delivery history, now reached at ``new_email``.

    Refused when another subscriber has ``new_email``: two people are not merged by a correction.
    Messages already planned for a send in progress keep going to the old address.
    """
    subscriber = find_subscriber(session, email)
    address = normalise_address(new_email)
    holder = session.scalar(select(Subscriber.id).where(Subscriber.email_key == address.key))
    if holder is not None and holder != subscriber.id:
        raise AddressTaken(
            f"another subscriber (ID {holder}) has the address {address.email}",
            code="subscriber.address_taken",
            holder=holder,
            address=address.email,
        )
    subscriber.email, subscriber.email_key = address.email, address.key
    session.flush()
    return subscriber


def add_subscriber(
    session: Session,
    email: str,
    *,
    name: str | None = None,
    lists: Sequence[str] = (),
    openid: str | None = None,
    channel: ChannelPreference | None = None,
    format: Variant | None = None,
) -> Added:
    """Add a confirmed subscriber, or update a known one: a one-row import, with its rules.

    The staff vouch for a new address (active at once); a known address keeps its status, so
    nobody who unsubscribed is signed up again behind their back.
    """
    given = {"email": email, "name": name, "openid": openid, "channel": channel, "format": format}
    cells = {field: value for field, value in given.items() if value is not None}
    columns = ColumnMap(fields=tuple(cells))
    row = parse_row(list(cells.values()), columns, line=0)
    list_ids = {list_name: get_list(session, list_name).id for list_name in lists}
    row = row._replace(lists=tuple((each, SubscriptionStatus.ACTIVE) for each in list_ids))
    by_address = select(Subscriber).where(Subscriber.email_key == row.email_key)
    known = session.scalar(by_address) is not None
    write_rows(
        session.connection(),
        [row],
        columns=columns.columns,
        source=ADD_SOURCE,
        list_ids=list_ids,
        tag_ids={},
    )
    subscriber = session.scalars(by_address.execution_options(populate_existing=True)).one()
    if not known:
        _announce(session, EventKind.READER_SUBSCRIBED, subscriber, lists=list(list_ids))
    return Added(subscriber, created=not known)


def _announce(session: Session, kind: EventKind, subscriber: Subscriber, **detail: object) -> None:
    """Tell the webhooks listening (distributor.outbox), in the transaction of the change."""
    record_event(
        session, kind, {"subscriber_id": subscriber.id, "email": subscriber.email, **detail}
    )


def request_subscription(
    session: Session, email: str, *, lists: Sequence[str] = (), name: str | None = None, source: str
) -> Subscriber:
    """The person asks to (re-)subscribe: they stay pending until they follow the confirm link.

    Send them ``PublicLinks.confirm(subscriber.id)``. Staff's way back for someone unsubscribed,
    bounced or complained (a pending person is sent nothing but that link); a stranger's sign-up
    on the web goes through :mod:`subscribers.signup`, which never calls this for them.
    """
    address = normalise_address(email)
    targets = [get_list(session, list_name) for list_name in lists]
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == address.key))
    if subscriber is None:
        subscriber = Subscriber(email=address.email, email_key=address.key, attributes={})
        session.add(subscriber)
    if name is not None:
        subscriber.name = one_line(name)
    if subscriber.status is not SubscriberStatus.ACTIVE:
        subscriber.status = SubscriberStatus.PENDING
    subscriber.consent_source = source
    current = {sub.list_id: sub for sub in subscriber.subscriptions}
    for target in targets:
        subscription = current.get(target.id)
        if subscription is None:
            subscriber.subscriptions.append(
                Subscription(mailing_list=target, status=SubscriptionStatus.PENDING)
            )
        elif subscription.status is not SubscriptionStatus.ACTIVE:
            subscription.status = SubscriptionStatus.PENDING
    session.flush()
    _announce(session, EventKind.READER_SUBSCRIBED, subscriber, lists=list(lists), pending=True)
    return subscriber


def confirm(session: Session, subscriber: Subscriber) -> None:
    """The person followed their confirmation link: active, with every list they asked for."""
    if subscriber.status in SUPPRESSED:
        # They unsubscribed (or bounced) after asking: an old link must not undo that.
        raise InvalidToken(
            "this confirmation link is no longer valid: please subscribe again",
            code="link.confirmation_stale",
        )
    subscriber.status = SubscriberStatus.ACTIVE
    subscriber.consent_at = utcnow()
    _set_subscriptions(
        session, subscriber, SubscriptionStatus.ACTIVE, only=SubscriptionStatus.PENDING
    )
    _announce(session, EventKind.READER_CONFIRMED, subscriber)


def come_back(session: Session, subscriber: Subscriber, list_id: int, *, source: str) -> None:
    """Someone who unsubscribed confirmed, from their own address, a new sign-up for one list:
    active again on that list only, the change logged (the one way back from an unsubscribe)."""
    if subscriber.status is not SubscriberStatus.UNSUBSCRIBED:
        raise DistributorError(
            f"{shorten(subscriber.email)} is {subscriber.status.value}",
            code="subscriber.is_status",
            email=shorten(subscriber.email),
            status=subscriber.status,
        )
    name = session.scalar(select(List.name).where(List.id == list_id))
    _log_status(
        session,
        subscriber.id,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.ACTIVE,
        reason=f"confirmed a new sign-up for the list '{name}' from their own address",
        source=source,
    )
    session.refresh(subscriber)
    subscriber.consent_source = source
    subscriber.consent_at = utcnow()
    subscription = session.get(Subscription, (subscriber.id, list_id))
    if subscription is None:
        active = SubscriptionStatus.ACTIVE
        session.add(Subscription(subscriber_id=subscriber.id, list_id=list_id, status=active))
    else:
        subscription.status = SubscriptionStatus.ACTIVE
    session.flush()
    _announce(session, EventKind.READER_CONFIRMED, subscriber, list=name)


def unsubscribe(session: Session, subscriber: Subscriber) -> None:
    """Stop everything for this person, on every list, until they subscribe again themselves
    (their lists are reset even if they had left already: staff asked for it)."""
    session.flush()
    _unsubscribe_rows(session, subscriber.id, again=True)
    session.expire(subscriber, ["status", "updated_at"])


_SUBSCRIBERS = cast(Table, Subscriber.__table__)


def leave_everything(session: Session, subscriber_id: int) -> tuple[str, bool] | None:
    """Unsubscribe a person from everything by id: their language, and whether it changed
    anything (following a link twice is harmless); None if there is no such person.

    The one-click path, that mail providers call by the thousand: no object loaded, the rows
    updated only when it changes (the locale returned with it)."""
    locale = _unsubscribe_rows(session, subscriber_id, again=False)
    if locale is not None:
        return locale, True
    locale = session.scalar(select(_SUBSCRIBERS.c.locale).where(_SUBSCRIBERS.c.id == subscriber_id))
    return None if locale is None else (locale, False)


def _unsubscribe_rows(session: Session, subscriber_id: int, *, again: bool) -> str | None:
    """The person and all their lists set unsubscribed, in two statements (``again``: even if
    they had left already); their locale, or None when nothing was changed."""
    now = utcnow()
    statement = update(_SUBSCRIBERS).where(_SUBSCRIBERS.c.id == subscriber_id)
    if not again:
        statement = statement.where(_SUBSCRIBERS.c.status != SubscriberStatus.UNSUBSCRIBED)
    locale: str | None = session.execute(
        statement.values(status=SubscriberStatus.UNSUBSCRIBED, updated_at=now).returning(
            _SUBSCRIBERS.c.locale
        )
    ).scalar()
    if locale is not None:
        session.execute(  # lists already loaded in the session follow ("evaluate": no query)
            update(Subscription)
            .where(Subscription.subscriber_id == subscriber_id)
            .values(status=SubscriptionStatus.UNSUBSCRIBED, updated_at=now),
            execution_options={"synchronize_session": "evaluate"},
        )
        record_event(session, EventKind.READER_UNSUBSCRIBED, {"subscriber_id": subscriber_id})
    return locale


_STATUSES_AND_KEYS = (
    select(_SUBSCRIBERS.c.id, _SUBSCRIBERS.c.status, _SUBSCRIBERS.c.email_key)
    .where(_SUBSCRIBERS.c.id.in_(bindparam("b_ids", expanding=True)))
    .order_by(_SUBSCRIBERS.c.id)
    .with_for_update()
)
_SET_STATUS = (
    update(_SUBSCRIBERS)
    .where(_SUBSCRIBERS.c.id == bindparam("b_id"))
    .values(status=bindparam("b_status"), updated_at=bindparam("b_at"))
)
_LOG_STATUS = insert(cast(Table, SubscriberEvent.__table__))


@dataclass(frozen=True)
class Suppression:
    """A reason to stop mailing a person: their address bounced, or they complained."""

    subscriber_id: int
    status: SubscriberStatus  # one of SUPPRESSED
    address: str  # the address that bounced: a person since readdressed is not suppressed
    reason: str
    source: str
    cause: FailureCause | None = None  # why the message did not arrive (a bounce's)
    evidence: str | None = None  # the remote server's words
    send_id: int | None = None  # the send it came from


def suppress_all(session: Session, suppressions: Sequence[Suppression]) -> list[bool]:
    """Stop sending to these people because their address bounces or they complained, with the
    reason logged; each only while they still have its ``address`` (the one that bounced: a
    corrected address is not suppressed for the old one's bounces). Their lists are kept (the
    status alone is the switch), so lifting the suppression restores them.

    Taken in order, set-based (one locked read, one update, one insert of the log, whatever the
    number: the feedback loop applies a mailbox's worth at once). For each, False when nothing
    changed: the person was suppressed already, by an earlier one of the list too."""
    if not suppressions:
        return []
    for each in suppressions:
        if each.status not in SUPPRESSED:
            raise DistributorError(
                f"{each.status.value} is not a suppressed status",
                code="subscriber.not_suppression",
                status=each.status,
            )
    ids = sorted({each.subscriber_id for each in suppressions})  # one lock order for everyone
    current = {
        row.id: (row.status, row.email_key)
        for row in session.connection().execute(_STATUSES_AND_KEYS, {"b_ids": ids})
    }
    changes: list[StatusChange | None] = []
    for each in suppressions:
        status, key = current.get(each.subscriber_id, (None, None))
        if status is None or status in SUPPRESSED or key != each.address.lower():
            changes.append(None)
            continue
        changes.append(
            StatusChange(
                each.subscriber_id,
                status,
                each.status,
                each.reason,
                each.source,
                each.cause,
                each.evidence,
                each.send_id,
            )
        )
        current[each.subscriber_id] = (each.status, key)
    log_status_changes(session, [change for change in changes if change is not None])
    return [change is not None for change in changes]


def unsuppress(session: Session, email: str, *, reason: str, source: str) -> Subscriber:
    """Staff knowingly lift a bounce or complaint suppression (the address was fixed, the
    complaint was a mistake): active again, with the reason logged. An unsubscribe is not
    lifted here: only the person can undo it, by subscribing again."""
    if not reason.strip():
        raise DistributorError(
            "a reason is required to lift a suppression", code="suppression.no_reason"
        )
    subscriber = find_subscriber(session, email)
    if subscriber.status not in (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED):
        raise DistributorError(
            f"{shorten(subscriber.email)} is {subscriber.status.value}, not suppressed by a "
            "bounce or a complaint",
            code="suppression.not_suppressed",
            email=shorten(subscriber.email),
            status=subscriber.status,
        )
    _log_status(
        session,
        subscriber.id,
        subscriber.status,
        SubscriberStatus.ACTIVE,
        reason=reason,
        source=source,
    )
    session.refresh(subscriber)
    return subscriber


def status_history(session: Session, subscriber_id: int) -> list[SubscriberEvent]:
    return list(
        session.scalars(
            select(SubscriberEvent)
            .where(SubscriberEvent.subscriber_id == subscriber_id)
            .order_by(SubscriberEvent.id)
        )
    )


class StatusChange(NamedTuple):
    subscriber_id: int
    old: SubscriberStatus
    new: SubscriberStatus
    reason: str
    source: str
    cause: FailureCause | None = None
    evidence: str | None = None
    send_id: int | None = None


def _log_status(
    session: Session,
    subscriber_id: int,
    old: SubscriberStatus,
    new: SubscriberStatus,
    *,
    reason: str,
    source: str,
) -> None:
    log_status_changes(session, [StatusChange(subscriber_id, old, new, reason, source)])


def log_status_changes(session: Session, changes: Sequence[StatusChange]) -> None:
    """Two prepared statements on the connection, each run once for all the changes, no unit of
    work: the feedback loop suppresses many people at once. (A loaded :class:`Subscriber` must
    be refreshed after it.)"""
    if not changes:
        return
    now = utcnow()
    connection = session.connection()
    connection.execute(
        _SET_STATUS,
        [{"b_id": each.subscriber_id, "b_status": each.new, "b_at": now} for each in changes],
    )
    connection.execute(
        _LOG_STATUS,
        [
            {
                "subscriber_id": each.subscriber_id,
                "old_status": each.old,
                "new_status": each.new,
                "reason": one_line(each.reason)[:2000],
                "source": each.source[:SOURCE_MAX],
                "cause": each.cause,
                "evidence": None if each.evidence is None else one_line(each.evidence)[:2000],
                "send_id": each.send_id,
                "at": now,
            }
            for each in changes
        ],
    )


def _set_subscriptions(
    session: Session,
    subscriber: Subscriber,
    status: SubscriptionStatus,
    *,
    only: SubscriptionStatus | None = None,
) -> None:
    statement = (
        update(Subscription)
        .where(Subscription.subscriber_id == subscriber.id)
        .values(status=status, updated_at=utcnow())
    )
    if only is not None:
        statement = statement.where(Subscription.status == only)
    session.flush()
    session.execute(statement, execution_options={"synchronize_session": "fetch"})


def set_preferences(
    subscriber: Subscriber,
    *,
    channel: ChannelPreference | None = None,
    format: Variant | None = None,
) -> None:
    """How (channel) and what (an email variant) the person receives."""
    if channel is not None:
        subscriber.channel = channel
    if format is not None:
        if format not in EMAIL_VARIANTS:
            choices = ", ".join(variant.value for variant in EMAIL_VARIANTS)
            raise DistributorError(
                f"a reader's format is one of {choices}, not {format.value}",
                code="subscriber.format",
                variant=format,
            )
        subscriber.format = format


def list_subscribers(
    session: Session,
    *,
    list_name: str | None = None,
    status: SubscriberStatus | None = None,
    limit: int = 50,
    after_id: int = 0,
) -> SubscriberPage:
    """One page of subscribers in ID order; the next page starts after the last ID shown."""
    conditions = []
    if list_name is not None:
        list_id = get_list(session, list_name).id
        conditions.append(Subscriber.subscriptions.any(Subscription.list_id == list_id))
    if status is not None:
        conditions.append(Subscriber.status == status)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*conditions)) or 0
    page = session.scalars(
        select(Subscriber)
        .where(Subscriber.id > after_id, *conditions)
        .order_by(Subscriber.id)
        .limit(limit)
        .options(selectinload(Subscriber.subscriptions).selectinload(Subscription.mailing_list))
    )
    return SubscriberPage(list(page), total)


def memberships(subscriber: Subscriber) -> list[tuple[str, SubscriptionStatus]]:
    """``(list name, status)`` of each of the subscriber's lists, by name."""
    return sorted((sub.mailing_list.name, sub.status) for sub in subscriber.subscriptions)


# --- lists ---------------------------------------------------------------------------------------


def get_list(session: Session, name: str) -> List:
    found = session.scalar(select(List).where(List.name == name.strip()))
    if found is None:
        raise UnknownList(
            f"no list is named '{shorten(name)}'", code="list.unknown", name=shorten(name)
        )
    return found


def create_list(session: Session, name: str, description: str = "") -> List:
    name = check_label("list", name, LIST_NAME_MAX)
    if len(description) > DESCRIPTION_MAX:
        raise DistributorError(
            f"the description is longer than {DESCRIPTION_MAX} characters",
            code="list.description_long",
            most=DESCRIPTION_MAX,
        )
    if session.scalar(select(List.id).where(List.name == name)) is not None:
        raise DuplicateList(f"a list named '{name}' exists already", code="list.taken", name=name)
    created = List(name=name, description=description)
    session.add(created)
    session.flush()
    return created


def list_summaries(session: Session, name: str | None = None) -> list[ListSummary]:
    """Every list (or the one named), by name, with how many are active, pending and gone."""
    found_lists = (
        [get_list(session, name)]
        if name is not None
        else list(session.scalars(select(List).order_by(List.name)))
    )
    counts: dict[int, dict[SubscriptionStatus, int]] = {}
    for list_id, status, count in session.execute(
        select(Subscription.list_id, Subscription.status, func.count())
        .where(Subscription.list_id.in_([found.id for found in found_lists]))
        .group_by(Subscription.list_id, Subscription.status)
    ):
        counts.setdefault(list_id, {})[status] = count
    return [
        ListSummary(
            name=found.name,
            description=found.description,
            created_at=found.created_at,
            active=counts.get(found.id, {}).get(SubscriptionStatus.ACTIVE, 0),
            pending=counts.get(found.id, {}).get(SubscriptionStatus.PENDING, 0),
            unsubscribed=counts.get(found.id, {}).get(SubscriptionStatus.UNSUBSCRIBED, 0),
            id=found.id,
            public=found.public,
        )
        for found in found_lists
    ]


def delete_list(session: Session, name: str) -> int:
    """Delete a list and its subscriptions (the subscribers stay); returns how many there were."""
    found = get_list(session, name)
    count = session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.list_id == found.id)
    )
    session.delete(found)
    session.flush()
    return count or 0


# --- search for the staff API: keyset pages, each one index range --------------------------------


@dataclass(frozen=True)
class SubscriberSearch:
    subscribers: list[Subscriber]  # with subscriptions and their lists loaded
    after: tuple[Any, ...] | None  # where the next page starts; None at the end


def search_subscribers(
    session: Session,
    *,
    email_prefix: str | None = None,
    name_prefix: str | None = None,
    list_name: str | None = None,
    status: SubscriberStatus | None = None,
    after: Sequence[Any] | None = None,
    limit: int = 50,
) -> SubscriberSearch:
    """Subscribers whose address (any case) or name starts with the text given, in that order,
    else in ID order. No total: counting a million matches costs more than the page.

    The address order is ``email_key``'s (unique, lower-case) and the name order
    ``lower(name)``'s, each held by an index (migration 0011), so a page is one index range."""
    dialect = session.get_bind().dialect.name
    conditions: list[Any] = []
    if list_name is not None:
        list_id = get_list(session, list_name).id
        conditions.append(
            subscriber_has(Subscription.subscriber_id, Subscription.list_id == list_id)
        )
    if status is not None:
        conditions.append(Subscriber.status == status)
    order: tuple[Any, ...]
    if email_prefix:
        key = prefix_key(Subscriber.email_key, dialect)
        conditions.append(key.like(like_prefix(email_prefix.strip().lower()), escape="\\"))
        order = (key,)
    elif name_prefix:
        key = prefix_key(func.lower(Subscriber.name), dialect)
        conditions.append(key.like(like_prefix(name_prefix.strip().lower()), escape="\\"))
        order = (key, Subscriber.id)
    else:
        order = (Subscriber.id,)
    if after is not None:
        conditions.append(tuple_(*order) > tuple_(*after))
    rows = session.execute(
        select(Subscriber, *order)
        .where(*conditions)
        .order_by(*order)
        .limit(limit + 1)
        # The page's memberships with their lists' names: one more query, not two.
        .options(selectinload(Subscriber.subscriptions).joinedload(Subscription.mailing_list))
    ).all()
    found = [row[0] for row in rows[:limit]]
    if len(rows) <= limit:
        return SubscriberSearch(found, None)
    return SubscriberSearch(found, tuple(rows[limit - 1][1:]))


def get_subscriber(session: Session, subscriber_id: int) -> Subscriber:
    found = session.get(Subscriber, subscriber_id)
    if found is None:
        raise NotFound(
            f"there is no subscriber with ID {subscriber_id}",
            code="subscriber.missing",
            subscriber=subscriber_id,
        )
    return found
