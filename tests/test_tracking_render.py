"""Open and click tracking as compiled into a tracked send's HTML: every web link goes through a
signed redirect, our own signed pages do not, and an open pixel names the recipient."""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import replace
from html import unescape
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

from distributor.config import Settings
from distributor.issues.document import Block
from distributor.issues.plaintext import parse_plaintext
from distributor.render.email import CompiledMessage, compile_issue
from distributor.render.personalise import Recipient, personalise
from distributor.render.tracking import add_tracking
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.conftest import SAMPLE_ISSUE

BASE = "https://news.example-union.org"
SETTINGS = Settings(
    secret_key="tracking-test-secret-0123456789-abcdef",
    mail_from="杭州工运 <newsletter@news.example-union.org>",
    public_base_url=BASE,
)
SIGNER = TokenSigner(SETTINGS.require_secret_key())
LINKS = PublicLinks(BASE, SIGNER)
DOC = parse_plaintext(SAMPLE_ISSUE.read_text(encoding="utf-8"), source="hzgy-471.txt").document


def html_for(compiled: CompiledMessage, subscriber_id: int) -> str:
    data = personalise(
        compiled, Recipient(subscriber_id, "wang@example.org", "王伟"), send_id=7, links=LINKS
    ).data
    part = email.message_from_bytes(data, policy=email.policy.default).get_body(("html",))
    assert part is not None
    return str(part.get_content())


def hrefs(page: str) -> list[str]:
    return [unescape(href) for href in re.findall(r'href="([^"]*)"', page)]


def link_hrefs(page: str) -> list[str]:
    """The href of every <a> the page really has (not text that looks like one)."""

    found: list[str] = []

    class Links(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.extend(value or "" for name, value in attrs if tag == "a" and name == "href")

    Links().feed(page)
    return found


def test_a_tracked_digest_links_through_signed_redirects_and_reports_the_open() -> None:
    plain = compile_issue(DOC, Variant.DIGEST, SETTINGS)
    tracked = compile_issue(DOC, Variant.DIGEST, SETTINGS, tracking=True)
    assert tracked.tracked and not plain.tracked
    original = [h for h in hrefs(html_for(plain, 42)) if h.startswith("https://")]
    page = html_for(tracked, 42)
    links = [h for h in hrefs(page) if h.startswith("https://")]
    redirects = [h for h in links if h.startswith(f"{BASE}/t/c/")]
    direct = [h for h in links if not h.startswith(f"{BASE}/t/c/")]
    # the signed pages stay direct; every other web link is a redirect to what it was
    assert [h.split("/")[3] for h in direct] == ["u", "p"]
    targets = []
    for link in redirects:
        parts = urlsplit(link)
        query = parse_qs(parts.query)
        token = parts.path.removeprefix("/t/c/")
        assert SIGNER.verify(token, TokenPurpose.TRACK) == "7-42"
        assert SIGNER.check_text_mac(TokenPurpose.LINK, query["u"][0], query["s"][0])
        assert not SIGNER.check_text_mac(TokenPurpose.LINK, "https://evil.example/", query["s"][0])
        targets.append(query["u"][0])
    assert targets == [h for h in original if h.split("/")[3] not in ("u", "p")]
    assert len(targets) >= 5  # each article's headline and "read more", and the archive link
    [pixel] = re.findall(r'<img src="([^"]*/t/o/[^"]*)"', page)
    assert SIGNER.verify(unescape(pixel).rpartition("/")[2].removesuffix(".gif"),
                         TokenPurpose.TRACK) == "7-42"


def test_tracking_survives_the_stored_form_and_each_reader_gets_their_own_token() -> None:
    tracked = compile_issue(DOC, Variant.FULL, SETTINGS, tracking=True)
    again = CompiledMessage.from_json(tracked.to_json())
    assert again == tracked
    first, second = html_for(again, 1), html_for(again, 2)
    assert "/t/o/" in first and first != second
    assert "t/o/" not in str(compile_issue(DOC, Variant.TEXT, SETTINGS, tracking=True).to_json())


def test_only_real_links_are_tracked_never_text_that_looks_like_one() -> None:
    """An article quoting href="https://…" as text keeps its text: signing it would make a
    permanent redirect of ours to wherever it names."""
    quoted = 'href="https://evil.example/steal"'
    first = DOC.articles[0]
    article = replace(first, blocks=[Block("paragraph", f"请勿点击 {quoted} 这样的链接。"),
                                     *first.blocks])
    document = replace(DOC, articles=[article, *DOC.articles[1:]])
    page = html_for(compile_issue(document, Variant.FULL, SETTINGS, tracking=True), 42)
    assert "evil.example" in page  # the article says it
    links = link_hrefs(page)
    assert any(link.startswith(f"{BASE}/t/c/") for link in links)
    for link in links:
        target = parse_qs(urlsplit(link).query).get("u", [link])[0]
        assert "evil.example" not in target, link
    assert "请勿点击" in page


def test_links_are_found_by_tag_in_any_quoting() -> None:
    page = (
        "<html><body><p>write href=\"https://evil.example/\" like this</p>"
        "<a class='x' href='https://hzgh.org.cn/a'>a</a> <A HREF=\"https://hzgh.org.cn/b\">b</A>"
        "<img src=\"https://hzgh.org.cn/c.png\" alt='href=\"https://evil.example/\"'></body></html>"
    )
    tracked = add_tracking(page, base_url=BASE, token_marker="TOKEN", skip_markers=(),
                           signer=SIGNER)
    targets = [parse_qs(urlsplit(unescape(href)).query)["u"][0]
               for href in re.findall(r'href="(https://news[^"]*)"', tracked, re.IGNORECASE)]
    assert targets == ["https://hzgh.org.cn/a", "https://hzgh.org.cn/b"]
    assert tracked.count("evil.example") == 2  # both untouched, as text and as an alt
