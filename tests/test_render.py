"""The rendered newsletter checked the way receivers and readers see it (spec R2–R22).

Real tools only: html5lib and lxml parse the HTML, SpamAssassin scores the message, dkimpy
verifies the signature offline, headless Chromium measures the layout.
"""

from __future__ import annotations

import base64
import copy
import email
import email.policy
import os
import re
import shutil
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

import dkim
import dkim.canonicalization
import html5lib
import lxml.html  # type: ignore[import-untyped]
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.channels.smtp import _dot_stuffed
from distributor.cli.render_commands import CHROMIUM_ARGS
from distributor.config import Settings
from distributor.errors import ConfigurationError, InvalidRecipient, RenderError
from distributor.issues.document import Article, Block, IssueDocument, Masthead
from distributor.issues.plaintext import parse_plaintext
from distributor.render.dkim import SIGNED_HEADERS, DkimSigner
from distributor.render.email import (
    HTML_BUDGET_BYTES,
    CompiledMessage,
    compile_digest,
    compile_issue,
)
from distributor.render.mime import encode_text
from distributor.render.personalise import Recipient, check_alignment, personalise
from distributor.render.views import MAX_ARTICLE_CHARS, inline_runs
from distributor.render.wechat import compile_wechat
from distributor.vocabulary import Variant
from subscribers.links import PublicLinks
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.conftest import SAMPLE_ISSUE as SAMPLE

if TYPE_CHECKING:
    from playwright.sync_api import Browser

DOMAIN = "news.example-union.org"
SELECTOR = "nl2024"
SETTINGS = Settings(
    secret_key="test-secret-key-for-rendering-0123456789",
    mail_from=f"杭州工运 <newsletter@{DOMAIN}>",
    public_base_url=f"https://{DOMAIN}",
)
LINKS = PublicLinks(SETTINGS.public_base_url, TokenSigner(SETTINGS.require_secret_key()))
READER = Recipient(42, "wang.wei@example.com", "王伟")
EMAIL_VARIANTS = (Variant.FULL, Variant.DIGEST, Variant.TEXT)
FONT_STACK = '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei"'
# Spec §4.1: none of these may fire.
FORBIDDEN_RULES = re.compile(
    r"MISSING_MID|MISSING_DATE|MIME_HTML_ONLY|MIME_HTML_MOSTLY|MPART_ALT_DIFF\w*|HTML_IMAGE_ONLY_\w+"
    r"|HTML_SHORT_LINK_IMG_\w+|HTML_FONT_LOW_CONTRAST|HTML_OBFUSCATE_\w+|CHARSET_FARAWAY\w*"
    r"|MIME_CHARSET_FARAWAY|SUBJ_ALL_CAPS|EMPTY_MESSAGE|HTML_MIME_NO_HTML_TAG"
)
HOSTILE = '<script>alert("x")</script> "><img src=x onerror=alert(1)> &amp; 闭合'


# --- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample() -> IssueDocument:
    return parse_plaintext(SAMPLE.read_text(encoding="utf-8"), source=SAMPLE.name).document


@pytest.fixture(scope="module")
def compiled(sample: IssueDocument) -> dict[Variant, CompiledMessage]:
    return {variant: compile_issue(sample, variant, SETTINGS) for variant in EMAIL_VARIANTS}


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def signer(private_key: rsa.RSAPrivateKey) -> DkimSigner:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return DkimSigner.from_pem(DOMAIN, SELECTOR, pem)


def small_issue(*, title: str = "杭州工运", text: str = "第一段。第二句。") -> IssueDocument:
    return IssueDocument(
        title=title,
        number=1,
        date=date(2022, 12, 27),
        masthead=Masthead(publisher="杭州市总工会", address="杭州市上城区东宁路501号"),
        articles=[Article(headline="标题", byline="记者", blocks=[Block("paragraph", text)])],
    )


