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
    CLAIMED = "claimed"
    SENT = "sent"
    DEFERRED = "deferred"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    CANCELLED = "cancelled"
    # Feedback loop: a sent message came back (hard bounce) or was reported as spam.
    BOUNCED = "bounced"
    COMPLAINED = "complained"
