"""The WeChat client against the local sandbox, over real HTTP on loopback.

Every errcode path: a refused token is refreshed and the call tried once more; a request to slow
down waits or is handed to the caller with its wait; every other errcode is a WechatError that
says what it means and what to do. Mass sends are safe to repeat through their clientmsgid.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from distributor.channels.wechat.client import Backoff, WechatClient
from distributor.channels.wechat.errcodes import (
    BACKOFF_ERRCODES,
    CLIENTMSGID_EXISTS,
    ERRCODES,
    TOKEN_ERRCODES,
)
from distributor.channels.wechat.protocol import DraftArticle, MassStatus, ToAll, ToOpenids, ToTag
from distributor.devservers.wechat_sandbox import Fault, SandboxConfig, SandboxServer
from distributor.errors import WechatError, WechatRateLimited, WechatUnavailable
from tests.support.wechat import JPEG, PNG, FakeClock, client_for, settings_for
from tests.support.wechat import sandbox as sandbox  # the fixture

PLAIN_ERRCODES = sorted(
    set(ERRCODES) - TOKEN_ERRCODES - BACKOFF_ERRCODES - {CLIENTMSGID_EXISTS, -1}
)


@pytest.fixture
def client(sandbox: SandboxServer, sqlite_url: str) -> Iterator[WechatClient]:
    with client_for(sandbox, sqlite_url) as client:
        yield client


def wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def make_draft(client: WechatClient, title: str = "杭州工运 第471期") -> str:
    image = client.upload_image(PNG, "figure.png", "image/png")
    cover = client.add_material(JPEG, "cover.jpg", "image/jpeg")
    article = DraftArticle(
        title=title,
        author="杭州工运",
        digest="本期要闻",
        content=f'<p>正文</p><img src="{image}"><img src="https://example.org/x.png">',
        content_source_url="https://news.example-union.org/issues/471",
        thumb_media_id=cover.media_id,
    )
    return client.add_draft([article])


# The publishing path.


def test_an_issue_goes_from_images_to_a_finished_mass_send(
    client: WechatClient, sandbox: SandboxServer
) -> None:
    sandbox.sandbox.add_followers(5)
    media_id = make_draft(client)
    stored = sandbox.sandbox.drafts[media_id].articles[0]
    assert stored["title"] == "杭州工运 第471期"  # raw UTF-8 reached WeChat, not \\u escapes
    assert "mmbiz.qpic.cn" in stored["content"] and "example.org" not in stored["content"]

    job = client.mass_send(media_id, ToAll(), "issue-471-all")
    assert isinstance(job.msg_id, int) and job.msg_id > 2**31 and not job.existing
    assert client.mass_status(job.msg_id) is MassStatus.SENDING
    wait_for(lambda: client.mass_status(job.msg_id) is MassStatus.SEND_SUCCESS)
    assert sandbox.sandbox.jobs[job.msg_id].audience == sandbox.sandbox.followers


def test_a_preview_does_not_use_the_draft(client: WechatClient, sandbox: SandboxServer) -> None:
    staff = sandbox.sandbox.add_followers(2)[0]
    media_id = make_draft(client)
    assert isinstance(client.preview(media_id, openid=staff), int)
    assert isinstance(client.preview(media_id, wxname="union-staff"), int)
    job = client.mass_send(media_id, ToAll(), "after-preview")  # the draft is still there
    assert list(sandbox.sandbox.jobs) == [job.msg_id]


def test_a_draft_is_used_up_by_its_mass_send(client: WechatClient, sandbox: SandboxServer) -> None:
    sandbox.sandbox.add_followers(2)
    media_id = make_draft(client)
    client.mass_send(media_id, ToAll(), "first")
    with pytest.raises(WechatError) as refused:
        client.mass_send(media_id, ToAll(), "second")
    assert refused.value.errcode == 40007
    assert "used up by one mass send" in refused.value.message


def test_send_to_a_tag_and_to_an_openid_list(client: WechatClient, sandbox: SandboxServer) -> None:
    members = sandbox.sandbox.add_followers(4)
    tag_id = sandbox.sandbox.add_tag("工会干部", members[:2])
    assert (tag_id, "工会干部", 2) in [(tag.id, tag.name, tag.count) for tag in client.tags()]
    by_tag = client.mass_send(make_draft(client), ToTag(tag_id), "issue-471-tag")
    by_list = client.mass_send(make_draft(client), ToOpenids(tuple(members[2:])), "issue-471-1")
    assert sandbox.sandbox.jobs[int(by_tag.msg_id)].audience == members[:2]
    assert sandbox.sandbox.jobs[int(by_list.msg_id)].audience == members[2:]


def test_an_openid_list_needs_a_service_account(sqlite_url: str) -> None:
    config = SandboxConfig(account_type="subscription")
    with SandboxServer(config) as server, client_for(server, sqlite_url) as client:
        with pytest.raises(WechatError, match="needs a certified service account"):
            client.mass_send("D", ToOpenids(("o1", "o2")), "c")
        assert "message/mass/send" not in server.sandbox.calls


def test_a_subscription_account_sends_once_a_day(sqlite_url: str) -> None:
    with SandboxServer(SandboxConfig(account_type="subscription")) as server:
        server.sandbox.add_followers(2)
        with client_for(server, sqlite_url) as client:
            client.mass_send(make_draft(client), ToAll(), "monday")
            with pytest.raises(WechatError) as refused:
                client.mass_send(make_draft(client), ToAll(), "monday-again")
        assert refused.value.errcode == 45028
        assert "one mass send a day" in refused.value.message


def test_the_sandbox_keeps_the_touser_bounds(client: WechatClient, sandbox: SandboxServer) -> None:
    """Past the client's own check: the fake must refuse what WeChat refuses."""
    followers = sandbox.sandbox.add_followers(3)
    token = client.tokens.current()
    url = f"{sandbox.url}/cgi-bin/message/mass/send?access_token={token}"
    body = {"mpnews": {"media_id": "D"}, "msgtype": "mpnews", "clientmsgid": "x"}
    for touser, errcode in (
        (followers[:1], 40130),
        (followers * 3334, 40032),
        ([*followers[:1], "o" * 28], 40003),
    ):
        answer = httpx.post(url, json={**body, "touser": touser}).json()
        assert answer["errcode"] == errcode
        assert " rid: " in answer["errmsg"]


