"""automations: a list's welcome mail and steps, who joined, and which step reached whom

Revision ID: 0020_automations
Revises: 0019_ops
Create Date: 2026-12-06 10:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0020_automations"
down_revision = "0019_ops"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = distributor.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "automations",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("list_id", BIG_ID, nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_automations_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automations")),
        sa.UniqueConstraint("list_id", name=op.f("uq_automations_list_id")),
    )
    op.create_table(
        "automation_steps",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("automation_id", BIG_ID, nullable=False),
        sa.Column("delay_seconds", sa.Integer(), nullable=False),
        sa.Column("issue_id", BIG_ID, nullable=False),
        sa.Column("send_id", BIG_ID, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("claimed_through", WHEN, nullable=True),
        sa.ForeignKeyConstraint(
            ["automation_id"], ["automations.id"],
            name=op.f("fk_automation_steps_automation_id_automations"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["issue_id"], ["issues.id"], name=op.f("fk_automation_steps_issue_id_issues")
        ),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f("fk_automation_steps_send_id_sends")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_steps")),
        sa.UniqueConstraint(
            "automation_id", "delay_seconds",
            name=op.f("uq_automation_steps_automation_id_delay_seconds"),
        ),
        sa.UniqueConstraint("send_id", name=op.f("uq_automation_steps_send_id")),
    )
    op.create_table(
        "automation_joins",
        sa.Column("list_id", BIG_ID, nullable=False),
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("joined_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_automation_joins_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_automation_joins_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("list_id", "subscriber_id", name=op.f("pk_automation_joins")),
    )
    op.create_index(
        "ix_automation_joins_list_joined", "automation_joins", ["list_id", "joined_at"]
    )
    op.create_table(
        "automation_runs",
        sa.Column("step_id", BIG_ID, nullable=False),
        sa.Column("subscriber_id", BIG_ID, nullable=False),
        sa.Column("claimed_at", WHEN, nullable=False),
        sa.ForeignKeyConstraint(
            ["step_id"], ["automation_steps.id"],
            name=op.f("fk_automation_runs_step_id_automation_steps"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"], ["subscribers.id"],
            name=op.f("fk_automation_runs_subscriber_id_subscribers"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("step_id", "subscriber_id", name=op.f("pk_automation_runs")),
    )
    op.create_index(
        op.f("ix_automation_runs_subscriber_id"), "automation_runs", ["subscriber_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_automation_runs_subscriber_id"), table_name="automation_runs")
    op.drop_table("automation_runs")
    op.drop_index("ix_automation_joins_list_joined", table_name="automation_joins")
    op.drop_table("automation_joins")
    op.drop_table("automation_steps")
    op.drop_table("automations")
