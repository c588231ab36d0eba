"""Who receives a send: the audience, read in keyset batches so a million people fit in memory.

The sending engine calls :func:`stream_audience` while planning and :func:`still_sendable` right
before each message goes out, so an unsubscribe that lands mid-send is honoured.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVarTuple

from sqlalchemy import (
    BigInteger,
    Row,
    Select,
    String,
    and_,
    any_,
    bindparam,
    cast,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from distributor.errors import ConfigurationError
from distributor.vocabulary import Variant
from subscribers.models import (
    ChannelPreference,
    List,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
    Tag,
    subscriber_tags,
)

_Ts = TypeVarTuple("_Ts")
# The choices of a reader that each delivery channel reaches.
EMAIL_CHANNELS = (ChannelPreference.EMAIL, ChannelPreference.BOTH)
WECHAT_CHANNELS = (ChannelPreference.WECHAT, ChannelPreference.BOTH)
_AFTER = bindparam("after", type_=BigInteger)  # the last subscriber id of the page before
IN_CHUNK = 5_000  # ids per IN (…): well under every backend's bound-parameter limit
_IDS = ARRAY(BigInteger)


@dataclass(frozen=True)
class Audience:
    """Who to send to. Within a facet any value matches; every facet given must match.

    ``lists``: an active subscription to one of them; ``tags``: one of them; ``attributes``:
    every (key, value) pair, compared as text; ``channel``: reachable on it (``wechat`` needs an
    openid; ``both`` means those who chose both); ``format``: exactly that format. Names that do
    not exist match nobody: checking them is for the caller, who can say which one is wrong.

    ``where``: a saved segment's expression (named ``segment``, its dates without an offset read
    in ``zone``), compiled by the compiler the segments room installs
    (:func:`install_where_compiler`); without lists, its readers are those on any list.
    """

    lists: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()
    channel: str | None = None
    format: str | None = None
    # Named addresses instead of subscribers (a staff test send); the other facets do not apply.
    addresses: tuple[str, ...] = ()
    segment: str | None = None
    where: str | None = None
    zone: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The stored form (a send's audience); :meth:`from_json` reads it back."""
        if self.addresses:
            return {"addresses": list(self.addresses)}
        segment = (
            {"segment": self.segment, "where": self.where, "zone": self.zone} if self.where else {}
        )
        return {
            "lists": list(self.lists),
            "tags": list(self.tags),
            "attributes": [list(pair) for pair in self.attributes],
            "channel": self.channel,
            "format": self.format,
            **segment,
        }

    def describe(self) -> str:
        """In words, e.g. "list members, tagged 工会"."""
        if self.addresses:
            return "test to " + ", ".join(self.addresses)
        parts = []
        if self.lists or self.segment is None:
            parts.append(("list " if len(self.lists) == 1 else "lists ") + ", ".join(self.lists))
        if self.segment is not None:
            parts.append(f"segment {self.segment}")
        if self.tags:
            parts.append("tagged " + " or ".join(self.tags))
        parts.extend(f"{key} = {value}" for key, value in self.attributes)
        if self.format:
            parts.append(f"{self.format} readers only")
        return ", ".join(parts)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(
            lists=tuple(data.get("lists", ())),
            tags=tuple(data.get("tags", ())),
            attributes=tuple((key, value) for key, value in data.get("attributes", ())),
            channel=data.get("channel"),
            format=data.get("format"),
            addresses=tuple(data.get("addresses", data.get("test", ()))),
            segment=data.get("segment"),
            where=data.get("where"),
            zone=data.get("zone"),
        )


@dataclass(frozen=True)
class AudienceMember:
    id: int
    email: str
    name: str
    openid: str | None
    channel: ChannelPreference
    format: Variant


def subscriber_has(subscriber_id: Any, *conditions: Any) -> Any:
    """The subscriber has a row (whose ``subscriber_id`` column is given) meeting ``conditions``.

    A correlated scalar subquery, which PostgreSQL runs as one index probe per subscriber
    instead of turning it into a join: a keyset page then costs the same whatever the planner
    believes about the table sizes (a join plan would hash the whole list for every page).
    """
    probe = select(subscriber_id).where(subscriber_id == Subscriber.id, *conditions).limit(1)
    return probe.scalar_subquery().is_not(None)


# (expression, zone name, on some list) -> conditions on Subscriber: installed by
# distributor.segments, which knows the engagement the expressions speak of (a room this store
# may not import).
WhereCompiler = Callable[[str, str, bool], list[Any]]
_where_compiler: list[WhereCompiler] = []


def install_where_compiler(compiler: WhereCompiler) -> None:
    _where_compiler[:] = [compiler]


def _where(audience: Audience) -> list[Any]:
    """A segment's conditions and, without lists, "on some list": a segment narrows the readers
    of the lists, never reaches someone who is on none."""
    if audience.where is None:
        return []
    if not _where_compiler:
        # Never plan a segment's send to everyone because its compiler was not loaded.
        raise ConfigurationError("this process cannot read segments: import distributor.segments")
    return list(_where_compiler[0](audience.where, audience.zone or "UTC", not audience.lists))


