"""claimed leases: the sweep's index holds only the rows being sent, so that planning a row and
settling it as sent no longer write an entry into it

Revision ID: 0024_claimed_lease
Revises: 0023_snapshots
Create Date: 2026-12-06 23:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024_claimed_lease"
down_revision = "0023_snapshots"
branch_labels = None
depends_on = None

CLAIMED = sa.text("state = 'claimed'")


def upgrade() -> None:
    op.drop_index("ix_deliveries_state_lease", table_name="deliveries")
    op.create_index(
        "ix_deliveries_claimed_lease",
        "deliveries",
        ["lease_until"],
        postgresql_where=CLAIMED,
        sqlite_where=CLAIMED,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_claimed_lease", table_name="deliveries")
    op.create_index("ix_deliveries_state_lease", "deliveries", ["state", "lease_until"])
