"""Whom a send reaches, before it exists or before it starts: its readers per channel and per
format, those who get email because WeChat cannot reach them, and those who already got (or are
getting) the same issue from another send. Counted with the planner's own conditions, so the
confirmation staff read is the number the send will have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from distributor.sending.models import Delivery, Send
from distributor.sending.planner import planned_channels, reach_conditions, variant_of
from distributor.vocabulary import EMAIL_VARIANTS, DeliveryChannel, DeliveryState, SendState
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
    """``send`` (saved or not) as it would be planned now (``wechat``: WeChat is set up). One
    pass over its audience, every figure a filtered count of it: a million readers are read
    once, not once per figure."""
    channels = [DeliveryChannel(name) for name in planned_channels(send, wechat=wechat)]
    reached = {
        channel: and_(*reach_conditions(channel, wechat=wechat)) for channel in channels
    }
    email = reached.get(DeliveryChannel.EMAIL)
    others = _other_sends(session, send)
    figures: dict[str, Any] = {
        "readers": or_(*reached.values()),
        **{f"channel:{channel.value}": cond for channel, cond in reached.items()},
    }
    if email is not None:
        figures["fell_back"] = and_(email, fell_back_to_email(wechat=wechat))
        variant = variant_of(send)
        for each in EMAIL_VARIANTS:
            figures[f"format:{each.value}"] = and_(email, variant == each)
    if others:
        figures["already"] = and_(
            or_(*reached.values()),
            subscriber_has(
                Delivery.subscriber_id,
                Delivery.send_id.in_([other.id for other in others]),
                Delivery.state.in_(GOING_STATES),
            ),
        )
    row = session.execute(
        select(*(func.count(Subscriber.id).filter(cond) for cond in figures.values())).where(
            *audience_conditions(send.audience)
        )
    ).one()
    counted = {name: int(n or 0) for name, n in zip(figures, row, strict=True)}
    return Reach(
        readers=counted["readers"],
        channels={c.value: counted[f"channel:{c.value}"] for c in channels},
        formats={
            v.value: counted[f"format:{v.value}"]
            for v in EMAIL_VARIANTS
            if counted.get(f"format:{v.value}")
        },
        fell_back=counted.get("fell_back", 0),
        already=counted.get("already", 0),
        other_sends=others,
    )


def _other_sends(session: Session, send: Send) -> list[OtherSend]:
    """The sends of the same issue that went, go or will go out, other than ``send``."""
    rows = session.execute(
        select(Send.id, Send.state)
        .where(
            Send.issue_id == send.issue_id,
            Send.is_test.is_(False),
            Send.state.in_(LIVE_SEND_STATES),
            *([Send.id != send.id] if send.id is not None else []),
        )
        .order_by(Send.id)
    )
    return [OtherSend(row.id, row.state.value) for row in rows]
