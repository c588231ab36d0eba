"""Every reader of a send's lists accounted for: in the send, or left out for a reason staff can
act on (unsubscribed, suppressed by a bounce or a complaint, never confirmed, left the list, not
in the tags, chose WeChat only, no address, joined after it was planned); and for one address,
the answer in a sentence's worth of facts (what, since when, why).

One CASE expression decides a reader's reason, for the counts and for the look-up alike, from the
planner's own conditions, so the two cannot disagree with each other or with the send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, case, exists, func, literal, or_, select
from sqlalchemy.orm import Session

from distributor.db import counting_over_readers
from distributor.errors import NotFound
from distributor.readers.models import UnsubscribeEvent
from distributor.sending.models import Delivery, Send
from distributor.sending.planner import planned_channels, planned_readers, reach_conditions
from distributor.sending.queries import get_send
from distributor.sending.reach import kinds_of_one_list
from distributor.snapshot_counts import counted_rows
from distributor.vocabulary import DeliveryChannel
from subscribers.counts import ReaderKind, kind_columns, kind_of
from subscribers.models import (
    ChannelPreference,
    List,
    Subscriber,
    SubscriberEvent,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from subscribers.query import Audience, audience_conditions, fell_back_to_email, subscriber_has
from subscribers.store import find_subscriber


class Standing(StrEnum):
    """Where one reader of a send's lists stands with it (the first that applies)."""

    IN_SEND = "in_send"  # has a message in it (or will, once it is planned)
    UNSUBSCRIBED = "unsubscribed"  # said stop to everything
    BOUNCED = "bounced"  # suppressed: their address bounced
    COMPLAINED = "complained"  # suppressed: they reported a message as spam
    NOT_CONFIRMED = "not_confirmed"  # signed up, never followed the confirmation link
    LEFT_LIST = "left_list"  # left the send's lists (still on others)
    NOT_TAGGED = "not_tagged"  # on the list, without one of the send's tags
    NOT_IN_SEGMENT = "not_in_segment"  # another facet of the audience (attribute, format)
    WECHAT_ONLY = "wechat_only"  # chose WeChat only, and this send goes by email only
    NO_ADDRESS = "no_address"  # no address on the channels they chose
    JOINED_LATER = "joined_later"  # on the list now, not when the send was planned
    NOT_PLANNED_YET = "not_planned_yet"  # the send is still being planned
    NOT_ON_LISTS = "not_on_lists"  # (look-up only) known, but on none of the send's lists
    UNKNOWN = "unknown"  # (look-up only) no subscriber has this address


LEFT_OUT_ORDER = [
    s for s in Standing if s not in (Standing.IN_SEND, Standing.NOT_ON_LISTS, Standing.UNKNOWN)
]


@dataclass(frozen=True)
class LeftOut:
    send_id: int
    list_readers: int  # everyone with a subscription (of any status) to one of its lists
    in_send: int
    fell_back: int  # of those in it: chose WeChat, cannot be reached there, get email
    reasons: dict[str, int]  # the others, per reason, in LEFT_OUT_ORDER; only those > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "send_id": self.send_id,
            "list_readers": self.list_readers,
            "in_send": self.in_send,
            "fell_back_to_email": self.fell_back,
            "left_out": sum(self.reasons.values()),
            "reasons": self.reasons,
        }


@dataclass(frozen=True)
class ReaderLookup:
    address: str
    standing: Standing
    since: datetime | None = None  # when it became so (unsubscribed, suppressed, left …)
    detail: str | None = None  # why (a suppression's reason), or the delivery's last answer
    state: str | None = None  # in the send: the delivery's state
    channel: str | None = None  # in the send: its channel
    fell_back: bool = False  # in the send by email because WeChat cannot reach them

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "standing": self.standing.value,
            "since": self.since.isoformat() if self.since else None,
            "detail": self.detail,
            "state": self.state,
            "channel": self.channel,
            "fell_back_to_email": self.fell_back,
        }


def _on_lists(names: tuple[str, ...], *conditions: Any) -> Any:
    return subscriber_has(
        Subscription.subscriber_id,
        Subscription.list_id.in_(select(List.id).where(List.name.in_(names))),
        *conditions,
    )


def _planned(send: Send) -> bool:
    return send.started_at is not None


