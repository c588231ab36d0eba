"""``POST /bounces/intake``: the mail server hands over one bounce or complaint as it arrives
(e.g. a Postfix ``pipe`` transport running curl), instead of it waiting in a mailbox to be polled.

Authenticated by the shared secret ``BOUNCE_INTAKE_SECRET`` (``Authorization: Bearer <secret>``,
compared in constant time); without one configured the endpoint refuses everything. The body is
the raw message; at most ``MAX_MESSAGE_BYTES`` of it is read.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from distributor.bounces import MAX_MESSAGE_BYTES
from distributor.bounces.apply import PausePolicy, process_feedback
from distributor.db import utcnow
from distributor.render.verp import Verp
from distributor.web.pages import Web, WebDep

INTAKE_PATH = "/bounces/intake"

router = APIRouter(include_in_schema=False)


@router.post(INTAKE_PATH)
async def intake(request: Request, web: WebDep) -> JSONResponse:
    if not _authorised(request, web.settings.bounce_intake_secret):
        return JSONResponse(
            {"error": "a valid intake secret is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    verp = Verp.from_settings(web.settings)
    if verp is None:
        return JSONResponse({"error": "no bounce domain is configured"}, status_code=503)
    raw = await _bounded_body(request)
    if not raw.strip():
        return JSONResponse({"error": "the body must be the message"}, status_code=400)
    result = await run_in_threadpool(_process, web, verp, raw)
    return JSONResponse(result)


def _process(web: Web, verp: Verp, raw: bytes) -> dict[str, object]:
    with web.transaction() as session:
        processed = process_feedback(
            session, raw, verp=verp, policy=PausePolicy.from_settings(web.settings), now=utcnow()
        )
    return {
        "id": processed.id,
        "kind": processed.kind.value,
        "outcome": processed.outcome.value,
        "reason": processed.reason,
        "delivery_id": processed.delivery_id,
        "repeat": processed.repeat,
    }


def _authorised(request: Request, secret: str | None) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if secret is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), secret.encode())


async def _bounded_body(request: Request) -> bytes:
    """The first ``MAX_MESSAGE_BYTES`` of the body: the rest is never held in memory."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk[: MAX_MESSAGE_BYTES - len(body)]
        if len(body) >= MAX_MESSAGE_BYTES:
            break
    return bytes(body)
