"""Fill a compiled issue for one recipient: name, signed links, ids, signature → RFC 5322 bytes.

This runs once per recipient, so it does no template rendering and no CSS work: it signs two
tokens, fills the holes of the precompiled parts, base64-encodes them and, when configured, adds
a DKIM signature. Apart from the clock (``Date``, the tokens' issue time) it is a pure function
of its arguments.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from distributor.errors import InvalidRecipient, RenderError
from distributor.render.dkim import DkimSigner
from distributor.render.email import CompiledMessage
from distributor.render.message_ids import make_message_id
from distributor.render.mime import Slot, check_address, clean_name, header_block, mailbox
from subscribers.links import UNSUBSCRIBE_PATH, PublicLinks

DEFAULT_SALUTATION = "读者朋友"  # "dear reader", for subscribers who gave no name
# List-Unsubscribe's mailto: unsubscribe@<the From domain>?subject=unsubscribe-<token>; the bounce
# mailbox poll reads what arrives there (distributor.readers.mailto).
UNSUBSCRIBE_MAILBOX = "unsubscribe"
UNSUBSCRIBE_SUBJECT_PREFIX = "unsubscribe-"


@dataclass(frozen=True)
class Recipient:
    """Who one message goes to; the sending engine maps its subscribers to this."""

    subscriber_id: int
    email: str
    name: str | None = None


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: str
    envelope_from: str
    recipient: str
    data: bytes


def personalise(
    compiled: CompiledMessage,
    recipient: Recipient,
    *,
    send_id: int,
    links: PublicLinks,
    signer: DkimSigner | None = None,
    now: float | None = None,
) -> OutgoingMessage:
    """The exact message ``recipient`` gets from send ``send_id``; :class:`InvalidRecipient` if
    their address cannot be written in a header. DKIM alignment is the caller's check, once per
    send (:func:`check_alignment`).

    The Message-ID is the same for the same (send, recipient), so a retried delivery is
    recognisable as the same message by the receiver. The bytes are ready for SMTP DATA as they
    are: CRLF line ends, a final CRLF, and no line starting with a dot (headers, base64 lines and
    boundaries never do).
    """
    try:
        address = check_address(recipient.email, "the recipient address")
    except RenderError as error:
        raise InvalidRecipient(error.message, code=error.code, **error.params) from None
    name = clean_name(recipient.name)
    # A preview (send 0) is no send: its unsubscribe link is attributed to none.
    unsubscribe_url = links.unsubscribe(recipient.subscriber_id, send_id=send_id or None)
    token = unsubscribe_url.rpartition(UNSUBSCRIBE_PATH)[2]
    values = {
        Slot.NAME: name or DEFAULT_SALUTATION,
        Slot.UNSUBSCRIBE_URL: unsubscribe_url,
        Slot.PREFERENCES_URL: links.preferences(recipient.subscriber_id),
    }
    if compiled.tracked:
        values[Slot.TRACKING_TOKEN] = links.tracking_token(send_id, recipient.subscriber_id)
    message_id = make_message_id(
        links.signer.secret, send_id, recipient.subscriber_id, compiled.domain
    )
    seconds = int(time.time() if now is None else now)
    headers = [
        ("To", mailbox(name, address)),
        ("Date", _date_header(seconds, compiled.zone)),
        ("Message-ID", message_id),
        (
            "List-Unsubscribe",
            f"<{unsubscribe_url}>,\r\n <mailto:{UNSUBSCRIBE_MAILBOX}@{compiled.domain}"
            f"?subject={UNSUBSCRIBE_SUBJECT_PREFIX}{token}>",
        ),
        *compiled.skeleton.headers,
    ]
    body = compiled.skeleton.body(values)
    if signer is not None:
        headers.insert(0, ("DKIM-Signature", signer.sign(headers, body, timestamp=seconds)))
    data = header_block(headers) + body
    return OutgoingMessage(message_id, compiled.from_address, address, data)


def check_alignment(compiled: CompiledMessage, signer: DkimSigner | None) -> None:
    """RenderError unless the DKIM domain aligns with the From domain (relaxed DMARC alignment,
    approximated: the same domain or a parent of it). Checked once per send, not per message."""
    if signer is None:
        return
    if compiled.domain == signer.domain or compiled.domain.endswith("." + signer.domain):
        return
    raise RenderError(
        f"DKIM_DOMAIN {signer.domain!r} does not align with the From domain "
        f"{compiled.domain!r}: DMARC would fail; use the From domain or its parent",
        code="render.dkim_alignment",
        dkim=signer.domain,
        sender=compiled.domain,
    )


@functools.lru_cache(maxsize=4)
def _date_header(seconds: int, zone: ZoneInfo) -> str:
    """Cached per second: a batch shares a handful of distinct values."""
    return format_datetime(datetime.fromtimestamp(seconds, zone))
