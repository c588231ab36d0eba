"""Whom a send reaches, before it exists or before it starts: its readers per channel and per
format, those who get email because WeChat cannot reach them, and those who already got (or are
getting) the same issue from another send. Counted with the planner's own conditions, so the
confirmation staff read is the number the send will have."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from distributor.db import counting_over_readers
from distributor.sending.models import Delivery, Send
from distributor.sending.planner import planned_channels, reach_conditions, variant_of
from distributor.snapshot_counts import counted_rows
from distributor.vocabulary import EMAIL_VARIANTS, DeliveryChannel, DeliveryState, SendState
from subscribers.counts import ReaderKind, list_ids, readers_of
from subscribers.models import Subscriber
from subscribers.query import (
    Audience,
    audience_conditions,
    fell_back_to_email,
    subscriber_has,
)

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


def send_reach(
    session: Session, send: Send, *, wechat: bool = False, kept: bool = True
) -> Reach:
    """``send`` (saved or not) as it would be planned now (``wechat``: WeChat is set up). A send
    to one list is counted from the list's kept counts (:mod:`subscribers.counts`), whatever its
    size; any other audience (or any, ``kept`` False: what the kept counts are checked against)
    in one pass over it, every figure a filtered count of it: a million readers are read once,
    not once per figure, and on PostgreSQL not again until something it reads changes
    (:mod:`distributor.snapshot_counts`)."""
    channels = [DeliveryChannel(name) for name in planned_channels(send, wechat=wechat)]
    others = _other_sends(session, send)
    kinds = kinds_of_one_list(session, send.audience) if kept else None
    if kinds is not None:
        counted = _counted_from_kinds(send, kinds, channels, wechat=wechat)
        if others:  # who got the issue already is a question about people, not kinds
            counted.update(_counted(session, send, _already(send, others, wechat=wechat)))
    else:
        counted = _counted(session, send, _figures(send, channels, others, wechat=wechat))
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


def kinds_of_one_list(session: Session, audience: Audience) -> dict[ReaderKind, int] | None:
    """The kept counts of an audience that is one list and nothing else; None for any other
    (several lists share readers, and tags, attributes and segments are not kept)."""
    if len(audience.lists) != 1 or audience != Audience(lists=audience.lists):
        return None
    ids = list_ids(session, audience.lists)
    return readers_of(session, ids[0]) if ids else {}


def _counted_from_kinds(
    send: Send, kinds: dict[ReaderKind, int], channels: list[DeliveryChannel], *, wechat: bool
) -> dict[str, int]:
    """:func:`_figures`, summed over kinds of readers instead of counted over readers."""
    counted = dict.fromkeys(["readers", *(f"channel:{c.value}" for c in channels)], 0)
    email_variants = {v.value for v in EMAIL_VARIANTS}
    for kind, n in kinds.items():
        if kind.subscription != "active" or kind.status != "active":
            continue
        reached = [c for c in channels if kind.reached(c.value, wechat=wechat)]
        if not reached:
            continue
        counted["readers"] += n
        for channel in reached:
            counted[f"channel:{channel.value}"] += n
        if DeliveryChannel.EMAIL in reached:
            if kind.fell_back(wechat=wechat):
                counted["fell_back"] = counted.get("fell_back", 0) + n
            variant = kind.format if send.variant is None else send.variant.value
            if variant in email_variants:
                counted[f"format:{variant}"] = counted.get(f"format:{variant}", 0) + n
    return counted


def _figures(
    send: Send, channels: list[DeliveryChannel], others: list[OtherSend], *, wechat: bool
) -> dict[str, Any]:
    """Every figure of a send's reach, as a condition on its audience's readers."""
    reached = {
        channel: and_(*reach_conditions(channel, wechat=wechat)) for channel in channels
    }
    email = reached.get(DeliveryChannel.EMAIL)
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
        figures.update(_already(send, others, wechat=wechat))
    return figures


def _already(send: Send, others: list[OtherSend], *, wechat: bool) -> dict[str, Any]:
    """The readers of the send who got (or are getting) its issue from one of ``others``."""
    reached = [
        and_(*reach_conditions(DeliveryChannel(channel), wechat=wechat))
        for channel in planned_channels(send, wechat=wechat)
    ]
    return {
        "already": and_(
            or_(*reached),
            subscriber_has(
                Delivery.subscriber_id,
                Delivery.send_id.in_([other.id for other in others]),
                Delivery.state.in_(GOING_STATES),
            ),
        )
    }


def _counted(session: Session, send: Send, figures: dict[str, Any]) -> dict[str, int]:
    """Each figure's count of the send's audience, in one pass over it (or kept from the last
    one, while nothing it reads changed: :mod:`distributor.snapshot_counts`)."""
    counting_over_readers(session)
    (row,) = counted_rows(
        session,
        select(*(func.count(Subscriber.id).filter(cond) for cond in figures.values())).where(
            *audience_conditions(send.audience)
        ),
    )
    return {name: int(n or 0) for name, n in zip(figures, row, strict=True)}


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
