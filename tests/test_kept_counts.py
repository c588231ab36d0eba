"""The trigger-kept counts (migration 0020) equal a plain count, on SQLite and PostgreSQL.

Each list's readers, after every kind of change: sign-ups, an import, unsubscribes,
suppressions and their lifting, a move to WeChat, changed addresses, statements that change many
rows at once, a list and a person deleted; and every figure read from them (a send's reach, a
draft's left-out readers) is the one counted over the readers. A send's readers who opened and
clicked, after events written, marked as a scanner's, changed and deleted."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import case, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from distributor.campaigns.erasure import erase_subscriber
from distributor.campaigns.left_out import left_out
from distributor.campaigns.schedule import create_send
from distributor.db import get_engine, session_factory, transaction, utcnow
from distributor.readers.engagement import engagement_counts
from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Send
from distributor.sending.planner import plan_send
from distributor.sending.reach import send_reach
from distributor.vocabulary import DeliveryChannel, SendState, Variant
from subscribers.counts import EMPTY_OPENID, NO_OPENID, OPENID, ListReaders
from subscribers.importer import import_subscribers
from subscribers.models import ChannelPreference, List, Subscriber, Subscription
from subscribers.query import Audience, has_email
from subscribers.store import (
    add_subscriber,
    change_address,
    delete_list,
    find_subscriber,
    unsubscribe,
    unsuppress,
)
from tests.support.sending import import_sample
from tests.support.standings import LIST, readers_in_each_state
from tests.test_claims import running_send_with

OTHER = "其他"


def kept(session: Session) -> Counter[tuple[object, ...]]:
    t = ListReaders
    keys = (t.list_id, t.subscription, t.status, t.channel, t.format, t.email, t.openid)
    rows = session.execute(select(*keys, func.sum(t.n)).group_by(*keys))
    return Counter({tuple(key): int(n) for *key, n in rows if n})


def plain(session: Session) -> Counter[tuple[object, ...]]:
    """The same keys, counted over the subscriptions with the planner's own conditions."""
    openid = Subscriber.openid
    keys = (
        Subscription.list_id,
        Subscription.status,
        Subscriber.status,
        Subscriber.channel,
        Subscriber.format,
        case((has_email(), 1), else_=0),
        case((openid.is_(None), NO_OPENID), (openid == "", EMPTY_OPENID), else_=OPENID),
    )
    rows = session.execute(
        select(*keys, func.count()).join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .group_by(*keys)
    )
    return Counter(
        {tuple(getattr(k, "value", k) for k in key): int(n) for *key, n in rows}
    )


def assert_counts_agree(url: str, issue_id: int, planned: int | None = None) -> None:
    with transaction(url) as session:
        assert kept(session) == plain(session)
        if planned is not None:  # a send to LIST, planned before the latest changes
            for wechat in (False, True):
                assert left_out(session, planned, wechat=wechat) == left_out(
                    session, planned, wechat=wechat, kept=False
                )
        names = list(session.scalars(select(List.name)))
        for name in [*names, "no such list"]:
            audience = Audience(lists=(name,))
            for variant in (None, Variant.DIGEST):
                send = Send(
                    issue_id=issue_id, audience=audience, variant=variant,
                    channel=DeliveryChannel.EMAIL, is_test=False, state=SendState.DRAFT,
                )
                for wechat in (False, True):
                    assert send_reach(session, send, wechat=wechat) == send_reach(
                        session, send, wechat=wechat, kept=False
                    ), (name, variant, wechat)
                session.add(send)
                session.flush()
                for wechat in (False, True):
                    assert left_out(session, send.id, wechat=wechat) == left_out(
                        session, send.id, wechat=wechat, kept=False
                    ), (name, variant, wechat)
                session.delete(send)


