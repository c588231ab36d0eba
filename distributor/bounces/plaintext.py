"""Bounces without a delivery-status part: Exim and qmail, older Postfix and Exchange, and the
Chinese providers (QQ, NetEase 163/126/yeah, Sina), who write to people, not to programs.

Each is read the same way: the bounce's own words (up to where it quotes the original) are
searched for an SMTP status, a recipient after a cue such as ``收件人：`` or ``failed:``, and
phrases that say permanent or temporary. What none of those give stays ``unknown``.
"""

from __future__ import annotations

import re
from email.message import Message

from distributor.bounces.addresses import ADDRESS_IN_TEXT, is_daemon, plain_address
from distributor.bounces.feedback import Feedback, FeedbackKind, RecipientFailure, bounce_of
from distributor.bounces.message import header_text, one_line, raw_headers
from distributor.failures import read_failure
from distributor.render.verp import VERP_PREFIX
from distributor.vocabulary import FailureCause

_SUBJECT = re.compile(
    r"undeliver|returned mail|returned to sender|delivery status notification|"
    r"delivery (?:failure|failed|has failed|problem|notification|status|delayed)|"
    r"mail delivery failed|could not send message|failed mail|mail system error|"
    r"unzustellbar|non remis|onbestelbaar|no entregado|non recapitabile|"
    r"failure notice|(?:could ?n[o']t|cannot) be delivered|non[- ]?deliver|"
    r"warning: message .{0,60} delayed|delayed mail|"
    r"退信|投递失败|發送失敗|发送失败|无法投递|未能送达|无法送达|投遞失敗|邮件被退回",
    re.IGNORECASE,
)
_SENDER_NAME = re.compile(
    r"mail delivery (?:system|subsystem)|courier mail server|postmaster|系统退信|退信",
    re.IGNORECASE,
)
_QUOTED_ORIGINAL = re.compile(
    r"^.{0,20}(?:this is a copy of the message|original message (?:headers|follows)|"
    r"below this line is a copy of the message|-{3,} ?original message ?-{3,}|"
    r"-{3,}.{0,10}(?:原始邮件|原邮件|原信).{0,10}-{3,}|以下是原邮件|原邮件内容如下)",
    re.IGNORECASE | re.MULTILINE,
)
_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")
_REPLY_CODE = re.compile(r"(?:^|(?<=[\s:#;(：（]))([45][0-5]\d)(?=[\s-])", re.MULTILINE)
_GAVE_UP = re.compile(
    r"permanent fatal errors?|could ?n[o']t be delivered for (?:\d+|more than)|"
    r"in the queue too long|retry timeout exceeded|message expired|giving up|gave up",
    re.IGNORECASE,
)
_DELAY = re.compile(
    r"\bdelayed\b|has not yet been delivered|not been delivered yet|"
    r"will (?:continue to )?(?:re)?try|will be retried|delivery attempts will continue|"
    r"延迟|延時|尚未投递|仍在(?:尝试|重试)|稍后(?:将)?重试",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"user unknown|unknown user|no such (?:user|mailbox|recipient)|does ?n[o']t exist|"
    r"not exist|(?:recipient|mailbox|address|user) (?:was )?not found|not found in|"
    r"invalid (?:recipient|mailbox|user|address)|mailbox unavailable|"
    r"account (?:is |has been )?disabled|deactivated|permanent (?:error|failure)|permanently|"
    r"couldn't be delivered|"
    r"用户不存在|地址不存在|帐号不存在|账号不存在|账户不存在|邮箱不存在|不存在|"
    r"被禁用|已被冻结|已停用|已注销|"
    r"无效的收件人|无效地址",
    re.IGNORECASE,
)
_TEMPORARY = re.compile(
    r"mailbox (?:is )?full|over quota|quota exceeded|temporar|try again later|deferred|"
    r"邮箱已满|空间不足|容量不足|暂时|稍后再试",
    re.IGNORECASE,
)
_DELIVERED = re.compile(
    r"(?:has been|was|were) (?:successfully )?(?:delivered|relayed)|delivery (?:to the following "
    r"recipients? )?(?:was )?(?:complete|succeeded|successful)|已(?:成功)?(?:投递|送达)",
    re.IGNORECASE,
)
_RECIPIENT_CUES = re.compile(
    r"following address(?:es)?(?:\(es\))? failed:|"
    r"delivery has failed to these recipients or (?:groups|distribution lists):|"
    r"following recipient\(s\) (?:cannot|could not) be reached:|"
    r"did not reach the following recipient\(s\):|"
    r"your message to|could not be delivered to|delivery to the following recipients? failed|"
    r"unable to deliver (?:your )?message to|following recipients?:|"
    r"收件人地址|收件人|收信人|收件地址|对方邮箱|发送给|寄给",
    re.IGNORECASE,
)
_ANGLED_RECIPIENT = re.compile(r"^\s*<([^<>\s]{3,254})>:", re.MULTILINE)
_CUE_REACH = 300  # characters after a cue in which its address must appear
_PROVIDERS = (
    ("qq", ("qq.com", "foxmail.com", "exmail.qq.com", "tencent.com")),
    ("netease", ("163.com", "126.com", "yeah.net", "188.com", "netease.com", "163.net")),
    ("sina", ("sina.com", "sina.cn", "vip.sina.com", "sina.net")),
)
_SIGNATURES = (
    ("exim", "this message was created automatically by mail delivery software"),
    ("qmail", "this is the qmail-send program"),
    ("postfix", "this is the mail system at host"),
    ("postfix", "this is the postfix program at host"),
    ("exchange", "microsoft exchange"),
    ("exchange", "delivery has failed to these recipients"),
    ("exchange", "did not reach some or all of the intended recipients"),
    ("exchange", "did not reach the following recipient"),
    ("exchange", "couldn't be delivered"),
)


