"""machine clicks: a click that came within seconds of its message's delivery is a link scanner's

Revision ID: 0014_machine_clicks
Revises: 0013_outsiders
Create Date: 2026-12-06 06:30:00

Mail gateways and security scanners follow every link of a message as it arrives; counting them
as readers inflated clicks. Each click is marked when it is written (``machine``), so a send's
status counts readers' clicks and scanners' apart with a plain filter.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_machine_clicks"
down_revision = "0013_outsiders"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("engagement_events") as batch:
        batch.add_column(
            sa.Column("machine", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("engagement_events") as batch:
        batch.drop_column("machine")
