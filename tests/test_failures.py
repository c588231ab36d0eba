"""One reading of a failure for every place it is seen: the vendors' own answers, by cause."""

from __future__ import annotations

import pytest

from distributor.failures import Verdict, read_failure
from distributor.vocabulary import FailureCause

GONE, FULL, DISABLED = (
    FailureCause.ADDRESS_GONE,
    FailureCause.MAILBOX_FULL,
    FailureCause.MAILBOX_DISABLED,
)
BLOCKED, AUTH, CONTENT, RELAY = (
    FailureCause.BLOCKED,
    FailureCause.AUTHENTICATION,
    FailureCause.CONTENT,
    FailureCause.RELAY,
)
EXPIRED, NETWORK, SYSTEM = FailureCause.EXPIRED, FailureCause.NETWORK, FailureCause.SYSTEM

ANSWERS = [
    # Postfix
    ("550 5.1.1 <li.lei@example.cn>: Recipient address rejected: User unknown in virtual "
     "mailbox table", GONE),
    ("550 5.1.1 <x@example.org>: Recipient address rejected: User unknown in local recipient "
     "table", GONE),
    ("Host or domain name not found. Name service error for name=example.invalid type=A: Host "
     "not found", GONE),
    ("554 5.7.1 <x@example.org>: Relay access denied", RELAY),
    ("450 4.7.1 Client host rejected: cannot find your reverse hostname, [203.0.113.25]",
     BLOCKED),
    ("554 5.7.1 Service unavailable; Client host [203.0.113.25] blocked using zen.spamhaus.org",
     BLOCKED),
    ("connect to mx.example.org[198.51.100.7]:25: Connection timed out", NETWORK),
    ("552 5.3.4 Message size exceeds fixed limit", CONTENT),
    ("552 5.2.2 <x@example.org>: Recipient address rejected: Mailbox is full", FULL),
    ("550 5.7.1 <x@example.org>: Sender address rejected: Access denied", RELAY),
    # Exim
    ("550 Unrouteable address", GONE),
    ("retry timeout exceeded", EXPIRED),
    ("550-Verification failed for <newsletter@news.example.org>\n550 Sender verify failed",
     RELAY),
    ("550 Mailbox quota exceeded", FULL),
    ("all relevant MX records point to non-existent hosts", GONE),
    # Sendmail
    ("550 5.1.1 <x@example.org>... User unknown", GONE),
    ("550 5.7.1 <x@example.org>... Relaying denied. Proper authentication required.", RELAY),
    ("Message could not be delivered for 5 days", EXPIRED),
    # qmail
    ("Sorry, no mailbox here by that name. (#5.1.1)", GONE),
    ("Sorry, I couldn't find any host named example.invalid. (#5.1.2)", GONE),
    ("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)", NETWORK),
    ("The users mailfolder is over the allowed quota (size). (#5.2.2)", FULL),
    ("This message is looping: it already has my Delivered-To line. (#5.4.6)", SYSTEM),
    # Exchange / Office 365
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     GONE),
    ("550 5.4.1 Recipient address rejected: Access denied. AS(201806281)", GONE),
    ("550 5.7.606 Access denied, banned sending IP [203.0.113.25]", BLOCKED),
    ("550 5.7.1 Unfortunately, messages from [203.0.113.25] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150).",
     BLOCKED),
    ("554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException", FULL),
    ("550 5.7.509 Access denied, sending domain news.example.org does not pass DMARC "
     "verification and has a DMARC policy of reject.", AUTH),
    ("550 5.4.14 Hop count exceeded - possible mail loop ATTR34", SYSTEM),
    ("550 5.5.0 Requested action not taken: mailbox unavailable (S2017062302)", GONE),
    ("4.4.7 Message delayed", EXPIRED),
    # Gmail
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos", GONE),
    ("452-4.2.2 The email account that you tried to reach is over quota.", FULL),
    ("550-5.2.1 The email account that you tried to reach is disabled.", DISABLED),
    ("550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and "
     "Gmail users, and has been blocked.", AUTH),
    ("550-5.7.25 The IP address sending this message does not have a PTR record setup", BLOCKED),
    ("421-4.7.28 Our system has detected an unusual rate of unsolicited mail originating from "
     "your IP address.", BLOCKED),
    ("550-5.7.1 Our system has detected that this message is likely unsolicited mail.", CONTENT),
    ("552-5.2.3 Your message exceeded Google's message size limits.", CONTENT),
    # Yahoo
    ("554 delivery error: dd This user doesn't have a yahoo.com account (x@yahoo.com) [0]",
     GONE),
    ("554 30 Sorry, your message to x@yahoo.com cannot be delivered. This mailbox is disabled "
     "(554.30)", DISABLED),
    ("421 4.7.0 [TSS04] Messages from 203.0.113.25 temporarily deferred due to unexpected volume "
     "or user complaints", BLOCKED),
    ("553 5.7.2 [TSS09] All messages from 203.0.113.25 will be permanently deferred", BLOCKED),
    ("554 5.7.9 Message not accepted for policy reasons.", CONTENT),
    ("552 1 Requested mail action aborted, mailbox not found", GONE),
    # QQ / Tencent
    ("550 Mailbox not found or access denied", GONE),
    ("550 Ip frequency limited", BLOCKED),
    ("451 Frequency of receiving messages is limited.", BLOCKED),
    ("550 Mail content denied", CONTENT),
    ("退信原因：该收件人帐号已停用，邮件无法投递。", DISABLED),
    ("收件人邮箱空间已满", FULL),
    # NetEase 163 / 126
    ("550 User not found: x@163.com", GONE),
    ("550 User suspended: x@163.com", DISABLED),
    ("554 DT:SPM 126 smtp8,NORpCgDXxx2FpXRnRgkBAA--.28S2 1735689650", CONTENT),
    ("451 MI:CEL 163 mx5,connection frequency limited", BLOCKED),
    ("550 MI:SPF 163 mx1, mail is rejected because spf check failed", AUTH),
    ("552 Requested mail action aborted: exceeded mailsize limit", CONTENT),
    # Amazon SES, Domino, Courier, GMX
    ("Amazon SES has suppressed sending to this address because it has a recent history of "
     "bouncing as an invalid address.", GONE),
    ("User john.doe (john.doe@example.com) not listed in Domino Directory", GONE),
    ("550 User unknown.", GONE),
    ("554-gmx.net (mxgmx016) Nemesis ESMTP Service not available\n554-No SMTP service\n554 IP "
     "address is block listed.", BLOCKED),
    ("550 Requested action not taken: mailbox unavailable", GONE),
    ("550 5.7.1 Reject due to policy restrictions", BLOCKED),
    # 5.2.1 says "disabled" in the standard, "user unknown" at many servers: the words decide.
    ("5.2.1 <mikeneko@example.co.jp>... User Unknown", GONE),
    ("550 5.2.1 requested action aborted", DISABLED),
    # Refused before any recipient was named: our IP, name or sender.
    ("SMTP error from remote mail server after MAIL FROM:<news@example.org> SIZE=1024:\n"
     "550 Unroutable sender address", BLOCKED),
    ("host mx00.emig.gmx.net[212.227.15.9] refused to talk to me: 554-No SMTP service", BLOCKED),
    ("553 5.1.8 <news@example.org>... Domain of sender address news@example.org does not exist",
     RELAY),
    ("550 5.7.27 Domain example.jp does not accept mail (nullMX)", GONE),
    ("550 5.7.27 sender address domain has null MX", RELAY),
    # A name server that did not answer is not a domain that is gone.
    ("Host or domain name not found. Name service error for name=example.jp type=MX: Host not "
     "found, try again", NETWORK),
]


