"""Signed webhooks: the outbox is written only while someone listens, in the event's own
transaction; a real receiver that refuses the first tries gets every event exactly once by its
idempotency id, each post validly signed, from a real worker with its scheduler."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from distributor.bounces.apply import process_feedback
from distributor.cli import main
from distributor.db import session_factory, transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.errors import DistributorError
from distributor.outbox import EventKind, OutboxEvent, record_event
from distributor.readers.engagement import EngagementBuffer
from distributor.readers.models import EngagementKind
from distributor.sending.models import Delivery
from distributor.staff.models import Role
from distributor.vocabulary import DeliveryState
from distributor.webhooks.deliver import Retry, run_webhooks
from distributor.webhooks.signing import signature, verify
from distributor.webhooks.store import add_webhook, delivery_log, set_active
from tests.support.api import api_client, api_token, bearer
from tests.support.audience import make_audience
from tests.support.bounces import VERP, fixture
from tests.support.feedback import NOW_AT, seed_fixture_deliveries
from tests.support.polling import wait_until
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.smtp import SmtpServer
from tests.support.web import web_settings
from tests.support.webhooks import Receiver
from tests.test_bounces_classify import EXPECTED
from tests.test_bounces_effects import LENIENT
from tests.test_claims import running_send_with


def test_a_signature_holds_only_for_its_secret_id_time_and_body() -> None:
    body = b'{"id": "evt_1"}'
    now = time.time()
    given = signature("whsec_a", "evt_1", int(now), body)
    assert verify("whsec_a", "evt_1", str(int(now)), body, given, now=now)
    assert not verify("whsec_b", "evt_1", str(int(now)), body, given, now=now)
    assert not verify("whsec_a", "evt_2", str(int(now)), body, given, now=now)
    assert not verify("whsec_a", "evt_1", str(int(now)), body + b" ", given, now=now)
    assert not verify("whsec_a", "evt_1", str(int(now)), body, given, now=now + 301)  # a replay


def test_retries_wait_longer_each_time_up_to_an_hour() -> None:
    retry = Retry(timedelta(seconds=30), 15)
    waits = [retry.delay(n).total_seconds() for n in range(1, 15)]
    assert waits[:4] == [30, 60, 120, 240] and waits[-1] == 3600
    assert sum(waits) > 8 * 3600  # the tries span hours, as a receiver's outage may


def test_bad_urls_and_events_are_refused(sqlite_url: str) -> None:
    with transaction(sqlite_url) as session:
        with pytest.raises(DistributorError, match="is not a web address"):
            add_webhook(session, "ftp://example.org/x", ["send.done"])
        with pytest.raises(DistributorError, match="cannot carry a password"):
            add_webhook(session, "https://u:p@example.org/x", ["send.done"])
        with pytest.raises(DistributorError, match=r"'send\.finished' is not an event"):
            add_webhook(session, "https://example.org/x", ["send.finished"])


def _events(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def test_events_are_kept_only_while_a_webhook_listens_and_delivered_once(
    database_url: str,
) -> None:
    with transaction(database_url) as session:
        record_event(session, EventKind.SEND_DONE, {"send_id": 1})
    assert _events(database_url) == 0  # nobody listens: nothing written
    with Receiver(refusals=2) as receiver:
        with transaction(database_url) as session:
            hook, secret = add_webhook(session, receiver.url, ["send.done"])
            record_event(session, EventKind.SEND_DONE, {"send_id": 1})
            record_event(session, EventKind.SEND_STARTED, {"send_id": 1})  # not listened for
            record_event(session, EventKind.SEND_DONE, {"send_id": 2})
        with transaction(database_url) as session:
            set_active(session, hook.id, False)
            record_event(session, EventKind.SEND_DONE, {"send_id": 3})  # paused: not kept
            set_active(session, hook.id, True)
        factory = session_factory(database_url)
        retry = Retry(timedelta(milliseconds=50), 5)
        with httpx.Client(timeout=5) as client:
            deadline = time.monotonic() + 30
            while len(receiver.taken()) < 2 and time.monotonic() < deadline:
                run_webhooks(factory, client, retry, budget=timedelta(seconds=1))
                time.sleep(0.05)
            run_webhooks(factory, client, retry, budget=timedelta(seconds=1))
        posts = receiver.all_posts()
    assert receiver.taken() == {"evt_1": 1, "evt_2": 1}
    assert len(posts) == 6  # two refused tries and one taken, per event
    assert {post.document["data"]["send_id"] for post in posts} == {1, 2}
    assert all(
        verify(secret, post.id, post.timestamp, post.body, post.signature, now=time.time())
        for post in posts
    )
    with transaction(database_url) as session:
        log = delivery_log(session, hook.id)
    assert [(e.state, e.attempts, e.last_status) for e in log] == [("delivered", 3, 204)] * 2


@pytest.mark.slow
def test_a_real_worker_posts_every_event_of_a_send_once_despite_refusals(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(postgres_url, "members", 30)
    issue_id = import_sample(postgres_url, sample_issue_path)
    with SmtpServer() as smtp, Receiver(refusals=2) as receiver:
        env = engine_env(postgres_url, redis_server.url, smtp, WEBHOOK_RETRY_BASE_SECONDS="0.3")
        added = CliRunner().invoke(
            main,
            [
                "webhooks",
                "add",
                receiver.url,
                "--event",
                "send.started",
                "--event",
                "delivery.sent",
                "--event",
                "send.done",
            ],
            env=env,
        )
        assert added.exit_code == 0, added.output
        webhook_id = int(added.output.splitlines()[0].removeprefix("Webhook ID: "))
        secret = added.output.splitlines()[1].removeprefix("Secret: ")
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path):
            wait_until_done(postgres_url, send_id, timeout=90)
            wait_until(
                receiver.taken, lambda taken: len(taken) == 32, timeout=60, what="32 events taken"
            )
            time.sleep(3)  # a few more rounds: nothing is posted again once taken
        posts = receiver.all_posts()
        log = CliRunner().invoke(main, ["webhooks", "log", str(webhook_id), "--json"], env=env)
    assert set(receiver.taken().values()) == {1}
    kinds = {post.document["type"] for post in posts}
    assert kinds == {"send.started", "delivery.sent", "send.done"}
    sent = {p.document["data"]["address"] for p in posts if p.document["type"] == "delivery.sent"}
    assert sent == set(emails)
    assert all(
        verify(secret, post.id, post.timestamp, post.body, post.signature, now=time.time())
        for post in posts
    )
    assert len(posts) == 3 * 32
    assert '"state": "delivered", "attempts": 3' in log.output


def test_the_api_registers_pauses_and_shows_the_log(sqlite_url: str) -> None:
    admin = bearer(api_token(sqlite_url, "hook-admin", Role.ADMIN))
    with api_client(web_settings(sqlite_url)) as api:
        client = api.client
        body = {"url": "https://example.org/hooks", "events": ["send.done"]}
        assert client.post("/api/v1/webhooks", json=body, headers=api.editor).status_code == 403
        created = client.post("/api/v1/webhooks", json=body, headers=admin)
        assert created.status_code == 201, created.text
        hook = created.json()
        assert hook["secret"].startswith("whsec_") and hook["active"] is True
        wrong = client.post(
            "/api/v1/webhooks", json={**body, "url": "https://u:p@example.org/"}, headers=admin
        )
        assert wrong.status_code == 422 and "is not a web address" in wrong.text
        paused = client.patch(
            f"/api/v1/webhooks/{hook['id']}", json={"active": False}, headers=admin
        )
        assert paused.json()["active"] is False
        with transaction(sqlite_url) as session:
            record_event(session, EventKind.SEND_DONE, {"send_id": 1})
        assert _events(sqlite_url) == 0  # paused: not kept
        client.patch(f"/api/v1/webhooks/{hook['id']}", json={"active": True}, headers=admin)
        with transaction(sqlite_url) as session:
            record_event(session, EventKind.SEND_DONE, {"send_id": 2})
        run_webhooks(
            session_factory(sqlite_url),
            httpx.Client(timeout=0.5, transport=httpx.MockTransport(lambda _: httpx.Response(503))),
            Retry(timedelta(hours=1), 5),
        )
        log = client.get(f"/api/v1/webhooks/{hook['id']}/deliveries", headers=api.viewer)
        [entry] = log.json()["items"]
        assert (entry["kind"], entry["state"], entry["attempts"], entry["last_status"]) == (
            "send.done",
            "pending",
            1,
            503,
        )
        assert entry["last_error"].startswith("HTTP 503")
        assert "secret" not in client.get("/api/v1/webhooks", headers=api.viewer).text
        assert client.delete(f"/api/v1/webhooks/{hook['id']}", headers=admin).status_code == 204


def test_bounces_and_complaints_are_events_in_their_own_transaction(database_url: str) -> None:
    seed_fixture_deliveries(database_url)
    with transaction(database_url) as session:
        add_webhook(session, "https://example.org/h", ["delivery.bounced", "delivery.complained"])
    for name in sorted(EXPECTED):
        with transaction(database_url) as session:
            process_feedback(session, fixture(name), verp=VERP, policy=LENIENT, now=NOW_AT)
    with transaction(database_url) as session:
        events = sorted(
            (row.kind, row.payload["delivery_id"]) for row in session.scalars(select(OutboxEvent))
        )
        marked = sorted(
            (f"delivery.{state.value}", delivery_id)
            for delivery_id, state in session.execute(
                select(Delivery.id, Delivery.state).where(
                    Delivery.state.in_([DeliveryState.BOUNCED, DeliveryState.COMPLAINED])
                )
            )
        )
    assert events == marked and {kind for kind, _ in events} == {
        "delivery.bounced",
        "delivery.complained",
    }


def test_opens_and_clicks_are_events_written_with_them(database_url: str) -> None:
    send_id = running_send_with(database_url, 1)
    with transaction(database_url) as session:
        add_webhook(session, "https://example.org/h", ["reader.opened", "reader.clicked"])
    buffer = EngagementBuffer(session_factory(database_url))
    buffer.add(send_id, 1, EngagementKind.OPEN, None)
    buffer.add(send_id, 2, EngagementKind.CLICK, "https://hzgh.org/1")
    assert buffer.flush() == 2
    with transaction(database_url) as session:
        events = sorted(
            (row.kind, row.payload["subscriber_id"], row.payload["url"])
            for row in session.scalars(select(OutboxEvent))
        )
    assert events == [("reader.clicked", 2, "https://hzgh.org/1"), ("reader.opened", 1, None)]
