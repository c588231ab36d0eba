"""A count that does not fit in a page's time is finished after the page, never shown stale,
never skipped (issue 23: staff pages under 100 ms of server time at a million readers).

A view that can wait for a figure gives its transaction a budget (:func:`give_budget`, the
``COUNT_BUDGET_SECONDS`` setting). On PostgreSQL a count that is not kept
(:mod:`distributor.snapshot_counts`) is then tried within it (``statement_timeout`` inside a
savepoint); one that does not fit is started on a thread of this process (two count at a
time), once however often it is asked for, and :class:`CountPending` tells the view, which
answers at once ("Counting…") and is asked again when :func:`still_counting` says the count is
kept. The view's transaction is still usable: only the savepoint was rolled back. A count that
failed in the background is made inline the next time it is asked for (within a minute), so
that its error reaches the page.

A count in the background holds an advisory lock on its key for its transaction: another web
process asked for the same count waits for it and then reads what it kept, and any process can
tell whether someone is counting it. Without a budget (the CLI, the API, an action confirmed),
and on SQLite, every count is made inline as before.

A ground-floor module: it knows SQL and the database, no room's models.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

T = TypeVar("T")
BUDGET = "count_budget_seconds"  # the session.info keys
WAITED = "counts_waited_for"
COUNT_KEY = re.compile("[0-9a-f]{64}")  # a count's key (snapshot_counts: SQL and values hashed)
# How long a count made in the background is shown to a page that waited for it.
WAITED_FOR = timedelta(minutes=2)
WORKERS = 2  # counts over a million readers at once: each is one backend's CPU for seconds
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement_timeout
# A count that failed in the background is made inline when next asked for within this long:
# its error reaches the page, which would otherwise ask for it again and again.
FAILED_FOR = 60.0

_lock = threading.Lock()
_running: set[str] = set()  # started or waiting for a worker
_failed: dict[str, float] = {}  # when (monotonic) each count failed
_workers = threading.BoundedSemaphore(WORKERS)


class CountPending(Exception):
    """The count ``key`` did not fit in the budget; it is being made in the background."""

    def __init__(self, key: str) -> None:
        super().__init__(f"count {key[:12]} is being made")
        self.key = key


def give_budget(session: Session, seconds: float, waited: Iterable[str] = ()) -> None:
    """Counts in ``session`` that are not kept take at most ``seconds`` (0: none is tried;
    each not kept is finished in the background). ``waited``: the keys of counts the page was
    told were being made, and waited for: it is shown what they kept (see :func:`waited_for`)."""
    session.info[BUDGET] = seconds
    session.info[WAITED] = frozenset(key for key in waited if COUNT_KEY.fullmatch(key))


def waited_for(session: Session, key: str) -> bool:
    """Whether the page asking waited for the count ``key`` to be made in the background.

    It is then shown that count, as made, even if what it reads has changed since: while a
    send of the issue is going out, every answer changes the deliveries the "already got this
    issue" warning reads, and a page that waited for an exact count would wait for ever. What
    leaves still goes by the exact number: a confirmed action counts inline, with no budget."""
    return key in session.info.get(WAITED, ())


def budget_of(session: Session, key: str) -> float | None:
    """The session's budget for the count ``key``; None (made inline) on SQLite, when none was
    given, or once after that count failed in the background lately (asked again after that,
    it is tried within the budget again)."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    budget = session.info.get(BUDGET)
    if budget is None:
        return None
    with _lock:
        failed = _failed.pop(key, None)
    if failed is not None and time.monotonic() - failed <= FAILED_FOR:
        return None
    return float(budget)


def within_budget(session: Session, seconds: float, count: Callable[[], T]) -> T | None:
    """``count()`` if it fits in ``seconds`` (a ``statement_timeout`` for its statements, set
    and undone inside a savepoint); None if it does not (or ``seconds`` is 0)."""
    if seconds <= 0:
        return None
    previous = session.scalar(text("SELECT current_setting('statement_timeout')"))
    try:
        with session.begin_nested():
            _set_timeout(session, f"{max(1, round(seconds * 1000))}ms")
            result = count()
            _set_timeout(session, str(previous))  # a SET LOCAL outlives a released savepoint
    except OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == QUERY_CANCELED:
            return None
        raise
    return result


def _set_timeout(session: Session, value: str) -> None:
    session.execute(text("SELECT set_config('statement_timeout', :v, true)"), {"v": value})


def count_later(session: Session, key: str, count: Callable[[Session], Any]) -> CountPending:
    """Start ``count`` (in its own transaction, on the session's engine, on a daemon thread: a
    stopping web process does not wait for it) unless this process is already making the count
    ``key``; what to raise to the view."""
    engine = session.get_bind()
    assert isinstance(engine, Engine)
    with _lock:
        if key not in _running:
            _running.add(key)
            threading.Thread(
                target=_count, args=(engine, key, count), name=f"count-{key[:8]}", daemon=True
            ).start()
    return CountPending(key)


def counting_here(key: str) -> bool:
    """Whether this process is making the count ``key`` (or has it queued)."""
    with _lock:
        return key in _running


def still_counting(session: Session, key: str) -> bool:
    """Whether the count ``key`` is being made, here or by another process (its lock is held):
    False once it is kept, or if it failed (asked again, it is then made inline, its error
    shown)."""
    if counting_here(key):
        return True
    if session.get_bind().dialect.name != "postgresql":
        return False
    free = session.scalar(text("SELECT pg_try_advisory_lock(hashtext('counting ' || :k))"),
                          {"k": key})
    if free:
        session.execute(text("SELECT pg_advisory_unlock(hashtext('counting ' || :k))"),
                        {"k": key})
    return not free


def _count(engine: Engine, key: str, count: Callable[[Session], Any]) -> None:
    """One count in the background, at most :data:`WORKERS` at a time: after any other process
    making it (which kept it, so ``count`` reads it back), kept when its transaction commits."""
    try:
        with _workers, sessionmaker(engine, expire_on_commit=False).begin() as session:
            session.execute(text("SELECT pg_advisory_xact_lock(hashtext('counting ' || :k))"),
                            {"k": key})
            count(session)
    except Exception:
        log.exception("count %s in the background failed", key[:12])
        with _lock:
            _failed[key] = time.monotonic()
    finally:
        with _lock:
            _running.discard(key)