# clientmsgid: a mass send is made once however often it is asked for.


def test_a_repeated_mass_send_returns_the_job_already_made(sqlite_url: str) -> None:
    clock = FakeClock()
    with SandboxServer(SandboxConfig(clock=clock, job_finish_delay=0.1)) as server:
        server.sandbox.add_followers(2)
        with client_for(server, sqlite_url) as client:
            job = client.mass_send(make_draft(client), ToAll(), "issue-471-all")
            with pytest.raises(WechatRateLimited) as too_fast:  # within a minute: 45066
                client.mass_send(make_draft(client), ToAll(), "issue-471-all")
            assert (too_fast.value.errcode, too_fast.value.retry_after) == (45066, 60.0)
            clock.advance(61)
            again = client.mass_send(make_draft(client), ToAll(), "issue-471-all")
        assert (again.msg_id, again.existing) == (job.msg_id, True)
        assert list(server.sandbox.jobs) == [job.msg_id]


def test_a_send_whose_answer_never_came_is_not_made_twice(sqlite_url: str) -> None:
    config = SandboxConfig(clientmsgid_retry_window=1.0, job_finish_delay=0.1)
    with SandboxServer(config) as server:
        server.sandbox.add_followers(2)
        backoff = Backoff(max_wait=2.0, minute_seconds=1.0)
        with client_for(server, sqlite_url, timeout=0.3, backoff=backoff) as client:
            media_id = make_draft(client)
            server.sandbox.inject("message/mass/sendall", Fault(delay=1.5))
            with pytest.raises(WechatUnavailable, match="may have been carried out"):
                client.mass_send(media_id, ToAll(), "issue-471-all")
            assert len(server.sandbox.jobs) == 1  # WeChat made it; we never heard
            # The retry: 45066 (too soon), a wait, then 45065 and the job already made.
            job = client.mass_send(media_id, ToAll(), "issue-471-all")
        assert job.existing and [job.msg_id] == list(server.sandbox.jobs)
        assert server.sandbox.calls["message/mass/sendall"] == 3


def test_a_new_batch_with_its_own_clientmsgid_is_a_new_job(
    client: WechatClient, sandbox: SandboxServer
) -> None:
    followers = sandbox.sandbox.add_followers(4)
    first = client.mass_send(make_draft(client), ToOpenids(tuple(followers[:2])), "471-batch-1")
    second = client.mass_send(make_draft(client), ToOpenids(tuple(followers[2:])), "471-batch-2")
    assert first.msg_id != second.msg_id and not second.existing


