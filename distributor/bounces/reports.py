"""The standard reports: RFC 3464 delivery status notifications and RFC 5965 abuse reports.

A DSN has one field block for the message and one per recipient; ours carry one recipient each,
so the first block that reports a failure or a delay decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

from distributor.bounces.addresses import header_addresses, plain_address
from distributor.bounces.feedback import Feedback, FeedbackKind
from distributor.bounces.message import one_line, parse_headers

DELIVERY_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
FEEDBACK_REPORT_TYPE = "message/feedback-report"
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})
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
        """Hard for 5.x.x, soft for 4.x.x and for delays; None for a success (2.x.x, delivered)."""
        if self.action == "delayed":
            return FeedbackKind.SOFT_BOUNCE
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


def delivery_status_feedback(part: Message) -> Feedback:
    reports = recipient_reports(part)
    for report in reports:
        kind = report.kind
        if kind is not None:
            return Feedback(
                kind,
                f"delivery status notification: {report.action or 'no action'}, "
                f"status {report.status or 'not given'}",
                source="rfc3464",
                recipient=report.recipient,
                status=report.status,
                diagnostic=report.diagnostic,
            )
    if reports:
        return Feedback(
            FeedbackKind.UNKNOWN, "delivery status notification reports no failure", "rfc3464"
        )
    return Feedback(
        FeedbackKind.UNKNOWN, "delivery status notification names no recipient", "rfc3464"
    )


def feedback_report_feedback(part: Message, originals: list[Message]) -> Feedback:
    blocks = field_blocks(part)
    fields = blocks[0] if blocks else Message()
    feedback_type = one_line(str(fields.get("Feedback-Type", "")), 40).lower()
    if feedback_type not in COMPLAINT_TYPES:
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
        FeedbackKind.COMPLAINT,
        f"abuse report ({feedback_type}{', from ' + agent if agent else ''})",
        source="arf",
        recipient=recipient,
    )
