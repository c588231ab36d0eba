"""Freezing a send's audience into delivery rows, in resumable keyset batches.

Each batch takes the next ``batch_size`` members by id, inserts their rows in the database itself
(INSERT … SELECT … ON CONFLICT DO NOTHING: the unique key is the guard against doubles)
and moves the send's checkpoint in the same transaction, only if nobody moved it meanwhile. A
killed planner resumes from the checkpoint; two planners cannot both advance it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Select, and_, case, func, literal, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import insert_ignoring_duplicates, utcnow, walking_readers_by_id
from distributor.errors import CheckpointMoved
from distributor.sending.ab import arm_quota
from distributor.sending.models import ARM_A, ARM_B, ARM_REST, Delivery, Send
from distributor.vocabulary import DeliveryChannel, DeliveryState, SendState
from subscribers.models import Subscriber
from subscribers.query import (
    EMAIL_CHANNELS,
    WECHAT_CHANNELS,
    audience_conditions,
    fell_back_to_email,
    has_email,
)


def planned_channels(send: Send, *, wechat: bool = False) -> tuple[str, ...]:
    """The channels a send plans deliveries on. With the WeChat channel set up (``wechat``), a
    send by preference (no variant) reaches each reader where they chose, so it plans both:
    email rows beside WeChat rows, one send. Without it, WeChat readers are not planned (their
    rows would wait for a channel that never comes)."""
    if wechat and send.variant is None and not send.is_test:
        return ("email", "wechat")
    return (send.channel.value,)


def reach_conditions(channel: DeliveryChannel, *, wechat: bool = False) -> list[Any]:
    """WHERE conditions on ``Subscriber`` for the readers a message on ``channel`` reaches: an
    address there, and the choice of it. By email that includes a reader who chose WeChat but
    cannot be reached there (no follower account, or WeChat not set up): they get email instead
    rather than nothing."""
    if channel is DeliveryChannel.EMAIL:
        chose = or_(Subscriber.channel.in_(EMAIL_CHANNELS), fell_back_to_email(wechat=wechat))
        return [has_email(), chose]
    openid = Subscriber.openid
    return [openid.is_not(None), openid != "", Subscriber.channel.in_(WECHAT_CHANNELS)]


def planned_readers(send: Send, *, wechat: bool = False) -> list[Any]:
    """WHERE conditions on ``Subscriber`` for the readers the send gives at least one message:
    its audience, reachable on one of its channels. What planning freezes, and what every count
    of a send's readers (the form's, the API's, the CLI's) counts."""
    reach = [
        and_(*reach_conditions(DeliveryChannel(channel), wechat=wechat))
        for channel in planned_channels(send, wechat=wechat)
    ]
    return [*audience_conditions(send.audience), or_(*reach)]


def variant_of(send: Send) -> Any:
    """The format each reader gets: the send's, or for a send by preference their own."""
    return Subscriber.format if send.variant is None else literal(send.variant, _VARIANT)


def insert_deliveries(
    session: Session,
    send: Send,
    channel: DeliveryChannel,
    members: list[Any],
    *,
    wechat: bool = False,
    arms: tuple[int, int] | None = None,
) -> None:
    """One row per subscriber matching ``members`` (WHERE conditions) who is reachable on
    ``channel``, in one ``INSERT … SELECT`` (the unique key drops a row that exists): the rows
    never pass through Python, so planning keeps the worker's interpreter free for sending. A send
    by preference (no variant) gives each reader the format they chose. ``arms`` (an A/B
    test's email rows): that many random rows get arm A, and B, the others wait as the rest,
    held until the winner is known (:mod:`distributor.sending.ab`)."""
    email = channel is DeliveryChannel.EMAIL
    address = Subscriber.email if email else Subscriber.openid
    columns = ["send_id", "subscriber_id", "channel", "address", "name", "variant"]
    rows = select(
        literal(send.id, BigInteger),
        Subscriber.id,
        literal(channel, _CHANNEL),
        address,
        Subscriber.name,
        variant_of(send),
    ).where(*members, *reach_conditions(channel, wechat=wechat))
    if arms is not None:
        rows = _with_arms(rows, arms, decided=send.ab_decided_at is not None)
        columns = [*columns, "arm", "state"]
    insert_ignoring_duplicates(session, Delivery, rows=rows, columns=columns)


