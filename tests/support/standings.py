"""A list with one reader in each state a send can find them in (in it, or left out for each
reason), for the left-out tests of the services, the dashboard, the API and the CLI."""

from __future__ import annotations

from distributor.campaigns.left_out import Standing
from distributor.db import transaction
from subscribers.care import set_tags
from subscribers.models import ChannelPreference, SubscriberStatus, SubscriptionStatus
from subscribers.store import (
    Suppression,
    add_subscriber,
    create_list,
    find_subscriber,
    request_subscription,
    suppress_all,
    unsubscribe,
)

LIST = "会员快讯"
FOLLOWER_ONLY = "wx-6f2d6f6e6c79@wechat.invalid"
TAG = "工会"

# One reader in each state, by address: what each is counted as in a send of one variant to
# LIST and TAG, with WeChat set up.
EXPECTED = {
    "in@x.cn": Standing.IN_SEND,
    "tagless@x.cn": Standing.NOT_TAGGED,
    "gone@x.cn": Standing.UNSUBSCRIBED,
    "bounced@x.cn": Standing.BOUNCED,
    "spam@x.cn": Standing.COMPLAINED,
    "new@x.cn": Standing.NOT_CONFIRMED,
    "left@x.cn": Standing.LEFT_LIST,
    "wechat@x.cn": Standing.IN_SEND,  # chose WeChat, no follower account: email instead
    "follower@x.cn": Standing.WECHAT_ONLY,  # a follower: this send goes by email only
    # Known only as a follower (a synthetic key, no address): nobody to email instead.
    FOLLOWER_ONLY: Standing.WECHAT_ONLY,
}


def readers_in_each_state(url: str) -> None:
    with transaction(url) as session:
        create_list(session, LIST)
        create_list(session, "其他")
        for email in EXPECTED:
            if email != "new@x.cn":
                add_subscriber(session, email, lists=[LIST])
        request_subscription(session, "new@x.cn", lists=[LIST], source="test")
        for email in EXPECTED:
            subscriber = find_subscriber(session, email)
            if email != "tagless@x.cn":
                set_tags(session, subscriber, [TAG])
        unsubscribe(session, find_subscriber(session, "gone@x.cn"))
        for email, status in (
            ("bounced@x.cn", SubscriberStatus.BOUNCED),
            ("spam@x.cn", SubscriberStatus.COMPLAINED),
        ):
            subscriber = find_subscriber(session, email)
            suppress_all(
                session,
                [Suppression(subscriber.id, status, email, f"{status.value} by test", "test")],
            )
        left = find_subscriber(session, "left@x.cn")
        left.subscriptions[0].status = SubscriptionStatus.UNSUBSCRIBED
        find_subscriber(session, "wechat@x.cn").channel = ChannelPreference.WECHAT
        follower = find_subscriber(session, "follower@x.cn")
        follower.channel, follower.openid = ChannelPreference.WECHAT, "o-follower"
        only = find_subscriber(session, FOLLOWER_ONLY)
        only.channel, only.openid = ChannelPreference.WECHAT, "o-only"
        add_subscriber(session, "elsewhere@x.cn", lists=["其他"])
