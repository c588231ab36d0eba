"""Every bounce fixture is classified and matched as a person reading it would."""

from __future__ import annotations

import pytest

from distributor.bounces import FeedbackKind
from distributor.bounces.classify import classify
from distributor.bounces.match import MatchedFeedback, Unmatched, match
from distributor.render.message_ids import MessageRef
from distributor.vocabulary import FailureCause
from tests.support.bounces import FIXTURES, NOW, VERP, fixture

HARD, SOFT = FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE
COMPLAINT, AUTO = FeedbackKind.COMPLAINT, FeedbackKind.AUTO_REPLY

# file: (kind, source, recipient, status, what it matches: a delivery id or a MessageRef)
EXPECTED: dict[str, tuple[FeedbackKind, str, str | None, str | None, int | MessageRef | None]] = {
    "postfix-dsn-user-unknown.eml": (HARD, "rfc3464", "wang.fang@example.net", "5.1.1", 1001),
    "postfix-dsn-delayed.eml": (SOFT, "rfc3464", "li.lei@example.org", "4.2.2", 1002),
    "gmail-dsn-no-such-account.eml": (HARD, "rfc3464", "zhao.lei.1987@gmail.com", "5.1.1", 1003),
    "exchange-online-recipient-not-found.eml": (
        HARD, "rfc3464", "chen.jing@contoso.example", "5.1.10", 1004,
    ),
    "exchange-2010-ndr.eml": (HARD, "rfc3464", "liu.yang@corp.example.com", "5.1.1", 1005),
    "exchange-2003-ndr-text.eml": (
        HARD, "exchange", "zhou.min@legacy.example.com", "5.1.1", 1006,
    ),
    "exchange-online-delay.eml": (SOFT, "rfc3464", "sun.li@fabrikam.example", "4.4.0", 1007),
    "qq-mailbox-not-found.eml": (HARD, "qq", "huang.wei@qq.com", "550", 2001),
    "qq-frequency-limited.eml": (SOFT, "qq", "lin.xiao@qq.com", "451", 2002),
    "qq-exmail-account-stopped.eml": (
        HARD, "qq", "zhang.min@tencent-partner.example", None, 2003,
    ),
    "netease-163-user-not-found.eml": (HARD, "netease", "xu.ming@163.com", "550", 3001),
    "netease-126-spam-rejected.eml": (HARD, "netease", "he.jun@126.com", "554", 3002),
    "netease-yeah-delayed.eml": (SOFT, "netease", "qian.yu@yeah.net", "451", 3003),
    "sina-dsn-user-unknown.eml": (HARD, "rfc3464", "guo.qiang@sina.com", "5.1.1", 4001),
    "sina-mailbox-full.eml": (SOFT, "sina", "ma.li@sina.cn", None, 4002),
    "exim-failed.eml": (HARD, "exim", "sun.hao@example.edu.cn", "5.1.1", 5001),
    "exim-delayed-warning.eml": (SOFT, "exim", "tang.yan@example.com.cn", "4.7.1", 5002),
    "qmail-failure-notice.eml": (HARD, "qmail", "feng.tao@example-host.cn", "5.1.1", 5003),
    "postfix-plain-text.eml": (HARD, "postfix", "deng.hui@example-school.cn", "5.2.2", 5004),
    "autoreply-rfc3834-out-of-office.eml": (AUTO, "auto-reply", None, None, None),
    "autoreply-qq-chinese.eml": (AUTO, "auto-reply", None, None, None),
    "autoreply-exchange-automatic-reply.eml": (AUTO, "auto-reply", None, None, None),
    "autoreply-precedence-vacation.eml": (AUTO, "auto-reply", None, None, None),
    "arf-abuse-yahoo.eml": (COMPLAINT, "arf", "ye.fei@yahoo.example", None, 7001),
    # It quotes only our Message-ID (its return path lost): never acted on by itself.
    "arf-abuse-microsoft-jmrp.eml": (
        COMPLAINT, "arf", "redacted@hotmail.example", None, MessageRef(18, 7002),
    ),
}  # fmt: skip


