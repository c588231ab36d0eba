"""The signature on every webhook post, as the receiver checks it (pure).

Headers: ``Webhook-Id`` (the idempotency id: the same on every retry of one event to one
webhook), ``Webhook-Timestamp`` (Unix seconds of this try) and ``Webhook-Signature``:
``v1=`` and the hex HMAC-SHA256, keyed with the webhook's secret, of
``"{id}.{timestamp}.{body}"``. A receiver recomputes it over the raw body, compares in constant
time, refuses a timestamp more than five minutes away (a replay), and keeps the ids it has
handled (a retry after a lost answer is the same event).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOLERANCE_SECONDS = 300


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Webhook-Id": event_id,
        "Webhook-Timestamp": str(timestamp),
        "Webhook-Signature": signature(secret, event_id, timestamp, body),
    }


def verify(
    secret: str, event_id: str, timestamp: str, body: bytes, given: str, *, now: float
) -> bool:
    """What a receiver does (and the tests do): the signature holds and the time is near."""
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(signature(secret, event_id, int(timestamp), body), given)
