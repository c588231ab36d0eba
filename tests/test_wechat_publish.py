"""An issue made ready for WeChat: images uploaded and rewritten, a cover, one article per issue
article, and an issue too long for one article split instead of refused."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from distributor.channels.wechat.protocol import DraftArticle, draft_body
from distributor.config import Settings
from distributor.devservers.wechat_sandbox import SandboxServer
from distributor.errors import RenderError
from distributor.issues.importer import read_issue_file
from distributor.render.wechat import WECHAT_MAX_CHARS, compile_wechat, compile_wechat_message
from distributor.wechat.publish import (
    default_cover,
    image_sources,
    prepare_articles,
    rewrite_images,
    upload_images,
)
from tests.support.browser import launched_chromium
from tests.support.wechat import JPEG, PNG, client_for, sandbox  # noqa: F401 (fixture)
from tests.support.wechat_sends import long_issue

SETTINGS = Settings(public_base_url="https://news.example.org")
MMBIZ = re.compile(r'src="http://mmbiz\.qpic\.cn/mmbiz_(jpg|png)/[^"]+/0"')


def data_uri(kind: str, data: bytes) -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


# Spec section 2: a ``thumb`` is a JPG of at most 64 KB (an ``image`` material may be larger).
THUMB_MAX_BYTES = 64 * 1024


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def decoded_size(browser: Browser, data: bytes) -> tuple[int, int] | None:
    """The pixel size Chromium's JPEG decoder gives ``data`` in an <img>, None if it cannot
    decode it, and (0, 0) if it decodes to nothing but a blank canvas."""
    page = browser.new_page()
    try:
        page.set_content(f'<img src="{data_uri("jpeg", data)}">')
        size = page.evaluate(
            """async () => {
                const img = document.querySelector("img");
                try { await img.decode(); } catch (error) { return null; }
                const canvas = document.createElement("canvas");
                [canvas.width, canvas.height] = [img.naturalWidth, img.naturalHeight];
                const context = canvas.getContext("2d");
                context.drawImage(img, 0, 0);
                const pixels = context.getImageData(0, 0, canvas.width, canvas.height).data;
                const painted = pixels.some((value, i) => i % 4 === 3 && value > 0);
                return painted ? [img.naturalWidth, img.naturalHeight] : [0, 0];
            }"""
        )
    finally:
        page.close()
    return None if size is None else (size[0], size[1])


def test_default_cover_decodes_as_a_jpeg_within_the_thumb_limits(browser: Browser) -> None:
    cover = default_cover()
    assert cover.startswith(b"\xff\xd8\xff") and cover.endswith(b"\xff\xd9")
    assert len(cover) <= THUMB_MAX_BYTES
    assert decoded_size(browser, cover) == (900, 383)  # a 2.35:1 article cover
    assert decoded_size(browser, JPEG) is None  # the decoder does refuse a file that only looks so


def test_default_cover_is_taken_by_wechat_as_a_thumb_and_as_an_image(
    sandbox: SandboxServer, sqlite_url: str  # noqa: F811
) -> None:
    client = client_for(sandbox, sqlite_url)
    for kind in ("thumb", "image"):
        assert client.add_material(default_cover(), "cover.jpg", "image/jpeg", kind).media_id


def test_img_src_rewritten_each_source_once() -> None:
    jpeg, png = data_uri("jpeg", JPEG), data_uri("png", PNG)
    html = f'<p><img src="{jpeg}" alt="a"></p><img alt=\'b\' src=\'{png}\'><img src="{jpeg}">'
    assert image_sources(html) == [jpeg, png]
    urls = {jpeg: "http://mmbiz.qpic.cn/a/0", png: "http://mmbiz.qpic.cn/b/0"}
    rewritten = rewrite_images(html, urls)
    assert rewritten == (
        '<p><img src="http://mmbiz.qpic.cn/a/0" alt="a"></p>'
        "<img alt='b' src='http://mmbiz.qpic.cn/b/0'><img src=\"http://mmbiz.qpic.cn/a/0\">"
    )


def test_images_uploaded_to_wechat_and_kept_by_its_draft(
    sandbox: SandboxServer, sqlite_url: str, sample_issue_path: Path  # noqa: F811
) -> None:
    [article] = [compile_wechat(read_issue_file(sample_issue_path).document, SETTINGS)]
    images = f'<img src="{data_uri("jpeg", JPEG)}"><img src="{data_uri("png", PNG)}">'
    article = dataclasses.replace(article, content_html=images + article.content_html)
    with client_for(sandbox, sqlite_url) as client:
        [draft] = prepare_articles(client, [article])
        media_id = client.add_draft([draft])
    assert "data:" not in draft.content
    assert [m[1] for m in MMBIZ.finditer(draft.content)] == ["jpg", "png"]
    assert sandbox.sandbox.images == set(re.findall(r'src="([^"]+)"', draft.content))
    assert sandbox.sandbox.materials[draft.thumb_media_id] == "image"
    kept = sandbox.sandbox.drafts[media_id].articles[0]["content"]
    assert kept.count("<img") == 2  # WeChat drops images it does not host: these it kept


def test_an_image_from_another_site_is_refused_by_name() -> None:
    article = dataclasses.replace(
        compile_wechat_message(long_issue(1, 1), SETTINGS)[0],
        content_html='<img src="https://example.com/x.jpg">',
    )
    with pytest.raises(RenderError, match=re.escape("https://example.com/x.jpg")):
        upload_images([article], lambda image: "never")


def test_an_issue_longer_than_20000_characters_is_split_per_article() -> None:
    doc = long_issue(3, 25)  # 3 × 25 × ~300 characters: far past one article's limit
    with pytest.raises(RenderError, match="20,000"):
        compile_wechat(doc, SETTINGS)
    articles = compile_wechat_message(doc, SETTINGS)
    assert len(articles) == 3
    assert all(len(article.content_html) < WECHAT_MAX_CHARS for article in articles)
    assert articles[0].title.startswith("杭州工运第500期|第1篇")  # the lead first, with the issue
    assert [a.title for a in articles[1:]] == ["第2篇 长文", "第3篇 长文"]
    assert all(a.digest == "" for a in articles)  # WeChat takes a summary for one article only
    assert "1段0" in articles[0].content_html and "2段0" not in articles[0].content_html
    body = draft_body(
        [
            DraftArticle(a.title, a.content_html, "thumb", a.author, a.digest, a.content_source_url)
            for a in articles
        ]
    )
    assert len(body["articles"]) == 3


def test_one_article_too_long_on_its_own_is_named() -> None:
    with pytest.raises(RenderError, match="article 2"):
        compile_wechat_message(
            dataclasses.replace(
                long_issue(2, 1),
                articles=[long_issue(1, 1).articles[0], long_issue(1, 80).articles[0]],
            ),
            SETTINGS,
        )
