"""``read_failure(words, status=…) -> FailureReading``: why one message did not arrive, and what
that may cost the reader, wherever the failure was seen (a bounce in the mailbox, a vendor's text
notice, the SMTP server's own answer at RCPT or DATA).

The ground floor, pure: the sending engine reads its synchronous answers with it and the bounce
reader its reports, so one rule holds for both. The status class (5.x.x or 4.x.x) says only how
final a failure is, not whose it is: "mailbox full" is 5.2.2, "your IP is on a blocklist" 5.7.1.
So the cause is read in three steps, as the open bounce classifiers do:

1. words that name us or the path (a blocklist, SPF/DKIM/DMARC, relaying, spam or virus filters,
   rate limits) decide first: they are specific, and a reader must never pay for them;
2. then a specific enhanced status code (5.1.1 user unknown, 5.2.2 mailbox full, …);
3. then the words about the reader's mailbox (gone, full, disabled), in the vendors' phrasing
   (Postfix, Exim, Sendmail, qmail, Exchange/Office 365, Gmail, Yahoo, QQ, NetEase, SES, Domino,
   Courier, GMX, …), then the rest of the path, then what the code's class says in general.

:attr:`FailureReading.verdict` is the rule: an address gone (said permanently) suppresses the
reader at once; a full or disabled mailbox (or a gone address said only temporarily) counts
toward repeated failures; everything else never counts against the reader.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from enum import StrEnum

from distributor.vocabulary import FailureCause

_ENHANCED = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?![\w.])")
_CODE = re.compile(r"(?<![\w.])([245]\d\d)(?![\w.])")
_WORDS_READ = 4000  # characters of a diagnostic read: the cause is said near the code


class Verdict(StrEnum):
    """What a failure means for the reader it was addressed to."""

    SUPPRESS = "suppress"  # the address is gone: stop mailing it now
    REPEATED = "repeated"  # the reader's mailbox, maybe passing: only repeated failures count
    NOT_READER = "not_reader"  # us or the path: counts against the send and the domain only


class _Words:
    """Phrases matched case-blind, compiled at their first search, not when the module loads: a
    send's status imports this module and reads no failure."""

    def __init__(self, *phrases: str) -> None:
        self.phrases = phrases

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile("|".join(self.phrases), re.IGNORECASE)

    def search(self, text: str) -> re.Match[str] | None:
        return self._pattern.search(text)


