"""A real HTTP receiver for webhook posts, on loopback: it refuses each event's first tries
(HTTP 500), then takes it, and keeps every post it was sent with its headers."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from distributor.devservers.ports import free_port


@dataclass(frozen=True)
class Post:
    id: str
    timestamp: str
    signature: str
    body: bytes
    status: int

    @property
    def document(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    refusals: int = 2  # tries of each event answered 500 before one is taken
    posts: list[Post] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.port = free_port()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                event = self.headers.get("Webhook-Id", "")
                with receiver._lock:
                    tries = sum(1 for post in receiver.posts if post.id == event)
                    status = 500 if tries < receiver.refusals else 204
                    receiver.posts.append(
                        Post(
                            event,
                            self.headers.get("Webhook-Timestamp", ""),
                            self.headers.get("Webhook-Signature", ""),
                            body,
                            status,
                        )
                    )
                self.send_response(status)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def taken(self) -> Counter[str]:
        """How many times each event was taken (answered 2xx)."""
        with self._lock:
            return Counter(post.id for post in self.posts if post.status < 300)

    def all_posts(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
