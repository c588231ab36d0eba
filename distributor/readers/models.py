"""What readers did, as rows: opens and clicks of tracked sends, and unsubscribes through a
message's link, each counted against the send it came from."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, BigId, CreatedAt, Id


class EngagementKind(StrEnum):
    OPEN = "open"  # the tracking pixel was fetched (by the reader, or a proxy or scanner)
    CLICK = "click"  # a link was followed


class EngagementEvent(Base):
    """An open or a click of a tracked send, written in batches by the web server."""

    __tablename__ = "engagement_events"
    __table_args__ = (
        Index("ix_engagement_events_send_kind", "send_id", "kind", "subscriber_id"),
        # Segments' "opened since …", "clicked any of the last N sends": what one reader did
        # (distributor.segments probes it reader by reader).
        Index("ix_engagement_events_subscriber", "subscriber_id", "kind", "at"),
    )

    id: Mapped[Id]
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int] = mapped_column(BigId)
    kind: Mapped[EngagementKind]
    url: Mapped[str | None] = mapped_column(Text)
    at: Mapped[CreatedAt]
    # A click within seconds of its message's delivery: a mail gateway's link scanner, not a
    # reader (distributor.readers.engagement.SCANNER_WINDOW).
    machine: Mapped[bool] = mapped_column(default=False, server_default=false())

    def __repr__(self) -> str:
        return f"<EngagementEvent {self.send_id} {self.subscriber_id} {self.kind}>"


class UnsubscribeEvent(Base):
    """Someone left a list (``list_id``) or everything (``None``) through a link of ``send_id``."""

    __tablename__ = "unsubscribe_events"

    id: Mapped[Id]
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    send_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="SET NULL"), index=True
    )
    list_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("lists.id", ondelete="SET NULL"))
    at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<UnsubscribeEvent {self.send_id} {self.subscriber_id} {self.list_id}>"
