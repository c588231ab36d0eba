"""What keeps the public pages safe: response headers, CSRF tokens, rate limits.

* Headers on every response: a CSP that allows no inline script or style, no framing
  (``frame-ancestors 'none'``), ``nosniff``, no referrer (page URLs carry signed tokens), HSTS
  when the request came over https (as the trusted proxy says: see ``FORWARDED_ALLOW_IPS``).
* CSRF: a form reached through a signed link carries a token bound to that link, so the link
  stays the only credential (no cookie needed, which in-app browsers may drop); a form without
  a link (sign-up) uses a signed double-submit cookie. The RFC 8058 one-click POST has neither:
  mail providers send it without cookies or forms, and the signed link is enough.
* Rate limits per client address on form posts, in Redis when one is shared, else in process.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from starlette.requests import Request
from starlette.responses import Response

from distributor.errors import RequestRefused

log = logging.getLogger(__name__)

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
}
HSTS = "max-age=31536000; includeSubDomains"
CSRF_FIELD = "csrf"
CSRF_COOKIE = "distributor_csrf"
CSRF_HEX = 32

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def _encoded(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]


# Encoded once: every response gets them, the pixel and redirects thousands of times a second.
_HEADERS = _encoded(HEADERS)
_HSTS = _encoded({"Strict-Transport-Security": HSTS})
_NO_STORE = _encoded({"Cache-Control": "no-store"})


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` (and HSTS over https) to every HTTP response;
    a page may set its own Cache-Control, anything else is ``no-store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _HEADERS + _HSTS if scope.get("scheme") == "https" else _HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [header for header in extra if header[0] not in present]
                if b"cache-control" not in present:
                    headers += _NO_STORE
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- CSRF -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Csrf:
    secret: str = field(repr=False)

    def _mac(self, *parts: str) -> str:
        key = hmac.new(self.secret.encode(), b"distributor-csrf", hashlib.sha256).digest()
        message = "\x1f".join(parts).encode()
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:CSRF_HEX]

    def for_link(self, link_token: str) -> str:
        """The form token of a page reached through ``link_token``."""
        return self._mac("link", link_token)

    def check_link(self, link_token: str, submitted: str | None) -> None:
        _check(self.for_link(link_token), submitted)

    def for_browser(self, request: Request, scope: str) -> tuple[str, str | None]:
        """The form token for a page without a link, and the cookie to set (None: it is set)."""
        nonce = request.cookies.get(CSRF_COOKIE, "")
        fresh = None
        if len(nonce) != CSRF_HEX or not nonce.isalnum():
            nonce = fresh = secrets.token_hex(CSRF_HEX // 2)
        return self._mac("browser", nonce, scope), fresh

    def check_browser(self, request: Request, scope: str, submitted: str | None) -> None:
        nonce = request.cookies.get(CSRF_COOKIE)
        if not nonce:
            raise _stale_form()
        _check(self._mac("browser", nonce, scope), submitted)


def set_csrf_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        CSRF_COOKIE,
        nonce,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )


def _check(expected: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(expected, submitted):
        raise _stale_form()


def _stale_form() -> RequestRefused:
    return RequestRefused(
        "the form is out of date or incomplete: reload the page", status=403, code="form.stale"
    )


# --- rate limits ----------------------------------------------------------------------------


class RateLimiter(Protocol):
    def allow(self, key: str, limit: int, window: int) -> bool:
        """Count one hit on ``key``; False once more than ``limit`` fell in this window."""
        ...

    def hits(self, key: str, window: int) -> int:
        """How many hits ``key`` has in this window, without counting one (failed logins are
        counted after the fact, so that a success costs nothing)."""
        ...


@dataclass
class MemoryRateLimiter:
    """Fixed windows in this process: right for one web process (the embedded set-up)."""

    _counts: dict[tuple[str, int], int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str, limit: int, window: int) -> bool:
        slot = int(time.time() // window)
        with self._lock:
            if len(self._counts) > 100_000:  # forget past windows now and then
                self._counts = {k: n for k, n in self._counts.items() if k[1] >= slot}
            count = self._counts.get((key, slot), 0) + 1
            self._counts[(key, slot)] = count
        return count <= limit

    def hits(self, key: str, window: int) -> int:
        with self._lock:
            return self._counts.get((key, int(time.time() // window)), 0)


@dataclass
class RedisRateLimiter:
    """Fixed windows in Redis, shared by every web process on every machine."""

    client: redis.Redis

    def allow(self, key: str, limit: int, window: int) -> bool:
        name = f"distributor:web-rate:{key}:{int(time.time() // window)}"
        try:
            pipeline = self.client.pipeline()
            pipeline.incr(name)
            pipeline.expire(name, window + 1)
            count = int(pipeline.execute()[0])
        except redis.RedisError as error:
            # A limit is a guard, not a gate: Redis being away must not stop unsubscribes.
            log.warning("rate limit not applied, Redis failed: %s", error)
            return True
        return count <= limit

    def hits(self, key: str, window: int) -> int:
        try:
            found = self.client.get(f"distributor:web-rate:{key}:{int(time.time() // window)}")
        except redis.RedisError as error:
            log.warning("rate limit not read, Redis failed: %s", error)
            return 0
        return int(found or 0)


def rate_limiter(redis_url: str | None) -> RateLimiter:
    return RedisRateLimiter(redis.Redis.from_url(redis_url)) if redis_url else MemoryRateLimiter()


def client_address(request: Request) -> str:
    """The client as the trusted proxy reported it (or the peer itself)."""
    return request.client.host if request.client else "unknown"


def limit(limiter: RateLimiter, request: Request, what: str, most: int, window: int) -> None:
    if most > 0 and not limiter.allow(f"{what}:{client_address(request)}", most, window):
        raise RequestRefused(
            "too many attempts from this address: try again later", status=429, code="form.too_many"
        )
