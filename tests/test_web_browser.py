"""The pages in a real browser (Debian's Chromium, driven by Playwright) at phone width, from
messages that really went out through the engine to the test SMTP server."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from distributor.cli.render_commands import CHROMIUM, CHROMIUM_ARGS
from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.readers.confirmation import send_confirmation
from distributor.readers.unsubscribes import unsubscribes_by_send
from distributor.vocabulary import Variant
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.models import SubscriberStatus
from subscribers.signup import set_list_public
from subscribers.store import create_list, find_subscriber
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.smtp import SmtpServer
from tests.support.web import send_through_engine, serving, web_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 375, "height": 740}
READER = "reader00001@example.org"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class Site:
    url: str  # the database
    base: str  # the web server
    settings: Settings
    smtp: SmtpServer
    confirmations: list[int]


@pytest.fixture
def site(sqlite_url: str) -> Iterator[Site]:
    port = free_port()
    with SmtpServer() as smtp:
        settings = web_settings(
            sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", **smtp.env()
        )
        confirmations: list[int] = []
        app = create_app(
            settings, enqueue_confirmation=confirmations.append, limiter=MemoryRateLimiter()
        )
        with serving(app, port) as base:
            yield Site(sqlite_url, base, settings, smtp, confirmations)


def plain_text(data: bytes) -> str:
    message = email.message_from_bytes(data, policy=email.policy.default)
    part = message.get_body(("plain",))  # type: ignore[attr-defined]
    assert part is not None
    return str(part.get_content())


def link(text: str, path: str) -> str:
    match = re.search(rf"http://127\.0\.0\.1:\d+{path}\S+", text)
    assert match, f"no {path} link in: {text[-400:]}"
    return match.group(0)


def sent_message(site: Site, sample_issue_path: Path) -> tuple[int, str]:
    """Send the sample issue to one reader through the engine; the send and the text received."""
    make_audience(site.url, "members", 1)
    send_id = send_through_engine(
        site.settings, import_sample(site.url, sample_issue_path), "members"
    )
    assert [r.recipient for r in site.smtp.handler.received] == [READER]
    return send_id, plain_text(site.smtp.handler.received[0].data)


def phone_page(browser: Browser, url: str) -> Page:
    page = browser.new_page(viewport=PHONE, locale="zh-CN")
    page.goto(url)
    return page


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def no_horizontal_scroll(page: Page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def status_of(url: str, address: str) -> tuple[SubscriberStatus, Variant]:
    with transaction(url) as session:
        subscriber = find_subscriber(session, address)
        return subscriber.status, subscriber.format


def test_unsubscribe_from_a_sent_message_on_a_phone(
    site: Site, browser: Browser, sample_issue_path: Path
) -> None:
    send_id, text = sent_message(site, sample_issue_path)
    page = phone_page(browser, link(text, "/u/"))
    no_horizontal_scroll(page)
    shoot(page, "unsubscribe-375")
    assert status_of(site.url, READER)[0] is SubscriberStatus.ACTIVE  # looking changed nothing
    page.get_by_role("button", name="确认退订").click()
    page.get_by_text("您已退订，我们不会再给您发送邮件。").wait_for()
    shoot(page, "unsubscribed-375")
    no_horizontal_scroll(page)
    page.close()
    assert status_of(site.url, READER)[0] is SubscriberStatus.UNSUBSCRIBED
    with transaction(site.url) as session:
        assert unsubscribes_by_send(session, send_id) == 1


def test_change_the_format_to_digest_on_the_preferences_page(
    site: Site, browser: Browser, sample_issue_path: Path
) -> None:
    _, text = sent_message(site, sample_issue_path)
    page = phone_page(browser, link(text, "/p/"))
    no_horizontal_scroll(page)
    page.get_by_label("要闻摘要").check()
    page.get_by_role("button", name="保存设置").click()
    page.get_by_text("设置已保存。").wait_for()
    shoot(page, "preferences-375")
    page.close()
    assert status_of(site.url, READER) == (SubscriberStatus.ACTIVE, Variant.DIGEST)


def test_sign_up_receive_the_confirmation_and_confirm(site: Site, browser: Browser) -> None:
    with transaction(site.url) as session:
        list_id = create_list(session, "会员快讯", description="每周一期，工会要闻").id
        set_list_public(session, "会员快讯")
    page = phone_page(browser, f"{site.base}/subscribe/{list_id}")
    no_horizontal_scroll(page)
    page.get_by_label("称呼（可不填）").fill("小李")
    page.get_by_label("电子邮箱").fill("xiaoli@example.org")
    shoot(page, "signup-375")
    page.get_by_role("button", name="订阅").click()
    page.get_by_text("请查收确认邮件").wait_for()
    assert status_of(site.url, "xiaoli@example.org")[0] is SubscriberStatus.PENDING
    # What the Celery task does, in this process.
    for subscriber_id in site.confirmations:
        send_confirmation(site.settings, subscriber_id)
    [received] = site.smtp.handler.received
    assert received.recipient == "xiaoli@example.org"
    assert "会员快讯" in str(
        email.message_from_bytes(received.data, policy=email.policy.default)["Subject"]
    )
    page.goto(link(plain_text(received.data), "/c/"))
    assert status_of(site.url, "xiaoli@example.org")[0] is SubscriberStatus.PENDING
    page.get_by_role("button", name="确认订阅").click()
    page.get_by_text("感谢订阅").wait_for()
    shoot(page, "confirmed-375")
    page.close()
    assert status_of(site.url, "xiaoli@example.org")[0] is SubscriberStatus.ACTIVE


def test_the_archive_reads_on_a_phone_without_sideways_scrolling(
    site: Site, browser: Browser, sample_issue_path: Path
) -> None:
    sent_message(site, sample_issue_path)
    page = phone_page(browser, f"{site.base}/archive")
    no_horizontal_scroll(page)
    page.get_by_role("link", name=re.compile("第471期")).click()
    page.wait_for_url(re.compile(r"/archive/471$"))
    no_horizontal_scroll(page)
    shoot(page, "archive-issue-375")
    page.goto(f"{site.base}/archive/471#article-2")
    assert page.evaluate("document.getElementById('article-2').getBoundingClientRect().top") < 40
    page.close()
