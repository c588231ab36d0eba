"""Email addresses: one spelling per mailbox, so the same person is never stored (or mailed) twice.

This is the one address rule: :data:`PLAIN_ADDRESS` is what a message may be sent to (the renderer
checks every recipient with :func:`is_plain_address`), and :func:`normalise_address` stores
nothing that does not match it, so no stored subscriber is one that every send would fail.

Pure functions, no DNS: whether a mailbox exists is learnt from bounces, not guessed here.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

import idna

from distributor.errors import InvalidAddress
from subscribers.models import EMAIL_MAX
from subscribers.text import shorten

# RFC 5322 dot-atom text: what an unquoted local part may contain.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATOM}(?:\.{_ATOM})*"
# An ASCII host name of two labels or more of at most 63 characters each, no trailing dot
# (RFC 5321 has no root label).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})+"
_LOCAL_PART = re.compile(_DOT_ATOM)
_ASCII_DOMAIN = re.compile(_DOMAIN)
PLAIN_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOMAIN}")
LOCAL_PART_MAX = 64  # RFC 5321
# The rule as a contract states it (an API's schema; the same in ECMA-262 and Python): a plain
# address as stored, its local part at most 64 characters. Whatever matches it is stored as given.
ADDRESS_PATTERN = rf"^(?![^@]{{{LOCAL_PART_MAX + 1}}}){_DOT_ATOM}@{_DOMAIN}$"
DOMAIN_PATTERN = rf"^{_DOMAIN}$"  # a mail domain as a contract states it: ``qq.com``


# A sender may also be at localhost, the one single-label name that always means this machine
# (RFC 6761): the default MAIL_FROM then works with a local mail server out of the box.
LOCAL_SENDER = re.compile(rf"{_DOT_ATOM}@localhost")


def is_plain_address(address: str) -> bool:
    """An ASCII addr-spec that is safe in a header and deliverable: what a send requires."""
    return PLAIN_ADDRESS.fullmatch(address) is not None


def is_sender_address(address: str) -> bool:
    """What MAIL_FROM may be: a plain address, or one at localhost."""
    return is_plain_address(address) or LOCAL_SENDER.fullmatch(address) is not None


class Address(NamedTuple):
    """A named tuple: an import makes a million, and a tuple is made several times faster than
    a frozen dataclass."""

    email: str  # the local part as given, the domain normalised: what we send to
    key: str  # all lower case: what makes two spellings the same subscriber


@lru_cache(maxsize=4096)
def normalise_domain(domain: str) -> str:
    """Lower-case ASCII by IDNA (UTS #46): ``例子.中国`` → ``xn--fsqu00a.xn--fiqs8s``.

    One trailing dot is dropped: ``qq.com.`` (a sentence's full stop, or the 。 a Chinese input
    method types) names the same domain as ``qq.com`` in DNS, but no mail server takes it in an
    address (RFC 5321). Refusing it would lose a reader whose mailbox is plain to see.

    Cached: a list of a million people has a few hundred domains (qq.com, 163.com, …). An ASCII
    host name is only lower-cased: IDNA would refuse some that DNS and mail take (``ab--cd.com``),
    and whether such a domain takes mail is learnt from bounces, as for any other.
    """
    if _ASCII_DOMAIN.fullmatch(domain):
        return domain.lower()
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii").lower()
    except idna.IDNAError as error:
        raise InvalidAddress(
            f"domain '{shorten(domain)}' is not a valid domain name ({shorten(str(error))})",
            code="address.bad_domain",
            domain=shorten(domain),
        ) from None
    ascii_domain = ascii_domain.removesuffix(".")
    if "." not in ascii_domain:
        raise InvalidAddress(
            f"domain '{shorten(domain)}' has no dot", code="address.no_dot", domain=shorten(domain)
        )
    return ascii_domain


def normalise_address(raw: str) -> Address:
    """The address as we store it, or :class:`InvalidAddress`; always a :data:`PLAIN_ADDRESS`.

    NFKC first: addresses typed with a Chinese input method often carry full-width letters or a
    full-width ＠, which mean the ASCII ones. An ASCII address already plain (most, in a file of a
    million) only has its domain lower-cased: one test, where the steps below take five.
    """
    text = raw.strip()
    if text.isascii() and PLAIN_ADDRESS.fullmatch(text) and len(text) <= EMAIL_MAX:
        local, _, domain = text.rpartition("@")
        if len(local) <= LOCAL_PART_MAX:
            email = f"{local}@{domain.lower()}"
            return Address(email=email, key=email.lower())
    shown = shorten(raw)
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidAddress("the address is empty", code="address.empty")
    local, at, domain = text.rpartition("@")
    if not at:
        raise InvalidAddress(f"address '{shown}' has no @", code="address.no_at", address=shown)
    if not local:
        raise InvalidAddress(
            f"address '{shown}' has nothing before the @", code="address.no_local", address=shown
        )
    if not domain:
        raise InvalidAddress(
            f"address '{shown}' has no domain after the @", code="address.no_domain", address=shown
        )
    if len(local) > LOCAL_PART_MAX:
        raise InvalidAddress(
            f"address '{shown}': the part before the @ is over {LOCAL_PART_MAX} characters",
            code="address.local_long",
            address=shown,
        )
    if not _LOCAL_PART.fullmatch(local):
        raise InvalidAddress(
            f"address '{shown}' has characters not allowed before the @",
            code="address.local_chars",
            address=shown,
        )
    email = f"{local}@{normalise_domain(domain)}"
    if len(email) > EMAIL_MAX:
        raise InvalidAddress(
            f"address '{shown}' is longer than {EMAIL_MAX} characters",
            code="address.long",
            address=shown,
            most=EMAIL_MAX,
        )
    if not is_plain_address(email):  # the guarantee, whatever IDNA lets through
        raise InvalidAddress(
            f"address '{shown}' is not a plain ASCII address that mail can reach",
            code="address.not_plain",
            address=shown,
        )
    return Address(email=email, key=email.lower())
