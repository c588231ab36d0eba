"""The database ground floor: engine, declarative base, shared column shapes, migrations.

One ``Engine`` per process and URL. SQLite gets WAL, a busy timeout and foreign keys so that the
embedded set-up behaves like a server under the worker's concurrent writes.
"""

from __future__ import annotations

import enum
import fcntl
import functools
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Engine,
    Integer,
    MetaData,
    Select,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy import Enum as SAEnum
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

from distributor.private_files import create_private, sqlite_file

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")

Id = Annotated[int, mapped_column(BigId, primary_key=True)]
CreatedAt = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow)]
UpdatedAt = Annotated[datetime, mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)]
Timestamp = Annotated[datetime, mapped_column(UTCDateTime)]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    # Enums are stored by value as short strings (no native ENUM types to migrate on PostgreSQL).
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        enum.Enum: SAEnum(
            enum.Enum,
            native_enum=False,
            length=20,
            validate_strings=True,
            values_callable=lambda members: [member.value for member in members],
        ),
    }


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, open transactions (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    """Take the write lock when a transaction begins. A deferred transaction that reads first and
    writes later fails at once (SQLITE_BUSY) when another process wrote in between; an immediate
    one waits its turn (busy_timeout) instead."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _json(value: Any) -> str:
    """JSON as UTF-8 text: Chinese attribute keys stay matchable (SQLite's json_extract)."""
    return json.dumps(value, ensure_ascii=False)


_engines: dict[str, Engine] = {}
# A process's connections to PostgreSQL: kept open, and at most (SQLite's pool allows more).
POOL_SIZE = 5
CONNECTIONS = 10


_DETAIL = re.compile(r"\nDETAIL:[^\n]*")


def _without_row_values(context: ExceptionContext) -> None:
    """PostgreSQL's DETAIL line repeats the failing row's values ("Key (email_key)=(…) already
    exists"): personal data, kept out of the message and so out of every log and traceback (it
    stays in the driver error's ``diag`` for code that needs it)."""
    for error in (context.original_exception, context.sqlalchemy_exception):
        if error is not None and error.args and isinstance(error.args[0], str):
            error.args = (_DETAIL.sub("", error.args[0]), *error.args[1:])


def get_engine(url: str) -> Engine:
    """The process's engine for ``url``; created once, shared by every session."""
    engine = _engines.get(url)
    if engine is None:
        if is_sqlite(url):
            path = sqlite_file(url)
            if path is not None:
                create_private(path)  # the readers, the staff's hashes: owner only
            engine = create_engine(
                url, connect_args={"timeout": 30}, json_serializer=_json, hide_parameters=True
            )
            event.listen(engine, "connect", _sqlite_connect)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=POOL_SIZE,
                max_overflow=CONNECTIONS - POOL_SIZE,
                json_serializer=_json,
                # An error's log line names the statement, never its values: addresses, names
                # and tokens are personal data.
                hide_parameters=True,
            )
            event.listen(engine, "handle_error", _without_row_values)
        _engines[url] = engine
    return engine


def counting_over_readers(session: Session) -> None:
    """Before a count that probes an index per reader: on PostgreSQL, no JIT for the rest of
    the transaction. The probes look dear to the planner, which would compile the query: seconds
    of LLVM for a count that takes a fraction of that."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def walking_readers_by_id(session: Session) -> None:
    """Before a keyset page of readers (``id > checkpoint ORDER BY id LIMIT n``): on PostgreSQL,
    the rest of the transaction walks the primary key in order instead of sorting. Readers just
    imported have no statistics yet; the planner then expects one match, filters every reader
    past the checkpoint and sorts them, so each page costs the whole rest of the list and
    planning a send grows with its square (40,000 readers: 53 ms a page instead of 3). No JIT
    either, as for a count."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(
            text("SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)")
        )


