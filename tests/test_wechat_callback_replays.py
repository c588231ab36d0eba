"""No outsider changes a reader through the WeChat callback URL: a signed request seen once (proxy
logs keep query strings) is refused when replayed, by any web process; timestamps are whole
seconds (``nan``, ``inf``, ``1e99`` refused); in safe mode the body is encrypted and covered by
``msg_signature``. Real web server, real WeChat sandbox posting its own events, SQLite and
PostgreSQL.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.channels.wechat.models import WechatCallbackNonce
from distributor.channels.wechat.replays import take_once
from distributor.db import session_factory, transaction
from distributor.devservers.ports import free_port
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
from distributor.web.app import create_app
from distributor.web.wechat_callback import CALLBACK_PATH
from distributor.wechat.jobs import send_wechat
from distributor.wechat.models import WechatJob, WechatJobState
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.polling import wait_until
from tests.support.sending import import_sample
from tests.support.web import serving, web_settings
from tests.support.wechat import settings_for
from tests.support.wechat_sends import jobs_of, started_wechat_send, synced

TOKEN = "callback-token-replays"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters


@dataclass
class Site:
    url: str  # the database
    endpoint: str
    wechat: SandboxServer
    job: WechatJob  # finished by the sandbox's own signed event, through the web server


def finished_send(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path, **env: str
) -> Iterator[Site]:
    """A WeChat send whose one job WeChat (the sandbox) reported done to our web server."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}{CALLBACK_PATH}"
    wechat.sandbox.config.callback_url = endpoint
    wechat.sandbox.config.callback_token = TOKEN
    client = synced(wechat, database_url, 3)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_wechat_send(database_url, issue_id)
    app = create_app(web_settings(database_url, WECHAT_CALLBACK_TOKEN=TOKEN, **env))
    with serving(app, port):
        send_wechat(
            session_factory(database_url), client, send_id, settings_for(wechat, database_url)
        )
        [job] = wait_until(
            lambda: jobs_of(database_url, send_id),
            lambda jobs: jobs[0].state is WechatJobState.SUCCEEDED,
            timeout=15,
            what="the sandbox's MASSSENDJOBFINISH recorded",
        )
        # The sandbox notes its attempt once our answer is back, a moment after the row commits.
        wait_until(
            lambda: list(wechat.sandbox.callback_attempts),
            bool,
            timeout=15,
            what="the sandbox's note of its callback attempt",
        )
        yield Site(database_url, endpoint, wechat, job)
    client.close()


def finish_event(msg_id: str, status: str) -> bytes:
    return (
        "<xml><ToUserName>gh_x</ToUserName><FromUserName>mphelper</FromUserName>"
        "<CreateTime>1481013459</CreateTime><MsgType>event</MsgType>"
        f"<Event>MASSSENDJOBFINISH</Event><MsgID>{msg_id}</MsgID><Status>{status}</Status>"
        "<TotalCount>3</TotalCount><FilterCount>0</FilterCount><SentCount>0</SentCount>"
        "<ErrorCount>3</ErrorCount></xml>"
    ).encode()


def unfollow_event(openid: str) -> bytes:
    return (
        f"<xml><ToUserName>gh_x</ToUserName><FromUserName>{openid}</FromUserName>"
        "<CreateTime>1481013459</CreateTime><MsgType>event</MsgType>"
        "<Event>unsubscribe</Event></xml>"
    ).encode()


def refusal(site: Site, params: dict[str, str], body: bytes) -> str:
    """What the web server answers a callback it refuses (403)."""
    answer = httpx.post(site.endpoint, params=params, content=body)
    assert answer.status_code == 403, answer.text
    return answer.text


def job_now(site: Site) -> WechatJob:
    [job] = jobs_of(site.url, site.job.send_id)
    return job


def followers(url: str) -> list[str | None]:
    with transaction(url) as session:
        return list(
            session.scalars(
                select(Subscriber.openid)
                .where(Subscriber.status == SubscriberStatus.ACTIVE)
                .order_by(Subscriber.id)
            )
        )


@pytest.fixture
def plain(database_url: str, sample_issue_path: Path) -> Iterator[Site]:
    with SandboxServer(SandboxConfig(job_finish_delay=0.2)) as wechat:
        yield from finished_send(wechat, database_url, sample_issue_path)


@pytest.fixture
def safe(database_url: str, sample_issue_path: Path) -> Iterator[Site]:
    config = SandboxConfig(job_finish_delay=0.2, encoding_aes_key=AES_KEY)
    with SandboxServer(config) as wechat:
        yield from finished_send(
            wechat,
            database_url,
            sample_issue_path,
            WECHAT_ENCODING_AES_KEY=AES_KEY,
            WECHAT_APP_ID=config.app_id,
        )


