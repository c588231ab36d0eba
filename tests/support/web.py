"""The web app for tests: settings, a started send, and a real uvicorn server on a free port
(:func:`~distributor.devservers.web_server.serving`)."""

from __future__ import annotations

import re
from dataclasses import replace
from zoneinfo import ZoneInfo

from distributor.config import Settings
from distributor.db import session_factory, transaction, utcnow
from distributor.devservers.web_server import serving as serving
from distributor.issues.models import Variant
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.runtime import WorkerRuntime
from distributor.sending.scheduler import tick
from distributor.sending.service import create_send
from distributor.sending.tunables import Tunables
from subscribers.query import Audience
from tests.support.sending import SECRET

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


def started_send(url: str, issue_id: int, *lists: str, tracking: bool = False) -> int:
    """A send of ``issue_id`` to ``lists`` that has started (as beat starts it), unsent."""
    with transaction(url) as session:
        send = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=lists),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("Asia/Shanghai"),
            tracking=tracking,
        )
        send_id = send.id
    with transaction(url) as session:
        start_due_sends(session, utcnow())
    return send_id


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
