"""ops: the heartbeats of worker and beat processes (a restore refuses while one is fresh)

Revision ID: 0019_ops
Revises: 0018_campaign_tools
Create Date: 2026-12-06 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from distributor.db import UTCDateTime

revision = "0019_ops"
down_revision = "0018_campaign_tools"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "process_heartbeats",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_process_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("process_heartbeats")
