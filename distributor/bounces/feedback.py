"""What a message in the bounce mailbox said, as a small value: the classifier's only output."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from distributor.failures import FailureReading
from distributor.vocabulary import FailureCause


class FeedbackKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"  # permanent failure (5.x.x): the address does not take our mail
    SOFT_BOUNCE = "soft_bounce"  # temporary failure or delay (4.x.x): it may still arrive
    COMPLAINT = "complaint"  # the reader marked the message as spam (RFC 5965 abuse report)
    OPT_OUT = "opt_out"  # the reader asked their provider to unsubscribe them (ARF opt-out)
    AUTH_REPORT = "auth_report"  # a DMARC report (ARF auth-failure, aggregate): about us only
    AUTO_REPLY = "auto_reply"  # out of office and the like: never a bounce
    UNKNOWN = "unknown"  # not recognised, or refused as hostile; ``reason`` says which


ACTIONABLE = frozenset(
    {FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT,
     FeedbackKind.OPT_OUT}
)  # fmt: skip
BOUNCES = frozenset({FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE})


@dataclass(frozen=True)
class RecipientFailure:
    """One recipient's failure in a report (a DSN may name several)."""

    recipient: str | None
    kind: FeedbackKind  # hard or soft
    status: str | None
    diagnostic: str | None
    cause: FailureCause

    @property
    def reading(self) -> FailureReading:
        return FailureReading(self.cause, self.kind is FeedbackKind.HARD_BOUNCE, self.status)


@dataclass(frozen=True)
class Feedback:
    """One message from the bounce mailbox, read but not yet trusted.

    ``verp_address`` and ``original_message_id`` are what the message *claims*: nothing here is
    verified, so nothing here may pick a delivery. :func:`distributor.bounces.match.match` checks
    their signatures. ``recipient`` is the address the report names (checked to be a plain
    address); a suppression should use the matched delivery's own address, not this one.
    """

    kind: FeedbackKind
    reason: str  # how it was recognised, or why it is unknown: one line for a person
    source: str = ""  # the shape recognised: "rfc3464", "arf", "exim", "exchange", "qq", …
    recipient: str | None = None
    status: str | None = None  # enhanced status "5.1.1", else the SMTP reply code "550"
    diagnostic: str | None = None  # the remote server's words, one clean line
    verp_address: str | None = None  # the bounces+<token>@ address it was sent to
    original_message_id: str | None = None  # the Message-ID of the message it is about
    cause: FailureCause | None = None  # a bounce's: why the message did not arrive
    # Every recipient a bounce reports, the first one's fields repeated above.
    failures: tuple[RecipientFailure, ...] = ()

    @property
    def actionable(self) -> bool:
        return self.kind in ACTIONABLE

    def failure_for(self, address: str) -> RecipientFailure | None:
        """The failure of ``address`` (the matched delivery's), else the report's first."""
        for failure in self.failures:
            if failure.recipient is not None and failure.recipient.lower() == address.lower():
                return failure
        return self.failures[0] if self.failures else None


def bounce_of(failures: tuple[RecipientFailure, ...], reason: str, source: str) -> Feedback:
    """A bounce reporting ``failures`` (at least one): the first one's fields on the whole."""
    first = failures[0]
    return Feedback(
        first.kind,
        reason,
        source,
        recipient=first.recipient,
        status=first.status,
        diagnostic=first.diagnostic,
        cause=first.cause,
        failures=failures,
    )
