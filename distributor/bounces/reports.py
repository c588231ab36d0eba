"""The standard reports: RFC 3464 delivery status notifications and RFC 5965 feedback reports.

A DSN has one field block for the message and one per recipient: each recipient that failed or
was delayed is reported, with its cause read from its status and diagnostic (and, when those say
nothing, from the report's words for people). A feedback report is read by its type: abuse,
fraud, virus and other are complaints, opt-out an unsubscribe, auth-failure a DMARC report that
is about us and never touches a reader.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from distributor.bounces.addresses import header_addresses, plain_address
from distributor.bounces.feedback import Feedback, FeedbackKind, RecipientFailure, bounce_of
from distributor.bounces.message import header_text, one_line, parse_headers
from distributor.failures import read_failure
from distributor.vocabulary import FailureCause

DELIVERY_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
FEEDBACK_REPORT_TYPE = "message/feedback-report"
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
OPT_OUT_TYPES = frozenset({"opt-out", "optout"})
AUTH_REPORT_TYPES = frozenset({"auth-failure", "dmarc"})
_DMARC_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:report domain:|dmarc (?:aggregate|failure|forensic) report)",
    re.IGNORECASE,
)
_GIVEN_UP = frozenset({FailureCause.NETWORK, FailureCause.SYSTEM, FailureCause.UNKNOWN})
_STATUS = re.compile(r"([245])\.\d{1,3}\.\d{1,3}")
_MAX_BLOCKS = 20


@dataclass(frozen=True)
class RecipientReport:
    recipient: str | None
    action: str
    status: str | None
    diagnostic: str | None

    @property
    def kind(self) -> FeedbackKind | None:
        """Hard for 5.x.x and for what failed for good (whatever its status: a temporary failure
        given up on), soft for 4.x.x and for delays; None for a success (2.x.x, delivered)."""
        if self.action == "delayed":
            return FeedbackKind.SOFT_BOUNCE
        if self.action == "failed":
            return FeedbackKind.HARD_BOUNCE
        if self.status is not None:
            return {"5": FeedbackKind.HARD_BOUNCE, "4": FeedbackKind.SOFT_BOUNCE}.get(
                self.status[0]
            )
        return FeedbackKind.HARD_BOUNCE if self.action == "failed" else None


def field_blocks(part: Message) -> list[Message]:
    """A report part's field blocks. The parser splits message/delivery-status into blocks itself;
    message/global-delivery-status (RFC 6533) comes as one block with the rest as its body."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return [parse_headers(payload)] if isinstance(payload, str) else []
    blocks = [block for block in payload[:_MAX_BLOCKS] if isinstance(block, Message)]
    if part.get_content_type() == "message/global-delivery-status" and len(blocks) == 1:
        rest = blocks[0].get_payload()
        if isinstance(rest, str):
            blocks += [parse_headers(text) for text in re.split(r"\n\s*\n", rest) if text.strip()]
    return blocks[:_MAX_BLOCKS]


def recipient_reports(part: Message) -> list[RecipientReport]:
    reports = []
    for block in field_blocks(part):
        final, original = block.get("Final-Recipient"), block.get("Original-Recipient")
        if final is None and original is None:
            continue  # the per-message block (Reporting-MTA, Arrival-Date)
        status = _STATUS.search(str(block.get("Status", "")))
        diagnostic = str(block.get("Diagnostic-Code", ""))
        diagnostic = diagnostic.partition(";")[2] if ";" in diagnostic[:12] else diagnostic
        reports.append(
            RecipientReport(
                recipient=plain_address(str(original or "")) or plain_address(str(final or "")),
                action=str(block.get("Action", "")).strip().lower(),
                status=status[0] if status else None,
                diagnostic=one_line(diagnostic) or None,
            )
        )
    return reports


def delivery_status_feedback(part: Message, text: str = "") -> Feedback:
    """A DSN's failures, each recipient's; ``text`` is the report's words for people."""
    reports = recipient_reports(part)
    failures = tuple(
        _failure(report, kind, text) for report in reports if (kind := report.kind) is not None
    )
    if failures:
        first = failures[0]
        return bounce_of(
            failures,
            f"delivery status notification: {reports[0].action or 'no action'}, "
            f"status {first.status or 'not given'}, {first.cause.value}"
            + (f" ({len(failures)} recipients)" if len(failures) > 1 else ""),
            "rfc3464",
        )
    if reports:
        return Feedback(
            FeedbackKind.UNKNOWN, "delivery status notification reports no failure", "rfc3464"
        )
    return Feedback(
        FeedbackKind.UNKNOWN, "delivery status notification names no recipient", "rfc3464"
    )


def is_dmarc_report(message: Message) -> bool:
    """A DMARC aggregate report (``Report Domain: … Submitter: …``, zipped XML) or a failure
    report not in ARF form: about our domain's mail, never a reader's complaint."""
    return bool(_DMARC_SUBJECT.search(header_text(message, "Subject")))


def _failure(report: RecipientReport, kind: FeedbackKind, text: str) -> RecipientFailure:
    permanent = kind is FeedbackKind.HARD_BOUNCE
    reading = read_failure(report.diagnostic or "", status=report.status, permanent=permanent)
    if reading.cause is FailureCause.UNKNOWN and text:
        reading = read_failure(text, status=report.status, permanent=permanent)
    cause = reading.cause
    if permanent and (report.status or "5")[0] == "4" and cause in _GIVEN_UP:
        cause = FailureCause.EXPIRED  # a temporary failure that went on until it was given up
    return RecipientFailure(
        report.recipient, kind, report.status or reading.status, report.diagnostic, cause
    )


def feedback_report_feedback(part: Message, originals: list[Message]) -> Feedback:
    blocks = field_blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = one_line(str(fields.get("Feedback-Type", "")), 40).lower()
    if feedback_type in AUTH_REPORT_TYPES:
        return Feedback(
            FeedbackKind.AUTH_REPORT,
            "DMARC failure report (auth-failure): about our mail, not a reader",
            "arf",
        )
    if feedback_type in OPT_OUT_TYPES:
        kind, what = FeedbackKind.OPT_OUT, "opt-out report"
    elif feedback_type in COMPLAINT_TYPES:
        kind, what = FeedbackKind.COMPLAINT, "abuse report"
    else:
        return Feedback(
            FeedbackKind.UNKNOWN,
            f"feedback report of type {feedback_type or 'none'!r}, not a complaint",
            "arf",
        )
    recipient = plain_address(str(fields.get("Original-Rcpt-To", "")))
    if recipient is None:
        quoted_to = [
            address
            for original in originals
            for address in header_addresses([str(value) for value in original.get_all("To", [])])
        ]
        recipient = quoted_to[0] if len(set(quoted_to)) == 1 else None
    agent = one_line(str(fields.get("User-Agent", "")), 80)
    return Feedback(
        kind,
        f"{what} ({feedback_type}{', from ' + agent if agent else ''})",
        source="arf",
        recipient=recipient,
    )
