"""What WeChat posts to our callback URL: the signature check, the mass-send result event and
the event of a follower who unfollowed.

Pure functions for the web endpoint to call. The body is XML from the internet, so it is parsed
with defusedxml: a DTD, an entity or an external reference is refused, not expanded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from distributor.errors import InvalidWechatCallback

MAX_BODY_BYTES = 64 * 1024  # a MASSSENDJOBFINISH event is about 2 KB
MAX_AGE_SECONDS = 300.0  # WeChat retries within seconds; older timestamps are replays

# Why a mass send was stopped: Status "err(N)" of MASSSENDJOBFINISH.
REVIEW_FAILURES: dict[int, str] = {
    10001: "judged to be advertising",
    20001: "judged to be about politics",
    20002: "judged to be pornographic",
    20004: "judged to be about social incidents",
    20006: "judged to be about crime",
    20008: "judged to be fraud",
    20013: "judged to infringe copyright",
    21000: "rejected by WeChat's review (other reason)",
    22000: "judged to be mutual promotion",
    30001: "the originality check failed and the send was set to stop in that case",
    30002: "judged by the originality check not to be sendable",
    30003: "judged to be a reprint, and the send was set to stop in that case",
}


def callback_signature(token: str, timestamp: str, nonce: str) -> str:
    """``sha1`` of the three values sorted and joined, in hex (WeChat's ``signature``)."""
    return hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()


def verify_signature(
    token: str,
    signature: str,
    timestamp: str,
    nonce: str,
    *,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
) -> None:
    """Raise unless the request was signed with our callback token, recently."""
    expected = callback_signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected, signature.lower()):
        raise InvalidWechatCallback("the WeChat callback signature does not match")
    try:
        sent = float(timestamp)
    except ValueError:
        raise InvalidWechatCallback(
            f"the WeChat callback timestamp {timestamp!r} is not a number"
        ) from None
    if abs((time.time() if now is None else now) - sent) > max_age:
        raise InvalidWechatCallback(
            f"the WeChat callback timestamp {timestamp} is more than {max_age:g} s off"
        )


def parse_xml(body: bytes) -> Element:
    if len(body) > MAX_BODY_BYTES:
        raise InvalidWechatCallback(f"the WeChat callback body is {len(body):,} bytes; too large")
    try:
        root = SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as error:
        raise InvalidWechatCallback(
            f"the WeChat callback body is refused: {type(error).__name__}"
        ) from None
    except SafeET.ParseError as error:
        raise InvalidWechatCallback(f"the WeChat callback body is not XML: {error}") from None
    if root.tag != "xml":
        raise InvalidWechatCallback(f"the WeChat callback body is <{root.tag}>, not <xml>")
    return root


def event_name(root: Element) -> str:
    """``MASSSENDJOBFINISH`` and the like; empty for a message that is not an event."""
    return (root.findtext("Event") or "").strip()


@dataclass(frozen=True)
class MassJobFinished:
    """The end of a mass send; counts are WeChat's approximations, no per-reader result."""

    msg_id: int
    status: str  # as WeChat wrote it: "send success", "send fail", "err(30003)"
    total: int  # followers in the audience
    filtered: int  # of them, those it was sent to (after WeChat's own filters and caps)
    sent: int
    errors: int
    article_urls: tuple[str, ...]
    created_at: int

    @property
    def succeeded(self) -> bool:
        return self.status == "send success"

    @property
    def reason(self) -> str:
        """Why it failed, in plain words; empty when it succeeded."""
        if self.succeeded:
            return ""
        code = re.fullmatch(r"err\((\d+)\)", self.status)
        if code is None:
            return "WeChat reports the send failed"
        return REVIEW_FAILURES.get(int(code[1]), f"stopped by WeChat (code {code[1]})")


def _int(root: Element, path: str) -> int:
    text = (root.findtext(path) or "").strip()
    if not text.isdigit():
        raise InvalidWechatCallback(f"the WeChat event has no whole number in <{path}>: {text!r}")
    return int(text)


@dataclass(frozen=True)
class Unfollowed:
    """The ``unsubscribe`` event: a follower stopped following the account (WeChat posts it at
    once; the OpenID is then refused in a mass send, 40003)."""

    openid: str
    created_at: int


def parse_unfollowed(body: bytes) -> Unfollowed:
    """The ``unsubscribe`` event in ``body``; any other body is refused."""
    root = parse_xml(body)
    if event_name(root) != "unsubscribe":
        raise InvalidWechatCallback(
            f"the WeChat callback is {event_name(root) or 'not an event'!r}, not unsubscribe"
        )
    openid = (root.findtext("FromUserName") or "").strip()
    if not openid:
        raise InvalidWechatCallback("the WeChat unsubscribe event names no <FromUserName>")
    return Unfollowed(openid=openid, created_at=_int(root, "CreateTime"))


def parse_mass_job_finished(body: bytes) -> MassJobFinished:
    """The ``MASSSENDJOBFINISH`` event in ``body``; any other body is refused."""
    root = parse_xml(body)
    if event_name(root) != "MASSSENDJOBFINISH":
        raise InvalidWechatCallback(
            f"the WeChat callback is {event_name(root) or 'not an event'!r}, not MASSSENDJOBFINISH"
        )
    return MassJobFinished(
        msg_id=_int(root, "MsgID"),
        status=(root.findtext("Status") or "").strip(),
        total=_int(root, "TotalCount"),
        filtered=_int(root, "FilterCount"),
        sent=_int(root, "SentCount"),
        errors=_int(root, "ErrorCount"),
        article_urls=tuple(
            (item.findtext("ArticleUrl") or "").strip()
            for item in root.iterfind("ArticleUrlResult/ResultList/item")
        ),
        created_at=_int(root, "CreateTime"),
    )
