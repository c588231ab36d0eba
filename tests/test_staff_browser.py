"""The staff dashboard in a real browser (Debian's Chromium, driven by Playwright) on a real
Celery worker and SMTP server: an editor imports the sample issue, previews it, sends a test,
schedules a send to 2,000 readers, watches it finish without reloading, finds the one that
failed and retries it; a viewer gets no schedule button; an admin adds an editor, who signs in."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from distributor.cli.render_commands import CHROMIUM, CHROMIUM_ARGS
from distributor.config import Settings
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.audience import make_audience
from tests.support.sending import engine_env
from tests.support.smtp import RecordingHandler, SmtpServer
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
READERS = 1200  # enough to be written with a thousands sign
BOUNCING = "reader00007@example.org"
STAFF_ADDRESS = "editor@hzgh.example.org"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Bounce:
    """The SMTP fault hook: one address refused with a 550 until the test lets it through."""

    def __init__(self) -> None:
        self.on = threading.Event()
        self.on.set()

    def __call__(self, recipient: str, attempt: int) -> str | None:
        if recipient == BOUNCING and self.on.is_set():
            # A refusal about the path (not the address): the reader stays on the list, and a
            # retry reaches them once the server takes the message.
            return "550 5.7.1 <reader00007@example.org>: message refused by local policy"
        return None


def sign_in(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/staff/sends?lang=en")
    expect(page).to_have_url(f"{base}/staff/login?next=%2Fstaff%2Fsends%3Flang%3Den")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/staff/sends?lang=en")


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for label, size in (("375", PHONE), ("1280", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=str(ARTIFACTS / f"staff-{name}-{label}.png"), full_page=True)
    page.set_viewport_size(DESKTOP)


def test_an_editor_imports_previews_tests_sends_and_retries(
    browser: Browser,
    sqlite_url: str,
    redis_server: RedisServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    bounce = Bounce()
    make_audience(sqlite_url, "会员快讯", READERS)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    add_staff(sqlite_url, "viewer", Role.VIEWER)
    port = free_port()
    with SmtpServer(RecordingHandler(fault=bounce)) as smtp:
        env = engine_env(
            sqlite_url, redis_server.url, smtp, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}"
        )
        app = create_app(Settings.from_env(env), limiter=MemoryRateLimiter())
        with (
            serving(app, port) as base,
            running_worker(env, tmp_path) as worker,
        ):
            worker.wait_until_ready()
            page = browser.new_page(viewport=DESKTOP)
            sign_in(page, base, "editor")

            # Upload the sample issue: the importer's report.
            page.goto(f"{base}/staff/issues?lang=en")
            page.set_input_files("input[name=file]", str(sample_issue_path))
            page.click("#upload")
            expect(page.locator(".report")).to_contain_text("Recognised")
            page.click(".report a")

            # The preview: each variant at phone and desktop widths, in sandboxed frames.
            frames = page.locator("iframe[sandbox='']")
            expect(frames).to_have_count(6)
            for kind in ("phone", "desktop"):
                frame = page.frame_locator(f"iframe.{kind}")
                expect(frame.first.locator("body")).to_contain_text("市总工会")
                expect(frame.last.locator("pre")).to_contain_text("杭州工运")
            shoot(page, "issue")

            # A test send arrives, and the page shows the server's answer.
            page.fill("input[name=addresses]", STAFF_ADDRESS)
            page.click("#test-send")
            expect(page.locator("#test-results")).to_contain_text(STAFF_ADDRESS)
            expect(page.locator("#test-results")).to_contain_text("sent")
            assert any(r.recipient == STAFF_ADDRESS for r in smtp.handler.received)

            # Schedule a send to the list, with its live recipient count.
            page.click("#send-issue")
            page.check("input[name=lists][value='会员快讯']")
            expect(page.locator("#audience-count")).to_have_text(f"{READERS:,}")
            page.select_option("select[name=variant]", "full")
            page.click("#schedule")
            expect(page.locator("#confirm-readers")).to_have_text(str(READERS))
            page.click("#confirm")
            expect(page).to_have_url(re.compile(r"/staff/sends/\d+$"))
            send_path = page.url.removeprefix(base)  # the test send was the first one

            # The page follows the send to done without a reload.
            page.evaluate("window.notReloaded = true")
            state = page.locator("section.live [data-field=state_text]")
            expect(state).to_have_text("done", timeout=240_000)
            assert page.evaluate("window.notReloaded") is True
            expect(page.locator("[data-count=failed]")).to_have_text("1")
            expect(page.locator("[data-count=sent]")).to_have_text(f"{READERS - 1:,}")
            shoot(page, "send")

            # Find the failed recipient by searching.
            page.goto(f"{base}{send_path}/recipients?lang=en")
            page.fill("input[name=q]", "reader00007")
            page.select_option("select[name=state]", "failed")
            page.click("form.search button")
            rows = page.locator("table.recipients tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_contain_text(BOUNCING)
            expect(rows.first).to_contain_text("550")
            shoot(page, "recipients")
            with page.expect_download() as download:
                page.click("#export-csv")
            lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
            assert lines[0] == "address,state,attempts,smtp_code,detail,sent_at"
            assert len(lines) == READERS + 1
            assert any(line.startswith(f"{BOUNCING},failed,") for line in lines)

            # Retry the failed ones: the address takes mail now.
            bounce.on.clear()
            page.goto(f"{base}{send_path}?lang=en")
            page.click("#action-retry")
            expect(page.locator("ul.audit")).to_contain_text("retried the failed messages: 1")
            expect(page.locator("[data-count=sent]")).to_have_text(f"{READERS:,}", timeout=60_000)
            expect(page.locator("section.live [data-field=state_text]")).to_have_text("done")
            assert smtp.handler.counts()[BOUNCING] == 1
            page.goto(f"{base}/staff/?lang=en")
            shoot(page, "home")
            page.close()

            # A viewer sees the send but no button to schedule one.
            viewer = browser.new_page(viewport=PHONE)
            sign_in(viewer, base, "viewer")
            viewer.goto(f"{base}/staff/sends/new?issue=1")
            expect(viewer.locator("#schedule")).to_have_count(0)
            viewer.goto(f"{base}{send_path}")
            expect(viewer.locator(".actions")).to_have_count(0)
            viewer.close()


def test_an_admin_adds_an_editor_who_then_signs_in(browser: Browser, sqlite_url: str) -> None:
    add_staff(sqlite_url, "boss", Role.ADMIN)
    port = free_port()
    settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        page = browser.new_page(viewport=DESKTOP)
        sign_in(page, base, "boss")
        page.click("nav.staff-nav a[href='/staff/users']")
        expect(page).to_have_url(f"{base}/staff/users")
        page.goto(f"{base}/staff/users?lang=en")
        add = page.locator("form[action='/staff/users']")
        add.locator("input[name=name]").fill("li")
        add.locator("select[name=role]").select_option("editor")
        add.locator("input[name=password]").fill(PASSWORD)
        page.click("#add-user")
        row = page.locator("tr[data-user=li]")
        expect(row).to_contain_text("editor")
        expect(row).to_contain_text("active")
        row.locator("form[action$='/tokens'] button").click()
        expect(page.locator("#issued-token")).to_have_text(re.compile(r"^dst_\S{20,}$"))
        shoot(page, "users")
        page.close()

        editor = browser.new_page(viewport=PHONE)  # a context of its own: no admin cookie
        sign_in(editor, base, "li")
        expect(editor.locator("nav.staff-nav a[href='/staff/users']")).to_have_count(0)
        refused = editor.goto(f"{base}/staff/users")
        assert refused is not None and refused.status == 403
        editor.close()
