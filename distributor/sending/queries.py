"""Reading sends and their deliveries, whatever the channel: a send by id, its deliveries per
state (the trigger-kept counters) and page by page; and the checks on a send's time and lists
that every way of making a send shares (staff's, a recurring digest's, a test's)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from distributor.db import like_prefix, prefix_key
from distributor.errors import DistributorError, NotFound
from distributor.sending.models import Delivery, Send, SendCount
from distributor.sending.planner import planned_readers
from distributor.vocabulary import DeliveryState
from subscribers.models import List, Subscriber

DEFAULT_EXPIRY = timedelta(hours=6)
# A time this little in the past is "now" typed slowly; anything earlier is a mistake.
PAST_GRACE = timedelta(minutes=5)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A time as staff read it: weekday, date and minute in ``zone``, with the zone's name."""
    return f"{moment.astimezone(zone):%a %Y-%m-%d %H:%M} {zone.key}"


def check_send_time(at: datetime, now: datetime, zone: ZoneInfo) -> None:
    """A time already past (a wrong year, a wrong day) is pointed out, not left to expire."""
    if at < now - PAST_GRACE:
        raise DistributorError(
            f"{local_time(at, zone)} is in the past (it is now {local_time(now, zone)}): "
            "give a time from now on",
            code="send.past",
            at=at,
            now=now,
        )


def reachable_readers(session: Session, send: Send, *, wechat: bool = False) -> int:
    """How many readers the planner would give a message now: its own filter, counted
    (``wechat``: the WeChat channel is set up, so WeChat readers count too). The one count of a
    send's readers: the form's, the API's and the CLI's."""
    counted = select(func.count(Subscriber.id)).where(*planned_readers(send, wechat=wechat))
    return int(session.scalar(counted) or 0)


def check_lists(session: Session, names: Sequence[str]) -> None:
    """A misspelt list is an error, not an empty audience."""
    known = set(session.scalars(select(List.name).where(List.name.in_(names))))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise NotFound(
            f"there is no list named {', '.join(map(repr, unknown))}",
            code="list.missing",
            names=", ".join(unknown),
        )


def get_send(session: Session, send_id: int) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
    return send


# States of a message the mail server accepted: what bounce and complaint rates are out of.
ACCEPTED_STATES = (DeliveryState.SENT, DeliveryState.BOUNCED, DeliveryState.COMPLAINED)


def feedback_rate(counts: dict[str, int], state: DeliveryState) -> float | None:
    """The share of accepted messages now in ``state`` (bounced, complained); None before any."""
    accepted = sum(counts.get(each.value, 0) for each in ACCEPTED_STATES)
    return counts.get(state.value, 0) / accepted if accepted else None


# Built once: the feedback loop reads the counts of each batch's sends.
_COUNTS = (
    select(SendCount.send_id, SendCount.state, func.sum(SendCount.n))
    .where(SendCount.send_id.in_(bindparam("b_send_ids", expanding=True)))
    .group_by(SendCount.send_id, SendCount.state)
)


def delivery_counts_of(session: Session, send_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Deliveries per state of each send, from the trigger-kept counters: a few rows per send,
    whatever the audience."""
    rows = session.connection().execute(_COUNTS, {"b_send_ids": list(send_ids)})
    found: dict[int, dict[str, int]] = {}
    for send_id, state, n in rows:
        if n:
            found.setdefault(send_id, {})[state] = int(n)
    return {
        send_id: {s.value: counts[s.value] for s in DeliveryState if s.value in counts}
        for send_id, counts in found.items()
    }


def duplicates_of(session: Session, send_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(
        select(Delivery.send_id, func.count())
        .where(
            Delivery.send_id.in_(send_ids),
            Delivery.possible_duplicate,
            Delivery.state == DeliveryState.SENT,
        )
        .group_by(Delivery.send_id)
    )
    return {send_id: int(n) for send_id, n in rows}


@dataclass(frozen=True)
class DeliveryView:
    id: int
    address: str
    state: str
    attempts: int
    smtp_code: int | None
    detail: str | None
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "state": self.state,
            "attempts": self.attempts,
            "smtp_code": self.smtp_code,
            "detail": self.detail,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def list_deliveries(
    session: Session,
    send_id: int,
    *,
    state: DeliveryState | None = None,
    after_id: int = 0,
    limit: int = 1000,
    address: str | None = None,
) -> list[DeliveryView]:
    """Who got what and why not, in id order; page with ``after_id``; ``address``: only the
    addresses containing it (case-insensitively)."""
    get_send(session, send_id)
    query = select(Delivery).where(Delivery.send_id == send_id, Delivery.id > after_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if address:
        query = query.where(func.lower(Delivery.address).contains(address.lower(), autoescape=True))
    rows = session.scalars(query.order_by(Delivery.id).limit(limit))
    return [_delivery_view(d) for d in rows]


# --- keyset pages for the staff API: each page one index range, at any depth ---------------------


@dataclass(frozen=True)
class DeliveryPage:
    rows: list[DeliveryView]
    # Where the next page starts: (id,) in id order, (address key, id) in address order; None at
    # the end.
    after: tuple[Any, ...] | None


def delivery_page(
    session: Session,
    send_id: int,
    *,
    state: DeliveryState | None = None,
    address_prefix: str | None = None,
    after: Sequence[Any] | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """A send's deliveries in id order, or, searched by the start of the address (any case), in
    address order: ``ix_deliveries_send_address_key`` holds that order, so a page costs the
    same for a prefix that matches ten or a million rows."""
    get_send(session, send_id)
    conditions: list[Any] = [Delivery.send_id == send_id]
    if state is not None:
        conditions.append(Delivery.state == state)
    order: tuple[Any, ...] = (Delivery.id,)
    if address_prefix:
        key = prefix_key(func.lower(Delivery.address), session.get_bind().dialect.name)
        conditions.append(key.like(like_prefix(address_prefix.lower()), escape="\\"))
        order = (key, Delivery.id)
    if after is not None:
        conditions.append(tuple_(*order) > tuple_(*after))
    rows = session.execute(
        select(Delivery, *order).where(*conditions).order_by(*order).limit(limit + 1)
    ).all()
    views = [_delivery_view(row[0]) for row in rows[:limit]]
    return DeliveryPage(views, tuple(rows[limit - 1][1:]) if len(rows) > limit else None)


def _delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        d.id, d.address, d.state.value, d.attempts, d.smtp_code, d.last_error or d.smtp_response,
        d.sent_at,
    )
