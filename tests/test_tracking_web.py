"""The tracking endpoints over HTTP against the real app on SQLite and PostgreSQL: the pixel tells
nobody whether a token is genuine, the redirect goes only where the newsletter linked, and the
events reach the database in the buffer's batches, never from a request."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, select

from distributor.db import get_engine, transaction
from distributor.readers.engagement import EngagementBuffer, engagement_counts
from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.render.tracking import click_url, open_pixel_url
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from distributor.web.tracking import PIXEL
from subscribers.links import PublicLinks
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import SECRET, import_sample
from tests.support.web import started_send, web_settings

SIGNER = TokenSigner(SECRET)
LINKS = PublicLinks("", SIGNER)
TARGET = "https://hzgh.org/news/471?a=1&b=工会#top"


@dataclass
class Tracked:
    url: str
    client: TestClient
    buffer: EngagementBuffer
    send_id: int
    writers: list[str]  # the thread of every INSERT into engagement_events


@pytest.fixture
def tracked(database_url: str, sample_issue_path: Path) -> Iterator[Tracked]:
    make_audience(database_url, "members", 3)
    send_id = started_send(
        database_url, import_sample(database_url, sample_issue_path), "members", tracking=True
    )
    writers: list[str] = []

    def note_writer(*args: object) -> None:
        statement = str(args[2])
        if statement.lstrip().upper().startswith("INSERT INTO ENGAGEMENT_EVENTS"):
            writers.append(threading.current_thread().name)

    engine = get_engine(database_url)
    event.listen(engine, "before_cursor_execute", note_writer)
    app = create_app(
        web_settings(database_url), enqueue_confirmation=lambda _: None, limiter=MemoryRateLimiter()
    )
    try:
        with TestClient(app, base_url="http://testserver") as client:
            yield Tracked(database_url, client, app.state.engagement, send_id, writers)
    finally:
        event.remove(engine, "before_cursor_execute", note_writer)


def events(url: str) -> list[tuple[int, int, EngagementKind, str | None]]:
    with transaction(url) as session:
        rows = session.execute(
            select(
                EngagementEvent.send_id,
                EngagementEvent.subscriber_id,
                EngagementEvent.kind,
                EngagementEvent.url,
            ).order_by(EngagementEvent.id)
        ).all()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def forged_tokens(send_id: int) -> list[str]:
    other = TokenSigner("another-secret-0123456789abcdefghijklmn")
    genuine = LINKS.tracking_token(send_id, 1)
    return [
        other.sign(TokenPurpose.TRACK, f"{send_id}-1"),  # not our key
        SIGNER.sign(TokenPurpose.UNSUBSCRIBE, "1"),  # ours, for another purpose
        genuine[:-3] + ("AAA" if not genuine.endswith("AAA") else "BBB"),  # altered
        "nonsense",
        "",
    ]


def test_the_pixel_answers_any_token_alike_and_counts_only_genuine_ones(tracked: Tracked) -> None:
    genuine = open_pixel_url("", LINKS.tracking_token(tracked.send_id, 2))
    answers = [tracked.client.get(genuine) for _ in range(2)]  # the same reader opens twice
    answers += [tracked.client.get(open_pixel_url("", t)) for t in forged_tokens(tracked.send_id)]
    answers.append(tracked.client.get(genuine.removesuffix(".gif")))  # without its extension
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "image/gif"
        assert answer.content == PIXEL
        assert PIXEL[:10] == b"GIF89a\x01\x00\x01\x00"  # 1×1
        assert "no-store" in answer.headers["cache-control"]
        assert "set-cookie" not in answer.headers
    tracked.buffer.flush()
    assert events(tracked.url) == [(tracked.send_id, 2, EngagementKind.OPEN, None)] * 3
    with transaction(tracked.url) as session:
        counts = engagement_counts(session, tracked.send_id)
    assert (counts.opened, counts.clicked, counts.clicks) == (1, 0, 0)


def test_a_click_goes_where_the_newsletter_linked_and_is_counted(tracked: Tracked) -> None:
    token = LINKS.tracking_token(tracked.send_id, 3)
    link = click_url("", token, TARGET, SIGNER)
    for _ in range(2):
        answer = tracked.client.get(link, follow_redirects=False)
        assert answer.status_code == 302
        assert (
            answer.headers["location"] == "https://hzgh.org/news/471?a=1&b=%E5%B7%A5%E4%BC%9A#top"
        )
        assert "no-store" in answer.headers["cache-control"]
    # A damaged token still takes the reader there, but counts nobody.
    for forged in forged_tokens(tracked.send_id)[:-1]:
        answer = tracked.client.get(click_url("", forged, TARGET, SIGNER), follow_redirects=False)
        assert answer.status_code == 302
    tracked.buffer.flush()
    assert events(tracked.url) == [(tracked.send_id, 3, EngagementKind.CLICK, TARGET)] * 2
    with transaction(tracked.url) as session:
        counts = engagement_counts(session, tracked.send_id)
    assert (counts.opened, counts.clicked, counts.clicks) == (0, 1, 1)  # one reader, one link


def test_an_unsigned_or_altered_target_is_refused_never_redirected(tracked: Tracked) -> None:
    token = LINKS.tracking_token(tracked.send_id, 1)
    genuine = click_url("", token, TARGET, SIGNER)
    path, _, query = genuine.partition("?")
    mac = query.rpartition("&s=")[2]
    evil_mac = click_url("", token, "https://evil.example/", SIGNER).rpartition("&s=")[2]
    refused = [
        f"{path}?u=https%3A%2F%2Fevil.example%2F&s={mac}",  # another target, the genuine MAC
        f"{path}?u=https%3A%2F%2Fevil.example%2F",  # unsigned
        f"{path}?u=https%3A%2F%2Fevil.example%2F&s=",  # empty MAC
        f"{path}?s={mac}",  # no target
        path,  # neither
        f"{path}?u={quote(TARGET.replace('471', '472'), safe='')}&s={mac}",  # one character
        genuine + "x",  # the MAC changed
        f"{path}?u=https%3A%2F%2Fevil.example%2F&s={evil_mac[:-1]}",
        # signed by us, but not a web address: a redirect there would run script
        click_url("", token, "javascript:alert(1)", SIGNER),
        click_url("", token, "//evil.example/", SIGNER),
    ]
    for link in refused:
        answer = tracked.client.get(link, follow_redirects=False, headers={"Accept-Language": "en"})
        assert answer.status_code == 400, link
        assert "location" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")
        assert "This link was altered: it leads nowhere." in answer.text
    chinese = tracked.client.get(refused[0], follow_redirects=False)
    assert "这个链接被改动过" in chinese.text
    tracked.buffer.flush()
    assert events(tracked.url) == []


def test_events_are_written_by_the_writer_thread_not_by_requests(tracked: Tracked) -> None:
    tokens = [LINKS.tracking_token(tracked.send_id, n) for n in (1, 2, 3)]
    for token in tokens:
        assert tracked.client.get(open_pixel_url("", token)).status_code == 200
    link = click_url("", tokens[0], TARGET, SIGNER)
    assert tracked.client.get(link, follow_redirects=False).status_code == 302

    def counts() -> tuple[int, int]:
        with transaction(tracked.url) as session:
            found = engagement_counts(session, tracked.send_id)
        return found.opened, found.clicks

    # Nothing is flushed by hand: the app's writer writes it within its round.
    wait_until(counts, lambda found: found == (3, 1), timeout=10, what="written by the writer")
    assert tracked.writers and set(tracked.writers) == {"engagement-writer"}


def test_what_is_queued_is_written_when_the_app_stops(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 1)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_send(database_url, issue_id, "members", tracking=True)
    app = create_app(web_settings(database_url), limiter=MemoryRateLimiter())
    with TestClient(app) as client:
        app.state.engagement.stop()  # no writer: what follows stays queued …
        client.get(open_pixel_url("", LINKS.tracking_token(send_id, 1)))
        assert events(database_url) == []
    assert events(database_url) == [(send_id, 1, EngagementKind.OPEN, None)]  # … until the end
