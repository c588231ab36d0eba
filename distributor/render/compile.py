"""Render an issue × variant once: Jinja2 (autoescaped), CSS inlined once, holes for recipients.

Inlining costs 20–60 ms per issue with premailer, so it must never run per recipient (R22): the
templates print :class:`~distributor.render.mime.Placeholders` where a recipient's name and signed
links go, and :func:`distributor.render.personalise.personalise` fills them in the bytes.
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
import unicodedata
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from zoneinfo import ZoneInfo

import jinja2
from lunar_python import Solar
from premailer import Premailer

import distributor
from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import Article, IssueDocument
from distributor.render.mime import (
    BodyPart,
    Placeholders,
    Skeleton,
    check_address,
    check_header_text,
    encode_text,
    mailbox,
)
from subscribers.links import ARCHIVE_PATH

MAX_ARTICLE_CHARS = 100_000  # ~30× the longest article in the sample; beyond it, link to the web
HTML_BUDGET_BYTES = 90 * 1024  # R16: Gmail clips at 102 KB and would hide the unsubscribe link
SLOT_ALLOWANCE_BYTES = 256  # room each hole may take when filled (a signed URL, an escaped name)
WECHAT_MAX_CHARS = 20_000  # WeChat: content "必须少于2万字符"
WECHAT_TITLE_CHARS = 32
WECHAT_DIGEST_CHARS = 120
WECHAT_AUTHOR_CHARS = 16
SUMMARY_CHARS = 120
DEFAULT_FEEDBACK_SENDER = "distributor"
PREVIEW_WIDTHS = ((375, "手机"), (1024, "电脑"))  # px: a phone, a desktop mail client

_WEEKDAYS = "一二三四五六日"
_SENTENCE_END = re.compile(r"(?<=[。!?!?])")
_LIST_LABEL = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SENDER_ID = re.compile(r"[A-Za-z0-9-]{5,15}")
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL)

_inline_runs = 0


class Variant(StrEnum):
    FULL = "full"
    DIGEST = "digest"
    TEXT = "text"
    WECHAT = "wechat"


_TEMPLATES: dict[Variant, tuple[str | None, str]] = {
    Variant.FULL: ("full.html", "text.txt"),
    Variant.DIGEST: ("digest.html", "digest.txt"),
    Variant.TEXT: (None, "text.txt"),
}


@dataclass(frozen=True)
class ArticleView:
    """An article with what templates need besides its text: its place and its web address."""

    number: int
    article: Article
    summary: str
    url: str

    @property
    def anchor(self) -> str:
        return f"article-{self.number}"


@dataclass(frozen=True)
class IssueView:
    doc: IssueDocument
    date_line: str
    lunar_line: str
    url: str
    articles: tuple[ArticleView, ...]


@dataclass(frozen=True)
class CompiledMessage:
    """One issue × email variant, rendered and inlined; fill it with ``personalise``."""

    variant: Variant
    subject: str
    from_address: str
    domain: str
    zone: ZoneInfo
    skeleton: Skeleton


@dataclass(frozen=True)
class WechatArticle:
    """A WeChat draft article (``draft/add`` fields); not an email, so no per-reader parts."""

    title: str
    digest: str
    content_html: str
    author: str
    content_source_url: str


def templates_dir() -> Path:
    """Top-level ``templates/`` in a checkout, ``distributor/templates/`` in an installed wheel."""
    package = Path(distributor.__file__).parent
    for candidate in (package.parent / "templates", package / "templates"):
        if candidate.is_dir():
            return candidate
    raise RenderError(f"no templates directory beside {package}: the installation is incomplete")


def inline_runs() -> int:
    """How often CSS was inlined in this process: per issue × variant, never per recipient."""
    return _inline_runs


def compile_issue(
    doc: IssueDocument,
    variant: Variant,
    settings: Settings,
    *,
    list_id: str | None = None,
    newsletter_name: str | None = None,
    feedback_sender: str = DEFAULT_FEEDBACK_SENDER,
) -> CompiledMessage:
    """The email ``variant`` of one issue, ready to personalise for any number of recipients."""
    if variant is Variant.WECHAT:
        raise RenderError("the wechat variant is not an email: use compile_wechat()")
    subject = (
        f"{doc.title}第{doc.number}期 要闻摘要"
        if variant is Variant.DIGEST
        else f"{doc.title}第{doc.number}期:{doc.articles[0].headline}"
    )
    return _compile_email(
        variant, [doc], settings, subject, list_id, newsletter_name or doc.title, feedback_sender
    )


def compile_digest(
    docs: list[IssueDocument],
    settings: Settings,
    *,
    list_id: str | None = None,
    newsletter_name: str | None = None,
    feedback_sender: str = DEFAULT_FEEDBACK_SENDER,
) -> CompiledMessage:
    """One digest email of several issues (e.g. a month's), in the order given."""
    if not docs:
        raise RenderError("a digest needs at least one issue")
    name = newsletter_name or docs[0].title
    subject = f"{name} 要闻摘要({_numbers_label(docs)})"
    return _compile_email(Variant.DIGEST, docs, settings, subject, list_id, name, feedback_sender)


def compile_wechat(doc: IssueDocument, settings: Settings) -> WechatArticle:
    """The issue as a WeChat article: inline styles only, no classes, scripts or style sheets."""
    _check_sizes([doc])
    view = _issue_view(doc, settings)
    page = _inline(_render("wechat.html", issue=view), remove_classes=True)
    body = _BODY.search(page)
    if body is None:
        raise RenderError("template wechat.html must produce a <body>")
    content = body.group(1).strip()
    if len(content) >= WECHAT_MAX_CHARS:
        raise RenderError(
            f"issue {doc.number} as a WeChat article is {len(content):,} characters; WeChat takes "
            f"fewer than {WECHAT_MAX_CHARS:,}: publish the long articles separately"
        )
    lead = doc.articles[0].headline
    return WechatArticle(
        title=_fit(f"{doc.title}第{doc.number}期|{lead}", WECHAT_TITLE_CHARS),
        digest=_fit("|".join(a.headline for a in doc.articles), WECHAT_DIGEST_CHARS),
        content_html=content,
        author=_fit(doc.masthead.publisher or doc.title, WECHAT_AUTHOR_CHARS),
        content_source_url=view.url,
    )


def render_preview(html: str, subject: str) -> str:
    """A page showing ``html`` at phone and desktop widths (iframes with srcdoc) for staff."""
    return _render("preview.html", html=html, subject=subject, widths=PREVIEW_WIDTHS)


def _lead_sentences(article: Article, limit: int = SUMMARY_CHARS) -> str:
    """The article's opening sentences, at least ~60 characters, at most ``limit``."""
    paragraphs = article.paragraphs
    if not paragraphs:
        return article.subtitle or ""
    summary = ""
    for sentence in _SENTENCE_END.split(paragraphs[0]):
        if len(summary) >= 60:
            break
        summary += sentence
    return _fit(summary.strip(), limit)


def _compile_email(
    variant: Variant,
    docs: list[IssueDocument],
    settings: Settings,
    subject: str,
    list_id: str | None,
    newsletter_name: str,
    feedback_sender: str,
) -> CompiledMessage:
    _check_sizes(docs)
    from_name, from_address, domain = parse_from(settings.mail_from)
    list_label = list_id or f"newsletter.{domain}"
    if not _LIST_LABEL.fullmatch(list_label):
        raise RenderError(f"list id {list_label!r} must look like label.example.org (RFC 2919)")
    if not _SENDER_ID.fullmatch(feedback_sender):
        raise RenderError(
            f"Feedback-ID sender {feedback_sender!r} must be 5–15 letters, digits or '-'"
        )
    check_header_text(subject, f"the subject of issue {_numbers_label(docs)}")
    check_header_text(newsletter_name, "the newsletter name")

    placeholders = Placeholders.fresh()
    views = [_issue_view(doc, settings) for doc in docs]
    html_template, text_template = _TEMPLATES[variant]
    context = {
        "issue": views[0],
        "issues": views,
        "footer": docs[-1].masthead,
        "newsletter_name": newsletter_name,
        "numbers_label": _numbers_label(docs),
        "subject": subject,
        "slot": placeholders.markers(),
    }
    parts = [BodyPart.parse("plain", _render(text_template, **context), placeholders)]
    if html_template is not None:
        html = _inline(_render(html_template, preheader=_preheader(variant, views), **context))
        parts.append(_html_part(html, placeholders, f"issue {_numbers_label(docs)} {variant}"))

    first, last = _first_last(docs)
    campaign = str(first) if first == last else f"{first}-{last}"
    headers = [
        ("From", mailbox(from_name, from_address)),
        ("Subject", encode_text(subject)),
        ("List-Id", f"{encode_text(newsletter_name)} <{list_label}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Feedback-ID", f"i{campaign}:{variant}:{list_label.split('.')[0]}:{feedback_sender}"),
        ("Precedence", "bulk"),
    ]
    if not settings.one_click_unsubscribe:  # RFC 8058 one-click needs an https link
        headers.remove(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    return CompiledMessage(
        variant=variant,
        subject=subject,
        from_address=from_address,
        domain=domain,
        zone=settings.zone,
        skeleton=Skeleton.build(headers, parts),
    )


def _html_part(html: str, placeholders: Placeholders, what: str) -> BodyPart:
    part = BodyPart.parse("html", html, placeholders)
    size = sum(map(len, part.literals)) + SLOT_ALLOWANCE_BYTES * len(part.slots)
    if size > HTML_BUDGET_BYTES:
        raise RenderError(
            f"{what}: the HTML is {size / 1024:.0f} KB after inlining; the budget is "
            f"{HTML_BUDGET_BYTES // 1024} KB because Gmail clips at 102 KB and would hide the "
            "unsubscribe link: send the digest variant or split the issue"
        )
    return part


def parse_from(mail_from: str) -> tuple[str | None, str, str]:
    check_header_text(mail_from, "MAIL_FROM")
    name, address = parseaddr(mail_from)
    check_address(address, "the address in MAIL_FROM")
    return name or None, address, address.rpartition("@")[2].lower()


def _check_sizes(docs: list[IssueDocument]) -> None:
    """Refuse absurd input before it reaches Jinja and the inliner, naming the article."""
    for doc in docs:
        if not doc.articles:
            raise RenderError(f"issue {doc.number} has no articles: there is nothing to send")
        for number, article in enumerate(doc.articles, start=1):
            size = len(article.headline) + sum(len(block.text) for block in article.blocks)
            if size > MAX_ARTICLE_CHARS:
                raise RenderError(
                    f"issue {doc.number}, article {number} “{article.headline[:30]}” has "
                    f"{size:,} characters; the limit is {MAX_ARTICLE_CHARS:,}: split it into "
                    "several articles or publish it on the web and link to it"
                )


def _issue_view(doc: IssueDocument, settings: Settings) -> IssueView:
    url = f"{settings.public_base_url}{ARCHIVE_PATH}{doc.number}"  # as PublicLinks.archive()
    weekday = doc.masthead.weekday or f"星期{_WEEKDAYS[doc.date.weekday()]}"
    return IssueView(
        doc=doc,
        date_line=f"{doc.date.year}年{doc.date.month}月{doc.date.day}日 {weekday}",
        lunar_line="农历" + (doc.masthead.lunar_date or _lunar_date(doc)).removeprefix("农历"),
        url=url,
        articles=tuple(
            ArticleView(number, article, _lead_sentences(article), f"{url}#article-{number}")
            for number, article in enumerate(doc.articles, start=1)
        ),
    )


def _lunar_date(doc: IssueDocument) -> str:
    lunar = Solar.fromYmd(doc.date.year, doc.date.month, doc.date.day).getLunar()
    return f"{lunar.getYearInGanZhi()}年{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"


def _preheader(variant: Variant, views: list[IssueView]) -> str:
    """The inbox preview line: the lead's opening for a full issue, headlines for a digest."""
    if variant is Variant.DIGEST:
        return _fit("|".join(a.article.headline for v in views for a in v.articles), 110)
    return _fit(views[0].articles[0].summary, 110)


def _first_last(docs: list[IssueDocument]) -> tuple[int, int]:
    numbers = [doc.number for doc in docs]
    return min(numbers), max(numbers)


def _numbers_label(docs: list[IssueDocument]) -> str:
    first, last = _first_last(docs)
    return f"第{first}期" if first == last else f"第{first}–{last}期"


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _wrap(text: str, width: int = 78) -> str:
    """Latin text wrapped at 78 columns (RFC 5322); CJK left whole for the reader's client to wrap,
    since hard breaks every 39 characters turn ragged on a phone."""
    if any(unicodedata.east_asian_width(char) in "WF" for char in text):
        return text
    return textwrap.fill(text, width, break_long_words=False, break_on_hyphens=False)


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir()),
        autoescape=lambda name: name is None or not name.endswith(".txt"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["wrap"] = _wrap
    return environment


def _render(template: str, **context: object) -> str:
    try:
        return _environment().get_template(template).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(f"template {template} failed: {error}") from error


def _inline(html: str, *, remove_classes: bool = False) -> str:
    global _inline_runs
    _inline_runs += 1
    return str(
        Premailer(
            html,
            allow_network=False,
            # premailer would overwrite <img width="552"> with width="100%" (spec §3.2)
            disable_basic_attributes=["width", "height"],
            remove_classes=remove_classes,
            cssutils_logging_level=logging.CRITICAL,
        ).transform()
    )
