"""What every rendering of an issue shares: the issue as templates see it, the Jinja2
environment, CSS inlining, and the checks that refuse absurd input before any template runs.

Inlining costs 20–60 ms per issue with premailer, so it runs once per issue × variant, never per
recipient (R22).
"""

from __future__ import annotations

import functools
import logging
import re
import textwrap
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from lunar_python import Solar

import distributor
from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import Article, IssueDocument
from subscribers.links import ARCHIVE_PATH

MAX_ARTICLE_CHARS = 100_000  # ~30× the longest article in the sample; beyond it, link to the web
SUMMARY_CHARS = 120

_WEEKDAYS = "一二三四五六日"
_SENTENCE_END = re.compile(r"(?<=[。!?!?])")

_inline_runs = 0


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
    images: Mapping[str, str] = field(default_factory=dict)  # picture name → its src here


def templates_dir() -> Path:
    """Top-level ``templates/`` in a checkout, ``distributor/templates/`` in an installed wheel."""
    package = Path(distributor.__file__).parent
    for candidate in (package.parent / "templates", package / "templates"):
        if candidate.is_dir():
            return candidate
    raise RenderError(
        f"no templates directory beside {package}: the installation is incomplete",
        code="render.no_templates",
        package=str(package),
    )


def inline_runs() -> int:
    """How often CSS was inlined in this process: per issue × variant, never per recipient."""
    return _inline_runs


def lead_sentences(article: Article, limit: int = SUMMARY_CHARS) -> str:
    """The article's opening sentences, at least ~60 characters, at most ``limit``."""
    paragraphs = article.paragraphs
    if not paragraphs:
        return article.subtitle or ""
    summary = ""
    for sentence in _SENTENCE_END.split(paragraphs[0]):
        if len(summary) >= 60:
            break
        summary += sentence
    return fit(summary.strip(), limit)


def check_sizes(docs: list[IssueDocument]) -> None:
    """Refuse absurd input before it reaches Jinja and the inliner, naming the article."""
    for doc in docs:
        if not doc.articles:
            raise RenderError(
                f"issue {doc.number} has no articles: there is nothing to send",
                code="render.no_articles",
                number=doc.number,
            )
        for number, article in enumerate(doc.articles, start=1):
            size = len(article.headline) + sum(len(block.text) for block in article.blocks)
            if size > MAX_ARTICLE_CHARS:
                raise RenderError(
                    f"issue {doc.number}, article {number} “{article.headline[:30]}” has "
                    f"{size:,} characters; the limit is {MAX_ARTICLE_CHARS:,}: split it into "
                    "several articles or publish it on the web and link to it",
                    code="render.article_long",
                    number=doc.number,
                    article=number,
                    headline=article.headline[:30],
                    size=size,
                    most=MAX_ARTICLE_CHARS,
                )


def issue_view(
    doc: IssueDocument, settings: Settings, images: Mapping[str, str] | None = None
) -> IssueView:
    """The issue as templates see it; ``images`` gives each picture's src in this rendering
    (without it, pictures show as their captions)."""
    url = f"{settings.public_base_url}{ARCHIVE_PATH}{doc.number}"  # as PublicLinks.archive()
    weekday = doc.masthead.weekday or f"星期{_WEEKDAYS[doc.date.weekday()]}"
    return IssueView(
        doc=doc,
        date_line=f"{doc.date.year}年{doc.date.month}月{doc.date.day}日 {weekday}",
        lunar_line="农历" + (doc.masthead.lunar_date or _lunar_date(doc)).removeprefix("农历"),
        url=url,
        articles=tuple(
            ArticleView(number, article, lead_sentences(article), f"{url}#article-{number}")
            for number, article in enumerate(doc.articles, start=1)
        ),
        images=dict(images or {}),
    )


def _lunar_date(doc: IssueDocument) -> str:
    lunar = Solar.fromYmd(doc.date.year, doc.date.month, doc.date.day).getLunar()
    return f"{lunar.getYearInGanZhi()}年{lunar.getMonthInChinese()}月{lunar.getDayInChinese()}"


def fit(text: str, limit: int) -> str:
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


def render_template(template: str, **context: object) -> str:
    try:
        return _environment().get_template(template).render(**context)
    except jinja2.TemplateError as error:
        raise RenderError(
            f"template {template} failed: {error}",
            code="render.template",
            template=template,
            problem=str(error),
        ) from error


def inline_css(html: str, *, remove_classes: bool = False) -> str:
    # Imported on first use: premailer brings requests and cssutils, a fifth of a web process's
    # start-up, and the pages a reader opens never inline CSS.
    from premailer import Premailer

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
