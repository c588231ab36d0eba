"""The words every room shares: the forms an issue is sent in, the channels, and the states of a
send and of a delivery as staff see them.

The ground floor: it imports nothing of the project, and issues, subscribers, render, the engines
and the faces all import their shared names from here, so no room depends on another only for a
word. A room's own words (an attempt's outcome, a WeChat job's state) stay in its room.
"""

from __future__ import annotations

from enum import StrEnum


class Variant(StrEnum):
    """The forms an issue is sent in: rendering makes them, a subscriber chooses one of the email
    forms (full, digest, text), and each delivery records the one it got."""

    FULL = "full"  # the whole issue as responsive HTML, with a plain-text part
    DIGEST = "digest"  # headlines and opening sentences, linking to the archive
    TEXT = "text"  # plain text only
    WECHAT = "wechat"  # the WeChat article (not an email)


EMAIL_VARIANTS = (Variant.FULL, Variant.DIGEST, Variant.TEXT)


class DeliveryChannel(StrEnum):
    """Where a delivery goes: an email address, or a WeChat follower (openid)."""

    EMAIL = "email"
    WECHAT = "wechat"


class SendState(StrEnum):
    """draft → scheduled → running → done; running may be paused, anything open cancelled, and a
    scheduled send whose workers were down past its expiry becomes expired until resumed."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    DONE = "done"


class DeliveryState(StrEnum):
    """One recipient's message in one send (see :mod:`distributor.sending.models` for the moves)."""

    PENDING = "pending"
    # An A/B test's rest of the audience: waits, never claimed, until the winner is known.
    HELD = "held"
    CLAIMED = "claimed"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    # Feedback loop: a sent message came back (hard bounce) or was reported as spam.
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class FailureCause(StrEnum):
    """Why a message did not arrive, as one word: read from a bounce or from the SMTP server's own
    answer by :func:`distributor.failures.read_failure`, kept with a suppression as its cause, and
    the key by which staff lift suppressions in bulk.

    Only the first three are about the reader; the rest are about us or the path between."""

    ADDRESS_GONE = "address_gone"  # user or host unknown, moved, a domain that takes no mail
    MAILBOX_FULL = "mailbox_full"  # over quota
    MAILBOX_DISABLED = "mailbox_disabled"  # disabled, suspended, frozen, inactive
    BLOCKED = "blocked"  # our IP or domain: reputation, blocklist, PTR, rate, too many connections
    AUTHENTICATION = "authentication"  # SPF, DKIM, DMARC
    CONTENT = "content"  # spam, virus, policy, too big
    RELAY = "relay"  # relaying denied, our sender address refused, our relay's login
    EXPIRED = "expired"  # queued too long without an answer
    NETWORK = "network"  # no connection, DNS lookups that failed, time-outs
    SYSTEM = "system"  # the receiving system's own trouble: loops, protocol, full disks
    UNKNOWN = "unknown"  # nothing we can read


READER_CAUSES = frozenset(
    {FailureCause.ADDRESS_GONE, FailureCause.MAILBOX_FULL, FailureCause.MAILBOX_DISABLED}
)
