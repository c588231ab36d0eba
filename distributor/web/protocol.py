"""The HTTP each web process speaks: uvicorn's httptools protocol, with a deadline and a size
limit for a request's head.

uvicorn sets neither: a client could send 16 MB of headers, or half its headers and then nothing,
and hold its connection (and the memory of what it sent) as long as it liked; three hundred such
connections were held at once. Here a request's head must be complete within
``WEB_HEADER_TIMEOUT`` seconds of the connection (or of the previous response) and within
``WEB_MAX_HEADER_BYTES``: a slower head closes the connection, a larger one is answered 431. A
proxy in front (deploy/nginx.conf) sets the same limits at the edge.
"""

from __future__ import annotations

import asyncio
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from distributor.config import Settings

HEAD_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"connection: close\r\ncontent-length: 38\r\n\r\nthe request's headers are too large.\r\n"
)


@cache
def _limits() -> tuple[float, int]:
    """This process's limits, read once (each web process builds its protocol from them)."""
    settings = Settings.from_env()
    return settings.web_header_timeout, settings.web_max_header_bytes


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_bytes = 0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is not None:
            self._head_bytes += len(data)
            if self._head_bytes > _limits()[1]:
                self._head_done()
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()
                return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._expect_head()  # the next request on this connection gets a deadline too

    def _expect_head(self) -> None:
        self._head_done()
        self._head_bytes = 0
        self._head_deadline = self.loop.call_later(_limits()[0], self._too_slow)

    def _head_done(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _too_slow(self) -> None:
        self._head_deadline = None
        if not self.transport.is_closing():
            self.transport.close()
