"""Planning: who gets which delivery row, made in the database batch by batch, resumable, once."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, insert, select, update

from distributor.campaigns.schedule import create_send
from distributor.db import get_engine, session_factory, transaction, utcnow
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery, Send
from distributor.sending.planner import plan_next_batch, plan_send
from distributor.vocabulary import Variant
from subscribers.models import (
    List,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from subscribers.query import Audience

# (email, channel, format, openid, status)
READERS = [
    ("a@example.org", "email", "full", None, SubscriberStatus.ACTIVE),
    ("b@example.org", "wechat", "full", "o-b", SubscriberStatus.ACTIVE),  # WeChat only
    ("c@example.org", "both", "digest", "o-c", SubscriberStatus.ACTIVE),
    ("d@example.org", "email", "text", None, SubscriberStatus.UNSUBSCRIBED),
    ("e@example.org", "email", "digest", None, SubscriberStatus.ACTIVE),
    ("f@example.org", "email", "full", None, SubscriberStatus.ACTIVE),
]


def _send(url: str, sample_issue_path: object, variant: Variant | None) -> int:
    with transaction(url) as session:
        mailing_list = List(name="members")
        session.add(mailing_list)
        session.flush()
        for email, channel, fmt, openid, status in READERS:
            reader = Subscriber(
                email=email,
                email_key=email,
                name=f"读者 {email[0]}",
                status=status,
                channel=channel,
                format=fmt,
                openid=openid,
                attributes={},
            )
            session.add(reader)
            session.flush()
            session.add(
                Subscription(
                    subscriber_id=reader.id,
                    list_id=mailing_list.id,
                    status=SubscriptionStatus.ACTIVE,
                )
            )
        report = read_issue_file(sample_issue_path)  # type: ignore[arg-type]
        issue = save_issue(session, report.document, source_format=report.format)
        send = create_send(
            session,
            issue_id=issue.id,
            audience=Audience(lists=("members",)),
            variant=variant,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("UTC"),
            allow_empty=True,
        )
        start_due_sends(session, utcnow())
        return send.id


def _rows(url: str, send_id: int) -> list[tuple[str, str, str | None, str]]:
    with transaction(url) as session:
        return [
            (row.address, row.channel.value, row.name, row.variant.value)
            for row in session.scalars(
                select(Delivery).where(Delivery.send_id == send_id).order_by(Delivery.address)
            )
        ]


def test_rows_go_to_active_email_readers_with_the_send_variant(
    database_url: str, sample_issue_path: object
) -> None:
    send_id = _send(database_url, sample_issue_path, Variant.FULL)
    factory = session_factory(database_url)
    plan_send(factory, send_id, batch_size=1000, lease=timedelta(minutes=1), wechat=True)
    assert _rows(database_url, send_id) == [
        ("a@example.org", "email", "读者 a", "full"),
        ("c@example.org", "email", "读者 c", "full"),
        ("e@example.org", "email", "读者 e", "full"),
        ("f@example.org", "email", "读者 f", "full"),
    ]


def test_a_wechat_reader_whom_wechat_cannot_reach_gets_email(
    database_url: str, sample_issue_path: object
) -> None:
    """WeChat not set up: the WeChat-only reader gets email instead of nothing. Set up, but
    they follow no account (no OpenID): the same."""
    send_id = _send(database_url, sample_issue_path, Variant.FULL)
    factory = session_factory(database_url)
    plan_send(factory, send_id, batch_size=1000, lease=timedelta(minutes=1))
    assert ("b@example.org", "email", "读者 b", "full") in _rows(database_url, send_id)
    with transaction(database_url) as session:
        session.execute(update(Subscriber).where(Subscriber.openid == "o-b").values(openid=None))
        by_preference = create_send(
            session,
            issue_id=session.get_one(Send, send_id).issue_id,
            audience=Audience(lists=("members",)),
            variant=None,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("UTC"),
        ).id
        start_due_sends(session, utcnow())
    plan_send(factory, by_preference, batch_size=1000, lease=timedelta(minutes=1), wechat=True)
    rows = _rows(database_url, by_preference)
    assert ("b@example.org", "email", "读者 b", "full") in rows
    assert not [row for row in rows if row[0] == "o-b"]


def test_a_send_by_preference_gives_each_reader_their_format_and_channel(
    database_url: str, sample_issue_path: object
) -> None:
    send_id = _send(database_url, sample_issue_path, None)
    factory = session_factory(database_url)
    plan_send(factory, send_id, batch_size=1000, lease=timedelta(minutes=1), wechat=True)
    assert _rows(database_url, send_id) == [
        ("a@example.org", "email", "读者 a", "full"),
        ("c@example.org", "email", "读者 c", "digest"),
        ("e@example.org", "email", "读者 e", "digest"),
        ("f@example.org", "email", "读者 f", "full"),
        ("o-b", "wechat", "读者 b", "full"),
        ("o-c", "wechat", "读者 c", "digest"),
    ]


def test_batches_move_the_checkpoint_and_a_repeated_batch_adds_nothing(
    database_url: str, sample_issue_path: object
) -> None:
    send_id = _send(database_url, sample_issue_path, Variant.FULL)
    factory = session_factory(database_url)
    seen = []
    with factory.begin() as session:
        first_checkpoint = session.get_one(Send, send_id).planned_through
    while True:
        with factory.begin() as session:
            n = plan_next_batch(
                session,
                send_id,
                batch_size=2,
                now=utcnow(),
                lease=timedelta(minutes=1),
                wechat=True,
            )
            send = session.get_one(Send, send_id)
            seen.append((n, send.planned_through - first_checkpoint, send.planned_at is not None))
        if n is None:
            break
    # Two pages of two: the unsubscribed and the WeChat-only reader are not even looked at.
    assert [n for n, _, _ in seen] == [2, 2, None]
    assert [moved for _, moved, _ in seen[:2]] == [3, 6]  # ids: a 1, c 3 | e 5, f 6
    assert seen[-1][2] and len(_rows(database_url, send_id)) == 4
    with factory.begin() as session:  # a planner that died before moving the checkpoint redoes…
        session.get_one(Send, send_id).planned_through = first_checkpoint
        session.get_one(Send, send_id).planned_at = None
    plan_send(factory, send_id, batch_size=2, lease=timedelta(minutes=1), wechat=True)
    assert len(_rows(database_url, send_id)) == 4  # …and the unique key keeps each row once


def test_a_page_of_readers_just_imported_walks_the_key_not_the_whole_list(
    postgres_url: str, sample_issue_path: object
) -> None:
    """Readers just imported have no statistics yet. A page must still read about a page of
    them, not every reader past the checkpoint (then sorted): planning a large send would grow
    with its square. The page's query is explained (ANALYZE) on its own transaction, as run."""
    send_id = _send(postgres_url, sample_issue_path, Variant.FULL)
    with transaction(postgres_url) as session:
        list_id = session.scalars(select(List.id)).one()
        ids = session.scalars(
            insert(Subscriber).returning(Subscriber.id),
            [
                {
                    "email": f"r{i}@example.org",
                    "email_key": f"r{i}@example.org",
                    "name": f"读者{i}",
                    "status": SubscriberStatus.ACTIVE,
                    "channel": "email",
                    "format": "full",
                    "attributes": {},
                }
                for i in range(3000)
            ],
        ).all()
        session.execute(
            insert(Subscription),
            [
                {"subscriber_id": i, "list_id": list_id, "status": SubscriptionStatus.ACTIVE}
                for i in ids
            ],
        )
    engine = get_engine(postgres_url)
    read: list[int] = []

    def explain(_conn: object, cursor: Any, statement: str, parameters: Any, *_: object) -> None:
        if statement.startswith("SELECT count(*)") and "subscribers" in statement:
            explained = f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}"
            plan = cursor.connection.execute(explained, parameters).fetchone()[0]
            read.extend(_rows_read_from(json.loads(plan) if isinstance(plan, str) else plan))

    event.listen(engine, "before_cursor_execute", explain)
    try:
        with session_factory(postgres_url).begin() as session:
            seen = plan_next_batch(
                session, send_id, batch_size=100, now=utcnow(), lease=timedelta(minutes=1)
            )
    finally:
        event.remove(engine, "before_cursor_execute", explain)
    assert seen == 100
    assert read and max(read) <= 110, read  # a page, and the few readers it passes over


def _rows_read_from(plan: Any) -> list[int]:
    """The rows each scan of ``subscribers`` in an EXPLAIN (ANALYZE, FORMAT JSON) plan gave."""
    if isinstance(plan, list):
        return [n for node in plan for n in _rows_read_from(node)]
    node = plan.get("Plan", plan)
    rows = [node["Actual Rows"]] if node.get("Relation Name") == "subscribers" else []
    return rows + [n for child in node.get("Plans", []) for n in _rows_read_from(child)]
