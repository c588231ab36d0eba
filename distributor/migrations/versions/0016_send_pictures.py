"""send pictures: a send's deliveries per minute and per receiving domain, and its readers'
opens and clicks per minute, kept by triggers; the due time of a send's deferred deliveries

Revision ID: 0016_send_pictures
Revises: 0015_issue_images
Create Date: 2026-12-06 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_send_pictures"
down_revision = "0015_issue_images"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# The states a send's timeline follows: what the server said, minute by minute.
TIMELINE_STATES = "('sent', 'deferred', 'failed')"

# As send_counts (0004): each follows every change of a delivery, whatever code made it; on
# PostgreSQL statement-level triggers over transition tables, one shard per connection; a row
# leaving its key counts -1 there and +1 at its new key, so unchanged rows cancel out.
# The timeline's key is the minute the row last changed (``updated_at``, which every state change
# sets), as minutes since the epoch; the domain table's is the address's domain and the cause.
# The engagement timeline's is the minute of the event; a scanner's click is not counted.
PG_MINUTE = "floor(extract(epoch FROM {}) / 60)::bigint"
PG_DOMAIN = "lower(split_part(address, '@', -1))"
TABLES = ("send_timeline", "send_domains", "send_engagement")
SOURCES = {
    "send_timeline": "deliveries",
    "send_domains": "deliveries",
    "send_engagement": "engagement_events",
}
PG_TABLES = {
    "send_timeline": (
        f"send_id, {PG_MINUTE.format('updated_at')} AS minute, state::text AS state",
        f"state IN {TIMELINE_STATES}",
        "send_id, minute, state",
    ),
    "send_domains": (
        f"send_id, {PG_DOMAIN} AS domain, state::text AS state,"
        " coalesce(failure_cause::text, '') AS cause",
        "channel = 'email'",
        "send_id, domain, state, cause",
    ),
    "send_engagement": (
        f"send_id, {PG_MINUTE.format('at')} AS minute, kind::text AS kind",
        "NOT machine",
        "send_id, minute, kind",
    ),
}


def _postgres_triggers(table: str) -> list[str]:
    keys, where, columns = PG_TABLES[table]
    source = SOURCES[table]
    upsert = f"ON CONFLICT ({columns}, shard) DO UPDATE SET n = {table}.n + EXCLUDED.n"
    return [
        f"""
        CREATE FUNCTION {source}_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'INSERT' THEN
            INSERT INTO {table} ({columns}, shard, n)
            SELECT {columns}, pg_backend_pid(), count(*) FROM (
              SELECT {keys} FROM new_rows WHERE {where}) AS rows GROUP BY {columns}
            {upsert};
          ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO {table} ({columns}, shard, n)
            SELECT {columns}, pg_backend_pid(), -count(*) FROM (
              SELECT {keys} FROM old_rows WHERE {where}) AS rows GROUP BY {columns}
            {upsert};
          ELSE
            INSERT INTO {table} ({columns}, shard, n)
            SELECT {columns}, pg_backend_pid(), sum(delta) FROM (
              SELECT {keys}, -1 AS delta FROM old_rows WHERE {where}
              UNION ALL
              SELECT {keys}, 1 FROM new_rows WHERE {where}
            ) AS changes GROUP BY {columns} HAVING sum(delta) <> 0
            {upsert};
          END IF;
          RETURN NULL;
        END $$
        """,
        f"CREATE TRIGGER {source}_{table}_insert AFTER INSERT ON {source} "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {source}_{table}()",
        f"CREATE TRIGGER {source}_{table}_update AFTER UPDATE ON {source} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {source}_{table}()",
        f"CREATE TRIGGER {source}_{table}_delete AFTER DELETE ON {source} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT "
        f"EXECUTE FUNCTION {source}_{table}()",
    ]


# SQLite: row-level triggers, one shard. The domain is what follows the address's last "@".
def _sqlite_minute(row: str, column: str = "updated_at") -> str:
    return f"CAST(strftime('%s', {row}.{column}) AS INTEGER) / 60"


def _sqlite_domain(row: str) -> str:
    return f"lower(replace({row}.address, rtrim({row}.address, replace({row}.address, '@', '')), ''))"


SQLITE_TABLES = {
    "send_timeline": (
        lambda row: f"{row}.send_id AS send_id, {_sqlite_minute(row)} AS minute,"
        f" {row}.state AS state",
        lambda row: f"{row}.state IN {TIMELINE_STATES}",
        "send_id, minute, state",
        "OLD.state IS NOT NEW.state OR OLD.updated_at IS NOT NEW.updated_at",
    ),
    "send_domains": (
        lambda row: f"{row}.send_id AS send_id, {_sqlite_domain(row)} AS domain,"
        f" {row}.state AS state, coalesce({row}.failure_cause, '') AS cause",
        lambda row: f"{row}.channel = 'email'",
        "send_id, domain, state, cause",
        "OLD.state IS NOT NEW.state OR OLD.failure_cause IS NOT NEW.failure_cause"
        " OR OLD.address IS NOT NEW.address",
    ),
    "send_engagement": (
        lambda row: f"{row}.send_id AS send_id, {_sqlite_minute(row, 'at')} AS minute,"
        f" {row}.kind AS kind",
        lambda row: f"NOT {row}.machine",
        "send_id, minute, kind",
        "OLD.machine IS NOT NEW.machine OR OLD.at IS NOT NEW.at",
    ),
}


def _sqlite_triggers(table: str) -> list[str]:
    keys, where, columns, changed = SQLITE_TABLES[table]
    source = SOURCES[table]
    upsert = f"ON CONFLICT ({columns}, shard) DO UPDATE SET n = {table}.n + EXCLUDED.n"

    def add(row: str, n: int) -> str:
        return (
            f"INSERT INTO {table} ({columns}, shard, n) SELECT {keys(row)}, 0, {n}"
            f" WHERE {where(row)} {upsert};"
        )

    return [
        f"CREATE TRIGGER {source}_{table}_insert AFTER INSERT ON {source} BEGIN"
        f" {add('NEW', 1)} END",
        f"CREATE TRIGGER {source}_{table}_update AFTER UPDATE ON {source} WHEN {changed}"
        f" BEGIN {add('OLD', -1)} {add('NEW', 1)} END",
        f"CREATE TRIGGER {source}_{table}_delete AFTER DELETE ON {source} BEGIN"
        f" {add('OLD', -1)} END",
    ]


def _counter_table(name: str, *keys: sa.Column[object]) -> None:
    """A trigger-kept counter table: per send and ``keys``, one row per writing shard."""
    names = [column.name for column in keys]
    op.create_table(
        name,
        sa.Column("send_id", BIG_ID, nullable=False),
        *keys,
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f(f"fk_{name}_send_id_sends"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("send_id", *names, "shard", name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    _counter_table(
        "send_timeline",
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
    )
    _counter_table(
        "send_domains",
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
    )
    _counter_table(
        "send_engagement",
        sa.Column("minute", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
    )
    # The next retry of a send: the first due of its deferred rows, whatever their number.
    op.create_index(
        "ix_deliveries_deferred_due",
        "deliveries",
        ["send_id", "not_before"],
        postgresql_where=sa.text("state = 'deferred'"),
        sqlite_where=sa.text("state = 'deferred'"),
    )
    # The readers per link of a send, read from the index alone.
    op.create_index(
        "ix_engagement_events_reader_clicks",
        "engagement_events",
        ["send_id", "url", "subscriber_id"],
        postgresql_where=sa.text("kind = 'click' AND NOT machine"),
        sqlite_where=sa.text("kind = 'click' AND NOT machine"),
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        source = SOURCES[table]
        if postgres:
            keys, where, columns = PG_TABLES[table]
            op.execute(
                f"INSERT INTO {table} ({columns}, shard, n) SELECT {columns}, 0, count(*) FROM"
                f" (SELECT {keys} FROM {source} WHERE {where}) AS rows GROUP BY {columns}"
            )
            statements = _postgres_triggers(table)
        else:
            sqlite_keys, sqlite_where, columns, _ = SQLITE_TABLES[table]
            op.execute(
                f"INSERT INTO {table} ({columns}, shard, n) SELECT {columns}, 0, count(*) FROM"
                f" (SELECT {sqlite_keys(source)} FROM {source}"
                f" WHERE {sqlite_where(source)}) GROUP BY {columns}"
            )
            statements = _sqlite_triggers(table)
        for statement in statements:
            op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        source = SOURCES[table]
        for event in ("insert", "update", "delete"):
            op.execute(
                f"DROP TRIGGER IF EXISTS {source}_{table}_{event}"
                + (f" ON {source}" if postgres else "")
            )
        if postgres:
            op.execute(f"DROP FUNCTION IF EXISTS {source}_{table}()")
        op.drop_table(table)
    op.drop_index("ix_deliveries_deferred_due", table_name="deliveries")
    op.drop_index("ix_engagement_events_reader_clicks", table_name="engagement_events")
