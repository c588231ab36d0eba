"""The attempt log: one row per attempt of a delivery, or per thing that happened to it.

Every writer but the result recorder's hot path (which logs in the same statement as it updates
the row, see :mod:`distributor.sending.dispatch`) goes through :func:`log_attempts` or, for one
line over many rows, :func:`log_attempts_of`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, insert, literal, select
from sqlalchemy.orm import Session

from distributor.db import UTCDateTime
from distributor.sending.models import AttemptOutcome, DeliveryAttempt


@dataclass(frozen=True)
class LogEntry:
    delivery_id: int
    outcome: AttemptOutcome
    attempt: int = 0  # 0: not an attempt at the server (a sweep, a suppression, a reopening)
    detail: str | None = None
    smtp_code: int | None = None


def log_attempts_of(
    session: Session,
    delivery_ids: Select[int],
    outcome: AttemptOutcome,
    detail: str,
    *,
    at: datetime,
) -> None:
    """The same line for every delivery ``delivery_ids`` selects, in one INSERT … SELECT (a
    cancelled send of a million readers reopened is one statement, not a million rows here)."""
    session.execute(
        insert(DeliveryAttempt).from_select(
            ["delivery_id", "attempt", "outcome", "detail", "at"],
            select(
                delivery_ids.subquery().c[0],
                literal(0),
                literal(outcome.value),
                literal(detail),
                literal(at, UTCDateTime()),
            ),
        )
    )


def log_attempts(session: Session, entries: Sequence[LogEntry], *, at: datetime) -> None:
    if not entries:
        return
    session.execute(
        insert(DeliveryAttempt),
        [
            {
                "delivery_id": entry.delivery_id,
                "attempt": entry.attempt,
                "outcome": entry.outcome,
                "detail": entry.detail,
                "smtp_code": entry.smtp_code,
                "at": at,
            }
            for entry in entries
        ],
    )
