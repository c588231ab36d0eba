"""What happens after an attempt: pure rules, tested without a server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from distributor.channels.base import Outcome, Receipt
from distributor.vocabulary import DeliveryState


@dataclass(frozen=True)
class RetryPolicy:
    """Deferred deliveries wait ``base_delay · 2^(attempt-1)`` seconds (capped), up to a limit."""

    max_attempts: int
    base_delay: float  # seconds
    max_delay: float  # seconds

    def delay(self, attempt: int) -> timedelta:
        return timedelta(seconds=min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Decision:
    state: DeliveryState
    not_before: datetime | None
    error: str | None


def decide(receipt: Receipt, *, attempt: int, policy: RetryPolicy, now: datetime) -> Decision:
    """The next state of a delivery whose ``attempt``-th try answered ``receipt``."""
    if receipt.outcome is Outcome.SENT:
        return Decision(DeliveryState.SENT, None, None)
    detail = f"{receipt.code} {receipt.response}".strip() if receipt.code else receipt.response
    if receipt.outcome is Outcome.FAILED:
        return Decision(DeliveryState.FAILED, None, detail)
    if attempt >= policy.max_attempts:
        return Decision(
            DeliveryState.FAILED, None, f"gave up after {attempt} attempts; last: {detail}"
        )
    return Decision(DeliveryState.DEFERRED, now + policy.delay(attempt), detail)