def audience_conditions(audience: Audience) -> list[Any]:
    """WHERE conditions on ``Subscriber`` for the active members of ``audience``."""
    conditions: list[Any] = [Subscriber.status == SubscriberStatus.ACTIVE, *_where(audience)]
    if audience.lists:
        conditions.append(
            subscriber_has(
                Subscription.subscriber_id,
                Subscription.status == SubscriptionStatus.ACTIVE,
                Subscription.list_id.in_(select(List.id).where(List.name.in_(audience.lists))),
            )
        )
    if audience.tags:
        conditions.append(
            subscriber_has(
                subscriber_tags.c.subscriber_id,
                subscriber_tags.c.tag_id.in_(select(Tag.id).where(Tag.name.in_(audience.tags))),
            )
        )
    for key, value in audience.attributes:
        conditions.append(cast(Subscriber.attributes[key].as_string(), String) == value)
    if audience.channel is not None:
        channel = ChannelPreference(audience.channel)
        if channel is ChannelPreference.BOTH:
            conditions.append(Subscriber.channel == ChannelPreference.BOTH)
        else:
            conditions.append(Subscriber.channel.in_([channel, ChannelPreference.BOTH]))
        if channel is ChannelPreference.WECHAT:
            conditions.append(Subscriber.openid.is_not(None))
    if audience.format is not None:
        conditions.append(Subscriber.format == Variant(audience.format))
    return conditions


# Addresses under .invalid (RFC 2606) stand for people known only elsewhere (a WeChat
# follower's key, distributor.wechat.followers): no message can be delivered there.
UNDELIVERABLE_DOMAIN = ".invalid"


def has_email() -> Any:
    """The subscriber has an address that mail can reach."""
    return and_(
        Subscriber.email.is_not(None),
        Subscriber.email != "",
        ~Subscriber.email_key.like(f"%{UNDELIVERABLE_DOMAIN}"),
    )


def fell_back_to_email(*, wechat: bool) -> Any:
    """The reader chose WeChat only but cannot be reached there: they have no follower account
    (no OpenID), or WeChat is not set up (``wechat`` False). They get email instead."""
    wechat_only = Subscriber.channel == ChannelPreference.WECHAT
    return and_(wechat_only, Subscriber.openid.is_(None)) if wechat else wechat_only


def stream_audience(
    session: Session, audience: Audience, *, batch_size: int = 1000, after_id: int = 0
) -> Iterator[list[AudienceMember]]:
    """Active subscribers matching ``audience``, in id order, ``batch_size`` at a time.

    Each batch is one ``WHERE id > :last ORDER BY id LIMIT :n`` query; pass the last id seen as
    ``after_id`` to resume.
    """
    members = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        Subscriber.openid,
        Subscriber.channel,
        Subscriber.format,
    ).where(*audience_conditions(audience))
    for rows in keyset_batches(session, members, batch_size=batch_size, after_id=after_id):
        yield [AudienceMember(*row) for row in rows]


def count_audience(session: Session, audience: Audience) -> int:
    """How many active subscribers match ``audience`` now: :func:`stream_audience`'s filter."""
    return int(
        session.scalar(select(func.count(Subscriber.id)).where(*audience_conditions(audience))) or 0
    )


def keyset_batches(
    session: Session, query: Select[int, *_Ts], *, batch_size: int, after_id: int = 0
) -> Iterator[Sequence[Row[int, *_Ts]]]:
    """The rows of ``query`` (on subscribers, selecting ``Subscriber.id`` first) page by page.

    Keyset, not OFFSET: each page costs the same however deep into the table it is.
    """
    page = query.where(Subscriber.id > _AFTER).order_by(Subscriber.id).limit(batch_size)
    last = after_id
    while True:
        rows = session.execute(page, {"after": last}).all()
        if not rows:
            return
        yield rows
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


def still_sendable(
    session: Session,
    subscriber_ids: Sequence[int],
    *,
    lists: Sequence[str],
    channels: Collection[ChannelPreference],
    email_fallback: bool = False,
) -> set[int]:
    """Those of ``subscriber_ids`` still active now, still choosing one of ``channels`` (the
    choices that reach the delivery's channel: a reader who switched to WeChat only gets no more
    email) and, when the send targets ``lists``, still actively on one of them: leaving the one
    list a send is for stops it, leaving another does not. The same list rule as
    :func:`stream_audience`; the other facets stay as planned. ``email_fallback``: a reader
    who chose WeChat only but has no follower account still gets the email planned for them."""
    chose: Any = Subscriber.channel.in_(list(channels))
    if email_fallback:
        chose = or_(chose, fell_back_to_email(wechat=True))
    conditions = [*audience_conditions(Audience(lists=tuple(lists))), chose]
    # PostgreSQL: one array parameter, the same statement for any number of ids, so it is
    # compiled once and prepared by the driver (an IN of a batch's 250 ids was rendered, sent
    # and planned anew each time: a tenth of a sending thread's CPU). Elsewhere IN, in chunks.
    if session.get_bind().dialect.name == "postgresql":
        groups = [Subscriber.id == any_(bindparam("ids", list(subscriber_ids), type_=_IDS))]
    else:
        groups = [
            Subscriber.id.in_(subscriber_ids[start : start + IN_CHUNK])
            for start in range(0, len(subscriber_ids), IN_CHUNK)
        ]
    return {
        subscriber_id
        for among in groups
        for subscriber_id in session.scalars(select(Subscriber.id).where(among, *conditions))
    }
