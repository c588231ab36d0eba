"""Anyone can mail the bounce mailbox: hostile and broken messages are refused with a reason,
never crash, never take long, and never name a delivery to suppress."""

from __future__ import annotations

import base64
import os
import time
import tracemalloc

import pytest

from distributor.bounces import MAX_MESSAGE_BYTES, FeedbackKind
from distributor.bounces.classify import classify
from distributor.bounces.match import MatchedFeedback, Unmatched, match
from distributor.bounces.message import one_line
from distributor.render.message_ids import make_message_id
from tests.support.bounces import BOUNCE_DOMAIN, FROM_DOMAIN, ISSUED, NOW, SECRET, VERP, fixture

DSN = "postfix-dsn-user-unknown.eml"


def _unmatched(raw: bytes) -> Unmatched:
    result = match(classify(raw), VERP, now=NOW)
    assert isinstance(result, Unmatched), result
    return result


def test_a_report_without_a_report_part_is_unknown() -> None:
    raw = (
        b"From: MAILER-DAEMON@relay.example.net\r\n"
        b"To: " + VERP.make_verp(1, now=ISSUED).encode() + b"\r\n"
        b"Subject: hello\r\n"
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\r\n\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nNothing to see here.\r\n--B--\r\n"
    )
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.UNKNOWN
    assert "no status or reason" in feedback.reason
    assert "nothing to act on" in _unmatched(raw).reason


def test_a_plain_message_is_unknown() -> None:
    raw = b"From: reader@example.org\r\nTo: news@example.org\r\nSubject: hi\r\n\r\nthanks!\r\n"
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.UNKNOWN
    assert feedback.reason == "not a bounce, a complaint or an automatic reply"


def _with_attachment(raw: bytes, size: int) -> bytes:
    """``raw`` (a multipart message) with a base64 attachment of ``size`` bytes at its end."""
    boundary = raw.split(b'boundary="', 1)[1].split(b'"', 1)[0]
    closing = b"--" + boundary + b"--"
    blob = base64.encodebytes(os.urandom(size))
    attachment = (
        b"--" + boundary + b"\nContent-Type: application/octet-stream; name=big.bin\n"
        b"Content-Transfer-Encoding: base64\n\n" + blob + b"\n"
    )
    return raw.replace(closing, attachment + closing)


def test_a_20_mb_attachment_is_not_read() -> None:
    raw = _with_attachment(fixture(DSN), 20 * 1024 * 1024)
    assert len(raw) > 20 * 1024 * 1024
    tracemalloc.start()
    started = time.process_time()
    feedback = classify(raw)
    cpu = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert feedback.kind is FeedbackKind.HARD_BOUNCE  # the report comes before the attachment
    assert isinstance(match(feedback, VERP, now=NOW), MatchedFeedback)
    assert peak < 8 * MAX_MESSAGE_BYTES * 4  # what is parsed, not what was sent (~8 MB)
    assert cpu < 2.0  # CPU time, so a loaded machine does not flake it; ~10 ms when quiet


def test_a_report_beyond_the_cap_is_unknown_not_guessed() -> None:
    """Padding pushes the report past what is read: nothing is classified from the rest."""
    padding = b"x" * (2 * MAX_MESSAGE_BYTES) + b"\nThis is the mail system"
    raw = fixture(DSN).replace(b"This is the mail system", padding, 1)
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.UNKNOWN
    assert feedback.verp_address is not None  # the headers were read
    assert "nothing to act on" in _unmatched(raw).reason


def test_a_forged_return_path_is_refused_even_with_a_genuine_message_id() -> None:
    """A bad VERP address means someone is trying something: no fall-back to the Message-ID."""
    genuine = VERP.make_verp(1001, now=ISSUED)
    local, _, domain = genuine.partition("@")
    forged = local[:-4] + "aaaa@" + domain
    raw = fixture(DSN).replace(genuine.encode(), forged.encode())
    feedback = classify(raw)
    assert feedback.verp_address == forged and feedback.original_message_id is not None
    assert "forged" in _unmatched(raw).reason


def test_a_return_path_moved_to_another_delivery_is_refused() -> None:
    genuine = VERP.make_verp(1001, now=ISSUED)
    raw = fixture(DSN).replace(b"bounces+1001-", b"bounces+1002-")
    assert genuine.encode() not in raw
    assert "forged" in _unmatched(raw).reason


def test_a_replayed_return_path_is_refused() -> None:
    result = match(classify(fixture(DSN)), VERP, now=ISSUED + 90 * 86400)
    assert isinstance(result, Unmatched)
    assert "replay" in result.reason


