"""A send's pictures: the SVG charts (pure), the reasons in words (pure), the trigger-kept
per-minute and per-domain counts on both databases, and the send page, its printable report, the
overview, the cards of a phone's width and the staff error pages in a real browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import func, insert, select, text, update

from distributor.config import Settings
from distributor.db import transaction, utcnow
from distributor.devservers.ports import free_port
from distributor.locale import text as words_of
from distributor.readers.engagement import engagement_timeline
from distributor.readers.models import EngagementEvent, EngagementKind, SendEngagement
from distributor.sending.breakdown import (
    all_of,
    busiest,
    domains_of,
    estimated_finish,
    timeline_of,
)
from distributor.sending.models import Delivery, SendDomain, SendTimeline
from distributor.staff.models import Role
from distributor.vocabulary import DeliveryState, FailureCause, Variant
from distributor.web.app import create_app
from distributor.web.charts import Series, bar_chart, time_axis
from distributor.web.security import MemoryRateLimiter
from distributor.web.staff.reasons import error_of, reason_key
from tests.support.audience import make_audience
from tests.support.browser import launched_chromium
from tests.support.sending import import_sample, started_send
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import serving, web_settings

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
SHANGHAI = ZoneInfo("Asia/Shanghai")


# --- the charts, pure -----------------------------------------------------------------------------


def test_a_bar_chart_carries_its_numbers_and_escapes_every_text() -> None:
    chart = bar_chart(
        ["09:00", "<b>"],
        [Series("sent", "已送达", (3, 0)), Series("failed", 'a"&<x>', (1, 2))],
        title="送达 <script>",
        chart_id="c1",
    )
    assert chart.count("<rect") == 3  # a zero draws nothing
    assert 'data-series="sent" data-total="3"' in chart
    assert 'data-series="failed" data-total="3"' in chart
    assert 'data-label="09:00" data-value="3"' in chart
    assert 'data-bars="2" data-max="4"' in chart
    assert "<script>" not in chart and "<b>" not in chart and 'a"&' not in chart
    assert "&lt;script&gt;" in chart and "a&quot;&amp;&lt;x&gt;" in chart
    assert "09:00 · 已送达: 3" in chart


def test_a_bar_chart_refuses_series_that_do_not_match_its_labels() -> None:
    with pytest.raises(ValueError, match="2 values for 3"):
        bar_chart(["a", "b", "c"], [Series("sent", "s", (1, 2))], title="t", chart_id="c")


def test_the_time_axis_takes_round_bars_that_cover_every_minute() -> None:
    start = 29_000_000  # minutes since the epoch
    axis = time_axis({start + 3: 1, start + 200: 2}, {start + 100: 5})
    assert axis is not None and axis.step == 5 and axis.bars <= 48
    assert axis.first <= start + 3 and axis.first % 5 == 0
    assert sum(axis.values({start + 3: 1, start + 200: 2})) == 3
    assert time_axis({}) is None and time_axis({start: 0}) is None
    one_minute = time_axis({start: 4})
    assert one_minute is not None and one_minute.bars == 1 and one_minute.step == 1
    day = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    minute = int(day.timestamp() // 60)
    labels = time_axis({minute: 1}, {minute + 1: 1})
    assert labels is not None and labels.labels(SHANGHAI) == ["09:30", "09:31"]


# --- the reasons, pure ----------------------------------------------------------------------------


def test_a_refusal_reads_as_words_not_as_an_smtp_reply() -> None:
    key = reason_key(None, 550, "550 5.1.1 <x@qq.com>: user unknown")
    assert key == "reason.address_gone"
    assert words_of("zh-CN", key) == "邮箱不存在"
    assert words_of("en", key) == "The address does not exist"
    assert reason_key("mailbox_full") == "reason.mailbox_full"  # the kept cause comes first
    assert reason_key(None, 421, "421 4.7.0 too many connections") == "reason.blocked"
    assert reason_key(None, None, None) == "reason.unknown"
    assert reason_key("not-a-cause", None, "452 4.2.2 mailbox full") == "reason.mailbox_full"
    for cause in FailureCause:
        zh, en = words_of("zh-CN", f"reason.{cause.value}"), words_of("en", f"reason.{cause.value}")
        assert zh and en and zh != en


def test_a_delivered_row_shows_no_error() -> None:
    assert error_of("sent", "250 OK stored") is None
    assert error_of("failed", "550 5.1.1 user unknown") == "550 5.1.1 user unknown"
    assert error_of("deferred", None) is None


def test_the_finish_is_estimated_from_the_rate_so_far() -> None:
    now = datetime(2026, 12, 6, 8, 0, tzinfo=UTC)
    counts = {"sent": 300, "failed": 100, "pending": 500, "deferred": 100}
    finish = estimated_finish(counts, started_at=now - timedelta(minutes=40), now=now)
    assert finish == now + timedelta(minutes=60)  # 600 left at 10 a minute
    assert estimated_finish({"sent": 5}, started_at=now, now=now) is None
    assert estimated_finish({"pending": 5}, started_at=now - timedelta(hours=1), now=now) is None


# --- the trigger-kept counts, on both databases ---------------------------------------------------

MINUTE0 = datetime(2026, 12, 6, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SENT_BY_MINUTE = {0: 5, 1: 8, 2: 3, 7: 6}
DOMAINS = {"qq.com": 12, "163.com": 8, "example.org": 5}
GONE = "550 5.1.1 <x@qq.com>: user unknown"
BLOCKED = "554 5.7.1 DT:SPM 163 smtp1, your IP is on a blocklist"


def picture_send(url: str, sample: Path, *, tracking: bool = True) -> int:
    """A send to 25 readers at three domains, answered as a real one would be over minutes:
    22 sent, 2 failed (qq.com: address gone, its cause kept a statement later as the engine
    does; 163.com: blocked), 1 deferred (no cause kept: the page reads its words); with opens and
    clicks when tracked."""
    for domain, n in DOMAINS.items():
        make_audience(url, "会员", n, domain=domain, prefix=domain.split(".")[0])
    issue_id = import_sample(url, sample)
    send_id = started_send(url, issue_id, "会员", tracking=tracking)
    with transaction(url) as session:
        subscribers = session.execute(text("SELECT id, email FROM subscribers ORDER BY id")).all()
        session.execute(
            insert(Delivery),
            [
                {
                    "send_id": send_id,
                    "subscriber_id": sid,
                    "channel": "email",
                    "address": email,
                    "variant": Variant.FULL,
                    "state": DeliveryState.PENDING,
                    "updated_at": MINUTE0 - timedelta(minutes=5),
                }
                for sid, email in subscribers
            ],
        )
    with transaction(url) as session:
        special = ("qq00001@qq.com", "16300001@163.com", "example00001@example.org")
        rows = iter(
            session.scalars(
                select(Delivery.id).where(
                    Delivery.send_id == send_id, Delivery.address.not_in(special)
                )
            ).all()
        )
        for minute, n in SENT_BY_MINUTE.items():
            at = MINUTE0 + timedelta(minutes=minute, seconds=20)
            for _ in range(n):
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == next(rows))
                    .values(state=DeliveryState.SENT, smtp_response="250 OK stored", sent_at=at,
                            updated_at=at, attempts=1)
                )
        qq = session.scalar(select(Delivery.id).where(Delivery.address == "qq00001@qq.com"))
        blocked = session.scalar(select(Delivery.id).where(Delivery.address == "16300001@163.com"))
        deferred = session.scalar(
            select(Delivery.id).where(Delivery.address == "example00001@example.org")
        )
        at = MINUTE0 + timedelta(minutes=8)
        session.execute(
            update(Delivery).where(Delivery.id == qq)
            .values(state=DeliveryState.FAILED, smtp_code=550, smtp_response=GONE,
                    updated_at=at, attempts=1)
        )
        session.execute(  # the cause is kept by a later statement, as the engine does
            update(Delivery).where(Delivery.id == qq)
            .values(failure_cause=FailureCause.ADDRESS_GONE, updated_at=at)
        )
        session.execute(
            update(Delivery).where(Delivery.id == blocked)
            .values(state=DeliveryState.FAILED, smtp_code=554, smtp_response=BLOCKED,
                    failure_cause=FailureCause.BLOCKED, updated_at=at, attempts=1)
        )
        session.execute(
            update(Delivery).where(Delivery.id == deferred)
            .values(state=DeliveryState.DEFERRED, smtp_code=451,
                    last_error="451 4.7.1 greylisted, try again later",
                    not_before=utcnow() + timedelta(minutes=10), updated_at=at, attempts=1)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.send_id == send_id, Delivery.state == DeliveryState.PENDING)
            .values(updated_at=at)  # the rest wait: still pending, not in the timeline
        )
        if tracking:
            session.execute(
                insert(EngagementEvent),
                [
                    {"send_id": send_id, "subscriber_id": sid, "kind": kind, "url": link,
                     "at": MINUTE0 + timedelta(minutes=minute)}
                    for sid, kind, link, minute in (
                        (1, EngagementKind.OPEN, None, 3),
                        (2, EngagementKind.OPEN, None, 3),
                        (3, EngagementKind.OPEN, None, 20),
                        (1, EngagementKind.CLICK, "https://hzgh.example.org/a?x=<1>", 4),
                        (2, EngagementKind.CLICK, "https://hzgh.example.org/a?x=<1>", 21),
                        (3, EngagementKind.CLICK, "https://hzgh.example.org/b", 22),
                    )
                ],
            )
    return send_id


def test_the_counts_per_minute_and_domain_follow_every_change(
    database_url: str, sample_issue_path: Path
) -> None:
    send_id = picture_send(database_url, sample_issue_path)
    base = int(MINUTE0.timestamp() // 60)
    with transaction(database_url) as session:
        assert engagement_timeline(session, send_id) == {
            "open": {base + 3: 2, base + 20: 1},
            "click": {base + 4: 1, base + 21: 1, base + 22: 1},
        }
        # A scanner's click, once marked, leaves the readers' picture.
        session.execute(
            update(EngagementEvent)
            .where(EngagementEvent.send_id == send_id, EngagementEvent.subscriber_id == 3,
                   EngagementEvent.kind == EngagementKind.CLICK)
            .values(machine=True)
        )
        assert engagement_timeline(session, send_id)["click"] == {base + 4: 1, base + 21: 1}
        timeline = timeline_of(session, send_id)
        assert timeline["sent"] == {base + m: n for m, n in SENT_BY_MINUTE.items()}
        assert timeline["failed"] == {base + 8: 2}
        assert timeline["deferred"] == {base + 8: 1}
        assert "pending" not in timeline
        rows = domains_of(session, send_id)
        assert [row.domain for row in rows] == ["qq.com", "163.com", "example.org"]
        qq = rows[0]
        assert qq.total == 12 and qq.failed == 1 and qq.causes == {"address_gone": 1}
        assert rows[1].causes == {"blocked": 1}
        assert rows[2].causes == {} and rows[2].count(DeliveryState.DEFERRED) == 1
        assert all_of(rows).total == 25
        folded = busiest(rows, shown=1)
        assert [row.domain for row in folded] == ["qq.com", None]
        assert folded[1].total == 13 and folded[1].failed == 1
        # The same numbers as counting the deliveries themselves.
        direct = dict(
            session.execute(
                select(Delivery.state, func.count())
                .where(Delivery.send_id == send_id)
                .group_by(Delivery.state)
            ).all()
        )
        assert all_of(rows).states == {str(k): v for k, v in direct.items()}
        # A retry moves the failed row back to pending; deleting the send's rows empties both.
        session.execute(
            update(Delivery)
            .where(Delivery.send_id == send_id, Delivery.state == DeliveryState.FAILED)
            .values(state=DeliveryState.PENDING, failure_cause=None, updated_at=utcnow())
        )
    with transaction(database_url) as session:
        assert "failed" not in timeline_of(session, send_id)
        assert all(not row.causes for row in domains_of(session, send_id))
        session.execute(Delivery.__table__.delete().where(Delivery.send_id == send_id))
    with transaction(database_url) as session:
        events = EngagementEvent.__table__
        session.execute(events.delete().where(events.c.send_id == send_id))
    with transaction(database_url) as session:
        for table in (SendTimeline, SendDomain, SendEngagement):
            left = session.scalar(
                select(func.coalesce(func.sum(table.n), 0)).where(table.send_id == send_id)
            )
            assert left == 0


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=15_000)  # a loaded 2-core machine answers slowly, never wrongly
    try:
        yield from launched_chromium()
    finally:
        expect.set_options(timeout=5_000)


def sign_in(page: Page, base: str, name: str, lang: str) -> None:
    page.goto(f"{base}/staff/login?lang={lang}")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{base}/staff/")


def widest(page: Page) -> list[str]:
    """Elements reaching past the viewport's right edge (a page wider than a phone)."""
    return page.evaluate(
        """() => {
          const limit = document.documentElement.clientWidth;
          const wide = [];
          if (document.documentElement.scrollWidth > limit) { wide.push('document'); }
          for (const el of document.querySelectorAll('body *')) {
            const box = el.getBoundingClientRect();
            if (box.width && box.right > limit + 1 && !el.closest('.preview-frame')) {
              wide.push(el.tagName + '.' + el.className + ' ' + Math.round(box.right));
            }
          }
          return wide.slice(0, 10);
        }"""
    )