def standing_of(send: Send, *, wechat: bool) -> Any:
    """A SQL expression: the :class:`Standing` of the ``Subscriber`` row it is evaluated on,
    for a reader of ``send``'s lists. Each branch assumes the ones before it failed (a CASE
    stops at the first that holds), so each costs only what it adds: most readers are decided
    by the first index probe or two."""
    audience = send.audience
    status = Subscriber.status
    active_on = _on_lists(audience.lists, Subscription.status == SubscriptionStatus.ACTIVE)
    pending_on = _on_lists(audience.lists, Subscription.status == SubscriptionStatus.PENDING)
    branches: list[tuple[Any, str]] = []
    if _planned(send):
        has_row = subscriber_has(Delivery.subscriber_id, Delivery.send_id == send.id)
        branches.append((has_row, Standing.IN_SEND.value))
    branches += [
        (status == SubscriberStatus.UNSUBSCRIBED, Standing.UNSUBSCRIBED.value),
        (status == SubscriberStatus.BOUNCED, Standing.BOUNCED.value),
        (status == SubscriberStatus.COMPLAINED, Standing.COMPLAINED.value),
        (status == SubscriberStatus.PENDING, Standing.NOT_CONFIRMED.value),
        (and_(~active_on, pending_on), Standing.NOT_CONFIRMED.value),
        (~active_on, Standing.LEFT_LIST.value),
    ]
    # Active, and actively on a list: what is left of the audience is its other facets (the
    # status condition again is free), then whether a channel reaches them.
    if audience.tags:
        tagged = and_(*audience_conditions(Audience(tags=audience.tags)))
        branches.append((~tagged, Standing.NOT_TAGGED.value))
    facets = Audience(attributes=audience.attributes, format=audience.format)
    branches.append((~and_(*audience_conditions(facets)), Standing.NOT_IN_SEGMENT.value))
    reached = or_(
        *(
            and_(*reach_conditions(DeliveryChannel(channel), wechat=wechat))
            for channel in planned_channels(send, wechat=wechat)
        )
    )
    on_wechat = and_(Subscriber.channel == ChannelPreference.WECHAT, Subscriber.openid.is_not(None))
    if wechat:  # reachable there, but this send goes by email only
        branches.append((and_(~reached, on_wechat), Standing.WECHAT_ONLY.value))
    branches.append((~reached, Standing.NO_ADDRESS.value))
    otherwise = Standing.IN_SEND
    if _planned(send):
        otherwise = Standing.JOINED_LATER if send.planned_at else Standing.NOT_PLANNED_YET
    return case(*branches, else_=literal(otherwise.value))


def kept_standing(kind: ReaderKind, send: Send, *, wechat: bool) -> Standing:
    """:func:`standing_of` for a kind of reader of a send to one list (what
    :mod:`subscribers.counts` keeps), without a message in it: the same branches, in the same
    order (IN_SEND: the send would reach them)."""
    by_status = {
        SubscriberStatus.UNSUBSCRIBED: Standing.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED: Standing.BOUNCED,
        SubscriberStatus.COMPLAINED: Standing.COMPLAINED,
        SubscriberStatus.PENDING: Standing.NOT_CONFIRMED,
    }
    if kind.status in by_status:
        return by_status[SubscriberStatus(kind.status)]
    if kind.subscription != SubscriptionStatus.ACTIVE:
        pending = kind.subscription == SubscriptionStatus.PENDING
        return Standing.NOT_CONFIRMED if pending else Standing.LEFT_LIST
    if kind.status != SubscriberStatus.ACTIVE:
        return Standing.NOT_IN_SEGMENT
    if not any(kind.reached(c, wechat=wechat) for c in planned_channels(send, wechat=wechat)):
        return Standing.WECHAT_ONLY if wechat and kind.on_wechat() else Standing.NO_ADDRESS
    return Standing.IN_SEND


def left_out(
    session: Session, send_id: int, *, wechat: bool = False, kept: bool = True
) -> LeftOut:
    """How many readers of the send's lists are in it, and why each of the others is not
    (``wechat``: WeChat is set up). A send to one list is counted from the list's kept counts
    (once planned, less those of its readers who have no message in it, counted in one grouped
    pass), unless ``kept`` is False (what they are checked against). A pass over readers is
    kept on PostgreSQL until something it reads changes (:mod:`distributor.snapshot_counts`). A
    test send, to named addresses, has no lists: all zero."""
    send = get_send(session, send_id)
    counts: dict[str, int] = {}
    kinds = kinds_of_one_list(session, send.audience) if kept else None
    if kinds is not None and _planned(send):
        # Those with a message are in it; the others stand where their kind puts them.
        missing = _without_messages(session, send)
        for kind, n in missing.items():
            standing = kept_standing(kind, send, wechat=wechat)
            if standing is Standing.IN_SEND:
                standing = Standing.JOINED_LATER if send.planned_at else Standing.NOT_PLANNED_YET
            counts[standing.value] = counts.get(standing.value, 0) + n
        counts[Standing.IN_SEND.value] = sum(kinds.values()) - sum(missing.values())
    elif kinds is not None:  # one list, not planned yet: from its kept counts
        for kind, n in kinds.items():
            value = kept_standing(kind, send, wechat=wechat).value
            counts[value] = counts.get(value, 0) + n
    elif send.audience.lists:
        counting_over_readers(session)
        standing = standing_of(send, wechat=wechat).label("standing")
        rows = counted_rows(
            session,
            select(standing, func.count(Subscriber.id))
            .where(_on_lists(send.audience.lists))
            .group_by(standing),
        )
        counts = {str(value): int(n) for value, n in rows}
    in_send = counts.pop(Standing.IN_SEND.value, 0)
    return LeftOut(
        send_id=send_id,
        list_readers=in_send + sum(counts.values()),
        in_send=in_send,
        fell_back=(
            _fell_back(session, send, wechat=wechat)
            if kinds is None or _planned(send)
            else sum(
                n
                for kind, n in kinds.items()
                if kept_standing(kind, send, wechat=wechat) is Standing.IN_SEND
                and kind.fell_back(wechat=wechat)
            )
        ),
        reasons={s.value: counts[s.value] for s in LEFT_OUT_ORDER if counts.get(s.value)},
    )


