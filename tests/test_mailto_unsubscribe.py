"""The ``mailto:`` of every message's List-Unsubscribe works: mail to that address, with the
token of the reader's own message in its subject or body, unsubscribes them as the one-click
link does (counted against the send), read by the bounce mailbox poll from a real IMAP server
(Dovecot) and by ``distributor bounces process``; a forged or missing token changes nothing, and
a bounce quoting our message (List-Unsubscribe header and all) is not taken for a request.

The messages are the real ones of a send through the engine to a real SMTP server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from distributor.bounces.mailbox import PollReport, poll_bounce_mailbox
from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.dovecot import DovecotServer
from distributor.readers.mailto import MailtoRequest, mailto_unsubscriber, read_mailto
from distributor.readers.unsubscribes import unsubscribes_by_send
from subscribers.models import Subscriber, SubscriberStatus, Subscription
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.smtp import Received, SmtpServer
from tests.support.web import send_through_engine, web_settings
from tests.test_bounces_imap import append, connect

ADDRESS = "unsubscribe@hzgh.example.org"  # MAIL_FROM's domain, in web_settings
BOUNCE_DOMAIN = "bounces.hzgh.example.org"
_MAILTO = re.compile(r"<mailto:([^?>]+)\?subject=([^>]+)>")


@dataclass
class Sent:
    settings: Settings
    send_id: int
    messages: list[Received]  # in subscriber order: reader00001, reader00002, …


@pytest.fixture
def sent(database_url: str, sample_issue_path: Path) -> Iterator[Sent]:
    with SmtpServer() as smtp:
        settings = web_settings(database_url, BOUNCE_DOMAIN=BOUNCE_DOMAIN, **smtp.env())
        make_audience(database_url, "members", 5)
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = send_through_engine(settings, issue_id, "members")
        messages = sorted(smtp.handler.received, key=lambda each: each.recipient)
        yield Sent(settings, send_id, messages)


def mailto_of(received: Received) -> tuple[str, str]:
    """The address and subject the message's List-Unsubscribe mailto names."""
    header = " ".join(str(received.message["List-Unsubscribe"]).split())
    match = _MAILTO.search(header)
    assert match, header
    return match[1], match[2]


def request(received: Received, *, subject: str | None = None, body: str = "") -> bytes:
    """What the reader's mail program sends for the mailto (or a person writing by hand)."""
    address, mailto_subject = mailto_of(received)
    message = EmailMessage()
    message["From"] = received.recipient
    message["To"] = address
    message["Subject"] = mailto_subject if subject is None else subject
    message.set_content(body or "This message will unsubscribe you.")
    return message.as_bytes()


