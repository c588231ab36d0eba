"""Request bodies, bounded before any route reads them, and uploads read only for staff.

FastAPI parses a route's body (JSON, a form, an uploaded file spooled to disk) before the route's
dependencies, its login check among them, run: three 400 MB JSON bodies without a token took a
web process to 2.6 GB, and uploads were spooled to disk in full for anyone. So this middleware,
outside the application:

- answers 413 with one line at once when ``Content-Length`` says the body is over its limit, and
  stops a body without one (chunked) as soon as it passes it;
- lets the body of an upload route be read only once its credential (the staff session cookie, or
  the API token) belongs to an editor: anyone else is answered before one byte is read.

The limit is ``WEB_MAX_BODY_BYTES`` (forms, JSON) and, for the upload routes,
``WEB_MAX_UPLOAD_BYTES``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from distributor.web.controls import EdgeRefusal

# The routes that take an uploaded file: (method, path).
UPLOADS = frozenset({
    ("POST", "/staff/issues"),
    ("POST", "/staff/subscribers/import"),
    ("POST", "/api/v1/issues"),
})
# Routes that check their credential first and read only the start of a body, however long (the
# mail server's bounce intake: a bounce may return a large message whole).
SELF_BOUNDED = frozenset({("POST", "/bounces/intake")})
# Whether a request to an upload route comes from staff allowed to upload; its refusal if not.
Uploader = Callable[[Request], Awaitable[Response | None]]


def too_large(most: int) -> str:
    return f"the request body is larger than {most:,} bytes\n"


@dataclass
class BodyLimit:
    app: ASGIApp
    most: int  # bytes of any request body
    most_upload: int  # bytes of an upload's body
    uploader: Uploader
    refusal: EdgeRefusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = (scope["method"], scope["path"].rstrip("/") or "/")
        if route in SELF_BOUNDED:
            await self.app(scope, receive, send)
            return
        upload = route in UPLOADS
        most = self.most_upload if upload else self.most
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > most:
            answer = self.refusal(scope["path"], 413, "too_large", too_large(most).strip())
            await answer(scope, receive, send)
            return
        if upload:
            refusal = await self.uploader(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, _counting(receive, most), send)


def _counting(receive: Receive, most: int) -> Receive:
    """``receive``, stopping a body as soon as it passes ``most`` bytes: the route reading it
    gets a 413 (an HTTPException, which every error handler of the app answers as such)."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > most:
                raise HTTPException(413, too_large(most).strip())
        return message

    return counted
