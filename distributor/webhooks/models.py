"""Webhooks and the delivery of each event to each of them (the log staff read)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, BigId, CreatedAt, Id, UpdatedAt

URL_MAX = 2000
DESCRIPTION_MAX = 500


class Webhook(Base):
    """A URL that hears of some kinds of events, and the secret its posts are signed with."""

    __tablename__ = "webhooks"

    id: Mapped[Id]
    url: Mapped[str] = mapped_column(String(URL_MAX))
    secret: Mapped[str] = mapped_column(String(64))
    events: Mapped[list[str]] = mapped_column(JSON)  # as given; the listeners index them
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX), default="")
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[CreatedAt]


class HookState(StrEnum):
    PENDING = "pending"  # waiting for its (next) try
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every try failed; kept in the log


class WebhookDelivery(Base):
    """One event for one webhook: tried until delivered, each failure pushing the next try
    further away. A try holds the row by moving ``next_attempt_at`` a lease ahead, so a worker
    that dies mid-post leaves it to be tried again, never lost."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("webhook_id", "event_id"),
        Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_log", "webhook_id", "id"),
    )

    id: Mapped[Id]
    webhook_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhooks.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("outbox_events.id", ondelete="CASCADE"))
    state: Mapped[HookState] = mapped_column(default=HookState.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claim_token: Mapped[str | None] = mapped_column(String(40))
    last_status: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]
