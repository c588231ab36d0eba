"""The feedback loop's table: every message of the bounce mailbox processed, once."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.bounces.feedback import FeedbackKind
from distributor.db import Base, BigId, CreatedAt, Id
from distributor.vocabulary import FailureCause


class FeedbackOutcome(StrEnum):
    """What processing one message of the bounce mailbox did."""

    APPLIED = "applied"  # matched to a delivery; its effects (if any were due) are written
    IGNORED = "ignored"  # read and understood, nothing to do (an automatic reply)
    UNMATCHED = "unmatched"  # unknown, or names no delivery of ours: kept for a person to read


class FeedbackMessage(Base):
    """Every processed message of the bounce mailbox, once (``digest`` makes a second intake of
    the same bytes a no-op), with what it was and what it did; the raw bytes are kept only when
    nobody could act on it, for a person to look at."""

    __tablename__ = "feedback_messages"
    __table_args__ = (
        Index("ix_feedback_messages_subscriber_kind_at", "subscriber_id", "kind", "received_at"),
    )

    id: Mapped[Id]
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # SHA-256 of the bytes read
    message_id: Mapped[str | None] = mapped_column(String(300))  # its own Message-ID, if any
    kind: Mapped[FeedbackKind]
    outcome: Mapped[FeedbackOutcome]
    reason: Mapped[str] = mapped_column(Text)  # how it was read, or why it matched nothing
    status: Mapped[str | None] = mapped_column(String(20))
    diagnostic: Mapped[str | None] = mapped_column(Text)
    cause: Mapped[FailureCause | None]  # why it did not arrive (distributor.failures)
    matched_by: Mapped[str | None] = mapped_column(String(20))  # "verp" or "message-id"
    delivery_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    send_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="SET NULL"), index=True
    )
    subscriber_id: Mapped[int | None] = mapped_column(BigId)
    raw: Mapped[bytes | None] = mapped_column(LargeBinary)
    received_at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<FeedbackMessage {self.id} {self.kind} {self.outcome}>"
