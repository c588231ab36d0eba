"""Opens and clicks of tracked sends: verified at the edge, buffered, written in batches.

A newsletter to 100,000 readers makes a burst of pixel and link-scanner hits in its first
minutes; a database write per hit would make the database the bottleneck of the web server. So the
web server only checks the signature and queues the event; a background thread writes what has
queued every fraction of a second in one INSERT. An event still in the buffer when the process is
killed is lost: opens and clicks are statistics, not deliveries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, distinct, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import utcnow
from distributor.errors import InvalidToken
from distributor.readers.models import EngagementEvent, EngagementKind
from subscribers.tokens import TokenPurpose, TokenSigner

log = logging.getLogger(__name__)
_EVENTS = cast(Table, EngagementEvent.__table__)
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 2000
KEEP_ROWS = 200_000  # events kept while the database is away (about 50 MB); the oldest go first


@dataclass(frozen=True)
class Engagement:
    send_id: int
    subscriber_id: int
    kind: EngagementKind
    url: str | None
    at: datetime


def reader_of(signer: TokenSigner, token: str) -> tuple[int, int]:
    """(send id, subscriber id) of a tracking token; InvalidToken if it is not ours."""
    send, _, subscriber = signer.verify(token, TokenPurpose.TRACK).partition("-")
    if not (send.isdigit() and subscriber.isdigit()):
        raise InvalidToken("this link is not valid")
    return int(send), int(subscriber)


def checked_target(signer: TokenSigner, target: str, mac: str) -> str:
    """``target`` if the newsletter linked to it (its MAC holds) and it is a web address."""
    if not target.startswith(("https://", "http://")) or not signer.check_text_mac(
        TokenPurpose.LINK, target, mac
    ):
        raise InvalidToken("this link was altered: it leads nowhere")
    return target


class EngagementBuffer:
    """Events queued by request handlers, written by one background thread in batches."""

    def __init__(self, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock
        self._pending: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, send_id: int, subscriber_id: int, kind: EngagementKind, url: str | None) -> None:
        row = {
            "send_id": send_id,
            "subscriber_id": subscriber_id,
            "kind": kind,
            "url": url[:2000] if url else None,
            "at": self.clock(),
        }
        with self._lock:
            self._pending.append(row)
            full = len(self._pending) >= FLUSH_ROWS
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Write what has queued; the number written. If the database refuses, the events go back
        to the front of the buffer for the next round (up to ``KEEP_ROWS`` of them): a database
        restart costs no events."""
        with self._lock:
            rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            with self.factory.begin() as session:
                # The table, not the class: the ORM's bulk path would look at every row again.
                session.execute(insert(_EVENTS), rows)
        except Exception:
            with self._lock:
                kept = (rows + self._pending)[-KEEP_ROWS:]
                lost, self._pending = len(rows) + len(self._pending) - len(kept), kept
            if lost:
                log.warning("the tracking buffer is full: %d oldest events dropped", lost)
            raise
        return len(rows)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="engagement-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the database is away: keep serving, try again next round
                log.exception("could not write tracking events; they wait for the next try")
                time.sleep(FLUSH_SECONDS)


@dataclass(frozen=True)
class EngagementCounts:
    opened: int  # recipients who opened at least once (as far as a pixel can tell)
    clicked: int  # recipients who followed at least one link
    clicks: int  # link follows in all


def engagement_counts(session: Session, send_id: int) -> EngagementCounts:
    rows = dict(
        session.execute(
            select(EngagementEvent.kind, func.count(distinct(EngagementEvent.subscriber_id)))
            .where(EngagementEvent.send_id == send_id)
            .group_by(EngagementEvent.kind)
        ).all()
    )
    clicks = session.scalar(
        select(func.count()).where(
            EngagementEvent.send_id == send_id, EngagementEvent.kind == EngagementKind.CLICK
        )
    )
    return EngagementCounts(
        opened=int(rows.get(EngagementKind.OPEN, 0)),
        clicked=int(rows.get(EngagementKind.CLICK, 0)),
        clicks=int(clicks or 0),
    )


