"""The WeChat article of an issue (``draft/add`` fields): inline styles only, no classes, scripts
or style sheets, within the platform's limits."""

from __future__ import annotations

import re
from dataclasses import dataclass

from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import IssueDocument
from distributor.render.views import check_sizes, fit, inline_css, issue_view, render_template

WECHAT_MAX_CHARS = 20_000  # WeChat: content "必须少于2万字符"
WECHAT_TITLE_CHARS = 32
WECHAT_DIGEST_CHARS = 120
WECHAT_AUTHOR_CHARS = 16

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL)


@dataclass(frozen=True)
class WechatArticle:
    """A WeChat draft article (``draft/add`` fields); not an email, so no per-reader parts."""

    title: str
    digest: str
    content_html: str
    author: str
    content_source_url: str


def compile_wechat(doc: IssueDocument, settings: Settings) -> WechatArticle:
    """The issue as a WeChat article: inline styles only, no classes, scripts or style sheets."""
    check_sizes([doc])
    view = issue_view(doc, settings)
    page = inline_css(render_template("wechat.html", issue=view), remove_classes=True)
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
        title=fit(f"{doc.title}第{doc.number}期|{lead}", WECHAT_TITLE_CHARS),
        digest=fit("|".join(a.headline for a in doc.articles), WECHAT_DIGEST_CHARS),
        content_html=content,
        author=fit(doc.masthead.publisher or doc.title, WECHAT_AUTHOR_CHARS),
        content_source_url=view.url,
    )


