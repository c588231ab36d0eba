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
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
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
from distributor.bounces.message import MAX_TEXT_CHARS, header_text, one_line, parse_headers
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
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.store import suppress

SOFT_BOUNCE_LIMIT = 3
SOFT_BOUNCE_WINDOW = timedelta(days=30)
MESSAGE_ID_MAX = 300
GONE = "the delivery it names does not exist (any more)"


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
    the same bytes a second time change nothing and return the first outcome."""
    digest = digest_of(raw)
    stored = session.scalar(select(FeedbackMessage).where(FeedbackMessage.digest == digest))
    if stored is not None:
        return _processed(stored, repeat=True)
    feedback = classify(raw)
    result = match(feedback, verp, now=now.timestamp())
    row = FeedbackMessage(
        digest=digest,
        message_id=_own_message_id(raw),
        kind=feedback.kind,
        status=feedback.status,
        diagnostic=feedback.diagnostic,
        received_at=now,
    )
    delivery = _delivery_of(session, result) if isinstance(result, MatchedFeedback) else None
    if isinstance(result, Unmatched) or delivery is None:
        reason = result.reason if isinstance(result, Unmatched) else GONE
        if feedback.kind is FeedbackKind.AUTO_REPLY:
            row.outcome, row.reason = FeedbackOutcome.IGNORED, reason
        else:
            row.outcome, row.reason, row.raw = FeedbackOutcome.UNMATCHED, reason, raw
    else:
        assert isinstance(result, MatchedFeedback)
        row.outcome = FeedbackOutcome.APPLIED
        row.matched_by = result.matched_by
        row.delivery_id, row.send_id = delivery.id, delivery.send_id
        row.subscriber_id = delivery.subscriber_id
        row.reason = _apply(session, feedback, delivery, policy=policy, now=now)
    session.add(row)
    session.flush()
    return _processed(row)


def _apply(
    session: Session, feedback: Feedback, delivery: Delivery, *, policy: PausePolicy, now: datetime
) -> str:
    soft = 0
    if feedback.kind is FeedbackKind.SOFT_BOUNCE and delivery.subscriber_id is not None:
        soft = _soft_bounces(session, delivery.subscriber_id, delivery.id, now) + 1
    effects = decide(feedback, delivery_state=delivery.state, soft_bounces=soft)
    done = [effects.reason]
    if effects.delivery_state is not None:
        before = delivery_counts(session, delivery.send_id)
        session.execute(
            update(Delivery)
            .where(Delivery.id == delivery.id, Delivery.state == DeliveryState.SENT)
            .values(state=effects.delivery_state, last_error=effects.reason[:2000], updated_at=now)
        )
        done.append(f"delivery {delivery.id} is {effects.delivery_state.value}")
        if effects.delivery_state is DeliveryState.BOUNCED:
            reason = pause_reason(before, delivery_counts(session, delivery.send_id), policy)
            if reason is not None and pause_for_error(session, delivery.send_id, reason, now):
                done.append(f"send {delivery.send_id} paused")
    if effects.suppress is not None and _still_at(session, delivery):
        assert delivery.subscriber_id is not None
        source = "complaint" if effects.suppress is SubscriberStatus.COMPLAINED else "bounce"
        if suppress(
            session,
            delivery.subscriber_id,
            effects.suppress,
            reason=f"{effects.reason} (delivery {delivery.id}, send {delivery.send_id})",
            source=source,
        ):
            done.append(f"subscriber {delivery.subscriber_id} suppressed")
    return "; ".join(done)


def _delivery_of(session: Session, result: MatchedFeedback) -> Delivery | None:
    if result.delivery_id is not None:
        return session.get(Delivery, result.delivery_id)
    assert result.message is not None
    return session.scalar(
        select(Delivery).where(
            Delivery.send_id == result.message.send_id,
            Delivery.subscriber_id == result.message.subscriber_id,
            Delivery.channel == DeliveryChannel.EMAIL,
        )
    )


def _still_at(session: Session, delivery: Delivery) -> bool:
    """Whether the delivery's subscriber still has the address it went to: a bounce for an
    address since corrected must not suppress the new one."""
    if delivery.subscriber_id is None:
        return False
    key = session.scalar(
        select(Subscriber.email_key).where(Subscriber.id == delivery.subscriber_id)
    )
    return key is not None and key == delivery.address.lower()


def _soft_bounces(session: Session, subscriber_id: int, delivery_id: int, now: datetime) -> int:
    """Soft bounces of other messages to this subscriber within the window (a relay's repeated
    delay warnings for one message count once)."""
    return int(
        session.scalar(
            select(func.count(func.distinct(FeedbackMessage.delivery_id))).where(
                FeedbackMessage.subscriber_id == subscriber_id,
                FeedbackMessage.kind == FeedbackKind.SOFT_BOUNCE,
                FeedbackMessage.outcome == FeedbackOutcome.APPLIED,
                FeedbackMessage.received_at >= now - SOFT_BOUNCE_WINDOW,
                FeedbackMessage.delivery_id != delivery_id,
            )
        )
        or 0
    )


def _own_message_id(raw: bytes) -> str | None:
    """The message's own Message-ID, for a person to find it in the mailbox (the header parser
    stops at the blank line, and reads no more than ``MAX_TEXT_CHARS``)."""
    headers = parse_headers(raw[:MAX_TEXT_CHARS].decode("latin-1"))
    value = one_line(header_text(headers, "Message-ID"))
    return value[:MESSAGE_ID_MAX] or None


def _processed(row: FeedbackMessage, *, repeat: bool = False) -> Processed:
    return Processed(
        row.id, row.kind, row.outcome, row.reason, row.delivery_id, row.send_id, repeat=repeat
    )


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
