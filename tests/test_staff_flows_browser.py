"""The dashboard's careful flows in a real browser, at 375 and 1,280 px: nothing is sent,
scheduled or cancelled without its confirmation, whose reader count is the one the API, the CLI
and the created send have; every reader of the send's list is in it or has a reason, and one
address can be looked up; and a subscriber is cared for (consent noted, lists, tags, a lifted
suppression, an erasure confirmed first), a list made public with its sign-up link to copy."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select

from distributor.cli import main
from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.sending.models import Delivery, Send
from distributor.staff.audit import audit_of
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.store import find_subscriber, get_list
from tests.support.api import api_token, bearer
from tests.support.browser import launched_chromium
from tests.support.sending import import_sample
from tests.support.staff import PASSWORD, add_staff
from tests.support.standings import LIST, TAG, readers_in_each_state
from tests.support.web import serving, web_settings

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
WIDTHS = {"375": {"width": 375, "height": 740}, "1280": {"width": 1280, "height": 900}}
# WeChat is not set up here: both WeChat readers get email instead (the follower too).
IN_SEND = {"in@x.cn", "wechat@x.cn", "follower@x.cn"}
REASONS = {
    "not_tagged": 1,
    "unsubscribed": 1,
    "bounced": 1,
    "complained": 1,
    "not_confirmed": 1,
    "left_list": 1,
    "no_address": 1,  # known only as a WeChat follower, and WeChat is not set up
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from launched_chromium()


def sign_in(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/staff/sends?lang=en")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/staff/sends?lang=en")


def shoot(page: Page, width: str, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"staff-flows-{name}-{width}.png"), full_page=True)


def fits(page: Page) -> None:
    """Nothing wider than the window: no button or count is cut off at 375 px. Measured once
    the page has settled (its fonts loaded; on a busy machine a page can be measured while a
    fallback font still sets its text, for a moment)."""
    overflow = 0
    for _ in range(30):
        overflow = page.evaluate(
            "document.fonts.ready.then(() =>"
            " document.documentElement.scrollWidth - document.documentElement.clientWidth)"
        )
        if overflow <= 1:
            break
        page.wait_for_timeout(100)
    assert overflow <= 1, f"{page.url} is {overflow}px wider than the window"
    # A summary's values keep room beside long labels (not a column a character wide).
    narrow = page.evaluate(
        "Array.from(document.querySelectorAll('dl.summary dd'))"
        ".map(dd => Math.round(dd.getBoundingClientRect().width)).filter(w => w < 120)"
    )
    assert not narrow, f"{page.url}: summary values only {narrow} px wide"


def sends(url: str) -> list[Send]:
    with transaction(url) as session:
        found = list(session.scalars(select(Send).order_by(Send.id)))
        session.expunge_all()
        return found


def state_of(url: str, send_id: int) -> str:
    with transaction(url) as session:
        return session.get_one(Send, send_id).state.value


def cli(url: str, *args: str) -> str:
    env = {
        "DATABASE_URL": url,
        "DISTRIBUTOR_SECRET_KEY": "x" * 40,
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
    }
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("width", list(WIDTHS))
def test_nothing_leaves_without_its_confirmation_and_every_reader_is_accounted_for(
    browser: Browser, sqlite_url: str, sample_issue_path: Path, width: str
) -> None:
    readers_in_each_state(sqlite_url)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    viewer_token = bearer(api_token(sqlite_url, "robot", Role.VIEWER))
    port = free_port()
    settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    app = create_app(settings, limiter=MemoryRateLimiter())
    api = TestClient(app, base_url="http://testserver")
    with serving(app, port) as base:
        page = browser.new_page(viewport=WIDTHS[width])  # type: ignore[arg-type]
        sign_in(page, base, "editor")

        # The form's live count, the API's and the CLI's: one number.
        page.goto(f"{base}/staff/sends/new?issue={issue_id}&lang=en")
        page.check(f"input[name=lists][value='{LIST}']")
        page.fill("input[name=tags]", TAG)
        page.select_option("select[name=variant]", "full")
        page.locator("input[name=tags]").dispatch_event("change")
        expect(page.locator("#audience-count")).to_have_text(str(len(IN_SEND)))
        reach = api.get(
            "/api/v1/audience",
            params={"list": LIST, "tag": TAG, "variant": "full"},
            headers=viewer_token,
        ).json()
        assert reach["readers"] == len(IN_SEND) and reach["fell_back_to_email"] == 2
        fits(page)

        # 排期发送 sums it up first: nothing exists until the confirmation's button.
        page.click("#schedule")
        expect(page.locator("#confirm-readers")).to_have_text(str(len(IN_SEND)))
        expect(page.locator("[data-format=full]")).to_have_text(str(len(IN_SEND)))
        expect(page.locator("#confirm-fell-back")).to_contain_text("2 of them chose WeChat")
        expect(page.locator("#confirm-tracking")).to_have_text("off")
        expect(page.locator("#confirm-already")).to_have_count(0)
        fits(page)
        shoot(page, width, "confirm-send")
        assert sends(sqlite_url) == []
        page.click("#back")  # back to the form, as it was filled
        expect(page.locator(f"input[name=lists][value='{LIST}']")).to_be_checked()
        assert sends(sqlite_url) == []
        page.fill("input[name=at]", "2099-03-01T09:00")
        page.click("#schedule")
        expect(page.locator("#confirm-when")).to_contain_text("2099-03-01 09:00")
        page.click("#confirm")
        expect(page).to_have_url(re.compile(r"/staff/sends/\d+$"))
        [made] = sends(sqlite_url)
        assert made.state.value == "scheduled"
        with transaction(sqlite_url) as session:
            [entry] = audit_of(session, "send", made.id)
        assert entry.detail["readers"] == len(IN_SEND)
        drafted = cli(
            sqlite_url, "send", "create", "--issue", str(issue_id), "--list", LIST,
            "--tag", TAG, "--variant", "full", "--draft",
        )
        assert f"draft to {len(IN_SEND)} readers" in drafted

        # The same issue to the same readers once more: the confirmation warns.
        page.goto(f"{base}/staff/sends/new?issue={issue_id}&lang=en")
        page.check(f"input[name=lists][value='{LIST}']")
        page.select_option("select[name=variant]", "full")
        page.click("#schedule")
        expect(page.locator("#confirm-already")).to_contain_text(f"#{made.id}")
        page.click("#back")

        # Every reader of the list: in the send, or a reason; and one address looked up.
        page.goto(f"{base}/staff/sends/{made.id}?lang=en")
        page.fill("input[name=who]", "bounced@x.cn")
        page.click("#look-up")
        standing = page.locator("#standing")
        expect(standing).to_have_attribute("data-standing", "bounced")
        expect(standing).to_contain_text("because: bounced by test")
        page.fill("input[name=who]", "wechat@x.cn")
        page.click("#look-up")
        expect(standing).to_contain_text("will get this send")
        expect(standing).to_contain_text("cannot be reached there")
        page.fill("input[name=who]", "nobody@x.cn")
        page.click("#look-up")
        expect(standing).to_have_attribute("data-standing", "unknown")
        page.click("#left-out-link")
        rows = page.locator("dl.left-out-counts")
        expect(rows.locator("[data-reason=in_send] dd")).to_have_text(str(len(IN_SEND)))
        for reason, n in REASONS.items():
            expect(rows.locator(f"[data-reason={reason}] dd")).to_have_text(str(n))
        total = len(IN_SEND) + sum(REASONS.values())
        expect(rows.locator("[data-reason=list_readers] dd")).to_have_text(str(total))
        fits(page)
        shoot(page, width, "left-out")
        left_api = api.get(f"/api/v1/sends/{made.id}/left-out", headers=viewer_token).json()
        left_cli = json.loads(cli(sqlite_url, "send", "left-out", str(made.id), "--json"))
        for answer in (left_api, left_cli):
            assert (answer["list_readers"], answer["in_send"], answer["reasons"]) == (
                total,
                len(IN_SEND),
                REASONS,
            )
        one = cli(sqlite_url, "send", "left-out", str(made.id), "--email", "gone@x.cn")
        assert one.startswith("gone@x.cn: unsubscribed on ")

        # Cancelling asks first; going back keeps it; reopening asks too.
        page.goto(f"{base}/staff/sends/{made.id}?lang=en")
        page.click("#action-cancel")
        expect(page.locator("#confirm")).to_be_visible()
        fits(page)
        shoot(page, width, "confirm-cancel")
        assert state_of(sqlite_url, made.id) == "scheduled"
        page.click("#back")
        assert state_of(sqlite_url, made.id) == "scheduled"
        page.click("#action-cancel")
        page.click("#confirm")
        expect(page.locator("section.live [data-field=state_text]")).to_have_text("cancelled")
        page.click("#action-reopen")
        assert state_of(sqlite_url, made.id) == "cancelled"
        page.click("#confirm")
        expect(page.locator("section.live [data-field=state_text]")).to_have_text("draft")

        # A draft is scheduled from its edit page: the time is asked for, then confirmed.
        page.click("#action-edit")
        page.fill("input[name=at]", "")
        page.click("#schedule")
        expect(page.locator("p.error")).to_be_visible()
        assert state_of(sqlite_url, made.id) == "draft"
        page.fill("input[name=at]", "2099-04-01T10:30")
        page.check("input[name=track]")
        page.click("#schedule")
        expect(page.locator("#confirm-tracking")).to_have_text("on")
        assert state_of(sqlite_url, made.id) == "draft"
        page.click("#confirm")
        expect(page.locator("section.live [data-field=state_text]")).to_have_text("scheduled")
        [changed, _] = sends(sqlite_url)
        assert changed.tracking and changed.scheduled_at is not None
        assert changed.scheduled_at.isoformat().startswith("2099-04-01T02:30")  # 10:30 +08:00
        with transaction(sqlite_url) as session:
            assert session.scalar(select(Delivery.id).limit(1)) is None  # nothing went out
        page.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_a_subscriber_is_cared_for_in_the_browser(
    browser: Browser, sqlite_url: str, width: str
) -> None:
    readers_in_each_state(sqlite_url)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    with transaction(sqlite_url) as session:
        ids = {
            email: find_subscriber(session, email).id
            for email in ("gone@x.cn", "bounced@x.cn", "in@x.cn", "tagless@x.cn")
        }
    port = free_port()
    settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        page = browser.new_page(viewport=WIDTHS[width])  # type: ignore[arg-type]
        sign_in(page, base, "editor")
        care(page, base, sqlite_url, ids, width)
        page.close()


def care(page: Page, base: str, url: str, ids: dict[str, int], width: str) -> None:
    # Subscribe again, at their request: without a note it is refused.
    page.goto(f"{base}/staff/subscribers/{ids['gone@x.cn']}?lang=en")
    form = page.locator("#care-resubscribe")
    form.locator(f"input[name=lists][value='{LIST}']").check()
    form.locator("input[name=note]").evaluate("field => field.removeAttribute('required')")
    form.locator("button").click()
    expect(page.locator("p.error")).to_contain_text("A note is required")
    form = page.locator("#care-resubscribe")
    form.locator(f"input[name=lists][value='{LIST}']").check()
    form.locator("input[name=note]").fill("asked by phone on 12-01")
    form.locator("button").click()
    expect(page.locator("#status-events")).to_contain_text("asked by phone on 12-01")
    with transaction(url) as session:
        assert find_subscriber(session, "gone@x.cn").status is SubscriberStatus.ACTIVE
    fits(page)
    shoot(page, width, "subscriber")
    # And stop again, at their request.
    page.locator("#care-unsubscribe input[name=note]").fill("letter of 12-05")
    page.locator("#care-unsubscribe button").click()
    expect(page.locator("#status-events")).to_contain_text("letter of 12-05")

    # Lift a bounce, with a reason.
    page.goto(f"{base}/staff/subscribers/{ids['bounced@x.cn']}?lang=en")
    page.locator("#care-unsuppress input[name=note]").fill("the mailbox was full, now fixed")
    page.locator("#care-unsuppress button").click()
    expect(page.locator("#status-events")).to_contain_text("now fixed")

    # Lists, tags and attributes.
    page.goto(f"{base}/staff/subscribers/{ids['in@x.cn']}?lang=en")
    page.locator("#care-lists input[value='其他']").check()
    page.locator("#care-lists button").click()
    page.locator("#care-labels input[name=tags]").fill("工会, 青年")
    page.locator("#care-labels textarea").fill("城市=宁波")
    page.locator("#care-labels button").click()
    expect(page.locator("#care-labels input[name=tags]")).to_have_value("工会, 青年")
    with transaction(url) as session:
        cared = find_subscriber(session, "in@x.cn")
        assert sorted(tag.name for tag in cared.tags) == ["工会", "青年"]
        assert cared.attributes == {"城市": "宁波"}
        on = sorted(sub.mailing_list.name for sub in cared.subscriptions)
        assert on == sorted(["其他", LIST])

    # Erasing asks first; the person goes, their deliveries' counts stay.
    page.goto(f"{base}/staff/subscribers/{ids['tagless@x.cn']}?lang=en")
    page.locator("#care-erase button").click()
    expect(page.locator("#erase-warning")).to_be_visible()
    fits(page)
    shoot(page, width, "erase")
    page.click("#back")
    with transaction(url) as session:
        assert session.get(Subscriber, ids["tagless@x.cn"]) is not None
    page.locator("#care-erase button").click()
    page.fill("input[name=note]", "asked in writing")
    page.click("#confirm")
    expect(page).to_have_url(re.compile(r"/staff/subscribers\?erased=\d+$"))
    with transaction(url) as session:
        assert session.get(Subscriber, ids["tagless@x.cn"]) is None

    # A list made public: its sign-up link and snippet, to copy.
    page.goto(f"{base}/staff/lists?lang=en")
    with transaction(url) as session:
        list_id = get_list(session, LIST).id
    page.click(f"#public-{list_id}")
    link = page.locator(f"#signup-{list_id}")
    expect(link).to_have_value(re.compile(rf"/subscribe/{list_id}$"))
    expect(page.locator(f"#snippet-{list_id}")).to_have_value(re.compile(r"^<a href=\"http"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    copy = page.locator(f"button[data-copy=signup-{list_id}]")
    copy.click()
    expect(copy).to_have_attribute("data-copied", "true")
    fits(page)
    shoot(page, width, "lists")
    page.click(f"#public-{list_id}")  # and closed again
    expect(page.locator(f"#signup-{list_id}")).to_have_count(0)
