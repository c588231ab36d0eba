"""A database that refuses: a real trigger, on SQLite or PostgreSQL, for the tests of what a
failure on our side costs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from distributor.db import is_sqlite, transaction


@contextmanager
def database_refusing(
    database_url: str, event: str, table: str, *, when: str | None = None
) -> Iterator[None]:
    """While inside, every ``event`` (INSERT, UPDATE, DELETE) on ``table`` (rows matching the SQL
    condition ``when``, if given) fails with "refused by the test"."""
    name = f"refuse_{event.lower()}_{table}"
    if is_sqlite(database_url):
        condition = f" WHEN {when}" if when else ""
        create = [
            f"CREATE TRIGGER {name} BEFORE {event} ON {table}{condition} "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ]
        drop = [f"DROP TRIGGER {name}"]
    else:
        condition = f" WHEN ({when})" if when else ""
        create = [
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW{condition} "
            f"EXECUTE FUNCTION {name}()",
        ]
        drop = [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    with transaction(database_url) as session:
        for statement in create:
            session.execute(text(statement))
    try:
        yield
    finally:
        with transaction(database_url) as session:
            for statement in drop:
                session.execute(text(statement))
