"""web: public lists people may sign up for, unsubscribe events per send

Revision ID: 0006_web
Revises: 0005_engine_seams
Create Date: 2026-11-29 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0006_web"
down_revision = "0005_engine_seams"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # A plain ADD COLUMN with a server default on both backends: no table rebuild on SQLite.
    op.add_column(
        "lists", sa.Column("public", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.create_table(
        "unsubscribe_events",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("send_id", BIG_ID, nullable=True),
        sa.Column("list_id", BIG_ID, nullable=True),
        sa.Column("at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscribers.id"],
                                name=op.f("fk_unsubscribe_events_subscriber_id_subscribers"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_unsubscribe_events_send_id_sends"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"],
                                name=op.f("fk_unsubscribe_events_list_id_lists"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unsubscribe_events")),
    )
    op.create_index(op.f("ix_unsubscribe_events_send_id"), "unsubscribe_events", ["send_id"])
    op.create_index(
        op.f("ix_unsubscribe_events_subscriber_id"), "unsubscribe_events", ["subscriber_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_unsubscribe_events_subscriber_id"), table_name="unsubscribe_events")
    op.drop_index(op.f("ix_unsubscribe_events_send_id"), table_name="unsubscribe_events")
    op.drop_table("unsubscribe_events")
    with op.batch_alter_table("lists") as batch:
        batch.drop_column("public")
