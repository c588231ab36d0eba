"""Opens and clicks of tracked sends: verified at the edge, buffered, written in batches.

A newsletter to 100,000 readers makes a burst of pixel and link-scanner hits in its first
minutes; a database write per hit would make the database the bottleneck of the web server. So the
web server only checks the signature and queues the event; a background thread writes what has
queued every fraction of a second in one INSERT. An event still in the buffer when the process is
killed is lost: opens and clicks are statistics, not deliveries.

Statistics nobody can inflate: a process writes at most :data:`REPEATS_KEPT` opens of a
reader, and as many clicks of a reader on one link (a token replayed four thousand times writes
ten rows, not four thousand), and the counts are of readers and reader-link pairs, never of
rows. Clicks on several links within :data:`SCANNER_WINDOW` of
the message's delivery are a mail gateway's link scanner following every link as the message
arrives: they are marked ``machine`` and counted apart, not as a reader.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, distinct, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import utcnow
from distributor.errors import InvalidToken
from distributor.readers.models import (
    EngagementEvent,
    EngagementKind,
    SendEngagement,
    SendReaders,
)
from distributor.sending.breakdown import per_minute
from distributor.sending.models import Delivery
from subscribers.tokens import TokenPurpose, TokenSigner

log = logging.getLogger(__name__)
_EVENTS = cast(Table, EngagementEvent.__table__)
FLUSH_SECONDS = 0.5
FLUSH_ROWS = 2000
KEEP_ROWS = 200_000  # events kept while the database is away (about 50 MB); the oldest go first
REPEATS_KEPT = 10  # rows a process writes of one reader's opens, or of their clicks on one link
SEEN_KEPT = 500_000  # (reader, link) pairs a process remembers counting; the oldest go first
SCANNER_WINDOW = timedelta(seconds=30)  # how soon after delivery a scanner follows the links
SCANNER_LINKS = 3  # … and how many different ones it follows at least: a reader clicks one
READER_CLICKS = text("engagement_events.kind = 'click' AND NOT engagement_events.machine")


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
        raise InvalidToken("this link is not valid", code="link.elsewhere")
    return int(send), int(subscriber)


def checked_target(signer: TokenSigner, target: str, mac: str) -> str:
    """``target`` if the newsletter linked to it (its MAC holds) and it is a web address."""
    if not target.startswith(("https://", "http://")) or not signer.check_text_mac(
        TokenPurpose.LINK, target, mac
    ):
        raise InvalidToken("this link was altered: it leads nowhere", code="link.nowhere")
    return target


class EngagementBuffer:
    """Events queued by request handlers, written by one background thread in batches."""

    def __init__(self, factory: sessionmaker[Session], *, clock: Callable[[], datetime] = utcnow):
        self.factory = factory
        self.clock = clock
        self._pending: list[dict[str, object]] = []
        self._seen: OrderedDict[tuple[int, int, EngagementKind, str | None], int] = OrderedDict()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, send_id: int, subscriber_id: int, kind: EngagementKind, url: str | None) -> None:
        """Queue one event, unless this process took :data:`REPEATS_KEPT` of the same already."""
        url = url[:2000] if url else None
        seen = (send_id, subscriber_id, kind, url)
        row = {"send_id": send_id, "subscriber_id": subscriber_id, "kind": kind, "url": url,
               "at": self.clock(), "machine": False}
        with self._lock:
            repeats = self._seen.get(seen, 0)
            if repeats >= REPEATS_KEPT:
                return
            self._seen[seen] = repeats + 1
            if len(self._seen) > SEEN_KEPT:
                self._seen.popitem(last=False)
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
                mark_machine_clicks(session, rows)
                # The table, not the class: the ORM's bulk path would look at every row again.
                session.execute(insert(_EVENTS), rows)
                announce(session, rows)
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


def announce(session: Session, rows: list[dict[str, object]]) -> None:
    """Opens and a reader's clicks (not a scanner's) to the webhooks listening, if any, in the
    transaction that writes them."""
    from distributor.outbox import EventKind, record_events  # here: counting needs none of it

    for kind, event in ((EngagementKind.OPEN, EventKind.READER_OPENED),
                        (EngagementKind.CLICK, EventKind.READER_CLICKED)):
        record_events(session, event, [
            ({"send_id": row["send_id"], "subscriber_id": row["subscriber_id"], "url": row["url"]},
             cast(datetime, row["at"]))
            for row in rows if row["kind"] is kind and not row["machine"]
        ])


def mark_machine_clicks(session: Session, rows: list[dict[str, object]]) -> None:
    """Mark the clicks of a scanner: a reader whose clicks on :data:`SCANNER_LINKS` or more
    different links all came within :data:`SCANNER_WINDOW` of their message's delivery. Those of
    ``rows`` are marked as they are written, those written before are updated; one read of the
    batch's readers' deliveries and early clicks."""
    clicks = [row for row in rows if row["kind"] is EngagementKind.CLICK]
    if not clicks:
        return
    sends = {cast(int, row["send_id"]) for row in clicks}
    readers = {cast(int, row["subscriber_id"]) for row in clicks}
    delivered: dict[tuple[int, int], datetime] = {
        (send_id, subscriber_id): sent_at
        for send_id, subscriber_id, sent_at in session.execute(
            select(Delivery.send_id, Delivery.subscriber_id, Delivery.sent_at).where(
                Delivery.subscriber_id.in_(readers),
                Delivery.send_id.in_(sends),
                Delivery.sent_at.is_not(None),
            )
        )
        if sent_at is not None and subscriber_id is not None
    }

    def early(send_id: int, subscriber_id: int, at: datetime) -> bool:
        sent_at = delivered.get((send_id, subscriber_id))
        return sent_at is not None and at - sent_at < SCANNER_WINDOW

    early_links: dict[tuple[int, int], set[str | None]] = {}
    written = session.execute(
        select(EngagementEvent.send_id, EngagementEvent.subscriber_id, EngagementEvent.url,
               EngagementEvent.at)
        .where(EngagementEvent.kind == EngagementKind.CLICK,
               EngagementEvent.send_id.in_(sends), EngagementEvent.subscriber_id.in_(readers))
    )
    for send_id, subscriber_id, url, at in [*written, *(
        (row["send_id"], row["subscriber_id"], row["url"], row["at"]) for row in clicks
    )]:
        if early(send_id, subscriber_id, at):
            early_links.setdefault((send_id, subscriber_id), set()).add(url)
    scanners = {reader for reader, links in early_links.items() if len(links) >= SCANNER_LINKS}
    for row in clicks:
        key = (cast(int, row["send_id"]), cast(int, row["subscriber_id"]))
        row["machine"] = key in scanners and early(*key, cast(datetime, row["at"]))
    for send_id, subscriber_id in scanners:
        sent_at = delivered[(send_id, subscriber_id)]
        session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.send_id == send_id,
                   EngagementEvent.subscriber_id == subscriber_id,
                   EngagementEvent.kind == EngagementKind.CLICK,
                   EngagementEvent.at < sent_at + SCANNER_WINDOW)
            .values(machine=True)
        )


@dataclass(frozen=True)
class EngagementCounts:
    opened: int  # recipients who opened at least once (as far as a pixel can tell)
    clicked: int  # recipients who followed at least one link themselves
    clicks: int  # links followed by readers, each reader's each link once
    machine_clicks: int = 0  # links followed by scanners as the message arrived, likewise

    def to_json(self) -> dict[str, int]:
        """The counts; scanners' clicks only when there were some."""
        shown = asdict(self)
        if not self.machine_clicks:
            del shown["machine_clicks"]
        return shown


