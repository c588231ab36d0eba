"""A/B subject tests: half of the test share each gets subject A (the issue's) or B, the rest is
held until the winner is chosen, then gets only the winner's subject; through the real engine,
a real SMTP server on loopback and the real tracking endpoint."""

from __future__ import annotations

import email
import email.policy
import html
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction, utcnow
from distributor.errors import DistributorError
from distributor.runtime import WorkerRuntime
from distributor.sending.ab import (
    AbTest,
    ArmFigures,
    Reason,
    WinnerBy,
    arm_quota,
    choose_winner,
    parse_wait,
    take_decision,
)
from distributor.sending.models import Delivery
from distributor.staff.models import Role
from distributor.vocabulary import DeliveryState
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.api import api_client
from tests.support.audience import make_audience
from tests.support.sending import SECRET, created_by_cli, import_sample
from tests.support.smtp import Received, SmtpServer
from tests.support.staff import add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings

SUBJECT_B = "三分钟读懂本期：职工疗休养新规"
PIXEL = re.compile(r'<img src="([^"]*/t/o/[^"]+)"')


def subject_of(received: Received) -> str:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    return str(message["Subject"])


def pixel_path(received: Received) -> str:
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    page = str(message.get_body(("html",)).get_content())  # type: ignore[attr-defined]
    url = urlsplit(html.unescape(PIXEL.findall(page)[0]))
    return url.path


def arms_of(url: str, send_id: int) -> dict[str, str]:
    """Each address's arm, as planned."""
    with transaction(url) as session:
        rows = session.execute(
            select(Delivery.address, Delivery.arm).where(Delivery.send_id == send_id)
        ).all()
    return {address: arm for address, arm in rows}


