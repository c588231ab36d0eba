"""bounces: every processed feedback message, and the log of suppressions and their lifting

The new delivery states (bounced, complained) need no DDL: states are short strings and the
count triggers key on the string.

Revision ID: 0010_bounces
Revises: 0009_wechat_sends
Create Date: 2026-11-28 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0010_bounces"
down_revision = "0009_wechat_sends"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
FEEDBACK_KINDS = ("hard_bounce", "soft_bounce", "complaint", "auto_reply", "unknown")
FEEDBACK_OUTCOMES = ("applied", "ignored", "unmatched")
SUBSCRIBER_STATUSES = ("pending", "active", "unsubscribed", "bounced", "complained")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=20)


def upgrade() -> None:
    op.create_table(
        "feedback_messages",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("kind", _enum(FEEDBACK_KINDS, "feedbackkind"), nullable=False),
        sa.Column("outcome", _enum(FEEDBACK_OUTCOMES, "feedbackoutcome"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=True),
        sa.Column("diagnostic", sa.Text(), nullable=True),
        sa.Column("matched_by", sa.String(length=20), nullable=True),
        sa.Column("delivery_id", BIG_ID, nullable=True),
        sa.Column("send_id", BIG_ID, nullable=True),
        sa.Column("subscriber_id", BIG_ID, nullable=True),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("received_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["delivery_id"], ["deliveries.id"],
                                name=op.f("fk_feedback_messages_delivery_id_deliveries"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_feedback_messages_send_id_sends"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feedback_messages")),
        sa.UniqueConstraint("digest", name=op.f("uq_feedback_messages_digest")),
    )
    op.create_index(op.f("ix_feedback_messages_delivery_id"), "feedback_messages", ["delivery_id"])
    op.create_index(op.f("ix_feedback_messages_send_id"), "feedback_messages", ["send_id"])
    op.create_index(
        "ix_feedback_messages_subscriber_kind_at",
        "feedback_messages",
        ["subscriber_id", "kind", "received_at"],
    )
    op.create_table(
        "subscriber_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("old_status", _enum(SUBSCRIBER_STATUSES, "subscriberstatus"), nullable=False),
        sa.Column("new_status", _enum(SUBSCRIBER_STATUSES, "subscriberstatus"), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_subscriber_events_subscriber_id_subscribers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriber_events")),
    )
    op.create_index(
        op.f("ix_subscriber_events_subscriber_id"), "subscriber_events", ["subscriber_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_subscriber_events_subscriber_id"), table_name="subscriber_events")
    op.drop_table("subscriber_events")
    op.drop_index("ix_feedback_messages_subscriber_kind_at", table_name="feedback_messages")
    op.drop_index(op.f("ix_feedback_messages_send_id"), table_name="feedback_messages")
    op.drop_index(op.f("ix_feedback_messages_delivery_id"), table_name="feedback_messages")
    op.drop_table("feedback_messages")
