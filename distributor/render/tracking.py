"""Open and click tracking, compiled into a tracked send's HTML once per send × variant.

Every web link (http, https) becomes a redirect through our server, carrying the target and a MAC
of it, so the redirect can never send a reader anywhere the newsletter did not link (no open
redirect); a 1×1 image reports the open. A link is an ``href`` of a real ``<a>`` start tag, found
by an HTML parser: text that only looks like one (an article quoting ``href="https://…"``) is
text, left as it is, and never signed, which would have made it a permanent redirect of ours.

Both carry the recipient's signed token as a slot, filled per recipient by
:func:`distributor.render.personalise.personalise`. Links to our own signed pages (unsubscribe,
preferences) are left alone: following them must not depend on tracking.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from urllib.parse import quote

from subscribers.links import CLICK_PATH, OPEN_PIXEL_PATH
from subscribers.tokens import TokenPurpose, TokenSigner

_HREF = re.compile(r"""(\shref\s*=\s*)(["'])(https?://[^"']*)\2""", re.IGNORECASE)
_BODY_END = re.compile(r"</body>", re.IGNORECASE)


def click_url(base_url: str, token: str, target: str, signer: TokenSigner) -> str:
    """Where a tracked link points: our redirect to ``target`` for the recipient ``token``."""
    mac = signer.text_mac(TokenPurpose.LINK, target)
    return f"{base_url}{CLICK_PATH}{token}?u={quote(target, safe='')}&s={mac}"


def open_pixel_url(base_url: str, token: str) -> str:
    return f"{base_url}{OPEN_PIXEL_PATH}{token}.gif"


def add_tracking(
    page: str,
    *,
    base_url: str,
    token_marker: str,
    skip_markers: tuple[str, ...],
    signer: TokenSigner,
) -> str:
    """``page`` with its web links wrapped and an open pixel before ``</body>``; the recipient's
    token goes where ``token_marker`` stands."""

    def wrap(match: re.Match[str]) -> str:
        target = html.unescape(match.group(3))
        if any(marker in target for marker in skip_markers):
            return match.group(0)
        tracked = html.escape(click_url(base_url, token_marker, target, signer))
        return f'{match.group(1)}"{tracked}"'

    tracked = _rewrite_link_tags(page, wrap)
    pixel = (
        f'<img src="{html.escape(open_pixel_url(base_url, token_marker))}" width="1" height="1" '
        'alt="" style="display:block;width:1px;height:1px;border:0">'
    )
    tracked, found = _BODY_END.subn(pixel + "</body>", tracked, count=1)
    return tracked if found else tracked + pixel


class _LinkTags(HTMLParser):
    """Where each ``<a …>`` start tag stands in a page: (offset, its text)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=False)
        self.found: list[tuple[int, str]] = []
        self._line_starts = [0]
        for line in page.splitlines(keepends=True):
            self._line_starts.append(self._line_starts[-1] + len(line))
        self.feed(page)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            line, column = self.getpos()
            text = self.get_starttag_text() or ""
            self.found.append((self._line_starts[line - 1] + column, text))


def _rewrite_link_tags(page: str, wrap: Callable[[re.Match[str]], str]) -> str:
    """``page`` with ``wrap`` applied to the href of each ``<a>`` start tag, and only there."""
    parts, done = [], 0
    for offset, text in _LinkTags(page).found:
        parts += [page[done:offset], _HREF.sub(wrap, text, count=1)]
        done = offset + len(text)
    return "".join(parts) + page[done:]
