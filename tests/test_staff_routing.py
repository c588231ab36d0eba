"""The send page of the staff dashboard shows the routing shared by every send: each relay (sent
and deferred today, resting until, caps left) and each capped or slowed receiving domain, in both
languages, readable at phone and desktop widths (a real Chromium)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect

from distributor.config import Settings
from distributor.db import session_factory
from distributor.sending.health import strain
from distributor.sending.limits import DatabaseLimits
from distributor.sending.routing import Clockwork, quotas_for, rest, slow_down
from distributor.staff.models import Role
from distributor.web.app import create_app
from tests.support.audience import make_audience
from tests.support.browser import launched_chromium
from tests.support.sending import import_sample, relays_file, started_send
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def routed_settings(url: str, tmp_path: Path) -> Settings:
    plan = relays_file(
        tmp_path,
        "relays:\n  - {name: main, host: 127.0.0.1, port: 2525, daily_cap: 1000}\n"
        "  - {name: spare, host: 127.0.0.1, port: 2526}\n",
    )
    return web_settings(url, SMTP_RELAYS_FILE=plan)


def test_the_send_page_shows_each_relay_and_each_capped_or_slowed_domain(
    browser: Browser, sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    settings = routed_settings(sqlite_url, tmp_path)
    make_audience(sqlite_url, "members", 2)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    send_id = started_send(sqlite_url, issue_id, "members")
    add_staff(sqlite_url, "viewer", Role.VIEWER)
    factory, clock = session_factory(sqlite_url), Clockwork.from_settings(settings)
    now = time.time()
    main, _ = settings.routing.relays
    limits = DatabaseLimits(factory)
    for _ in range(3):
        limits.take_quota(quotas_for(main, "example.org", None, now, clock, count_relay=True))
    with factory.begin() as session:
        rested = strain(session, "relay:spare", lambda old: rest(old, now, clock))
        strain(session, "domain:qq.com", lambda old: slow_down(old, now, clock))
    resting = datetime.fromtimestamp(rested.until, ZoneInfo("Asia/Shanghai"))
    with serving(create_app(settings)) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, base, f"/staff/sends/{send_id}?lang=en")
        relays = page.locator("table.relays tbody tr")
        expect(relays).to_have_count(2)
        expect(page.get_by_role("heading", name="Relays (shared by all sends)")).to_be_visible()
        expect(relays.nth(0).locator("th, td")).to_have_text(["main", "3", "0", "—", "997", "—"])
        expect(relays.nth(1)).to_contain_text(resting.strftime("%Y-%m-%d %H:%M"))
        domains = page.locator("table.domains tbody tr")
        expect(domains.filter(has_text="163.com")).to_contain_text("3000")
        expect(domains.filter(has_text="qq.com")).to_contain_text(
            "1/s (slowed to 1/2 after 'too many' answers)"
        )
        for width in (375, 1280):
            page.set_viewport_size({"width": width, "height": 800})
            assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.goto(f"{base}/staff/sends/{send_id}?lang=zh-CN")
        expect(page.get_by_role("heading", name="中继服务器（所有发送共用）")).to_be_visible()
        expect(page.locator("table.domains")).to_contain_text("因“过多”回复降为 1/2")
        page.close()


def sign_in(page: Page, base: str, path: str) -> None:
    page.goto(f"{base}{path}")
    page.fill("input[name=name]", "viewer")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}{path}")