def test_the_kept_counts_equal_the_readers_counted(
    database_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    readers_in_each_state(database_url)  # sign-ups, unsubscribes, suppressions, WeChat
    issue_id = import_sample(database_url, sample_issue_path)
    with transaction(database_url) as session:
        for email, fmt in (("digest@x.cn", Variant.DIGEST), ("text@x.cn", Variant.TEXT)):
            add_subscriber(session, email, lists=[LIST, OTHER])
            find_subscriber(session, email).format = fmt
        add_subscriber(session, "both@x.cn", lists=[LIST])
        both = find_subscriber(session, "both@x.cn")
        # An empty OpenID: WeChat cannot reach it.
        both.channel, both.openid = ChannelPreference.BOTH, ""
        # Another send of the issue, going out: the reach's "already" is counted beside.
        session.add(
            Send(issue_id=issue_id, audience=Audience(lists=(LIST,)), variant=None,
                 channel=DeliveryChannel.EMAIL, is_test=False, state=SendState.SCHEDULED)
        )
    path = tmp_path / "readers.csv"
    path.write_text(
        "email,name,format\nin@x.cn,老读者,text\nnew1@x.cn,新读者,digest\nnew2@x.cn,,full\n"
    )
    with get_engine(database_url).connect() as connection:
        import_subscribers(connection, path, list_name=OTHER, on_problem=lambda problem: None)
    assert_counts_agree(database_url, issue_id)
    with transaction(database_url) as session:
        planned = create_send(
            session, issue_id=issue_id, audience=Audience(lists=(LIST,)), variant=None,
            at=None, now=utcnow(), zone=ZoneInfo("Asia/Shanghai"),
        ).id
        start_due_sends(session, utcnow())
    plan_send(session_factory(database_url), planned, batch_size=5, lease=timedelta(minutes=1))
    assert_counts_agree(database_url, issue_id, planned)

    with transaction(database_url) as session:
        # Statements that change many rows at once, as an import's or a migration's would.
        session.execute(text("UPDATE subscribers SET format = 'digest' WHERE id % 2 = 0"))
        session.execute(
            text("UPDATE subscriptions SET status = 'pending' WHERE subscriber_id % 3 = 0")
        )
        session.execute(
            text("UPDATE subscribers SET channel = 'wechat', openid = NULL WHERE id % 5 = 1")
        )
        unsubscribe(session, find_subscriber(session, "new1@x.cn"))
        unsuppress(session, "bounced@x.cn", reason="the box is back", source="test")
        change_address(session, "text@x.cn", "wx-0001@wechat.invalid")
        session.execute(
            text(
                "DELETE FROM subscriptions WHERE subscriber_id = :s AND list_id ="
                " (SELECT id FROM lists WHERE name = :l)"
            ),
            {"s": find_subscriber(session, "digest@x.cn").id, "l": OTHER},
        )
        erase_subscriber(session, find_subscriber(session, "both@x.cn").id)
        session.execute(text("DELETE FROM subscribers WHERE email_key = 'new2@x.cn'"))
        add_subscriber(session, "late@x.cn", lists=[LIST])  # joined after the planning
    assert_counts_agree(database_url, issue_id, planned)

    with transaction(database_url) as session:
        delete_list(session, OTHER)
    assert_counts_agree(database_url, issue_id, planned)


def test_the_kept_engagement_equals_the_events_counted(database_url: str) -> None:
    send_id = running_send_with(database_url, 5)
    other = running_send_with(database_url, 2)
    open_, click = EngagementKind.OPEN, EngagementKind.CLICK
    events = [
        (send_id, 1, open_, None, False),
        (send_id, 1, open_, None, False),  # again: one reader
        (send_id, 1, click, "https://hzgh.org/1", False),
        (send_id, 1, click, "https://hzgh.org/1", False),  # the same link: one click
        (send_id, 2, click, "https://hzgh.org/1", True),  # a scanner
        (send_id, 2, click, "https://hzgh.org/2", True),
        (send_id, 3, click, None, False),  # a link without an address is a link
        (send_id, 3, click, "https://hzgh.org/2", False),
        (send_id, 4, open_, None, False),
        (other, 1, open_, None, False),
    ]

    def write(rows: list[tuple[int, int, EngagementKind, str | None, bool]]) -> None:
        with transaction(database_url) as session:
            session.execute(
                insert(EngagementEvent),
                [
                    {"send_id": s, "subscriber_id": r, "kind": k, "url": u, "machine": m,
                     "at": utcnow()}
                    for s, r, k, u, m in rows
                ],
            )

    def assert_counts_agree() -> None:
        with transaction(database_url) as session:
            for send in (send_id, other):
                assert engagement_counts(session, send) == engagement_counts(
                    session, send, kept=False
                )

    write(events[:6])
    write(events[6:])  # readers seen before, and new ones
    assert_counts_agree()
    with transaction(database_url) as session:
        session.execute(  # reader 1 turns out to be a scanner; reader 2 not
            update(EngagementEvent)
            .where(EngagementEvent.subscriber_id.in_([1, 2]), EngagementEvent.kind == click)
            .values(machine=EngagementEvent.subscriber_id == 1)
        )
        session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.subscriber_id == 3, EngagementEvent.url.is_(None))
            .values(url="https://hzgh.org/2")  # now the link they had clicked already
        )
    assert_counts_agree()
    with transaction(database_url) as session:  # a person erased: their events go
        session.execute(delete(EngagementEvent).where(EngagementEvent.subscriber_id == 1))
    assert_counts_agree()
    with transaction(database_url) as session:
        # Reader 2's two links, now a reader's; reader 3's one link, clicked twice.
        assert engagement_counts(session, send_id).to_json() == {
            "opened": 1, "clicked": 2, "clicks": 3
        }
