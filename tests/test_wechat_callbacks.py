"""What WeChat posts back: the signature check and the MASSSENDJOBFINISH event, parsed safely.

The receiver here is a stand-in for the web endpoint (which comes later): it uses the same pure
functions, and the sandbox posts to it over HTTP as WeChat would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from distributor.channels.wechat.callbacks import (
    MassJobFinished,
    Unfollowed,
    aes_key,
    callback_signature,
    open_safe_mode,
    parse_mass_job_finished,
    parse_unfollowed,
    verify_signature,
)
from distributor.channels.wechat.protocol import ToAll
from distributor.devservers.wechat_sandbox import (
    Sandbox,
    SandboxConfig,
    SandboxServer,
    ThreadedServer,
)
from distributor.errors import InvalidWechatCallback
from tests.support.wechat import client_for
from tests.test_wechat_client import make_draft, wait_for

TOKEN = "union-callback-token"

# The documented example event (trimmed of the copyright check, which we do not read).
EVENT = b"""<xml>
  <ToUserName><![CDATA[gh_4d00ed8d6399]]></ToUserName>
  <FromUserName><![CDATA[oV5CrjpxgaGXNHIQigzNlgLTnwic]]></FromUserName>
  <CreateTime>1481013459</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[MASSSENDJOBFINISH]]></Event>
  <MsgID>1000001625</MsgID>
  <Status><![CDATA[send success]]></Status>
  <TotalCount>100</TotalCount>
  <FilterCount>80</FilterCount>
  <SentCount>75</SentCount>
  <ErrorCount>5</ErrorCount>
  <ArticleUrlResult>
    <Count>1</Count>
    <ResultList><item><ArticleIdx>1</ArticleIdx><ArticleUrl><![CDATA[Url]]></ArticleUrl></item>
    </ResultList>
  </ArticleUrlResult>
</xml>"""


UNFOLLOWED = b"""<xml><ToUserName><![CDATA[gh_4d00ed8d6399]]></ToUserName>
<FromUserName><![CDATA[oV5CrjpxgaGXNHIQigzNlgLTnwic]]></FromUserName>
<CreateTime>1481013459</CreateTime><MsgType><![CDATA[event]]></MsgType>
<Event><![CDATA[unsubscribe]]></Event></xml>"""


def test_an_unfollow_event_names_the_follower_and_no_other_event_passes_for_one() -> None:
    assert parse_unfollowed(UNFOLLOWED) == Unfollowed("oV5CrjpxgaGXNHIQigzNlgLTnwic", 1481013459)
    with pytest.raises(InvalidWechatCallback, match="'MASSSENDJOBFINISH', not unsubscribe"):
        parse_unfollowed(EVENT)
    with pytest.raises(InvalidWechatCallback, match="names no <FromUserName>"):
        parse_unfollowed(UNFOLLOWED.replace(b"oV5CrjpxgaGXNHIQigzNlgLTnwic", b" "))


def test_the_documented_event_is_read() -> None:
    event = parse_mass_job_finished(EVENT)
    assert event == MassJobFinished(
        msg_id=1000001625,
        status="send success",
        total=100,
        filtered=80,
        sent=75,
        errors=5,
        article_urls=("Url",),
        created_at=1481013459,
    )
    assert event.succeeded and event.reason == ""


def test_a_stopped_send_says_why() -> None:
    event = parse_mass_job_finished(EVENT.replace(b"send success", b"err(30003)"))
    assert not event.succeeded
    assert event.reason == "judged to be a reprint, and the send was set to stop in that case"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (  # a billion laughs: entity expansion
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><xml><Status>&b;</Status></xml>',
            "refused: DTDForbidden",
        ),
        (  # an external entity reading a local file
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            b"<xml><Status>&x;</Status></xml>",
            "refused: DTDForbidden",
        ),
        (b"<xml><MsgID>1", "not XML"),
        (b"<html><body/></html>", "is <html>, not <xml>"),
        (b"<xml>" + b" " * 70_000 + b"</xml>", "too large"),
        (
            EVENT.replace(b"MASSSENDJOBFINISH", b"TEMPLATESENDJOBFINISH"),
            "is 'TEMPLATESENDJOBFINISH', not MASSSENDJOBFINISH",
        ),
        (EVENT.replace(b"<SentCount>75", b"<SentCount>many"), "no whole number in <SentCount>"),
    ],
)
def test_unsafe_or_wrong_bodies_are_refused(body: bytes, words: str) -> None:
    with pytest.raises(InvalidWechatCallback, match=words):
        parse_mass_job_finished(body)


def test_an_entity_without_a_dtd_is_not_expanded() -> None:
    with pytest.raises(InvalidWechatCallback, match="not XML"):
        parse_mass_job_finished(EVENT.replace(b"<TotalCount>100", b"<TotalCount>&lol;"))


def test_the_signature_is_sha1_of_the_sorted_values() -> None:
    # sorted: "1481013459" < "union-callback-token" < "xyz"
    assert callback_signature(TOKEN, "1481013459", "xyz") == (
        hashlib.sha1(b"1481013459union-callback-tokenxyz").hexdigest()
    )
    now = 1481013459.0
    signature = callback_signature(TOKEN, "1481013459", "xyz")
    verify_signature(TOKEN, signature, "1481013459", "xyz", now=now)
    verify_signature(TOKEN, signature.upper(), "1481013459", "xyz", now=now)


@pytest.mark.parametrize(
    ("token", "timestamp", "nonce", "now", "words"),
    [
        ("another-token", "1481013459", "xyz", 1481013459.0, "signature does not match"),
        (TOKEN, "1481013459", "abc", 1481013459.0, "signature does not match"),
        (TOKEN, "1481013459", "xyz", 1481013459.0 + 301, "more than 300 s off"),
    ],
)
def test_a_wrong_or_stale_signature_is_refused(
    token: str, timestamp: str, nonce: str, now: float, words: str
) -> None:
    signature = callback_signature(token, "1481013459", "xyz")
    with pytest.raises(InvalidWechatCallback, match=words):
        verify_signature(TOKEN, signature, timestamp, nonce, now=now)


class Receiver:
    """The callback endpoint's stand-in: verifies, parses, records; may fail on purpose."""

    def __init__(self, token: str, failures: int = 0) -> None:
        self.events: list[MassJobFinished] = []
        self.refused: list[str] = []
        self.failures = failures
        app = FastAPI()

        @app.post("/wechat/callback")
        async def callback(request: Request) -> PlainTextResponse:
            if self.failures > 0:
                self.failures -= 1
                return PlainTextResponse("busy", status_code=500)
            query = request.query_params
            try:
                verify_signature(token, query["signature"], query["timestamp"], query["nonce"])
                self.events.append(parse_mass_job_finished(await request.body()))
            except InvalidWechatCallback as error:
                self.refused.append(error.message)
                return PlainTextResponse("forbidden", status_code=403)
            return PlainTextResponse("success")

        self.server = ThreadedServer(app)

    @property
    def url(self) -> str:
        return f"{self.server.url}/wechat/callback"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver(TOKEN, failures=2)
    receiver.server.start()
    yield receiver
    receiver.server.stop()


