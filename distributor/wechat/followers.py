"""The Official Account's followers as subscribers: ``user/get`` paged into the subscriber store.

A follower is known to us only by OpenID, and the store keys every subscriber by an address. A
WeChat-only follower gets a synthetic key, ``wx-<OpenID in hex>@wechat.invalid``: hex because
keys are lower-cased and OpenIDs are case-sensitive; ``.invalid`` (RFC 2606) because no message
can ever be delivered there, and such a subscriber's channel is ``wechat``, so the email planner
never picks them. A follower already in the store with a real address (found by OpenID) keeps it.

The write goes through :mod:`subscribers.bulk`, under its rules: a follower who left and came back
stays suppressed, since only the person's own confirmation lifts suppression. A WeChat-only
follower who left is marked unsubscribed; a subscriber with a real address who unfollowed keeps
their address and loses their OpenID (WeChat would refuse a mass send naming it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Engine,
    MetaData,
    String,
    Table,
    select,
    update,
)

from distributor.channels.wechat.client import WechatClient
from distributor.db import utcnow
from distributor.vocabulary import Variant
from subscribers.bulk import LISTS, SUBSCRIBERS, TAGS, ensure_named, load, write_rows
from subscribers.csvfile import SubscriberRow
from subscribers.models import (
    DEFAULT_LOCALE,
    ChannelPreference,
    SubscriberStatus,
    SubscriptionStatus,
)
from subscribers.query import UNDELIVERABLE_DOMAIN

KEY_DOMAIN = "wechat" + UNDELIVERABLE_DOMAIN  # what the email planner never picks
SOURCE = "WeChat followers (user/get)"

_STAGING = MetaData()
SEEN = Table(
    "wechat_seen_openids", _STAGING, Column("openid", String(64), nullable=False),
    prefixes=["TEMPORARY"],
)


def follower_key(openid: str) -> str:
    """The store key of a WeChat-only follower (see the module's docstring)."""
    return f"wx-{openid.encode().hex()}@{KEY_DOMAIN}"


@dataclass(frozen=True)
class FollowersSync:
    followers: int  # following the account now
    left: int  # marked as gone by this sync
    tags: int  # WeChat tags mirrored


def _rows(
    page: Sequence[str], known: dict[str, str], list_name: str, tags: dict[str, list[str]]
) -> list[SubscriberRow]:
    return [
        SubscriberRow(
            line=0,
            email=known.get(openid) or follower_key(openid),
            email_key=known.get(openid) or follower_key(openid),
            name="",
            status=SubscriberStatus.ACTIVE,
            lists=((list_name, SubscriptionStatus.ACTIVE),),
            tags=tuple(tags.get(openid, ())),
            channel=ChannelPreference.WECHAT,
            format=Variant.FULL,
            openid=openid,
            locale=DEFAULT_LOCALE,
            attributes={},
            created_at=None,
        )
        for openid in page
    ]


def sync_followers(
    engine: Engine, client: WechatClient, list_name: str, *, with_tags: bool = False
) -> FollowersSync:
    """Every follower a subscriber on ``list_name`` (created if missing).

    One transaction per page, none while WeChat is asked (the access token may be kept in the
    same database): a sync cut short leaves whole pages written, and the next run completes it.
    Departures are marked only after every page was read.
    """
    followers_tags: dict[str, list[str]] = defaultdict(list)
    tag_names: list[str] = []
    if with_tags:
        for tag in client.tags():
            tag_names.append(tag.name)
            for openid in client.tag_followers(tag.id):
                followers_tags[openid].append(tag.name)
    list_ids: dict[str, int] = {}
    tag_ids: dict[str, int] = {}
    subscribers = SUBSCRIBERS.c
    seen = 0
    with engine.connect() as connection:
        with connection.begin():
            ensure_named(connection, LISTS, [list_name], list_ids)
            ensure_named(connection, TAGS, tag_names, tag_ids)
            SEEN.create(connection)
        after = ""
        while True:
            page = client.followers_page(after)
            if not page.openids:
                break
            with connection.begin():
                load(connection, SEEN, [(openid,) for openid in page.openids])
                known = {
                    openid: key
                    for openid, key in connection.execute(
                        select(subscribers.openid, subscribers.email_key).where(
                            subscribers.openid.in_(page.openids)
                        )
                    )
                    if openid
                }
                write_rows(
                    connection,
                    _rows(page.openids, known, list_name, followers_tags),
                    columns=frozenset({"openid"}),
                    source=SOURCE,
                    list_ids=list_ids,
                    tag_ids=tag_ids,
                )
            seen += len(page.openids)
            if not page.next_openid or page.next_openid == after:
                break
            after = page.next_openid
        with connection.begin():
            gone = subscribers.openid.is_not(None) & subscribers.openid.not_in(
                select(SEEN.c.openid)
            )
            left = mark_unfollowed(connection, gone)
            SEEN.drop(connection)
    return FollowersSync(followers=seen, left=left, tags=len(tag_names))


def mark_unfollowed(connection: Connection, gone: ColumnElement[bool]) -> int:
    """The subscribers matching ``gone`` no longer follow the account: a WeChat-only one is
    unsubscribed, one with a real address loses only the OpenID. How many were changed."""
    wechat_only = SUBSCRIBERS.c.email_key.like(f"%@{KEY_DOMAIN}")
    left: int = connection.execute(
        update(SUBSCRIBERS)
        .where(gone, wechat_only, SUBSCRIBERS.c.status == SubscriberStatus.ACTIVE)
        .values(status=SubscriberStatus.UNSUBSCRIBED, updated_at=utcnow())
    ).rowcount
    left += connection.execute(
        update(SUBSCRIBERS).where(gone, ~wechat_only).values(openid=None, updated_at=utcnow())
    ).rowcount
    return left


def unfollow(connection: Connection, openid: str) -> int:
    """WeChat's ``unsubscribe`` event for ``openid``: the sync's rule for one who left, at once
    (a send in progress then leaves them out of a job not yet sent)."""
    return mark_unfollowed(connection, SUBSCRIBERS.c.openid == openid)
