"""A real SMTP server on loopback (aiosmtpd) that records what it accepts and can misbehave."""

from __future__ import annotations

import asyncio
import email
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from email.message import Message

from aiosmtpd.smtp import SMTP as SMTPProtocol
from aiosmtpd.smtp import Envelope, Session

from distributor.devservers.ports import free_port
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


@dataclass
class PipeliningHandler(RecordingHandler):
    """A recording server that offers PIPELINING (RFC 2920; aiosmtpd reads commands in order
    from its stream, so it serves them) and can refuse chosen recipients at RCPT, or take
    ``rcpt_delay[address]`` seconds to answer theirs."""

    refuse_rcpt: Callable[[str], str | None] | None = None
    rcpt_delay: dict[str, float] = field(default_factory=dict)

    async def handle_EHLO(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, hostname: str,
        responses: list[str],
    ) -> list[str]:  # fmt: skip
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_RCPT(
        self, server: SMTPProtocol, session: Session, envelope: Envelope, address: str,
        options: list[str],
    ) -> str:  # fmt: skip
        if address in self.rcpt_delay:
            await asyncio.sleep(self.rcpt_delay[address])
        refusal = self.refuse_rcpt(address) if self.refuse_rcpt else None
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"


class Tap:
    """A TCP relay on loopback in front of a server that logs, in order, what each side wrote:
    shows which commands a client sent without waiting for an answer."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.log: list[tuple[str, bytes]] = []
        self._open: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stop = threading.Event()

    def __enter__(self) -> Tap:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._listener.close()

    def cut(self) -> None:
        """Drop every connection now, both ways, as a network failure would."""
        for sock in self._open:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def turns(self) -> list[tuple[str, bytes]]:
        """The log with each side's consecutive writes joined: one entry per turn."""
        turns: list[tuple[str, bytes]] = []
        for side, data in list(self.log):
            if turns and turns[-1][0] == side:
                turns[-1] = (side, turns[-1][1] + data)
            else:
                turns.append((side, data))
        return turns

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            self._open += (client, server)
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        with selectors.DefaultSelector() as selector, client, server:
            selector.register(client, selectors.EVENT_READ, (client, server, "client"))
            selector.register(server, selectors.EVENT_READ, (server, client, "server"))
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    sock, other, side = key.data
                    try:
                        data = sock.recv(1 << 16)
                        if data:
                            other.sendall(data)
                    except OSError:
                        return
                    if not data:
                        return
                    self.log.append((side, data))
