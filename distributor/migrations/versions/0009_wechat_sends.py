"""wechat sends: a send's prepared WeChat message and its mass-send jobs

Revision ID: 0009_wechat_sends
Revises: 0008_staff
Create Date: 2026-11-28 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0009_wechat_sends"
down_revision = "0008_staff"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "wechat_messages",
        sa.Column("send_id", BIG_ID, nullable=False),
        sa.Column("articles", sa.JSON(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_wechat_messages_send_id_sends"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("send_id", name=op.f("pk_wechat_messages")),
    )
    op.create_table(
        "wechat_jobs",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("send_id", BIG_ID, nullable=False),
        sa.Column("batch", sa.Integer(), nullable=False),
        sa.Column("clientmsgid", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=10), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=True),
        sa.Column("first_delivery_id", BIG_ID, nullable=False),
        sa.Column("last_delivery_id", BIG_ID, nullable=False),
        sa.Column("openids", sa.Integer(), nullable=False),
        sa.Column("state", sa.Enum("waiting", "accepted", "succeeded", "failed",
                                   name="wechatjobstate", native_enum=False, length=20),
                  nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("lease_until", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("media_id", sa.String(length=128), nullable=True),
        sa.Column("msg_id", sa.String(length=32), nullable=True),
        sa.Column("msg_data_id", sa.String(length=32), nullable=True),
        sa.Column("wechat_status", sa.String(length=40), nullable=True),
        sa.Column("total", sa.Integer(), nullable=True),
        sa.Column("filtered", sa.Integer(), nullable=True),
        sa.Column("sent", sa.Integer(), nullable=True),
        sa.Column("errors", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("accepted_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("finished_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_wechat_jobs_send_id_sends"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wechat_jobs")),
        sa.UniqueConstraint("send_id", "batch", name=op.f("uq_wechat_jobs_send_id_batch")),
        sa.UniqueConstraint("clientmsgid", name=op.f("uq_wechat_jobs_clientmsgid")),
    )
    op.create_index(op.f("ix_wechat_jobs_msg_id"), "wechat_jobs", ["msg_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_wechat_jobs_msg_id"), table_name="wechat_jobs")
    op.drop_table("wechat_jobs")
    op.drop_table("wechat_messages")
