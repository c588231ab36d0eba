"""The bounce mailbox, polled over IMAP: each message is read (at most ``MAX_MESSAGE_BYTES`` of
it), processed once, and moved out of the way: to the done folder when it was understood, to the
failed folder when a person should look at it. Nothing is deleted, and a second poll finds
nothing new; a message whose processing failed on our side (the database) stays for the next.
"""

from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from distributor.bounces import MAX_MESSAGE_BYTES, Verp
from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.errors import ConfigurationError, DistributorError
from distributor.sending.feedback import PausePolicy, Processed, process_feedback

log = logging.getLogger(__name__)

POLL_LIMIT = 500  # messages per poll: a flood is worked through over several polls
IMAP_TIMEOUT = 60.0
_UID = re.compile(rb"\bUID (\d+)")


@dataclass(frozen=True)
class MailboxSettings:
    host: str
    port: int
    security: str  # ssl, starttls or none
    user: str
    password: str
    folder: str
    done_folder: str
    failed_folder: str

    @classmethod
    def from_settings(cls, settings: Settings) -> MailboxSettings | None:
        """None when no bounce mailbox is configured (``BOUNCE_IMAP_HOST`` unset)."""
        if settings.bounce_imap_host is None:
            return None
        if not settings.bounce_imap_user or not settings.bounce_imap_password:
            raise ConfigurationError(
                "BOUNCE_IMAP_HOST is set but BOUNCE_IMAP_USER or BOUNCE_IMAP_PASSWORD is not"
            )
        return cls(
            settings.bounce_imap_host,
            settings.bounce_imap_port,
            settings.bounce_imap_security,
            settings.bounce_imap_user,
            settings.bounce_imap_password,
            settings.bounce_imap_folder,
            settings.bounce_imap_done_folder,
            settings.bounce_imap_failed_folder,
        )


@dataclass
class PollReport:
    done: int = 0  # understood (applied, or nothing to do) and moved to the done folder
    failed: int = 0  # moved to the failed folder for a person
    left: int = 0  # left in place: processing failed on our side, the next poll tries again

    def to_json(self) -> dict[str, int]:
        return {"done": self.done, "failed": self.failed, "left": self.left}


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


class BounceMailbox:
    """One IMAP session on the bounce mailbox."""

    def __init__(self, imap: imaplib.IMAP4, settings: MailboxSettings) -> None:
        self.imap = imap
        self.settings = settings

    @classmethod
    @contextmanager
    def open(cls, settings: MailboxSettings) -> Iterator[BounceMailbox]:
        imap: imaplib.IMAP4
        try:
            if settings.security == "ssl":
                imap = imaplib.IMAP4_SSL(
                    settings.host,
                    settings.port,
                    ssl_context=ssl.create_default_context(),
                    timeout=IMAP_TIMEOUT,
                )
            else:
                imap = imaplib.IMAP4(settings.host, settings.port, timeout=IMAP_TIMEOUT)
                if settings.security == "starttls":
                    imap.starttls(ssl.create_default_context())
            imap.login(settings.user, settings.password)
        except (OSError, imaplib.IMAP4.error) as error:
            raise DistributorError(
                f"cannot reach the bounce mailbox {settings.user}@{settings.host}:"
                f"{settings.port}: {error}"
            ) from error
        mailbox = cls(imap, settings)
        try:
            for folder in (settings.done_folder, settings.failed_folder):
                imap.create(_quoted(folder))  # "already exists" is fine
            mailbox._check(imap.select(_quoted(settings.folder)), f"select {settings.folder}")
            yield mailbox
        finally:
            with suppress(OSError, imaplib.IMAP4.error):
                imap.logout()

    def uids(self) -> list[str]:
        data = self._check(self.imap.uid("SEARCH", "UNDELETED"), "search")
        return data[0].decode("ascii").split() if data and data[0] else []

    def fetch(self, uid: str) -> bytes:
        """The first ``MAX_MESSAGE_BYTES`` of the message (a partial fetch: a 20 MB message
        costs no more than a small one), without marking it read."""
        data = self._check(
            self.imap.uid("FETCH", uid, f"(BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)"), "fetch"
        )
        for item in data:
            if isinstance(item, tuple) and _UID.search(item[0]):
                return bytes(item[1])
        raise DistributorError(f"the bounce mailbox returned no message for UID {uid}")

    def move(self, uid: str, folder: str) -> None:
        """MOVE where the server has it; else copy, then flag and expunge only that message."""
        status, _data = self.imap.uid("MOVE", uid, _quoted(folder))
        if status == "OK":
            return
        self._check(self.imap.uid("COPY", uid, _quoted(folder)), f"copy to {folder}")
        self._check(self.imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)"), "flag")
        self._check(self.imap.uid("EXPUNGE", uid), "expunge")

    @staticmethod
    def _check(response: tuple[str, list[Any]], what: str) -> list[Any]:
        status, data = response
        if status != "OK":
            raise DistributorError(f"the bounce mailbox refused to {what}: {data!r}"[:300])
        return data


def poll(
    mailbox: BounceMailbox, handle: Callable[[bytes], Processed], *, limit: int = POLL_LIMIT
) -> PollReport:
    """Process up to ``limit`` messages of the mailbox, each moved once it is recorded."""
    report = PollReport()
    for uid in mailbox.uids()[:limit]:
        raw = mailbox.fetch(uid)
        try:
            result = handle(raw)
        except SQLAlchemyError:
            log.exception("bounce message UID %s: not processed, left for the next poll", uid)
            report.left += 1
            continue
        except Exception:  # a stranger's message must never stop the poller
            log.exception("bounce message UID %s: processing failed; moved aside", uid)
            mailbox.move(uid, mailbox.settings.failed_folder)
            report.failed += 1
            continue
        if result.handled:
            mailbox.move(uid, mailbox.settings.done_folder)
            report.done += 1
        else:
            log.warning(
                "bounce message UID %s (%s): %s; moved to %s",
                uid,
                result.kind.value,
                result.reason,
                mailbox.settings.failed_folder,
            )
            mailbox.move(uid, mailbox.settings.failed_folder)
            report.failed += 1
    return report


def feedback_handler(settings: Settings) -> Callable[[bytes], Processed]:
    """Process one message in a transaction of its own, with the site's keys and policy."""
    verp = Verp.from_settings(settings)
    if verp is None:
        raise ConfigurationError("BOUNCE_DOMAIN is not set: there are no bounces to read")
    policy = PausePolicy.from_settings(settings)
    factory = session_factory(settings.database_url)

    def handle(raw: bytes) -> Processed:
        with factory.begin() as session:
            return process_feedback(session, raw, verp=verp, policy=policy, now=utcnow())

    return handle


def poll_bounce_mailbox(settings: Settings) -> PollReport | None:
    """One poll of the configured bounce mailbox; None when there is none."""
    mailbox_settings = MailboxSettings.from_settings(settings)
    if mailbox_settings is None:
        return None
    handle = feedback_handler(settings)
    with BounceMailbox.open(mailbox_settings) as mailbox:
        return poll(mailbox, handle)
