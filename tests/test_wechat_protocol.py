"""The limits of drafts and mass sends, checked before WeChat would refuse them."""

from __future__ import annotations

from dataclasses import replace

import pytest

from distributor.channels.wechat.errcodes import ERRCODES, describe
from distributor.channels.wechat.protocol import (
    DraftArticle,
    ToAll,
    ToOpenids,
    ToTag,
    draft_body,
    mass_body,
    read_followers_page,
)
from distributor.errors import WechatError

ARTICLE = DraftArticle(title="杭州工运 第471期", content="<p>正文</p>", thumb_media_id="M1")


def test_a_draft_body_keeps_chinese_and_sets_every_field() -> None:
    body = draft_body([ARTICLE])
    assert body["articles"] == [
        {
            "article_type": "news",
            "title": "杭州工运 第471期",
            "author": "",
            "content": "<p>正文</p>",
            "content_source_url": "",
            "thumb_media_id": "M1",
            "need_open_comment": 0,
            "only_fans_can_comment": 0,
        }
    ]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"title": "字" * 33}, "title of 33 characters; at most 32"),
        ({"title": " "}, "has no title"),
        ({"author": "作" * 17}, "author of 17 characters; at most 16"),
        ({"digest": "摘" * 121}, "summary of 121 characters; at most 120"),
        ({"content": "文" * 20_000}, "20,000 characters of content"),
        ({"content": ""}, "has no content"),
        ({"content_source_url": "https://x.org/" + "a" * 1020}, "link longer than 1 KB"),
        ({"thumb_media_id": ""}, "has no cover image"),
    ],
)
def test_each_draft_limit_is_refused_in_plain_words(change: dict[str, str], words: str) -> None:
    with pytest.raises(WechatError, match=words):
        draft_body([replace(ARTICLE, **change)])


def test_the_limits_themselves_pass() -> None:
    edge = replace(
        ARTICLE, title="字" * 32, author="作" * 16, digest="摘" * 120, content="文" * 19_999
    )
    assert draft_body([edge])["articles"][0]["digest"] == "摘" * 120


def test_a_draft_holds_one_to_eight_articles() -> None:
    assert len(draft_body([ARTICLE] * 8)["articles"]) == 8
    for count in (0, 9):
        with pytest.raises(WechatError, match=f"1 to 8 articles, not {count}"):
            draft_body([ARTICLE] * count)


def test_mass_bodies_by_audience() -> None:
    api, body = mass_body("D", ToAll(), "issue-471")
    assert api == "message/mass/sendall"
    assert body["filter"] == {"is_to_all": True}
    assert body["clientmsgid"] == "issue-471"
    assert body["mpnews"] == {"media_id": "D"} and body["msgtype"] == "mpnews"
    api, body = mass_body("D", ToTag(134), "issue-471-tag")
    assert (api, body["filter"]) == ("message/mass/sendall", {"is_to_all": False, "tag_id": 134})
    api, body = mass_body("D", ToOpenids(("o1", "o2")), "issue-471-1")
    assert (api, body["touser"]) == ("message/mass/send", ["o1", "o2"])


@pytest.mark.parametrize("count", [1, 10_001])
def test_an_openid_list_is_two_to_ten_thousand(count: int) -> None:
    with pytest.raises(WechatError, match="2 to 10,000 followers"):
        mass_body("D", ToOpenids(tuple(f"o{n}" for n in range(count))), "c")


def test_a_clientmsgid_is_at_most_64_bytes() -> None:
    mass_body("D", ToAll(), "期" * 21)  # 63 bytes
    with pytest.raises(WechatError, match="1 to 64 bytes, not 66"):
        mass_body("D", ToAll(), "期" * 22)


def test_the_last_followers_page_is_empty() -> None:
    assert read_followers_page({"total": 3, "count": 0, "next_openid": ""}).openids == ()
    page = read_followers_page({"count": 1, "data": {"openid": ["o1"]}, "next_openid": "o1"})
    assert (page.openids, page.next_openid, page.total) == (("o1",), "o1", None)


def test_every_errcode_has_a_meaning_and_an_action() -> None:
    for errcode, known in ERRCODES.items():
        assert known.meaning and known.action, errcode
        assert f"(errcode {errcode}): {known.meaning}." in describe(errcode, "x", "draft/add")
    unknown = describe(99999, "something odd rid: 1f", "draft/add")
    assert "99999, which we do not know" in unknown and "something odd" in unknown
