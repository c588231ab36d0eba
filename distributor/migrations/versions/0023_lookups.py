"""lookups: the subscriptions' count trigger looks each changed row's subscriber up, never
reading the whole subscribers table for one statement's rows

Revision ID: 0023_lookups
Revises: 0022_counts
Create Date: 2026-12-06 14:30:00

On PostgreSQL the statement-level trigger of 0022 joins its transition table (an import chunk's
13,000 subscriptions) to ``subscribers``. Not knowing that those rows' subscribers are a few among
many, the planner may merge them with a scan of the whole primary key (seen at 300,000
readers): a cost growing with the table, paid again by each chunk, so that each chunk of an
import costs more than the one before. Without merge and hash joins it looks each one up: a
cost per row, whatever the table's size. SQLite's row triggers look up already.
"""

from __future__ import annotations

from alembic import op

revision = "0023_lookups"
down_revision = "0022_counts"
branch_labels = None
depends_on = None

FUNCTION = "subscriptions_list_readers()"
SETTINGS = ("enable_mergejoin", "enable_hashjoin")  # planner settings, for the function only


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for setting in SETTINGS:
            op.execute(f"ALTER FUNCTION {FUNCTION} SET {setting} = off")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for setting in SETTINGS:
            op.execute(f"ALTER FUNCTION {FUNCTION} RESET {setting}")
