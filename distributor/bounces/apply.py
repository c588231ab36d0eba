"""The feedback loop's effects: messages of the bounce mailbox in, their consequences written.

:func:`decide` and :func:`pause_reason` are the rules, pure; :func:`read` classifies and matches
a message, pure; :func:`apply_readings` reads what the rules need for a whole batch at once and
writes what they say, in the caller's transaction (:func:`process_feedback` for one message):

- a hard bounce makes the delivery ``bounced`` and suppresses the subscriber (``bounced``);
- a soft bounce leaves the delivery ``sent`` (the message may still arrive), but the third one
  within :data:`SOFT_BOUNCE_WINDOW` for different messages suppresses the subscriber too;
- a complaint makes the delivery ``complained`` and suppresses the subscriber (``complained``);
- a send whose share of hard bounces passes ``BOUNCE_PAUSE_RATE`` pauses itself.

The subscriber suppressed is the one the matched delivery was for, and only while they still
have that delivery's address: never whoever the report names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, tuple_, update
from sqlalchemy.orm import Session

from distributor.bounces import Feedback, FeedbackKind, MatchedFeedback, Unmatched, classify, match
from distributor.bounces.message import MAX_TEXT_CHARS, one_line
from distributor.bounces.models import FeedbackMessage, FeedbackOutcome
from distributor.config import Settings
from distributor.render.verp import Verp
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.models import Delivery
from distributor.sending.queries import delivery_counts_of, feedback_rate
from distributor.vocabulary import DeliveryChannel, DeliveryState
from subscribers.models import SubscriberStatus
from subscribers.store import Suppression, suppress_all

SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)
MESSAGE_ID_MAX = 300
GONE = "the delivery it names does not exist (any more)"
SENT, BOUNCED = DeliveryState.SENT.value, DeliveryState.BOUNCED.value
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^<>\r\n]{1,298}>)", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Effects:
    """What one matched report does: the delivery's new state, the subscriber's, and why."""

    delivery_state: DeliveryState | None
    suppress: SubscriberStatus | None
    reason: str


@dataclass(frozen=True)
class PausePolicy:
    rate: float  # hard bounces over accepted messages above which a send pauses
    min_accepted: int  # below this many accepted messages a rate says too little

    @classmethod
    def from_settings(cls, settings: Settings) -> PausePolicy:
        return cls(settings.bounce_pause_rate, settings.bounce_pause_min_sent)


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


def decide(feedback: Feedback, *, delivery_state: DeliveryState, soft_bounces: int) -> Effects:
    """The rules. ``soft_bounces`` counts this subscriber's soft bounces within the window,
    this one included. Only a ``sent`` delivery changes state (a complaint about a bounced
    message, say, leaves it bounced); suppression does not depend on it."""
    detail = " ".join(part for part in (feedback.status, feedback.diagnostic) if part)
    was_sent = delivery_state is DeliveryState.SENT
    if feedback.kind is FeedbackKind.HARD_BOUNCE:
        return Effects(
            DeliveryState.BOUNCED if was_sent else None,
            SubscriberStatus.BOUNCED,
            f"hard bounce: {detail or feedback.reason}",
        )
    if feedback.kind is FeedbackKind.COMPLAINT:
        return Effects(
            DeliveryState.COMPLAINED if was_sent else None,
            SubscriberStatus.COMPLAINED,
            f"complaint: {feedback.reason}",
        )
    if feedback.kind is FeedbackKind.SOFT_BOUNCE and soft_bounces >= SOFT_BOUNCE_LIMIT:
        return Effects(
            None,
            SubscriberStatus.BOUNCED,
            f"{soft_bounces} soft bounces within {SOFT_BOUNCE_WINDOW.days} days "
            f"(last: {detail or feedback.reason})",
        )
    return Effects(None, None, f"{feedback.kind.value}: {detail or feedback.reason}")


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
    batch = _Batch.load(session, list(fresh.values()), now=now)
    applied = [
        (each, *batch.apply(session, each, policy=policy, now=now)) for each in fresh.values()
    ]
    batch.write(session)
    asked = [suppression for *_, suppression in applied if suppression is not None]
    suppressed = iter(suppress_all(session, asked))
    rows: list[dict[str, object]] = []
    for each, target, done, suppression in applied:
        if suppression is not None and next(suppressed):
            done.append(f"subscriber {suppression.subscriber_id} suppressed")
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
    elif feedback.kind is FeedbackKind.AUTO_REPLY:
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
_DELIVERIES = cast(Table, Delivery.__table__)
_BY_DIGESTS = select(
    *(
        _FEEDBACK.c[name]
        for name in ("digest", "id", "kind", "outcome", "reason", "delivery_id", "send_id")
    )
).where(_FEEDBACK.c.digest.in_(bindparam("b_digests", expanding=True)))
_INSERT = insert(_FEEDBACK).returning(_FEEDBACK.c.id, sort_by_parameter_order=True)
_TARGET = select(
    *(_DELIVERIES.c[name] for name in ("id", "send_id", "subscriber_id", "address", "state"))
).order_by(_DELIVERIES.c.id)
_TARGETS_BY_ID = _TARGET.where(
    _DELIVERIES.c.id.in_(bindparam("b_ids", expanding=True))
).with_for_update()
_TARGETS_BY_MESSAGE = _TARGET.where(
    tuple_(_DELIVERIES.c.send_id, _DELIVERIES.c.subscriber_id).in_(
        bindparam("b_messages", expanding=True)
    ),
    _DELIVERIES.c.channel == DeliveryChannel.EMAIL,
).with_for_update()
_SOFT_BOUNCES = (
    select(_FEEDBACK.c.subscriber_id, _FEEDBACK.c.delivery_id)
    .where(
        _FEEDBACK.c.subscriber_id.in_(bindparam("b_subscriber_ids", expanding=True)),
        _FEEDBACK.c.kind == FeedbackKind.SOFT_BOUNCE,
        _FEEDBACK.c.outcome == FeedbackOutcome.APPLIED,
        _FEEDBACK.c.received_at >= bindparam("b_since"),
    )
    .distinct()
)
_MARK = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.state == DeliveryState.SENT)
    .values(
        state=bindparam("b_state"), last_error=bindparam("b_error"), updated_at=bindparam("b_at")
    )
)


@dataclass
class _Batch:
    """What the rules need of a batch's deliveries, subscribers and sends, read at once, and
    kept current in memory as its messages are applied one after another."""

    by_id: dict[int, Target]
    by_message: dict[tuple[int, int], Target]
    soft_bounces: dict[int, set[int]]  # subscriber -> deliveries soft-bounced within the window
    counts: dict[int, dict[str, int]]  # send -> deliveries per state
    marks: list[dict[str, object]] = field(default_factory=list)  # for one UPDATE of them all

    @classmethod
    def load(cls, session: Session, readings: Sequence[Reading], *, now: datetime) -> _Batch:
        connection = session.connection()
        matched = [each.result for each in readings if isinstance(each.result, MatchedFeedback)]
        ids = sorted({each.delivery_id for each in matched if each.delivery_id is not None})
        messages = sorted(
            {(each.message.send_id, each.message.subscriber_id) for each in matched if each.message}
        )
        by_id = {
            row.id: Target(*row) for row in connection.execute(_TARGETS_BY_ID, {"b_ids": ids})
        } if ids else {}  # fmt: skip
        by_message: dict[tuple[int, int], Target] = {}
        if messages:
            for row in connection.execute(_TARGETS_BY_MESSAGE, {"b_messages": messages}):
                target = by_id.setdefault(row.id, Target(*row))
                by_message.setdefault((target.send_id, cast(int, target.subscriber_id)), target)
        targets = list(by_id.values())
        soft = sorted({t.subscriber_id for t in targets if t.subscriber_id is not None})
        soft_bounces: dict[int, set[int]] = {}
        if soft:
            since = now - SOFT_BOUNCE_WINDOW
            found = connection.execute(_SOFT_BOUNCES, {"b_subscriber_ids": soft, "b_since": since})
            for subscriber_id, delivery_id in found:
                soft_bounces.setdefault(subscriber_id, set()).add(delivery_id)
        counts = delivery_counts_of(session, sorted({t.send_id for t in targets}))
        return cls(by_id, by_message, soft_bounces, counts)

    def target_of(self, result: MatchedFeedback) -> Target | None:
        if result.delivery_id is not None:
            return self.by_id.get(result.delivery_id)
        assert result.message is not None
        return self.by_message.get((result.message.send_id, result.message.subscriber_id))

    def apply(
        self, session: Session, reading: Reading, *, policy: PausePolicy, now: datetime
    ) -> tuple[Target | None, list[str], Suppression | None]:
        """The matched delivery, what was done, and the suppression it asks for (written with
        the others' by :func:`suppress_all`)."""
        feedback, result = reading.feedback, reading.result
        target = self.target_of(result) if isinstance(result, MatchedFeedback) else None
        if target is None:
            return None, [result.reason if isinstance(result, Unmatched) else GONE], None
        target = self.by_id[target.id]  # as changed by the batch so far
        soft = 0
        if feedback.kind is FeedbackKind.SOFT_BOUNCE and target.subscriber_id is not None:
            earlier = self.soft_bounces.setdefault(target.subscriber_id, set())
            soft = len(earlier - {target.id}) + 1
            earlier.add(target.id)
        effects = decide(feedback, delivery_state=target.state, soft_bounces=soft)
        done = [effects.reason]
        if effects.delivery_state is not None:  # only ever from sent: the row is locked
            self._mark(target, effects.delivery_state, effects.reason, now)
            done.append(f"delivery {target.id} is {effects.delivery_state.value}")
            reason = self._count(target.send_id, effects.delivery_state, policy)
            if reason is not None and pause_for_error(session, target.send_id, reason, now):
                done.append(f"send {target.send_id} paused")
        if effects.suppress is None or target.subscriber_id is None:
            return target, done, None
        suppression = Suppression(
            target.subscriber_id,
            effects.suppress,
            address=target.address,
            reason=f"{effects.reason} (delivery {target.id}, send {target.send_id})",
            source="complaint" if effects.suppress is SubscriberStatus.COMPLAINED else "bounce",
        )
        return target, done, suppression

    def _mark(self, target: Target, state: DeliveryState, reason: str, now: datetime) -> None:
        self.by_id[target.id] = replace(target, state=state)
        self.marks.append(
            {"b_id": target.id, "b_state": state, "b_error": reason[:2000], "b_at": now}
        )

    def _count(self, send_id: int, state: DeliveryState, policy: PausePolicy) -> str | None:
        """Move one delivery of the send from sent to ``state`` in the counts; why the send
        should pause now, if this took its hard-bounce rate over the limit."""
        before = self.counts.get(send_id, {})
        after = {
            **before,
            SENT: before.get(SENT, 0) - 1,
            state.value: before.get(state.value, 0) + 1,
        }
        self.counts[send_id] = after
        return pause_reason(before, after, policy)

    def write(self, session: Session) -> None:
        """The deliveries' new states, in one statement."""
        if self.marks:
            session.connection().execute(_MARK, self.marks)


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
            row.delivery_id,
            row.send_id,
            address,
        )
        for row, address in rows
    ]
