"""The WeChat article of an issue (``draft/add`` fields): inline styles only, no classes, scripts
or style sheets, within the platform's limits.

Pictures travel in the article as ``data:`` URIs; :mod:`distributor.wechat.publish` uploads each
and puts WeChat's address in their place, so the length limit counts such an address instead.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace

from distributor.config import Settings
from distributor.errors import RenderError
from distributor.issues.document import IssueDocument
from distributor.render.views import (
    IssueView,
    check_sizes,
    fit,
    inline_css,
    issue_view,
    render_template,
)

WECHAT_MAX_CHARS = 20_000  # WeChat: content "必须少于2万字符"
WECHAT_TITLE_CHARS = 32
WECHAT_DIGEST_CHARS = 120
WECHAT_AUTHOR_CHARS = 16
WECHAT_ARTICLES_PER_MESSAGE = 8  # a draft (one mass message) holds 1 to 8 articles

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.DOTALL)
_DATA_URI = re.compile(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]*")
UPLOADED_URL_CHARS = 120
"""What an uploaded picture's WeChat address (``https://mmbiz.qpic.cn/…``) takes, at most."""


@dataclass(frozen=True)
class WechatArticle:
    """A WeChat draft article (``draft/add`` fields); not an email, so no per-reader parts."""

    title: str
    digest: str
    content_html: str
    author: str
    content_source_url: str


def wechat_length(content: str) -> int:
    """The article's length once its pictures are uploaded: each data: URI an address."""
    return len(_DATA_URI.sub("u" * UPLOADED_URL_CHARS, content))


def _data_uris(doc: IssueDocument) -> dict[str, str]:
    return {
        name: f"data:{image.content_type};base64,{base64.b64encode(image.data).decode('ascii')}"
        for name, image in doc.images.items()
    }


def _content(view: IssueView) -> str:
    page = inline_css(render_template("wechat.html", issue=view), remove_classes=True)
    body = _BODY.search(page)
    if body is None:
        raise RenderError("template wechat.html must produce a <body>", code="render.wechat_body")
    return body.group(1).strip()


def compile_wechat(doc: IssueDocument, settings: Settings) -> WechatArticle:
    """The issue as a WeChat article: inline styles only, no classes, scripts or style sheets."""
    check_sizes([doc])
    view = issue_view(doc, settings, _data_uris(doc))
    content = _content(view)
    if wechat_length(content) >= WECHAT_MAX_CHARS:
        raise RenderError(
            f"issue {doc.number} as a WeChat article is {wechat_length(content):,} characters; "
            "WeChat takes "
            f"fewer than {WECHAT_MAX_CHARS:,}: publish the long articles separately",
            code="render.wechat_long",
            number=doc.number,
            size=wechat_length(content),
            most=WECHAT_MAX_CHARS,
        )
    lead = doc.articles[0].headline
    return WechatArticle(
        title=fit(f"{doc.title}第{doc.number}期|{lead}", WECHAT_TITLE_CHARS),
        digest=fit("|".join(a.headline for a in doc.articles), WECHAT_DIGEST_CHARS),
        content_html=content,
        author=fit(doc.masthead.publisher or doc.title, WECHAT_AUTHOR_CHARS),
        content_source_url=view.url,
    )




def compile_wechat_message(doc: IssueDocument, settings: Settings) -> list[WechatArticle]:
    """The issue as one WeChat mass message: one article per issue article, the lead first.

    WeChat shows a multi-article message as the lead's card with the others under it, and each
    article gets its own 20,000 characters, so a long issue fits where one page would not. An
    issue of more than 8 articles (WeChat's most per message) goes as one page when it fits.
    Only a single-article message has a summary: WeChat takes none for the others.
    """
    check_sizes([doc])
    view = issue_view(doc, settings, _data_uris(doc))
    if len(doc.articles) > WECHAT_ARTICLES_PER_MESSAGE:
        return [compile_wechat(doc, settings)]
    author = fit(doc.masthead.publisher or doc.title, WECHAT_AUTHOR_CHARS)
    articles = []
    for item in view.articles:
        content = _content(replace(view, articles=(item,)))
        headline = item.article.headline
        if wechat_length(content) >= WECHAT_MAX_CHARS:
            raise RenderError(
                f"issue {doc.number}, article {item.number} “{headline[:30]}” as a WeChat article "
                f"is {wechat_length(content):,} characters; WeChat takes fewer than "
                f"{WECHAT_MAX_CHARS:,}: split it into several articles",
                code="render.wechat_article_long",
                number=doc.number,
                article=item.number,
                headline=headline[:30],
                size=wechat_length(content),
                most=WECHAT_MAX_CHARS,
            )
        lead = item.number == 1
        articles.append(
            WechatArticle(
                title=fit(f"{doc.title}第{doc.number}期|{headline}" if lead else headline,
                          WECHAT_TITLE_CHARS),
                digest=fit(item.summary, WECHAT_DIGEST_CHARS) if len(view.articles) == 1 else "",
                content_html=content,
                author=author,
                content_source_url=item.url,
            )
        )
    return articles
