"""Kept counts (distributor.snapshot_counts) are exact: on PostgreSQL a count is read back while
nothing it reads changed, and counted again after every kind of change (an insert, an update, a
delete, an import, an engagement event, a delivery's failure, a new send, a change committed
while the count was being made); on SQLite every count is made afresh. Each figure equals the
plain count of the same conditions."""

from __future__ import annotations

import threading
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from distributor.db import get_engine, is_sqlite, session_factory, transaction, utcnow
from distributor.readers.models import EngagementEvent
from distributor.segments.store import count_segment, create_segment, segment_audience
from distributor.sending.models import Delivery, Send
from distributor.snapshot_counts import WATCHED, counted_rows
from distributor.vocabulary import FailureCause, SendState, Variant
from subscribers.importer import import_subscribers
from subscribers.models import List, Subscriber, SubscriberStatus, Tag, subscriber_tags
from subscribers.query import Audience, audience_conditions
from subscribers.store import add_subscriber, find_subscriber
from tests.support.sending import import_sample

ZONE = ZoneInfo("Asia/Shanghai")
SPOILT = -1  # what a kept count is overwritten with, to see whether it is read back
SEGMENTS = {
    "members": "list = members",
    "young": "tag = 青年",
    "readers": "opened any of last 1 sends",
    "healthy": "list = members and not bounced softly",
}


def plain(session: Session, name: str) -> int:
    """The segment's readers counted with its conditions, never kept."""
    audience = segment_audience(session, name, ZONE)
    count = select(func.count(Subscriber.id)).where(*audience_conditions(audience))
    return int(session.scalar(count) or 0)


def count(url: str, name: str) -> int:
    with transaction(url) as session:
        return count_segment(session, name, ZONE)


def spoil(url: str) -> None:
    """Overwrite every kept count: a count that reads one back returns :data:`SPOILT`."""
    with transaction(url) as session:
        session.execute(text("UPDATE kept_counts SET rows = CAST(:rows AS json)"),
                        {"rows": f"[[{SPOILT}]]"})


def assert_exact(url: str, *changed: str) -> None:
    """The ``changed`` segments' counts are the plain ones; on PostgreSQL the others' are read
    back from what was kept (spoilt on purpose, so that the next change to what each reads must
    be seen), and each is kept and spoilt again."""
    with transaction(url) as session:
        expected = {name: plain(session, name) for name in SEGMENTS}
    if is_sqlite(url):
        assert {name: count(url, name) for name in SEGMENTS} == expected
        return
    assert {name: count(url, name) for name in SEGMENTS} == {
        name: expected[name] if name in changed else SPOILT for name in SEGMENTS
    }
    spoil(url)
    assert {name: count(url, name) for name in SEGMENTS} == dict.fromkeys(SEGMENTS, SPOILT)


@pytest.fixture
def url(database_url: str, sample_issue_path: Path) -> str:
    issue_id = import_sample(database_url, sample_issue_path)
    with transaction(database_url) as session:
        session.add_all([List(name="members"), List(name="others"), Tag(name="青年")])
        session.add(
            Send(issue_id=issue_id, audience=Audience(lists=("members",)), variant=Variant.FULL,
                 state=SendState.DONE, tracking=True, is_test=False, started_at=utcnow())
        )
        for i in range(6):
            add_subscriber(session, f"r{i}@x.cn", lists=["members"])
        for name, expression in SEGMENTS.items():
            create_segment(session, name, expression, ZONE)
    return database_url


def _one(session: Session, email: str) -> int:
    return find_subscriber(session, email).id


def test_a_kept_count_is_counted_again_after_each_kind_of_change(
    url: str, tmp_path: Path
) -> None:
    assert_exact(url, *SEGMENTS)
    with transaction(url) as session:  # an insert
        add_subscriber(session, "new@x.cn", lists=["members"])
    assert count(url, "members") == 7
    assert_exact(url, *SEGMENTS)
    with transaction(url) as session:  # an update of a column the count reads
        session.execute(
            update(Subscriber)
            .where(Subscriber.email == "r0@x.cn")
            .values(status=SubscriberStatus.UNSUBSCRIBED)
        )
    assert count(url, "members") == 6
    assert_exact(url, *SEGMENTS)
    with transaction(url) as session:  # a delete
        session.execute(delete(Subscriber).where(Subscriber.email == "r1@x.cn"))
    assert_exact(url, *SEGMENTS)
    path = tmp_path / "readers.csv"
    path.write_text("email,name\nin1@x.cn,甲\nin2@x.cn,乙\n")
    with get_engine(url).connect() as connection:  # an import
        import_subscribers(connection, path, list_name="members", on_problem=lambda _: None)
    assert count(url, "members") == 7
    assert_exact(url, *SEGMENTS)
    with transaction(url) as session:  # a tag given
        tag = session.scalar(select(Tag.id).where(Tag.name == "青年"))
        session.execute(
            insert(subscriber_tags).values(subscriber_id=_one(session, "r2@x.cn"), tag_id=tag)
        )
    assert count(url, "young") == 1
    assert_exact(url, "young")
    with transaction(url) as session:  # an engagement event
        send = session.scalar(select(Send.id))
        session.add(EngagementEvent(send_id=send, subscriber_id=_one(session, "r3@x.cn"),
                                    kind="open", at=utcnow()))
    assert count(url, "readers") == 1
    assert_exact(url, "readers")
    with transaction(url) as session:  # a delivery, then its soft failure
        session.add(Delivery(send_id=send, subscriber_id=_one(session, "r4@x.cn"),
                             channel="email", address="r4@x.cn", variant=Variant.FULL,
                             state="sent"))
    assert_exact(url, "healthy")
    with transaction(url) as session:
        session.execute(update(Delivery).values(state="failed",
                                                failure_cause=FailureCause.MAILBOX_FULL))
    assert count(url, "healthy") == 6
    assert_exact(url, "healthy")
    with transaction(url) as session:  # a newer tracked send: the last one has no opens
        issue = session.scalar(select(Send.issue_id))
        session.add(Send(issue_id=issue, audience=Audience(lists=("members",)),
                         variant=Variant.FULL, state=SendState.DONE, tracking=True,
                         is_test=False, started_at=utcnow()))
    assert count(url, "readers") == 0
    assert_exact(url, "readers")


