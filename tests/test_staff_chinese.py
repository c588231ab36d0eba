"""Every staff page in zh-CN, in a real browser, with data in every state: no English word in
the visible text but the proper nouns and the data people typed (addresses, names, file names).

The editor's whole day is walked: an issue imported (its report), sends drafted, scheduled,
paused, cancelled, running, done and expired, a bad send form, a CSV import with bad rows, a
list that exists already, a weak password, a stale form, a missing send."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from distributor.db import transaction, utcnow
from distributor.sending.models import Send
from distributor.staff.models import Role
from distributor.vocabulary import SendState
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.audience import make_audience
from tests.support.browser import launched_chromium
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow

LIST = "会员快讯"
# Words that are names, not sentences: they stay as they are in a Chinese office.
PROPER_NOUNS = {
    "WeChat", "SMTP", "CSV", "API", "UTF", "GBK", "PDF", "Word", "WPS", "docx", "txt", "md",
    "json", "English", "Asia", "Shanghai", "MB", "HTML", "ID", "JSON", "Markdown", "px",
    "Webhook",  # the name Chinese products (DingTalk, Feishu, WeCom) use as it is
}
# The words a subscriber file itself must contain (its status column): an error names them.
CSV_VOCABULARY = {"active", "pending", "unsubscribed", "bounced", "complained"}
ADDRESS = re.compile(r"\S+@\S+")
DOMAIN = re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)+\b")  # 163.com, yeah.net: data, as addresses
WORD = re.compile(r"[A-Za-z]{2,}")
# The data this test typed or made, which a page shows as it is.
DATA = {
    "boss", "editor", "reader", "example", "org", "members", "csv", "hzgy", "unknown", "changed",
    "empty",
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def english_words(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """The Latin words of a page's visible text that are neither names nor data."""
    text = DOMAIN.sub(" ", ADDRESS.sub(" ", text))
    return sorted(
        {word for word in WORD.findall(text) if word not in PROPER_NOUNS | DATA | allowed}
    )