def send(
    compiled: CompiledMessage, recipient: Recipient = READER, signer: DkimSigner | None = None
) -> bytes:
    return personalise(compiled, recipient, send_id=7, links=LINKS, signer=signer).data


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(data: bytes, subtype: str) -> str:
    part = parse(data).get_body((subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def list_unsubscribe_https(data: bytes) -> str:
    match = re.search(r"<(https://[^>]+)>", str(parse(data)["List-Unsubscribe"]))
    assert match, "List-Unsubscribe has no https URI"
    return match.group(1)


# --- HTML: budget, validity, accessibility, CJK typography (R16, R19, R20) ----------------------


@pytest.mark.parametrize("variant", [Variant.FULL, Variant.DIGEST])
def test_html_is_small_valid_and_accessible(
    variant: Variant, compiled: dict[Variant, CompiledMessage]
) -> None:
    html = body(send(compiled[variant]), "html")
    assert len(html.encode("utf-8")) < 90 * 1024
    parser = html5lib.HTMLParser(strict=True)
    parser.parse(html)
    assert parser.errors == []

    root = lxml.html.document_fromstring(html)
    assert all(img.get("alt") is not None for img in root.iter("img"))
    assert root.get("lang") == "zh-CN"
    assert root.xpath("//meta[@charset='utf-8']")
    assert root.xpath("//meta[@name='viewport']")
    assert root.xpath("//meta[@name='color-scheme']") and root.xpath(
        "//meta[@name='supported-color-schemes']"
    )
    tables = root.xpath("//table")
    assert tables and all(table.get("role") == "presentation" for table in tables)
    preheader = root.body[0]
    assert preheader.get("class") == "preheader" and "display:none" in preheader.get("style", "")
    assert "<!--[if mso]>" in html and "max-width:600px" in html.replace(" ", "")


def test_article_text_has_cjk_font_stack_line_height_and_line_breaking(
    compiled: dict[Variant, CompiledMessage],
) -> None:
    root = lxml.html.document_fromstring(body(send(compiled[Variant.FULL]), "html"))
    paragraphs = root.xpath("//p[contains(@class, 'text')]")
    assert len(paragraphs) > 20
    for p in paragraphs:
        style = p.get("style", "")
        assert FONT_STACK in style
        assert "word-break:break-word" in style and "overflow-wrap:break-word" in style
        line_height = re.search(r"line-height:\s*([\d.]+)", style)
        assert line_height and float(line_height.group(1)) >= 1.6


def test_full_email_shows_the_whole_issue(
    sample: IssueDocument, compiled: dict[Variant, CompiledMessage]
) -> None:
    html = body(send(compiled[Variant.FULL]), "html")
    for text in (
        "杭州工运",
        "第471期",
        "星期二",
        "农历壬寅年十二月初五",
        "杭州市总工会",
        "联结企业和职工 联系发展与稳定",
        "王伟，您好",
    ):
        assert text in html
    for number, article in enumerate(sample.articles, start=1):
        assert article.headline in html and f'id="article-{number}"' in html
        for block in article.blocks:
            assert block.text in html


# --- Footer and List-Unsubscribe (R4, R5, R9) ---------------------------------------------------


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_footer_links_are_the_list_unsubscribe_url(
    variant: Variant, compiled: dict[Variant, CompiledMessage]
) -> None:
    data = send(compiled[variant])
    url = list_unsubscribe_https(data)
    token = url.rpartition("/u/")[2]
    # Signed with the send, so that the unsubscribe is counted against it.
    assert LINKS.signer.verify(token, TokenPurpose.UNSUBSCRIBE) == f"{READER.subscriber_id}.7"
    assert f"<mailto:unsubscribe@{DOMAIN}?subject=unsubscribe-{token}>" in str(
        parse(data)["List-Unsubscribe"]
    )
    text = body(data, "plain")
    assert url in text and f"{SETTINGS.public_base_url}/p/" in text
    assert "杭州市上城区东宁路501号" in text
    if variant is not Variant.TEXT:
        root = lxml.html.document_fromstring(body(data, "html"))
        footer = root.xpath("//td[@class='footer']")[0]
        hrefs = [a.get("href") for a in footer.iter("a")]
        assert url in hrefs
        assert any(href.startswith(f"{SETTINGS.public_base_url}/p/") for href in hrefs)
        assert "杭州市上城区东宁路501号" in footer.text_content()


# --- MIME and headers (R11–R15, R17) ------------------------------------------------------------


@pytest.mark.parametrize("variant", [Variant.FULL, Variant.DIGEST])
def test_mime_structure_and_headers(
    variant: Variant, compiled: dict[Variant, CompiledMessage]
) -> None:
    data = send(compiled[variant])
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    message = parse(data)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "base64"
    for name in (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Id",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "Feedback-ID",
        "MIME-Version",
    ):
        assert len(message.get_all(name) or []) == 1, name
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"<s7\.r42\.[0-9a-f]{16}@news\.example-union\.org>", message["Message-ID"])
    assert re.fullmatch(r"i471:\w+:newsletter:distributor", message["Feedback-ID"])
    assert message["List-Id"] == "杭州工运 <newsletter.news.example-union.org>"
    assert str(message["From"]) == f"杭州工运 <newsletter@{DOMAIN}>"
    assert str(message["To"]) == "王伟 <wang.wei@example.com>"
    assert b"=?utf-8?b?" in head
    expected_subject = (
        "杭州工运第471期 要闻摘要"
        if variant is Variant.DIGEST
        else "杭州工运第471期:市总工会召开深入构建新时代和谐劳动关系工作交流会"
    )
    assert message["Subject"] == expected_subject
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_message_id_is_stable_per_send_and_recipient(
    compiled: dict[Variant, CompiledMessage],
) -> None:
    full = compiled[Variant.FULL]
    first = personalise(full, READER, send_id=7, links=LINKS)
    again = personalise(full, READER, send_id=7, links=LINKS)
    other_reader = personalise(full, replace(READER, subscriber_id=43), send_id=7, links=LINKS)
    other_send = personalise(full, READER, send_id=8, links=LINKS)
    assert first.message_id == again.message_id
    assert len({first.message_id, other_reader.message_id, other_send.message_id}) == 3
    assert first.envelope_from == f"newsletter@{DOMAIN}"
    assert first.recipient == READER.email


def test_long_subjects_are_encoded_in_short_words() -> None:
    encoded = encode_text("杭州工运" * 20)
    assert all(len(line) <= 78 - len("Subject: ") for line in encoded.split("\r\n"))
    assert encode_text("Plain news") == "Plain news"


# --- text, digest, WeChat -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_text_part_is_written_for_text(
    variant: Variant, sample: IssueDocument, compiled: dict[Variant, CompiledMessage]
) -> None:
    text = body(send(compiled[variant]), "plain")
    assert "<" not in text.replace("<https", "")
    assert "王伟，您好" in text
    for number, article in enumerate(sample.articles, start=1):
        assert article.headline in text
        assert f"{SETTINGS.public_base_url}/archive/471#article-{number}" in text


