"""Whom a send reaches, before it exists or before it starts: its readers per channel and per
format, those who get email because WeChat cannot reach them, and those who already got (or are
getting) the same issue from another send. Counted with the planner's own conditions, so the
confirmation staff read is the number the send will have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.sending.models import Delivery, Send
from distributor.sending.planner import (
    planned_channels,
    planned_readers,
    reach_conditions,
    variant_of,
)
from distributor.sending.queries import reachable_readers
from distributor.vocabulary import DeliveryChannel, DeliveryState, SendState
from subscribers.models import Subscriber
from subscribers.query import audience_conditions, fell_back_to_email, subscriber_has

# A delivery in one of these states went, or is going, to its reader.
GOING_STATES = (
    DeliveryState.PENDING,
    DeliveryState.CLAIMED,
    DeliveryState.DEFERRED,
    DeliveryState.SENT,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)
# Another send of the issue in one of these states will (or did) go out.
LIVE_SEND_STATES = (SendState.SCHEDULED, SendState.RUNNING, SendState.PAUSED, SendState.DONE)


@dataclass(frozen=True)
class OtherSend:
    id: int
    state: str


@dataclass(frozen=True)
class Reach:
    readers: int  # people who get at least one message
    channels: dict[str, int]  # messages per channel
    formats: dict[str, int]  # email messages per format
    fell_back: int  # of the email ones: readers who chose WeChat but cannot be reached there
    already: int  # readers who got (or are getting) this issue from another send
    other_sends: list[OtherSend] = field(default_factory=list)  # those sends of the issue

    def to_json(self) -> dict[str, Any]:
        return {
            "readers": self.readers,
            "channels": self.channels,
            "formats": self.formats,
            "fell_back_to_email": self.fell_back,
            "already_received": self.already,
            "other_sends": [{"id": s.id, "state": s.state} for s in self.other_sends],
        }


def send_reach(session: Session, send: Send, *, wechat: bool = False) -> Reach:
    """``send`` (saved or not) as it would be planned now (``wechat``: WeChat is set up)."""
    audience = audience_conditions(send.audience)
    channels: dict[str, int] = {}
    formats: dict[str, int] = {}
    fell_back = 0
    for name in planned_channels(send, wechat=wechat):
        channel = DeliveryChannel(name)
        reached = [*audience, *reach_conditions(channel, wechat=wechat)]
        channels[name] = _count(session, reached)
        if channel is DeliveryChannel.EMAIL:
            variant = variant_of(send).label("variant")
            rows = session.execute(
                select(variant, func.count(Subscriber.id)).where(*reached).group_by(variant)
            )
            formats = {str(getattr(v, "value", v)): int(n) for v, n in rows if n}
            fell_back = _count(session, [*reached, fell_back_to_email(wechat=wechat)])
    others = list(
        session.execute(
            select(Send.id, Send.state)
            .where(
                Send.issue_id == send.issue_id,
                Send.is_test.is_(False),
                Send.state.in_(LIVE_SEND_STATES),
                *([Send.id != send.id] if send.id is not None else []),
            )
            .order_by(Send.id)
        )
    )
    already = 0
    if others:
        other_ids = [row.id for row in others]
        already = _count(
            session,
            [
                *planned_readers(send, wechat=wechat),
                subscriber_has(
                    Delivery.subscriber_id,
                    Delivery.send_id.in_(other_ids),
                    Delivery.state.in_(GOING_STATES),
                ),
            ],
        )
    return Reach(
        readers=reachable_readers(session, send, wechat=wechat),
        channels=channels,
        formats=formats,
        fell_back=fell_back,
        already=already,
        other_sends=[OtherSend(row.id, row.state.value) for row in others],
    )


def _count(session: Session, conditions: list[Any]) -> int:
    return int(session.scalar(select(func.count(Subscriber.id)).where(*conditions)) or 0)
