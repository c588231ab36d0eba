"""One rule for every failure, wherever it is seen: what a failed message costs its reader, its
send and the receiving domain.

The failure is read by :func:`distributor.failures.read_failure` (a bounce in the mailbox and the
server's own answer at RCPT or DATA alike), and kept on its delivery (``failure_cause``). Then:

- an address gone (said permanently) suppresses the reader at once, with its cause;
- a reader's own mailbox failing (full, disabled, or gone said only for now) suppresses them once
  :data:`REPEATED_LIMIT` of their last :data:`REPEATED_WINDOW` messages failed so (each message is
  a different send: a relay repeating itself about one message counts once);
- anything about us or the path never counts against the reader: it counts against the send and
  the receiving domain, and a wave of it (:class:`RefusalPolicy`) pauses the send, naming the
  domain and the reason.

The bounce engine applies the same functions to what comes back by mail.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.failures import FailureReading, Verdict, domain_of
from distributor.sending.breakdown import domains_of
from distributor.sending.models import DELIVERIES, Delivery
from distributor.vocabulary import READER_CAUSES, DeliveryChannel, DeliveryState, FailureCause
from subscribers.models import SubscriberStatus

if TYPE_CHECKING:  # the store and the lifecycle are imported where a refusal is recorded: a
    # send's status (its worst refusal) starts without them
    from subscribers.store import Suppression

REPEATED_LIMIT = 3  # failures of the reader's own mailbox …
REPEATED_WINDOW = 5  # … among their last this many messages, that suppress them
ATTEMPTED = (
    DeliveryState.SENT,
    DeliveryState.FAILED,
    DeliveryState.BOUNCED,
    DeliveryState.COMPLAINED,
)
PATH_CAUSES = frozenset(FailureCause) - READER_CAUSES
_NEWEST = select(
    DELIVERIES.c.subscriber_id,
    DELIVERIES.c.id,
    DELIVERIES.c.failure_cause,
    func.row_number()
    .over(partition_by=DELIVERIES.c.subscriber_id, order_by=DELIVERIES.c.id.desc())
    .label("newest"),
).where(
    DELIVERIES.c.subscriber_id.in_(bindparam("b_subscriber_ids", expanding=True)),
    DELIVERIES.c.channel == DeliveryChannel.EMAIL,
    DELIVERIES.c.state.in_(ATTEMPTED),
)
_NEWEST_ROWS = _NEWEST.subquery()
_RECENT = select(_NEWEST_ROWS).where(_NEWEST_ROWS.c.newest <= bindparam("b_window"))
_SET_CAUSE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("b_id"))
    .values(failure_cause=bindparam("b_cause"))
)


@dataclass(frozen=True)
class RefusalPolicy:
    """When a receiving domain's refusals pause a send."""

    rate: float  # refused for reasons of ours or the path, over the messages tried there
    min_attempts: int  # below this many tried at the domain, a share says too little

    @classmethod
    def from_settings(cls, settings: Settings) -> RefusalPolicy:
        return cls(settings.refusal_pause_rate, settings.refusal_pause_min_attempts)

    def over(self, refused: int, attempts: int) -> bool:
        return attempts >= self.min_attempts and refused > self.rate * attempts


@dataclass(frozen=True)
class FailedDelivery:
    """A delivery that did not arrive, as far as the rule needs it."""

    id: int
    send_id: int
    subscriber_id: int | None
    address: str


def recent_failures(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, dict[int, FailureCause | None]]:
    """Each reader's last :data:`REPEATED_WINDOW` messages tried: delivery id -> its cause."""
    found: dict[int, dict[int, FailureCause | None]] = {}
    if not subscriber_ids:
        return found
    rows = session.connection().execute(
        _RECENT,
        {"b_subscriber_ids": sorted(set(subscriber_ids)), "b_window": REPEATED_WINDOW},
    )
    for subscriber_id, delivery_id, cause, _ in rows:
        found.setdefault(subscriber_id, {})[delivery_id] = cause
    return found


def repeated_failures(causes: Iterable[FailureCause | None]) -> int:
    """How many of a reader's last messages failed for a reason of their own mailbox."""
    return sum(1 for cause in causes if cause in READER_CAUSES)


def reader_suppression(
    failed: FailedDelivery,
    reading: FailureReading,
    *,
    recent: dict[int, FailureCause | None],
    evidence: str,
) -> Suppression | None:
    """The rule for the reader: the suppression it asks for, if any. ``recent`` are the reader's
    last messages' causes (:func:`recent_failures`), updated here with this one."""
    from subscribers.store import Suppression

    if failed.subscriber_id is None:
        return None
    recent[failed.id] = reading.cause
    while len(recent) > REPEATED_WINDOW:
        del recent[min(recent)]
    verdict = reading.verdict
    if verdict is Verdict.SUPPRESS:
        why = f"address gone: {evidence}"
    elif verdict is Verdict.REPEATED and (n := repeated_failures(recent.values())) >= (
        REPEATED_LIMIT
    ):
        why = (
            f"{n} of the last {len(recent)} messages failed at the reader's mailbox "
            f"(last: {reading.cause.value}, {evidence})"
        )
    else:
        return None
    return Suppression(
        failed.subscriber_id,
        SubscriberStatus.BOUNCED,
        address=failed.address,
        reason=f"{why} (delivery {failed.id}, send {failed.send_id})",
        source="bounce",
        cause=reading.cause,
        evidence=evidence,
        send_id=failed.send_id,
    )


