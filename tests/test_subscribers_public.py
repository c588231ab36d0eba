"""Signed links, double opt-in, suppression and the audience the sending engine reads."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from distributor.db import transaction
from distributor.errors import InvalidToken
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.models import ChannelPreference, SubscriberStatus, SubscriptionStatus
from subscribers.public import (
    CONFIRM_MAX_AGE,
    confirm_by_token,
    unsubscribe_by_token,
    update_preferences_by_token,
)
from subscribers.query import Audience, still_sendable, stream_audience
from subscribers.store import (
    add_subscriber,
    create_list,
    find_subscriber,
    request_subscription,
    set_preferences,
)
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.test_subscribers_import import import_text, state

SIGNER = TokenSigner("test-secret-0123456789")
LINKS = PublicLinks("https://news.example.org", SIGNER)


def token_of(link: str) -> str:
    return link.rsplit("/", 1)[1]


def audience(url: str, **facets: Any) -> list[str]:
    """The addresses selected, read two at a time so that paging is exercised too."""
    with transaction(url) as session:
        return [
            member.email
            for batch in stream_audience(session, Audience(**facets), batch_size=2)
            for member in batch
        ]


def still_sendable_now(
    url: str,
    ids: Iterable[int],
    lists: tuple[str, ...] = (),
    channels: tuple[ChannelPreference, ...] = tuple(ChannelPreference),
) -> set[int]:
    with transaction(url) as session:
        return still_sendable(session, list(ids), lists=lists, channels=channels)


def subscriber_id(url: str, email: str) -> int:
    with transaction(url) as session:
        return find_subscriber(session, email).id


def test_tokens_are_rejected_when_tampered_foreign_or_for_another_purpose(
    database_url: str,
) -> None:
    with transaction(database_url) as session:
        wang = add_subscriber(session, "wang@qq.com").subscriber.id
        li = add_subscriber(session, "li@163.com").subscriber.id
    unsubscribe = token_of(LINKS.unsubscribe(wang))
    payload, mac = unsubscribe.split(".")
    for_li = token_of(LINKS.unsubscribe(li)).split(".")[0]
    bad_tokens = {
        "tampered id": f"{for_li}.{mac}",
        "tampered mac": f"{payload}.{mac[:-2]}AA",
        "foreign secret": token_of(PublicLinks("x", TokenSigner("other-secret")).unsubscribe(wang)),
        "cut short": payload,
        "garbage": "%%%.???",
    }
    with transaction(database_url) as session:
        for name, token in bad_tokens.items():
            with pytest.raises(InvalidToken):
                unsubscribe_by_token(session, SIGNER, token)
            assert find_subscriber(session, "wang@qq.com").status is SubscriberStatus.ACTIVE, name
        # A token names its purpose: neither of these can confirm or unsubscribe.
        with pytest.raises(InvalidToken):
            confirm_by_token(session, SIGNER, unsubscribe)
        with pytest.raises(InvalidToken):
            unsubscribe_by_token(session, SIGNER, token_of(LINKS.preferences(wang)))
        with pytest.raises(InvalidToken, match="expired"):
            old = SIGNER.sign(
                TokenPurpose.CONFIRM, str(wang), issued_at=int(time.time()) - CONFIRM_MAX_AGE - 60
            )
            confirm_by_token(session, SIGNER, old)
        assert unsubscribe_by_token(session, SIGNER, unsubscribe).id == wang
    assert state(database_url, "wang@qq.com")[0] is SubscriberStatus.UNSUBSCRIBED
    assert state(database_url, "li@163.com")[0] is SubscriberStatus.ACTIVE


def test_double_opt_in(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        pending = request_subscription(
            session, "Wang@QQ.com", lists=["会员快讯"], name="王", source="web form"
        )
        assert pending.status is SubscriberStatus.PENDING
        link = LINKS.confirm(pending.id)
    assert audience(database_url, lists=("会员快讯",)) == []

    with transaction(database_url) as session:
        confirmed = confirm_by_token(session, SIGNER, token_of(link))
        assert confirmed.consent_source == "web form" and confirmed.consent_at is not None
        confirm_by_token(session, SIGNER, token_of(link))  # following it twice is harmless
    assert state(database_url, "wang@qq.com") == (
        SubscriberStatus.ACTIVE,
        [("会员快讯", SubscriptionStatus.ACTIVE)],
    )
    assert audience(database_url, lists=("会员快讯",)) == ["Wang@qq.com"]


def test_suppression_holds_on_every_list_until_the_person_subscribes_again(
    database_url: str, tmp_path: Path
) -> None:
    import_text(
        database_url,
        tmp_path,
        "email,lists\n"
        "wang@qq.com,会员快讯|青年\nli@163.com,会员快讯|青年\nzhao@126.com,青年\n"
        "qian@sina.com,会员快讯|青年\n",
    )
    ids = {
        email: subscriber_id(database_url, email)
        for email in ("wang@qq.com", "li@163.com", "zhao@126.com", "qian@sina.com")
    }
    assert still_sendable_now(database_url, ids.values()) == set(ids.values())

    with transaction(database_url) as session:
        unsubscribe_by_token(session, SIGNER, token_of(LINKS.unsubscribe(ids["wang@qq.com"])))
        find_subscriber(session, "li@163.com").status = SubscriberStatus.BOUNCED
        find_subscriber(session, "zhao@126.com").status = SubscriberStatus.COMPLAINED
    for lists in (("会员快讯",), ("青年",), ("会员快讯", "青年"), ()):
        assert audience(database_url, lists=lists) == ["qian@sina.com"], lists
    assert still_sendable_now(database_url, ids.values()) == {ids["qian@sina.com"]}
    assert still_sendable_now(database_url, ids.values(), ("青年",)) == {ids["qian@sina.com"]}

    # The original file again, and the staff adding them: nobody comes back.
    import_text(
        database_url,
        tmp_path,
        "email,status,lists\nwang@qq.com,active,会员快讯\nli@163.com,active,青年\n",
    )
    with transaction(database_url) as session:
        add_subscriber(session, "zhao@126.com", lists=["会员快讯"])
    assert audience(database_url) == ["qian@sina.com"]

    # Wang asks again for one list and confirms: back on that list only.
    with transaction(database_url) as session:
        request_subscription(session, "wang@qq.com", lists=["青年"], source="web form")
    assert audience(database_url) == ["qian@sina.com"]
    with transaction(database_url) as session:
        confirm_by_token(session, SIGNER, token_of(LINKS.confirm(ids["wang@qq.com"])))
    assert audience(database_url, lists=("青年",)) == ["wang@qq.com", "qian@sina.com"]
    assert audience(database_url, lists=("会员快讯",)) == ["qian@sina.com"]


def test_leaving_the_list_a_send_is_for_stops_it_and_leaving_another_does_not(
    database_url: str, tmp_path: Path
) -> None:
    import_text(
        database_url,
        tmp_path,
        "email,lists\nwang@qq.com,会员快讯|青年\nli@163.com,会员快讯\nzhao@126.com,青年\n",
    )
    ids = {email: subscriber_id(database_url, email) for email in ("wang@qq.com", "li@163.com",
                                                                    "zhao@126.com")}
    import_text(  # wang leaves 会员快讯 and li leaves 会员快讯, their only list
        database_url, tmp_path, "email,lists\nwang@qq.com,会员快讯:unsubscribed\n"
        "li@163.com,会员快讯:unsubscribed\n"
    )
    everyone = set(ids.values())
    assert still_sendable_now(database_url, everyone, ("会员快讯",)) == set()
    assert still_sendable_now(database_url, everyone, ("青年",)) == {ids["wang@qq.com"],
                                                                     ids["zhao@126.com"]}
    assert still_sendable_now(database_url, everyone, ("会员快讯", "青年")) == {
        ids["wang@qq.com"], ids["zhao@126.com"]
    }
    assert still_sendable_now(database_url, everyone) == everyone  # all still active people


def test_a_reader_who_switched_channel_is_sendable_only_on_the_one_they_chose(
    database_url: str, tmp_path: Path
) -> None:
    import_text(database_url, tmp_path, "email,lists\nwang@qq.com,会员快讯\nli@163.com,会员快讯\n")
    wang, li = (subscriber_id(database_url, email) for email in ("wang@qq.com", "li@163.com"))
    with transaction(database_url) as session:
        set_preferences(find_subscriber(session, "wang@qq.com"), channel=ChannelPreference.WECHAT)
    by_email = (ChannelPreference.EMAIL, ChannelPreference.BOTH)
    by_wechat = (ChannelPreference.WECHAT, ChannelPreference.BOTH)
    assert still_sendable_now(database_url, {wang, li}, ("会员快讯",), by_email) == {li}
    assert still_sendable_now(database_url, {wang, li}, ("会员快讯",), by_wechat) == {wang}


def test_an_old_confirm_link_cannot_undo_an_unsubscribe(database_url: str) -> None:
    with transaction(database_url) as session:
        pending = request_subscription(session, "wang@qq.com", source="web form")
        link = LINKS.confirm(pending.id)
        unsubscribe_by_token(session, SIGNER, token_of(LINKS.unsubscribe(pending.id)))
    with transaction(database_url) as session, pytest.raises(InvalidToken, match="subscribe again"):
        confirm_by_token(session, SIGNER, token_of(link))
    assert state(database_url, "wang@qq.com")[0] is SubscriberStatus.UNSUBSCRIBED


def test_preferences_by_token(database_url: str) -> None:
    with transaction(database_url) as session:
        wang = add_subscriber(session, "wang@qq.com", openid="oWang").subscriber.id
    with transaction(database_url) as session:
        update_preferences_by_token(
            session,
            SIGNER,
            token_of(LINKS.preferences(wang)),
            channel=ChannelPreference.BOTH,
            format=Variant.TEXT,
        )
    with transaction(database_url) as session:
        subscriber = find_subscriber(session, "wang@qq.com")
        assert (subscriber.channel, subscriber.format) == (ChannelPreference.BOTH, Variant.TEXT)


def test_the_audience_is_filtered_and_read_in_keyset_batches(
    database_url: str, tmp_path: Path
) -> None:
    import_text(
        database_url,
        tmp_path,
        "email,lists,tags,channel,format,openid,attributes\n"
        'a@x.cn,会员快讯,青年,email,full,,"{""城市"": ""杭州"", ""工龄"": 5}"\n'
        'b@x.cn,会员快讯,,wechat,digest,oB,"{""城市"": ""宁波""}"\n'
        "c@x.cn,会员快讯|青年:unsubscribed,青年,both,full,oC,\n"
        "d@x.cn,,,wechat,text,,\n"
        "e@x.cn,青年,女工,both,text,,\n",
    )
    assert audience(database_url) == ["a@x.cn", "b@x.cn", "c@x.cn", "d@x.cn", "e@x.cn"]
    assert audience(database_url, lists=("青年",)) == ["e@x.cn"]
    assert audience(database_url, lists=("会员快讯", "青年")) == [
        "a@x.cn",
        "b@x.cn",
        "c@x.cn",
        "e@x.cn",
    ]
    assert audience(database_url, lists=("没有这个",)) == []
    assert audience(database_url, tags=("青年", "女工")) == ["a@x.cn", "c@x.cn", "e@x.cn"]
    assert audience(database_url, attributes=(("城市", "杭州"),)) == ["a@x.cn"]
    assert audience(database_url, attributes=(("工龄", "5"),)) == ["a@x.cn"]
    assert audience(database_url, channel="email") == ["a@x.cn", "c@x.cn", "e@x.cn"]
    # WeChat needs an openid: d chose WeChat but has none, e chose both but has none.
    assert audience(database_url, channel="wechat") == ["b@x.cn", "c@x.cn"]
    assert audience(database_url, format="text") == ["d@x.cn", "e@x.cn"]
    assert audience(database_url, lists=("会员快讯",), tags=("青年",), channel="email") == [
        "a@x.cn",
        "c@x.cn",
    ]

    with transaction(database_url) as session:
        batches = list(stream_audience(session, Audience(), batch_size=2))
        assert [len(batch) for batch in batches] == [2, 2, 1]
        member = batches[0][0]
        assert (member.email, member.channel, member.format) == (
            "a@x.cn",
            ChannelPreference.EMAIL,
            Variant.FULL,
        )
        resumed = list(stream_audience(session, Audience(), after_id=batches[1][-1].id))
        assert [m.email for batch in resumed for m in batch] == ["e@x.cn"]
