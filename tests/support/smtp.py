"""A real SMTP server on loopback (aiosmtpd) that records what it accepts and can misbehave."""

from __future__ import annotations

import email
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message

from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

from distributor.devservers.smtp import LoopbackSmtpServer
from tests.support.polling import wait_until

# (recipient, attempt number at this server for that recipient) -> an SMTP reply, or None = accept
Fault = Callable[[str, int], str | None]


@dataclass
class Received:
    recipient: str
    sender: str
    data: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> Message:
        return email.message_from_bytes(self.data)


@dataclass
class RecordingHandler:
    fault: Fault | None = None
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    attempts: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    in_flight_by_domain: Counter[str] = field(default_factory=Counter)
    max_in_flight_by_domain: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPProtocol, session: Session, envelope: Envelope) -> str:
        domain = envelope.rcpt_tos[0].rpartition("@")[2]
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.in_flight_by_domain[domain] += 1
            self.max_in_flight_by_domain[domain] = max(
                self.max_in_flight_by_domain[domain], self.in_flight_by_domain[domain]
            )
        try:
            if self.delay:
                import asyncio

                await asyncio.sleep(self.delay)
            recipient = envelope.rcpt_tos[0]
            with self.lock:
                self.attempts[recipient] += 1
                attempt = self.attempts[recipient]
            reply = self.fault(recipient, attempt) if self.fault else None
            if reply is not None:
                return reply
            data = envelope.original_content or b""
            with self.lock:
                self.received.append(Received(recipient, str(envelope.mail_from), data))
            return "250 2.0.0 OK queued"
        finally:
            with self.lock:
                self.in_flight -= 1
                self.in_flight_by_domain[domain] -= 1

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(r.recipient for r in self.received)

    def wait_for(self, n: int, timeout: float) -> None:
        """Return once ``n`` messages have been accepted in all."""
        wait_until(
            lambda: len(self.received),
            lambda count: count >= n,
            timeout=timeout,
            what=f"{n} messages received",
        )


class SmtpServer(LoopbackSmtpServer[RecordingHandler]):
    """The development SMTP server around a recording handler (a plain one unless given)."""

    def __init__(self, handler: RecordingHandler | None = None) -> None:
        super().__init__(handler or RecordingHandler())
