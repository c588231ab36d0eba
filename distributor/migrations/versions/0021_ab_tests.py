"""A/B subject tests: a send's test (its share, the other subject, how and when the winner is
chosen, the decision), each delivery's arm, and a render per subject

Revision ID: 0021_ab_tests
Revises: 0020_automations
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from distributor.db import UTCDateTime

revision = "0021_ab_tests"
down_revision = "0020_automations"
branch_labels = None
depends_on = None

WHEN = UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("sends") as batch_op:
        batch_op.add_column(sa.Column("ab_subject_b", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ab_share", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("ab_winner_by", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("ab_wait", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("ab_planned", sa.BigInteger(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("ab_tested_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("ab_decided_at", WHEN, nullable=True))
        batch_op.add_column(sa.Column("ab_winner", sa.String(length=1), nullable=True))
        batch_op.add_column(sa.Column("ab_reason", sa.String(length=20), nullable=True))
    op.add_column("deliveries", sa.Column("arm", sa.String(length=4), nullable=True))
    op.create_index(
        "ix_deliveries_send_arm",
        "deliveries",
        ["send_id", "arm"],
        postgresql_where=sa.text("arm IS NOT NULL"),
        sqlite_where=sa.text("arm IS NOT NULL"),
    )
    with op.batch_alter_table("send_renders", recreate="always") as batch_op:
        batch_op.add_column(
            sa.Column("subject", sa.String(length=1), server_default="", nullable=False)
        )
        batch_op.drop_constraint("pk_send_renders", type_="primary")
        batch_op.create_primary_key("pk_send_renders", ["send_id", "variant", "subject"])


def downgrade() -> None:
    op.execute("DELETE FROM send_renders WHERE subject <> ''")
    with op.batch_alter_table("send_renders", recreate="always") as batch_op:
        batch_op.drop_constraint("pk_send_renders", type_="primary")
        batch_op.create_primary_key("pk_send_renders", ["send_id", "variant"])
        batch_op.drop_column("subject")
    op.drop_index("ix_deliveries_send_arm", table_name="deliveries")
    op.drop_column("deliveries", "arm")
    with op.batch_alter_table("sends") as batch_op:
        for column in (
            "ab_reason", "ab_winner", "ab_decided_at", "ab_tested_at", "ab_planned", "ab_wait",
            "ab_winner_by", "ab_share", "ab_subject_b",
        ):
            batch_op.drop_column(column)
