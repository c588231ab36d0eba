"""The re-check before each message (``still_sendable``): who left, switched channel or left the
send's list since planning is dropped, on both databases; PostgreSQL asks with one array
parameter, SQLite with IN, and both must say the same."""

from __future__ import annotations

from sqlalchemy import update

from distributor.db import transaction
from subscribers.models import ChannelPreference, Subscriber, SubscriberStatus
from subscribers.query import EMAIL_CHANNELS, IN_CHUNK, still_sendable
from subscribers.store import add_subscriber, create_list, find_subscriber, unsubscribe


def test_only_readers_still_on_the_list_and_on_email_remain(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "members")
        create_list(session, "other")
        ids = {
            who: add_subscriber(session, f"{who}@example.org", lists=lists).subscriber.id
            for who, lists in {
                "stays": ["members"],
                "left": ["members"],
                "wechat": ["members"],
                "elsewhere": ["other"],
                "blocked": ["members"],
            }.items()
        }
        unsubscribe(session, find_subscriber(session, "left@example.org"))
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == ids["wechat"])
            .values(channel=ChannelPreference.WECHAT, openid="o-wechat")
        )
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == ids["blocked"])
            .values(status=SubscriberStatus.BOUNCED)
        )

    with transaction(database_url) as session:
        asked = [*ids.values(), ids["stays"], 10**12]  # a repeat and an id nobody has
        on_members = still_sendable(session, asked, lists=["members"], channels=EMAIL_CHANNELS)
        anywhere = still_sendable(session, asked, lists=[], channels=EMAIL_CHANNELS)
        nobody = still_sendable(session, [], lists=["members"], channels=EMAIL_CHANNELS)

    assert on_members == {ids["stays"]}
    assert anywhere == {ids["stays"], ids["elsewhere"]}
    assert nobody == set()


def test_more_ids_than_one_in_clause_holds_are_all_checked(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "members")
        last = add_subscriber(session, "last@example.org", lists=["members"]).subscriber.id
    asked = [*range(10**9, 10**9 + IN_CHUNK), last]  # the one who counts comes after a chunk
    with transaction(database_url) as session:
        assert still_sendable(session, asked, lists=["members"], channels=EMAIL_CHANNELS) == {
            last
        }
