"""What readers did, as rows: opens and clicks of tracked sends, and unsubscribes through a
message's link, each counted against the send it came from."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, false, text
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
        # The readers per link of a send, read from the index alone (migration 0016).
        Index(
            "ix_engagement_events_reader_clicks",
            "send_id",
            "url",
            "subscriber_id",
            postgresql_where=text("kind = 'click' AND NOT machine"),
            sqlite_where=text("kind = 'click' AND NOT machine"),
        ),
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


class SendEngagement(Base):
    """A send's readers' opens and clicks (not a scanner's) by minute (since the epoch, UTC),
    kept by database triggers on ``engagement_events`` (migration 0016): its picture over time,
    a few hundred rows to read however many readers opened it."""

    __tablename__ = "send_engagement"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<SendEngagement {self.send_id} {self.minute} {self.kind}={self.n}>"


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


class SendReaders(Base):
    """A send's readers who opened, who clicked, and the links they followed (each reader's
    each link once; a scanner's apart), per ``figure``, kept by database triggers on
    ``engagement_events`` (migration 0020): its report reads four rows, however many opened."""

    __tablename__ = "send_readers"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    figure: Mapped[str] = mapped_column(String(20), primary_key=True)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger, default=0)

    def __repr__(self) -> str:
        return f"<SendReaders {self.send_id} {self.figure}={self.n}>"
