"""``distributor backup``: one file holding the whole database, made while sends run.

The file is the database's own tools' format, so it can also be read without this program:
PostgreSQL's custom format (``pg_dump -Fc``; one snapshot, so consistent while workers write),
or an SQLite database file (SQLite's online backup API, copied in one step: one snapshot too).
Its schema version is the ``alembic_version`` table inside it. The heartbeats are left out: they
describe the processes of the database it was made from.

A restore refuses a backup made by a newer release (a revision this code does not know), a
backup of the other kind of database, a database that is not empty (unless told to replace it),
and a database that a worker or beat is still writing to (:mod:`distributor.ops.heartbeats`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from distributor.db import alembic_config, dispose_engines, get_engine, is_sqlite
from distributor.errors import BackupRefused
from distributor.ops.heartbeats import fresh_processes
from distributor.ops.models import ProcessHeartbeat
from distributor.private_files import PRIVATE, create_private, sqlite_file

SQLITE_MAGIC = b"SQLite format 3\x00"
POSTGRES_MAGIC = b"PGDMP"
HEARTBEATS = ProcessHeartbeat.__tablename__


@dataclass(frozen=True)
class Backup:
    """What a backup file holds: which database's copy, at which schema revision."""

    kind: str  # "sqlite" or "postgresql"
    revision: str | None


# --- PostgreSQL's tools -------------------------------------------------------------------------


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """The URL as pg_dump reads it, and its password as an environment variable (a command
    line is visible to every user of the machine)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(*argv: str, env: dict[str, str] | None = None) -> str:
    """Run a PostgreSQL client tool; its stdout, or a refusal quoting what it said."""
    if shutil.which(argv[0]) is None:
        raise BackupRefused(
            f"{argv[0]} is not installed: install PostgreSQL's client tools (Debian: "
            "apt install postgresql-client), of the server's major version or newer"
        )
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise BackupRefused(f"{argv[0]} failed: {said[-1] if said else done.returncode}")
    return done.stdout


def _postgres_revision(path: Path) -> str | None:
    """The revision in a custom-format dump: its ``alembic_version`` rows, as pg_restore
    prints them (``COPY … FROM stdin;``, the rows, ``\\.``)."""
    script = _tool("pg_restore", "--data-only", "--table=alembic_version", "--file=-", str(path))
    lines = iter(script.splitlines())
    for line in lines:
        if line.startswith("COPY ") and "alembic_version" in line:
            row = next(lines, "\\.")
            return None if row == "\\." else row.strip()
    return None


# --- reading a backup ---------------------------------------------------------------------------


def _sqlite_revision(path: Path) -> str | None:
    with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as connection:
        try:
            row = connection.execute("select version_num from alembic_version").fetchone()
        except sqlite3.DatabaseError as error:
            raise BackupRefused(f"{path} is not a readable SQLite backup ({error})") from None
    return None if row is None else str(row[0])


def read_backup(path: Path) -> Backup:
    """The kind and schema revision of the backup at ``path``."""
    try:
        with path.open("rb") as file:
            start = file.read(len(SQLITE_MAGIC))
    except OSError as error:
        raise BackupRefused(f"cannot read {path}: {error.strerror}") from None
    if start.startswith(SQLITE_MAGIC):
        return Backup("sqlite", _sqlite_revision(path))
    if start.startswith(POSTGRES_MAGIC):
        return Backup("postgresql", _postgres_revision(path))
    raise BackupRefused(
        f"{path} is not a backup: neither a PostgreSQL custom-format dump nor an SQLite database"
    )


def _known_revision(url: str, revision: str | None) -> None:
    """Refuse a revision this release does not have: the backup's schema is newer."""
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    if revision is None:
        raise BackupRefused("the backup holds no schema revision: it was not made by distributor")
    try:
        ScriptDirectory.from_config(alembic_config(url)).get_revision(revision)
    except CommandError:
        raise BackupRefused(
            f"the backup's schema is at revision {revision}, which this release does not know: "
            "it was made by a newer release. Install that release (or a later one) to restore it"
        ) from None


# --- making one ---------------------------------------------------------------------------------


