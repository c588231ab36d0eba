"""A count too long for the page, in a real browser (Chromium): with no time for counts
(``COUNT_BUDGET_SECONDS=0``) and the count held up by a lock, the create form's live count and
the new send's confirmation say 正在计算…, the confirm button stays disabled, and once the count
is made the confirmation shows the number the send is then made with."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.sending.models import Send
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.browser import launched_chromium
from tests.support.counting import (
    AUDIENCE,
    LIST,
    PENDING_TEXT,
    TAG,
    forget_kept,
    plain_readers,
    slow_counts,
    tagged_audience,
)
from tests.support.staff import PASSWORD
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.mark.parametrize("width", [375, 1280])
def test_a_confirmation_waits_for_its_figures_before_it_can_be_confirmed(
    browser: Browser, postgres_url: str, sample_issue_path: Path, width: int
) -> None:
    issue_id = tagged_audience(postgres_url, sample_issue_path)
    expected = plain_readers(postgres_url, issue_id, AUDIENCE)
    forget_kept(postgres_url)
    port = free_port()
    settings = web_settings(
        postgres_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}", COUNT_BUDGET_SECONDS="0"
    )
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        page = browser.new_page(viewport={"width": width, "height": 900})
        form_url = f"{base}/staff/sends/new?issue={issue_id}&lang=zh-CN"
        page.goto(form_url)
        page.fill("input[name=name]", "editor")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(form_url)

        with slow_counts(postgres_url):
            page.check(f"input[name=lists][value='{LIST}']")
            page.fill("input[name=tags]", TAG)
            page.locator("input[name=tags]").dispatch_event("change")
            expect(page.locator("#audience-count")).to_have_text(PENDING_TEXT)
            page.click("#schedule")
            readers = page.locator("#confirm-readers")
            expect(readers).to_have_text(PENDING_TEXT)
            expect(page.locator("#counting-note")).to_be_visible()
            expect(page.locator("#confirm")).to_be_disabled()
            page.wait_for_timeout(2500)  # the page asks, and is told it is still counting
            expect(readers).to_have_text(PENDING_TEXT)
            expect(page.locator("#confirm")).to_be_disabled()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"the pending confirmation is {overflow}px too wide"
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(
                path=str(ARTIFACTS / f"staff-confirm-counting-{width}.png"), full_page=True
            )

        expect(readers).to_have_text(str(expected), timeout=15_000)
        expect(page.locator("#confirm")).to_be_enabled()
        expect(page.locator("#counting-note")).to_have_count(0)
        page.click("#confirm")
        expect(page).to_have_url(re.compile(r"/staff/sends/\d+$"))
        send_id = int(page.url.rsplit("/", 1)[1])
    with transaction(postgres_url) as session:
        send = session.scalars(select(Send).where(Send.id == send_id)).one()
        assert send.audience == AUDIENCE
