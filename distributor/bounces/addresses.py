"""Addresses and Message-IDs found in a stranger's message, kept only when they are plain."""

from __future__ import annotations

import re
from email.utils import getaddresses

from distributor.errors import RenderError
from distributor.render.mime import check_address

# Loose on purpose: what it finds is then held to check_address's strict form.
ADDRESS_IN_TEXT = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}"
)
MESSAGE_ID = re.compile(r"<[!-;=?-~]{1,250}@[!-;=?-~]{1,250}>")  # printable ASCII, no < > or space
DAEMON_LOCAL_PARTS = frozenset(
    {"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon", "mailadmin"}
)


def plain_address(text: str) -> str | None:
    """``text`` as a plain addr-spec (a DSN's ``rfc822;`` type and angle brackets removed), or
    None when it is anything else: an address that fails this never reaches a header or a query."""
    value = text.strip()
    if ";" in value:
        kind, _, value = value.partition(";")
        if kind.strip().lower() not in ("rfc822", "utf-8"):
            return None
    value = value.strip().strip("<>").strip()
    try:
        return check_address(value, "the address")
    except RenderError:
        return None


def header_addresses(values: list[str]) -> list[str]:
    """The plain addresses in address headers (``To``, ``From``), display names dropped."""
    found = []
    for _, address in getaddresses(values):
        plain = plain_address(address)
        if plain is not None:
            found.append(plain)
    return found


def is_daemon(address: str) -> bool:
    return address.partition("@")[0].lower() in DAEMON_LOCAL_PARTS


def single_message_id(values: list[str]) -> str | None:
    """The one Message-ID ``values`` name; None for none, and for several different ones (a
    forged extra header must not pick the delivery)."""
    found = {match[0] for value in values for match in MESSAGE_ID.finditer(value)}
    return found.pop() if len(found) == 1 else None
