"""SMTP servers in this process (aiosmtpd, in a thread of its own) on a free loopback port.

:class:`MaildirSink` accepts everything into a Maildir: the demo's mail server, and where a
developer looks at what would be sent (production mail goes to a real relay, SMTP_HOST). The tests
run the same server around a handler that records and misbehaves.
"""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from distributor.devservers.ports import free_port

Handler = TypeVar("Handler")
DATA_SIZE_LIMIT = 50_000_000  # bytes; well above any issue, so the server never truncates one


class LoopbackSmtpServer(Generic[Handler]):
    """An aiosmtpd server on 127.0.0.1:``port`` (0 picks a free one) while the with-block runs;
    ``handler`` answers each message (aiosmtpd's ``handle_DATA``)."""

    def __init__(self, handler: Handler, port: int = 0) -> None:
        self.handler = handler
        self.port = port or free_port()
        self.controller = Controller(
            handler, hostname="127.0.0.1", port=self.port, data_size_limit=DATA_SIZE_LIMIT
        )

    def env(self) -> dict[str, str]:
        """The settings that send mail here."""
        return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(self.port), "SMTP_SECURITY": "none"}

    def __enter__(self) -> Self:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


class MaildirHandler:
    def __init__(self, maildir: mailbox.Maildir) -> None:
        self.maildir = maildir
        self.count = 0
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        with self._lock:
            self.maildir.add(data)
            self.count += 1
        return "250 2.0.0 stored"


class MaildirSink(LoopbackSmtpServer[MaildirHandler]):
    """Stores each message it accepts in the Maildir at ``path`` (created if missing)."""

    def __init__(self, path: Path, port: int = 0) -> None:
        super().__init__(MaildirHandler(mailbox.Maildir(path, create=True)), port)
        self.path = path

    @property
    def received(self) -> int:
        return self.handler.count
