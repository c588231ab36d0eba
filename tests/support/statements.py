"""The SQL an engine runs, seen from the test: for asserting on what reached the database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event

from distributor.db import get_engine


@contextmanager
def statements_run(url: str) -> Iterator[list[tuple[str, Any]]]:
    """Every statement the engine of ``url`` runs inside the block, with its parameters, in
    order (from every thread using that engine)."""
    seen: list[tuple[str, Any]] = []

    def note(*args: object) -> None:  # connection, cursor, statement, parameters, …
        seen.append((str(args[2]), args[3]))

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)
