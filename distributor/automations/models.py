"""Automations' tables: a list's automation, its steps, who joined, and who each step reached."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, BigId, CreatedAt, Id, Timestamp, UpdatedAt


class Automation(Base):
    """A list's steps, paused and resumed together (at most one per list)."""

    __tablename__ = "automations"

    id: Mapped[Id]
    list_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("lists.id", ondelete="CASCADE"), unique=True
    )
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"<Automation {self.id} list={self.list_id}>"


class AutomationStep(Base):
    """Send ``issue_id`` ``delay_seconds`` after a reader joins the list (0: the welcome), through
    ``send_id``, the send this step owns: its deliveries are the readers it reached.

    A step reaches only readers whose moment comes after the step was made: adding "7 days after
    joining" does not send it at once to everyone who joined in the last year."""

    __tablename__ = "automation_steps"
    __table_args__ = (UniqueConstraint("automation_id", "delay_seconds"),)

    id: Mapped[Id]
    automation_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("automations.id", ondelete="CASCADE")
    )
    delay_seconds: Mapped[int]
    issue_id: Mapped[int] = mapped_column(BigId, ForeignKey("issues.id"))
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id"), unique=True)
    created_at: Mapped[CreatedAt]
    # Every reader who joined by then has been given the step or was not on the list when their
    # moment came: a tick looks only at later joins, so its work does not grow with the list.
    claimed_through: Mapped[Timestamp | None]

    def __repr__(self) -> str:
        return f"<AutomationStep {self.id} +{self.delay_seconds}s issue={self.issue_id}>"


class AutomationJoin(Base):
    """A reader's confirmed subscription to a list with an automation: when their steps count
    from. One per reader and list: leaving and coming back does not start the steps again."""

    __tablename__ = "automation_joins"
    __table_args__ = (Index("ix_automation_joins_list_joined", "list_id", "joined_at"),)

    list_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    joined_at: Mapped[Timestamp]

    def __repr__(self) -> str:
        return f"<AutomationJoin {self.list_id} {self.subscriber_id}>"


class AutomationRun(Base):
    """A step claimed for a reader: written once, in the transaction that adds the reader's
    delivery to the step's send, so no restart or second tick can send the step twice."""

    __tablename__ = "automation_runs"

    step_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("automation_steps.id", ondelete="CASCADE"), primary_key=True
    )
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    claimed_at: Mapped[Timestamp]

    def __repr__(self) -> str:
        return f"<AutomationRun {self.step_id} {self.subscriber_id}>"