def cli_status(env: dict[str, str], send_id: int, *extra: str) -> str:
    result = CliRunner().invoke(main, ["send", "status", str(send_id), *extra], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_arm_more_readers_opened_wins_and_the_rest_get_only_it(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 40)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer() as smtp:
        env = {
            "DATABASE_URL": database_url,
            "DISTRIBUTOR_SECRET_KEY": SECRET,
            "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
            "PUBLIC_BASE_URL": "https://news.example.org",
            **smtp.env(),
        }
        settings = Settings.from_env(env)
        send_id = created_by_cli(
            env, issue_id, "--variant", "full", "--subject-b", SUBJECT_B,
            "--test-share", "50", "--winner-by", "opens", "--winner-after", "1s",
        )
        runtime = WorkerRuntime.from_settings(settings)
        try:
            def tick() -> list[int]:
                return runtime.tick(enqueue_plan=runtime.plan, enqueue_drain=lambda _: None).decided

            assert tick() == []  # starts and plans it
            runtime.drain_now()
            test = list(smtp.handler.received)
            arms = arms_of(database_url, send_id)
            assert sorted(arms.values()) == ["a"] * 10 + ["b"] * 10 + ["rest"] * 20
            assert len(test) == 20  # the rest is held, not sent
            subject_a = next(subject_of(m) for m in test if arms[m.recipient] == "a")
            assert subject_a != SUBJECT_B and subject_a.startswith("杭州工运")
            for message in test:
                expected = SUBJECT_B if arms[message.recipient] == "b" else subject_a
                assert subject_of(message) == expected

            # B's readers open more: six of ten, against two of A's ten (one of them twice).
            opened = [m for m in test if arms[m.recipient] == "b"][:6]
            opened += [m for m in test if arms[m.recipient] == "a"][:2] * 2
            app = create_app(settings, enqueue_confirmation=lambda _: None,
                             limiter=MemoryRateLimiter())
            with TestClient(app, base_url="http://testserver") as web:
                for message in opened:
                    assert web.get(pixel_path(message)).status_code == 200
            # (the app's buffer writes the opens as it stops)

            assert tick() == []  # the test is out: its wait starts now
            runtime.drain_now()
            assert len(smtp.handler.received) == 20  # still held during the wait
            time.sleep(1.1)
            assert tick() == [send_id]
            assert tick() == []  # taken once
            runtime.drain_now()
            tick()
        finally:
            runtime.close()
        rest = smtp.handler.received[20:]
        assert sorted(m.recipient for m in rest) == sorted(
            address for address, arm in arms.items() if arm == "rest"
        )
        assert {subject_of(m) for m in rest} == {SUBJECT_B}
        shown = json.loads(cli_status(env, send_id, "--json"))
        assert shown["state"] == "done" and shown["counts"] == {"sent": 40}
        ab = shown["ab_test"]
        assert (ab["winner"], ab["reason"], ab["share"]) == ("b", "better", 50)
        assert ab["subject_a"] == subject_a and ab["subject_b"] == SUBJECT_B
        assert ab["arms"] == {
            "a": {"readers": 10, "reached": 10, "opened": 2, "clicked": 0},
            "b": {"readers": 10, "reached": 10, "opened": 6, "clicked": 0},
            "rest": {"readers": 20, "reached": 20, "opened": 0, "clicked": 0},
        }
        lines = cli_status(env, send_id).splitlines()
        assert any(
            line.startswith("Winner:    B (its readers opened more), chosen ") for line in lines
        )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_without_a_signal_the_rest_get_a_and_the_send_says_so(
    database_url: str, sample_issue_path: Path
) -> None:
    """Nobody opens: A wins by default, said so in the status; a held row never goes before."""
    make_audience(database_url, "members", 10)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer() as smtp:
        env = {
            "DATABASE_URL": database_url,
            "DISTRIBUTOR_SECRET_KEY": SECRET,
            "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
            "PUBLIC_BASE_URL": "https://news.example.org",
            **smtp.env(),
        }
        created = CliRunner().invoke(main, [
            "send", "create", "--issue", str(issue_id), "--list", "members",
            "--variant", "full", "--subject-b", SUBJECT_B, "--winner-after", "1s",
        ], env=env)
        assert created.exit_code == 0, created.output
        send_id = int(created.output.splitlines()[0].removeprefix("Created send ID: "))
        assert "A/B subject test: 10% get the issue's subject (A), 10% get" in created.output
        runtime = WorkerRuntime.from_settings(Settings.from_env(env))
        try:
            runtime.tick(enqueue_plan=runtime.plan, enqueue_drain=lambda _: None)
            runtime.drain_now()
            # 20% of 10 readers: one A, one B, eight held.
            assert len(smtp.handler.received) == 2
            runtime.tick(enqueue_plan=runtime.plan, enqueue_drain=lambda _: None)
            lines = cli_status(env, send_id).splitlines()
            assert "held" in " ".join(lines)
            assert any(line.startswith("Winner:    chosen ") for line in lines)
            time.sleep(1.1)
            runtime.tick(enqueue_plan=runtime.plan, enqueue_drain=lambda _: None)
            runtime.drain_now()
        finally:
            runtime.close()
        subjects = [subject_of(m) for m in smtp.handler.received]
        assert len(subjects) == 10 and subjects.count(SUBJECT_B) == 1
        lines = cli_status(env, send_id).splitlines()
        assert any(
            line.startswith("Winner:    A (nobody opened either: the issue's own subject)")
            for line in lines
        )
        with transaction(database_url) as session:
            held = session.scalar(
                select(Delivery.id).where(Delivery.state == DeliveryState.HELD).limit(1)
            )
        assert held is None


@pytest.mark.parametrize(
    ("batches", "share"),
    [([40], 50), ([7, 13, 1, 19], 50), ([1] * 30, 20), ([999, 1], 7), ([1] * 9, 90)],
)
def test_the_two_arms_stay_equal_however_planning_cuts_the_audience(
    batches: list[int], share: int
) -> None:
    planned, a, b = 0, 0, 0
    for batch in batches:
        in_a, in_b = arm_quota(planned, batch, share)
        assert 0 <= in_a + in_b <= batch
        planned, a, b = planned + batch, a + in_a, b + in_b
        assert 0 <= a - b <= 1
    assert a + b == planned * share // 100


def test_the_winner_is_the_better_rate_and_a_on_a_tie_or_no_signal() -> None:
    def arm(name: str, reached: int, opened: int, clicked: int = 0) -> ArmFigures:
        return ArmFigures(name, reached, reached, opened, clicked)

    assert choose_winner(arm("a", 10, 2), arm("b", 10, 6), WinnerBy.OPENS) == ("b", Reason.BETTER)
    assert choose_winner(arm("a", 10, 6), arm("b", 20, 6), WinnerBy.OPENS) == ("a", Reason.BETTER)
    assert choose_winner(arm("a", 10, 9, 1), arm("b", 10, 1, 2), WinnerBy.CLICKS) == (
        "b", Reason.BETTER,
    )
    assert choose_winner(arm("a", 10, 3), arm("b", 10, 3), WinnerBy.OPENS) == ("a", Reason.TIE)
    assert choose_winner(arm("a", 10, 0), arm("b", 0, 0), WinnerBy.OPENS) == (
        "a", Reason.NO_SIGNAL,
    )


def test_waits_and_refusals_are_read_as_staff_type_them() -> None:
    assert [parse_wait(text) for text in ("4h", "90m", "30s", "1d", "2")] == [
        timedelta(hours=4), timedelta(minutes=90), timedelta(seconds=30), timedelta(days=1),
        timedelta(hours=2),
    ]
    with pytest.raises(DistributorError, match="not a wait like 4h"):
        parse_wait("soon")
    AbTest("本期要闻").check()
    for wrong, code in [
        (AbTest("  "), "send.ab_subject"),
        (AbTest("a\nBcc: x@example.org"), "send.ab_subject"),
        (AbTest("x", share=95), "send.ab_share"),
        (AbTest("x", wait=timedelta(days=8)), "send.ab_wait"),
    ]:
        with pytest.raises(DistributorError) as refused:
            wrong.check()
        assert refused.value.code == code


def test_the_dashboard_form_confirms_the_arms_and_the_send_page_shows_the_decision(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    make_audience(sqlite_url, "会员快讯", 50)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    client = TestClient(
        create_app(web_settings(sqlite_url), limiter=MemoryRateLimiter()),
        base_url=BASE_URL,
        follow_redirects=False,
    )
    sign_in(client, "editor")
    form = client.get("/staff/sends/new?lang=en").text
    assert 'id="ab-test"' in form and 'name="subject_b"' in form
    fields = {
        "issue": str(issue_id), "lists": "会员快讯", "variant": "full", "csrf": csrf_of(form),
        "subject_b": SUBJECT_B, "test_share": "20", "winner_by": "clicks", "winner_after": "2h",
    }
    summary = client.post("/staff/sends/new?lang=en", data=fields).text
    assert 'id="confirm-tracking">on<' in summary  # the winner needs the opens and clicks
    assert "5 readers, the issue&#39;s own subject" in summary
    assert f"5 readers, subject “{SUBJECT_B}”" in summary
    assert "40 readers: 2h after the test is out, the subject with more clicks" in summary
    chinese = client.post("/staff/sends/new?lang=zh-CN", data=fields).text
    assert "40 位读者：测试发完 2h 后，收到点击比例更高的主题" in chinese
    wrong = client.post("/staff/sends/new?lang=en", data={**fields, "test_share": "95"})
    assert wrong.status_code == 400 and "from 2 to 90, not 95" in wrong.text
    made = client.post("/staff/sends/new", data={**fields, "confirmed": "yes"})
    assert made.status_code == 303
    send_id = int(made.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/staff/sends/{send_id}?lang=en").text
    assert 'id="ab-test"' in page and SUBJECT_B in page
    assert "20% of the audience in the test, the winner by clicks, chosen 2h after" in page
    assert "The test is going out" in page
    with transaction(sqlite_url) as session:
        take_decision(session, send_id, "a", Reason.NO_SIGNAL, utcnow())
    for lang, words in [
        ("en", "No signal (no clicks in either arm): the rest get arm A"),
        ("zh-CN", "没有信号（两组都没有点击）：其余读者收到 A 组"),
    ]:
        page = client.get(f"/staff/sends/{send_id}?lang={lang}").text
        assert words in page
        assert not re.findall(r"\bstaff\.[a-z_]+\.[a-z_.]+", page)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_api_creates_an_ab_test_and_shows_its_arms(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 20)
    issue_id = import_sample(database_url, sample_issue_path)
    with api_client(web_settings(database_url)) as api:
        body = {
            "issue_id": issue_id, "lists": ["members"], "draft": True,
            "ab_test": {"subject_b": SUBJECT_B, "share": 40, "winner_after_seconds": 600},
        }
        created = api.client.post("/api/v1/sends", json=body, headers=api.editor)
        assert created.status_code == 201, created.text
        ab = created.json()["send"]["ab_test"]
        assert (ab["share"], ab["winner_by"], ab["winner_after_seconds"]) == (40, "opens", 600)
        assert (ab["subject_b"], ab["winner"], ab["decided_at"]) == (SUBJECT_B, None, None)
        refused = api.client.post(
            "/api/v1/sends",
            json={**body, "variant": "text"},
            headers=api.editor,
        )
        assert refused.status_code == 422
        assert refused.json()["error"]["message"].startswith("plain text has no images")
