"""Opens and clicks: verified tokens, buffered events written in batches, counts per send."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DBAPIError

from distributor.db import session_factory, transaction, utcnow
from distributor.errors import InvalidToken
from distributor.readers.engagement import (
    REPEATS_KEPT,
    EngagementBuffer,
    checked_target,
    engagement_counts,
    reader_of,
)
from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.render.tracking import click_url
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from subscribers.links import PublicLinks
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.support.refusals import database_refusing
from tests.test_claims import running_send_with

SIGNER = TokenSigner("engagement-test-secret-0123456789abcdef")


def test_tokens_and_targets_are_checked() -> None:
    token = PublicLinks("https://x.example", SIGNER).tracking_token(7, 42)
    assert reader_of(SIGNER, token) == (7, 42)
    with pytest.raises(InvalidToken):
        reader_of(SIGNER, SIGNER.sign(TokenPurpose.UNSUBSCRIBE, "42"))
    with pytest.raises(InvalidToken):
        reader_of(TokenSigner("another-secret-0123456789abcdefghij"), token)
    link = click_url("https://x.example", token, "https://hzgh.org/a?b=1&c=2", SIGNER)
    mac = link.rpartition("&s=")[2]
    assert checked_target(SIGNER, "https://hzgh.org/a?b=1&c=2", mac) == "https://hzgh.org/a?b=1&c=2"
    for forged in ("https://evil.example/", "javascript:alert(1)", "//evil.example"):
        with pytest.raises(InvalidToken):
            checked_target(SIGNER, forged, mac)


def test_events_are_written_in_batches_and_counted_per_reader(database_url: str) -> None:
    send_id = running_send_with(database_url, 1)
    buffer = EngagementBuffer(session_factory(database_url))
    for subscriber, kind, url in [
        (1, EngagementKind.OPEN, None),
        (1, EngagementKind.OPEN, None),  # a second open of the same reader counts once
        (2, EngagementKind.OPEN, None),
        (2, EngagementKind.CLICK, "https://hzgh.org/1"),
        (2, EngagementKind.CLICK, "https://hzgh.org/2"),
        (3, EngagementKind.CLICK, "https://hzgh.org/1"),
    ]:
        buffer.add(send_id, subscriber, kind, url)
    with transaction(database_url) as session:
        assert session.scalar(select(func.count()).select_from(EngagementEvent)) == 0
    assert buffer.flush() == 6 and buffer.flush() == 0
    with transaction(database_url) as session:
        counts = engagement_counts(session, send_id)
    assert (counts.opened, counts.clicked, counts.clicks) == (2, 2, 3)


def test_the_writer_thread_flushes_by_itself(sqlite_url: str) -> None:
    send_id = running_send_with(sqlite_url, 1)
    buffer = EngagementBuffer(session_factory(sqlite_url))
    buffer.start()
    buffer.add(send_id, 5, EngagementKind.OPEN, None)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # written by the thread, not by stop()
        with transaction(sqlite_url) as session:
            if engagement_counts(session, send_id).opened == 1:
                break
        time.sleep(0.05)
    else:
        pytest.fail("the writer thread did not write the event within 10 s")
    buffer.stop()


def test_events_wait_in_the_buffer_while_the_database_refuses(database_url: str) -> None:
    send_id = running_send_with(database_url, 1)
    buffer = EngagementBuffer(session_factory(database_url))
    buffer.add(send_id, 1, EngagementKind.OPEN, None)
    with database_refusing(database_url, "INSERT", "engagement_events"):
        with pytest.raises(DBAPIError, match="refused by the test"):
            buffer.flush()
        buffer.add(send_id, 2, EngagementKind.CLICK, "https://hzgh.org/1")  # while it is away
        with pytest.raises(DBAPIError):
            buffer.flush()
    assert buffer.flush() == 2
    with transaction(database_url) as session:
        counts = engagement_counts(session, send_id)
    assert (counts.opened, counts.clicked) == (1, 1)



def test_a_replayed_token_writes_ten_rows_and_counts_once(database_url: str) -> None:
    """4,000 requests with one reader's link: ten rows, one click, one reader."""
    send_id = running_send_with(database_url, 1)
    buffer = EngagementBuffer(session_factory(database_url))
    for _ in range(4000):
        buffer.add(send_id, 1, EngagementKind.CLICK, "https://hzgh.org/1")
        buffer.add(send_id, 1, EngagementKind.OPEN, None)
    assert buffer.flush() == 2 * REPEATS_KEPT == 20
    buffer = EngagementBuffer(session_factory(database_url))  # another process, after a restart
    buffer.add(send_id, 1, EngagementKind.CLICK, "https://hzgh.org/1")
    buffer.flush()
    with transaction(database_url) as session:
        counts = engagement_counts(session, send_id)
    assert (counts.opened, counts.clicked, counts.clicks) == (1, 1, 1)


def test_a_scanner_following_every_link_on_arrival_is_not_a_reader(database_url: str) -> None:
    """Reader 1's gateway follows five links within seconds of delivery: a scanner. Reader 2
    clicks one link as soon as the message arrives, reader 3 two links an hour later: readers."""
    send_id = running_send_with(database_url, 3)
    delivered = utcnow() - timedelta(hours=1)
    with transaction(database_url) as session:
        session.execute(update(Delivery).values(sent_at=delivered, state=DeliveryState.SENT))
    clock = iter([delivered + timedelta(seconds=s) for s in (2, 3, 3, 4, 5, 2)] + [utcnow()] * 2)
    buffer = EngagementBuffer(session_factory(database_url), clock=lambda: next(clock))
    for url in ("1", "2", "3"):
        buffer.add(send_id, 1, EngagementKind.CLICK, f"https://hzgh.org/{url}")
    buffer.flush()  # the scanner's first three, in their own batch
    for url in ("4", "5"):
        buffer.add(send_id, 1, EngagementKind.CLICK, f"https://hzgh.org/{url}")
    buffer.add(send_id, 2, EngagementKind.CLICK, "https://hzgh.org/1")
    buffer.add(send_id, 3, EngagementKind.CLICK, "https://hzgh.org/1")
    buffer.add(send_id, 3, EngagementKind.CLICK, "https://hzgh.org/2")
    buffer.flush()
    with transaction(database_url) as session:
        counts = engagement_counts(session, send_id)
        machine = session.scalars(
            select(EngagementEvent.subscriber_id).where(EngagementEvent.machine)
        ).all()
    assert (counts.clicked, counts.clicks, counts.machine_clicks) == (2, 3, 5)
    assert set(machine) == {1}
    assert counts.to_json() == {"opened": 0, "clicked": 2, "clicks": 3, "machine_clicks": 5}
