"""Freezing a send's audience into delivery rows, in resumable keyset batches.

Each batch inserts its rows (ON CONFLICT DO NOTHING: the unique key is the guard against doubles)
and moves the send's checkpoint in the same transaction, only if nobody moved it meanwhile. A
killed planner resumes from the checkpoint; two planners cannot both advance it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import insert_ignoring_duplicates, utcnow
from distributor.errors import CheckpointMoved
from distributor.issues.models import Variant
from distributor.sending.models import Delivery, Send, SendState
from subscribers.models import ChannelPreference
from subscribers.query import Audience, AudienceMember, stream_audience

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


def variant_for(send_variant: Variant | None, member: AudienceMember) -> Variant:
    """A send by preference (no variant) gives each subscriber the format they chose."""
    return send_variant if send_variant is not None else member.format


def delivery_rows(
    send_id: int,
    channel: str,
    send_variant: Variant | None,
    members: Iterable[AudienceMember],
) -> list[dict[str, Any]]:
    """One row per member reachable on ``channel``; pure, so it is tested on its own."""
    rows = []
    for member in members:
        if channel == "email":
            if not member.email or str(member.channel) not in EMAIL_CHANNELS:
                continue
            address = member.email
        else:
            if not member.openid or str(member.channel) not in WECHAT_CHANNELS:
                continue
            address = member.openid
        rows.append(
            {
                "send_id": send_id,
                "subscriber_id": member.id,
                "channel": channel,
                "address": address,
                "name": member.name,
                "variant": variant_for(send_variant, member),
            }
        )
    return rows


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
    batch: list[AudienceMember] = next(
        stream_audience(
            session,
            audience_filter(send, wechat=wechat),
            batch_size=batch_size,
            after_id=checkpoint,
        ),
        [],
    )
    if not batch:
        session.execute(
            update(Send)
            .where(Send.id == send_id, Send.planned_at.is_(None))
            .values(planned_at=now, planner_lease_until=None, updated_at=now)
        )
        return None
    for channel in planned_channels(send, wechat=wechat):
        insert_ignoring_duplicates(
            session, Delivery, delivery_rows(send.id, channel, send.variant, batch)
        )
    moved = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.planned_through == checkpoint)
        .values(planned_through=batch[-1].id, planner_lease_until=now + lease, updated_at=now)
    )
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        raise CheckpointMoved(send_id)
    return len(batch)


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
