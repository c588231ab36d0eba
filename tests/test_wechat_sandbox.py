"""The sandbox itself: it must refuse what WeChat refuses, and be steerable over HTTP."""

from __future__ import annotations

import json

import httpx

from distributor.devservers.wechat_sandbox import SandboxServer
from tests.support.wechat import JPEG
from tests.support.wechat import sandbox as sandbox  # the fixture


def token(server: SandboxServer) -> str:
    config = server.sandbox.config
    answer = httpx.get(
        f"{server.url}/cgi-bin/token",
        params={
            "grant_type": "client_credential",
            "appid": config.app_id,
            "secret": config.app_secret,
        },
    ).json()
    return str(answer["access_token"])


def test_drafts_are_held_to_the_limits(sandbox: SandboxServer) -> None:
    access = token(sandbox)
    cover = httpx.post(
        f"{sandbox.url}/cgi-bin/material/add_material",
        params={"access_token": access, "type": "thumb"},
        files={"media": ("cover.jpg", JPEG, "image/jpeg")},
    ).json()["media_id"]
    article = {"title": "标题", "content": "<p>正文</p>", "thumb_media_id": cover}
    url = f"{sandbox.url}/cgi-bin/draft/add?access_token={access}"
    for change, errcode in (
        ({"title": "字" * 33}, 45003),
        ({"author": "作" * 17}, 45110),
        ({"digest": "摘" * 121}, 45004),
        ({"content": "文" * 20_000}, 45002),
        ({"thumb_media_id": "not-a-material"}, 40007),
    ):
        answer = httpx.post(url, json={"articles": [{**article, **change}]}).json()
        assert answer["errcode"] == errcode, change
    escaped = json.dumps({"articles": [article]}, ensure_ascii=True)
    assert httpx.post(url, content=escaped).json()["errcode"] == 40033
    raw = json.dumps({"articles": [article]}, ensure_ascii=False).encode()
    assert "media_id" in httpx.post(url, content=raw).json()


def test_the_steering_routes(sandbox: SandboxServer) -> None:
    base = f"{sandbox.url}/sandbox"
    assert httpx.post(f"{base}/followers", json={"count": 4, "tag": "会员"}).json() == {
        "added": 4,
        "tag_id": 100,
    }
    access = token(sandbox)
    httpx.post(f"{base}/faults", json={"api": "tags/get", "errcode": 45009})
    assert (
        httpx.get(f"{sandbox.url}/cgi-bin/tags/get?access_token={access}").json()["errcode"]
        == 45009
    )
    httpx.post(f"{base}/tokens/expire")
    assert (
        httpx.get(f"{sandbox.url}/cgi-bin/tags/get?access_token={access}").json()["errcode"]
        == 42001
    )
    httpx.post(f"{base}/callback", json={"url": "http://127.0.0.1:9/cb", "token": "t"})
    assert sandbox.sandbox.config.callback_url == "http://127.0.0.1:9/cb"
    state = httpx.get(f"{base}/state").json()
    assert (state["followers"], state["tokens_issued"], state["calls"]["tags/get"]) == (4, 1, 2)


def test_an_unfollow_leaves_the_followers_and_tags_and_posts_its_event(
    sandbox: SandboxServer,
) -> None:
    base = f"{sandbox.url}/sandbox"
    httpx.post(f"{base}/followers", json={"count": 3, "tag": "会员"})
    gone, *kept = sandbox.sandbox.followers
    httpx.post(f"{base}/callback", json={"url": "http://127.0.0.1:9/cb", "token": "t"})
    answer = httpx.post(f"{base}/followers/unfollow", json={"openid": gone})
    assert answer.json() == {"unfollowed": gone}
    assert sandbox.sandbox.followers == kept and sandbox.sandbox.tags[100][1] == kept
    access = token(sandbox)
    listed = httpx.get(f"{sandbox.url}/cgi-bin/user/get?access_token={access}").json()
    assert listed["data"]["openid"] == kept
    # Its event was posted to the callback URL (nobody listens there: three tries, no answer).
    attempts = sandbox.sandbox.callback_attempts
    assert [(a.msg_id, a.status_code) for a in attempts] == [(0, None)] * 3
    again = httpx.post(f"{base}/followers/unfollow", json={"openid": gone})
    assert again.status_code == 404