# The access token.


def test_workers_of_one_process_share_one_token(sandbox: SandboxServer, sqlite_url: str) -> None:
    with client_for(sandbox, sqlite_url) as first, client_for(sandbox, sqlite_url) as second:
        first.tags()
        second.tags()
    assert sandbox.sandbox.tokens_issued == 1
    assert list(sandbox.sandbox.token_uses.values()) == [2]


def test_the_token_is_refreshed_before_it_expires(sqlite_url: str) -> None:
    clock = FakeClock()
    with SandboxServer(SandboxConfig(clock=clock)) as server:
        with client_for(server, sqlite_url, clock=clock) as client:
            client.tags()
            clock.advance(7200 - 200)  # 200 s left: within the 300 s margin
            client.tags()
        assert server.sandbox.tokens_issued == 2
        assert server.sandbox.calls["tags/get"] == 2  # no call was refused on the way
        assert client.tokens.fetches == 2


def test_a_stable_token_handed_back_with_little_life_is_used_without_asking_again(
    sqlite_url: str,
) -> None:
    clock = FakeClock()
    with SandboxServer(SandboxConfig(clock=clock, stable_rotate_window=100)) as server:
        with client_for(server, sqlite_url, clock=clock) as client:
            client.tags()
            clock.advance(7000)  # 200 s left: WeChat gives the same token back
            client.tags()
            client.tags()
            assert (client.tokens.fetches, server.sandbox.tokens_issued) == (2, 1)
            clock.advance(100)  # half of what was left: ask again, and WeChat rotates it
            client.tags()
        assert (client.tokens.fetches, server.sandbox.tokens_issued) == (3, 2)


def test_an_expired_token_is_refreshed_and_the_call_made_again(
    client: WechatClient, sandbox: SandboxServer
) -> None:
    client.tags()
    sandbox.sandbox.expire_tokens()
    client.tags()
    assert sandbox.sandbox.calls["tags/get"] == 3
    assert sandbox.sandbox.tokens_issued == 2


def test_a_token_replaced_elsewhere_is_fetched_without_force(
    client: WechatClient, sandbox: SandboxServer
) -> None:
    """Another system forced a new stable token: ours answers 40001, WeChat's current one is
    fetched in the normal way and no force refresh of ours cuts the other system off."""
    client.tags()
    config = sandbox.sandbox.config
    httpx.post(
        f"{sandbox.url}/cgi-bin/stable_token",
        json={
            "grant_type": "client_credential",
            "appid": config.app_id,
            "secret": config.app_secret,
            "force_refresh": True,
        },
    ).raise_for_status()
    client.tags()
    assert len(sandbox.sandbox.force_refreshes) == 1
    assert sandbox.sandbox.calls["tags/get"] == 3


@pytest.mark.parametrize("errcode", sorted(TOKEN_ERRCODES))
def test_a_refused_token_is_replaced_once(
    client: WechatClient, sandbox: SandboxServer, errcode: int
) -> None:
    client.tags()
    stale = client.tokens.current()
    sandbox.sandbox.inject("tags/get", Fault(errcode=errcode))
    client.tags()
    assert client.tokens.current() != stale
    sandbox.sandbox.inject("tags/get", Fault(errcode=errcode, times=2))
    with pytest.raises(WechatError) as refused:
        client.tags()
    assert refused.value.errcode == errcode
    assert sandbox.sandbox.calls["tags/get"] == 5


@pytest.mark.parametrize("stable", [Fault(errcode=48001), None])
def test_the_classic_token_stands_in_where_stable_token_is_missing(
    sqlite_url: str, stable: Fault | None
) -> None:
    with SandboxServer(SandboxConfig(stable_token_enabled=stable is not None)) as server:
        if stable is not None:
            server.sandbox.inject("stable_token", stable)
        with client_for(server, sqlite_url) as client:
            client.tags()
            server.sandbox.expire_tokens()
            client.tags()
        assert server.sandbox.calls["stable_token"] == 1
        assert server.sandbox.calls["token"] == 2