def _with_arms(rows: Select[Any], arms: tuple[int, int], *, decided: bool) -> Select[Any]:
    """``rows`` in a random order, the first ones in arm A, the next in arm B (as many as
    ``arms`` says), the rest held (or waiting, once the winner is known)."""
    shuffled = rows.add_columns(func.row_number().over(order_by=func.random()).label("place"))
    inner = shuffled.subquery()
    place = inner.c.place
    rest = DeliveryState.PENDING if decided else DeliveryState.HELD
    tested = arms[0] + arms[1]
    return select(
        *[column for column in inner.c if column.name != "place"],
        case((place <= arms[0], ARM_A), (place <= tested, ARM_B), else_=ARM_REST),
        case((place <= tested, DeliveryState.PENDING.value), else_=rest.value),
    ).where(place > 0)  # SQLite reads an upsert's SELECT only with a WHERE


_VARIANT = Delivery.__table__.c.variant.type
_CHANNEL = Delivery.__table__.c.channel.type


def plan_next_batch(
    session: Session,
    send_id: int,
    *,
    batch_size: int,
    now: datetime,
    lease: timedelta,
    wechat: bool = False,
) -> int | None:
    """Plan one batch; the number of members seen, or None when planning is complete."""
    send = session.get(Send, send_id)
    if send is None or send.planned_at is not None or send.state is SendState.CANCELLED:
        return None
    checkpoint = send.planned_through
    audience = planned_readers(send, wechat=wechat)
    page = (
        select(Subscriber.id)
        .where(*audience, Subscriber.id > checkpoint)
        .order_by(Subscriber.id)
        .limit(batch_size)
        .subquery()
    )
    walking_readers_by_id(session)
    seen, last = session.execute(select(func.count(), func.max(page.c.id))).one()
    if not seen:
        session.execute(
            update(Send)
            .where(Send.id == send_id, Send.planned_at.is_(None))
            .values(planned_at=now, planner_lease_until=None, updated_at=now)
        )
        return None
    members = [*audience, Subscriber.id > checkpoint, Subscriber.id <= last]
    tested = 0  # an A/B test's email rows in this batch
    for channel in planned_channels(send, wechat=wechat):
        arms = None
        if send.ab_share is not None and channel == DeliveryChannel.EMAIL:
            email_rows = select(func.count(Subscriber.id)).where(
                *members, *reach_conditions(DeliveryChannel.EMAIL, wechat=wechat)
            )
            tested = session.scalar(email_rows) or 0
            arms = arm_quota(send.ab_planned, tested, send.ab_share)
        insert_deliveries(
            session, send, DeliveryChannel(channel), members, wechat=wechat, arms=arms
        )
    moved = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.planned_through == checkpoint)
        .values(
            planned_through=last,
            planner_lease_until=now + lease,
            ab_planned=Send.ab_planned + tested,
            updated_at=now,
        )
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise CheckpointMoved(send_id)
    return int(seen)


def plan_send(
    factory: sessionmaker[Session],
    send_id: int,
    *,
    batch_size: int,
    lease: timedelta,
    wechat: bool = False,
) -> int:
    """Plan the whole audience of ``send_id``; returns how many members were looked at."""
    seen = 0
    while True:
        try:
            with factory.begin() as session:
                n = plan_next_batch(
                    session,
                    send_id,
                    batch_size=batch_size,
                    now=utcnow(),
                    lease=lease,
                    wechat=wechat,
                )
        except CheckpointMoved:
            continue  # rolled back: another planner did this batch; carry on after it
        if n is None:
            return seen
        seen += n
