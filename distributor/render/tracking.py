"""Open and click tracking, compiled into a tracked send's HTML once per send × variant.

Every web link (http, https) becomes a redirect through our server, carrying the target and a MAC
of it, so the redirect can never send a reader anywhere the newsletter did not link (no open
redirect); a 1×1 image reports the open. Both carry the recipient's signed token as a slot, filled
per recipient by :func:`distributor.render.personalise.personalise`. Links to our own signed pages
(unsubscribe, preferences) are left alone: following them must not depend on tracking.
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from subscribers.links import CLICK_PATH, OPEN_PIXEL_PATH
from subscribers.tokens import TokenPurpose, TokenSigner

_HREF = re.compile(r'href="(https?://[^"]*)"')
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
        target = html.unescape(match.group(1))
        if any(marker in target for marker in skip_markers):
            return match.group(0)
        return f'href="{html.escape(click_url(base_url, token_marker, target, signer))}"'

    tracked = _HREF.sub(wrap, page)
    pixel = (
        f'<img src="{html.escape(open_pixel_url(base_url, token_marker))}" width="1" height="1" '
        'alt="" style="display:block;width:1px;height:1px;border:0">'
    )
    tracked, found = _BODY_END.subn(pixel + "</body>", tracked, count=1)
    return tracked if found else tracked + pixel
