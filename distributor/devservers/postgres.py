"""Throw-away PostgreSQL databases, created and dropped through an admin URL.

The admin URL is a connection with the right to create databases (the local server with trust
auth, by default); each test or benchmark case gets a database of its own, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from distributor.db import dispose_engines

DEFAULT_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def admin_execute(admin_url: str, *statements: str) -> None:
    """Run ``statements`` outside a transaction (CREATE/DROP DATABASE need that)."""
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def unreachable_reason(admin_url: str) -> str | None:
    """None when the server answers at ``admin_url``, else why not (the driver's first line)."""
    try:
        admin_execute(admin_url, "select 1")
        return None
    except Exception as error:  # any driver error means: not reachable here
        return f"{type(error).__name__}: {str(error).splitlines()[0]}"


def database_url(admin_url: str, name: str) -> str:
    """The admin URL pointed at the database ``name``."""
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    """Drop ``name``, ending whatever connections still use it."""
    admin_execute(
        admin_url,
        f"select pg_terminate_backend(pid) from pg_stat_activity where datname = '{name}'",
        f'drop database if exists "{name}"',
    )


@contextmanager
def throwaway_database(
    admin_url: str, prefix: str, *, template_url: str | None = None
) -> Iterator[str]:
    """A new database named ``prefix`` and a random suffix (a copy of ``template_url``'s database
    if given, else empty), dropped when the block ends; yields its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    template = f' template "{make_url(template_url).database}"' if template_url else ""
    admin_execute(admin_url, f'create database "{name}"{template}')
    try:
        yield database_url(admin_url, name)
    finally:
        dispose_engines()
        drop_database(admin_url, name)
