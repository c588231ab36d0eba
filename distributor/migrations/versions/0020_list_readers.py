"""list readers: the readers of each list per standing on it, status, channel, format and
addresses, kept by triggers, so that a send's audience is counted from a few rows

Revision ID: 0020_list_readers
Revises: 0019_ops
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_list_readers"
down_revision = "0019_ops"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TABLE = "list_readers"
# One row per subscription, counted under its list, its own status and what decides whom a send
# reaches: the subscriber's status, channel and format, an address mail can reach (as
# subscribers.query.has_email: 1 or 0) and the WeChat OpenID (0 none, 1 empty, 2 set).
COLUMNS = "list_id, subscription, status, channel, format, email, openid"
UPSERT = f"ON CONFLICT ({COLUMNS}, shard) DO UPDATE SET n = {TABLE}.n + EXCLUDED.n"


def _email(s: str) -> str:
    return (
        f"CASE WHEN {s}.email IS NOT NULL AND {s}.email <> ''"
        f" AND {s}.email_key NOT LIKE '%.invalid' THEN 1 ELSE 0 END"
    )


def _openid(s: str) -> str:
    return f"CASE WHEN {s}.openid IS NULL THEN 0 WHEN {s}.openid = '' THEN 1 ELSE 2 END"


def _reader(s: str) -> str:
    """The subscriber's part of the key, from row ``s`` of ``subscribers``."""
    return f"{s}.status, {s}.channel, {s}.format, {_email(s)}, {_openid(s)}"


def _keys(r: str, s: str) -> str:
    """The whole key of subscription row ``r`` of subscriber row ``s``."""
    return f"{r}.list_id, {r}.status, {_reader(s)}"


# A subscription counts while its subscriber and its list exist: deleting either deletes it (a
# cascade), and the subscriber's own trigger (or the list's) has already taken it out.
def _of(rows: str) -> str:
    return (
        f"FROM {rows} r JOIN subscribers s ON s.id = r.subscriber_id"
        " JOIN lists l ON l.id = r.list_id"
    )


# PostgreSQL: statement-level triggers over transition tables, one shard per connection, as the
# send counters (0004, 0016): an import of a million subscriptions is one grouped upsert.
PG_FUNCTIONS = [
    f"""
    CREATE FUNCTION subscriptions_{TABLE}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        INSERT INTO {TABLE} ({COLUMNS}, shard, n)
        SELECT {_keys('r', 's')}, pg_backend_pid(), count(*) {_of('new_rows')}
        GROUP BY {_keys('r', 's')} {UPSERT};
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO {TABLE} ({COLUMNS}, shard, n)
        SELECT {_keys('r', 's')}, pg_backend_pid(), -count(*) {_of('old_rows')}
        GROUP BY {_keys('r', 's')} {UPSERT};
      ELSE
        INSERT INTO {TABLE} ({COLUMNS}, shard, n)
        SELECT {COLUMNS}, pg_backend_pid(), sum(delta) FROM (
          SELECT {_keys('r', 's')}, -1 AS delta {_of('old_rows')}
          UNION ALL
          SELECT {_keys('r', 's')}, 1 {_of('new_rows')}
        ) AS changes (list_id, subscription, status, channel, format, email, openid, delta)
        GROUP BY {COLUMNS} HAVING sum(delta) <> 0 {UPSERT};
      END IF;
      RETURN NULL;
    END $$
    """,
    # A subscriber whose status, channel, format or addresses change moves each of their
    # subscriptions from the old key to the new one.
    f"""
    CREATE FUNCTION subscribers_{TABLE}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {TABLE} ({COLUMNS}, shard, n)
      SELECT {COLUMNS}, pg_backend_pid(), sum(delta) FROM (
        SELECT sub.list_id, sub.status, {_reader('o')}, -1 AS delta
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN subscriptions sub ON sub.subscriber_id = o.id
        WHERE ({_reader('o')}) IS DISTINCT FROM ({_reader('n')})
        UNION ALL
        SELECT sub.list_id, sub.status, {_reader('n')}, 1
        FROM old_rows o JOIN new_rows n ON n.id = o.id
        JOIN subscriptions sub ON sub.subscriber_id = o.id
        WHERE ({_reader('o')}) IS DISTINCT FROM ({_reader('n')})
      ) AS changes (list_id, subscription, status, channel, format, email, openid, delta)
      GROUP BY {COLUMNS} HAVING sum(delta) <> 0 {UPSERT};
      RETURN NULL;
    END $$
    """,
    # Before a subscriber goes: their subscriptions go by cascade once the row is gone, when
    # their key can no longer be read.
    f"""
    CREATE FUNCTION subscribers_{TABLE}_gone() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {TABLE} ({COLUMNS}, shard, n)
      SELECT sub.list_id, sub.status, {_reader('OLD')}, pg_backend_pid(), -count(*)
      FROM subscriptions sub WHERE sub.subscriber_id = OLD.id
      GROUP BY sub.list_id, sub.status {UPSERT};
      RETURN OLD;
    END $$
    """,
    f"""
    CREATE FUNCTION lists_{TABLE}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      DELETE FROM {TABLE} WHERE list_id IN (SELECT id FROM old_rows);
      RETURN NULL;
    END $$
    """,
]
PG_TRIGGERS = [
    *(
        f"CREATE TRIGGER subscriptions_{TABLE}_{event.lower()} AFTER {event} ON subscriptions"
        f" REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION subscriptions_{TABLE}()"
        for event, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        )
    ),
    f"CREATE TRIGGER subscribers_{TABLE}_update AFTER UPDATE ON subscribers"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    f" FOR EACH STATEMENT EXECUTE FUNCTION subscribers_{TABLE}()",
    f"CREATE TRIGGER subscribers_{TABLE}_delete BEFORE DELETE ON subscribers"
    f" FOR EACH ROW EXECUTE FUNCTION subscribers_{TABLE}_gone()",
    f"CREATE TRIGGER lists_{TABLE}_delete AFTER DELETE ON lists"
    " REFERENCING OLD TABLE AS old_rows"
    f" FOR EACH STATEMENT EXECUTE FUNCTION lists_{TABLE}()",
]