def test_text_part_wraps_latin_paragraphs_and_leaves_cjk_whole() -> None:
    latin = "Workers of the West Lake district met on Tuesday to discuss wages. " * 8
    cjk = "职工之家建设取得新进展。" * 20
    doc = small_issue(text=latin)
    doc.articles[0].blocks.append(Block("paragraph", cjk))
    text = body(send(compile_issue(doc, Variant.TEXT, SETTINGS)), "plain")
    wrapped = textwrap.fill(latin.strip(), 78).replace("\n", "\r\n")
    assert wrapped.count("\r\n") > 4 and wrapped in text
    assert cjk in text.splitlines()


def test_text_variant_is_one_plain_part(compiled: dict[Variant, CompiledMessage]) -> None:
    message = parse(send(compiled[Variant.TEXT]))
    assert message.get_content_type() == "text/plain"
    assert message["Content-Transfer-Encoding"] == "base64"


def test_digest_links_each_article_to_the_archive(
    sample: IssueDocument, compiled: dict[Variant, CompiledMessage]
) -> None:
    root = lxml.html.document_fromstring(body(send(compiled[Variant.DIGEST]), "html"))
    links = {a.get("href") for a in root.iter("a") if a.text_content().startswith("阅读全文")}
    assert links == {
        f"{LINKS.archive(471)}#article-{n}" for n in range(1, len(sample.articles) + 1)
    }
    text = root.text_content()
    assert all(article.headline in text for article in sample.articles)
    assert sample.articles[0].paragraphs[0][:40] in text
    assert sample.articles[0].paragraphs[1][:40] not in text


def test_digest_of_several_issues(sample: IssueDocument) -> None:
    later = replace(copy.deepcopy(sample), number=472)
    later.articles[0].headline = "下一期的头条"
    data = send(compile_digest([sample, later], SETTINGS))
    message = parse(data)
    assert message["Subject"] == "杭州工运 要闻摘要(第471–472期)"
    assert message["Feedback-ID"] == "i471-472:digest:newsletter:distributor"
    html, text = body(data, "html"), body(data, "plain")
    for content in (html, text):
        assert "下一期的头条" in content and sample.articles[0].headline in content
        assert f"{LINKS.archive(472)}#article-1" in content
        assert f"{LINKS.archive(471)}#article-4" in content