def looks_like_bounce(message: Message) -> bool:
    """From a mailer daemon, or with a bounce subject, or with a bounce-only header."""
    if message.get("X-Failed-Recipients") is not None:
        return True
    if message.get("X-MS-Exchange-Message-Is-Ndr") is not None:
        return True
    sender = header_text(message, "From")
    addresses = ADDRESS_IN_TEXT.findall(sender)
    if any(is_daemon(address) for address in addresses) or _SENDER_NAME.search(sender):
        return True
    return bool(_SUBJECT.search(header_text(message, "Subject")))


def plaintext_feedback(message: Message, text: str) -> Feedback:
    """Classify a bounce from its own words ``text`` (its text parts, decoded)."""
    quoted = _QUOTED_ORIGINAL.search(text)
    words = text[: quoted.start()] if quoted else text
    subject = header_text(message, "Subject")
    source = _source(message, words)
    enhanced = _ENHANCED.search(words)
    code = _REPLY_CODE.search(words)
    status = enhanced[0] if enhanced else (code[1] if code else None)
    at = enhanced or code
    recipient = _recipient(message, words)
    if (gave_up := _last(_GAVE_UP, words)) is not None:
        kind, why = FeedbackKind.HARD_BOUNCE, f"it says {gave_up[0]!r}"
        at = gave_up if status is None or status[0] != "5" else at
    elif (delay := _DELAY.search(words)) or _DELAY.search(subject):
        kind, why = FeedbackKind.SOFT_BOUNCE, "it says delivery is delayed"
        at = at or delay
    elif status is not None and status[0] in "45":
        kind = FeedbackKind.HARD_BOUNCE if status[0] == "5" else FeedbackKind.SOFT_BOUNCE
        why = f"status {status}"
    elif (found := _TEMPORARY.search(words)) is not None:
        kind, why, at = FeedbackKind.SOFT_BOUNCE, f"it says {found[0]!r}", found
    elif (found := _PERMANENT.search(words)) is not None:
        kind, why, at = FeedbackKind.HARD_BOUNCE, f"it says {found[0]!r}", found
    elif (cause := _cause(words, status, None)) is not FailureCause.UNKNOWN and not (
        _DELIVERED.search(words)
    ):
        # No status and no words of ours, but a reason the failure reader knows.
        temporary = cause is FailureCause.NETWORK
        kind = FeedbackKind.SOFT_BOUNCE if temporary else FeedbackKind.HARD_BOUNCE
        why, at = f"it reads as {cause.value}", None
    else:
        return Feedback(
            FeedbackKind.UNKNOWN,
            "looks like a bounce but gives no status or reason we can read",
            source,
            recipient=recipient,
        )
    diagnostic = _paragraph(words, at.start()) if at is not None else None
    failure = RecipientFailure(
        recipient, kind, status, diagnostic, _cause(words, status, diagnostic, kind=kind)
    )
    return bounce_of((failure,), one_line(f"{source} bounce: {why}, {failure.cause.value}"), source)


def _last(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    """The last match: a notice that gave up says why last (after its headline)."""
    found = None
    for found in pattern.finditer(text):  # noqa: B007
        pass
    return found


def _cause(
    words: str, status: str | None, diagnostic: str | None, *, kind: FeedbackKind | None = None
) -> FailureCause:
    """The failure's cause: from the paragraph that gives its status first (the server's own
    words), else from all the bounce's words."""
    permanent = None if kind is None else kind is FeedbackKind.HARD_BOUNCE
    enhanced = status if status is not None and "." in status else None
    code = int(status) if status is not None and status.isdigit() else None
    for text in (diagnostic, words):
        if text:
            cause = read_failure(text, status=enhanced, code=code, permanent=permanent).cause
            if cause is not FailureCause.UNKNOWN:
                return cause
    return FailureCause.UNKNOWN


def _source(message: Message, words: str) -> str:
    sender = header_text(message, "From").lower()
    domains = [address.rpartition("@")[2] for address in ADDRESS_IN_TEXT.findall(sender)]
    for name, provider_domains in _PROVIDERS:
        if any(domain in provider_domains for domain in domains):
            return name
    lowered = words.lower()
    for name, signature in _SIGNATURES:
        if signature in lowered:
            return name
    return "text"


def _recipient(message: Message, words: str) -> str | None:
    """The failed address: Exim's header, then ``<address>:`` lines (Postfix, qmail), then the
    first address after a cue. Daemons and our own return paths are never the recipient."""
    for value in raw_headers(message, "X-Failed-Recipients"):
        address = plain_address(value.split(",")[0])
        if address is not None:
            return address
    for found in _ANGLED_RECIPIENT.finditer(words):
        address = _candidate(found[1])
        if address is not None:
            return address
    for cue in _RECIPIENT_CUES.finditer(words):
        for found in ADDRESS_IN_TEXT.finditer(words, cue.end(), cue.end() + _CUE_REACH):
            address = _candidate(found[0])
            if address is not None:
                return address
    return None


def _candidate(text: str) -> str | None:
    address = plain_address(text.removeprefix("mailto:"))
    if address is None or is_daemon(address):
        return None
    if address.lower().startswith(VERP_PREFIX + "+"):
        return None
    return address


def _paragraph(text: str, at: int) -> str:
    """The lines around ``at`` up to the blank lines on either side, as one line."""
    start = text.rfind("\n\n", 0, at)
    end = text.find("\n\n", at)
    return one_line(text[start + 1 if start >= 0 else 0 : end if end >= 0 else len(text)])