def test_a_callback_url_seen_once_cannot_be_replayed_with_another_body(plain: Site) -> None:
    [seen] = [attempt.query for attempt in plain.wechat.sandbox.callback_attempts]
    before = followers(plain.url)
    for forged in (
        finish_event(str(plain.job.msg_id), "err(30003)"),
        unfollow_event(before[0] or ""),
    ):
        assert refusal(plain, seen, forged) == "this WeChat callback was taken already (a replay)"
    job = job_now(plain)
    assert (job.state, job.wechat_status, job.sent, job.errors) == (
        WechatJobState.SUCCEEDED,
        "send success",
        3,
        0,
    )
    assert followers(plain.url) == before

    # WeChat's own next event (a follower leaving) is taken: fresh nonce, and it acts.
    plain.wechat.sandbox.unfollow(before[0] or "")
    assert plain.wechat.sandbox.callback_attempts[-1].status_code == 200
    assert followers(plain.url) == before[1:]


def test_a_replay_to_another_web_process_is_refused_too(plain: Site) -> None:
    """Two web processes on one database: what one took, the other refuses."""
    other = create_app(web_settings(plain.url, WECHAT_CALLBACK_TOKEN=TOKEN))
    params, body = plain.wechat.sandbox.signed_callback(TOKEN, unfollow_event("oNobody"))
    first = httpx.post(plain.endpoint, params=params, content=body)
    with TestClient(other) as client:
        again = client.post(CALLBACK_PATH, params=params, content=body)
    assert (first.status_code, again.status_code) == (200, 403)


@pytest.mark.parametrize(
    "timestamp", ["nan", "inf", "-inf", "1e99", "99999999999999999999", "１２"]
)
def test_a_timestamp_that_is_not_whole_seconds_is_refused(plain: Site, timestamp: str) -> None:
    params, body = plain.wechat.sandbox.signed_callback(
        TOKEN, finish_event(str(plain.job.msg_id), "err(30003)"), timestamp=timestamp
    )
    assert "is not a whole number of seconds" in refusal(plain, params, body)
    assert job_now(plain).state is WechatJobState.SUCCEEDED


def test_taken_callbacks_are_forgotten_once_out_of_the_window(sqlite_url: str) -> None:
    now = time.time()
    with transaction(sqlite_url) as session:
        assert take_once(session, "1:a", now + 300, now=now)
        assert not take_once(session, "1:a", now + 300, now=now)
        assert take_once(session, "2:b", now + 600, now=now + 301)  # 1:a is dropped here
        left = session.scalars(select(WechatCallbackNonce.key)).all()
    assert left == ["2:b"]


def test_safe_mode_takes_the_sandboxs_encrypted_events_and_nothing_else(safe: Site) -> None:
    sandbox = safe.wechat.sandbox
    # The job's end, encrypted by the sandbox, was read (see the fixture); a follower leaves.
    before = followers(safe.url)
    sandbox.unfollow(before[0] or "")
    assert sandbox.callback_attempts[-1].status_code == 200
    assert followers(safe.url) == before[1:]

    forged = finish_event(str(safe.job.msg_id), "err(30003)")
    # A plain body, correctly signed: refused, in safe mode anyone with a URL could write one.
    sandbox.config.encoding_aes_key = ""
    params, body = sandbox.signed_callback(TOKEN, forged)
    assert refusal(safe, params, body) == (
        "the WeChat callback is not encrypted, and safe mode (WECHAT_ENCODING_AES_KEY) is on"
    )
    # A fresh signed URL (never used) with another encrypted body: msg_signature does not match.
    sandbox.config.encoding_aes_key = AES_KEY
    params, _ = sandbox.signed_callback(TOKEN, unfollow_event(before[1] or ""))
    _, other_body = sandbox.signed_callback(TOKEN, forged)
    assert refusal(safe, params, other_body) == (
        "the WeChat callback msg_signature does not match its body"
    )
    # Encrypted for another account.
    sandbox.config.app_id = "wx0000000000000000"
    params, body = sandbox.signed_callback(TOKEN, forged)
    assert refusal(safe, params, body) == "the WeChat callback is encrypted for another AppID"
    job = job_now(safe)
    assert (job.state, job.wechat_status) == (WechatJobState.SUCCEEDED, "send success")
    assert followers(safe.url) == before[1:]
    with transaction(safe.url) as session:  # only what was taken is remembered
        assert session.scalar(select(func.count()).select_from(WechatCallbackNonce)) == 2
