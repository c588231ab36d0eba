"""Worker and beat processes say they are alive, every ``HEARTBEAT_SECONDS``, in the database
they work on; a restore reads who is (:func:`fresh_processes`) and refuses to run under them."""

from __future__ import annotations

import logging
import os
import socket
import threading
from datetime import datetime, timedelta

from sqlalchemy import delete, inspect, select

from distributor.db import get_engine, transaction, utcnow
from distributor.ops.models import ProcessHeartbeat

HEARTBEAT_SECONDS = 10.0
# A process that missed this many beats is taken for dead (killed, its machine gone).
FRESH_FOR = timedelta(seconds=3 * HEARTBEAT_SECONDS)

logger = logging.getLogger("distributor.heartbeat")


def process_name(role: str) -> str:
    """``worker@host:pid``: unique among the processes sharing a database."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


def record_heartbeat(url: str, name: str, now: datetime) -> None:
    with transaction(url) as session:
        session.merge(ProcessHeartbeat(name=name, seen_at=now))


def forget_process(url: str, name: str) -> None:
    with transaction(url) as session:
        session.execute(delete(ProcessHeartbeat).where(ProcessHeartbeat.name == name))


def fresh_processes(url: str, now: datetime) -> list[tuple[str, datetime]]:
    """The processes seen within ``FRESH_FOR`` of ``now`` (none where the table is missing: a
    database older than heartbeats, or an empty one)."""
    if not inspect(get_engine(url)).has_table(ProcessHeartbeat.__tablename__):
        return []
    with transaction(url) as session:
        rows = session.execute(
            select(ProcessHeartbeat.name, ProcessHeartbeat.seen_at)
            .where(ProcessHeartbeat.seen_at > now - FRESH_FOR)
            .order_by(ProcessHeartbeat.name)
        )
        return [(name, seen_at) for name, seen_at in rows]


class Heartbeat:
    """A daemon thread that records this process's heartbeat until :meth:`stop`, which removes
    it. A beat that fails (the database is down a moment) is logged by the caller's logger and
    tried again at the next one."""

    def __init__(self, url: str, role: str) -> None:
        self.url = url
        self.name = process_name(role)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{role}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.is_set():
            try:
                record_heartbeat(self.url, self.name, utcnow())
            except Exception as error:  # the database is away: next beat
                logger.warning("Heartbeat of %s not recorded: %s", self.name, error)
            self._stopped.wait(HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        try:
            forget_process(self.url, self.name)
        except Exception as error:  # the mark goes stale by itself
            logger.warning("Heartbeat of %s not removed: %s", self.name, error)