def shoot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"pictures-{name}.png"), full_page=True)


def series_totals(page: Page, chart: str) -> dict[str, int]:
    groups = page.locator(f"svg#{chart} g[data-series]")
    return {
        groups.nth(i).get_attribute("data-series") or "": int(
            groups.nth(i).get_attribute("data-total") or 0
        )
        for i in range(groups.count())
    }


def test_the_send_page_its_report_and_the_overview_show_the_pictures(
    browser: Browser, sqlite_url: str, sample_issue_path: Path
) -> None:
    send_id = picture_send(sqlite_url, sample_issue_path)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    add_staff(sqlite_url, "boss", Role.ADMIN)
    port = free_port()
    settings: Settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        for lang, viewport in (("zh-CN", DESKTOP), ("en", PHONE)):
            page = browser.new_page(viewport=viewport)
            sign_in(page, base, "boss", lang)
            size = viewport["width"]

            page.goto(f"{base}/staff/sends/{send_id}")
            assert series_totals(page, "chart-deliveries") == {
                "sent": 22, "deferred": 1, "failed": 2
            }
            bars = page.locator("svg#chart-deliveries g[data-series=sent] rect")
            assert [int(bars.nth(i).get_attribute("data-value") or 0)
                    for i in range(bars.count())] == list(SENT_BY_MINUTE.values())
            assert bars.first.get_attribute("data-label") == "09:00"  # the office's zone
            qq = page.locator("#domains tr[data-domain='qq.com']")
            expect(qq.locator("td[data-state=failed]")).to_have_text("1")
            expect(qq).to_contain_text(words_of(lang, "reason.address_gone"))
            expect(page.locator("#domains tr[data-domain='163.com']")).to_contain_text(
                words_of(lang, "reason.blocked")
            )
            expect(page.locator("#domains")).not_to_contain_text("5.1.1")
            assert series_totals(page, "chart-engagement") == {"open": 3, "click": 3}
            links = page.locator("#links tbody tr")
            expect(links.first).to_contain_text("https://hzgh.example.org/a?x=<1>")
            expect(links.first.locator("td").last).to_have_text("2")
            outlook = page.locator("[data-field=outlook]")
            retries = words_of(lang, "staff.outlook.retries").split("{at}")[0].format(count=1)
            expect(outlook).to_contain_text(retries)
            # Written as the live part rewrites it, so a poll changes nothing.
            expect(page.locator("section.live span[data-field=percent]")).to_have_text("96")
            assert widest(page) == [], widest(page)
            shoot(page, f"send-{size}")

            # The recipients: reasons in words, the server's words as a detail, no error on a
            # delivered row, the next attempt of a deferred one.
            page.goto(f"{base}/staff/sends/{send_id}/recipients?q=qq00001")
            row = page.locator("table.recipients tbody tr").first
            expect(row.locator(".reason")).to_have_text(words_of(lang, "reason.address_gone"))
            expect(row.locator("details.server-said")).to_contain_text("5.1.1")
            page.goto(f"{base}/staff/sends/{send_id}/recipients?state=sent")
            expect(page.locator("table.recipients")).not_to_contain_text("250 OK")
            page.goto(f"{base}/staff/sends/{send_id}/recipients?state=deferred")
            deferred = page.locator("table.recipients tbody tr").first
            expect(deferred).to_contain_text(words_of(lang, "staff.next_attempt"))
            expect(deferred.locator(".reason")).to_have_text(words_of(lang, "reason.network"))
            assert widest(page) == [], widest(page)
            shoot(page, f"recipients-{size}")

            # The report, reached from the send page: one printable page of the same numbers.
            page.goto(f"{base}/staff/sends/{send_id}")
            page.click("#report-link")
            expect(page).to_have_url(f"{base}/staff/sends/{send_id}/report")
            expect(page.locator("#report-numbers [data-count=total]")).to_have_text("25")
            expect(page.locator("#report-numbers [data-count=sent]")).to_have_text("22")
            assert series_totals(page, "chart-deliveries")["sent"] == 22
            assert widest(page) == [], widest(page)
            shoot(page, f"report-{size}")
            page.emulate_media(media="print")
            assert not page.locator("nav.staff-nav").is_visible()
            assert not page.locator("#print").is_visible()
            assert page.locator("svg#chart-deliveries").is_visible()
            if size == DESKTOP["width"]:
                printed = page.pdf(format="A4")
                assert len(re.findall(rb"/Type\s*/Page[^s]", printed)) == 1  # one page
            page.emulate_media(media="screen")

            # The overview: the last sends side by side.
            page.goto(f"{base}/staff/")
            assert series_totals(page, "chart-sends") == {
                "sent": 22, "failed": 2, "deferred": 1, "waiting": 0
            }
            assert widest(page) == [], widest(page)
            shoot(page, f"home-{size}")

            # Tables become cards on a phone; nothing reaches past its edge.
            for path in ("/staff/users", "/staff/subscribers", "/staff/sends"):
                page.goto(f"{base}{path}")
                assert widest(page) == [], (path, widest(page))
                shoot(page, f"{path.rsplit('/', 1)[-1]}-{size}")

            # Error pages of a signed-in staff member come in the staff frame.
            missing = page.goto(f"{base}/staff/sends/999999")
            assert missing is not None and missing.status == 404
            expect(page.locator("nav.staff-nav")).to_be_visible()
            expect(page.locator("h1")).to_have_text(words_of(lang, "error.404"))
            page.close()

        # The pictures follow the send without a reload: the retried reader's message arrives.
        page = browser.new_page(viewport=DESKTOP)
        sign_in(page, base, "editor", "zh-CN")
        page.goto(f"{base}/staff/sends/{send_id}")
        page.evaluate("window.notReloaded = true")
        with transaction(sqlite_url) as session:
            session.execute(
                update(Delivery)
                .where(Delivery.send_id == send_id, Delivery.state == DeliveryState.DEFERRED)
                .values(state=DeliveryState.SENT, smtp_response="250 OK", updated_at=utcnow())
            )
        sent_total = page.locator("svg#chart-deliveries g[data-series=sent]")
        expect(sent_total).to_have_attribute("data-total", "23", timeout=15_000)
        expect(page.locator("svg#chart-deliveries g[data-series=deferred]")).to_have_count(1)
        expect(page.locator("[data-count=sent]")).to_have_text("23")
        percent = page.locator("section.live span[data-field=percent]")
        expect(percent).to_have_text(re.compile(r"^100(\.0)?$"))
        example = page.locator("#domains tr[data-domain='example.org']")
        expect(example.locator("td[data-state=sent]")).to_have_text("5")
        assert page.evaluate("window.notReloaded") is True
        page.close()

        # A viewer's refusal comes in the staff frame too; signed out, the public one.
        add_staff(sqlite_url, "viewer", Role.VIEWER)
        viewer = browser.new_page(viewport=PHONE)
        sign_in(viewer, base, "viewer", "zh-CN")
        refused = viewer.goto(f"{base}/staff/users")
        assert refused is not None and refused.status == 403
        expect(viewer.locator("nav.staff-nav")).to_be_visible()
        viewer.close()
        stranger = browser.new_page(viewport=PHONE)
        gone = stranger.goto(f"{base}/archive/999999")
        assert gone is not None and gone.status == 404
        expect(stranger.locator("nav.staff-nav")).to_have_count(0)

        # The favicon: ours, linked from both frames.
        icon = stranger.request.get(f"{base}/static/favicon.svg")
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in icon.body()
        # Every answer tells the server's own time (what benchmarks/web_staff.py reads).
        assert re.fullmatch(r"app;dur=\d+\.\d", icon.headers["server-timing"])
        for path in ("/archive", "/staff/login"):
            stranger.goto(f"{base}{path}")
            assert stranger.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
        stranger.close()


