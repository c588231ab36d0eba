"""Suppressions by their cause: staff list who was suppressed for what, and lift them in bulk.

A bad day at one provider (our IP on its blocklist) must not cost its readers for good: each
suppression keeps its cause, its evidence and its send (``subscriber_events``), so the ones of
one cause, at one domain, in one time window can be found and undone at once, each lifting
logged like a single one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from distributor.errors import DistributorError
from distributor.vocabulary import FailureCause
from subscribers.models import Subscriber, SubscriberEvent, SubscriberStatus
from subscribers.store import StatusChange, log_status_changes

LIFTABLE = (SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED)
_CHUNK = 1000  # subscribers lifted per statement


@dataclass(frozen=True)
class SuppressionFilter:
    """Which suppressions: of one cause, at one receiving domain, made within a time window."""

    cause: FailureCause | None = None
    domain: str | None = None  # the address's domain, exactly (lower-case)
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def of(
        cls,
        cause: FailureCause | None,
        domain: str | None,
        since: datetime | None,
        until: datetime | None,
        *,
        zone: tzinfo,
    ) -> SuppressionFilter:
        """As staff give it: a domain in any case, times without an offset read in ``zone``."""

        def local(moment: datetime | None) -> datetime | None:
            return moment if moment is None or moment.tzinfo else moment.replace(tzinfo=zone)

        return cls(cause, domain.strip().lower() if domain else None, local(since), local(until))

    def __post_init__(self) -> None:
        if self.domain is not None and not _is_domain(self.domain):
            raise DistributorError(
                f"{self.domain!r} is not a domain name like qq.com",
                code="suppression.domain",
                domain=self.domain[:80],
            )


@dataclass(frozen=True)
class SuppressionView:
    """One suppressed reader as staff see them: who, since when, for what, and the evidence."""

    subscriber_id: int
    email: str
    status: str
    cause: str | None
    reason: str
    evidence: str | None
    send_id: int | None
    at: datetime

    def to_json(self) -> dict[str, object]:
        return {**vars(self), "at": self.at.isoformat()}


def list_suppressions(
    session: Session, where: SuppressionFilter, *, limit: int = 100, after: int | None = None
) -> list[SuppressionView]:
    """Suppressed readers matching ``where``, by subscriber id (``after`` one to page on)."""
    query = _suppressions(where)
    if after is not None:
        query = query.where(Subscriber.id > after)
    rows = session.execute(query.order_by(Subscriber.id).limit(limit))
    return [
        SuppressionView(
            subscriber.id,
            subscriber.email,
            subscriber.status.value,
            event.cause.value if event.cause else None,
            event.reason,
            event.evidence,
            event.send_id,
            event.at,
        )
        for subscriber, event in rows
    ]


def count_suppressions(session: Session, where: SuppressionFilter) -> int:
    return session.scalar(select(func.count()).select_from(_suppressions(where).subquery())) or 0


def lift_suppressions(
    session: Session, where: SuppressionFilter, *, reason: str, source: str
) -> int:
    """Make every reader suppressed as ``where`` says active again, each lifting logged with
    ``reason``; how many. An unsubscribe is never lifted here (only the reader undoes it)."""
    if not reason.strip():
        raise DistributorError(
            "a reason is required to lift suppressions", code="suppression.no_reason"
        )
    lifted = 0
    while True:
        rows = session.execute(
            _suppressions(where).order_by(Subscriber.id).limit(_CHUNK).with_for_update(
                of=Subscriber
            )
        ).all()
        if not rows:
            return lifted
        log_status_changes(
            session,
            [
                StatusChange(subscriber.id, subscriber.status, SubscriberStatus.ACTIVE, reason,
                             source)
                for subscriber, _ in rows
            ],
        )  # fmt: skip
        session.expire_all()
        lifted += len(rows)


def _suppressions(where: SuppressionFilter) -> Select[Subscriber, SubscriberEvent]:
    """Suppressed readers with the event that suppressed them (their latest to that status)."""
    latest = (
        select(func.max(SubscriberEvent.id).label("id"))
        .where(SubscriberEvent.new_status.in_(LIFTABLE))
        .group_by(SubscriberEvent.subscriber_id)
        .subquery()
    )
    query = (
        select(Subscriber, SubscriberEvent)
        .join(SubscriberEvent, SubscriberEvent.subscriber_id == Subscriber.id)
        .join(latest, latest.c.id == SubscriberEvent.id)
        .where(Subscriber.status.in_(LIFTABLE), SubscriberEvent.new_status == Subscriber.status)
    )
    if where.cause is not None:
        query = query.where(SubscriberEvent.cause == where.cause)
    if where.domain is not None:
        query = query.where(Subscriber.email_key.like(f"%@{where.domain.lower()}"))
    if where.since is not None:
        query = query.where(SubscriberEvent.at >= where.since)
    if where.until is not None:
        query = query.where(SubscriberEvent.at < where.until)
    return query


def _is_domain(text: str) -> bool:
    labels = text.split(".")
    return len(labels) >= 2 and all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    )
