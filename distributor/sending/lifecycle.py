"""A send's own states: draft → scheduled → running → done. Every move is one conditional UPDATE,
so two schedulers (or a redelivered task) can never start or finish a send twice."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from distributor.sending.models import OPEN_DELIVERY_STATES, Delivery, Send, SendState


def start_due_sends(session: Session, now: datetime) -> list[int]:
    """Scheduled sends whose time has come become running (their audience is frozen next)."""
    rows = session.execute(
        update(Send)
        .where(Send.state == SendState.SCHEDULED, Send.scheduled_at <= now)
        .values(state=SendState.RUNNING, started_at=now, updated_at=now)
        .returning(Send.id)
    )
    return sorted(row.id for row in rows)


def finish_if_complete(session: Session, send_id: int, now: datetime) -> bool:
    """A running send is done once it is fully planned and no delivery is still open."""
    still_open = exists().where(
        Delivery.send_id == send_id, Delivery.state.in_(OPEN_DELIVERY_STATES)
    )
    result = session.execute(
        update(Send)
        .where(
            Send.id == send_id,
            Send.state == SendState.RUNNING,
            Send.planned_at.is_not(None),
            ~still_open,
        )
        .values(state=SendState.DONE, finished_at=now, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish_complete_sends(session: Session, now: datetime) -> list[int]:
    running = session.scalars(
        select(Send.id).where(Send.state == SendState.RUNNING, Send.planned_at.is_not(None))
    ).all()
    return [send_id for send_id in running if finish_if_complete(session, send_id, now)]
