"""Our Message-IDs: ``<s{send_id}.r{subscriber_id}.{mac}@{domain}>``, signed so that a bounce or a
complaint quoting one can be traced back to its delivery without trusting anything else in it.

Made by :func:`distributor.render.personalise.personalise`, read back by
:mod:`distributor.bounces.match`; both go through this module so the key derivation is one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from dataclasses import dataclass

MAC_HEX_CHARS = 16  # 64 bits: a forged Message-ID is sent to us by mail, one guess per message
_MESSAGE_ID = re.compile(r"<s(\d{1,19})\.r(\d{1,19})\.([0-9a-f]{16})@[^<>@\s]{1,253}>")


@dataclass(frozen=True)
class MessageRef:
    """Which send and subscriber a genuine Message-ID of ours names."""

    send_id: int
    subscriber_id: int


def make_message_id(secret: str, send_id: int, subscriber_id: int, domain: str) -> str:
    return f"<s{send_id}.r{subscriber_id}.{_mac(secret, send_id, subscriber_id)}@{domain}>"


def parse_message_id(secret: str, message_id: str) -> MessageRef | None:
    """The send and subscriber ``message_id`` names if it is one of ours with a valid tag;
    None for anyone else's and for forged ones."""
    found = _MESSAGE_ID.fullmatch(message_id.strip())
    if found is None:
        return None
    send_id, subscriber_id = int(found[1]), int(found[2])
    if not hmac.compare_digest(found[3], _mac(secret, send_id, subscriber_id)):
        return None
    return MessageRef(send_id, subscriber_id)


def _mac(secret: str, send_id: int, subscriber_id: int) -> str:
    return hmac.new(
        _message_id_key(secret), f"{send_id}.{subscriber_id}".encode(), hashlib.sha256
    ).hexdigest()[:MAC_HEX_CHARS]


@functools.lru_cache(maxsize=4)
def _message_id_key(secret: str) -> bytes:
    """A key of its own for Message-IDs, so they reveal nothing about the link-signing key."""
    return hmac.new(secret.encode(), b"distributor-message-id", hashlib.sha256).digest()