class Walk:
    """Visits pages and keeps, per page, the English words it shows."""

    def __init__(self, page: Page, base: str) -> None:
        self.page = page
        self.base = base
        self.found: dict[str, list[str]] = {}

    def look(self, name: str, allowed: frozenset[str] = frozenset()) -> None:
        self.page.wait_for_load_state("load")
        words = english_words(self.page.inner_text("body"), allowed)
        if words:
            self.found[name] = words

    def visit(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.look(path)


def make_subscribers_in_every_state(url: str) -> None:
    addresses = make_audience(url, LIST, 6)
    statuses = [
        SubscriberStatus.PENDING,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
        SubscriberStatus.COMPLAINED,
    ]
    with transaction(url) as session:
        for address, status in zip(addresses[2:], statuses, strict=True):
            session.execute(
                update(Subscriber).where(Subscriber.email == address).values(status=status)
            )


def set_state(url: str, send_id: int, state: SendState) -> None:
    with transaction(url) as session:
        session.execute(update(Send).where(Send.id == send_id).values(state=state))


def new_send(page: Page, base: str, *, action: str = "schedule", at: str = "") -> int:
    page.goto(f"{base}/staff/sends/new?issue=1")
    page.check(f"input[name=lists][value='{LIST}']")
    if at:
        page.fill("input[name=at]", at)
    page.click(f"button[name=action][value={action}]")
    if action == "schedule":  # what leaves is confirmed first
        page.click("#confirm")
    expect(page).to_have_url(re.compile(r"/staff/sends/\d+$"))
    return int(page.url.rsplit("/", 1)[1])


def test_no_staff_page_in_chinese_shows_an_untranslated_word(
    browser: Browser, sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_subscribers_in_every_state(sqlite_url)
    add_staff(sqlite_url, "boss", Role.ADMIN)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    later = (utcnow() + timedelta(days=30)).strftime("%Y-%m-%dT09:00")
    with serving(create_app(web_settings(sqlite_url), limiter=MemoryRateLimiter())) as base:
        page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        walk = Walk(page, base)
        page.goto(f"{base}/staff/login?lang=zh-CN")
        walk.look("login")
        page.fill("input[name=name]", "boss")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")

        page.goto(f"{base}/staff/issues")
        page.set_input_files("input[name=file]", str(sample_issue_path))
        page.click("#upload")
        walk.look("issue import report")
        walk.visit("/staff/issues")
        walk.visit("/staff/issues/1")
        # An issue whose printed weekday and lunar date are wrong: a report with warnings; the
        # same number with other content; an empty file.
        sample = sample_issue_path.read_text(encoding="utf-8")
        wrong = tmp_path / "hzgy-472.txt"
        wrong.write_text(
            sample.replace("星期二", "星期三").replace("十二月初五", "十二月初六")
            .replace("第471期", "第472期"),
            encoding="utf-8",
        )
        changed = tmp_path / "hzgy-471-changed.txt"
        other = sample.replace("杭州市总工会", "杭州市总工会办公室", 1)
        changed.write_text(other, encoding="utf-8")
        empty = tmp_path / "empty.txt"
        empty.write_text("", encoding="utf-8")
        broken = tmp_path / "hzgy-473.txt"
        broken.write_text("杭州工运\n2022年12月27日 星期二 第473期\n\n标题\n", encoding="utf-8")
        for upload, name in (
            (wrong, "warnings"),
            (changed, "another version"),
            (empty, "empty"),
            (broken, "a headline without text"),
        ):
            page.goto(f"{base}/staff/issues")
            page.set_input_files("input[name=file]", str(upload))
            page.click("#upload")
            walk.look(f"an issue import: {name}")
            if name == "warnings":
                expect(page.locator(".report")).to_contain_text("那天是星期二")

        # Sends in every state; actions through the pages, so the audit log has each.
        scheduled = new_send(page, base, at=later)
        draft = new_send(page, base, action="draft")
        paused = new_send(page, base, at=later)
        page.click("#action-pause")
        cancelled = new_send(page, base, at=later)
        page.click("#action-cancel")
        running, done, expired = (new_send(page, base, at=later) for _ in range(3))
        set_state(sqlite_url, running, SendState.RUNNING)
        set_state(sqlite_url, done, SendState.DONE)
        set_state(sqlite_url, expired, SendState.EXPIRED)
        for send_id in (scheduled, draft, paused, cancelled, running, done, expired):
            walk.visit(f"/staff/sends/{send_id}")
        walk.visit(f"/staff/sends/{done}/recipients")
        walk.visit("/staff/")
        walk.visit("/staff/sends")

        # A refused action, and the forms' refusals.
        page.goto(f"{base}/staff/sends/{done}")
        page.click("#action-retry")
        walk.look("a retry with nothing to retry")
        page.goto(f"{base}/staff/sends/{scheduled}")
        page.click("#action-cancel")
        page.goto(f"{base}/staff/sends/{scheduled}")
        walk.look("a cancelled send")
        page.goto(f"{base}/staff/sends/new?issue=1")
        page.click("#schedule")
        walk.look("a send without a list")
        page.goto(f"{base}/staff/sends/new?issue=1")
        page.check(f"input[name=lists][value='{LIST}']")
        page.fill("input[name=at]", "2001-01-01T09:00")
        page.click("#schedule")
        walk.look("a send in the past")
        walk.visit("/staff/sends/new?issue=1")

        # Subscribers in every state, a CSV import with bad rows.
        walk.visit("/staff/subscribers")
        for subscriber_id in range(1, 7):
            walk.visit(f"/staff/subscribers/{subscriber_id}")
        members = tmp_path / "members.csv"
        members.write_text(
            "email,name,lists,status\n"
            "wang@qq.com,王,会员快讯,active\n"
            "bad@,坏,,\n"
            "wang@qq.com,王又,,\n"
            "li@qq.com,李,没有的列表,\n"
            "zhao@qq.com,赵,,unknown\n",
            encoding="utf-8",
        )
        page.goto(f"{base}/staff/subscribers")
        page.set_input_files("input[name=file]", str(members))
        page.click("form[action='/staff/subscribers/import'] button")
        walk.look("a CSV import with bad rows", frozenset(CSV_VOCABULARY))
        walk.visit("/staff/subscribers/7")

        # Lists, digests, accounts, and their refusals.
        walk.visit("/staff/lists")
        page.fill("form[action='/staff/lists'] input[name=name]", LIST)
        page.click("form[action='/staff/lists'] button")
        walk.look("a list that exists already")
        walk.visit("/staff/schedules")
        walk.visit("/staff/automations")
        step = page.locator("form[action='/staff/automations']")
        step.locator("input[name=issue_id]").fill("1")
        step.locator("button").click()
        expect(page.locator("table")).to_contain_text("加入时（欢迎信）")
        walk.look("a list's welcome")
        step.locator("input[name=issue_id]").fill("1")
        step.locator("input[name=after]").fill("3w")
        step.locator("button").click()
        walk.look("a step whose delay does not read")
        walk.visit("/staff/users")
        add = page.locator("form[action='/staff/users']")
        add.locator("input[name=name]").fill("wang")
        add.locator("input[name=password]").fill("123")
        page.click("#add-user")
        walk.look("a weak password")

        # A stale form and a missing page.
        page.goto(f"{base}/staff/sends/{paused}")
        page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(i => i.value = 'x')")
        page.click("#action-resume")
        walk.look("a stale form")
        walk.visit("/staff/sends/999999")
        page.close()
    assert walk.found == {}, "\n".join(f"{name}: {words}" for name, words in walk.found.items())
