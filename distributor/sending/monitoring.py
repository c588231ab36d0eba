"""What the metrics endpoint reports about sending, each a read of a few rows or one index range:
sends by state, deliveries by state (the trigger-kept counters), the mail servers' answers of
the last hour and the messages sent in the last minute (the attempt log, by time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.sending.models import (
    OPEN_DELIVERY_STATES,
    AttemptOutcome,
    DeliveryAttempt,
    Send,
    SendCount,
)

ANSWER_WINDOW = timedelta(hours=1)
RATE_WINDOW = timedelta(minutes=1)
# Outcomes that are a mail server's answer to a message (not a sweep or a staff retry).
ANSWERS = (AttemptOutcome.SENT, AttemptOutcome.DEFERRED, AttemptOutcome.FAILED)


@dataclass(frozen=True)
class SendingSnapshot:
    sends: dict[str, int]  # by state
    deliveries: dict[str, int]  # by state
    answers: dict[str, int]  # last hour, by SMTP class: "2xx", "4xx", "5xx", "none"
    sent_per_second: float  # over the last minute
    queue_depth: int  # planned deliveries not sent yet (pending, claimed, deferred)


def sending_snapshot(session: Session, now: datetime) -> SendingSnapshot:
    sends = {
        state.value: int(n)
        for state, n in session.execute(select(Send.state, func.count()).group_by(Send.state))
    }
    deliveries = {
        state: int(n or 0)
        for state, n in session.execute(
            select(SendCount.state, func.sum(SendCount.n)).group_by(SendCount.state)
        )
    }
    answers: dict[str, int] = {}
    for code, n in session.execute(
        select(DeliveryAttempt.smtp_code, func.count())
        .where(DeliveryAttempt.at > now - ANSWER_WINDOW, DeliveryAttempt.outcome.in_(ANSWERS))
        .group_by(DeliveryAttempt.smtp_code)
    ):
        kind = f"{code // 100}xx" if code else "none"
        answers[kind] = answers.get(kind, 0) + int(n)
    sent = session.scalar(
        select(func.count()).where(
            DeliveryAttempt.at > now - RATE_WINDOW,
            DeliveryAttempt.outcome == AttemptOutcome.SENT,
        )
    )
    return SendingSnapshot(
        sends=sends,
        deliveries=deliveries,
        answers=answers,
        sent_per_second=(sent or 0) / RATE_WINDOW.total_seconds(),
        queue_depth=sum(deliveries.get(state.value, 0) for state in OPEN_DELIVERY_STATES),
    )
