"""outsiders: a returning reader's pending request, and the WeChat callbacks already taken

``resubscriptions``: someone who unsubscribed signed up again; nothing changes for them until
they follow the link the request names. ``wechat_callback_nonces``: the ``timestamp:nonce`` of
each callback taken, until it is out of the freshness window (a replay is refused).

Revision ID: 0013_outsiders
Revises: 0012_failure_reasons
Create Date: 2026-12-06 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0013_outsiders"
down_revision = "0012_failure_reasons"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "resubscriptions",
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("list_id", BIG_ID, nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("requested_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_resubscriptions_list_id_lists"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_resubscriptions_subscriber_id_subscribers"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscriber_id", name=op.f("pk_resubscriptions")),
    )
    op.create_table(
        "wechat_callback_nonces",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_wechat_callback_nonces")),
    )
    op.create_index(
        op.f("ix_wechat_callback_nonces_expires_at"), "wechat_callback_nonces", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_wechat_callback_nonces_expires_at"), table_name="wechat_callback_nonces"
    )
    op.drop_table("wechat_callback_nonces")
    op.drop_table("resubscriptions")