def test_wrong_credentials_say_where_to_find_the_right_ones(
    sandbox: SandboxServer, sqlite_url: str
) -> None:
    settings = settings_for(sandbox, sqlite_url, wechat_app_secret="an-old-secret")
    with WechatClient.from_settings(settings) as client, pytest.raises(WechatError) as refused:
        client.tags()
    assert refused.value.errcode == 40125
    assert "Reset the AppSecret" in refused.value.message


# Slowing down.


def test_a_minute_quota_is_waited_out(sandbox: SandboxServer, sqlite_url: str) -> None:
    backoff = Backoff(max_wait=1.0, attempts=2, minute_seconds=0.05)
    with client_for(sandbox, sqlite_url, backoff=backoff) as client:
        sandbox.sandbox.inject("tags/get", Fault(errcode=45011, times=2))
        client.tags()
        assert sandbox.sandbox.calls["tags/get"] == 3
        sandbox.sandbox.inject("tags/get", Fault(errcode=45011, times=3))
        with pytest.raises(WechatRateLimited) as limited:
            client.tags()
    assert (limited.value.errcode, limited.value.retry_after) == (45011, 0.05)
    assert "tried again the next minute" in limited.value.message


def test_the_sandbox_allows_60_mass_calls_a_minute(sqlite_url: str) -> None:
    with SandboxServer(SandboxConfig(mass_per_minute=3)) as server:
        with client_for(server, sqlite_url) as client:
            for _ in range(3):
                client.mass_speed()
            with pytest.raises(WechatRateLimited) as limited:  # waits are the caller's
                client.mass_speed()
        assert (limited.value.errcode, limited.value.retry_after) == (45011, 60.0)


def test_a_daily_quota_waits_until_midnight_in_beijing(
    client: WechatClient, sandbox: SandboxServer
) -> None:
    sandbox.sandbox.inject("tags/get", Fault(errcode=45009))
    with pytest.raises(WechatRateLimited) as limited:
        client.tags()
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert abs(limited.value.retry_after - (midnight - now).total_seconds()) < 5
    assert "midnight (Beijing time)" in limited.value.message


# Every other errcode: a WechatError in plain words.


def test_every_other_errcode_is_explained(client: WechatClient, sandbox: SandboxServer) -> None:
    client.tags()
    for errcode in PLAIN_ERRCODES:
        sandbox.sandbox.inject("tags/get", Fault(errcode=errcode))
        with pytest.raises(WechatError) as refused:
            client.tags()
        error, known = refused.value, ERRCODES[errcode]
        assert type(error) is WechatError and error.errcode == errcode
        assert error.message == f"WeChat refused tags/get (errcode {errcode}): " + (
            f"{known.meaning}. {known.action}"
        )
    assert sandbox.sandbox.calls["tags/get"] == 1 + len(PLAIN_ERRCODES)


def test_a_busy_wechat_and_an_unknown_errcode(client: WechatClient, sandbox: SandboxServer) -> None:
    sandbox.sandbox.inject("tags/get", Fault(errcode=-1, errmsg="system error"))
    with pytest.raises(WechatUnavailable, match=r"\(errcode -1\): WeChat is busy"):
        client.tags()
    sandbox.sandbox.inject("tags/get", Fault(errcode=61451, errmsg="invalid parameter"))
    with pytest.raises(WechatError, match=r"61451, which we do not know .*invalid parameter rid"):
        client.tags()


def test_no_answer_in_time(sandbox: SandboxServer, sqlite_url: str) -> None:
    with client_for(sandbox, sqlite_url, timeout=0.3) as client:
        client.tags()
        sandbox.sandbox.inject("tags/get", Fault(delay=1.0))
        with pytest.raises(WechatUnavailable, match=r"did not answer tags/get within 0\.3 s"):
            client.tags()


# Followers.


def test_followers_are_read_over_pages(client: WechatClient, sandbox: SandboxServer) -> None:
    sandbox.sandbox.add_followers(25_000)
    assert client.followers_page().total == 25_000
    assert list(client.followers()) == sandbox.sandbox.followers
    assert sandbox.sandbox.calls["user/get"] == 1 + 4  # 3 pages and the empty last one
    tag_id = sandbox.sandbox.add_tag("会员", sandbox.sandbox.followers[5_000:17_000])
    assert list(client.tag_followers(tag_id)) == sandbox.sandbox.followers[5_000:17_000]
    assert sandbox.sandbox.calls["user/tag/get"] == 3
