"""SMTP with one reused connection per process, reopened when it breaks.

The transaction is driven step by step (MAIL, RCPT, DATA) so that a connection found dead before
DATA is retried once on a fresh one (nothing was sent), while a failure during or after DATA is
reported as deferred: the server may or may not have taken the message.

Where the server offers PIPELINING (RFC 2920), a message's MAIL, RCPT and DATA go in one write,
and those of the message the caller names as next go behind the one before's content: a message
then costs one wait for the server instead of two. A message started so and then not sent is
dropped by closing the connection, never by ending its content: that would deliver it empty.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from dataclasses import dataclass

from distributor.channels.base import Envelope, Outcome, Receipt
from distributor.config import Settings
from distributor.config_relays import Relay
from distributor.errors import ConfigurationError, ConnectionLostBeforeData
from subscribers.address import is_sender_address


def classify(code: int, response: bytes | str) -> Receipt:
    """The answer as an outcome; its text as the database can keep it (a NUL from a hostile or
    broken server becomes U+FFFD instead of failing the statement that records it)."""
    text = response.decode("utf-8", "replace") if isinstance(response, bytes) else response
    text = text.replace("\x00", "\ufffd")
    if 200 <= code < 300:
        return Receipt(Outcome.SENT, code, text)
    if 400 <= code < 500:
        return Receipt(Outcome.DEFERRED, code, text)
    return Receipt(Outcome.FAILED, code, text)


def _path(address: str) -> str:
    """``<address>`` for MAIL FROM and RCPT TO. Every address is checked plain before it becomes
    an envelope; smtplib's ``quoteaddr`` parses it (a tenth of a message's CPU), needed only for
    one that is not."""
    if is_sender_address(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _dot_stuffed(data: bytes) -> bytes:
    """The message as DATA content: CRLF line ends, leading dots doubled (RFC 5321 4.5.2)."""
    if data.count(b"\n") != data.count(b"\r\n"):
        data = re.sub(rb"\r?\n", b"\r\n", data)
    if data.startswith(b".") or b"\n." in data:
        data = re.sub(rb"(?m)^\.", b"..", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


_ACCEPTED = ((250,), (250, 251), (354,))


def _commands(envelope: Envelope) -> tuple[str, str, str]:
    """MAIL, RCPT, DATA: what a transaction says before its content."""
    return (f"MAIL FROM:{_path(envelope.sender)}", f"RCPT TO:{_path(envelope.recipient)}", "DATA")


def _envelope_commands(envelope: Envelope) -> bytes:
    return "".join(f"{command}\r\n" for command in _commands(envelope)).encode("utf-8")


@dataclass
class SmtpChannel:
    host: str
    port: int
    security: str = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    allow_plaintext_auth: bool = False
    name: str = "email"
    _connection: smtplib.SMTP | None = None
    # The message whose MAIL, RCPT and DATA went out behind the last one's content, their
    # answers not yet read (the server will wait for its content).
    _started: Envelope | None = None
    connections_opened: int = 0

    def __post_init__(self) -> None:
        """A password never crosses the network in clear unless the operator said it may."""
        if self.username and self.security == "none" and not self.allow_plaintext_auth:
            raise ConfigurationError(
                "SMTP_USERNAME is set but SMTP_SECURITY is none: the password would cross the "
                "network in clear. Use SMTP_SECURITY=starttls or ssl; for a relay on this "
                "machine (loopback) only, set SMTP_ALLOW_PLAINTEXT_AUTH=1"
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpChannel:
        """The first relay (the ``SMTP_*`` settings' one unless a relays file names others)."""
        return cls.for_relay(settings.routing.relays[0], settings)

    @classmethod
    def for_relay(cls, relay: Relay, settings: Settings) -> SmtpChannel:
        return cls(
            host=relay.host,
            port=relay.port,
            security=relay.security,
            username=relay.username,
            password=relay.password,
            timeout=settings.smtp_timeout,
            allow_plaintext_auth=settings.smtp_allow_plaintext_auth,
        )

    def _connect(self) -> smtplib.SMTP:
        # Loading the system's CA certificates costs milliseconds of CPU: only when TLS is used.
        context = ssl.create_default_context() if self.security != "none" else None
        connection: smtplib.SMTP
        if self.security == "ssl":
            connection = smtplib.SMTP_SSL(
                self.host, self.port, timeout=self.timeout, context=context
            )
        else:
            connection = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        # Every write is a whole group of commands or a whole message, then the answer is
        # awaited: Nagle's algorithm would only hold a message's last segment back until the
        # server acknowledged the first (smtp-sink, 72 KB messages: 7-10 % more a second).
        if connection.sock is not None:  # connected by the constructor, given a host
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        connection.ehlo()
        if self.security == "starttls":
            connection.starttls(context=context)
            connection.ehlo()
        if self.username:
            connection.login(self.username, self.password or "")
        self.connections_opened += 1
        return connection

    def send(self, envelope: Envelope, then: Envelope | None = None) -> Receipt:
        """Deliver ``envelope``; with PIPELINING, start ``then`` behind its content."""
        for fresh in (False, True):
            try:
                return self._transaction(envelope, then, fresh=fresh)
            except ConnectionLostBeforeData as error:
                if fresh:
                    return Receipt(
                        Outcome.DEFERRED, None, f"connection failed: {error}", unsent=True
                    )
        raise AssertionError("unreachable")

    def _transaction(self, envelope: Envelope, then: Envelope | None, *, fresh: bool) -> Receipt:
        if fresh or (self._started is not None and self._started is not envelope):
            self.close()
        try:
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
            if self._started is envelope:
                self._started = None
                refused = self._answers(connection)
            else:
                refused = self._open_data(connection, envelope)
        except smtplib.SMTPResponseException as error:
            self.close()
            return classify(error.smtp_code, error.smtp_error)
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            raise ConnectionLostBeforeData(f"{type(error).__name__}: {error}") from error
        if refused is not None:
            return refused
        ahead = then if then is not None and connection.has_extn("pipelining") else None
        try:
            data = envelope.data if envelope.wire_ready else _dot_stuffed(envelope.data)
            connection.send(data + b".\r\n" + (_envelope_commands(ahead) if ahead else b""))
            self._started = ahead
            code, response = connection.getreply()
        except (smtplib.SMTPException, OSError) as error:
            self.close()
            return Receipt(Outcome.DEFERRED, None, f"connection lost during DATA: {error}")
        # A refused message's transaction is over all the same: RSET only when no other began.
        if code != 250 and (code == 421 or self._started is None):
            self._reset_or_close(code)
        return classify(code, response)

    def _open_data(self, connection: smtplib.SMTP, envelope: Envelope) -> Receipt | None:
        """MAIL, RCPT, DATA: None once the server waits for the message (354), else its refusal.

        With PIPELINING (RFC 2920) the three commands go in one write and their answers are read
        together: one round trip instead of three, per message."""
        if connection.has_extn("pipelining"):
            connection.send(_envelope_commands(envelope))
            return self._answers(connection)
        replies = []
        for command, ok in zip(_commands(envelope), _ACCEPTED, strict=True):
            connection.putcmd(command)
            replies.append(connection.getreply())
            if replies[-1][0] not in ok:
                break
        return self._check(replies)

    def _answers(self, connection: smtplib.SMTP) -> Receipt | None:
        """The answers to a pipelined MAIL, RCPT and DATA, read together."""
        return self._check([connection.getreply() for _ in _ACCEPTED])

    def _check(self, replies: list[tuple[int, bytes]]) -> Receipt | None:
        for (code, response), ok in zip(replies, _ACCEPTED, strict=False):
            if code not in ok:
                return self._refused(code, response)
        return None

    def _refused(self, code: int, response: bytes) -> Receipt:
        self._reset_or_close(code)
        return classify(code, response)

    def _reset_or_close(self, code: int) -> None:
        """After a refusal the connection is reusable (RSET), except after 421: the server quits."""
        if code == 421 or self._connection is None:
            self.close()
            return
        try:
            self._connection.rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def drop_started(self) -> None:
        """Take back a message started behind the last one, if any (closing the connection)."""
        if self._started is not None:
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        started, self._started = self._started, None
        if connection is not None and started is not None:
            connection.close()  # the server waits for content: a QUIT would be taken as text
        elif connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()
