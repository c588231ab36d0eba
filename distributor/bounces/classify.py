"""``classify(raw) -> Feedback``: what one message in the bounce mailbox is, from its bytes alone.

The order matters: a standard report part decides first (its fields are written for programs);
then the signs of a bounce (a mailer daemon, a bounce subject), read as text; then the signs of
an automatic reply, which bounces carry too (``Auto-Submitted``); anything else is unknown.
Nothing here raises on a stranger's message: every failure to read is an ``unknown`` with a
reason.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from email.errors import MessageError
from email.message import Message

from distributor.bounces.addresses import single_message_id
from distributor.bounces.autoreply import auto_reply_reason
from distributor.bounces.feedback import Feedback, FeedbackKind
from distributor.bounces.message import (
    MAX_TEXT_CHARS,
    header_text,
    parse,
    parse_headers,
    part_text,
    parts,
    raw_headers,
)
from distributor.bounces.plaintext import looks_like_bounce, plaintext_feedback
from distributor.bounces.reports import (
    DELIVERY_STATUS_TYPES,
    FEEDBACK_REPORT_TYPE,
    delivery_status_feedback,
    feedback_report_feedback,
    is_dmarc_report,
)
from distributor.render.verp import VERP_CANDIDATE

# Where a bounce names the address it was sent to: our MX's headers first, then the report's.
_ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


@dataclass(frozen=True)
class Reading:
    """The parts of a message that matter here, found in one bounded walk."""

    message: Message
    text: str  # the message's own text parts (not a returned original), decoded
    delivery_status: Message | None
    feedback_report: Message | None
    originals: list[Message]  # headers of the message it returns (message/rfc822, rfc822-headers)

    @classmethod
    def of(cls, message: Message) -> Reading:
        plain: list[str] = []
        html: list[str] = []
        delivery_status = feedback_report = None
        originals: list[Message] = []
        for part, returned in parts(message):
            kind = part.get_content_type()
            if returned or part.get_content_maintype() == "multipart":
                continue  # a part of the original we sent says nothing about its fate
            if kind == "message/rfc822":
                originals += [m for m in _payload_list(part)[:1] if isinstance(m, Message)]
            elif kind == "text/rfc822-headers":
                originals.append(parse_headers(part_text(part)))
            elif kind in DELIVERY_STATUS_TYPES:
                delivery_status = delivery_status or part
            elif kind == FEEDBACK_REPORT_TYPE:
                feedback_report = feedback_report or part
            elif kind == "text/plain":
                plain.append(part_text(part))
            elif kind == "text/html":
                html.append(part_text(part))
        text = "\n\n".join(plain or html)[:MAX_TEXT_CHARS]
        return cls(message, text, delivery_status, feedback_report, originals)


def classify(raw: bytes) -> Feedback:
    """What ``raw`` (a whole message, or at least its first ``MAX_MESSAGE_BYTES``) is."""
    try:
        reading = Reading.of(parse(raw))
        feedback = _kind_of(reading)
        return replace(
            feedback,
            verp_address=_verp_address(reading),
            original_message_id=_original_message_id(reading, feedback),
        )
    except (MessageError, ValueError, LookupError, RecursionError, TypeError) as error:
        # The email package survives most damage by recording defects; this is for the rest.
        return Feedback(FeedbackKind.UNKNOWN, f"unreadable message ({type(error).__name__})")


def _kind_of(reading: Reading) -> Feedback:
    if reading.delivery_status is not None:
        return delivery_status_feedback(reading.delivery_status, reading.text)
    if reading.feedback_report is not None:
        return feedback_report_feedback(reading.feedback_report, reading.originals)
    if is_dmarc_report(reading.message):
        return Feedback(FeedbackKind.AUTH_REPORT, "DMARC report: about our mail, not a reader")
    if looks_like_bounce(reading.message):
        return plaintext_feedback(reading.message, reading.text)
    reason = auto_reply_reason(reading.message)
    if reason is not None:
        return Feedback(FeedbackKind.AUTO_REPLY, reason, "auto-reply")
    if reading.message.get_content_type() == "multipart/report":
        return Feedback(FeedbackKind.UNKNOWN, "a report without a delivery-status or feedback part")
    return Feedback(FeedbackKind.UNKNOWN, "not a bounce, a complaint or an automatic reply")


def _verp_address(reading: Reading) -> str | None:
    """The first return path of ours the message was addressed to (or, in an abuse report, that
    the reported message carried). Unverified: :mod:`distributor.bounces.match` checks it."""
    sources = [(reading.message, name) for name in _ENVELOPE_HEADERS]
    sources += [(original, "Return-Path") for original in reading.originals]
    for message, name in sources:
        for value in raw_headers(message, name):
            found = VERP_CANDIDATE.search(value)
            if found is not None:
                return found[0]
    return None


def _original_message_id(reading: Reading, feedback: Feedback) -> str | None:
    """The Message-ID of the message this is about: the returned headers, else a ``Message-ID:``
    line the text quotes, else (bounces only) ``In-Reply-To``. Two different ones: none."""
    quoted = [
        value for original in reading.originals for value in raw_headers(original, "Message-ID")
    ]
    if not quoted:
        quoted = [
            line.partition(":")[2]
            for line in reading.text.splitlines()
            if line.strip().lower().startswith("message-id:")
        ]
    if not quoted and feedback.kind is not FeedbackKind.AUTO_REPLY:
        quoted = (
            [header_text(reading.message, "In-Reply-To")]
            if reading.message.get("In-Reply-To")
            else []
        )
    return single_message_id(quoted)


def _payload_list(part: Message) -> list[Message | str]:
    payload = part.get_payload()
    return payload if isinstance(payload, list) else []
