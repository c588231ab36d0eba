"""A segment's tree (:mod:`.language`) as SQLAlchemy conditions on ``Subscriber``: evaluated by
the database, its values bound as parameters, so a million readers are counted and planned
without passing through Python.

Each fact about other rows (a list, a tag, an open, a failed delivery) is a correlated
``EXISTS``: where it stands alone (anded at the top) the database runs it as a semi-join (or
``not``, an anti-join), hashing the rows once; under ``or`` or ``not`` it is one index probe per
reader. Never ``id IN (subquery)``: under ``or``, PostgreSQL rescans such a subquery for every
reader once its rows outgrow ``work_mem`` (minutes at a million readers). Every condition is
true or false, never unknown, so ``not`` is the plain complement (a reader without the
attribute is among ``attr.x != y``).
"""

from __future__ import annotations

import operator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, String, and_, cast, exists, false, not_, or_, select, true

from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.segments.language import (
    All,
    Any_,
    Engaged,
    Facet,
    Joined,
    JoinedWithin,
    Node,
    Not,
    SoftBounced,
    parse,
)
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import FailureCause, Variant
from subscribers.models import (
    ChannelPreference,
    List,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Tag,
    subscriber_tags,
)

# A full or disabled mailbox: the reader's, and maybe passing (distributor.failures' REPEATED).
SOFT_CAUSES = (FailureCause.MAILBOX_FULL, FailureCause.MAILBOX_DISABLED)


def compile_where(
    source: str, zone: ZoneInfo, now: datetime, *, on_a_list: bool = True
) -> list[ColumnElement[bool]]:
    """The conditions on ``Subscriber`` that ``source`` says; SegmentSyntaxError if it does not
    read. ``now`` anchors "within N days"; ``on_a_list``: the reader must also hold an active
    subscription (checked apart only where the expression does not already ask for a list)."""
    node = parse(source, zone)
    conditions = [condition(node, now)]
    if on_a_list and not names_a_list(node):
        conditions.append(
            exists().where(
                Subscription.subscriber_id == Subscriber.id,
                Subscription.status == SubscriptionStatus.ACTIVE,
            )
        )
    return conditions


def names_a_list(node: Node) -> bool:
    """Whether every reader ``node`` selects is on one of the lists it names."""
    match node:
        case Facet("list", _):
            return True
        case All(items):
            return any(names_a_list(item) for item in items)
        case Any_(items):
            return all(names_a_list(item) for item in items)
    return False


def condition(node: Node, now: datetime) -> ColumnElement[bool]:
    match node:
        case All(items):
            return and_(true(), *(condition(item, now) for item in items))
        case Any_(items):
            # Opens and clicks or'ed together are one probe of the reader's events, not several.
            engaged = [item for item in items if isinstance(item, Engaged)]
            rest = [condition(item, now) for item in items if not isinstance(item, Engaged)]
            if len(engaged) > 1:
                either = or_(*(and_(*_event_conditions(item)) for item in engaged))
                rest.append(exists().where(EngagementEvent.subscriber_id == Subscriber.id, either))
            else:
                rest.extend(condition(item, now) for item in engaged)
            return or_(false(), *rest)
        case Not(item):
            return not_(condition(item, now))
        case Facet(field, values):
            return _facet(field, values)
        case Joined(comparison, moment):
            return _COMPARE[comparison](Subscriber.created_at, moment)  # type: ignore[no-any-return]
        case JoinedWithin(days):
            return Subscriber.created_at >= now - timedelta(days=days)
        case Engaged():
            return exists().where(
                EngagementEvent.subscriber_id == Subscriber.id, *_event_conditions(node)
            )
        case SoftBounced(since):
            failed: list[ColumnElement[bool]] = [Delivery.failure_cause.in_(SOFT_CAUSES)]
            if since is not None:
                failed.append(Delivery.updated_at >= since)
            return exists().where(Delivery.subscriber_id == Subscriber.id, *failed)
    raise AssertionError(node)  # pragma: no cover - the parser makes no other node


def _facet(field: str, values: tuple[str, ...]) -> ColumnElement[bool]:
    if field == "list":
        lists = select(List.id).where(List.name.in_(values))
        return exists().where(
            Subscription.subscriber_id == Subscriber.id,
            Subscription.status == SubscriptionStatus.ACTIVE,
            Subscription.list_id.in_(lists),
        )
    if field == "tag":
        tags = select(Tag.id).where(Tag.name.in_(values))
        return exists().where(
            subscriber_tags.c.subscriber_id == Subscriber.id, subscriber_tags.c.tag_id.in_(tags)
        )
    if field == "channel":
        return or_(false(), *(_channel(ChannelPreference(value)) for value in values))
    if field == "format":
        return Subscriber.format.in_([Variant(value) for value in values])
    key = field.removeprefix("attr.")
    text = cast(Subscriber.attributes[key].as_string(), String)
    return and_(text.is_not(None), text.in_(values))


def _channel(channel: ChannelPreference) -> ColumnElement[bool]:
    """Reachable on ``channel`` (those who chose both are reachable on each), as a send's
    audience reads it; ``both``: those who chose both."""
    if channel is ChannelPreference.BOTH:
        return Subscriber.channel == ChannelPreference.BOTH
    chose = Subscriber.channel.in_([channel, ChannelPreference.BOTH])
    if channel is ChannelPreference.WECHAT:
        return and_(chose, Subscriber.openid.is_not(None))
    return chose


def _event_conditions(engaged: Engaged) -> list[ColumnElement[bool]]:
    """The events (of one reader) that make ``engaged`` true."""
    kind, last_sends, since = EngagementKind(engaged.kind), engaged.last_sends, engaged.since
    events: list[ColumnElement[bool]] = [EngagementEvent.kind == kind]
    if kind is EngagementKind.CLICK:
        events.append(EngagementEvent.machine.is_(False))  # a link scanner is not the reader
    if last_sends is not None:
        last = (
            select(Send.id)
            .where(Send.tracking, Send.is_test.is_(False), Send.started_at.is_not(None))
            .order_by(Send.id.desc())
            .limit(last_sends)
        )
        events.append(EngagementEvent.send_id.in_(last))
    if since is not None:
        events.append(EngagementEvent.at >= since)
    return events


_COMPARE: dict[str, Any] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
