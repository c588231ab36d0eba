"""A local SMTP server that accepts everything into a Maildir: for the demo and development.

Production mail goes to a real relay (SMTP_HOST); this is where you look at what would be sent.
"""

from __future__ import annotations

import mailbox
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from distributor.ports import free_port


class _MaildirHandler:
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


class MaildirSink:
    """Listens on 127.0.0.1:``port`` (0 picks a free one) and stores each message in ``path``."""

    def __init__(self, path: Path, port: int = 0) -> None:
        self.path = path
        self.handler = _MaildirHandler(mailbox.Maildir(path, create=True))
        self.port = port or free_port()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, data_size_limit=50_000_000
        )

    @property
    def received(self) -> int:
        return self.handler.count

    def __enter__(self) -> MaildirSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()
