"""Sends and their deliveries. The database, not the broker, is the truth about every recipient.

A delivery is a small state machine whose state only moves forward::

    pending ──claim──► claimed ──► sent | deferred | failed | suppressed
    deferred ──(not_before passed)──claim──► claimed

The one exception to "only forward, and final is final": a ``sent`` delivery may later become
``bounced`` or ``complained``, when the feedback loop (:mod:`distributor.bounces.apply`)
learns that the message the server accepted bounced, or that the reader reported it as spam.

A claimed row whose lease ran out (its worker died) is swept back to wait, so it goes out again;
the sweep is logged, and the one row per batch that may already have reached the server is flagged
as a possible duplicate and counts an attempt (a recipient that kills its worker every time ends
``failed`` once the attempts are spent, instead of looping forever).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from distributor.db import Base, BigId, CreatedAt, Id, UpdatedAt
from distributor.vocabulary import DeliveryChannel, DeliveryState, FailureCause, SendState, Variant
from subscribers.query import Audience


class AttemptOutcome(StrEnum):
    """One line of a delivery's attempt log: what the server said, or what happened to the row."""

    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"  # left the audience before its message went
    RECLAIMED = "reclaimed"  # its worker died holding it; it goes out again
    WORKER_DIED = "worker-died"  # its worker died while this message was in flight, too often
    REOPENED = "reopened"  # staff asked to retry a failed delivery
    # The server answered after the claim had expired and the row had been swept: the row is no
    # longer this worker's, so only the log keeps the answer.
    LATE_SENT = "late-sent"
    LATE_DEFERRED = "late-deferred"
    LATE_FAILED = "late-failed"

    @classmethod
    def late(cls, state: DeliveryState) -> AttemptOutcome:
        return cls(f"late-{state.value}")


FINAL_DELIVERY_STATES = (
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.SUPPRESSED,
    DeliveryState.CANCELLED,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)
OPEN_DELIVERY_STATES = (
    DeliveryState.PENDING,
    DeliveryState.CLAIMED,
    DeliveryState.DEFERRED,
    DeliveryState.HELD,
)


# A delivery's arm in an A/B subject test (distributor.sending.ab).
ARM_A, ARM_B, ARM_REST = "a", "b", "rest"

BY_PREFERENCE = "preference"  # a send in which each reader gets the format they chose