def insert_ignoring_duplicates(
    session: Session,
    table: Any,
    values: list[dict[str, Any]] | None = None,
    *,
    rows: Select[Any] | None = None,
    columns: Sequence[str] = (),
) -> None:
    """INSERT … ON CONFLICT DO NOTHING on either backend: the unique key decides, not a read.
    The rows are ``values``, or those of the query ``rows`` into ``columns``."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    if rows is not None:
        session.execute(dialect.insert(table).from_select(columns, rows).on_conflict_do_nothing())
    elif values:
        session.execute(dialect.insert(table).on_conflict_do_nothing(), values)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(get_engine(url), expire_on_commit=False)


@contextmanager
def transaction(url: str) -> Iterator[Session]:
    """A session whose work commits together or not at all."""
    with session_factory(url).begin() as session:
        yield session


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def dispose_engines(*, close: bool = True) -> None:
    """Forget every engine. In a forked child pass ``close=False``: the pooled connections are
    the parent's, and closing them would end the parent's sessions too."""
    while _engines:
        _engines.popitem()[1].dispose(close=close)


MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# The key of `db upgrade`'s PostgreSQL advisory lock: "dist" in ASCII.
UPGRADE_LOCK_KEY = 0x64697374


@contextmanager
def upgrade_lock(url: str) -> Iterator[None]:
    """Held by one upgrader of the database at ``url`` at a time: workers that all start at once
    with ``db upgrade`` before them migrate once, the others wait and find nothing to do.
    PostgreSQL: a session advisory lock. SQLite: an exclusive lock on the database's folder
    (SQLite's own locks last a transaction, and its migrations run one transaction each; a lock
    on the database file itself would be dropped with SQLite's own when its descriptor closes)."""
    if not is_sqlite(url):
        with get_engine(url).connect() as connection:
            connection.execute(text("select pg_advisory_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("select pg_advisory_unlock(:key)"), {"key": UPGRADE_LOCK_KEY}
                )
                connection.commit()
        return
    path = sqlite_file(url)
    if path is None:
        yield
        return
    folder = os.open(path.absolute().parent, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        yield
    finally:
        os.close(folder)  # and with it the lock


def pending_migrations(url: str, revision: str = "head") -> list[tuple[str, str]]:
    """The migrations an upgrade to ``revision`` would apply, oldest first: (revision, what it
    does)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(url))
    steps = script.iterate_revisions(revision, current_revision(url) or "base")
    return [(step.revision, " ".join((step.doc or "").split())) for step in reversed(list(steps))]


def upgrade(url: str, revision: str = "head", say: Callable[[str], None] | None = None) -> None:
    """Bring the schema at ``url`` to ``revision`` (the newest by default), one upgrader at a
    time; ``say`` is told what is about to happen, before it does."""
    from alembic import command

    with upgrade_lock(url):
        if say is not None:
            steps = pending_migrations(url, revision)
            current = current_revision(url) or "empty"
            if not steps:
                say(f"Database is at {current}: nothing to do")
            else:
                say(f"Upgrading from {current} to {steps[-1][0]}, {len(steps)} migrations:")
                for step, doc in steps:
                    say(f"  {step}: {doc}")
        command.upgrade(alembic_config(url), revision)


__all__ = [
    "Base",
    "BigId",
    "CreatedAt",
    "Id",
    "Timestamp",
    "UTCDateTime",
    "UpdatedAt",
    "dispose_engines",
    "get_engine",
    "is_sqlite",
    "session_factory",
    "transaction",
    "upgrade",
    "utcnow",
]


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with get_engine(url).connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


@functools.cache
def head_revision() -> str:
    """The newest migration's revision. Each is named after its file, numbered in order (a test
    holds the chain to it), so a command checking the schema need not import Alembic."""
    return max(path.stem for path in (MIGRATIONS_DIR / "versions").glob("[0-9]*.py"))


def schema_is_current(url: str) -> bool:
    with get_engine(url).connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    return [row[0] for row in versions] == [head_revision()]


# --- prefix search ------------------------------------------------------------------------------


def prefix_key(expression: Any, dialect_name: str) -> Any:
    """``expression`` compared byte by byte on PostgreSQL (``COLLATE "C"``), so that one btree
    index serves both ``LIKE 'prefix%'`` and keyset order whatever the database's collation
    (an index in a linguistic collation serves neither). SQLite compares bytes already."""
    return expression.collate("C") if dialect_name == "postgresql" else expression


def like_prefix(text: str) -> str:
    """A LIKE pattern matching what starts with ``text`` (its wildcards taken literally; use
    ``escape="\\\\"``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
