"""Opaque cursors: the keyset position of a page's last row, signed so that a client cannot
make one up (a made-up cursor is refused, never a crash or a slow scan)."""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from distributor.errors import InvalidCursor
from distributor.web.pages import Web

T = TypeVar("T")
DEFAULT_LIMIT = 50
MAX_LIMIT = 500

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Rows per page.")]
Cursor = Annotated[
    str | None,
    Query(max_length=500, description="The next_cursor of the page before; absent: the first."),
]


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None  # None: this was the last page


class Cursors:
    """Encodes a keyset position (a list of JSON values) for one kind of listing."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"distributor-api-cursor", hashlib.sha256).digest()

    def _mac(self, kind: str, payload: bytes) -> bytes:
        return hmac.new(self._key, kind.encode() + b"\x1f" + payload, hashlib.sha256).digest()[:12]

    def encode(self, kind: str, position: list[Any]) -> str:
        payload = json.dumps(position, separators=(",", ":"), ensure_ascii=False).encode()
        raw = self._mac(kind, payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, kind: str, cursor: str | None) -> list[Any] | None:
        if cursor is None:
            return None
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except ValueError:
            raw = b""
        mac, payload = raw[:12], raw[12:]
        if len(mac) == 12 and hmac.compare_digest(mac, self._mac(kind, payload)):
            position = json.loads(payload)
            if isinstance(position, list):
                return position
        raise InvalidCursor(
            "the cursor is not one this listing gave out: start from the first page",
            code="api.cursor",
        )


@functools.cache
def _cursors(secret: str) -> Cursors:
    return Cursors(secret)


def cursors(web: Web) -> Cursors:
    """The app's cursors, signed with its secret key."""
    return _cursors(web.signer.secret)
