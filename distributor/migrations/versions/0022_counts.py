"""counts: the readers of each list per standing on it, status, channel, format and addresses,
and each send's readers who opened and clicked, kept by triggers, so that a send's audience and
its report are counted from a few rows

Revision ID: 0022_counts
Revises: 0021_ab_tests
Create Date: 2026-12-06 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022_counts"
down_revision = "0021_ab_tests"
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
    "engagement_events": ("insert", "update", "delete"),
}

# A send's readers who opened, who clicked, and their clicks (each reader's each link once), a
# scanner's apart: what readers.engagement counts over the events. A change to some readers'
# events changes the figures by what those readers' events add up to after it, less what they
# added up to before (the events now, less the changed rows' new versions, plus their old ones).
READERS = "send_readers"
FIGURES = ("opened", "clicked", "clicks", "machine_clicks")
EVENT_COLUMNS = "id, send_id, subscriber_id, kind, machine, url"
READER_CLICK = "kind = 'click' AND NOT machine"
SCANNER_CLICK = "kind = 'click' AND machine"
READERS_UPSERT = f"ON CONFLICT (send_id, figure, shard) DO UPDATE SET n = {READERS}.n + EXCLUDED.n"


def _added_up(events: str) -> str:
    """Per send and reader, what their ``events`` add to each figure (a link's NULL counted as
    DISTINCT counts it: as one link)."""
    return (
        "SELECT send_id,"
        " max(CASE WHEN kind = 'open' THEN 1 ELSE 0 END) AS opened,"
        f" max(CASE WHEN {READER_CLICK} THEN 1 ELSE 0 END) AS clicked,"
        f" count(DISTINCT CASE WHEN {READER_CLICK} THEN url END)"
        f" + max(CASE WHEN {READER_CLICK} AND url IS NULL THEN 1 ELSE 0 END) AS clicks,"
        f" count(DISTINCT CASE WHEN {SCANNER_CLICK} THEN url END)"
        f" + max(CASE WHEN {SCANNER_CLICK} AND url IS NULL THEN 1 ELSE 0 END) AS machine_clicks"
        f" FROM ({events}) AS events GROUP BY send_id, subscriber_id"
    )


def _changes(after: str, before: str) -> str:
    """Per send and figure: after, less before (columns send_id, figure, n)."""
    sides = []
    for sign, events in ((1, after), (-1, before)):
        sides += [
            f"SELECT send_id, '{figure}' AS figure, {sign} * {figure} AS n"
            f" FROM ({_added_up(events)}) AS readers"
            for figure in FIGURES
        ]
    return " UNION ALL ".join(sides)


def _pg_readers_function(operation: str) -> str:
    changed = {
        "insert": "SELECT * FROM new_rows",
        "delete": "SELECT * FROM old_rows",
        "update": "SELECT * FROM new_rows UNION ALL SELECT * FROM old_rows",
    }[operation]
    now = (
        f"SELECT e.{EVENT_COLUMNS.replace(', ', ', e.')} FROM engagement_events e"
        f" JOIN (SELECT DISTINCT send_id, subscriber_id FROM ({changed}) AS c) AS k"
        " ON e.send_id = k.send_id AND e.subscriber_id = k.subscriber_id"
        " AND e.kind IN ('open', 'click')"
    )
    before = "SELECT * FROM now_rows"
    if operation != "delete":
        before += " WHERE id NOT IN (SELECT id FROM new_rows)"
    if operation != "insert":
        before += f" UNION ALL SELECT {EVENT_COLUMNS} FROM old_rows"
    # One writer of a send's events at a time, each reading what the one before committed: two
    # processes writing a reader's first open at once must not both count it.
    return f"""
    CREATE FUNCTION engagement_events_{READERS}_{operation}() RETURNS trigger
    LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_advisory_xact_lock(hashtext('{READERS}:' || send_id))
      FROM (SELECT DISTINCT send_id FROM ({changed}) AS c ORDER BY send_id) AS sends;
      INSERT INTO {READERS} (send_id, figure, shard, n)
      SELECT send_id, figure, pg_backend_pid(), sum(n) FROM (
        WITH now_rows AS MATERIALIZED ({now})
        {_changes("SELECT * FROM now_rows", before)}
      ) AS changes GROUP BY send_id, figure HAVING sum(n) <> 0 {READERS_UPSERT};
      RETURN NULL;
    END $$
    """


def _pg_readers() -> list[str]:
    statements = []
    for operation, tables in (
        ("insert", "NEW TABLE AS new_rows"),
        ("update", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
        ("delete", "OLD TABLE AS old_rows"),
    ):
        statements += [
            _pg_readers_function(operation),
            f"CREATE TRIGGER engagement_events_{READERS}_{operation} AFTER {operation.upper()}"
            f" ON engagement_events REFERENCING {tables} FOR EACH STATEMENT"
            f" EXECUTE FUNCTION engagement_events_{READERS}_{operation}()",
        ]
    return statements


def _sqlite_readers() -> list[str]:
    """Row by row: the reader's events now, and without the new row but with the old one."""
    statements = []
    for operation, rows in (("insert", ("NEW",)), ("update", ("NEW", "OLD")), ("delete", ("OLD",))):
        row = rows[0]
        now = (
            f"SELECT {EVENT_COLUMNS} FROM engagement_events"
            f" WHERE send_id = {row}.send_id AND subscriber_id = {row}.subscriber_id"
        )
        before = now + (" AND id <> NEW.id" if "NEW" in rows else "")
        if "OLD" in rows:
            before += (
                " UNION ALL SELECT OLD.id, OLD.send_id, OLD.subscriber_id, OLD.kind,"
                " OLD.machine, OLD.url"
            )
        when = ""
        if operation == "update":
            when = (
                " WHEN OLD.machine IS NOT NEW.machine OR OLD.kind IS NOT NEW.kind"
                " OR OLD.url IS NOT NEW.url"
            )
        statements.append(
            f"CREATE TRIGGER engagement_events_{READERS}_{operation} AFTER {operation.upper()}"
            f" ON engagement_events{when} BEGIN"
            f" INSERT INTO {READERS} (send_id, figure, shard, n)"
            f" SELECT send_id, figure, 0, sum(n) FROM ({_changes(now, before)})"
            f" WHERE true GROUP BY send_id, figure HAVING sum(n) <> 0 {READERS_UPSERT}; END"
        )
    return statements


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
    op.create_table(
        READERS,
        sa.Column("send_id", BIG_ID, nullable=False),
        sa.Column("figure", sa.String(length=20), nullable=False),
        sa.Column("shard", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f(f"fk_{READERS}_send_id_sends"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("send_id", "figure", "shard", name=op.f(f"pk_{READERS}")),
    )
    every = f"SELECT {EVENT_COLUMNS} FROM engagement_events"
    op.execute(
        f"INSERT INTO {READERS} (send_id, figure, shard, n) SELECT send_id, figure, 0, sum(n)"
        f" FROM ({_changes(every, every + ' WHERE 1 = 0')}) AS figures"
        " GROUP BY send_id, figure HAVING sum(n) <> 0"
    )
    postgres = op.get_bind().dialect.name == "postgresql"
    statements = (
        [*PG_FUNCTIONS, *PG_TRIGGERS, *_pg_readers()]
        if postgres
        else [*SQLITE_TRIGGERS, *_sqlite_readers()]
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, events in TRIGGERS.items():
        counts = READERS if table == "engagement_events" else TABLE
        for event in events:
            op.execute(
                f"DROP TRIGGER IF EXISTS {table}_{counts}_{event}"
                + (f" ON {table}" if postgres else "")
            )
    if postgres:
        for function in (
            f"subscriptions_{TABLE}",
            f"subscribers_{TABLE}",
            f"subscribers_{TABLE}_gone",
            f"lists_{TABLE}",
            *(f"engagement_events_{READERS}_{event}" for event in TRIGGERS["engagement_events"]),
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    op.drop_table(TABLE)
    op.drop_table(READERS)
