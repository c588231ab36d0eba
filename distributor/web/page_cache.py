"""Rendered pages that are the same for every reader, kept a short while in the process."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

CACHE_SECONDS = 60


@dataclass(frozen=True)
class CachedPage:
    body: bytes
    etag: str
    until: float


@dataclass
class PageCache:
    """Rendered pages by key, each kept ``seconds`` after it was made; at most ``most`` of
    them (a query string is the reader's to choose, so keys are not a closed set)."""

    seconds: float = CACHE_SECONDS
    clock: Callable[[], float] = time.monotonic
    most: int = 1000
    _pages: dict[Hashable, CachedPage] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable, make: Callable[[], str]) -> CachedPage:
        """The page under ``key``, made anew by ``make`` when missing or expired (an exception
        of ``make`` is the caller's: nothing is kept)."""
        now = self.clock()
        page = self._pages.get(key)
        if page is not None and now < page.until:
            return page
        body = make().encode()
        etag = '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'
        page = CachedPage(body, etag, now + self.seconds)
        with self._lock:
            if len(self._pages) >= self.most:
                self._pages = {k: p for k, p in self._pages.items() if now < p.until}
                if len(self._pages) >= self.most:
                    self._pages.clear()
            self._pages[key] = page
        return page