def test_the_sandbox_reports_a_finished_send_signed_and_retries(
    receiver: Receiver, sqlite_url: str
) -> None:
    config = SandboxConfig(callback_url=receiver.url, callback_token=TOKEN, job_finish_delay=0.1)
    with SandboxServer(config) as server:
        followers = server.sandbox.add_followers(3)
        with client_for(server, sqlite_url) as client:
            job = client.mass_send(make_draft(client), ToAll(), "issue-471-all")
        wait_for(lambda: len(server.sandbox.callback_attempts) == 3)
        attempts = [attempt.status_code for attempt in server.sandbox.callback_attempts]
    assert attempts == [500, 500, 200]  # WeChat tries three times
    event = receiver.events[0]
    assert (event.msg_id, event.status, event.total, event.sent) == (
        job.msg_id,
        "send success",
        len(followers),
        len(followers),
    )
    assert receiver.refused == []


def test_a_callback_signed_with_another_token_is_refused(
    receiver: Receiver, sqlite_url: str
) -> None:
    receiver.failures = 0
    config = SandboxConfig(
        callback_url=receiver.url, callback_token="not-" + TOKEN, job_finish_delay=0.1
    )
    with SandboxServer(config) as server:
        server.sandbox.add_followers(2)
        with client_for(server, sqlite_url) as client:
            client.mass_send(make_draft(client), ToAll(), "issue-471-all")
        wait_for(lambda: len(server.sandbox.callback_attempts) == 3)
        assert [a.status_code for a in server.sandbox.callback_attempts] == [403, 403, 403]
    assert (
        receiver.events == []
        and receiver.refused == ["the WeChat callback signature does not match"] * 3
    )


AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # the shape of the console's EncodingAESKey


@pytest.mark.parametrize("timestamp", ["nan", "inf", "-inf", "1e99", "1481013459.5", " 1481013459"])
def test_only_whole_second_timestamps_count(timestamp: str) -> None:
    signature = callback_signature(TOKEN, timestamp, "xyz")
    with pytest.raises(InvalidWechatCallback, match="not a whole number of seconds"):
        verify_signature(TOKEN, signature, timestamp, "xyz", now=1481013459.0)


def test_a_safe_mode_message_opens_only_with_its_signature_key_and_appid() -> None:
    """The sandbox encrypts as WeChat does, with code of its own: the two must agree."""
    sandbox = Sandbox(SandboxConfig(encoding_aes_key=AES_KEY))
    app_id = sandbox.config.app_id
    params, body = sandbox.signed_callback(TOKEN, EVENT, timestamp="1481013459", nonce="42")
    assert b"MASSSENDJOBFINISH" not in body and params["encrypt_type"] == "aes"
    signed = {"timestamp": "1481013459", "nonce": "42", "body": body}
    key = aes_key(AES_KEY)
    opened = open_safe_mode(TOKEN, key, app_id, msg_signature=params["msg_signature"], **signed)
    assert parse_mass_job_finished(opened).msg_id == 1000001625
    with pytest.raises(InvalidWechatCallback, match="msg_signature does not match"):
        open_safe_mode(TOKEN, key, app_id, msg_signature="0" * 40, **signed)
    with pytest.raises(InvalidWechatCallback, match="for another AppID"):
        open_safe_mode(TOKEN, key, "wx-other", msg_signature=params["msg_signature"], **signed)
    with pytest.raises(InvalidWechatCallback, match="does not decrypt with our EncodingAESKey"):
        other_key = aes_key(AES_KEY[::-1])
        open_safe_mode(TOKEN, other_key, app_id, msg_signature=params["msg_signature"], **signed)