class AudienceColumn(TypeDecorator[Audience]):
    """A send's audience, stored as its JSON form (:meth:`Audience.to_json`), read back typed."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Audience | None, dialect: Any) -> dict[str, Any] | None:
        return None if value is None else value.to_json()

    def process_result_value(self, value: dict[str, Any] | None, dialect: Any) -> Audience | None:
        return None if value is None else Audience.from_json(value)


class Send(Base):
    """An issue sent to an audience in one variant over one channel, at a scheduled time."""

    __tablename__ = "sends"
    __table_args__ = (
        Index("ix_sends_state_scheduled_at", "state", "scheduled_at"),
        UniqueConstraint("rule_id", "rule_window"),
    )

    id: Mapped[Id]
    issue_id: Mapped[int] = mapped_column(BigId, ForeignKey("issues.id"))
    audience: Mapped[Audience] = mapped_column(AudienceColumn)
    variant: Mapped[Variant | None]  # None: each reader gets the format they chose
    channel: Mapped[DeliveryChannel] = mapped_column(default=DeliveryChannel.EMAIL)
    state: Mapped[SendState]
    # Why the send stopped by itself (e.g. its issue cannot be rendered); cleared on resume.
    error: Mapped[str | None] = mapped_column(Text)
    is_test: Mapped[bool] = mapped_column(default=False)
    scheduled_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # not started by then: expired, waits for staff
    rate_limit: Mapped[float | None]  # messages per second for this send, on top of the global one
    tracking: Mapped[bool] = mapped_column(default=False)  # opens and clicks report back
    # Sending windows ("Mon-Fri 08:00-20:00", in ``window_zone``): it goes out only inside one.
    windows: Mapped[list[str] | None] = mapped_column(JSON)
    window_zone: Mapped[str | None] = mapped_column(String(64))
    # Commercial mail (advertising): 【广告】 in the subject, the sender's name and address below.
    commercial: Mapped[bool] = mapped_column(default=False)
    # A digest of several issues (a recurring rule's window); None: just ``issue_id``.
    issue_ids: Mapped[list[int] | None] = mapped_column(JSON)
    rule_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("schedule_rules.id"))
    rule_window: Mapped[str | None] = mapped_column(String(40))  # one send per rule and window
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # Planning (freezing the audience into deliveries) is resumable: rows are inserted in keyset
    # batches and this checkpoint moves in the same transaction.
    planned_through: Mapped[int] = mapped_column(BigId, default=0)
    planned_at: Mapped[datetime | None]
    planner_lease_until: Mapped[datetime | None]
    # An A/B subject test (distributor.sending.ab): ``ab_share`` percent of the audience, in two
    # equal random arms, get the issue's subject (A) or ``ab_subject_b``; the rest are held until
    # the arm with more readers opening (or clicking) ``ab_winner_by`` is known, ``ab_wait``
    # seconds after the test arms went out, and then get the winner's subject.
    ab_subject_b: Mapped[str | None] = mapped_column(Text)
    ab_share: Mapped[int | None]
    ab_winner_by: Mapped[str | None] = mapped_column(String(10))
    ab_wait: Mapped[int | None]  # seconds
    ab_planned: Mapped[int] = mapped_column(BigInteger, default=0)  # email rows planned so far
    ab_tested_at: Mapped[datetime | None]  # the test arms' last message went then
    ab_decided_at: Mapped[datetime | None]
    ab_winner: Mapped[str | None] = mapped_column(String(1))  # "a" or "b"
    ab_reason: Mapped[str | None] = mapped_column(String(20))  # distributor.sending.ab.Reason
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    @property
    def variant_label(self) -> str:
        """The variant as staff choose it: ``preference`` when each reader gets their own."""
        return BY_PREFERENCE if self.variant is None else self.variant.value

    def __repr__(self) -> str:
        return f"<Send {self.id} issue={self.issue_id} {self.state}>"


class Delivery(Base):
    """One recipient of one send on one channel. Unique; created when the send starts."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("send_id", "channel", "address"),
        Index("ix_deliveries_send_state_id", "send_id", "state", "id"),
        # The sweep's expired claims: only rows being sent are in it, so that a row planned or
        # settled as sent writes no entry here (most of a send's index writes are those two).
        Index(
            "ix_deliveries_claimed_lease",
            "lease_until",
            postgresql_where=text("state = 'claimed'"),
            sqlite_where=text("state = 'claimed'"),
        ),
        # The staff API's address search, on PostgreSQL in the "C" collation (migration 0011;
        # PostgreSQL does not report an index's collation, so none is written here).
        Index(
            "ix_deliveries_send_address_key",
            "send_id",
            text("lower(address::text)"),
            "id",
        ).ddl_if(dialect="postgresql"),
        # The next retry of a send: the first due of its deferred rows, whatever their number.
        Index(
            "ix_deliveries_deferred_due",
            "send_id",
            "not_before",
            postgresql_where=text("state = 'deferred'"),
            sqlite_where=text("state = 'deferred'"),
        ),
        # A reader's last deliveries, newest first: their repeated failures (distributor.failures).
        Index("ix_deliveries_subscriber_id", "subscriber_id", "id"),
        # Segments' "bounced softly": a reader's few failed rows (distributor.segments).
        Index(
            "ix_deliveries_failure_cause",
            "subscriber_id",
            "failure_cause",
            postgresql_where=text("failure_cause IS NOT NULL"),
            sqlite_where=text("failure_cause IS NOT NULL"),
        ),
        # Few rows are ever flagged: a partial index keeps their count instant at any size.
        # An A/B test's arms (distributor.sending.ab): only the rows of such sends have one.
        Index(
            "ix_deliveries_send_arm",
            "send_id",
            "arm",
            postgresql_where=text("arm IS NOT NULL"),
            sqlite_where=text("arm IS NOT NULL"),
        ),
        Index(
            "ix_deliveries_possible_duplicate",
            "send_id",
            postgresql_where=text("possible_duplicate"),
            sqlite_where=text("possible_duplicate"),
        ),
    )

    id: Mapped[Id]
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(BigId)  # None for a test send to staff
    channel: Mapped[DeliveryChannel]
    address: Mapped[str] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(200))
    variant: Mapped[Variant]
    state: Mapped[DeliveryState] = mapped_column(default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    not_before: Mapped[datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(40))
    lease_until: Mapped[datetime | None]
    reclaims: Mapped[int] = mapped_column(default=0)  # times a dead worker's claim was swept
    # The one row of a swept batch that may have been in the SMTP server's hands when its worker
    # died (batches go out in id order, each answer recorded before the next message).
    possible_duplicate: Mapped[bool] = mapped_column(default=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    smtp_code: Mapped[int | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    # Why it did not arrive, from the server's answer or a bounce (distributor.failures): what
    # the reader's repeated failures and a domain's wave of refusals are counted by.
    failure_cause: Mapped[FailureCause | None]
    sent_at: Mapped[datetime | None]
    # A/B subject test: "a", "b", or "rest" (held until the winner is known); None otherwise.
    arm: Mapped[str | None] = mapped_column(String(4))
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"<Delivery {self.id} send={self.send_id} {self.address} {self.state}>"


# The table itself, for Core statements on the hot paths: a claim's or an answer's rows need no
# identity map, and the ORM's handling of a bulk statement costs more CPU per row than the rest.
DELIVERIES = cast(Table, Delivery.__table__)


class DeliveryAttempt(Base):
    """The log: one row per attempt (or sweep) of a delivery, kept for staff to read."""

    __tablename__ = "delivery_attempts"
    # The last hour's answers (metrics) are read by time.
    __table_args__ = (Index("ix_delivery_attempts_at", "at"),)

    id: Mapped[Id]
    delivery_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("deliveries.id", ondelete="CASCADE"), index=True
    )
    attempt: Mapped[int]
    outcome: Mapped[AttemptOutcome]
    smtp_code: Mapped[int | None]
    detail: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<DeliveryAttempt {self.delivery_id}#{self.attempt} {self.outcome}>"


class SendRender(Base):
    """A send's message in one variant, rendered once when the send starts (before its first
    message): every worker personalises these same bytes, and a template error pauses the send
    instead of failing its recipients one by one."""

    __tablename__ = "send_renders"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[Variant] = mapped_column(primary_key=True)
    # "" for the send's own subject; "b" for an A/B test's other subject (distributor.sending.ab)
    subject: Mapped[str] = mapped_column(String(1), primary_key=True, default="", server_default="")
    compiled: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<SendRender {self.send_id} {self.variant}>"


class DispatchSlot(Base):
    """A bounded set of dispatcher tasks: a slot is held by at most one live task at a time.

    The broker may lose or duplicate a task message; the tick re-queues a slot whose lease ran out,
    and a duplicate finds the slot held and exits.
    """

    __tablename__ = "dispatch_slots"

    slot: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    holder: Mapped[str | None] = mapped_column(String(60))
    lease_until: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<DispatchSlot {self.slot} {self.holder}>"


class SchedulerState(Base):
    """One row: how many ticks beat has run and when the last one ended, so that health checks
    (is beat alive?) and tests (has a tick looked at everything since?) need no log to read."""

    __tablename__ = "scheduler_state"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    ticks: Mapped[int] = mapped_column(BigInteger, default=0)
    last_tick_at: Mapped[datetime | None]

    def __repr__(self) -> str:
        return f"<SchedulerState ticks={self.ticks} last={self.last_tick_at}>"


class SendCount(Base):
    """Delivery counts per send and state, kept by database triggers as rows change state, so the
    status of a million-recipient send is a read of a few rows. ``shard`` is the writing
    connection (PostgreSQL backend pid), so concurrent workers never wait on one counter row."""

    __tablename__ = "send_counts"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<SendCount {self.send_id} {self.state}={self.n}>"


class SendTimeline(Base):
    """A send's deliveries now sent, deferred or failed, by the minute they became so (minutes
    since the epoch, UTC): its picture over time, kept by database triggers as ``send_counts``
    (migration 0016), so it costs a few hundred rows to read whatever the audience."""

    __tablename__ = "send_timeline"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<SendTimeline {self.send_id} {self.minute} {self.state}={self.n}>"


class SendDomain(Base):
    """A send's email deliveries per receiving domain, state and failure cause ('' for none),
    kept by database triggers (migration 0016): the per-domain table of a send's page."""

    __tablename__ = "send_domains"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), primary_key=True)
    cause: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<SendDomain {self.send_id} {self.domain} {self.state}/{self.cause}={self.n}>"