# Step 1: what is about us or the path, in the words of the systems that say it.
_PATH_FIRST: tuple[tuple[FailureCause, _Words], ...] = (
    (
        FailureCause.NETWORK,
        _Words(
            r"not found, try again", r"temporary failure in name resolution",
            r"dns (?:lookup|query) (?:timed out|failed temporarily)", r"servfail",
        ),
    ),
    (
        FailureCause.AUTHENTICATION,
        _Words(
            r"\bspf\b", r"\bdkim\b", r"\bdmarc\b", r"sender policy framework",
            r"unauthenticated", r"not pass(?:ed)? (?:authentication|dmarc|spf|dkim)",
            r"authentication (?:check|result)s? fail", r"fails? (?:sender )?authentication",
            r"sender is unauthenticated", r"5\.7\.2[346]\b", r"MI:SPF",
        ),
    ),
    (
        FailureCause.BLOCKED,
        _Words(
            r"block ?list", r"black ?list", r"deny ?list", r"spamhaus", r"spamcop", r"sorbs",
            r"barracuda", r"\bs?rbl\b", r"dnsbl", r"\bsbl\b", r"\bxbl\b", r"\bpbl\b",
            r"uceprotect", r"abuseat", r"senderscore", r"proofpoint dynamic reputation",
            r"reputation", r"\blisted (?:at|in|on|by)\b.{0,40}(?:bl\b|list|spam|block|dns)",
            r"\b(?:ip|host|server|address) .{0,30}\blisted\b", r"banned sending ip",
            r"not accepted from this ip", r"client (?:host|ip) .{0,80}(?:blocked|rejected)",
            r"(?:your|sending|the|this|connecting) ip\b.{0,60}(?:block|reject|ban|denied|listed)",
            r"ip address .{0,40}(?:block|reject|ban)", r"\bip (?:is )?(?:blocked|rejected)",
            r"reverse (?:dns|hostname|lookup|mapping)", r"\bptr\b", r"\brdns\b",
            r"(?:cannot|can't|could not) (?:find|resolve) your (?:reverse )?host ?name",
            r"too many (?:connections|concurrent|sessions|messages|mails|emails|recipients|"
            r"errors)", r"rate (?:limit|control|exceeded)", r"unusual rate", r"frequency limit",
            r"(?:connection|ip|domain) frequency", r"throttl", r"too fast",
            r"sending (?:quota|limit) exceeded", r"temporarily deferred", r"permanently deferred",
            r"\[TS[S]?\d\d\]", r"\b(?:RP|HL|MI|IP):(?:TRC|CEL|IHU|ICC|CDW|DMC|NHD|RDN|SDR|CTS)",
            r"\bS3150\b", r"unregistered domain", r"frequen\w* .{0,40}limit",
            # Refused before any recipient was named: our IP, name or sender, never the reader.
            r"after (?:initial connection|connect|(?:he|eh)lo|mail from)\b",
            r"in reply to (?:mail from|(?:he|eh)lo) command", r"refused to talk to me",
        ),
    ),
    (
        FailureCause.RELAY,
        _Words(
            r"relay(?:ing)? (?:access )?(?:denied|not (?:permitted|allowed))",
            r"not (?:permitted|allowed|authori[sz]ed) to relay", r"unable to relay",
            r"we do not relay", r"relay not permitted", r"no relaying",
            r"sender address rejected", r"sender verify failed", r"verification failed for <",
            r"sender (?:address )?(?:is )?(?:not allowed|denied|refused|blocked)",
            r"sendernotauthenticated", r"rst\.authrequired", r"authentication required",
            r"(?:username|password|credentials?) (?:and password )?not accepted",
            r"not authori[sz]ed to send", r"sender domain (?:must exist|does not exist|not found)",
            r"unroutable sender", r"domain of sender address", r"sender address (?:is )?invalid",
            r"sender .{0,40}null ?mx",
        ),
    ),
    (
        FailureCause.CONTENT,
        _Words(
            r"spam", r"unsolicited", r"junk mail", r"bulk mail", r"\bvirus", r"malware",
            r"infected", r"phishing", r"content (?:rejected|denied|filter|polic)",
            r"message content", r"mail content", r"dt:spm", r"policy reasons",
            r"security issue", r"suspicious", r"prohibited (?:attachment|file)",
            r"message (?:size|too (?:big|large))",
            r"(?<!mailbox )(?:message|mail|email|data) (?:size|length) (?:limit|exceeds)",
            r"exceeds? (?:the )?(?:\w+ )?(?:size|message size)", r"mailsize", r"too big",
            r"message length exceeds", r"exceeded .{0,30}message size",
            r"垃圾邮件", r"内容.{0,10}(?:拒|违规|不合法|非法)", r"邮件过大", r"超过.{0,10}大小",
        ),
    ),
)
# Step 3a: what is about the reader's own mailbox.
_READER: tuple[tuple[FailureCause, _Words], ...] = (
    (
        FailureCause.MAILBOX_FULL,
        _Words(
            r"mailbox (?:is )?full", r"(?:mail ?box|inbox|mail ?folder|account|user)'?s? "
            r"(?:is )?(?:over|exceeded|exceeds) (?:\w+ )?(?:quota|storage|limit)",
            r"over (?:the )?(?:allowed )?quota", r"quota (?:exceeded|exceed|full)",
            r"quotaexceeded", r"exceeded (?:storage|the storage) allocation",
            r"insufficient (?:disk )?(?:space|storage)", r"(?:out of|no) (?:storage|space)",
            r"storage (?:full|limit)", r"mail database is full", r"full mailbox",
            r"mailbox size limit",
            r"邮箱(?:空间)?已满", r"空间不足", r"容量不足", r"超过.{0,6}(?:容量|配额)",
        ),
    ),
    (
        FailureCause.MAILBOX_DISABLED,
        _Words(
            r"(?:mailbox|account|user|address)(?: \S+)? (?:is |has been )?"
            r"(?:disabled|suspended|inactive|deactivated|frozen|locked|blocked|expired|closed|"
            r"stopped)",
            r"(?:disabled|suspended|inactive|deactivated|frozen|locked|expired) "
            r"(?:mailbox|account|user)", r"user suspended", r"account .{0,30}not active",
            r"mailbox (?:is )?(?:temporarily )?unavailable for", r"this mailbox is disabled",
            r"已(?:被)?(?:冻结|停用|禁用|锁定|注销)", r"被(?:冻结|停用|禁用|锁定)",
            r"帐号.{0,4}停用", r"账号.{0,4}停用",
        ),
    ),
    (
        FailureCause.ADDRESS_GONE,
        _Words(
            r"user(?:name)? (?:is )?unknown", r"unknown (?:user|recipient|mailbox|address|local)",
            r"no such (?:user|mailbox|recipient|address|account|person|local user)",
            r"(?:user|mailbox|recipient|address|account|addressee)(?: \S+)?(?: name)? "
            r"(?:does ?n[o']t|did not|doesnt) exist",
            r"(?:does ?n[o']t|did not) have (?:a|an) \S+ account",
            r"(?:user|mailbox|recipient|address|account|addressee) (?:was |is )?not (?:found|"
            r"known|listed|valid|exist|recogni[sz]ed|local)", r"not (?:a )?valid (?:recipient|"
            r"mailbox|user|address)", r"invalid (?:recipient|mailbox|user|address|account)",
            r"recip(?:ient)?notfound", r"recipient not found", r"bad (?:recipient|destination "
            r"mailbox)", r"no mailbox here", r"no mailbox by that name", r"mailbox not found",
            r"mailbox unavailable", r"mailbox (?:name )?not allowed", r"was ?n[o']t found",
            r"could ?n[o']t be found", r"address (?:could not|couldn't|cannot) be found",
            r"unrouteable address",
            r"unroutable address", r"address rejected: (?:access denied|user unknown)",
            r"rejected: (?:unverified|undeliverable) address",
            r"host (?:or domain name )?not found", r"host unknown", r"domain (?:not found|does "
            r"not exist|unknown)", r"(?:couldn't|could not|can't|cannot) find any host named",
            r"no (?:mx|mail exchanger)", r"null mx", r"non-existent (?:host|domain)",
            r"does not accept mail",
            r"accepts? no mail", r"name service error", r"nxdomain", r"dns domain does not exist",
            r"not listed in (?:domino )?directory", r"not listed in public name & address book",
            r"user not listed", r"has moved", r"no longer (?:valid|available|exists|active|in "
            r"use|with)", r"address (?:is )?no longer", r"does not have a valid notes mail file",
            r"(?:is|was) (?:disabled|discontinued) and no longer", r"dd this user",
            r"this user doesn't have", r"account that you tried to reach does not exist",
            r"the email account .{0,30} does not exist", r"suppression list",
            r"recent history of bouncing", r"用户不存在", r"地址不存在", r"帐[号户]不存在",
            r"账[号户]不存在", r"邮箱不存在", r"收件人不存在", r"不存在", r"无效的收件人",
            r"无效地址", r"查无此人", r"mailbox not found or access denied",
        ),
    ),
)
# Step 3b: the rest of the path, for what step 1 did not say.
_PATH_LAST: tuple[tuple[FailureCause, _Words], ...] = (
    (
        FailureCause.EXPIRED,
        _Words(
            r"retry (?:timeout|time) (?:exceeded|not reached)", r"message expired", r"expired",
            r"in the queue too long", r"(?:could not|couldn't|cannot|can't) (?:be )?(?:delivered|"
            r"send message) for (?:\d+|more than)", r"delivery time expired", r"time ?out "
            r"(?:exceeded|expired)", r"giving up", r"too old", r"超时", r"已过期",
        ),
    ),
    (
        FailureCause.NETWORK,
        _Words(
            r"connection (?:timed out|time ?out|refused|reset|lost|closed|dropped)",
            r"(?:timed|time) out", r"unable to connect", r"(?:couldn't|could not|wasn't able "
            r"to|unable to) establish", r"network (?:is )?unreachable", r"no route to host",
            r"lost connection", r"temporary (?:dns|lookup) failure", r"dns (?:error|failure|"
            r"lookup)", r"host unreachable", r"delivery temporarily suspended",
            r"try again later", r"\btls\b", r"certificate", r"greylist", r"graylist",
        ),
    ),
    (
        FailureCause.BLOCKED,
        _Words(
            r"\bblocked\b", r"\bbanned\b", r"\brejected\b.{0,40}\bip\b", r"access denied",
            r"denied by policy", r"not (?:authori[sz]ed|permitted|allowed)", r"refused",
            r"\bpolicy\b", r"拒绝", r"频率", r"受限",
        ),
    ),
    (
        FailureCause.SYSTEM,
        _Words(
            r"loop", r"hop count", r"too many hops", r"system (?:error|failure|full|busy)",
            r"internal (?:server )?error", r"local error", r"service (?:not )?(?:available|"
            r"unavailable)", r"insufficient system", r"resources", r"protocol", r"syntax",
            r"command (?:not|unrecognized)", r"configuration", r"try later",
        ),
    ),
)
# Step 2 (enhanced status code, subject.detail) and the general fallback of step 4.
_SPECIFIC_STATUS: dict[str, FailureCause] = {
    "1.1": FailureCause.ADDRESS_GONE,
    "1.2": FailureCause.ADDRESS_GONE,
    "1.3": FailureCause.ADDRESS_GONE,
    "1.6": FailureCause.ADDRESS_GONE,
    "1.10": FailureCause.ADDRESS_GONE,
    "1.7": FailureCause.RELAY,
    "1.8": FailureCause.RELAY,
    "2.2": FailureCause.MAILBOX_FULL,
    "2.3": FailureCause.CONTENT,
    "2.4": FailureCause.SYSTEM,
    "3.1": FailureCause.SYSTEM,
    "3.4": FailureCause.CONTENT,
    "4.2": FailureCause.NETWORK,
    "4.3": FailureCause.NETWORK,
    "4.5": FailureCause.SYSTEM,
    "4.6": FailureCause.SYSTEM,
    "4.7": FailureCause.EXPIRED,
    "6.0": FailureCause.CONTENT,
    "7.2": FailureCause.BLOCKED,
    "7.4": FailureCause.RELAY,
    "7.5": FailureCause.AUTHENTICATION,
    "7.7": FailureCause.AUTHENTICATION,
    "7.8": FailureCause.RELAY,
    "7.9": FailureCause.CONTENT,
    "7.13": FailureCause.MAILBOX_DISABLED,
    "7.23": FailureCause.AUTHENTICATION,
    "7.24": FailureCause.AUTHENTICATION,
    "7.25": FailureCause.BLOCKED,
    "7.26": FailureCause.AUTHENTICATION,
    "7.28": FailureCause.BLOCKED,
    "7.606": FailureCause.BLOCKED,
    "7.708": FailureCause.BLOCKED,
    "7.750": FailureCause.BLOCKED,
}
# Codes servers also use for other things (5.2.1 often says "user unknown"): only when the words
# say nothing.
_WEAK_STATUS: dict[str, FailureCause] = {
    "2.1": FailureCause.MAILBOX_DISABLED,
    "7.27": FailureCause.RELAY,  # a null MX: ours (RFC 7505) or, as some servers use it, theirs
}
_GENERAL_SUBJECT: dict[str, FailureCause] = {
    "3": FailureCause.SYSTEM,
    "4": FailureCause.NETWORK,
    "5": FailureCause.SYSTEM,
    "6": FailureCause.CONTENT,
    "7": FailureCause.BLOCKED,
}
_GENERAL_CODE: dict[str, FailureCause] = {
    "421": FailureCause.BLOCKED,  # closing the channel: mostly "too many connections" or a rate
    "452": FailureCause.MAILBOX_FULL,  # insufficient storage
    "552": FailureCause.MAILBOX_FULL,  # exceeded storage allocation
}