def engagement_counts(session: Session, send_id: int, *, kept: bool = True) -> EngagementCounts:
    """Readers and reader-link pairs, not rows: replaying a link counts for nothing. Read from
    the trigger-kept ``send_readers``, or (``kept`` False: what they are checked against)
    counted over the events."""
    if kept:
        figures = dict.fromkeys(("opened", "clicked", "clicks", "machine_clicks"), 0)
        rows = session.execute(
            select(SendReaders.figure, func.sum(SendReaders.n))
            .where(SendReaders.send_id == send_id)
            .group_by(SendReaders.figure)
        )
        figures.update({str(figure): int(n) for figure, n in rows})
        return EngagementCounts(**figures)
    of_send = EngagementEvent.send_id == send_id
    # DISTINCT in a subquery, not count(DISTINCT …): the index gives the readers in order, so
    # they are counted as they come instead of sorted first (a fifth of a million opens).
    openers = (
        select(EngagementEvent.subscriber_id)
        .where(of_send, EngagementEvent.kind == EngagementKind.OPEN)
        .distinct()
        .subquery()
    )
    opened = session.scalar(select(func.count()).select_from(openers))
    followed = (
        select(EngagementEvent.machine, EngagementEvent.subscriber_id, EngagementEvent.url)
        .where(of_send, EngagementEvent.kind == EngagementKind.CLICK)
        .distinct()
        .subquery()
    )
    clickers = {
        bool(machine): (int(readers), int(pairs))
        for machine, readers, pairs in session.execute(
            select(followed.c.machine, func.count(distinct(followed.c.subscriber_id)), func.count())
            .group_by(followed.c.machine)
        )
    }
    readers, pairs = clickers.get(False, (0, 0))
    return EngagementCounts(
        opened=int(opened or 0),
        clicked=readers,
        clicks=pairs,
        machine_clicks=clickers.get(True, (0, 0))[1],
    )




def engagement_timeline(session: Session, send_id: int) -> dict[str, dict[int, int]]:
    """Readers' opens and clicks by kind and by minute (since the epoch, UTC), from the
    trigger-kept ``send_engagement``: the rows written, each reader's repeats capped as they
    are written, a scanner's clicks left out."""
    return per_minute(session, SendEngagement, SendEngagement.kind, send_id)


def clicks_per_link(session: Session, send_id: int, *, most: int = 20) -> list[tuple[str, int]]:
    """The links readers followed, each with how many readers followed it, the most first."""
    readers = func.count(distinct(EngagementEvent.subscriber_id))
    rows = session.execute(
        select(EngagementEvent.url, readers)
        .where(
            EngagementEvent.send_id == send_id,
            READER_CLICKS,  # literally the index's condition, so that the index serves it
            EngagementEvent.url.is_not(None),
        )
        .group_by(EngagementEvent.url)
        .order_by(readers.desc(), EngagementEvent.url)
        .limit(most)
    )
    return [(str(url), int(n)) for url, n in rows]