def domain_refusal(
    session: Session,
    failed: FailedDelivery,
    policy: RefusalPolicy,
    *,
    added: int = 1,
    attempted: bool = True,
) -> str | None:
    """Why the send should pause, when the last ``added`` refusals at ``failed``'s domain
    (already recorded on their deliveries; ``attempted`` when they were tried only now, not
    accepted earlier and bounced since) took the share of the domain's messages refused for
    reasons of ours or the path over the limit. Only the crossing pauses: staff who resume
    knowingly are not stopped by the next one."""
    domain = domain_of(failed.address)
    tally = _Tally.of(session, failed.send_id, domain)
    earlier = tally.attempts - added if attempted else tally.attempts
    if not policy.over(tally.refused, tally.attempts) or policy.over(
        tally.refused - added, earlier
    ):
        return None
    return tally.line(session)


def worst_refusal(session: Session, send_id: int) -> str | None:
    """The receiving domain that refused most of the send's messages for reasons of ours or the
    path, in one line (``send status``); None when none did. Counted from the per-domain
    counters (:func:`~distributor.sending.breakdown.domains_of`), so a million deliveries cost
    no more than a hundred; the server's words are those of the newest refusal of its cause."""
    refused_at: Counter[str] = Counter()
    rows = {row.domain: row for row in domains_of(session, send_id)}
    for domain, row in rows.items():
        refused_at[domain or ""] = sum(n for cause, n in row.causes.items() if cause in PATH_CAUSES)
    worst = refused_at.most_common(1)
    if not worst or not worst[0][1]:
        return None
    domain, refused = worst[0]
    row = rows[domain]
    causes = Counter({FailureCause(c): n for c, n in row.causes.items() if c in PATH_CAUSES})
    cause = causes.most_common(1)[0][0]
    words = session.scalar(
        select(func.coalesce(Delivery.smtp_response, Delivery.last_error))
        .where(
            Delivery.send_id == send_id,
            Delivery.channel == DeliveryChannel.EMAIL,
            Delivery.state.in_(ATTEMPTED),
            Delivery.failure_cause == cause,
            _at_domain(domain),
        )
        .order_by(Delivery.id.desc())
        .limit(1)
    )
    return refusal_line(domain, cause, refused, row.count(*ATTEMPTED), words)


def _at_domain(domain: str) -> Any:
    return func.lower(Delivery.address).like(f"%@{_like_escaped(domain)}", escape="\\")


@dataclass(frozen=True)
class _Tally:
    """A send's messages tried at one domain, and those refused for reasons of ours or the
    path, by cause (with the newest of each)."""

    domain: str
    attempts: int
    causes: Counter[FailureCause]
    newest: dict[FailureCause, int]

    @property
    def refused(self) -> int:
        return sum(self.causes.values())

    @classmethod
    def of(cls, session: Session, send_id: int, domain: str) -> _Tally:
        rows = session.execute(
            select(Delivery.failure_cause, func.count(), func.max(Delivery.id))
            .where(
                Delivery.send_id == send_id,
                Delivery.channel == DeliveryChannel.EMAIL,
                Delivery.state.in_(ATTEMPTED),
                _at_domain(domain),
            )
            .group_by(Delivery.failure_cause)
        ).all()
        refused = [(cause, n, newest) for cause, n, newest in rows if cause in PATH_CAUSES]
        return cls(
            domain,
            sum(n for _, n, _ in rows),
            Counter({cause: n for cause, n, _ in refused}),
            {cause: newest for cause, _, newest in refused},
        )

    def line(self, session: Session) -> str | None:
        if not self.causes:
            return None
        cause, _ = self.causes.most_common(1)[0]
        words = session.scalar(
            select(func.coalesce(Delivery.smtp_response, Delivery.last_error)).where(
                Delivery.id == self.newest[cause]
            )
        )
        return refusal_line(self.domain, cause, self.refused, self.attempts, words)


def refusal_line(
    domain: str, cause: FailureCause, refused: int, attempts: int, words: str | None
) -> str:
    """One line for staff: which domain refuses us, and why."""
    said = f": {words[:200]}" if words else ""
    return (
        f"{domain} refuses our mail ({cause.value}): {refused:,} of {attempts:,} messages there "
        f"({refused / attempts:.0%}){said}"
    )


@dataclass(frozen=True)
class RefusalEffects:
    """What one refusal did, each as a line for a log (None: not that)."""

    suppressed: str | None = None
    paused: str | None = None


def record_refusal(
    session: Session,
    failed: FailedDelivery,
    reading: FailureReading,
    *,
    evidence: str,
    policy: RefusalPolicy,
    now: datetime,
    unchecked: int = 1,
) -> RefusalEffects:
    """The rule applied to one failure the SMTP server gave us itself (at RCPT or DATA): its
    cause kept, the reader suppressed or the send paused as the rule says.
    ``unchecked``: the refusals at this domain since its wave was last looked at, this one
    included (0: do not look now)."""
    from distributor.sending.lifecycle import pause_for_error
    from subscribers.store import suppress_all

    session.connection().execute(_SET_CAUSE, {"b_id": failed.id, "b_cause": reading.cause})
    if reading.verdict is Verdict.NOT_READER:
        if not unchecked:
            return RefusalEffects()
        reason = domain_refusal(session, failed, policy, added=unchecked)
        if reason is not None and pause_for_error(session, failed.send_id, reason, now):
            return RefusalEffects(paused=reason)
        return RefusalEffects()
    if failed.subscriber_id is None:
        return RefusalEffects()
    recent = recent_failures(session, [failed.subscriber_id]).get(failed.subscriber_id, {})
    suppression = reader_suppression(failed, reading, recent=recent, evidence=evidence)
    if suppression is not None and suppress_all(session, [suppression])[0]:
        return RefusalEffects(suppressed=suppression.reason)
    return RefusalEffects()


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")

