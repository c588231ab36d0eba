"""The feedback loop's effects: one message of the bounce mailbox in, its consequences written.

:func:`decide` and :func:`pause_reason` are the rules, pure; :func:`process_feedback` reads what
they need and writes what they say, in the caller's transaction:

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from distributor.bounces import (
    Feedback,
    FeedbackKind,
    MatchedFeedback,
    Unmatched,
    Verp,
    classify,
    match,
)
from distributor.bounces.message import MAX_TEXT_CHARS, one_line
from distributor.channels.base import DeliveryChannel
from distributor.config import Settings
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.models import (
    Delivery,
    DeliveryState,
    FeedbackMessage,
    FeedbackOutcome,
)
from distributor.sending.service import delivery_counts, feedback_rate
from subscribers.models import SubscriberStatus
from subscribers.store import suppress

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


def process_feedback(
    session: Session, raw: bytes, *, verp: Verp, policy: PausePolicy, now: datetime
) -> Processed:
    """Classify, match and apply one message (its first ``MAX_MESSAGE_BYTES`` are enough), once:
    the same bytes a second time change nothing and return the first outcome.

    Plain statements rather than the unit of work: this runs once per message of a mailbox that
    may hold thousands after a large send."""
    digest = digest_of(raw)
    stored = session.connection().execute(_BY_DIGEST, {"b_digest": digest}).first()
    if stored is not None:
        return replace(Processed(*stored), repeat=True)
    feedback = classify(raw)
    result = match(feedback, verp, now=now.timestamp())
    target = _target_of(session, result) if isinstance(result, MatchedFeedback) else None
    row: dict[str, object] = {}
    if isinstance(result, Unmatched) or target is None:
        reason = result.reason if isinstance(result, Unmatched) else GONE
        if feedback.kind is FeedbackKind.AUTO_REPLY:
            outcome = FeedbackOutcome.IGNORED
        else:
            outcome, row["raw"] = FeedbackOutcome.UNMATCHED, raw
    else:
        outcome = FeedbackOutcome.APPLIED
        row |= {
            "matched_by": result.matched_by,
            "delivery_id": target.id,
            "send_id": target.send_id,
            "subscriber_id": target.subscriber_id,
        }
        reason = _apply(session, feedback, target, policy=policy, now=now)
    values = dict.fromkeys(("matched_by", "delivery_id", "send_id", "subscriber_id", "raw"))
    new_id = (
        session.connection()
        .execute(
            _INSERT,
            values
            | row
            | {
                "digest": digest,
                "message_id": _own_message_id(raw),
                "kind": feedback.kind,
                "outcome": outcome,
                "reason": reason,
                "status": feedback.status,
                "diagnostic": feedback.diagnostic,
                "received_at": now,
            },
        )
        .scalar_one()
    )
    return Processed(
        new_id,
        feedback.kind,
        outcome,
        reason,
        target.id if target and outcome is FeedbackOutcome.APPLIED else None,
        target.send_id if target and outcome is FeedbackOutcome.APPLIED else None,
    )


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
_BY_DIGEST = select(
    *(_FEEDBACK.c[name] for name in ("id", "kind", "outcome", "reason", "delivery_id", "send_id"))
).where(_FEEDBACK.c.digest == bindparam("b_digest"))
_INSERT = insert(_FEEDBACK).returning(_FEEDBACK.c.id)
_TARGET = select(
    *(_DELIVERIES.c[name] for name in ("id", "send_id", "subscriber_id", "address", "state"))
)
_TARGET_BY_ID = _TARGET.where(_DELIVERIES.c.id == bindparam("b_id"))
_TARGET_BY_MESSAGE = _TARGET.where(
    _DELIVERIES.c.send_id == bindparam("b_send_id"),
    _DELIVERIES.c.subscriber_id == bindparam("b_subscriber_id"),
    _DELIVERIES.c.channel == DeliveryChannel.EMAIL,
)
_SOFT_BOUNCES = select(func.count(func.distinct(_FEEDBACK.c.delivery_id))).where(
    _FEEDBACK.c.subscriber_id == bindparam("b_subscriber_id"),
    _FEEDBACK.c.kind == FeedbackKind.SOFT_BOUNCE,
    _FEEDBACK.c.outcome == FeedbackOutcome.APPLIED,
    _FEEDBACK.c.received_at >= bindparam("b_since"),
    _FEEDBACK.c.delivery_id != bindparam("b_id"),
)
_MARK = (
    update(_DELIVERIES)
    .where(_DELIVERIES.c.id == bindparam("b_id"), _DELIVERIES.c.state == DeliveryState.SENT)
    .values(
        state=bindparam("b_state"), last_error=bindparam("b_error"), updated_at=bindparam("b_at")
    )
)


def _apply(
    session: Session, feedback: Feedback, target: Target, *, policy: PausePolicy, now: datetime
) -> str:
    soft = 0
    if feedback.kind is FeedbackKind.SOFT_BOUNCE and target.subscriber_id is not None:
        soft = _soft_bounces(session, target.subscriber_id, target.id, now) + 1
    effects = decide(feedback, delivery_state=target.state, soft_bounces=soft)
    done = [effects.reason]
    if effects.delivery_state is not None:
        before = (
            delivery_counts(session, target.send_id)
            if effects.delivery_state is (DeliveryState.BOUNCED)
            else {}
        )
        marking = {
            "b_id": target.id,
            "b_state": effects.delivery_state,
            "b_error": effects.reason[:2000],
            "b_at": now,
        }
        changed = session.connection().execute(_MARK, marking).rowcount
        if changed:
            done.append(f"delivery {target.id} is {effects.delivery_state.value}")
        if changed and effects.delivery_state is DeliveryState.BOUNCED:
            after = {**before, SENT: before.get(SENT, 0) - 1, BOUNCED: before.get(BOUNCED, 0) + 1}
            reason = pause_reason(before, after, policy)
            if reason is not None and pause_for_error(session, target.send_id, reason, now):
                done.append(f"send {target.send_id} paused")
    if effects.suppress is not None and target.subscriber_id is not None:
        suppressed = suppress(
            session,
            target.subscriber_id,
            effects.suppress,
            address=target.address,
            reason=f"{effects.reason} (delivery {target.id}, send {target.send_id})",
            source="complaint" if effects.suppress is SubscriberStatus.COMPLAINED else "bounce",
        )
        if suppressed:
            done.append(f"subscriber {target.subscriber_id} suppressed")
    return "; ".join(done)


def _target_of(session: Session, result: MatchedFeedback) -> Target | None:
    if result.delivery_id is not None:
        row = session.connection().execute(_TARGET_BY_ID, {"b_id": result.delivery_id}).first()
    else:
        assert result.message is not None
        message = {
            "b_send_id": result.message.send_id,
            "b_subscriber_id": result.message.subscriber_id,
        }
        row = session.connection().execute(_TARGET_BY_MESSAGE, message).first()
    return None if row is None else Target(*row)


def _soft_bounces(session: Session, subscriber_id: int, delivery_id: int, now: datetime) -> int:
    """Soft bounces of other messages to this subscriber within the window (a relay's repeated
    delay warnings for one message count once)."""
    since = now - SOFT_BOUNCE_WINDOW
    found = session.connection().execute(
        _SOFT_BOUNCES, {"b_subscriber_id": subscriber_id, "b_since": since, "b_id": delivery_id}
    )
    return int(found.scalar() or 0)


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