def _without_messages(session: Session, send: Send) -> dict[ReaderKind, int]:
    """The readers of a planned send's one list who have no message in it, per kind: one
    grouped pass over the list with the send's rows hashed beside it, not a probe per reader."""
    counting_over_readers(session)
    columns = kind_columns()
    rows = counted_rows(
        session,
        select(*columns, func.count())
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .where(
            Subscription.list_id.in_(select(List.id).where(List.name.in_(send.audience.lists))),
            ~exists().where(
                Delivery.send_id == send.id, Delivery.subscriber_id == Subscription.subscriber_id
            ),
        )
        .group_by(*columns),
    )
    return {kind_of(row[:-1]): int(row[-1]) for row in rows}


def _fell_back(session: Session, send: Send, *, wechat: bool) -> int:
    if _planned(send):
        emailed = subscriber_has(
            Delivery.subscriber_id,
            Delivery.send_id == send.id,
            Delivery.channel == DeliveryChannel.EMAIL,
        )
        conditions = [emailed, fell_back_to_email(wechat=wechat)]
    else:
        conditions = [*planned_readers(send, wechat=wechat), fell_back_to_email(wechat=wechat)]
    return int(counted_rows(session, select(func.count(Subscriber.id)).where(*conditions))[0][0])


def look_up_reader(
    session: Session, send_id: int, address: str, *, wechat: bool = False
) -> ReaderLookup:
    """Where the reader at ``address`` stands with the send, and since when, and why."""
    send = get_send(session, send_id)
    try:
        subscriber = find_subscriber(session, address)
    except NotFound:
        return ReaderLookup(address.strip(), Standing.UNKNOWN)
    lists = send.audience.lists
    on_lists = bool(lists) and session.scalar(
        select(func.count(Subscriber.id)).where(Subscriber.id == subscriber.id, _on_lists(lists))
    )
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.send_id == send_id, Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.channel.desc())  # wechat before email: the reader's own choice
        .limit(1)
    ).first()
    if delivery is None and not on_lists:
        return ReaderLookup(subscriber.email, Standing.NOT_ON_LISTS)
    if delivery is not None:
        fell_back = (
            delivery.channel is DeliveryChannel.EMAIL
            and subscriber.channel is ChannelPreference.WECHAT
        )
        return ReaderLookup(
            subscriber.email,
            Standing.IN_SEND,
            since=delivery.sent_at,
            detail=delivery.last_error or delivery.smtp_response,
            state=delivery.state.value,
            channel=delivery.channel.value,
            fell_back=fell_back,
        )
    standing = Standing(
        str(
            session.scalar(
                select(standing_of(send, wechat=wechat)).where(Subscriber.id == subscriber.id)
            )
        )
    )
    if standing is Standing.IN_SEND:  # not planned yet: whom it will reach
        fell_back = bool(
            session.scalar(
                select(func.count(Subscriber.id)).where(
                    Subscriber.id == subscriber.id, fell_back_to_email(wechat=wechat)
                )
            )
        )
        return ReaderLookup(
            subscriber.email,
            standing,
            channel=DeliveryChannel.EMAIL.value if fell_back else None,
            fell_back=fell_back,
        )
    since, detail = _why(session, subscriber, standing, lists)
    return ReaderLookup(subscriber.email, standing, since=since, detail=detail)


def _why(
    session: Session, subscriber: Subscriber, standing: Standing, lists: tuple[str, ...]
) -> tuple[datetime | None, str | None]:
    """When the reader came to ``standing``, and the recorded reason, where either is known."""
    if standing in (Standing.UNSUBSCRIBED, Standing.BOUNCED, Standing.COMPLAINED):
        event = session.scalars(
            select(SubscriberEvent)
            .where(
                SubscriberEvent.subscriber_id == subscriber.id,
                SubscriberEvent.new_status == subscriber.status,
            )
            .order_by(SubscriberEvent.id.desc())
            .limit(1)
        ).first()
        if standing is Standing.UNSUBSCRIBED:
            link = session.scalar(
                select(func.max(UnsubscribeEvent.at)).where(
                    UnsubscribeEvent.subscriber_id == subscriber.id
                )
            )
            candidates = [at for at in (link, event.at if event else None) if at is not None]
            return (max(candidates) if candidates else subscriber.updated_at), (
                event.reason if event else None
            )
        return (event.at, event.reason) if event else (subscriber.updated_at, None)
    if standing is Standing.LEFT_LIST:
        left = session.scalar(
            select(func.max(Subscription.updated_at)).where(
                Subscription.subscriber_id == subscriber.id,
                Subscription.list_id.in_(select(List.id).where(List.name.in_(lists))),
            )
        )
        return left, None
    if standing is Standing.NOT_CONFIRMED:
        return subscriber.created_at, None
    return None, None
