"""The whole loop with real parts: a send in progress (a real Celery worker with beat, Redis, an
SMTP server) carries VERP return paths; a hard bounce for a reader arrives in the bounce mailbox
(a real Dovecot) mid-send; beat polls it, the reader is suppressed, and the send skips them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.dovecot import DovecotServer
from distributor.devservers.redis_server import RedisServer
from distributor.render.verp import Verp
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryState, SendState, Variant
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.query import Audience
from subscribers.tokens import TokenSigner
from tests.support.audience import make_audience
from tests.support.bounces import BOUNCE_DOMAIN, fixture
from tests.support.feedback import readdressed
from tests.support.polling import wait_until
from tests.support.sending import (
    SECRET,
    created_by_cli,
    engine_env,
    import_sample,
    status_of,
    wait_until_done,
)
from tests.support.smtp import SmtpServer
from tests.test_bounces_imap import append, folder_sizes

pytestmark = pytest.mark.slow

READERS = 250
VERP = Verp(BOUNCE_DOMAIN, TokenSigner(SECRET))


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[DovecotServer]:
    root = tmp_path / "dovecot"
    root.mkdir()
    with DovecotServer(root) as server:
        yield server


def earlier_deliveries(url: str, issue_id: int, addresses: list[str]) -> dict[str, int]:
    """Messages of an earlier send, one to each of ``addresses``: one of them bounces back
    (which one is chosen mid-send). Their delivery ids by address."""
    with transaction(url) as session:
        send = Send(
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            state=SendState.DONE,
        )
        session.add(send)
        session.flush()
        readers = session.execute(
            select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(addresses))
        )
        deliveries = {
            address: Delivery(
                send_id=send.id,
                subscriber_id=subscriber_id,
                channel="email",
                address=address,
                variant=Variant.FULL,
                state=DeliveryState.SENT,
            )
            for address, subscriber_id in readers
        }
        session.add_all(deliveries.values())
        session.flush()
        return {address: delivery.id for address, delivery in deliveries.items()}


def last_unsent(url: str, send_id: int) -> str:
    """The address of the send's highest delivery not yet sent: with the send paced at 25 a
    second, seconds from going out. (Not simply the last reader: two dispatchers claiming at
    once split the rows by whoever locks first, and one of them may send the last at once.)"""
    with transaction(url) as session:
        address = session.scalar(
            select(Delivery.address)
            .where(
                Delivery.send_id == send_id,
                Delivery.state.in_(
                    [DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.DEFERRED]
                ),
            )
            .order_by(Delivery.id.desc())
            .limit(1)
        )
    assert address is not None
    return address


def test_a_reader_whose_bounce_arrives_mid_send_is_skipped(
    postgres_url: str,
    redis_server: RedisServer,
    dovecot: DovecotServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    """On PostgreSQL only: paced by a rate limit, so slow; what a bounce does to the database
    is checked on both in test_bounces_effects."""
    database_url = postgres_url
    emails = make_audience(database_url, "members", READERS)
    issue_id = import_sample(database_url, sample_issue_path)
    earlier = earlier_deliveries(database_url, issue_id, emails)
    with SmtpServer() as smtp:
        env = engine_env(
            database_url,
            redis_server.url,
            smtp,
            BOUNCE_DOMAIN=BOUNCE_DOMAIN,
            RATE_LIMIT="25",
            BOUNCE_IMAP_POLL_SECONDS="0.5",
            **dovecot.env(),
        )
        send_id = created_by_cli(env, issue_id)
        # The product's pool (a thread per slot and two for the rest), not two threads: with
        # both taken by dispatchers, the bounce poll would wait for one of them to end.
        with running_worker(env, tmp_path, concurrency=None):
            wait_until(
                lambda: status_of(database_url, send_id).counts.get("sent", 0),
                lambda sent: sent >= 20,
                timeout=60,
                what="the send under way",
            )
            bouncing = last_unsent(database_url, send_id)
            old_delivery = earlier[bouncing]
            append(
                dovecot,
                [readdressed(fixture("exim-failed.eml"), old_delivery, now=None, verp=VERP)],
            )
            with transaction(database_url) as session:
                subscriber_id = session.scalar(
                    select(Subscriber.id).where(Subscriber.email == bouncing)
                )
                assert subscriber_id is not None
                assert session.get_one(Subscriber, subscriber_id).status is not (
                    SubscriberStatus.BOUNCED
                )
            status = wait_until_done(database_url, send_id, timeout=120)
        received = list(smtp.handler.received)

    assert status.counts == {"sent": READERS - 1, "suppressed": 1}
    assert sorted(r.recipient for r in received) == sorted(set(emails) - {bouncing})
    with transaction(database_url) as session:
        assert session.get_one(Subscriber, subscriber_id).status is SubscriberStatus.BOUNCED
        assert session.get_one(Delivery, old_delivery).state is DeliveryState.BOUNCED
        rows = session.execute(
            select(Delivery.address, Delivery.id).where(Delivery.send_id == send_id)
        )
        ids = {address: delivery_id for address, delivery_id in rows}
        skipped = session.scalar(
            select(Delivery.state).where(Delivery.send_id == send_id, Delivery.address == bouncing)
        )
    assert skipped is DeliveryState.SUPPRESSED
    # Each message's envelope sender is its own delivery's return path.
    assert all(VERP.parse_verp(r.sender) == ids[r.recipient] for r in received)
    assert folder_sizes(dovecot) == {"INBOX": 0, "Processed": 1, "Failed": 0}
