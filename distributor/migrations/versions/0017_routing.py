"""routing: several relays' caps and rests, domains' slowdowns, a send's windows and commercial flag

Revision ID: 0017_routing
Revises: 0016_send_pictures
Create Date: 2026-12-06 08:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_routing"
down_revision = "0016_send_pictures"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quota_counts",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_quota_counts")),
    )
    op.create_table(
        "route_strains",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_route_strains")),
    )
    op.add_column("sends", sa.Column("windows", sa.JSON(), nullable=True))
    op.add_column("sends", sa.Column("window_zone", sa.String(length=64), nullable=True))
    op.add_column(
        "sends", sa.Column("commercial", sa.Boolean(), nullable=False, server_default=sa.false())
    )


def downgrade() -> None:
    with op.batch_alter_table("sends") as batch:
        batch.drop_column("commercial")
        batch.drop_column("window_zone")
        batch.drop_column("windows")
    op.drop_table("route_strains")
    op.drop_table("quota_counts")
