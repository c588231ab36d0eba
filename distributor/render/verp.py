"""VERP return paths: ``bounces+<token>@BOUNCE_DOMAIN``, one per message, naming its delivery.

A bounce goes to the envelope sender, so the address it comes back to says which delivery failed
without reading the bounce at all. The token is ``<delivery id>-<issued, hex>-<tag>``: decimal,
hex and lower-case base32 only, because receivers may change the case of a local part, and the
tag is an HMAC under :class:`~subscribers.tokens.TokenSigner`'s ``bounce`` key, so nobody can
make one for a delivery they were not sent. At most 63 characters for any 64-bit id (RFC 5321
caps a local part at 64).
"""

from __future__ import annotations

import base64
import hmac
import re
import time
from dataclasses import dataclass

from distributor.config import Settings
from distributor.errors import InvalidToken
from subscribers.tokens import TokenPurpose, TokenSigner

VERP_PREFIX = "bounces"
# Bounces come back within a relay's queue lifetime (days) and complaints within weeks; an older
# address coming back is a replay, and a suppression should not follow it.
VERP_MAX_AGE_SECONDS = 45 * 24 * 3600
VERP_CANDIDATE = re.compile(rf"\b{VERP_PREFIX}\+[0-9a-z-]{{1,80}}@[0-9a-z.-]{{1,253}}", re.I)
_TOKEN = re.compile(r"([0-9]{1,19})-([0-9a-f]{1,12})-([a-z2-7]{26})")


@dataclass(frozen=True)
class Verp:
    """Makes and reads the return paths of one site (its bounce domain and secret key)."""

    domain: str
    signer: TokenSigner

    @classmethod
    def from_settings(cls, settings: Settings) -> Verp | None:
        """None when ``BOUNCE_DOMAIN`` is unset: messages then keep the From address as sender."""
        if settings.bounce_domain is None:
            return None
        return cls(settings.bounce_domain, TokenSigner(settings.require_secret_key()))

    def make_verp(self, delivery_id: int, *, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        return (
            f"{VERP_PREFIX}+{delivery_id}-{issued:x}-{self._tag(delivery_id, issued)}@{self.domain}"
        )

    def parse_verp(
        self, address: str, *, max_age: int = VERP_MAX_AGE_SECONDS, now: float | None = None
    ) -> int:
        """The delivery id ``address`` was made for; :class:`InvalidToken` if it is not a genuine
        return path of this site, or is older than ``max_age`` seconds."""
        local, _, domain = address.strip().strip("<>").lower().rpartition("@")
        if domain != self.domain.lower():
            raise InvalidToken(
                f"the bounce address is for another domain ({domain[:80]!r})",
                code="bounce.other_domain",
                domain=domain[:80],
            )
        prefix, _, token = local.partition("+")
        found = _TOKEN.fullmatch(token)
        if prefix != VERP_PREFIX or found is None:
            raise InvalidToken(
                "the bounce address is not one of ours (damaged or made up)", code="bounce.not_ours"
            )
        delivery_id, issued = int(found[1]), int(found[2], 16)
        if not hmac.compare_digest(found[3], self._tag(delivery_id, issued)):
            raise InvalidToken(
                "the bounce address was altered or forged (its signature is wrong)",
                code="bounce.forged",
            )
        if (time.time() if now is None else now) - issued > max_age:
            raise InvalidToken(
                f"the bounce address is older than {max_age // 86400} days: a replay, not a bounce",
                code="bounce.old",
                days=max_age // 86400,
            )
        return delivery_id

    def _tag(self, delivery_id: int, issued: int) -> str:
        mac = self.signer.mac(TokenPurpose.BOUNCE, f"{delivery_id}:{issued:x}".encode())
        return base64.b32encode(mac).decode("ascii").rstrip("=").lower()
