"""What staff do with sends, as functions the CLI and the web dashboard both call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.errors import DistributorError, InvalidTransition, NotFound
from distributor.issues.models import Issue
from distributor.sending.models import (
    FINAL_DELIVERY_STATES,
    Delivery,
    DeliveryState,
    Send,
    SendCount,
    SendState,
    SendVariant,
)
from subscribers.models import List
from subscribers.query import AudienceFilter

DEFAULT_EXPIRY = timedelta(hours=6)


def check_lists(session: Session, names: Sequence[str]) -> None:
    """A misspelt list is an error, not an empty audience."""
    known = set(session.scalars(select(List.name).where(List.name.in_(names))))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise NotFound(
            f"no list named {', '.join(map(repr, unknown))} (see: distributor lists list)"
        )


def create_send(
    session: Session,
    *,
    issue_id: int,
    audience: AudienceFilter,
    variant: SendVariant,
    at: datetime,
    draft: bool = False,
    expires_after: timedelta = DEFAULT_EXPIRY,
    rate_limit: float | None = None,
) -> Send:
    """A send scheduled for ``at`` (or a draft): its audience is frozen when it starts. Not
    started within ``expires_after`` of ``at`` (workers down), it expires instead of going late."""
    if rate_limit is not None and rate_limit <= 0:
        raise DistributorError(f"a rate limit must be positive, not {rate_limit}")
    if session.get(Issue, issue_id) is None:
        raise NotFound(f"there is no issue with ID {issue_id} (see: distributor issue list)")
    if not audience.lists:
        raise DistributorError("a send needs at least one list (--list NAME)")
    check_lists(session, audience.lists)
    send = Send(
        issue_id=issue_id,
        audience={
            "lists": list(audience.lists),
            "tags": list(audience.tags),
            "attributes": [list(pair) for pair in audience.attributes],
            "format": audience.format,
        },
        variant=variant,
        channel="email",
        state=SendState.DRAFT if draft else SendState.SCHEDULED,
        scheduled_at=at,
        expires_at=at + expires_after,
        rate_limit=rate_limit,
    )
    session.add(send)
    session.flush()
    return send


def schedule_send(
    session: Session, send_id: int, at: datetime, *, expires_after: timedelta = DEFAULT_EXPIRY
) -> Send:
    send = get_send(session, send_id)
    if send.state not in (SendState.DRAFT, SendState.SCHEDULED):
        raise InvalidTransition(
            f"send {send_id} is {send.state}; only a draft or scheduled send can be (re)scheduled"
        )
    send.state, send.scheduled_at, send.expires_at = SendState.SCHEDULED, at, at + expires_after
    return send


def get_send(session: Session, send_id: int) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"there is no send with ID {send_id}")
    return send


@dataclass(frozen=True)
class SendStatus:
    id: int
    state: str
    issue_id: int
    variant: str
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    possible_duplicates: int
    error: str | None = None  # why the send paused itself (e.g. its issue cannot be rendered)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished_deliveries(self) -> int:
        return sum(n for state, n in self.counts.items() if state in FINAL_DELIVERY_STATES)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "counts": self.counts,
            "possible_duplicates": self.possible_duplicates,
            **({"error": self.error} if self.error else {}),
        }


def delivery_counts(session: Session, send_id: int) -> dict[str, int]:
    """Deliveries per state, from the trigger-kept counters: a few rows whatever the audience."""
    rows = session.execute(
        select(SendCount.state, func.sum(SendCount.n))
        .where(SendCount.send_id == send_id)
        .group_by(SendCount.state)
    )
    counts = {state: int(n) for state, n in rows if n}
    return {state.value: counts[state.value] for state in DeliveryState if state.value in counts}


def send_status(session: Session, send_id: int) -> SendStatus:
    send = get_send(session, send_id)
    counts = delivery_counts(session, send_id)
    duplicates = session.scalar(
        select(func.count()).where(
            Delivery.send_id == send_id,
            Delivery.possible_duplicate,
            Delivery.state == DeliveryState.SENT,
        )
    )
    return SendStatus(
        id=send.id,
        state=send.state.value,
        issue_id=send.issue_id,
        variant=send.variant.value,
        scheduled_at=send.scheduled_at,
        started_at=send.started_at,
        finished_at=send.finished_at,
        counts=counts,
        possible_duplicates=int(duplicates or 0),
        error=send.error,
    )


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
) -> list[DeliveryView]:
    """Who got what and why not, in id order; page with ``after_id``."""
    get_send(session, send_id)
    query = select(Delivery).where(Delivery.send_id == send_id, Delivery.id > after_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    rows = session.scalars(query.order_by(Delivery.id).limit(limit))
    return [
        DeliveryView(
            d.id,
            d.address,
            d.state.value,
            d.attempts,
            d.smtp_code,
            d.last_error or d.smtp_response,
            d.sent_at,
        )
        for d in rows
    ]
