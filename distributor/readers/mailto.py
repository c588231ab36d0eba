"""Unsubscribing by mail: what arrives at the ``mailto:`` every message offers in its
List-Unsubscribe header (``unsubscribe@<From domain>?subject=unsubscribe-<token>``).

The operator delivers that address into the bounce mailbox; its poll (and ``distributor bounces
process``) hands each message here first. A message addressed to the unsubscribe address, with
the signed token of one of our unsubscribe links in its subject or body, does exactly what the
one-click link does (:func:`~distributor.readers.unsubscribes.unsubscribe_from_link`); a forged,
altered or missing token changes nothing. A message not addressed there (a bounce, which quotes
our List-Unsubscribe header, goes to the VERP return path) is left to the feedback loop.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses

from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.db import session_factory
from distributor.errors import InvalidToken, NotFound
from distributor.readers.unsubscribes import unsubscribe_from_link
from distributor.render.email import parse_from
from distributor.render.personalise import UNSUBSCRIBE_MAILBOX, UNSUBSCRIBE_SUBJECT_PREFIX
from subscribers.links import UNSUBSCRIBE_PATH
from subscribers.models import SubscriberStatus
from subscribers.public import read_unsubscribe_link
from subscribers.tokens import TokenSigner

log = logging.getLogger(__name__)

# Where the address the message went to is written: by the sender, and by the delivering server.
RECIPIENT_HEADERS = ("To", "Cc", "X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To")
MAX_TEXT_CHARS = 100_000  # of each text part searched for a token
# A token of a link of ours: base64url payload "." a 16-byte MAC (22 characters), after the
# subject's prefix or the unsubscribe link's path.
_TOKEN = re.compile(
    rf"(?:{re.escape(UNSUBSCRIBE_SUBJECT_PREFIX)}|{re.escape(UNSUBSCRIBE_PATH)})"
    r"([A-Za-z0-9_-]{4,400}\.[A-Za-z0-9_-]{22})(?![A-Za-z0-9_-])",
    re.IGNORECASE,
)


def unsubscribe_address(settings: Settings) -> str:
    """The address the List-Unsubscribe mailto names: ``unsubscribe@`` the From domain."""
    return f"{UNSUBSCRIBE_MAILBOX}@{parse_from(settings.mail_from)[2]}"


@dataclass(frozen=True)
class MailtoRequest:
    """A message to the unsubscribe address: the tokens found, the subject's first."""

    tokens: tuple[str, ...]


@dataclass(frozen=True)
class MailtoOutcome:
    """What a message to the unsubscribe address did; the mailbox poll moves it to the done
    folder when ``handled``, else to the failed folder for a person to read."""

    handled: bool
    reason: str
    subscriber_id: int | None = None
    what: str = "mailto unsubscribe"


def read_mailto(raw: bytes, address: str) -> MailtoRequest | None:
    """The unsubscribe request in ``raw`` if it was sent to ``address``; None for any other
    message (and for a delivery report, whatever its address). Pure; never raises."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
        if message.get_content_type() == "multipart/report":
            return None
        wanted = address.lower()
        values = [str(value) for name in RECIPIENT_HEADERS for value in message.get_all(name, [])]
        if not any(found.lower() == wanted for _, found in getaddresses(values)):
            return None
        texts = [str(message.get("Subject", "")), *_texts(message)]
    except Exception:  # a stranger's message: not a request we can read
        log.debug("a message to the unsubscribe address could not be read", exc_info=True)
        return None
    tokens = [match[1] for text in texts for match in _TOKEN.finditer(text)]
    return MailtoRequest(tuple(dict.fromkeys(tokens)))


def _texts(part: Message) -> Iterator[str]:
    """The message's own text parts; an attached message is not the sender's words."""
    if part.is_multipart():
        for sub in part.get_payload():
            if isinstance(sub, Message) and sub.get_content_maintype() != "message":
                yield from _texts(sub)
    elif part.get_content_maintype() == "text" and not part.get_filename():
        yield str(part.get_content())[:MAX_TEXT_CHARS]  # type: ignore[attr-defined]


def apply_mailto(session: Session, signer: TokenSigner, request: MailtoRequest) -> MailtoOutcome:
    """Unsubscribe the person the first genuine token names from everything, as the one-click
    link does (counted against the link's send); nothing for tokens that are not genuine."""
    for token in request.tokens:
        try:
            link = read_unsubscribe_link(session, signer, token)
        except InvalidToken:
            continue
        except NotFound:
            return MailtoOutcome(True, "the subscriber it names no longer exists")
        subscriber_id = link.subscriber.id
        if link.subscriber.status is SubscriberStatus.UNSUBSCRIBED:
            return MailtoOutcome(True, f"subscriber {subscriber_id} had unsubscribed already")
        unsubscribe_from_link(session, signer, token)
        return MailtoOutcome(
            True,
            f"subscriber {subscriber_id} unsubscribed from everything by mail",
            subscriber_id,
        )
    return MailtoOutcome(False, "no valid unsubscribe token in its subject or body: nothing done")


def mailto_unsubscriber(settings: Settings) -> Callable[[bytes], MailtoOutcome | None]:
    """For the mailbox poll and ``bounces process``: each message to the unsubscribe address
    taken in a transaction of its own; None for the others (left to the feedback loop)."""
    address = unsubscribe_address(settings)
    signer = TokenSigner(settings.require_secret_key())
    factory = session_factory(settings.database_url)

    def take(raw: bytes) -> MailtoOutcome | None:
        request = read_mailto(raw, address)
        if request is None:
            return None
        with factory.begin() as session:
            outcome = apply_mailto(session, signer, request)
        log.info("mail to %s: %s", address, outcome.reason)
        return outcome

    return take
