"""``distributor web --workers N``: several processes serve one site. What they share stays right
(rate limits, counted in Redis) and what each holds (its queue of opens) is written on its own."""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.render.tracking import open_pixel_url
from distributor.web.app import app_from_environment
from subscribers.links import PublicLinks
from subscribers.models import Subscriber
from subscribers.tokens import TokenSigner
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.web import started_send

READERS = 30
FORM_LIMIT = 3
LINKS = PublicLinks("", TokenSigner(SECRET))


def wait_for_workers(log: Path, process: subprocess.Popen[bytes], workers: int) -> None:
    """Until every worker has started its app (each says so in the log)."""
    deadline = time.monotonic() + 120  # a busy machine imports slowly
    while log.read_text().count("Application startup complete.") < workers:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)


def test_workers_share_the_rate_limits_and_each_writes_its_opens(
    database_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_audience(database_url, "members", READERS)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_send(database_url, issue_id, "members", tracking=True)
    with transaction(database_url) as session:
        readers = session.scalars(select(Subscriber.id)).all()
    port = free_port()
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": database_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "REDIS_URL": redis_server.url,
        "WEB_FORM_RATE_LIMIT": str(FORM_LIMIT),
    }
    log = tmp_path / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "distributor", "web", "--port", str(port), "--workers", "2"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_workers(log, process, 2)
        base = f"http://127.0.0.1:{port}"
        # A connection of its own each time, as a bot's would be: the workers take them in turn.
        # (A worker still warming up holds a request until it can serve it: a busy machine's
        # first answers take seconds.)
        unsubscribe = f"{base}{LINKS.unsubscribe(readers[0])}"
        # The limit counts in fixed minutes: the burst starts early in one, so that a busy
        # machine's slow answers cannot carry it into the next (which would count afresh).
        if (into_minute := time.time() % 60) > 20:
            time.sleep(60 - into_minute)
        codes = [
            httpx.post(unsubscribe, data={"scope": "all"}, timeout=30).status_code
            for _ in range(FORM_LIMIT + 5)
        ]
        assert codes == [403] * FORM_LIMIT + [429] * 5  # no CSRF token, then too many
        for subscriber_id in readers:
            pixel = open_pixel_url(base, LINKS.tracking_token(send_id, subscriber_id))
            assert httpx.get(pixel, timeout=30).status_code == 200
    finally:
        process.terminate()  # each worker writes what it still holds as it stops
        process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()
    with transaction(database_url) as session:
        opened = session.scalar(
            select(func.count(func.distinct(EngagementEvent.subscriber_id))).where(
                EngagementEvent.send_id == send_id, EngagementEvent.kind == EngagementKind.OPEN
            )
        )
    assert opened == len(readers) == READERS


def test_the_served_app_is_kept_out_of_the_collectors_full_passes(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full garbage collection over the app's objects would stall every request in flight."""
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("DISTRIBUTOR_SECRET_KEY", SECRET)
    before = gc.get_freeze_count()
    try:
        app = app_from_environment()
        assert app.state.web.settings.database_url == sqlite_url
        assert gc.get_freeze_count() > before + 10_000
    finally:
        gc.unfreeze()