def test_a_change_committed_while_counting_is_not_missed(url: str) -> None:
    """The count is made in a snapshot that does not see a transaction still open; once that
    commits, the kept count is no longer trusted."""
    writer = session_factory(url)()
    add_subscriber(writer, "racer@x.cn", lists=["members"])
    writer.flush()  # written, not committed: SQLite's writer holds the lock, so count there after
    if is_sqlite(url):
        writer.commit()
    else:
        with transaction(url) as session:  # a later transaction ends first: the open one is
            session.add(Tag(name="其他"))  # among the snapshot's running ones, not past its end
        assert count(url, "members") == 6  # counted (and kept) without the racer
        writer.commit()
    writer.close()
    assert count(url, "members") == 7
    assert_exact(url, *SEGMENTS)


def test_a_count_in_a_transaction_that_changed_its_rows_is_not_kept(url: str) -> None:
    with transaction(url) as session:
        before = count_segment(session, "members", ZONE)
    session = session_factory(url)()
    add_subscriber(session, "mine@x.cn", lists=["members"])
    session.flush()
    assert count_segment(session, "members", ZONE) == before + 1  # its own row counts
    session.rollback()
    session.close()
    assert count(url, "members") == before


def test_a_count_kept_concurrently_by_others_stays_exact(url: str) -> None:
    """Several counts of the same segment at once, with writes in between: each equals the plain
    count of its moment or a later one, and the last one the final figure."""
    errors: list[BaseException] = []

    def counter() -> None:
        try:
            for _ in range(5):
                assert count(url, "members") >= 6
        except BaseException as error:  # reported by the test, not the thread
            errors.append(error)

    threads = [threading.Thread(target=counter) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(3):
        with transaction(url) as session:
            add_subscriber(session, f"more{i}@x.cn", lists=["members"])
    for thread in threads:
        thread.join()
    assert not errors
    assert count(url, "members") == 9
    assert_exact(url, *SEGMENTS)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_pruning_forgets_old_changes_and_no_count_older_than_them_is_trusted(url: str) -> None:
    assert_exact(url, *SEGMENTS)  # kept, and spoilt
    with transaction(url) as session:
        add_subscriber(session, "late@x.cn", lists=["members"])
        session.execute(text("UPDATE count_horizon SET pruned_at = now() - interval '1 day'"))
        session.execute(text("UPDATE kept_counts SET made_at = now() - interval '1 day'"))
    assert count(url, "members") == 7  # counted again, kept, and the old ones pruned
    with transaction(url) as session:
        horizon = session.scalar(text("SELECT oldest FROM count_horizon"))
        assert horizon > 0
        below = text("SELECT count(*) FROM count_changes WHERE xid < :horizon")
        assert session.scalar(below, {"horizon": horizon}) == 0
        assert session.scalar(text("SELECT count(*) FROM kept_counts")) == 1
    # A kept count from before the horizon may have missed a pruned change: counted again.
    spoil(url)
    with transaction(url) as session:
        session.execute(text("UPDATE kept_counts SET oldest = :low"), {"low": horizon - 1})
    assert count(url, "members") == 7
    assert_exact(url, *SEGMENTS)
    # One older than KEEP is not read (pruning is not due: it stays, unread).
    with transaction(url) as session:
        session.execute(text("UPDATE kept_counts SET made_at = now() - interval '2 hours'"))
    assert count(url, "members") == 7


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_count_reading_an_unwatched_column_is_never_kept(url: str) -> None:
    with transaction(url) as session:
        rows = counted_rows(
            session, select(func.count(Subscriber.id)).where(Subscriber.name == "nobody")
        )
        assert rows == [(0,)]
        assert session.scalar(text("SELECT count(*) FROM kept_counts")) == 0


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_every_watched_change_has_its_trigger(database_url: str) -> None:
    """What the module trusts is what migration 0023 watches."""
    with transaction(database_url) as session:
        triggers = set(
            session.scalars(
                text("SELECT tgname FROM pg_trigger WHERE tgname LIKE '%\\_changed'")
            )
        )
    expected = {f"{table}_changed" for table in WATCHED} | {
        f"{table}_{column}_changed" for table, columns in WATCHED.items() for column in columns
    }
    assert triggers == expected
