"""failure reasons: each failure and each suppression keeps its cause

Revision ID: 0012_failure_reasons
Revises: 0011_api_indexes
Create Date: 2026-12-06 06:00:00

A delivery that failed or bounced keeps the cause read from the server's words
(``distributor.failures``); a bounce message its cause; a subscriber's status change its cause,
the words that were its evidence and the send it came from, so staff can list suppressions by
cause and lift them in bulk. The reader's last deliveries are indexed for the rule of repeated
failures (3 of the last 5).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_failure_reasons"
down_revision = "0011_api_indexes"
branch_labels = None
depends_on = None

FAILURE_CAUSES = (
    "address_gone", "mailbox_full", "mailbox_disabled", "blocked", "authentication", "content",
    "relay", "expired", "network", "system", "unknown",
)  # fmt: skip
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _cause() -> sa.Enum:
    return sa.Enum(*FAILURE_CAUSES, name="failurecause", native_enum=False, length=20)


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("failure_cause", _cause(), nullable=True))
    op.create_index("ix_deliveries_subscriber_id", "deliveries", ["subscriber_id", "id"])
    with op.batch_alter_table("feedback_messages") as batch:
        batch.add_column(sa.Column("cause", _cause(), nullable=True))
    with op.batch_alter_table("subscriber_events") as batch:
        batch.add_column(sa.Column("cause", _cause(), nullable=True))
        batch.add_column(sa.Column("evidence", sa.Text(), nullable=True))
        batch.add_column(sa.Column("send_id", BIG_ID, nullable=True))
    op.create_index("ix_subscriber_events_cause_at", "subscriber_events", ["cause", "at"])


def downgrade() -> None:
    op.drop_index("ix_subscriber_events_cause_at", table_name="subscriber_events")
    with op.batch_alter_table("subscriber_events") as batch:
        batch.drop_column("send_id")
        batch.drop_column("evidence")
        batch.drop_column("cause")
    with op.batch_alter_table("feedback_messages") as batch:
        batch.drop_column("cause")
    op.drop_index("ix_deliveries_subscriber_id", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("failure_cause")