def test_wechat_article_fits_the_platform(sample: IssueDocument) -> None:
    article = compile_wechat(sample, SETTINGS)
    assert len(article.title) <= 32 and article.title.startswith("杭州工运第471期")
    assert len(article.digest) <= 120
    assert 0 < len(article.author) <= 16
    assert article.content_source_url == LINKS.archive(471)
    content = article.content_html
    assert len(content) < 20_000
    lowered = content.lower()
    assert "<script" not in lowered and "<style" not in lowered and "class=" not in lowered
    assert "<link" not in lowered and "<html" not in lowered
    fragment = lxml.html.fragment_fromstring(content, create_parent="div")
    assert all(p.get("style") for p in fragment.iter("p", "h2", "h3"))
    for block in sample.articles[3].blocks:
        assert block.text in fragment.text_content()


# --- compile once, personalise many (R22) ------------------------------------------------------


def test_css_is_inlined_once_per_issue_and_variant(sample: IssueDocument) -> None:
    before = inline_runs()
    full = compile_issue(sample, Variant.FULL, SETTINGS)
    assert inline_runs() == before + 1
    messages = [
        personalise(full, Recipient(n, f"reader{n}@example.com"), send_id=1, links=LINKS)
        for n in range(200)
    ]
    assert inline_runs() == before + 1
    assert len({m.data for m in messages}) == 200
    assert "读者朋友，您好" in body(messages[0].data, "html")


# --- hostile content ---------------------------------------------------------------------------


def test_markup_in_articles_is_escaped_everywhere() -> None:
    doc = small_issue(text=HOSTILE)
    doc.articles[0].headline = HOSTILE
    for variant in (Variant.FULL, Variant.DIGEST):
        html = body(send(compile_issue(doc, variant, SETTINGS)), "html")
        root = lxml.html.document_fromstring(html)
        assert not root.xpath("//script") and not root.xpath("//img")
        assert not root.xpath("//*[@onerror]")
        assert '<script>alert("x")</script>' in root.body.text_content()
    wechat = lxml.html.fragment_fromstring(
        compile_wechat(doc, SETTINGS).content_html, create_parent="div"
    )
    assert not wechat.xpath("//script") and not wechat.xpath("//img")
    assert HOSTILE.replace("&amp;", "&") not in compile_wechat(doc, SETTINGS).content_html


def test_a_hostile_subscriber_name_cannot_inject_headers_or_markup() -> None:
    full = compile_issue(small_issue(), Variant.FULL, SETTINGS)
    evil = Recipient(5, "evil@example.com", 'Eve\r\nBcc: victim@example.com\r\n\r\n"><img src=x>')
    data = send(full, evil)
    message = parse(data)
    assert message["Bcc"] is None
    assert message["To"].addresses[0].addr_spec == "evil@example.com"
    assert "\r" not in str(message["To"]) and "\n" not in str(message["To"])
    root = lxml.html.document_fromstring(body(data, "html"))
    assert not root.xpath("//img")
    assert '"><img src=x>' in root.body.text_content()


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_a_personalised_message_is_ready_for_smtp_data_as_it_is(
    compiled: dict[Variant, CompiledMessage], signer: DkimSigner, variant: Variant
) -> None:
    """The composer marks its envelopes wire-ready, so the SMTP channel sends the bytes without
    its normalising pass: the pass must change nothing, whatever a subscriber's name holds."""
    for n, name in enumerate(["读者", ".", "\n.\r\n.", "a\rb", None, "." * 200]):
        for dkim_signer in (None, signer):
            data = send(compiled[variant], Recipient(n, f"r{n}@example.com", name), dkim_signer)
            assert _dot_stuffed(data) == data
            assert data.endswith(b"\r\n") and not re.search(rb"(^|\n)\.", data)


