"""The bounce mailbox poller against a real IMAP server (Dovecot on loopback): every message is
classified, traced to its delivery and moved, never deleted; a second poll changes nothing; and
hostile messages are logged and set aside without suppressing anyone."""

from __future__ import annotations

import base64
import imaplib
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from distributor.bounces import FeedbackKind
from distributor.bounces.mailbox import PollReport, poll_bounce_mailbox
from distributor.bounces.models import FeedbackMessage
from distributor.celery import make_app
from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.dovecot import DovecotServer
from distributor.render.message_ids import MessageRef, make_message_id
from distributor.vocabulary import DeliveryState
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.bounces import FROM_DOMAIN, SECRET, VERP, fixture
from tests.support.feedback import (
    delivery_state,
    fixture_settings,
    readdressed,
    refusing_changes_to,
    seed_fixture_deliveries,
    subscriber_status,
)
from tests.test_bounces_classify import CAUSES, EXPECTED, GONE

FOLDERS = ("INBOX", "Processed", "Failed")


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    root = tmp_path / "dovecot"
    root.mkdir()
    with DovecotServer(root) as server:
        yield server


def mailbox_settings(database_url: str, server: DovecotServer) -> Settings:
    return fixture_settings(
        database_url,
        bounce_imap_host="127.0.0.1",
        bounce_imap_port=server.port,
        bounce_imap_security="none",
        bounce_imap_user=server.user,
        bounce_imap_password=server.password,
    )


def connect(server: DovecotServer) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", server.port)
    imap.login(server.user, server.password)
    return imap


def append(server: DovecotServer, messages: list[bytes]) -> None:
    imap = connect(server)
    try:
        for raw in messages:
            status, data = imap.append("INBOX", None, None, raw)
            assert status == "OK", data
    finally:
        imap.logout()


def folder_sizes(server: DovecotServer) -> dict[str, int]:
    imap = connect(server)
    try:
        sizes = {}
        for folder in FOLDERS:
            status, data = imap.select(folder, readonly=True)
            sizes[folder] = int(data[0] or 0) if status == "OK" else 0
        return sizes
    finally:
        imap.logout()


def feedback_rows(url: str) -> list[tuple[int, str, str]]:
    with transaction(url) as session:
        rows = session.execute(
            select(FeedbackMessage.id, FeedbackMessage.outcome, FeedbackMessage.reason).order_by(
                FeedbackMessage.id
            )
        ).all()
    return [(row.id, row.outcome.value, row.reason) for row in rows]