def test_the_preview_frames_are_as_wide_as_they_say(
    browser: Browser, sqlite_url: str, sample_issue_path: Path
) -> None:
    issue_id = import_sample(sqlite_url, sample_issue_path)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    port = free_port()
    settings = web_settings(sqlite_url, PUBLIC_BASE_URL=f"http://127.0.0.1:{port}")
    with serving(create_app(settings, limiter=MemoryRateLimiter()), port) as base:
        for viewport in (DESKTOP, PHONE):
            page = browser.new_page(viewport=viewport)
            sign_in(page, base, "editor", "zh-CN")
            page.goto(f"{base}/staff/issues/{issue_id}")
            expect(page.locator("figcaption").first).to_contain_text("375 px")
            for kind, width in (("phone", 375), ("desktop", 1024)):
                frame = page.locator(f"iframe.{kind}").first
                # The layout width the message sees is the width named, scaled only to fit.
                assert frame.evaluate("f => f.offsetWidth") == width
                shown = frame.bounding_box()
                assert shown is not None and shown["width"] <= viewport["width"]
                scale = float(frame.evaluate("f => f.parentElement.dataset.scale"))
                assert shown["width"] == pytest.approx(width * scale, abs=2)
            assert re.search(r"1024 px", page.locator("body").inner_text())
            assert widest(page) == [], widest(page)
            shoot(page, f"preview-{viewport['width']}")
            page.close()
