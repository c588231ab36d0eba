"""wechat tokens: the Official Account access token shared by every worker

Revision ID: 0007_wechat_tokens
Revises: 0006_web
Create Date: 2026-11-29 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_wechat_tokens"
down_revision = "0006_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "wechat_tokens",
        sa.Column("app_id", sa.String(length=64), nullable=False),
        sa.Column("access_token", sa.Text(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("refresh_at", sa.Double(), nullable=False),
        sa.Column("lease_holder", sa.String(length=32), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("app_id", name=op.f("pk_wechat_tokens")),
    )


def downgrade() -> None:
    op.drop_table("wechat_tokens")