class ScheduleRule(Base):
    """A recurring digest: at ``at_time`` on ``weekday`` (None: every day) in ``timezone``, send the
    issues imported since the previous window to the digest readers of ``lists``."""

    __tablename__ = "schedule_rules"

    id: Mapped[Id]
    name: Mapped[str] = mapped_column(String(100), unique=True)
    weekday: Mapped[int | None]  # 0 = Monday … 6 = Sunday
    at_time: Mapped[str] = mapped_column(String(5))  # HH:MM
    timezone: Mapped[str] = mapped_column(String(64))
    lists: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[CreatedAt]
    # Issues imported after this belong to the next window; set at creation, moved by each run.
    window_start: Mapped[datetime]
    next_run_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<ScheduleRule {self.id} {self.name!r}>"


class RateLimit(Base):
    """The embedded (database) rate limiter's state: the next free send time per key (GCRA)."""

    __tablename__ = "rate_limits"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    next_free: Mapped[float] = mapped_column(default=0.0)  # seconds since the epoch

    def __repr__(self) -> str:
        return f"<RateLimit {self.key}>"


class DomainLease(Base):
    """The embedded limiter's per-domain concurrency: one row per SMTP transaction in progress."""

    __tablename__ = "domain_leases"

    id: Mapped[Id]
    domain: Mapped[str] = mapped_column(String(255), index=True)
    holder: Mapped[str] = mapped_column(String(60))
    expires_at: Mapped[float]  # seconds since the epoch; a dead worker's lease runs out

    def __repr__(self) -> str:
        return f"<DomainLease {self.domain} {self.holder}>"


class QuotaCount(Base):
    """The embedded store's caps: messages counted in one window of a relay's or a domain's cap
    (the key names the window), so a restarted worker keeps to what was already sent."""

    __tablename__ = "quota_counts"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    n: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[float]  # seconds since the epoch: the window's end

    def __repr__(self) -> str:
        return f"<QuotaCount {self.key}={self.n}>"


class RouteStrain(Base):
    """A relay resting after failures, or a domain slowed after "too many" answers: shared by
    every worker (``relay:<name>``, ``domain:<domain>``)."""

    __tablename__ = "route_strains"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    level: Mapped[int]  # rests in a row / halvings of the domain's rate
    until: Mapped[float]  # seconds since the epoch

    def __repr__(self) -> str:
        return f"<RouteStrain {self.key} {self.level}>"
