"""The pure rules of the engine: retry decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from distributor.channels.base import Outcome, Receipt
from distributor.sending.policy import RetryPolicy, decide
from distributor.vocabulary import DeliveryState

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
POLICY = RetryPolicy(max_attempts=3, base_delay=60, max_delay=100)


def test_accepted_message_is_sent() -> None:
    decision = decide(Receipt(Outcome.SENT, 250, "ok"), attempt=1, policy=POLICY, now=NOW)
    assert decision.state is DeliveryState.SENT and decision.error is None


def test_permanent_refusal_fails_at_once_with_code_and_text() -> None:
    receipt = Receipt(Outcome.FAILED, 550, "5.1.1 no such user")
    decision = decide(receipt, attempt=1, policy=POLICY, now=NOW)
    assert decision.state is DeliveryState.FAILED
    assert decision.error == "550 5.1.1 no such user"


def test_transient_refusal_backs_off_exponentially_then_gives_up() -> None:
    receipt = Receipt(Outcome.DEFERRED, 451, "try later")
    first = decide(receipt, attempt=1, policy=POLICY, now=NOW)
    second = decide(receipt, attempt=2, policy=POLICY, now=NOW)
    assert first.state is DeliveryState.DEFERRED and first.not_before == NOW + timedelta(seconds=60)
    assert second.not_before == NOW + timedelta(seconds=100)  # capped at max_delay
    last = decide(receipt, attempt=3, policy=POLICY, now=NOW)
    assert last.state is DeliveryState.FAILED
    assert last.error == "gave up after 3 attempts; last: 451 try later"