@pytest.mark.parametrize(
    ("settings", "doc", "complaint"),
    [
        (SETTINGS, small_issue(title="杭州工运\r\nBcc: victim@example.com"), "subject"),
        (
            replace(SETTINGS, mail_from="Eve <a@b.org>\nBcc: victim@example.com"),
            small_issue(),
            "MAIL_FROM",
        ),
        (replace(SETTINGS, mail_from="杭州工运"), small_issue(), "MAIL_FROM"),
    ],
)
def test_control_characters_in_subject_or_from_are_refused(
    settings: Settings, doc: IssueDocument, complaint: str
) -> None:
    with pytest.raises(RenderError, match=complaint):
        compile_issue(doc, Variant.FULL, settings)


@pytest.mark.parametrize(
    "address", ["a@b.org\r\nBcc: c@d.org", "<a@b.org>", "a b@c.org", "王@b.org"]
)
def test_recipient_addresses_that_could_inject_are_refused(address: str) -> None:
    full = compile_issue(small_issue(), Variant.TEXT, SETTINGS)
    with pytest.raises(InvalidRecipient, match=r"the recipient address .* is not a plain ASCII"):
        send(full, Recipient(9, address))


def test_a_10_mb_article_is_refused_by_name_quickly() -> None:
    doc = small_issue()
    doc.articles.append(
        Article(headline="超长文章", blocks=[Block("paragraph", "字" * 10_000_000)])
    )
    started = time.perf_counter()
    for variant in (Variant.FULL, Variant.TEXT):
        with pytest.raises(RenderError, match=r"article 2 “超长文章” has 10,000,004 characters"):
            compile_issue(doc, variant, SETTINGS)
    with pytest.raises(RenderError, match="article 2"):
        compile_wechat(doc, SETTINGS)
    assert time.perf_counter() - started < 1.0
    assert MAX_ARTICLE_CHARS < 10_000_000


def test_an_issue_too_long_for_gmail_is_refused_with_advice() -> None:
    doc = small_issue()
    doc.articles = [
        Article(headline=f"文章{n}", blocks=[Block("paragraph", "职工之家。" * 800)])
        for n in range(12)
    ]
    assert sum(len(a.paragraphs[0]) for a in doc.articles) * 3 > HTML_BUDGET_BYTES
    with pytest.raises(RenderError, match="send the digest variant"):
        compile_issue(doc, Variant.FULL, SETTINGS)
    compile_issue(doc, Variant.DIGEST, SETTINGS)


# --- SpamAssassin (R21) -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_spamassassin_scores_the_signed_message_as_ham(
    variant: Variant,
    compiled: dict[Variant, CompiledMessage],
    signer: DkimSigner,
    tmp_path: Path,
) -> None:
    binary = shutil.which("spamassassin")
    if binary is None:
        pytest.fail("spamassassin is not installed: apt-get install spamassassin")
    result = subprocess.run(
        [binary, "-L", "-t"],
        input=send(compiled[variant], signer=signer),
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "HOME": str(tmp_path)},  # keep autolearn out of the real home
    )
    status = re.search(
        rb"^X-Spam-Status: \w+, score=(-?[\d.]+) required=[\d.]+ tests=(.*?) autolearn",
        result.stdout,
        re.MULTILINE | re.DOTALL,
    )
    assert status, result.stdout[-2000:] + result.stderr[-2000:]
    score = float(status.group(1))
    rules = re.sub(rb"\s", b"", status.group(2)).decode().split(",")
    assert score <= 1.0, rules
    assert not [rule for rule in rules if FORBIDDEN_RULES.fullmatch(rule)]


# --- DKIM (R2, R3, R6, R13) --------------------------------------------------------------------


def _dnsfunc(private_key: rsa.RSAPrivateKey) -> Callable[..., bytes | None]:
    public = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name.rstrip(b".") == f"{SELECTOR}._domainkey.{DOMAIN}".encode() else None

    return dnsfunc


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_dkim_verifies_offline_and_covers_one_click(
    variant: Variant,
    compiled: dict[Variant, CompiledMessage],
    signer: DkimSigner,
    private_key: rsa.RSAPrivateKey,
) -> None:
    dnsfunc = _dnsfunc(private_key)
    data = send(compiled[variant], signer=signer)
    assert dkim.verify(data, dnsfunc=dnsfunc)
    tags = dict(
        tag.strip().split("=", 1)
        for tag in re.sub(r"\s", "", str(parse(data)["DKIM-Signature"])).split(";")
        if tag
    )
    assert tags["d"] == DOMAIN == parse(data)["From"].addresses[0].domain
    assert {"list-unsubscribe", "list-unsubscribe-post", "feedback-id", "from"} <= set(
        tags["h"].split(":")
    )
    tampered = [
        data.replace(b"<https://", b"<http://", 1),  # the first is in List-Unsubscribe
        data.replace(b"List-Unsubscribe=One-Click", b"List-Unsubscribe=One-Clack"),
        data.replace(b"i471:", b"i472:"),
    ]
    for message in tampered:
        assert message != data
        assert not dkim.verify(message, dnsfunc=dnsfunc)


