"""No NUL character in a request (not in its path, its query or a form or JSON body), and no
value the database cannot hold answered as a server error.

PostgreSQL cannot store one (psycopg refuses the statement, the request ended in a 500 and a
dropped connection: a NUL in ``?email=``, ``?list=``, the staff search), and nothing a reader or
the staff type means one. So a request carrying one is answered 400 with one line before any
route sees it. A multipart body (an uploaded issue file) is binary and is left to its importer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import DataError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REFUSAL = "the request contains a NUL character, which no field of this site takes"
# A NUL as it travels: raw, percent-encoded (a query, a form) or as a JSON escape. Each body is
# read in its own encoding: in JSON, "100%00" is text, not a NUL.
_PERCENT, _JSON_ESCAPE = b"%00", b"\\u0000"
_NUL_FORMS = (b"\x00", _PERCENT, _JSON_ESCAPE)
_BODY_FORMS = {
    "application/json": (b"\x00", _JSON_ESCAPE),
    "application/x-www-form-urlencoded": (b"\x00", _PERCENT),
}
_OVERLAP = max(len(form) for form in _NUL_FORMS) - 1


# What the database (or its driver) says of a value no column can hold: an id past 64 bits, text
# past its column's width. Every route checks what it takes; the app answers these 400 as the net
# under them, so that a value one of them missed is a bad request, not a server error.
UNFIT_VALUES: tuple[type[Exception], ...] = (DataError, OverflowError)
UNFIT = "a value in the request is out of range or too long"


def carries_nul(data: bytes, forms: tuple[bytes, ...] = _NUL_FORMS) -> bool:
    return any(form in data for form in forms)


# The answer to a request refused at the edge: (path, status, code, message) → response, in the
# shape of the part of the site it was for (the API's JSON error, or one line of text).
EdgeRefusal = Callable[[str, int, str, str], Response]


@dataclass
class NoNul:
    app: ASGIApp
    refusal: EdgeRefusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or carries_nul(scope["query_string"]):
            await self.refusal(scope["path"], 400, "bad_request", REFUSAL)(scope, receive, send)
            return
        content_type = Headers(scope=scope).get("content-type", "")
        if content_type.startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        media_type = content_type.partition(";")[0].strip().lower()
        await self.app(scope, _checked(receive, _BODY_FORMS.get(media_type, _NUL_FORMS)), send)


def _checked(receive: Receive, forms: tuple[bytes, ...]) -> Receive:
    """``receive``, refusing a body with a NUL (an HTTPException: the app answers it 400)."""
    tail = b""  # the end of the previous chunk, where an encoded NUL may have begun

    async def checked() -> Message:
        nonlocal tail
        message = await receive()
        if message["type"] == "http.request":
            body = message.get("body", b"")
            if carries_nul(tail + body, forms):
                raise HTTPException(400, REFUSAL)
            tail = body[-_OVERLAP:]
        return message

    return checked
