"""WeChat's callback URL: the URL check (GET, echo), MASSSENDJOBFINISH events and a follower's
``unsubscribe`` (POST: they leave at once, so a send in progress leaves them out of a job not sent
yet).

Only requests signed with our ``WECHAT_CALLBACK_TOKEN`` count; the body is XML from the
internet, read by :mod:`distributor.channels.wechat.callbacks` (entities and DTDs refused). WeChat
repeats an event it got no ``success`` for, and recording one twice changes nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from distributor.channels.wechat.callbacks import (
    MAX_BODY_BYTES,
    event_name,
    parse_mass_job_finished,
    parse_unfollowed,
    parse_xml,
    verify_signature,
)
from distributor.db import utcnow
from distributor.errors import InvalidWechatCallback
from distributor.web.pages import WebDep
from distributor.wechat.followers import unfollow
from distributor.wechat.jobs import record_finished

CALLBACK_PATH = "/wechat/callback"

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
        name = event_name(parse_xml(body))
        if name == "unsubscribe":
            unfollowed = parse_unfollowed(body)
            with web.transaction() as session:
                unfollow(session.connection(), unfollowed.openid)
            return PlainTextResponse("success")
        if name != "MASSSENDJOBFINISH":
            return PlainTextResponse("success")  # other events are not ours to act on
        finished = parse_mass_job_finished(body)
    except InvalidWechatCallback as error:
        return PlainTextResponse(error.message, status_code=400)
    with web.transaction() as session:
        record_finished(session, finished, utcnow())
    return PlainTextResponse("success")
