"""Signed tokens for public links (unsubscribe, preferences, confirm, …).

A token is ``<payload>.<mac>``, both base64url: the payload is ``purpose:subject:issued``, the
MAC an HMAC-SHA256 under a key derived from ``DISTRIBUTOR_SECRET_KEY`` *and the purpose*, so a
token made for one purpose never verifies for another, and ids inside are unforgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from dataclasses import dataclass, field
from enum import StrEnum

from distributor.errors import InvalidToken

MAC_BYTES = 16  # 128-bit tag: far beyond guessing, keeps links short


class TokenPurpose(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    CONFIRM = "confirm"
    TRACK = "track"  # a recipient of a tracked send, in its open pixel and click links
    LINK = "link"  # a link target of a tracked send, signed so the redirect goes nowhere else
    BOUNCE = "bounce"  # VERP return paths (distributor.render.verp), in a format of their own


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class TokenSigner:
    secret: str = field(repr=False)
    _keys: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    def _key(self, purpose: str) -> bytes:
        key = self._keys.get(purpose)
        if key is None:
            key = hmac.new(
                self.secret.encode(), b"distributor-token:" + purpose.encode(), hashlib.sha256
            ).digest()
            self._keys[purpose] = key
        return key

    def sign(self, purpose: TokenPurpose, subject: str, *, issued_at: int | None = None) -> str:
        if ":" in subject:
            raise ValueError(f"token subject {subject!r} must not contain ':'")
        issued = int(time.time()) if issued_at is None else issued_at
        payload = f"{purpose.value}:{subject}:{issued:x}".encode()
        return f"{_b64encode(payload)}.{_b64encode(self.mac(purpose, payload))}"

    def mac(self, purpose: TokenPurpose, payload: bytes) -> bytes:
        """The tag of ``payload`` under ``purpose``'s key: for tokens that need a format of their
        own (a VERP address must survive lower-casing), with the same keys as every link."""
        return hmac.digest(self._key(purpose.value), payload, "sha256")[:MAC_BYTES]

    def text_mac(self, purpose: TokenPurpose, text: str) -> str:
        """:meth:`mac` of ``text`` alone (no subject, no time), base64url: for a value that
        travels beside its tag, such as a click redirect's target."""
        return _b64encode(self.mac(purpose, text.encode()))

    def check_text_mac(self, purpose: TokenPurpose, text: str, tag: str) -> bool:
        return hmac.compare_digest(self.text_mac(purpose, text), tag)

    def verify(
        self,
        token: str,
        purpose: TokenPurpose,
        *,
        max_age: int | None = None,
        now: float | None = None,
    ) -> str:
        """The subject the token was signed for; :class:`InvalidToken` if it is not genuine."""
        try:
            payload_part, mac_part = token.split(".")
            payload = _b64decode(payload_part)
            mac = _b64decode(mac_part)
        except (ValueError, binascii.Error):
            raise InvalidToken(
                "this link is damaged: copy the whole link from the email", code="link.damaged"
            ) from None
        if not hmac.compare_digest(mac, self.mac(purpose, payload)):
            raise InvalidToken(
                "this link is not valid for this page (it was altered or is for another purpose)",
                code="link.altered",
            )
        try:
            token_purpose, subject, issued_hex = payload.decode().split(":")
            issued = int(issued_hex, 16)
        except ValueError:
            raise InvalidToken(
                "this link is damaged: copy the whole link from the email", code="link.damaged"
            ) from None
        if token_purpose != purpose.value:
            raise InvalidToken("this link is not valid for this page", code="link.elsewhere")
        if max_age is not None and (time.time() if now is None else now) - issued > max_age:
            raise InvalidToken("this link has expired: ask for a new one", code="link.expired")
        return subject
