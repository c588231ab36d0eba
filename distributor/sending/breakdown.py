"""A send broken down for its pictures: deliveries per minute (sent, deferred, failed), per
receiving domain with the causes of their failures, and what is still to come (the retries
waiting, the next of them, and a finish estimated from the rate so far).

The first two read the trigger-kept tables ``send_timeline`` and ``send_domains`` (migration
0016): a few hundred rows however large the audience, grouped in the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.sending.models import (
    FINAL_DELIVERY_STATES,
    OPEN_DELIVERY_STATES,
    Delivery,
    SendDomain,
    SendTimeline,
)
from distributor.vocabulary import DeliveryState

DOMAINS_SHOWN = 12  # the busiest domains get a row each; the rest one row together
FAILED_STATES = (DeliveryState.FAILED, DeliveryState.BOUNCED, DeliveryState.COMPLAINED)


def timeline_of(session: Session, send_id: int) -> dict[str, dict[int, int]]:
    """Deliveries now sent, deferred or failed, by state and by the minute (since the epoch,
    UTC) they became so."""
    return per_minute(session, SendTimeline, SendTimeline.state, send_id)


def per_minute(
    session: Session, table: Any, key: Any, send_id: int
) -> dict[str, dict[int, int]]:
    """A trigger-kept table of counts per send, ``key`` and minute, its shards added up:
    key -> minute -> count."""
    rows = session.execute(
        select(key, table.minute, func.sum(table.n))
        .where(table.send_id == send_id)
        .group_by(key, table.minute)
    )
    found: dict[str, dict[int, int]] = {}
    for name, minute, n in rows:
        if n:
            found.setdefault(str(name), {})[int(minute)] = int(n)
    return found


@dataclass
class DomainRow:
    """One receiving domain of a send (or, with ``domain`` None, all the smaller ones): its
    deliveries per state, and per failure cause those that have one or failed ('' when no
    cause was read)."""

    domain: str | None
    states: dict[str, int] = field(default_factory=dict)
    causes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.states.values())

    def count(self, *states: DeliveryState) -> int:
        return sum(self.states.get(state.value, 0) for state in states)

    @property
    def failed(self) -> int:
        return self.count(*FAILED_STATES)

    def add(self, state: str, cause: str, n: int) -> None:
        self.states[state] = self.states.get(state, 0) + n
        if cause or state in FAILED_STATES:
            self.causes[cause] = self.causes.get(cause, 0) + n

    def merge(self, other: DomainRow) -> None:
        for state, n in other.states.items():
            self.states[state] = self.states.get(state, 0) + n
        for cause, n in other.causes.items():
            self.causes[cause] = self.causes.get(cause, 0) + n


def domains_of(session: Session, send_id: int) -> list[DomainRow]:
    """The send's email deliveries per receiving domain, the busiest first."""
    rows = session.execute(
        select(SendDomain.domain, SendDomain.state, SendDomain.cause, func.sum(SendDomain.n))
        .where(SendDomain.send_id == send_id)
        .group_by(SendDomain.domain, SendDomain.state, SendDomain.cause)
    )
    by_domain: dict[str, DomainRow] = {}
    for domain, state, cause, n in rows:
        if n:
            by_domain.setdefault(domain, DomainRow(domain)).add(state, cause, int(n))
    return sorted(by_domain.values(), key=lambda row: (-row.total, row.domain or ""))


def busiest(rows: list[DomainRow], shown: int = DOMAINS_SHOWN) -> list[DomainRow]:
    """The first ``shown`` rows, and past them one row (domain None) for all the others."""
    if len(rows) <= shown:
        return rows
    others = DomainRow(None)
    for row in rows[shown:]:
        others.merge(row)
    return [*rows[:shown], others]


def all_of(rows: list[DomainRow]) -> DomainRow:
    """Every domain's counts added up."""
    total = DomainRow(None)
    for row in rows:
        total.merge(row)
    return total


@dataclass(frozen=True)
class Outlook:
    """What is still to come of a send: the deliveries waiting to be retried, when the next of
    them is due, and when the send should finish at the rate so far (None: cannot say yet)."""

    retries: int
    next_retry: datetime | None
    finish: datetime | None


def outlook_of(
    session: Session,
    send_id: int,
    counts: Mapping[str, int],
    *,
    started_at: datetime | None,
    now: datetime,
) -> Outlook:
    """The retries waiting and the finish estimated from ``counts`` (the send's deliveries per
    state): what is left over the rate at which deliveries have finished since the start."""
    retries = counts.get(DeliveryState.DEFERRED.value, 0)
    next_retry = None
    if retries:
        next_retry = session.scalar(
            select(func.min(Delivery.not_before)).where(
                Delivery.send_id == send_id, Delivery.state == DeliveryState.DEFERRED
            )
        )
    return Outlook(retries, next_retry, estimated_finish(counts, started_at=started_at, now=now))


def estimated_finish(
    counts: Mapping[str, int], *, started_at: datetime | None, now: datetime
) -> datetime | None:
    """When the open deliveries should be done at the rate finished ones went so far; None
    before anything finished, or when nothing is left."""
    done = sum(counts.get(state.value, 0) for state in FINAL_DELIVERY_STATES)
    left = sum(counts.get(state.value, 0) for state in OPEN_DELIVERY_STATES)
    elapsed = (now - started_at).total_seconds() if started_at else 0
    if not left or not done or elapsed <= 0:
        return None
    return now + timedelta(seconds=elapsed * left / done)
