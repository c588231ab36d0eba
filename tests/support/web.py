"""The web app for tests: settings, a send through the engine, and a real uvicorn server on a
free port (:func:`~distributor.devservers.web_server.serving`)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.devservers.ports import free_port
from distributor.devservers.web_server import serving as serving
from distributor.runtime import WorkerRuntime
from distributor.sending.scheduler import tick
from distributor.sending.tunables import Tunables
from tests.support.polling import wait_until
from tests.support.sending import SECRET, started_send

BASE_URL = "https://news.example.org"
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def web_settings(database_url: str, **env: str) -> Settings:
    return Settings.from_env(
        {
            "DATABASE_URL": database_url,
            "DISTRIBUTOR_SECRET_KEY": SECRET,
            "PUBLIC_BASE_URL": BASE_URL,
            "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
            **env,
        }
    )


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def send_through_engine(
    settings: Settings, issue_id: int, *lists: str, tracking: bool = False
) -> int:
    """Create a send, plan it and deliver every message in this process (no worker)."""
    send_id = started_send(settings.database_url, issue_id, *lists, tracking=tracking)
    engine = WorkerRuntime.from_settings(settings)
    try:
        tick(
            session_factory(settings.database_url),
            now=utcnow(),
            tunables=replace(Tunables.from_settings(settings), slots=1),
            enqueue_plan=engine.plan,
            enqueue_drain=lambda slot: None,
        )
        engine.drain_now()
    finally:
        engine.close()
    return send_id


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 now (False while nothing listens)."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def web_process(tmp_path: Path, database_url: str, **env: str) -> Iterator[tuple[str, Path]]:
    """``distributor web`` as shipped, on a free port, every process ready (``WEB_WORKERS``):
    its base URL and its log file."""
    port, log = free_port(), tmp_path / "web.log"
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DATABASE_URL": database_url,
                   "DISTRIBUTOR_SECRET_KEY": SECRET, **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "distributor", "web", "--port", str(port)],
            env=environment, stdout=out, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(f"{base}/readyz"), bool, timeout=90, what="/readyz")
        wait_until(
            lambda: log.read_text(errors="replace").count("Application startup complete"),
            lambda ready: ready >= int(env.get("WEB_WORKERS", "1")),
            timeout=90,
            what="every web process ready",
        )
        yield base, log
    finally:
        process.terminate()
        process.wait(timeout=30)