def test_a_bounce_for_another_domain_is_refused() -> None:
    raw = fixture(DSN).replace(BOUNCE_DOMAIN.encode(), b"bounces.other-list.example")
    assert "another domain" in _unmatched(raw).reason


def test_a_bounce_of_a_message_we_did_not_send_is_refused() -> None:
    raw = fixture("exim-failed.eml").replace(b"bounces+", b"newsletter+")
    ours = make_message_id(SECRET, 14, 5001, FROM_DOMAIN).encode()
    raw = raw.replace(ours, b"<CAB1234567890abcdef@mail.gmail.com>")
    assert "not one of ours" in _unmatched(raw).reason
    forged = make_message_id("not-our-secret", 14, 5002, FROM_DOMAIN).encode()
    raw = raw.replace(b"<CAB1234567890abcdef@mail.gmail.com>", forged)
    assert "not one of ours" in _unmatched(raw).reason


def test_an_injected_second_message_id_picks_nothing() -> None:
    """The returned headers name a second (genuine, someone else's) Message-ID: ambiguous, so
    neither is used."""
    raw = fixture(DSN).replace(b"bounces+", b"newsletter+")
    ours = make_message_id(SECRET, 7, 1001, FROM_DOMAIN).encode()
    victim = make_message_id(SECRET, 7, 999, FROM_DOMAIN).encode()
    raw = raw.replace(b"Message-ID: " + ours, b"Message-ID: " + ours + b"\nMessage-ID: " + victim)
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.HARD_BOUNCE
    assert feedback.original_message_id is None
    assert "no return path or Message-ID" in _unmatched(raw).reason


@pytest.mark.parametrize(
    "recipient",
    [
        b"rfc822; victim@example.org\x00@attacker.example",
        b"rfc822; =?utf-8?q?victim@example.org=0D=0ABcc:_x@example.org?=",
        b"rfc822; victim@example.org, other@example.org",
        b"rfc822; \"victim\r\n\tBcc: x@example.org\"@example.org",
        b"x-unknown; victim@example.org",
    ],
)
def test_a_recipient_that_is_not_a_plain_address_is_dropped(recipient: bytes) -> None:
    raw = fixture(DSN)
    for field in (b"Final-Recipient: rfc822; wang.fang@example.net",
                  b"Original-Recipient: rfc822;wang.fang@example.net"):  # fmt: skip
        raw = raw.replace(field, field.split(b":")[0] + b": " + recipient)
    feedback = classify(raw)
    assert feedback.kind is FeedbackKind.HARD_BOUNCE
    assert feedback.recipient is None


def test_control_characters_never_reach_the_diagnostic() -> None:
    raw = fixture(DSN).replace(
        b"Diagnostic-Code: smtp; 550 5.1.1",
        b"Diagnostic-Code: smtp; \x1b[2J\x1b]0;pwned\x07 550\x0b\x0c 5.1.1\x00\xe2\x80\xae",
    )
    diagnostic = classify(raw).diagnostic
    assert diagnostic is not None and diagnostic.startswith("[2J ]0;pwned 550 5.1.1")
    assert all(c.isprintable() for c in diagnostic)
    assert one_line("a\u2028b\u202ec\td", 5) == "a b …"


_NESTED = b"--X\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
BROKEN = {
    "empty": b"",
    "binary": b"\x00\xff" * 5000,
    "random": os.urandom(64 * 1024),
    "self-nested": b"Content-Type: multipart/mixed; boundary=X\r\n\r\n" + _NESTED * 5000,
    "deep": b"".join(
        b"Content-Type: multipart/mixed; boundary=B%d\n\n--B%d\n" % (n, n) for n in range(3000)
    ),
    "bad-charset": b"Content-Type: text/plain; charset=no-such-charset\n"
    b"Subject: =?bogus?q?x?= Undeliverable\nFrom: postmaster@x.org\n\n550 5.1.1 <a@b.org>: gone",
    "bare-report": b"Content-Type: message/delivery-status\n\n"
    b"Final-Recipient: rfc822; a@b.org\nStatus: 5.1.1\n",
    "long-header": b"Subject: " + b"=?utf-8?b?5LiN?=" * 50000 + b"\n\nbody",
    "repeated": b"From: MAILER-DAEMON@x.org\nSubject: Undeliverable\n\n" + b"<a@b.org>: " * 30000,
}


@pytest.mark.parametrize("raw", BROKEN.values(), ids=BROKEN.keys())
def test_broken_messages_never_crash_and_never_match(raw: bytes) -> None:
    started = time.process_time()
    feedback = classify(raw)
    assert time.process_time() - started < 2.0
    result = match(feedback, VERP, now=NOW)
    assert isinstance(result, Unmatched)
