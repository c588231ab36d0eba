"""The dashboard's pages for saved segments and webhooks in a real browser: a segment whose
expression does not read is refused with its problem in words and a mark under the place, then
made, counted and deleted; a webhook is registered (its secret shown once), its deliveries read
in its log, paused and removed; in Chinese and English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from distributor.db import transaction, utcnow
from distributor.devservers.ports import free_port
from distributor.outbox import EventKind, record_event
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from distributor.webhooks.deliver import fan_out
from tests.support.audience import make_audience
from tests.support.browser import launched_chromium
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
UNTRANSLATED = re.compile(r"\b(?:staff|err|audit)\.[a-z_]+\.[a-z_.]+")  # staff.css is a file


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def sign_in(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/staff/segments?lang=zh-CN")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/staff/segments?lang=zh-CN")


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"staff-{name}-1280.png"), full_page=True)


def translated(page: Page) -> None:
    assert not UNTRANSLATED.findall(page.content())


def test_segments_and_webhooks_are_kept_from_the_dashboard(
    browser: Browser, sqlite_url: str
) -> None:
    make_audience(sqlite_url, "会员快讯", 5)
    add_staff(sqlite_url, "boss", Role.ADMIN)
    port = free_port()
    settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, "boss")
        expect(page.locator("#no-segments")).to_have_text("还没有分群。")

        form = page.locator("#segment-form")
        form.locator("input[name=name]").fill("会员")
        form.locator("textarea[name=expression]").fill("list = 会员快讯 and")
        page.click("#add-segment")
        expect(page.locator("p.error[role=alert]")).to_contain_text("条件表达式第 16 个字符处有误")
        # The mark under the place, each Chinese character two columns wide.
        expect(page.locator("#segment-caret")).to_have_text(
            "list = 会员快讯 and\n" + " " * 19 + "^"
        )
        translated(page)
        shoot(page, "segments")
        form.locator("textarea[name=expression]").fill("list = 会员快讯 and not tag = 退休")
        page.click("#add-segment")
        expect(page.locator("p.error[role=alert]")).to_contain_text("退休")  # no such tag
        form.locator("textarea[name=expression]").fill("list = 会员快讯")
        page.click("#add-segment")
        row = page.locator("tr[data-segment='会员']")
        expect(row).to_contain_text("list = 会员快讯")
        row.locator("a.count-link").click()
        expect(page.locator("tr[data-segment='会员'] .count")).to_have_text("5")
        page.locator("tr[data-segment='会员'] button.delete").click()
        expect(page.locator("#no-segments")).to_be_visible()

        page.goto(f"{base}/staff/webhooks?lang=en")
        form = page.locator("#webhook-form")
        form.locator("input[name=url]").fill("https://hooks.example.org/distributor")
        page.click("#add-webhook")
        expect(page.locator("p.error[role=alert]")).to_contain_text("name at least one event")
        form.locator("input[value='send.done']").check()
        form.locator("input[value='delivery.failed']").check()
        page.click("#add-webhook")
        secret = page.locator("#webhook-secret").inner_text()
        assert len(secret) >= 32
        page.goto(f"{base}/staff/webhooks?lang=en")
        expect(page.locator("#webhook-secret")).to_have_count(0)  # shown once
        expect(page.locator("tr[data-webhook='1']")).to_contain_text("send.done")

        with transaction(sqlite_url) as session:
            record_event(session, EventKind.SEND_DONE, {"send_id": 7})
            fan_out(session, utcnow())
        page.click("tr[data-webhook='1'] a >> nth=0")
        expect(page).to_have_url(f"{base}/staff/webhooks/1")
        entry = page.locator("#webhook-log tr[data-state='pending']")
        expect(entry).to_contain_text("send.done")
        expect(entry).to_contain_text("waiting")
        page.click("#webhook-pause")
        expect(page.locator("#webhook-state")).to_have_text("paused")
        page.goto(f"{base}/staff/webhooks/1?lang=zh-CN")
        expect(page.locator("#webhook-state")).to_have_text("已暂停")
        translated(page)
        shoot(page, "webhook")
        page.click("#webhook-remove")
        expect(page.locator("#no-webhooks")).to_have_text("还没有 Webhook。")
        page.close()
