"""What WeChat posts to our callback URL: the signature check, safe mode (the message encrypted,
its signature covering the body), the mass-send result event and the event of a follower who
unfollowed.

Pure functions for the web endpoint to call. The body is XML from the internet, so it is parsed
with defusedxml: a DTD, an entity or an external reference is refused, not expanded. The
signature of plain mode covers only the query (token, timestamp, nonce), not the body: the
endpoint remembers each ``timestamp:nonce`` for the freshness window (:func:`replay_key`), and
safe mode (``WECHAT_ENCODING_AES_KEY``) makes a changed body fail its ``msg_signature`` too.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
import time
from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException

from distributor.errors import InvalidWechatCallback

MAX_BODY_BYTES = 64 * 1024  # a MASSSENDJOBFINISH event is about 2 KB
MAX_AGE_SECONDS = 300  # WeChat retries within seconds; older timestamps are replays
_TIMESTAMP = re.compile(r"[0-9]{1,11}")  # whole seconds since 1970, as WeChat writes them
_NONCE = re.compile(r"[0-9A-Za-z_-]{1,64}")
_PAD_BLOCK = 32  # WeChat pads to 32 bytes (PKCS#7 with a 32-byte block), not AES's 16

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
    max_age: int = MAX_AGE_SECONDS,
) -> None:
    """Raise unless the request was signed with our callback token, recently: the timestamp a
    whole number of seconds (never ``nan``, ``inf`` or ``1e99``) within ``max_age`` of now."""
    expected = callback_signature(token, timestamp, nonce)
    if not hmac.compare_digest(expected, signature.lower()):
        raise InvalidWechatCallback("the WeChat callback signature does not match")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise InvalidWechatCallback(
            f"the WeChat callback timestamp {timestamp[:40]!r} is not a whole number of seconds"
        )
    if not _NONCE.fullmatch(nonce):
        raise InvalidWechatCallback(f"the WeChat callback nonce {nonce[:70]!r} is not one")
    if abs((time.time() if now is None else now) - int(timestamp)) > max_age:
        raise InvalidWechatCallback(
            f"the WeChat callback timestamp {timestamp} is more than {max_age} s off"
        )


def replay_key(timestamp: str, nonce: str) -> str:
    """What identifies one signed callback: the same request seen twice is a replay."""
    return f"{timestamp}:{nonce}"


def remember_until(timestamp: str, max_age: int = MAX_AGE_SECONDS) -> float:
    """Until when a verified callback's :func:`replay_key` must be kept: after that its
    timestamp is refused as stale anyway."""
    return float(int(timestamp) + max_age)


def message_signature(token: str, timestamp: str, nonce: str, encrypted: str) -> str:
    """Safe mode's ``msg_signature``: ``sha1`` of the four values sorted and joined, in hex."""
    joined = "".join(sorted([token, timestamp, nonce, encrypted]))
    return hashlib.sha1(joined.encode()).hexdigest()


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte key of an EncodingAESKey (43 characters of base64, as the console shows it
    and :class:`~distributor.config.Settings` checks it)."""
    return base64.b64decode(encoding_aes_key + "=")


def open_safe_mode(
    token: str,
    key: bytes,
    app_id: str,
    *,
    msg_signature: str,
    timestamp: str,
    nonce: str,
    body: bytes,
) -> bytes:
    """The message inside a safe-mode body (``<xml><Encrypt>…</Encrypt></xml>``), once its
    ``msg_signature`` matches and it names our AppID; :class:`InvalidWechatCallback` else."""
    encrypted = (parse_xml(body).findtext("Encrypt") or "").strip()
    if not encrypted:
        raise InvalidWechatCallback("the WeChat callback has no <Encrypt> (safe mode is required)")
    expected = message_signature(token, timestamp, nonce, encrypted)
    if not hmac.compare_digest(expected, msg_signature.lower()):
        raise InvalidWechatCallback("the WeChat callback msg_signature does not match its body")
    message, named = _decrypt(key, encrypted)
    if not hmac.compare_digest(named.encode(), app_id.encode()):
        raise InvalidWechatCallback("the WeChat callback is encrypted for another AppID")
    return message


def _decrypt(key: bytes, encrypted: str) -> tuple[bytes, str]:
    """AES-256-CBC (IV: the key's first 16 bytes); the plaintext is 16 random bytes, the
    message's length (4 bytes, big-endian), the message, the AppID."""
    try:
        data = base64.b64decode(encrypted, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidWechatCallback("the WeChat callback's <Encrypt> is not base64") from None
    if not data or len(data) % 16:
        raise InvalidWechatCallback("the WeChat callback's <Encrypt> is not AES blocks")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(data) + decryptor.finalize()
    pad = plain[-1]
    if not 1 <= pad <= _PAD_BLOCK or plain[-pad:] != bytes([pad]) * pad or len(plain) < 20 + pad:
        raise InvalidWechatCallback("the WeChat callback does not decrypt with our EncodingAESKey")
    content = plain[16:-pad]
    (length,) = struct.unpack(">I", content[:4])
    if length > len(content) - 4:
        raise InvalidWechatCallback("the WeChat callback does not decrypt with our EncodingAESKey")
    try:
        app_id = content[4 + length :].decode()
    except UnicodeDecodeError:
        raise InvalidWechatCallback("the WeChat callback names no AppID") from None
    return content[4 : 4 + length], app_id


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
