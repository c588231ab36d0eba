"""Embedded SQLite under a burst of one-click unsubscribes: none fails with "database is locked"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import func, select

from distributor.db import transaction
from distributor.readers.unsubscribes import unsubscribes_by_send
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.links import PublicLinks
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.tokens import TokenSigner
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.web import serving, started_send, web_settings

CLICKS = 50


def test_50_concurrent_one_click_posts_on_sqlite_all_succeed(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    make_audience(sqlite_url, "members", CLICKS)
    send_id = started_send(sqlite_url, import_sample(sqlite_url, sample_issue_path), "members")
    with transaction(sqlite_url) as session:
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
    links = PublicLinks("", TokenSigner(SECRET))
    app = create_app(
        web_settings(sqlite_url), enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter()
    )
    with serving(app) as base, httpx.Client(base_url=base, timeout=60) as client:

        def click(subscriber_id: int) -> int:
            path = links.unsubscribe(subscriber_id, send_id=send_id)
            return client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code

        with ThreadPoolExecutor(max_workers=CLICKS) as pool:
            codes = list(pool.map(click, ids))
    assert codes == [200] * CLICKS
    with transaction(sqlite_url) as session:
        unsubscribed = session.scalar(
            select(func.count()).where(Subscriber.status == SubscriberStatus.UNSUBSCRIBED)
        )
        assert unsubscribed == CLICKS
        assert unsubscribes_by_send(session, send_id) == CLICKS
