"""engine seams: renders stored per send, the reason a send paused itself

Revision ID: 0005_engine_seams
Revises: 0004_send_control
Create Date: 2026-11-28 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0005_engine_seams"
down_revision = "0004_send_control"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_renders",
        sa.Column("send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("variant", sa.Enum("full", "digest", "text", "wechat", name="variant",
                                     native_enum=False, length=20), nullable=False),
        sa.Column("compiled", sa.JSON(), nullable=False),
        sa.Column("created_at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_send_renders_send_id_sends"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("send_id", "variant", name=op.f("pk_send_renders")),
    )
    # A plain ADD COLUMN on both backends: no table rebuild of sends on SQLite.
    op.add_column("sends", sa.Column("error", sa.Text(), nullable=True))
    op.add_column(
        "sends", sa.Column("tracking", sa.Boolean(), nullable=False, server_default=sa.false())
    )


    # One Variant for rendering, sending and subscribers: a send by preference has no variant of
    # its own (NULL) instead of the pseudo-variant 'preference'. SQLite cannot drop NOT NULL in
    # place, and rebuilding sends would cascade into deliveries: swap the column instead.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("sends", "variant", existing_type=sa.String(20), nullable=True)
        op.execute("UPDATE sends SET variant = NULL WHERE variant = 'preference'")
    else:
        op.execute("ALTER TABLE sends ADD COLUMN variant_new VARCHAR(20)")
        op.execute("UPDATE sends SET variant_new = NULLIF(variant, 'preference')")
        op.execute("ALTER TABLE sends DROP COLUMN variant")
        op.execute("ALTER TABLE sends RENAME COLUMN variant_new TO variant")
    op.create_table(
        "scheduler_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ticks", sa.BigInteger(), nullable=False),
        sa.Column("last_tick_at", distributor.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduler_state")),
    )
    op.execute("INSERT INTO scheduler_state (id, ticks) VALUES (1, 0)")
    op.create_table(
        "engagement_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("send_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  nullable=False),
        sa.Column("kind", sa.Enum("open", "click", name="engagementkind", native_enum=False,
                                  length=20), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("at", distributor.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["send_id"], ["sends.id"],
                                name=op.f("fk_engagement_events_send_id_sends"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
    )
    op.create_index("ix_engagement_events_send_kind", "engagement_events",
                    ["send_id", "kind", "subscriber_id"])


def downgrade() -> None:
    op.execute("UPDATE sends SET variant = 'preference' WHERE variant IS NULL")
    op.drop_table("scheduler_state")
    op.drop_index("ix_engagement_events_send_kind", table_name="engagement_events")
    op.drop_table("engagement_events")
    op.drop_column("sends", "tracking")
    op.drop_column("sends", "error")
    op.drop_table("send_renders")
