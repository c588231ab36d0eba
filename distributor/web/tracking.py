"""``/t/o/<token>.gif``: the open pixel, and ``/t/c/<token>?u=<target>&s=<mac>``: the click
redirect of a tracked send (see :mod:`distributor.render.tracking`).

Both are hit in bursts right after a send (image proxies fetch every pixel, link scanners follow
every link), so they check signatures only and leave the event to the app's
:class:`~distributor.readers.engagement.EngagementBuffer`, which writes in batches: no database
work on the request path. The pixel answers the same image for any token, so it tells nobody
whether a token is genuine; the redirect goes only where the newsletter linked (the target's MAC
holds), so it is no open redirect.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from distributor.errors import InvalidToken
from distributor.readers.engagement import EngagementBuffer, checked_target, reader_of
from distributor.readers.models import EngagementKind
from distributor.web.pages import Web, get_web
from subscribers.links import CLICK_PATH, OPEN_PIXEL_PATH

# A transparent 1×1 GIF (43 bytes), the same for every token.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
# Every fetch must reach us to count, and no shared cache may keep one reader's answer.
NO_STORE = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}

router = APIRouter(include_in_schema=False)


@asynccontextmanager
async def recording(app: FastAPI) -> AsyncIterator[None]:
    """The app's lifespan part for opens and clicks: one buffer and its writer thread while the
    app serves; what is still queued is written when it stops."""
    buffer = EngagementBuffer(cast(Web, app.state.web).factory)
    app.state.engagement = buffer
    buffer.start()
    try:
        yield
    finally:
        await run_in_threadpool(buffer.stop)


def engagement_buffer(request: Request) -> EngagementBuffer:
    return cast(EngagementBuffer, request.app.state.engagement)


# Plain Starlette routes, ``async``: they do no I/O, so they run on the event loop without a
# thread hop, and skip FastAPI's parameter validation, a good part of their cost.


async def open_pixel(request: Request) -> Response:
    name: str = request.path_params["name"]
    try:
        send_id, subscriber_id = reader_of(get_web(request).signer, name.removesuffix(".gif"))
    except InvalidToken:
        pass
    else:
        engagement_buffer(request).add(send_id, subscriber_id, EngagementKind.OPEN, None)
    return Response(PIXEL, media_type="image/gif", headers=NO_STORE)


async def click(request: Request) -> Response:
    """To the target if the newsletter linked to it, counted if the token is genuine; a link
    whose token alone was damaged still takes the reader where it should."""
    signer = get_web(request).signer
    query = request.query_params
    # InvalidToken: the app's error page, never a redirect.
    target = checked_target(signer, query.get("u", ""), query.get("s", ""))
    try:
        send_id, subscriber_id = reader_of(signer, request.path_params["token"])
    except InvalidToken:
        pass
    else:
        engagement_buffer(request).add(send_id, subscriber_id, EngagementKind.CLICK, target)
    return RedirectResponse(target, status_code=302, headers=NO_STORE)


router.add_route(OPEN_PIXEL_PATH + "{name}", open_pixel, methods=["GET"], include_in_schema=False)
router.add_route(CLICK_PATH + "{token}", click, methods=["GET"], include_in_schema=False)
