"""The outbox: events other systems asked to hear of (a send started, a reader confirmed…),
written in the transaction of the change they report, delivered after the fact.

The ground floor: any room records an event here with :func:`record_event`, and knows nothing
of who listens or how (``distributor.webhooks`` reads the outbox and posts each event to its
listeners). An event nobody listens for is not even written: the insert is one statement that
checks :class:`EventListener` in the database, so sending pays nothing while no webhook exists.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    String,
    Table,
    exists,
    false,
    insert,
    literal,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from distributor.db import Base, BigId, CreatedAt, Id, UTCDateTime, utcnow


class EventKind(StrEnum):
    """What a webhook may listen for."""

    DELIVERY_SENT = "delivery.sent"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_BOUNCED = "delivery.bounced"
    DELIVERY_COMPLAINED = "delivery.complained"
    READER_SUBSCRIBED = "reader.subscribed"
    READER_CONFIRMED = "reader.confirmed"
    READER_UNSUBSCRIBED = "reader.unsubscribed"
    READER_OPENED = "reader.opened"
    READER_CLICKED = "reader.clicked"
    SEND_STARTED = "send.started"
    SEND_PAUSED = "send.paused"
    SEND_DONE = "send.done"


class OutboxEvent(Base):
    """One event, kept until every listener has it (``fanned_out``: its webhook deliveries
    exist)."""

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_events_waiting",
            "id",
            postgresql_where="NOT fanned_out",
            sqlite_where="NOT fanned_out",
        ),
    )

    id: Mapped[Id]
    kind: Mapped[str] = mapped_column(String(40))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    fanned_out: Mapped[bool] = mapped_column(default=False, server_default=false())
    at: Mapped[CreatedAt]


class EventListener(Base):
    """A webhook listens for a kind of event (kept by ``distributor.webhooks``)."""

    __tablename__ = "event_listeners"

    kind: Mapped[str] = mapped_column(String(40), primary_key=True)
    webhook_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhooks.id", ondelete="CASCADE"), primary_key=True
    )


_EVENTS = cast(Table, OutboxEvent.__table__)


def record_event(
    session: Session | Connection,
    kind: EventKind, payload: dict[str, Any], *, at: datetime | None = None
) -> None:
    """Write ``kind`` with ``payload`` to the outbox in the caller's transaction, if anyone
    listens for it."""
    listened = exists().where(EventListener.kind == kind.value)
    rows = select(
        literal(kind.value, String(40)),
        literal(payload, JSON),
        literal(False),
        literal(at or utcnow(), UTCDateTime()),
    ).where(listened)
    session.execute(insert(_EVENTS).from_select(["kind", "payload", "fanned_out", "at"], rows))


def record_events(
    session: Session, kind: EventKind, events: Sequence[tuple[dict[str, Any], datetime]]
) -> None:
    """Many events of one kind (payload, when) in one statement, if anyone listens for it."""
    if events and session.scalar(select(exists().where(EventListener.kind == kind.value))):
        session.execute(
            insert(_EVENTS),
            [{"kind": kind.value, "payload": p, "fanned_out": False, "at": at} for p, at in events],
        )