def test_every_kind_is_classified_matched_and_moved_and_a_second_poll_changes_nothing(
    database_url: str, dovecot: DovecotServer
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    # Their return paths issued now, as if just sent (the fixtures' own are a year old).
    messages = [readdressed(fixture(name), now=None) for name in sorted(EXPECTED)]
    unmatchable = fixture("postfix-dsn-user-unknown.eml").replace(b"bounces+", b"newsletter+")
    append(dovecot, [*messages, unmatchable])
    settings = mailbox_settings(database_url, dovecot)

    report = poll_bounce_mailbox(settings)

    # A report quoting only our Message-ID is for a person (Failed), as one matching nothing.
    quoting = {name for name in seeded if isinstance(EXPECTED[name][4], MessageRef)}
    done = len(EXPECTED) - len(quoting)
    assert report == PollReport(done=done, failed=1 + len(quoting))
    assert folder_sizes(dovecot) == {"INBOX": 0, "Processed": done, "Failed": 1 + len(quoting)}
    for name, each in seeded.items():
        state = delivery_state(database_url, each.delivery_id)
        status = subscriber_status(database_url, each.subscriber_id)
        expected = {
            FeedbackKind.HARD_BOUNCE: (DeliveryState.BOUNCED, SubscriberStatus.BOUNCED),
            FeedbackKind.SOFT_BOUNCE: (DeliveryState.SENT, SubscriberStatus.ACTIVE),
            FeedbackKind.COMPLAINT: (DeliveryState.COMPLAINED, SubscriberStatus.COMPLAINED),
        }[each.kind]
        if name in quoting:
            expected = (DeliveryState.SENT, SubscriberStatus.ACTIVE)
        elif each.kind is FeedbackKind.HARD_BOUNCE and CAUSES[name] is not GONE:
            expected = (DeliveryState.BOUNCED, SubscriberStatus.ACTIVE)  # not the reader's
        assert (state, status) == expected, name
    stored = feedback_rows(database_url)
    assert len(stored) == len(EXPECTED) + 1
    assert stored[-1][1] == "unmatched"
    assert "it quotes our Message-ID (send 7, subscriber 1001)" in stored[-1][2]

    assert poll_bounce_mailbox(settings) == PollReport()
    assert folder_sizes(dovecot) == {"INBOX": 0, "Processed": done, "Failed": 1 + len(quoting)}
    # The same messages delivered again (a relay's retry) change nothing either.
    append(dovecot, messages[:3])
    again = len(quoting & set(sorted(EXPECTED)[:3]))
    assert poll_bounce_mailbox(settings) == PollReport(done=3 - again, failed=again)
    assert feedback_rows(database_url) == stored


def test_a_message_the_database_refuses_waits_for_the_next_poll_and_holds_back_no_other(
    database_url: str, dovecot: DovecotServer
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    append(dovecot, [readdressed(fixture(name), now=None) for name in sorted(EXPECTED)])
    settings = mailbox_settings(database_url, dovecot)
    victim = seeded["postfix-dsn-user-unknown.eml"]
    hard = FeedbackKind.HARD_BOUNCE
    others = [each for each in seeded.values() if each is not victim and each.kind is hard]

    done = len(EXPECTED) - 2  # the victim waits; the report quoting a Message-ID fails
    with refusing_changes_to(database_url, victim.delivery_id):
        assert poll_bounce_mailbox(settings) == PollReport(done=done, failed=1, left=1)

    assert folder_sizes(dovecot) == {"INBOX": 1, "Processed": done, "Failed": 1}
    assert delivery_state(database_url, victim.delivery_id) is DeliveryState.SENT
    assert all(
        delivery_state(database_url, each.delivery_id) is DeliveryState.BOUNCED for each in others
    )
    assert poll_bounce_mailbox(settings) == PollReport(done=1)
    assert folder_sizes(dovecot) == {"INBOX": 0, "Processed": done + 1, "Failed": 1}
    assert delivery_state(database_url, victim.delivery_id) is DeliveryState.BOUNCED
    assert subscriber_status(database_url, victim.subscriber_id) is SubscriberStatus.BOUNCED


def with_attachment(raw: bytes, size: int) -> bytes:
    blob = base64.encodebytes(b"\x89PNG" * (size // 4))
    return (
        raw
        + b"--B\r\nContent-Type: application/octet-stream\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + blob
        + b"\r\n--B--\r\n"
    )


def hostile_messages() -> dict[str, bytes]:
    hard = readdressed(fixture("exim-failed.eml"), now=None)
    ours = make_message_id(SECRET, 7, 1001, FROM_DOMAIN).encode()  # what the DSN quotes
    victim = make_message_id(SECRET, 18, 1003, FROM_DOMAIN).encode()
    dsn = fixture("postfix-dsn-user-unknown.eml").replace(b"bounces+", b"newsletter+")
    return {
        "no report part": (
            b"From: MAILER-DAEMON@relay.example.net\r\nTo: "
            + VERP.make_verp(1001).encode()
            + b"\r\nSubject: hello\r\n"
            b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nNothing to see here.\r\n--B--\r\n"
        ),
        "20 MB attachment": with_attachment(
            b"From: someone@example.net\r\nTo: newsletter@news.example-union.org\r\n"
            b"Subject: a big file\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
            b"--B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n",
            20 * 1024 * 1024,
        ),
        "forged token": _forged(hard),
        "replayed token": fixture("exim-failed.eml"),  # issued a year ago
        "header injection": dsn.replace(
            b"Message-ID: " + ours, b"Message-ID: " + ours + b"\nMessage-ID: " + victim
        ),
        "another domain": hard.replace(
            b"@bounces.news.example-union.org", b"@bounces.other.example"
        ),
    }


def _forged(raw: bytes) -> bytes:
    """The return path's signature replaced by one of our making."""
    head, _, tail = raw.partition(b"bounces+5001-")
    issued, _, rest = tail.partition(b"-")
    return head + b"bounces+5001-" + issued + b"-" + b"a" * 26 + rest[26:]


def test_hostile_messages_are_logged_and_set_aside_and_suppress_nobody(
    database_url: str, dovecot: DovecotServer, caplog: pytest.LogCaptureFixture
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    hostile = hostile_messages()
    append(dovecot, list(hostile.values()))
    settings = mailbox_settings(database_url, dovecot)

    with caplog.at_level(logging.WARNING, logger="distributor.bounces.mailbox"):
        report = poll_bounce_mailbox(settings)

    assert report == PollReport(failed=len(hostile))
    assert folder_sizes(dovecot) == {"INBOX": 0, "Processed": 0, "Failed": len(hostile)}
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == len(hostile)
    for words in (
        "gives no status",
        "not a bounce",
        "forged",
        "older than",
        "names no",
        "another domain",
    ):
        assert any(words in line for line in warnings), (words, warnings)
    with transaction(database_url) as session:
        statuses = set(session.scalars(select(Subscriber.status)))
        big = session.scalar(select(func.max(func.length(FeedbackMessage.raw))))
    assert statuses == {SubscriberStatus.ACTIVE}
    assert all(
        delivery_state(database_url, each.delivery_id) is DeliveryState.SENT
        for each in seeded.values()
    )
    assert big is not None and big <= 256 * 1024  # the 20 MB message was read only in part
    assert poll_bounce_mailbox(settings) == PollReport()


def test_beat_polls_the_mailbox_only_when_one_is_configured(dovecot: DovecotServer) -> None:
    configured = Settings.from_env({**dovecot.env(), "BOUNCE_IMAP_POLL_SECONDS": "30"})
    schedule = make_app(configured).conf.beat_schedule
    assert schedule["poll-bounces"]["task"] == "distributor.poll_bounces"
    assert schedule["poll-bounces"]["schedule"] == 30.0
    assert "poll-bounces" not in make_app(Settings.from_env({})).conf.beat_schedule
    assert poll_bounce_mailbox(Settings.from_env({})) is None
