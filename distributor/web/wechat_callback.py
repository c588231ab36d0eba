"""WeChat's callback URL: the URL check (GET, echo), MASSSENDJOBFINISH events and a follower's
``unsubscribe`` (POST: they leave at once, so a send in progress leaves them out of a job not sent
yet).

Only requests signed with our ``WECHAT_CALLBACK_TOKEN`` count, with a fresh whole-second
timestamp, each ``timestamp:nonce`` once (remembered in the database by every web process, in
the transaction of what the event does). With ``WECHAT_ENCODING_AES_KEY`` set (safe mode) only
encrypted messages are taken, their ``msg_signature`` covering the body. The body is XML from
the internet, read by :mod:`distributor.channels.wechat.callbacks` (entities and DTDs refused).
WeChat repeats an event it got no ``success`` for, and recording one twice changes nothing.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from distributor.channels.wechat.callbacks import (
    MAX_BODY_BYTES,
    aes_key,
    event_name,
    open_safe_mode,
    parse_mass_job_finished,
    parse_unfollowed,
    parse_xml,
    remember_until,
    replay_key,
    verify_signature,
)
from distributor.channels.wechat.replays import take_once
from distributor.db import utcnow
from distributor.errors import InvalidWechatCallback
from distributor.web.pages import WebDep
from distributor.wechat.followers import unfollow
from distributor.wechat.jobs import record_finished

CALLBACK_PATH = "/wechat/callback"
REPLAYED = "this WeChat callback was taken already (a replay)"

router = APIRouter(include_in_schema=False)


def _verified(web: WebDep, request: Request) -> PlainTextResponse | None:
    """None when the request is signed with our token; else the answer to give."""
    token = web.settings.wechat_callback_token
    if not token:
        return PlainTextResponse("not found", status_code=404)
    query = request.query_params
    try:
        verify_signature(
            token, query.get("signature", ""), query.get("timestamp", ""), query.get("nonce", "")
        )
    except InvalidWechatCallback as error:
        return PlainTextResponse(error.message, status_code=403)
    return None


def _message(web: WebDep, request: Request, body: bytes) -> bytes:
    """The event XML: the body itself in plain mode, decrypted from it in safe mode (where a
    plain body is refused: anyone holding a signed URL could write one)."""
    settings = web.settings
    if not settings.wechat_encoding_aes_key:
        return body
    query = request.query_params
    if query.get("encrypt_type") != "aes":
        raise InvalidWechatCallback(
            "the WeChat callback is not encrypted, and safe mode (WECHAT_ENCODING_AES_KEY) is on"
        )
    return open_safe_mode(
        settings.wechat_callback_token or "",
        aes_key(settings.wechat_encoding_aes_key),
        settings.wechat_app_id or "",
        msg_signature=query.get("msg_signature", ""),
        timestamp=query.get("timestamp", ""),
        nonce=query.get("nonce", ""),
        body=body,
    )


@router.get(CALLBACK_PATH)
def verify_url(request: Request, web: WebDep) -> PlainTextResponse:
    """The console's URL check: echo ``echostr`` when the signature is ours."""
    refused = _verified(web, request)
    return refused or PlainTextResponse(request.query_params.get("echostr", ""))


@router.post(CALLBACK_PATH)
async def event(request: Request, web: WebDep) -> PlainTextResponse:
    refused = _verified(web, request)
    if refused is not None:
        return refused
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return PlainTextResponse("too large", status_code=413)
    try:
        message = _message(web, request, body)
    except InvalidWechatCallback as error:
        return PlainTextResponse(error.message, status_code=403)
    try:
        name = event_name(parse_xml(message))
        unfollowed = parse_unfollowed(message) if name == "unsubscribe" else None
        finished = parse_mass_job_finished(message) if name == "MASSSENDJOBFINISH" else None
    except InvalidWechatCallback as error:
        return PlainTextResponse(error.message, status_code=400)
    timestamp, nonce = request.query_params["timestamp"], request.query_params["nonce"]
    with web.transaction() as session:
        if not take_once(
            session, replay_key(timestamp, nonce), remember_until(timestamp), now=time.time()
        ):
            return PlainTextResponse(REPLAYED, status_code=403)
        if unfollowed is not None:
            unfollow(session.connection(), unfollowed.openid)
        elif finished is not None:
            record_finished(session, finished, utcnow())
    return PlainTextResponse("success")  # other events are not ours to act on
