"""The feedback loop's effects: messages of the bounce mailbox in, their consequences written.

:func:`decide` and :func:`pause_reason` are the rules, pure; :func:`read` classifies and matches
a message, pure; :func:`apply_readings` reads what the rules need for a whole batch at once and
writes what they say, in the caller's transaction (:func:`process_feedback` for one message):

- a hard bounce makes the delivery ``bounced``, a soft one leaves it ``sent`` (the message may
  still arrive); what it costs the reader is the one rule of :mod:`distributor.sending.refusals`,
  by its cause, as for the SMTP server's own answers: an address gone suppresses them, their
  mailbox failing 3 of their last 5 messages too, anything about us or the path never (it counts
  against the send and the domain, and a wave of it pauses the send);
- a complaint makes the delivery ``complained`` and suppresses the subscriber (``complained``);
  an opt-out report unsubscribes them; a DMARC report touches no reader;
- a send whose share of hard bounces for addresses gone passes ``BOUNCE_PAUSE_RATE`` pauses.

The subscriber suppressed is the one the matched delivery was for, and only while they still
have that delivery's address: never whoever the report names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from distributor.bounces import Feedback, FeedbackKind
from distributor.bounces.classify import classify
from distributor.bounces.feedback import RecipientFailure
from distributor.bounces.match import MatchedFeedback, Unmatched, match
from distributor.bounces.message import MAX_TEXT_CHARS, one_line
from distributor.bounces.models import FeedbackMessage, FeedbackOutcome
from distributor.config import Settings
from distributor.failures import Verdict, domain_of
from distributor.outbox import EventKind, record_event
from distributor.render.verp import Verp
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.models import DELIVERIES, Delivery
from distributor.sending.queries import delivery_counts_of, feedback_rate
from distributor.sending.refusals import (
    FailedDelivery,
    RefusalPolicy,
    domain_refusal,
    reader_suppression,
    recent_failures,
)
from distributor.vocabulary import READER_CAUSES, DeliveryState, FailureCause
from subscribers.models import SubscriberStatus
from subscribers.store import Suppression, suppress_all

MESSAGE_ID_MAX = 300
GONE = "the delivery it names does not exist (any more)"
SENT, BOUNCED = DeliveryState.SENT.value, DeliveryState.BOUNCED.value
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^<>\r\n]{1,298}>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Effects:
    """What one matched report does to the delivery and the subscriber, and why; a bounce's
    cost to the reader is decided by :func:`~distributor.sending.refusals.reader_suppression`."""

    delivery_state: DeliveryState | None
    suppress: SubscriberStatus | None
    reason: str
    failure: RecipientFailure | None = None  # a bounce's, for the delivery it matched


@dataclass(frozen=True)
class PausePolicy:
    rate: float  # hard bounces over accepted messages above which a send pauses
    min_accepted: int  # below this many accepted messages a rate says too little
    refusals: RefusalPolicy = field(
        default_factory=lambda: RefusalPolicy.from_settings(Settings())
    )  # when a domain's refusals of ours or the path pause a send

    @classmethod
    def from_settings(cls, settings: Settings) -> PausePolicy:
        return cls(
            settings.bounce_pause_rate,
            settings.bounce_pause_min_sent,
            RefusalPolicy.from_settings(settings),
        )


@dataclass(frozen=True)
class Processed:
    """The stored outcome of one message: a repeat of the same bytes gets the first one back."""

    id: int
    kind: FeedbackKind
    outcome: FeedbackOutcome
    reason: str
    delivery_id: int | None
    send_id: int | None
    repeat: bool = False

    @property
    def handled(self) -> bool:
        """False for what a person should look at (unknown, unmatched, refused)."""
        return self.outcome is not FeedbackOutcome.UNMATCHED


def decide(feedback: Feedback, *, delivery_state: DeliveryState, address: str) -> Effects:
    """The rules for the delivery (to ``address``) a report matched. Only a ``sent`` delivery
    changes state (a complaint about a bounced message, say, leaves it bounced)."""
    was_sent = delivery_state is DeliveryState.SENT
    if feedback.kind is FeedbackKind.COMPLAINT:
        return Effects(
            DeliveryState.COMPLAINED if was_sent else None,
            SubscriberStatus.COMPLAINED,
            f"complaint: {feedback.reason}",
        )
    if feedback.kind is FeedbackKind.OPT_OUT:
        return Effects(None, SubscriberStatus.UNSUBSCRIBED, f"opt-out: {feedback.reason}")
    failure = feedback.failure_for(address)
    if failure is None:
        return Effects(None, None, f"{feedback.kind.value}: {feedback.reason}")
    detail = " ".join(part for part in (failure.status, failure.diagnostic) if part)
    hard = failure.kind is FeedbackKind.HARD_BOUNCE
    return Effects(
        DeliveryState.BOUNCED if hard and was_sent else None,
        None,
        f"{failure.kind.value.replace('_', ' ')} ({failure.cause.value}): "
        f"{detail or feedback.reason}",
        failure,
    )


def pause_reason(before: dict[str, int], after: dict[str, int], policy: PausePolicy) -> str | None:
    """Why a send should pause, when this bounce took its hard-bounce rate past the limit.

    Only the crossing pauses: staff who resume a send knowingly are not stopped again by the
    next bounce of the same bad list."""

    def over(counts: dict[str, int]) -> bool:
        rate = feedback_rate(counts, DeliveryState.BOUNCED)
        accepted = sum(counts.get(state, 0) for state in ("sent", "bounced", "complained"))
        return rate is not None and accepted >= policy.min_accepted and rate > policy.rate

    if not over(after) or over(before):
        return None
    rate = feedback_rate(after, DeliveryState.BOUNCED) or 0.0
    return (
        f"{after.get(DeliveryState.BOUNCED.value, 0):,} messages bounced hard ({rate:.1%} of "
        f"those accepted, above the limit of {policy.rate:.1%}): the list may be old or bought"
    )


def digest_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


@dataclass(frozen=True)
class Reading:
    """One message read and matched, before any database: :func:`read` makes it, pure, so a
    batch can be read first and applied at once."""

    raw: bytes
    digest: str
    feedback: Feedback
    result: MatchedFeedback | Unmatched
    message_id: str | None  # its own, for a person to find it in the mailbox


def read(raw: bytes, *, verp: Verp, now: datetime) -> Reading:
    """Classify and match one message (its first ``MAX_MESSAGE_BYTES`` are enough)."""
    feedback = classify(raw)
    result = match(feedback, verp, now=now.timestamp())
    return Reading(raw, digest_of(raw), feedback, result, _own_message_id(raw))


def process_feedback(
    session: Session, raw: bytes, *, verp: Verp, policy: PausePolicy, now: datetime
) -> Processed:
    """Classify, match and apply one message, once: the same bytes a second time change nothing
    and return the first outcome."""
    return apply_readings(session, [read(raw, verp=verp, now=now)], policy=policy, now=now)[0]


def apply_readings(
    session: Session, readings: Sequence[Reading], *, policy: PausePolicy, now: datetime
) -> list[Processed]:
    """Apply messages read by :func:`read`, in order, each once, in the caller's transaction:
    as if one after another, but with a fixed number of statements for the whole batch (one
    lookup of what was seen before, of the deliveries, of the soft bounces, of the sends'
    counts; one update of the deliveries, of the subscribers, one insert of the messages).
    The deliveries and subscribers touched are locked, so the rules decide on what is written.

    A mailbox may hold thousands after a large send: the statements are built once, and plain
    (no unit of work)."""
    connection = session.connection()
    digests = sorted({each.digest for each in readings})
    seen = {row[0]: replace(Processed(*row[1:]), repeat=True) for row in connection.execute(
        _BY_DIGESTS, {"b_digests": digests}
    )} if digests else {}  # fmt: skip
    fresh: dict[str, Reading] = {}
    for each in readings:
        if each.digest not in seen:
            fresh.setdefault(each.digest, each)
    batch = _Batch.load(session, list(fresh.values()))
    applied = [
        (each, *batch.apply(session, each, policy=policy, now=now)) for each in fresh.values()
    ]
    paused = batch.write(session, policy=policy, now=now)
    asked = [suppression for *_, suppression in applied if suppression is not None]
    suppressed = iter(suppress_all(session, asked))
    rows: list[dict[str, object]] = []
    for each, target, done, suppression in applied:
        if suppression is not None and next(suppressed):
            why = "" if suppression.source != "bounce" else f" ({suppression.reason})"
            done.append(f"subscriber {suppression.subscriber_id} suppressed{why}")
        if target is not None and target.send_id in paused:
            done.append(paused.pop(target.send_id))
        rows.append(_row_of(each, target, "; ".join(done), now))
    ids = connection.execute(_INSERT, rows).scalars().all() if rows else []
    for row, new_id in zip(rows, ids, strict=True):
        seen[cast(str, row["digest"])] = Processed(
            new_id,
            cast(FeedbackKind, row["kind"]),
            cast(FeedbackOutcome, row["outcome"]),
            cast(str, row["reason"]),
            cast("int | None", row["delivery_id"]),
            cast("int | None", row["send_id"]),
        )
    results = []
    for each in readings:
        result = seen[each.digest]
        results.append(result if fresh.pop(each.digest, None) else replace(result, repeat=True))
    return results


def _row_of(
    reading: Reading, target: Target | None, reason: str, now: datetime
) -> dict[str, object]:
    """The stored message: the raw bytes only of one nobody could act on."""
    feedback = reading.feedback
    row: dict[str, object] = dict.fromkeys(
        ("matched_by", "delivery_id", "send_id", "subscriber_id", "raw")
    )
    if target is not None and isinstance(reading.result, MatchedFeedback):  # matched and found
        outcome = FeedbackOutcome.APPLIED
        row |= {
            "matched_by": reading.result.matched_by,
            "delivery_id": target.id,
            "send_id": target.send_id,
            "subscriber_id": target.subscriber_id,
        }
    elif feedback.kind in (FeedbackKind.AUTO_REPLY, FeedbackKind.AUTH_REPORT):
        outcome = FeedbackOutcome.IGNORED
    else:
        outcome, row["raw"] = FeedbackOutcome.UNMATCHED, reading.raw
    return row | {
        "digest": reading.digest,
        "message_id": reading.message_id,
        "kind": feedback.kind,
        "outcome": outcome,
        "reason": reason,
        "status": feedback.status,
        "diagnostic": feedback.diagnostic,
        "cause": feedback.cause,
        "received_at": now,
    }


@dataclass(frozen=True)
class Target:
    """The matched delivery, as far as its effects need it."""

    id: int
    send_id: int
    subscriber_id: int | None
    address: str
    state: DeliveryState


# The statements of the hot path, built once: building one costs more than running it.
_FEEDBACK = cast(Table, FeedbackMessage.__table__)
_BY_DIGESTS = select(
    *(
        _FEEDBACK.c[name]
        for name in ("digest", "id", "kind", "outcome", "reason", "delivery_id", "send_id")
    )
).where(_FEEDBACK.c.digest.in_(bindparam("b_digests", expanding=True)))
_INSERT = insert(_FEEDBACK).returning(_FEEDBACK.c.id, sort_by_parameter_order=True)
_TARGET = select(
    *(DELIVERIES.c[name] for name in ("id", "send_id", "subscriber_id", "address", "state"))
).order_by(DELIVERIES.c.id)
_TARGETS_BY_ID = _TARGET.where(
    DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True))
).with_for_update()
_MARK = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("b_id"), DELIVERIES.c.state == DeliveryState.SENT)
    .values(
        state=bindparam("b_state"), last_error=bindparam("b_error"), updated_at=bindparam("b_at")
    )
)
_SET_CAUSE = (
    update(DELIVERIES)
    .where(DELIVERIES.c.id == bindparam("b_id"))
    .values(failure_cause=bindparam("b_cause"))
)


@dataclass
class _Batch:
    """What the rules need of a batch's deliveries, subscribers and sends, read at once, and
    kept current in memory as its messages are applied one after another."""

    by_id: dict[int, Target]
    recent: dict[int, dict[int, FailureCause | None]]  # subscriber -> last messages' causes
    counts: dict[int, dict[str, int]]  # send -> deliveries per state
    marks: list[dict[str, object]] = field(default_factory=list)  # for one UPDATE of them all
    causes: list[dict[str, object]] = field(default_factory=list)  # likewise
    # (send, domain) -> a delivery refused there for a reason of ours or the path, and how many
    refusals: dict[tuple[int, str], tuple[FailedDelivery, int]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, readings: Sequence[Reading]) -> _Batch:
        connection = session.connection()
        ids = sorted(
            {
                each.result.delivery_id
                for each in readings
                if isinstance(each.result, MatchedFeedback)
            }
        )
        by_id = {
            row.id: Target(*row) for row in connection.execute(_TARGETS_BY_ID, {"b_ids": ids})
        } if ids else {}  # fmt: skip
        targets = list(by_id.values())
        recent = recent_failures(
            session, [t.subscriber_id for t in targets if t.subscriber_id is not None]
        )
        counts = delivery_counts_of(session, sorted({t.send_id for t in targets}))
        return cls(by_id, recent, counts)

    def apply(
        self, session: Session, reading: Reading, *, policy: PausePolicy, now: datetime
    ) -> tuple[Target | None, list[str], Suppression | None]:
        """The matched delivery, what was done, and the suppression it asks for (written with
        the others' by :func:`suppress_all`)."""
        feedback, result = reading.feedback, reading.result
        target = (
            self.by_id.get(result.delivery_id) if isinstance(result, MatchedFeedback) else None
        )
        if target is None:
            return None, [result.reason if isinstance(result, Unmatched) else GONE], None
        effects = decide(feedback, delivery_state=target.state, address=target.address)
        done = [effects.reason]
        failure = effects.failure
        if effects.delivery_state is not None:  # only ever from sent: the row is locked
            self._mark(target, effects.delivery_state, effects.reason, now)
            done.append(f"delivery {target.id} is {effects.delivery_state.value}")
            gone = failure is None or failure.cause is FailureCause.ADDRESS_GONE
            reason = self._count(target.send_id, effects.delivery_state, policy, pause=gone)
            if reason is not None and pause_for_error(session, target.send_id, reason, now):
                done.append(f"send {target.send_id} paused")
        if failure is not None:
            return target, done, self._failed(target, failure, effects)
        if effects.suppress is None or target.subscriber_id is None:
            return target, done, None
        suppression = Suppression(
            target.subscriber_id,
            effects.suppress,
            address=target.address,
            reason=f"{effects.reason} (delivery {target.id}, send {target.send_id})",
            source=_SOURCES[effects.suppress],
            send_id=target.send_id,
        )
        return target, done, suppression

    def _failed(
        self, target: Target, failure: RecipientFailure, effects: Effects
    ) -> Suppression | None:
        """A bounce's cost: kept on the delivery (when it says the message will not arrive, or
        is about the reader's mailbox), then the one rule for the reader or the domain."""
        hard = failure.kind is FeedbackKind.HARD_BOUNCE
        if not hard and failure.cause not in READER_CAUSES:
            return None  # delayed on the way: it may still arrive, and it is not the reader's
        self.causes.append({"b_id": target.id, "b_cause": failure.cause})
        failed = FailedDelivery(target.id, target.send_id, target.subscriber_id, target.address)
        reading = failure.reading
        if reading.verdict is Verdict.NOT_READER:
            key = (target.send_id, domain_of(target.address))
            self.refusals[key] = (failed, self.refusals.get(key, (failed, 0))[1] + 1)
            return None
        if target.subscriber_id is None:
            return None
        recent = self.recent.setdefault(target.subscriber_id, {})
        evidence = " ".join(part for part in (failure.status, failure.diagnostic) if part)
        return reader_suppression(
            failed, reading, recent=recent, evidence=evidence or effects.reason
        )

    def _mark(self, target: Target, state: DeliveryState, reason: str, now: datetime) -> None:
        self.by_id[target.id] = replace(target, state=state)
        self.marks.append(
            {"b_id": target.id, "b_state": state, "b_error": reason[:2000], "b_at": now}
        )

    def _count(
        self, send_id: int, state: DeliveryState, policy: PausePolicy, *, pause: bool
    ) -> str | None:
        """Move one delivery of the send from sent to ``state`` in the counts; why the send
        should pause now, if this (an address gone) took its hard-bounce rate over the limit."""
        before = self.counts.get(send_id, {})
        after = {
            **before,
            SENT: before.get(SENT, 0) - 1,
            state.value: before.get(state.value, 0) + 1,
        }
        self.counts[send_id] = after
        return pause_reason(before, after, policy) if pause else None

    def write(self, session: Session, *, policy: PausePolicy, now: datetime) -> dict[int, str]:
        """The deliveries' new states and causes, in one statement each; then the sends whose
        domain refusals this batch took over the limit are paused (send -> what was done)."""
        connection = session.connection()
        if self.marks:
            connection.execute(_MARK, self.marks)
        for mark in self.marks:  # told to the webhooks listening, in this transaction
            target = self.by_id[int(str(mark["b_id"]))]
            record_event(
                session,
                _FEEDBACK_EVENTS[target.state],
                {
                    "send_id": target.send_id,
                    "delivery_id": target.id,
                    "subscriber_id": target.subscriber_id,
                    "address": target.address,
                    "reason": mark["b_error"],
                },
                at=now,
            )
        if self.causes:
            connection.execute(_SET_CAUSE, self.causes)
        paused = {}
        for failed, n in self.refusals.values():
            reason = domain_refusal(session, failed, policy.refusals, added=n, attempted=False)
            if reason is not None and pause_for_error(session, failed.send_id, reason, now):
                paused[failed.send_id] = f"send {failed.send_id} paused: {reason}"
        return paused


_FEEDBACK_EVENTS = {
    DeliveryState.BOUNCED: EventKind.DELIVERY_BOUNCED,
    DeliveryState.COMPLAINED: EventKind.DELIVERY_COMPLAINED,
}
_SOURCES = {
    SubscriberStatus.COMPLAINED: "complaint",
    SubscriberStatus.UNSUBSCRIBED: "opt-out report",
    SubscriberStatus.BOUNCED: "bounce",
}


def _own_message_id(raw: bytes) -> str | None:
    """The message's own Message-ID, for a person to find it in the mailbox: a cheap look at
    its header block (it is only shown, never trusted)."""
    head = raw[:MAX_TEXT_CHARS].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    found = _MESSAGE_ID.search(head)
    return None if found is None else one_line(found[1].decode("latin-1"))[:MESSAGE_ID_MAX]


@dataclass(frozen=True)
class FeedbackView:
    """One processed message as staff read it (no raw bytes)."""

    id: int
    received_at: datetime
    kind: str
    outcome: str
    reason: str
    status: str | None
    cause: str | None  # a bounce's: why the message did not arrive
    delivery_id: int | None
    send_id: int | None
    address: str | None  # the matched delivery's, not what the report claims

    def to_json(self) -> dict[str, object]:
        return {**vars(self), "received_at": self.received_at.isoformat()}


def list_feedback(
    session: Session,
    *,
    send_id: int | None = None,
    outcome: FeedbackOutcome | None = None,
    limit: int = 50,
) -> list[FeedbackView]:
    """Processed messages, newest first: of one send, or of one outcome (the unmatched ones,
    for a person to look at)."""
    query = select(FeedbackMessage, Delivery.address).outerjoin(
        Delivery, Delivery.id == FeedbackMessage.delivery_id
    )
    if send_id is not None:
        query = query.where(FeedbackMessage.send_id == send_id)
    if outcome is not None:
        query = query.where(FeedbackMessage.outcome == outcome)
    rows = session.execute(query.order_by(FeedbackMessage.id.desc()).limit(limit))
    return [
        FeedbackView(
            row.id,
            row.received_at,
            row.kind.value,
            row.outcome.value,
            row.reason,
            row.status,
            row.cause.value if row.cause else None,
            row.delivery_id,
            row.send_id,
            address,
        )
        for row, address in rows
    ]
