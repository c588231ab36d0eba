"""Why a message did not arrive, in words staff read: the cause the sending engine and the bounce
reader already found (:mod:`distributor.failures`), else the cause read now from the server's
answer; never the raw SMTP reply as the main text (pages keep it as a detail).

Pure: a cause's message id is ``reason.<cause>`` in the staff texts (zh-CN and en).
"""

from __future__ import annotations

from distributor.failures import read_failure
from distributor.vocabulary import DeliveryState, FailureCause

# States whose rows are shown with the reason they did not arrive (yet).
REASONED_STATES = frozenset(
    state.value
    for state in (
        DeliveryState.DEFERRED,
        DeliveryState.FAILED,
        DeliveryState.BOUNCED,
    )
)
# States in which a row's stored answer is no error (a sent row keeps the server's "250 OK").
NO_ERROR_STATES = frozenset({DeliveryState.SENT.value, DeliveryState.PENDING.value})


def failure_cause(cause: str | None, code: int | None, words: str | None) -> FailureCause:
    """The cause kept on a delivery, or read from its answer (``code``, ``words``)."""
    if cause:
        try:
            return FailureCause(cause)
        except ValueError:
            pass
    if not words and code is None:
        return FailureCause.UNKNOWN
    return read_failure(words or "", code=code).cause


REASON_PREFIX = "reason."  # then a FailureCause's value


def reason_key(cause: str | None, code: int | None = None, words: str | None = None) -> str:
    """The message id of the words for a failure: ``reason.address_gone`` for a
    ``550 5.1.1 user unknown`` (邮箱不存在)."""
    return REASON_PREFIX + failure_cause(cause, code, words).value


def error_of(state: str, detail: str | None) -> str | None:
    """A delivery's stored answer as its error, or None where it is no error."""
    return None if state in NO_ERROR_STATES or not detail else detail
