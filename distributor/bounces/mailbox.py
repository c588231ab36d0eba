"""The bounce mailbox, polled over IMAP: each message is read (at most ``MAX_MESSAGE_BYTES`` of
it), processed once, and moved out of the way: to the done folder when it was understood, to the
failed folder when a person should look at it. Nothing is deleted, and a second poll finds
nothing new; a message whose processing failed on our side (the database) stays for the next.

Messages are applied in batches of :data:`BATCH_SIZE`, one transaction each, and moved only once
it is committed; a batch that fails is retried one message per transaction, so one bad message
neither loses nor holds back the others.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import re
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from distributor.bounces import MAX_MESSAGE_BYTES
from distributor.bounces.apply import PausePolicy, Processed, Reading, apply_readings, read
from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.errors import ConfigurationError, DistributorError
from distributor.render.verp import Verp

log = logging.getLogger(__name__)

POLL_LIMIT = 500  # messages per poll: a flood is worked through over several polls
BATCH_SIZE = 100  # messages per transaction: at most 25 MB read (256 KB each) before it commits
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
        host = settings.bounce_imap_host
        if (
            settings.bounce_imap_security == "none"
            and not _is_loopback(host)
            and not settings.bounce_imap_allow_plaintext
        ):
            raise ConfigurationError(
                f"BOUNCE_IMAP_SECURITY=none would send the mailbox password in clear to {host}: "
                "use ssl or starttls (or BOUNCE_IMAP_ALLOW_PLAINTEXT=1 for a network you trust)"
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


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


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
                f"{settings.port}: {error}",
                code="bounce.unreachable",
                mailbox=f"{settings.user}@{settings.host}:{settings.port}",
                problem=str(error),
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
        raise DistributorError(
            f"the bounce mailbox returned no message for UID {uid}",
            code="bounce.no_message",
            uid=uid,
        )

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
            raise DistributorError(
                f"the bounce mailbox refused to {what}: {data!r}"[:300],
                code="bounce.refused",
                what=what,
                said=repr(data)[:200],
            )
        return data


class Taken(Protocol):
    """A message another room took before the feedback loop (mail to the List-Unsubscribe
    address, :mod:`distributor.readers.mailto`): moved to the done folder when ``handled``."""

    @property
    def handled(self) -> bool: ...
    @property
    def what(self) -> str: ...
    @property
    def reason(self) -> str: ...


# What became of one message: processed, taken, or the error that stopped it.
Result = Processed | Taken | Exception
Handler = Callable[[Sequence[bytes]], list[Result]]
# Takes the messages it recognises (None for the others, which go to the feedback loop).
TakeFirst = Callable[[bytes], Taken | None]


def poll(
    mailbox: BounceMailbox, handle: Handler, *, limit: int = POLL_LIMIT, batch: int = BATCH_SIZE
) -> PollReport:
    """Process up to ``limit`` messages of the mailbox, ``batch`` at a time, each moved once
    its batch is committed."""
    report = PollReport()
    uids = mailbox.uids()[:limit]
    for start in range(0, len(uids), batch):
        chunk = uids[start : start + batch]
        results = handle([mailbox.fetch(uid) for uid in chunk])
        for uid, result in zip(chunk, results, strict=True):
            _settle(mailbox, uid, result, report)
    return report


def _settle(mailbox: BounceMailbox, uid: str, result: Result, report: PollReport) -> None:
    if isinstance(result, SQLAlchemyError):
        log.error(
            "bounce message UID %s: not processed, left for the next poll",
            uid,
            exc_info=result,
        )
        report.left += 1
    elif isinstance(result, Exception):  # a stranger's message must never stop the poller
        log.error("bounce message UID %s: processing failed; moved aside", uid, exc_info=result)
        mailbox.move(uid, mailbox.settings.failed_folder)
        report.failed += 1
    elif result.handled:
        mailbox.move(uid, mailbox.settings.done_folder)
        report.done += 1
    else:
        log.warning(
            "bounce message UID %s (%s): %s; moved to %s",
            uid,
            result.kind.value if isinstance(result, Processed) else result.what,
            result.reason,
            mailbox.settings.failed_folder,
        )
        mailbox.move(uid, mailbox.settings.failed_folder)
        report.failed += 1


def process_batch(
    factory: sessionmaker[Session],
    raws: Sequence[bytes],
    *,
    verp: Verp,
    policy: PausePolicy,
) -> list[Result]:
    """Read each message, then apply them all in one transaction; if that fails, apply them one
    per transaction, so that a message that fails (or a database error it causes) costs only
    itself. Each result is a :class:`Processed` or the exception that stopped that message."""
    now = utcnow()
    readings: list[Reading | Exception] = []
    for raw in raws:
        try:
            readings.append(read(raw, verp=verp, now=now))
        except Exception as error:  # a stranger's message: the others go on
            readings.append(error)
    good = [each for each in readings if isinstance(each, Reading)]
    try:
        with factory.begin() as session:
            applied = iter(apply_readings(session, good, policy=policy, now=now))
        return [next(applied) if isinstance(each, Reading) else each for each in readings]
    except Exception as error:
        if len(good) == 1:
            return [error if isinstance(each, Reading) else each for each in readings]
        log.warning(
            "a batch of %d bounce messages failed (%s): retrying one by one", len(good), error
        )

    def one(reading: Reading) -> Result:
        try:
            with factory.begin() as session:
                return apply_readings(session, [reading], policy=policy, now=now)[0]
        except Exception as error:
            return error

    return [one(each) if isinstance(each, Reading) else each for each in readings]


def feedback_handler(settings: Settings) -> Handler:
    """Process batches of messages with the site's keys and policy."""
    verp = Verp.from_settings(settings)
    if verp is None:
        raise ConfigurationError("BOUNCE_DOMAIN is not set: there are no bounces to read")
    policy = PausePolicy.from_settings(settings)
    factory = session_factory(settings.database_url)

    def handle(raws: Sequence[bytes]) -> list[Result]:
        return process_batch(factory, raws, verp=verp, policy=policy)

    return handle


def taking_first(take: TakeFirst, then: Handler) -> Handler:
    """``take`` each message it recognises; the rest go to ``then``. A message whose taking
    failed is that failure's (set aside, or left for the next poll)."""

    def handle(raws: Sequence[bytes]) -> list[Result]:
        taken: list[Result | None] = []
        for raw in raws:
            try:
                taken.append(take(raw))
            except Exception as error:  # a stranger's message must never stop the poller
                taken.append(error)
        left = [raw for raw, done in zip(raws, taken, strict=True) if done is None]
        rest = iter(then(left) if left else [])
        return [next(rest) if done is None else done for done in taken]

    return handle


def poll_bounce_mailbox(
    settings: Settings, take_first: TakeFirst | None = None
) -> PollReport | None:
    """One poll of the configured bounce mailbox; None when there is none. ``take_first``: a
    room above that takes some messages itself (the worker passes the mailto unsubscribes)."""
    mailbox_settings = MailboxSettings.from_settings(settings)
    if mailbox_settings is None:
        return None
    handle = feedback_handler(settings)
    if take_first is not None:
        handle = taking_first(take_first, handle)
    with BounceMailbox.open(mailbox_settings) as mailbox:
        return poll(mailbox, handle)