@contextmanager
def _private_partial(path: Path) -> Iterator[Path]:
    """A private file beside ``path`` to write into; moved onto ``path`` when the block ends
    well, removed when it fails (a half-written backup never looks like one)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    create_private(partial)
    try:
        yield partial
        os.chmod(partial, PRIVATE)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def create_backup(url: str, path: Path) -> Backup:
    """Write a backup of the database at ``url`` to ``path`` (readable by its owner only)."""
    if not path.parent.is_dir():
        raise BackupRefused(f"cannot write {path}: the folder {path.parent} does not exist")
    with _private_partial(path) as partial:
        if is_sqlite(url):
            _copy_sqlite(url, partial)
        else:
            target, env = _libpq(url)
            _tool(
                "pg_dump",
                "--format=custom",
                f"--exclude-table-data={HEARTBEATS}",
                f"--file={partial}",
                f"--dbname={target}",
                env=env,
            )
    return read_backup(path)


def _copy_sqlite(url: str, partial: Path) -> None:
    source_file = sqlite_file(url)
    if source_file is None or not source_file.exists():
        raise BackupRefused(f"there is no SQLite database at {url}")
    with closing(sqlite3.connect(source_file)) as source, closing(sqlite3.connect(partial)) as copy:
        source.backup(copy)  # every page in one step: one read transaction, one snapshot
        if HEARTBEATS in _sqlite_tables(copy):
            copy.execute(f"delete from {HEARTBEATS}")
        copy.execute("pragma journal_mode=delete")  # one self-contained file, no -wal beside it
        copy.commit()


def _sqlite_tables(connection: sqlite3.Connection) -> set[str]:
    rows = connection.execute("select name from sqlite_master where type = 'table'")
    return {str(name) for (name,) in rows}


# --- restoring one ------------------------------------------------------------------------------


def _refuse_running_processes(url: str, now: datetime) -> None:
    running = fresh_processes(url, now)
    if running:
        names = ", ".join(f"{name} (seen {(now - seen).total_seconds():.0f} s ago)"
                          for name, seen in running)
        raise BackupRefused(
            f"worker or beat processes run on this database: {names}. Stop every worker and beat "
            "(a killed one is taken for dead 30 s after its last heartbeat), then restore"
        )


def _table_count(url: str) -> int:
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is None or not path.exists() or path.stat().st_size == 0:
            return 0
    return len(inspect(get_engine(url)).get_table_names())


def restore_backup(url: str, path: Path, *, replace: bool, now: datetime) -> Backup:
    """Replace the database at ``url`` with the backup at ``path``; what the backup was."""
    backup = read_backup(path)
    backend = "sqlite" if is_sqlite(url) else "postgresql"
    if backup.kind != backend:
        raise BackupRefused(
            f"{path} is a backup of an {backup.kind} database; DATABASE_URL is {backend}"
        )
    _known_revision(url, backup.revision)
    _refuse_running_processes(url, now)
    tables = _table_count(url)
    if tables and not replace:
        raise BackupRefused(
            f"the database at DATABASE_URL is not empty ({tables} tables): restore into a new "
            "database, or pass --replace to overwrite this one"
        )
    if backend == "sqlite":
        _restore_sqlite(url, path)
    else:
        _restore_postgres(url, path, clear=bool(tables))
    return backup


def _restore_sqlite(url: str, path: Path) -> None:
    target = sqlite_file(url)
    if target is None:
        raise BackupRefused(f"cannot restore into {url}: name an SQLite file")
    dispose_engines()
    create_private(target)
    with (
        closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as source,
        closing(sqlite3.connect(target, timeout=30)) as database,
    ):
        source.backup(database)
        database.execute("pragma journal_mode=wal")


def _restore_postgres(url: str, path: Path, *, clear: bool) -> None:
    if clear:
        with get_engine(url).begin() as connection:
            connection.execute(text("drop schema public cascade"))
            connection.execute(text("create schema public"))
    dispose_engines()
    target, env = _libpq(url)
    _tool(
        "pg_restore",
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        f"--dbname={target}",
        str(path),
        env=env,
    )