@dataclass(frozen=True)
class FailureReading:
    """One failure read: its cause, how final it was said to be, and the status it gave."""

    cause: FailureCause
    permanent: bool  # said permanently (5xx, 5.x.x), not just for now
    status: str | None  # the enhanced status ("5.1.1"), else the reply code ("550")

    @property
    def verdict(self) -> Verdict:
        if self.cause is FailureCause.ADDRESS_GONE:
            return Verdict.SUPPRESS if self.permanent else Verdict.REPEATED
        if self.cause in (FailureCause.MAILBOX_FULL, FailureCause.MAILBOX_DISABLED):
            return Verdict.REPEATED
        return Verdict.NOT_READER


def read_failure(
    words: str, *, status: str | None = None, code: int | None = None, permanent: bool | None = None
) -> FailureReading:
    """Read a failure from the remote system's ``words``, with the enhanced ``status`` and the
    SMTP reply ``code`` when known (else found in the words). ``permanent`` overrides what the
    codes say (a DSN's ``Action: failed`` without a status)."""
    text = words[:_WORDS_READ]
    enhanced = status if status and _ENHANCED.fullmatch(status) else None
    if enhanced is None and (found := _ENHANCED.search(text)) is not None:
        enhanced = found[0]
    reply = str(code) if code is not None else None
    if reply is None and (found := _CODE.search(text)) is not None:
        reply = found[1]
    final = enhanced or reply
    if permanent is None:
        permanent = final is not None and final[0] == "5"
    return FailureReading(_cause_of(text, enhanced, reply), permanent, final)


def _cause_of(text: str, enhanced: str | None, reply: str | None) -> FailureCause:
    for cause, pattern in _PATH_FIRST:
        if pattern.search(text):
            return cause
    detail = enhanced.split(".", 1)[1] if enhanced else None
    if detail is not None and detail in _SPECIFIC_STATUS:
        return _SPECIFIC_STATUS[detail]
    for cause, pattern in _READER + _PATH_LAST:
        if pattern.search(text):
            return cause
    if detail is not None and detail in _WEAK_STATUS:
        return _WEAK_STATUS[detail]
    if detail is not None and detail.split(".")[0] in _GENERAL_SUBJECT:
        return _GENERAL_SUBJECT[detail.split(".")[0]]
    if reply is not None:
        return _GENERAL_CODE.get(reply, FailureCause.UNKNOWN)
    return FailureCause.UNKNOWN


def domain_of(address: str) -> str:
    """The receiving domain of an address, lower-case: what a wave of refusals is counted by."""
    return address.rpartition("@")[2].strip().lower()
