"""End to end: a real Celery worker (with beat), real Redis, a real SMTP server, SQLite and
PostgreSQL. Every recipient receives exactly one message, whatever the worker or broker does."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from distributor.cli import main
from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.sending.models import DeliveryAttempt
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_every_recipient_receives_exactly_one_message(
    database_url: str,
    redis_server: RedisServer,
    smtp: SmtpServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    emails = make_audience(database_url, "members", 300)
    issue_id = import_sample(database_url, sample_issue_path)
    env = engine_env(database_url, redis_server.url, smtp)
    send_id = created_by_cli(env, issue_id)
    with running_worker(env, tmp_path) as worker:
        status = wait_until_done(database_url, send_id, timeout=90)
    assert status.counts == {"sent": 300}
    counts = smtp.handler.counts()
    assert sorted(counts) == emails and set(counts.values()) == {1}
    message_ids = {r.message["Message-ID"] for r in smtp.handler.received}
    assert len(message_ids) == 300
    status_json = CliRunner().invoke(main, ["send", "status", str(send_id), "--json"], env=env)
    shown = json.loads(status_json.output)
    assert {key: shown[key] for key in ("id", "state", "counts", "possible_duplicates")} == {
        "id": send_id,
        "state": "done",
        "counts": {"sent": 300},
        "possible_duplicates": 0,
    }
    assert worker.starts == 1


def flaky(recipient: str, attempt: int) -> str | None:
    """10 % of addresses get a 421 or 451 on the first try; 'gone' ones always 550;
    'stuck' ones always 451 (they must end failed, not retried forever)."""
    if recipient.startswith("gone"):
        return f"550 5.1.1 <{recipient}>: mailbox unavailable"
    if recipient.startswith("stuck"):
        return "451 4.3.0 temporarily unavailable"
    bucket = int(hashlib.sha1(recipient.encode()).hexdigest(), 16) % 20
    if attempt == 1 and bucket == 0:
        return "421 4.7.0 too many connections, closing"
    if attempt == 1 and bucket == 1:
        return "451 4.3.0 greylisted, try again"
    return None


def test_transient_failures_are_retried_until_delivered_and_550_fails_with_its_code(
    postgres_url: str,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    """On PostgreSQL only: when to retry is the worker's policy, the same on either database
    (exactly-once, which depends on the database, runs on both above)."""
    database_url = postgres_url
    emails = make_audience(database_url, "members", 400)
    gone = make_audience(database_url, "members", 5, prefix="gone")
    stuck = make_audience(database_url, "members", 1, prefix="stuck")
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(RecordingHandler(fault=flaky)) as smtp:
        env = engine_env(database_url, redis_server.url, smtp, RETRY_MAX_ATTEMPTS="4")
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            status = wait_until_done(database_url, send_id, timeout=120)
        counts = smtp.handler.counts()
        first_try_refusals = sum(1 for e in emails if flaky(e, 1))
    assert first_try_refusals >= 20  # the fault really hit about 10 %
    assert status.counts == {"sent": 400, "failed": 6}
    assert sorted(counts) == emails and set(counts.values()) == {1}
    result = CliRunner().invoke(
        main, ["send", "deliveries", str(send_id), "--state", "failed", "--json"], env=env
    )
    failed = {row["address"]: row for row in json.loads(result.output)}
    assert sorted(failed) == sorted(gone + stuck)
    for address in gone:
        assert failed[address]["smtp_code"] == 550 and failed[address]["attempts"] == 1
        assert "mailbox unavailable" in failed[address]["detail"]
    assert failed[stuck[0]]["attempts"] == 4
    assert failed[stuck[0]]["detail"].startswith("gave up after 4 attempts; last: 451")
    with transaction(database_url) as session:
        assert session.query(DeliveryAttempt).count() == 400 + first_try_refusals + 5 + 4


def test_an_unsubscribe_during_a_send_is_honoured_for_messages_not_yet_sent(
    sqlite_url: str,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    emails = make_audience(sqlite_url, "members", 200)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.02)) as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp, DISPATCH_SLOTS="1")
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            smtp.handler.wait_for(30, timeout=60)
            leaving = emails[-50:]
            with transaction(sqlite_url) as session:
                for subscriber in session.query(Subscriber).filter(Subscriber.email.in_(leaving)):
                    subscriber.status = SubscriberStatus.UNSUBSCRIBED
            status = wait_until_done(sqlite_url, send_id, timeout=60)
        received = smtp.handler.counts()
    assert not set(leaving) & set(received)
    assert status.counts == {"sent": 150, "suppressed": 50}
    assert set(received.values()) == {1}