GONE = FailureCause.ADDRESS_GONE
# Why each bounce did not arrive: only an address gone is the reader's for good.
CAUSES = {
    "postfix-dsn-user-unknown.eml": GONE,
    "postfix-dsn-delayed.eml": FailureCause.MAILBOX_FULL,
    "gmail-dsn-no-such-account.eml": GONE,
    "exchange-online-recipient-not-found.eml": GONE,
    "exchange-2010-ndr.eml": GONE,
    "exchange-2003-ndr-text.eml": GONE,
    "exchange-online-delay.eml": FailureCause.NETWORK,
    "qq-mailbox-not-found.eml": GONE,
    "qq-frequency-limited.eml": FailureCause.BLOCKED,
    "qq-exmail-account-stopped.eml": FailureCause.MAILBOX_DISABLED,
    "netease-163-user-not-found.eml": GONE,
    "netease-126-spam-rejected.eml": FailureCause.CONTENT,
    "netease-yeah-delayed.eml": FailureCause.BLOCKED,
    "sina-dsn-user-unknown.eml": GONE,
    "sina-mailbox-full.eml": FailureCause.MAILBOX_FULL,
    "exim-failed.eml": GONE,
    "exim-delayed-warning.eml": FailureCause.NETWORK,
    "qmail-failure-notice.eml": GONE,
    "postfix-plain-text.eml": FailureCause.MAILBOX_FULL,
}


def test_every_fixture_has_an_expectation() -> None:
    assert sorted(path.name for path in FIXTURES.glob("*.eml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_is_classified_and_matched(name: str) -> None:
    kind, source, recipient, status, target = EXPECTED[name]
    feedback = classify(fixture(name))
    assert (feedback.kind, feedback.source, feedback.recipient, feedback.status) == (
        kind,
        source,
        recipient,
        status,
    ), feedback.reason
    result = match(feedback, VERP, now=NOW)
    if target is None:
        assert isinstance(result, Unmatched)
    elif isinstance(target, MessageRef):
        assert isinstance(result, Unmatched)
        assert f"(send {target.send_id}, subscriber {target.subscriber_id})" in result.reason
        assert "signed return path" in result.reason
    else:
        assert result == MatchedFeedback(feedback, delivery_id=target)
        assert result.matched_by == "verp"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bounce_is_read_by_its_cause(name: str) -> None:
    assert classify(fixture(name)).cause is CAUSES.get(name)


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("postfix-dsn-user-unknown.eml", "User unknown in virtual mailbox table"),
        ("exchange-online-recipient-not-found.eml", "RESOLVER.ADR.RecipientNotFound"),
        ("qq-mailbox-not-found.eml", "550 Mailbox not found"),
        ("netease-163-user-not-found.eml", "收件人地址不存在"),
        ("netease-126-spam-rejected.eml", "554 DT:SPM"),
        ("qq-exmail-account-stopped.eml", "账号已停用"),
        ("exim-failed.eml", "Recipient address rejected: User unknown"),
    ],
)
def test_diagnostic_keeps_the_servers_words_on_one_line(name: str, words: str) -> None:
    diagnostic = classify(fixture(name)).diagnostic
    assert diagnostic is not None
    assert words in diagnostic
    assert "\n" not in diagnostic and "\r" not in diagnostic


def test_a_quoted_message_id_alone_acts_on_nobody() -> None:
    """A bounce without its VERP address (a forwarder rewrote it, or a stranger wrote it quoting
    the Message-ID of a reply they got) is recognised as ours, by the Message-ID it quotes in a
    returned part, a text copy, or an Exchange header list, but matches no delivery: anyone who
    got a reply or a forward has that Message-ID."""
    for name, ref in [
        ("postfix-dsn-user-unknown.eml", MessageRef(7, 1001)),
        ("exim-failed.eml", MessageRef(14, 5001)),
        ("exchange-2010-ndr.eml", MessageRef(8, 1005)),
        ("netease-126-spam-rejected.eml", MessageRef(12, 3002)),
    ]:
        raw = fixture(name).replace(b"bounces+", b"newsletter+")
        feedback = classify(raw)
        assert feedback.verp_address is None
        result = match(feedback, VERP, now=NOW)
        assert isinstance(result, Unmatched), name
        assert f"(send {ref.send_id}, subscriber {ref.subscriber_id})" in result.reason, name


def test_a_bounce_carrying_auto_submitted_is_still_a_bounce() -> None:
    """RFC 3834's header marks DSNs too (Postfix, Office 365, Exim): it must not hide them."""
    for name in ("postfix-dsn-user-unknown.eml", "exim-failed.eml"):
        assert b"Auto-Submitted: auto-replied" in fixture(name)
        assert classify(fixture(name)).kind is HARD


def test_auto_replies_are_never_matched_to_a_delivery() -> None:
    for name in (n for n, expected in EXPECTED.items() if expected[0] is AUTO):
        feedback = classify(fixture(name))
        assert feedback.verp_address is not None  # they do come back to the return path
        result = match(feedback, VERP, now=NOW)
        assert isinstance(result, Unmatched)
        assert "nothing to act on" in result.reason