def bounce_of(received: Received) -> bytes:
    """A DSN for the message, to its return path, quoting it whole (List-Unsubscribe too)."""
    boundary = "dsn-boundary-0"
    head = (
        f"From: MAILER-DAEMON@mx.example.org\r\nTo: {received.sender}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        f"\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nThe mail system: user unknown.\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {received.recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        f"\r\n--{boundary}\r\nContent-Type: message/rfc822\r\n\r\n"
    )
    return head.encode() + received.data + f"\r\n--{boundary}--\r\n".encode()


def forged_subject(received: Received) -> str:
    """The mailto's subject with one character of the token's MAC changed."""
    _, subject = mailto_of(received)
    changed = "A" if subject[-5] != "A" else "B"
    return subject[:-5] + changed + subject[-4:]


def forged(received: Received) -> bytes:
    return request(received, subject=forged_subject(received))


def status_of(url: str, address: str) -> tuple[SubscriberStatus, set[str]]:
    with transaction(url) as session:
        person = session.scalars(select(Subscriber).where(Subscriber.email == address)).one()
        lists = session.scalars(
            select(Subscription.status).where(Subscription.subscriber_id == person.id)
        ).all()
        return person.status, {each.value for each in lists}


def subjects_in(server: DovecotServer, folder: str) -> list[str]:
    imap = connect(server)
    try:
        imap.select(folder, readonly=True)
        _, data = imap.search(None, "ALL")
        found = []
        for number in data[0].split():
            _, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            first = parts[0]
            assert isinstance(first, tuple)
            found.append(first[1].decode().strip().removeprefix("Subject: "))
        return sorted(found)
    finally:
        imap.logout()


def test_the_mailbox_poll_unsubscribes_by_the_token_of_a_mail_to_the_mailto_address(
    sent: Sent, tmp_path: Path
) -> None:
    by_subject, by_body, forged_for, bounced, untouched = sent.messages
    root = tmp_path / "dovecot"
    root.mkdir()
    with DovecotServer(root) as dovecot:
        settings = replace(
            sent.settings,
            bounce_imap_host="127.0.0.1",
            bounce_imap_port=dovecot.port,
            bounce_imap_security="none",
            bounce_imap_user=dovecot.user,
            bounce_imap_password=dovecot.password,
        )
        assert mailto_of(by_subject)[0] == ADDRESS
        _, token_subject = mailto_of(by_body)
        append(
            dovecot,
            [
                request(by_subject),
                request(by_body, subject="请帮我退订", body=f"退订。\n\n{token_subject}\n"),
                forged(forged_for),
                request(untouched, subject="please take me off", body="No token here."),
                bounce_of(bounced),
            ],
        )
        # As the worker polls: mail to the unsubscribe address first, the rest as feedback.
        take = mailto_unsubscriber(settings)
        report = poll_bounce_mailbox(settings, take_first=take)
        assert report == PollReport(done=3, failed=2)
        assert subjects_in(dovecot, "Failed") == sorted(
            [forged_subject(forged_for), "please take me off"]
        )
        assert poll_bounce_mailbox(settings, take_first=take) == PollReport()

    for reader in (by_subject, by_body):
        assert status_of(sent.settings.database_url, reader.recipient) == (
            SubscriberStatus.UNSUBSCRIBED,
            {"unsubscribed"},
        )
    for reader in (forged_for, untouched):
        assert status_of(sent.settings.database_url, reader.recipient) == (
            SubscriberStatus.ACTIVE,
            {"active"},
        )
    # The bounce quoted a genuine token in its List-Unsubscribe header: not a request.
    assert status_of(sent.settings.database_url, bounced.recipient)[0] not in (
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.ACTIVE,
    )
    with transaction(sent.settings.database_url) as session:
        assert unsubscribes_by_send(session, sent.send_id) == 2  # counted as the link counts


def test_bounces_process_acts_on_a_saved_mailto_message_and_refuses_a_forged_one(
    sent: Sent, tmp_path: Path
) -> None:
    reader, other = sent.messages[:2]
    (tmp_path / "1-request.eml").write_bytes(request(reader))
    (tmp_path / "2-forged.eml").write_bytes(forged(other))
    env = {
        "DATABASE_URL": sent.settings.database_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "MAIL_FROM": sent.settings.mail_from,
        "BOUNCE_DOMAIN": BOUNCE_DOMAIN,
        "COLUMNS": "200",
    }
    result = CliRunner().invoke(main, ["bounces", "process", str(tmp_path)], env=env)
    assert result.exit_code == 0, result.output
    [first] = [line for line in result.output.splitlines() if "1-request.eml" in line]
    [second] = [line for line in result.output.splitlines() if "2-forged.eml" in line]
    assert re.search(r"unsubscribe\W+applied\W+subscriber \d+ unsubscribed from everything", first)
    assert re.search(r"unsubscribe\W+refused\W+no valid unsubscribe token", second), second
    assert (
        status_of(sent.settings.database_url, reader.recipient)[0] is SubscriberStatus.UNSUBSCRIBED
    )
    assert status_of(sent.settings.database_url, other.recipient)[0] is SubscriberStatus.ACTIVE

    again = CliRunner().invoke(
        main, ["bounces", "process", str(tmp_path / "1-request.eml"), "--json"], env=env
    )
    assert again.exit_code == 0, again.output
    assert '"outcome": "applied"' in again.output and "had unsubscribed already" in again.output
    with transaction(sent.settings.database_url) as session:
        assert unsubscribes_by_send(session, sent.send_id) == 1


def test_only_mail_to_the_address_and_in_the_senders_own_words_is_read() -> None:
    token = "dW5zdWJzY3JpYmU6MTI6NjVhYjEyMzQ.AAAAAAAAAAAAAAAAAAAAAA"
    mail = EmailMessage()
    mail["From"] = "reader@example.org"
    mail["To"] = "Newsletter <Unsubscribe@HZGH.example.org>"
    mail["Subject"] = "Re: hello"
    mail.set_content(f"<p>please: https://news.example.org/u/{token}</p>", subtype="html")
    assert read_mailto(mail.as_bytes(), ADDRESS) == MailtoRequest((token,))
    mail.replace_header("To", "newsletter@hzgh.example.org")
    assert read_mailto(mail.as_bytes(), ADDRESS) is None  # a reply to the newsletter
    # A forwarded message's List-Unsubscribe is not the sender's request.
    forward = EmailMessage()
    forward["To"] = ADDRESS
    forward["Subject"] = "Fwd"
    forward.set_content("see attached")
    forward.add_attachment(mail)
    assert read_mailto(forward.as_bytes(), ADDRESS) == MailtoRequest(())
    assert read_mailto(b"\xff\xfe not a message", ADDRESS) is None
