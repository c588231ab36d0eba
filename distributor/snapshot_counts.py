"""Counts over a million readers, kept with the snapshot they were counted in and reused while
still exact: the same rows as counting again, never a stale number.

On PostgreSQL, statement-level triggers (migration 0023) append one row per transaction and
change to ``count_changes``: the transaction's id and what it changed, a table (rows inserted,
deleted or truncated) or one of its columns (``subscribers.status``: rows updated there). An
import of a million readers is one row, and writers never wait on each other's counter. A kept
count names everything its query reads; it is still exact iff no change to any of those is
visible now that was not visible in its snapshot (an index range scan from the snapshot's
``xmin``). A count is kept only by a transaction that changed nothing watched (its own
uncommitted rows would be in the count, and in no snapshot).

A count not kept, asked for by a view with a budget, is made within it or finished in the
background (:mod:`distributor.count_budget`): the view hears :class:`CountPending`, and finds the
count kept when it asks again. A count that cannot be kept is always made inline.

Pruning moves a horizon: change rows older than it go, and a kept count whose snapshot is
older than it is no longer trusted. A query that reads a table or column no trigger watches
(:data:`WATCHED`) is counted every time, as on SQLite.

A ground-floor module: it knows SQL and the database, no room's models.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Column, Integer, Select, String, Table, Text, text
from sqlalchemy.orm import Mapped, Session, mapped_column
from sqlalchemy.sql import visitors
from sqlalchemy.types import JSON

from distributor.count_budget import (
    WAITED_FOR,
    CountPending,
    budget_of,
    count_later,
    counting_here,
    waited_for,
    within_budget,
)
from distributor.db import Base, counting_over_readers

# The tables and columns the triggers of migration 0023 watch: a change to any other is not
# seen, so a count reading one is never kept.
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
# A kept count older than this is no longer read, and dropped when the next one is kept;
# pruning happens at most every PRUNE_EVERY.
KEEP = timedelta(hours=1)
PRUNE_EVERY = timedelta(minutes=10)


class CountChange(Base):
    """A transaction (``xid``, PostgreSQL's 64-bit id) changed ``what``: a table, or a table's
    column (``table.column``)."""

    __tablename__ = "count_changes"

    xid: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    what: Mapped[str] = mapped_column(String(80), primary_key=True)

    def __repr__(self) -> str:
        return f"<CountChange {self.xid} {self.what}>"


class KeptCount(Base):
    """The rows of one counting query (``key``: its SQL and values, hashed), as counted in
    ``snapshot`` (``pg_snapshot`` as text; ``oldest``: its xmin, the lowest transaction still
    running); ``reads``: the tables and columns it reads, space-separated."""

    __tablename__ = "kept_counts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot: Mapped[str] = mapped_column(Text)
    oldest: Mapped[int] = mapped_column(BigInteger)
    reads: Mapped[str] = mapped_column(Text)
    rows: Mapped[Any] = mapped_column(JSON)
    made_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<KeptCount {self.key[:12]} at {self.made_at}>"


class CountHorizon(Base):
    """Change rows below ``oldest`` are pruned: a kept count whose snapshot's xmin is lower may
    have missed one."""

    __tablename__ = "count_horizon"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    oldest: Mapped[int] = mapped_column(BigInteger)
    pruned_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<CountHorizon {self.oldest} at {self.pruned_at}>"


def counted_rows(session: Session, query: Select[*tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The rows of ``query`` (a count, or counts grouped by plain values), each value as JSON
    has it (an enum as its value): kept ones while still exact, else counted now (and kept,
    where it can be). With a budget (:mod:`distributor.count_budget`) one that does not fit in
    it raises :class:`~distributor.count_budget.CountPending`, and is kept in the background."""
    reads = _reads(query) if session.get_bind().dialect.name == "postgresql" else None
    if reads is None:
        return _plain(session.execute(query))
    key = _key(session, query)
    found = session.execute(_FIND, {"key": key, "keep": KEEP.total_seconds()}).first()
    if found is not None:
        return [tuple(row) for row in found[0]]
    budget = budget_of(session, key)
    if budget is not None and waited_for(session, key):
        made = session.execute(_MADE, {"key": key, "within": WAITED_FOR.total_seconds()}).first()
        if made is not None:
            return [tuple(row) for row in made[0]]
    if budget is not None and counting_here(key):  # started by an earlier load: no new try
        raise CountPending(key)
    snapshot, oldest = session.execute(_SNAPSHOT).one()
    if budget is None:
        rows = _plain(session.execute(query))
    else:
        fitted = within_budget(session, budget, lambda: _plain(session.execute(query)))
        if fitted is None:
            raise count_later(session, key, lambda s: _in_background(s, query))
        rows = fitted
    session.execute(
        _KEEP,
        {
            "key": key,
            "snapshot": snapshot,
            "oldest": oldest,
            "reads": " ".join(sorted(reads)),
            "rows": json.dumps(rows),
        },
    )
    _prune(session)
    return rows


def _in_background(session: Session, query: Select[*tuple[Any, ...]]) -> None:
    """A count the view could not wait for, made (and kept) in a transaction of its own."""
    counting_over_readers(session)
    counted_rows(session, query)


def _plain(rows: Iterable[Any]) -> list[tuple[Any, ...]]:
    """Rows as they are kept: JSON's values, whether counted now or read back."""
    return [
        tuple(row)
        for row in json.loads(json.dumps([[getattr(v, "value", v) for v in r] for r in rows]))
    ]


def _reads(query: Select[*tuple[Any, ...]]) -> set[str] | None:
    """What ``query`` reads (each table, and each ``table.column``); None if a trigger does not
    watch one of them."""
    reads: set[str] = set()
    for element in visitors.iterate(query):
        if isinstance(element, Table):
            if element.name not in WATCHED:
                return None
            reads.add(element.name)
        elif isinstance(element, Column) and isinstance(element.table, Table):
            table = element.table.name
            if element.name not in WATCHED.get(table, ()):
                return None
            reads.update((table, f"{table}.{element.name}"))
    return reads


def _key(session: Session, query: Select[*tuple[Any, ...]]) -> str:
    compiled = query.compile(dialect=session.get_bind().dialect)
    values = json.dumps(compiled.params, sort_keys=True, default=repr, ensure_ascii=False)
    return hashlib.sha256(f"{compiled}\n{values}".encode()).hexdigest()


# Still exact: no change to what it reads is visible now that its snapshot did not see. One
# older than KEEP is not looked at (the changes since it may be many), and soon pruned.
_FIND = text(
    "SELECT k.rows FROM kept_counts k JOIN count_horizon h ON h.id = 1"
    " WHERE k.key = :key AND k.oldest >= h.oldest"
    " AND k.made_at > now() - make_interval(secs => :keep)"
    " AND NOT EXISTS (SELECT 1 FROM count_changes c"
    " WHERE c.xid >= k.oldest AND c.what = ANY (string_to_array(k.reads, ' '))"
    " AND NOT pg_visible_in_snapshot(c.xid::text::xid8, k.snapshot::pg_snapshot))"
).columns(rows=JSON)
# A count as it was made, lately: for a page that waited for it (count_budget.waited_for).
_MADE = text(
    "SELECT rows FROM kept_counts"
    " WHERE key = :key AND made_at > now() - make_interval(secs => :within)"
).columns(rows=JSON)
# Taken before counting: a change committed meanwhile is in the count but not in the snapshot,
# so the kept count is merely thrown away sooner than need be.
_SNAPSHOT = text(
    "SELECT s::text, pg_snapshot_xmin(s)::text::bigint FROM pg_current_snapshot() AS s"
)
# Kept unless this transaction changed something watched (its own rows are in the count), or
# another is keeping the same count (no waiting on it).
_KEEP = text(
    "INSERT INTO kept_counts (key, snapshot, oldest, reads, rows, made_at)"
    " SELECT k, :snapshot, :oldest, :reads, CAST(:rows AS json), now()"
    " FROM CAST(:key AS text) AS k"
    " WHERE NOT EXISTS (SELECT 1 FROM count_changes"
    " WHERE xid = pg_current_xact_id_if_assigned()::text::bigint)"
    " AND pg_try_advisory_xact_lock(hashtext('kept_counts ' || k))"
    " ON CONFLICT (key) DO UPDATE SET snapshot = EXCLUDED.snapshot, oldest = EXCLUDED.oldest,"
    " reads = EXCLUDED.reads, rows = EXCLUDED.rows, made_at = EXCLUDED.made_at"
)


def _prune(session: Session) -> None:
    """At most every :data:`PRUNE_EVERY`, by one transaction at a time: forget kept counts older
    than :data:`KEEP`, move the horizon to the oldest snapshot still kept (or running now), and
    drop the change rows below it."""
    ages = {"every": PRUNE_EVERY.total_seconds(), "keep": KEEP.total_seconds()}
    due = session.execute(
        text(
            "SELECT 1 FROM count_horizon WHERE id = 1"
            " AND pruned_at < now() - make_interval(secs => :every) FOR UPDATE SKIP LOCKED"
        ),
        ages,
    ).first()
    if due is None:
        return
    session.execute(
        text(
            "DELETE FROM kept_counts WHERE key IN (SELECT key FROM kept_counts"
            " WHERE made_at < now() - make_interval(secs => :keep) FOR UPDATE SKIP LOCKED)"
        ),
        ages,
    )
    session.execute(
        text(
            "UPDATE count_horizon SET pruned_at = now(), oldest = least("
            "pg_snapshot_xmin(pg_current_snapshot())::text::bigint,"
            " (SELECT min(oldest) FROM kept_counts)) WHERE id = 1"
        )
    )
    session.execute(
        text(
            "DELETE FROM count_changes"
            " WHERE xid < (SELECT oldest FROM count_horizon WHERE id = 1)"
        )
    )
