"""Email addresses: one spelling per mailbox, so the same person is never stored (or mailed) twice.

Pure functions, no DNS: whether a mailbox exists is learnt from bounces, not guessed here.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import idna

from distributor.errors import DistributorError
from subscribers.models import EMAIL_MAX

# RFC 5322 dot-atom text: what an unquoted local part may contain.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


class InvalidAddress(DistributorError):
    """The message says what is wrong with the address, for a person to fix it."""


@dataclass(frozen=True)
class Address:
    email: str  # the local part as given, the domain normalised: what we send to
    key: str  # all lower case: what makes two spellings the same subscriber


@lru_cache(maxsize=4096)
def normalise_domain(domain: str) -> str:
    """Lower-case ASCII by IDNA (UTS #46): ``例子.中国`` → ``xn--fsqu00a.xn--fiqs8s``.

    Cached: a list of a million people has a few hundred domains (qq.com, 163.com, …).
    """
    if "." not in domain.strip("."):
        raise InvalidAddress(f"domain '{domain}' has no dot")
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except idna.IDNAError as error:
        raise InvalidAddress(f"domain '{domain}' is not a valid domain name ({error})") from None


def normalise_address(raw: str) -> Address:
    """The address as we store it, or :class:`InvalidAddress`.

    NFKC first: addresses typed with a Chinese input method often carry full-width letters or a
    full-width ＠, which mean the ASCII ones.
    """
    text = unicodedata.normalize("NFKC", raw).strip()
    if not text:
        raise InvalidAddress("the address is empty")
    local, at, domain = text.rpartition("@")
    if not at:
        raise InvalidAddress(f"address '{raw}' has no @")
    if not local:
        raise InvalidAddress(f"address '{raw}' has nothing before the @")
    if not domain:
        raise InvalidAddress(f"address '{raw}' has no domain after the @")
    if len(local) > 64:
        raise InvalidAddress(f"address '{raw}': the part before the @ is over 64 characters")
    if not _LOCAL_PART.fullmatch(local):
        raise InvalidAddress(f"address '{raw}' has characters not allowed before the @")
    email = f"{local}@{normalise_domain(domain)}"
    if len(email) > EMAIL_MAX:
        raise InvalidAddress(f"address '{raw[:40]}…' is longer than {EMAIL_MAX} characters")
    return Address(email=email, key=email.lower())