def test_dkim_fails_when_the_body_changes(
    compiled: dict[Variant, CompiledMessage], signer: DkimSigner, private_key: rsa.RSAPrivateKey
) -> None:
    data = send(compiled[Variant.FULL], signer=signer)
    head, _, message_body = data.partition(b"\r\n\r\n")
    lines = message_body.split(b"\r\n")
    lines[10] = bytes(reversed(lines[10]))
    assert not dkim.verify(head + b"\r\n\r\n" + b"\r\n".join(lines), dnsfunc=_dnsfunc(private_key))


@pytest.mark.parametrize("variant", EMAIL_VARIANTS)
def test_bodies_are_already_canonical_as_the_signer_hashes_them(
    variant: Variant, compiled: dict[Variant, CompiledMessage]
) -> None:
    """The signer hashes a body as it is: that is right only while every body equals its relaxed
    canonical form (dkimpy's), whatever the reader's name or links."""
    readers = [
        READER,
        Recipient(8, "b@example.org", None),
        Recipient(9, "c@example.org", "a  b\t "),
    ]
    for reader in readers:
        message_body = send(compiled[variant], reader).partition(b"\r\n\r\n")[2]
        assert dkim.canonicalization.Relaxed.canonicalize_body(message_body) == message_body


def test_dkim_configuration(tmp_path: Path, signer: DkimSigner) -> None:
    assert DkimSigner.from_settings(SETTINGS) is None
    with pytest.raises(ConfigurationError, match="all three or none"):
        DkimSigner.from_settings(replace(SETTINGS, dkim_domain=DOMAIN))
    missing = replace(
        SETTINGS,
        dkim_domain=DOMAIN,
        dkim_selector="s",
        dkim_private_key_file=str(tmp_path / "none.pem"),
    )
    with pytest.raises(ConfigurationError, match="cannot be read"):
        DkimSigner.from_settings(missing)
    other = replace(signer, domain="example.net")
    with pytest.raises(RenderError, match="does not align"):
        check_alignment(compile_issue(small_issue(), Variant.TEXT, SETTINGS), other)
    check_alignment(compile_issue(small_issue(), Variant.TEXT, SETTINGS), signer)
    assert set(SIGNED_HEADERS) >= {"list-unsubscribe", "list-unsubscribe-post", "feedback-id"}


# --- headless Chromium (R18) -------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path("/usr/bin/chromium").exists():
        pytest.fail("/usr/bin/chromium is missing: apt-get install chromium fonts-noto-cjk")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


def layout(browser: Browser, html: str, width: int) -> tuple[int, float]:
    """Document scroll width and content column width at a viewport ``width`` px wide."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_content(html)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    column = page.evaluate("document.querySelector('table.card').getBoundingClientRect().width")
    page.close()
    return int(scroll_width), float(column)


@pytest.mark.parametrize("variant", [Variant.FULL, Variant.DIGEST])
def test_layout_is_fluid_on_phones_and_capped_on_desktops(
    variant: Variant, compiled: dict[Variant, CompiledMessage], chromium: Browser
) -> None:
    html = body(send(compiled[variant]), "html")
    for width in (375, 600):
        scroll_width, _ = layout(chromium, html, width)
        assert scroll_width <= width
    _, column = layout(chromium, html, 1024)
    assert 560 <= column <= 600


def test_long_latin_runs_do_not_widen_the_phone_layout(chromium: Browser) -> None:
    long_url = "https://www.hzgh.org/" + "very-long-path-segment/" * 20
    doc = small_issue(text=f"详情请见{long_url}与Supercalifragilistic{'x' * 120}。")
    html = body(send(compile_issue(doc, Variant.FULL, SETTINGS)), "html")
    scroll_width, _ = layout(chromium, html, 375)
    assert scroll_width <= 375
