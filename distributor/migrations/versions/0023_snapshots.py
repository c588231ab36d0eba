"""snapshots: counts kept with the snapshot they were made in, and on PostgreSQL one row per
transaction and change to what an audience reads, so that a kept count is known to be exact

Revision ID: 0023_snapshots
Revises: 0022_counts
Create Date: 2026-12-06 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023_snapshots"
down_revision = "0022_counts"
branch_labels = None
depends_on = None

# What distributor.snapshot_counts.WATCHED names, as it stood for this migration: a table's
# inserts, deletes and truncations are "table", an update of a column "table.column".
WATCHED: dict[str, tuple[str, ...]] = {
    "subscribers": (
        "id", "email", "email_key", "attributes", "status", "channel", "format", "openid",
        "created_at",
    ),
    "subscriptions": ("subscriber_id", "list_id", "status"),
    "subscriber_tags": ("subscriber_id", "tag_id"),
    "lists": ("id", "name"),
    "tags": ("id", "name"),
    "engagement_events": ("send_id", "subscriber_id", "kind", "at", "machine"),
    "sends": ("id", "tracking", "is_test", "started_at"),
    "deliveries": (
        "send_id", "subscriber_id", "channel", "state", "failure_cause", "updated_at",
    ),
}
# One row per transaction and change, whatever the statements: a second is a no-op.
FUNCTION = """
CREATE FUNCTION count_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO count_changes (xid, what)
  VALUES (pg_current_xact_id()::text::bigint, TG_ARGV[0]) ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$
"""


def _triggers() -> list[tuple[str, str, str]]:
    """Each watched change's trigger: its name, its table, the statement making it."""
    made = []
    for table, columns in WATCHED.items():
        made.append(
            (
                f"{table}_changed",
                table,
                f"CREATE TRIGGER {table}_changed AFTER INSERT OR DELETE OR TRUNCATE ON {table}"
                f" FOR EACH STATEMENT EXECUTE FUNCTION count_changed('{table}')",
            )
        )
        for column in columns:
            made.append(
                (
                    f"{table}_{column}_changed",
                    table,
                    f"CREATE TRIGGER {table}_{column}_changed AFTER UPDATE OF {column} ON {table}"
                    f" FOR EACH STATEMENT EXECUTE FUNCTION count_changed('{table}.{column}')",
                )
            )
    return made


def upgrade() -> None:
    op.create_table(
        "count_changes",
        sa.Column("xid", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("what", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("xid", "what", name=op.f("pk_count_changes")),
    )
    op.create_table(
        "kept_counts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("snapshot", sa.Text(), nullable=False),
        sa.Column("oldest", sa.BigInteger(), nullable=False),
        sa.Column("reads", sa.Text(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_kept_counts")),
    )
    op.create_table(
        "count_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("oldest", sa.BigInteger(), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_horizon")),
    )
    op.execute("INSERT INTO count_horizon (id, oldest, pruned_at) VALUES (1, 0, CURRENT_TIMESTAMP)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)
        for _, _, statement in _triggers():
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _ in _triggers():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute("DROP FUNCTION IF EXISTS count_changed()")
    op.drop_table("count_horizon")
    op.drop_table("kept_counts")
    op.drop_table("count_changes")