# SQLite: row-level triggers, one shard.
def _sqlite_subscription(row: str, n: int) -> str:
    return (
        f"INSERT INTO {TABLE} ({COLUMNS}, shard, n) SELECT {_keys(row, 's')}, 0, {n}"
        f" FROM subscribers s WHERE s.id = {row}.subscriber_id"
        f" AND EXISTS (SELECT 1 FROM lists l WHERE l.id = {row}.list_id) {UPSERT};"
    )


def _sqlite_subscriber(row: str, n: int) -> str:
    return (
        f"INSERT INTO {TABLE} ({COLUMNS}, shard, n)"
        f" SELECT sub.list_id, sub.status, {_reader(row)}, 0, {n}"
        f" FROM subscriptions sub WHERE sub.subscriber_id = {row}.id {UPSERT};"
    )


SQLITE_TRIGGERS = [
    f"CREATE TRIGGER subscriptions_{TABLE}_insert AFTER INSERT ON subscriptions BEGIN"
    f" {_sqlite_subscription('NEW', 1)} END",
    f"CREATE TRIGGER subscriptions_{TABLE}_update AFTER UPDATE ON subscriptions"
    " WHEN OLD.status IS NOT NEW.status OR OLD.list_id IS NOT NEW.list_id"
    " OR OLD.subscriber_id IS NOT NEW.subscriber_id BEGIN"
    f" {_sqlite_subscription('OLD', -1)} {_sqlite_subscription('NEW', 1)} END",
    f"CREATE TRIGGER subscriptions_{TABLE}_delete AFTER DELETE ON subscriptions BEGIN"
    f" {_sqlite_subscription('OLD', -1)} END",
    f"CREATE TRIGGER subscribers_{TABLE}_update AFTER UPDATE ON subscribers"
    f" WHEN ({_reader('OLD')}) IS NOT ({_reader('NEW')}) BEGIN"
    f" {_sqlite_subscriber('OLD', -1)} {_sqlite_subscriber('NEW', 1)} END",
    f"CREATE TRIGGER subscribers_{TABLE}_delete BEFORE DELETE ON subscribers BEGIN"
    f" {_sqlite_subscriber('OLD', -1)} END",
    f"CREATE TRIGGER lists_{TABLE}_delete AFTER DELETE ON lists BEGIN"
    f" DELETE FROM {TABLE} WHERE list_id = OLD.id; END",
]
TRIGGERS = {
    "subscriptions": ("insert", "update", "delete"),
    "subscribers": ("update", "delete"),
    "lists": ("delete",),
}


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("list_id", BIG_ID, nullable=False),
        sa.Column("subscription", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("format", sa.String(length=20), nullable=False),
        sa.Column("email", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("openid", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "list_id",
            "subscription",
            "status",
            "channel",
            "format",
            "email",
            "openid",
            "shard",
            name=op.f(f"pk_{TABLE}"),
        ),
    )
    op.execute(
        f"INSERT INTO {TABLE} ({COLUMNS}, shard, n) SELECT {_keys('r', 's')}, 0, count(*)"
        f" {_of('subscriptions')} GROUP BY {_keys('r', 's')}"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    for statement in [*PG_FUNCTIONS, *PG_TRIGGERS] if postgres else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in TRIGGERS.items():
        for event in events:
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_{TABLE}_{event}"
                + (f" ON {table}" if postgres else "")
            )
    if postgres:
        for function in (
            f"subscriptions_{TABLE}",
            f"subscribers_{TABLE}",
            f"subscribers_{TABLE}_gone",
            f"lists_{TABLE}",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table(TABLE)