@pytest.mark.parametrize(("words", "cause"), ANSWERS)
def test_each_vendor_answer_is_read_by_its_cause(words: str, cause: FailureCause) -> None:
    assert read_failure(words).cause is cause


def test_only_a_permanently_gone_address_suppresses_at_once() -> None:
    assert read_failure("550 5.1.1 user unknown").verdict is Verdict.SUPPRESS
    assert read_failure("450 4.1.1 unverified address: user unknown").verdict is Verdict.REPEATED
    assert read_failure("552 5.2.2 mailbox full").verdict is Verdict.REPEATED
    assert read_failure("550 5.2.1 account disabled").verdict is Verdict.REPEATED


def test_what_is_about_us_or_the_path_never_counts_against_the_reader() -> None:
    # 5.x.x, but the reader is not at fault: not even the "user unknown" it also quotes counts.
    blocklisted = read_failure("550 5.7.1 user unknown or your IP is on our blocklist")
    assert blocklisted.cause is BLOCKED and blocklisted.verdict is Verdict.NOT_READER
    assert read_failure("").verdict is Verdict.NOT_READER


def test_the_status_given_apart_from_the_words_decides() -> None:
    reading = read_failure("Requested action not taken", status="5.1.1", code=550)
    assert (reading.cause, reading.status, reading.permanent) == (GONE, "5.1.1", True)
    assert read_failure("rejected", code=552).cause is FULL
    assert not read_failure("user unknown", permanent=False).permanent
