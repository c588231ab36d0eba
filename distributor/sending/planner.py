"""Freezing a send's audience into delivery rows, in resumable keyset batches.

Each batch takes the next ``batch_size`` members by id, inserts their rows in the database itself
(INSERT … SELECT … ON CONFLICT DO NOTHING: the unique key is the guard against doubles)
and moves the send's checkpoint in the same transaction, only if nobody moved it meanwhile. A
killed planner resumes from the checkpoint; two planners cannot both advance it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, func, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import insert_ignoring_duplicates, utcnow
from distributor.errors import CheckpointMoved
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryChannel, SendState
from subscribers.models import ChannelPreference, Subscriber
from subscribers.query import Audience, audience_conditions

# The choices of a reader that each delivery channel reaches.
EMAIL_CHANNELS = (ChannelPreference.EMAIL, ChannelPreference.BOTH)
WECHAT_CHANNELS = (ChannelPreference.WECHAT, ChannelPreference.BOTH)


def planned_channels(send: Send, *, wechat: bool = False) -> tuple[str, ...]:
    """The channels a send plans deliveries on. With the WeChat channel set up (``wechat``), a
    send by preference (no variant) reaches each reader where they chose, so it plans both:
    email rows beside WeChat rows, one send. Without it, WeChat readers are not planned (their
    rows would wait for a channel that never comes)."""
    if wechat and send.variant is None and not send.is_test:
        return ("email", "wechat")
    return (send.channel.value,)


def audience_filter(send: Send, *, wechat: bool = False) -> Audience:
    """The send's audience, reachable on the send's channel (on any, for a send by preference
    when WeChat is set up)."""
    channels = planned_channels(send, wechat=wechat)
    return replace(send.audience, channel=channels[0] if len(channels) == 1 else None)


def insert_deliveries(
    session: Session, send: Send, channel: DeliveryChannel, members: list[Any]
) -> None:
    """One row per subscriber matching ``members`` (WHERE conditions) who is reachable on
    ``channel``, in one ``INSERT … SELECT`` (the unique key drops a row that exists): the rows
    never pass through Python, so planning keeps the worker's interpreter free for sending. A send
    by preference (no variant) gives each reader the format they chose."""
    email = channel is DeliveryChannel.EMAIL
    address = Subscriber.email if email else Subscriber.openid
    variant = Subscriber.format if send.variant is None else literal(send.variant, _VARIANT)
    rows = select(
        literal(send.id, BigInteger),
        Subscriber.id,
        literal(channel, _CHANNEL),
        address,
        Subscriber.name,
        variant,
    ).where(
        *members,
        address.is_not(None),
        address != "",
        Subscriber.channel.in_(EMAIL_CHANNELS if email else WECHAT_CHANNELS),
    )
    columns = ("send_id", "subscriber_id", "channel", "address", "name", "variant")
    insert_ignoring_duplicates(session, Delivery, rows=rows, columns=columns)


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
    audience = audience_conditions(audience_filter(send, wechat=wechat))
    page = (
        select(Subscriber.id)
        .where(*audience, Subscriber.id > checkpoint)
        .order_by(Subscriber.id)
        .limit(batch_size)
        .subquery()
    )
    seen, last = session.execute(select(func.count(), func.max(page.c.id))).one()
    if not seen:
        session.execute(
            update(Send)
            .where(Send.id == send_id, Send.planned_at.is_(None))
            .values(planned_at=now, planner_lease_until=None, updated_at=now)
        )
        return None
    members = [*audience, Subscriber.id > checkpoint, Subscriber.id <= last]
    for channel in planned_channels(send, wechat=wechat):
        insert_deliveries(session, send, DeliveryChannel(channel), members)
    moved = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.planned_through == checkpoint)
        .values(planned_through=last, planner_lease_until=now + lease, updated_at=now)
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
