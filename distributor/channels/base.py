"""The narrow interface every channel (SMTP now, WeChat later) implements."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol


class Outcome(StrEnum):
    SENT = "sent"
    DEFERRED = "deferred"  # try again later: 4xx, a dropped connection, a timeout
    FAILED = "failed"  # never try again: 5xx


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipient: str
    data: bytes
    # CRLF line ends throughout, no line starting with a dot, a final CRLF: DATA content as is,
    # so the channel skips its normalising pass over the bytes (a personalised message is).
    wire_ready: bool = False


@dataclass(frozen=True)
class Receipt:
    outcome: Outcome
    code: int | None = None
    response: str = ""
    # The server never got the message (no connection before DATA): safe to send elsewhere.
    unsent: bool = False


class Channel(Protocol):
    name: str

    def send(self, envelope: Envelope, then: Envelope | None = None) -> Receipt:
        """Deliver one message; never raises for a delivery problem, only reports it. ``then``,
        the message the caller will most likely send next on this channel, may be started
        meanwhile (a following ``send(then)`` then waits less); any other next call drops it."""
        ...

    def drop_started(self) -> None:
        """Take back what ``send``'s ``then`` started, if anything: it is not coming."""
        ...

    def close(self) -> None: ...
