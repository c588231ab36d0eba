"""The figures receivers judge a sender by, for ``/metrics``: what became of the last hour's
messages by channel and receiving domain, the last day's bounce and complaint rates (Gmail: keep
complaints under 0.1 %, never reach 0.3 %), and how far each running send has come. Each is a
read of an index range (the attempt log by time) or of the trigger-kept counters."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.bounces.feedback import FeedbackKind
from distributor.bounces.models import FeedbackMessage
from distributor.sending.models import (
    FINAL_DELIVERY_STATES,
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    Send,
    SendCount,
)
from distributor.vocabulary import SendState

OUTCOME_WINDOW = timedelta(hours=1)
RATE_WINDOW = timedelta(days=1)
TOP_DOMAINS = 20  # more would make a series per small domain; the rest is "other"
OUTCOMES = (AttemptOutcome.SENT, AttemptOutcome.DEFERRED, AttemptOutcome.FAILED)


@dataclass(frozen=True)
class OutcomeFigures:
    # (channel, domain, outcome) -> messages in the last hour: sent, deferred, failed
    outcomes: dict[tuple[str, str, str], int]
    sent_last_day: int
    bounced_last_day: int
    complained_last_day: int
    progress: dict[int, float]  # running send -> share of its deliveries that are final

    @property
    def bounce_rate(self) -> float:
        return self.bounced_last_day / self.sent_last_day if self.sent_last_day else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complained_last_day / self.sent_last_day if self.sent_last_day else 0.0


def outcome_figures(session: Session, now: datetime) -> OutcomeFigures:
    rows = session.execute(
        select(Delivery.channel, Delivery.address, DeliveryAttempt.outcome)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(DeliveryAttempt.at > now - OUTCOME_WINDOW, DeliveryAttempt.outcome.in_(OUTCOMES))
    )
    counts: Counter[tuple[str, str, str]] = Counter(
        (str(channel.value), address.rpartition("@")[2].lower() or "wechat", outcome.value)
        for channel, address, outcome in rows
    )
    by_domain: Counter[str] = Counter()
    for (_, domain, _), n in counts.items():
        by_domain[domain] += n
    top = {domain for domain, _ in by_domain.most_common(TOP_DOMAINS)}
    outcomes: Counter[tuple[str, str, str]] = Counter()
    for (channel, domain, outcome), n in counts.items():
        outcomes[(channel, domain if domain in top else "other", outcome)] += n
    sent = session.scalar(
        select(func.count()).where(
            DeliveryAttempt.at > now - RATE_WINDOW, DeliveryAttempt.outcome == AttemptOutcome.SENT
        )
    )
    feedback = dict(
        session.execute(
            select(FeedbackMessage.kind, func.count())
            .where(FeedbackMessage.received_at > now - RATE_WINDOW,
                   FeedbackMessage.delivery_id.is_not(None))
            .group_by(FeedbackMessage.kind)
        ).all()
    )
    return OutcomeFigures(
        outcomes=dict(outcomes),
        sent_last_day=int(sent or 0),
        bounced_last_day=int(feedback.get(FeedbackKind.HARD_BOUNCE, 0)),
        complained_last_day=int(feedback.get(FeedbackKind.COMPLAINT, 0)),
        progress=_progress(session),
    )


def _progress(session: Session) -> dict[int, float]:
    final = {state.value for state in FINAL_DELIVERY_STATES}
    totals: Counter[int] = Counter()
    done: Counter[int] = Counter()
    for send_id, state, n in session.execute(
        select(SendCount.send_id, SendCount.state, func.sum(SendCount.n))
        .join(Send, Send.id == SendCount.send_id)
        .where(Send.state == SendState.RUNNING)
        .group_by(SendCount.send_id, SendCount.state)
    ):
        totals[send_id] += int(n or 0)
        if state in final:
            done[send_id] += int(n or 0)
    return {send_id: done[send_id] / total for send_id, total in totals.items() if total}
