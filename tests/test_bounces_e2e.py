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


def earlier_delivery(url: str, issue_id: int, address: str) -> tuple[int, int]:
    """A message of an earlier send, sent to ``address``: the one whose bounce comes back."""
    with transaction(url) as session:
        subscriber_id = session.scalar(select(Subscriber.id).where(Subscriber.email == address))
        assert subscriber_id is not None
        send = Send(
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            state=SendState.DONE,
        )
        session.add(send)
        session.flush()
        delivery = Delivery(
            send_id=send.id,
            subscriber_id=subscriber_id,
            channel="email",
            address=address,
            variant=Variant.FULL,
            state=DeliveryState.SENT,
        )
        session.add(delivery)
        session.flush()
        return subscriber_id, delivery.id


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
    bouncing = emails[-1]  # the last to be sent to: still waiting when the bounce arrives
    subscriber_id, old_delivery = earlier_delivery(database_url, issue_id, bouncing)
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
        with running_worker(env, tmp_path):
            wait_until(
                lambda: status_of(database_url, send_id).counts.get("sent", 0),
                lambda sent: sent >= 20,
                timeout=60,
                what="the send under way",
            )
            append(
                dovecot,
                [readdressed(fixture("exim-failed.eml"), old_delivery, now=None, verp=VERP)],
            )
            with transaction(database_url) as session:
                assert session.get_one(Subscriber, subscriber_id).status is not (
                    SubscriberStatus.BOUNCED
                )
            status = wait_until_done(database_url, send_id, timeout=120)
        received = list(smtp.handler.received)

    assert status.counts == {"sent": READERS - 1, "suppressed": 1}
    assert sorted(r.recipient for r in received) == sorted(emails[:-1])
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
