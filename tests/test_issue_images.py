"""Issue 24: the photos of a .docx reach the reader. The email carries them as inline parts its
HTML shows by ``cid:`` (displayed here by Chromium, as a mail client does: each ``cid:`` source
replaced by its part), and the WeChat draft has both uploaded to WeChat (the sandbox)."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from playwright.sync_api import Browser

from distributor.config import Settings
from distributor.devservers.wechat_sandbox import SandboxServer
from distributor.issues.document import IssueDocument
from distributor.issues.importer import read_issue_file
from distributor.render.email import CompiledMessage, compile_issue
from distributor.render.personalise import Recipient
from distributor.render.preview import html_body, message_bytes, variant_html
from distributor.render.wechat import compile_wechat_message
from distributor.vocabulary import Variant
from distributor.wechat.publish import prepare_articles
from tests.support.browser import launched_chromium
from tests.support.office_files import OFFICE_FIXTURES, PHOTO_CAPTIONS
from tests.support.wechat import client_for, sandbox  # noqa: F401 (fixture)

SETTINGS = Settings(
    public_base_url="https://news.example.org",
    mail_from="杭州工运 <news@example.org>",
    secret_key="k" * 32,
)
READER = Recipient(7, "reader@example.com", "王")
MMBIZ = re.compile(r'src="(http://mmbiz\.qpic\.cn/mmbiz_jpg/[^"]+/0)"')


@pytest.fixture(scope="module")
def photos_issue() -> IssueDocument:
    return read_issue_file(OFFICE_FIXTURES / "hzgy-471-photos.docx").document


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def full_email(doc: IssueDocument) -> EmailMessage:
    data = message_bytes(doc, Variant.FULL, SETTINGS, READER)
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_the_email_carries_both_photos_as_inline_parts_its_html_shows(
    photos_issue: IssueDocument,
) -> None:
    message = full_email(photos_issue)
    assert message.get_content_type() == "multipart/alternative"
    text, related = message.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html, *pictures = related.iter_parts()
    assert html.get_content_type() == "text/html" and len(pictures) == 2
    sources = re.findall(r'<img[^>]* src="cid:([^"]+)"', html.get_content())
    assert sources == [str(p["Content-ID"]).strip("<>") for p in pictures]
    for picture in pictures:
        assert picture.get_content_type() == "image/jpeg"
        assert picture.get_content_disposition() == "inline"
        assert picture.get_content() in [image.data for image in photos_issue.images.values()]
    for caption in PHOTO_CAPTIONS:
        assert f'alt="{caption}"' in html.get_content()
        assert f"[图：{caption}]" in text.get_content()


def test_an_issue_without_photos_stays_a_plain_alternative() -> None:
    doc = read_issue_file(OFFICE_FIXTURES / "hzgy-471-styles.docx").document
    message = full_email(doc)
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]


def test_the_photos_survive_the_compiled_json_a_send_stores(photos_issue: IssueDocument) -> None:
    compiled = compile_issue(photos_issue, Variant.FULL, SETTINGS)
    again = CompiledMessage.from_json(compiled.to_json())
    assert again == compiled
    assert len(again.skeleton.images) == 2


def test_chromium_displays_both_photos_of_the_email(
    photos_issue: IssueDocument, browser: Browser
) -> None:
    page_html = html_body(message_bytes(photos_issue, Variant.FULL, SETTINGS, READER))
    assert page_html.count('src="data:image/jpeg;base64,') == 2  # each cid: shown as a client does
    page = browser.new_page(viewport={"width": 375, "height": 800})
    try:
        page.set_content(page_html)
        shown = page.evaluate(
            """async () => Promise.all([...document.querySelectorAll("img.photo")].map(
                async (img) => { await img.decode(); return [img.naturalWidth, img.width]; }))"""
        )
    finally:
        page.close()
    assert len(shown) == 2
    for natural, width in shown:
        assert natural == 160 and 0 < width <= 375  # decoded, and fits the phone's width


def test_the_wechat_draft_has_both_photos_uploaded(
    photos_issue: IssueDocument, sandbox: SandboxServer, sqlite_url: str  # noqa: F811
) -> None:
    articles = compile_wechat_message(photos_issue, SETTINGS)
    assert sum(a.content_html.count("data:image/jpeg;base64,") for a in articles) == 2
    with client_for(sandbox, sqlite_url) as client:
        drafts = prepare_articles(client, articles)
        media_id = client.add_draft(drafts)
    uploaded = [url for draft in drafts for url in MMBIZ.findall(draft.content)]
    assert len(uploaded) == 2 and len(set(uploaded)) == 2
    assert sandbox.sandbox.images == set(uploaded)
    kept = sandbox.sandbox.drafts[media_id].articles
    assert sum(article["content"].count("<img") for article in kept) == 2
    assert all("data:" not in article["content"] for article in kept)


def test_the_staff_preview_shows_the_photos(photos_issue: IssueDocument) -> None:
    preview = variant_html(photos_issue, Variant.FULL, SETTINGS)
    assert preview.count('src="data:image/jpeg;base64,') == 2 and "cid:" not in preview
