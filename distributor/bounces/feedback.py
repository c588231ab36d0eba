"""What a message in the bounce mailbox said, as a small value: the classifier's only output."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FeedbackKind(StrEnum):
    HARD_BOUNCE = "hard_bounce"  # permanent failure (5.x.x): the address does not take our mail
    SOFT_BOUNCE = "soft_bounce"  # temporary failure or delay (4.x.x): it may still arrive
    COMPLAINT = "complaint"  # the reader marked the message as spam (RFC 5965 abuse report)
    AUTO_REPLY = "auto_reply"  # out of office and the like: never a bounce
    UNKNOWN = "unknown"  # not recognised, or refused as hostile; ``reason`` says which


ACTIONABLE = frozenset({FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE, FeedbackKind.COMPLAINT})


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

    @property
    def actionable(self) -> bool:
        return self.kind in ACTIONABLE
