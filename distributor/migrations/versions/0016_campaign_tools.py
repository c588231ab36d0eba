"""campaign tools: saved segments (and the indexes their engagement facts read)

Revision ID: 0016_campaign_tools
Revises: 0015_issue_images
Create Date: 2026-12-06 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0016_campaign_tools"
down_revision = "0015_issue_images"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = distributor.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "segments",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segments")),
        sa.UniqueConstraint("name", name=op.f("uq_segments_name")),
    )
    op.create_index(
        "ix_engagement_events_kind_at",
        "engagement_events",
        ["kind", "at", "subscriber_id"],
    )
    op.create_index(
        "ix_deliveries_failure_cause",
        "deliveries",
        ["failure_cause", "subscriber_id"],
        postgresql_where=sa.text("failure_cause IS NOT NULL"),
        sqlite_where=sa.text("failure_cause IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_failure_cause", table_name="deliveries")
    op.drop_index("ix_engagement_events_kind_at", table_name="engagement_events")
    op.drop_table("segments")
