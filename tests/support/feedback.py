"""The deliveries the bounce fixtures name, in a real database: one send (ID 18, the one the
Microsoft report's Message-ID names), and for each fixture a subscriber and a sent delivery with
the ids its VERP address or Message-ID carries."""

from __future__ import annotations

import re
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import insert, select

from distributor.bounces import FeedbackKind
from distributor.config import Settings
from distributor.db import transaction
from distributor.issues.models import Issue
from distributor.render.message_ids import MessageRef
from distributor.render.verp import VERP_CANDIDATE, Verp
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryChannel, DeliveryState, SendState, Variant
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.query import Audience
from tests.conftest import SAMPLE_ISSUE
from tests.support.bounces import BOUNCE_DOMAIN, ISSUED, NOW, SECRET, VERP
from tests.support.refusals import database_refusing
from tests.support.sending import import_sample
from tests.test_bounces_classify import EXPECTED

SEND_ID = 18
NOW_AT = datetime.fromtimestamp(NOW, UTC)


@dataclass(frozen=True)
class Seeded:
    """A fixture's delivery: its id, its subscriber and the address it went to."""

    kind: FeedbackKind
    delivery_id: int
    subscriber_id: int
    address: str


def fixture_settings(database_url: str, **changes: object) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=SECRET,
        bounce_domain=BOUNCE_DOMAIN,
        **changes,  # type: ignore[arg-type]
    )


def seed_fixture_deliveries(
    database_url: str, state: SendState = SendState.DONE
) -> dict[str, Seeded]:
    """Every fixture that names a delivery (by VERP or Message-ID), seeded as sent."""
    issue_id = import_sample(database_url, SAMPLE_ISSUE)
    seeded: dict[str, Seeded] = {}
    for name, (kind, _source, recipient, _status, target) in EXPECTED.items():
        if target is None:
            continue
        if isinstance(target, MessageRef):
            seeded[name] = Seeded(
                kind,
                9000 + target.subscriber_id,
                target.subscriber_id,
                recipient or f"r{target.subscriber_id}@example.org",
            )
        else:
            seeded[name] = Seeded(kind, target, target, recipient or f"r{target}@example.org")
    with transaction(database_url) as session:
        assert session.scalar(select(Issue.id).where(Issue.id == issue_id)) is not None
        session.add(
            Send(
                id=SEND_ID,
                issue_id=issue_id,
                audience=Audience(lists=("members",)),
                variant=Variant.FULL,
                state=state,
            )
        )
        session.flush()
        session.execute(
            insert(Subscriber),
            [
                {
                    "id": each.subscriber_id,
                    "email": each.address,
                    "email_key": each.address.lower(),
                    "status": SubscriberStatus.ACTIVE,
                    "attributes": {},
                }
                for each in seeded.values()
            ],
        )
        session.execute(
            insert(Delivery),
            [
                {
                    "id": each.delivery_id,
                    "send_id": SEND_ID,
                    "subscriber_id": each.subscriber_id,
                    "channel": DeliveryChannel.EMAIL,
                    "address": each.address,
                    "variant": Variant.FULL,
                    "state": DeliveryState.SENT,
                    "attempts": 1,
                }
                for each in seeded.values()
            ],
        )
    return seeded


def subscriber_status(database_url: str, subscriber_id: int) -> SubscriberStatus:
    with transaction(database_url) as session:
        status = session.scalar(select(Subscriber.status).where(Subscriber.id == subscriber_id))
        assert status is not None
        return status


def delivery_state(database_url: str, delivery_id: int) -> DeliveryState:
    with transaction(database_url) as session:
        state = session.scalar(select(Delivery.state).where(Delivery.id == delivery_id))
        assert state is not None
        return state


def readdressed(
    raw: bytes, delivery_id: int | None = None, *, now: float | None = ISSUED, verp: Verp = VERP
) -> bytes:
    """``raw`` with each VERP address replaced by a genuine one issued at ``now`` (None: the
    present) for ``delivery_id`` (None: the delivery it named)."""

    def fresh(found: re.Match[str]) -> str:
        named = int(found[0].split("+", 1)[1].split("-", 1)[0])
        return verp.make_verp(named if delivery_id is None else delivery_id, now=now)

    return VERP_CANDIDATE.sub(fresh, raw.decode("latin-1")).encode("latin-1")


def refusing_changes_to(database_url: str, delivery_id: int) -> AbstractContextManager[None]:
    """The database refuses any change to one delivery: a failure on our side, for the one
    message about it."""
    return database_refusing(database_url, "UPDATE", "deliveries", when=f"OLD.id = {delivery_id:d}")
