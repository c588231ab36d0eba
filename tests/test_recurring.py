"""Recurring digests: when a rule runs, and that a window is sent once however often beat ticks."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlalchemy import select, update

from distributor.cli import main
from distributor.config import Settings
from distributor.db import session_factory, transaction, utcnow
from distributor.runtime import WorkerRuntime
from distributor.sending.models import ScheduleRule, Send
from distributor.sending.recurring import occurrences_after
from distributor.sending.scheduler import tick
from distributor.sending.tunables import Tunables
from tests.support.audience import make_audience
from tests.support.sending import engine_env, import_sample
from tests.support.smtp import SmtpServer

SHANGHAI = ZoneInfo("Asia/Shanghai")
FIXTURES = Path(__file__).parent / "fixtures" / "issues"

ONE_SLOT = replace(Tunables.from_settings(Settings()), slots=1)


def test_next_monday_0900_shanghai() -> None:
    # Monday 2026-11-30 08:59 in Shanghai is 00:59 UTC
    after = datetime(2026, 11, 30, 0, 59, tzinfo=UTC)
    monday = occurrences_after(0, datetime.strptime("09:00", "%H:%M").time(), SHANGHAI, after)
    assert monday == datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
    week_later = occurrences_after(0, monday.astimezone(SHANGHAI).time(), SHANGHAI, monday)
    assert week_later == monday + timedelta(days=7)
    daily = occurrences_after(None, datetime.strptime("09:00", "%H:%M").time(), SHANGHAI, monday)
    assert daily == monday + timedelta(days=1)


def make_rule_due(url: str) -> None:
    """Pretend the rule was created a week ago and its Monday has come."""
    with transaction(url) as session:
        session.execute(
            update(ScheduleRule).values(
                window_start=utcnow() - timedelta(days=7), next_run_at=utcnow()
            )
        )


def test_a_rule_run_twice_in_the_same_window_sends_once(
    database_url: str, sample_issue_path: Path
) -> None:
    digest_readers = make_audience(database_url, "members", 20, fmt="digest")
    make_audience(database_url, "members", 10, prefix="full", fmt="full")
    first = import_sample(database_url, sample_issue_path)
    second = import_sample(database_url, FIXTURES / "hzgy-485.txt")
    with SmtpServer() as smtp:
        env = engine_env(database_url, "memory://", smtp)
        added = CliRunner().invoke(
            main,
            [
                "schedule",
                "add",
                "weekly",
                "--every",
                "monday",
                "--at",
                "09:00",
                "--list",
                "members",
            ],
            env=env,
        )
        assert added.exit_code == 0, added.output
        make_rule_due(database_url)
        engine = WorkerRuntime.from_settings(Settings.from_env(env))
        factory = session_factory(database_url)

        def run_tick() -> None:
            tick(
                factory,
                now=utcnow(),
                tunables=ONE_SLOT,
                enqueue_plan=engine.plan,
                enqueue_drain=lambda slot: None,
            )

        beats = [threading.Thread(target=run_tick) for _ in range(2)]  # two beats at once
        for beat in beats:
            beat.start()
        for beat in beats:
            beat.join()
        run_tick()  # and the same beat again
        engine.drain_now()
        run_tick()
        engine.close()
        counts = smtp.handler.counts()
        subjects = {r.message["Subject"] for r in smtp.handler.received}
    with transaction(database_url) as session:
        sends = session.scalars(select(Send)).all()
    assert len(sends) == 1 and sends[0].issue_ids == [first, second]
    assert sorted(counts) == digest_readers and set(counts.values()) == {1}
    assert len(subjects) == 1
    listing = CliRunner().invoke(main, ["schedule", "list"], env=env).output
    assert "weekly" in listing and "every monday 09:00 Asia/Shanghai" in listing


def test_issues_of_a_sent_window_are_not_in_the_next(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    make_audience(sqlite_url, "members", 3, fmt="digest")
    import_sample(sqlite_url, sample_issue_path)
    env = {"DATABASE_URL": sqlite_url}
    CliRunner().invoke(
        main,
        ["schedule", "add", "daily", "--every", "day", "--at", "07:30", "--list", "members"],
        env=env,
    )
    make_rule_due(sqlite_url)
    factory = session_factory(sqlite_url)
    tick(
        factory,
        now=utcnow(),
        tunables=ONE_SLOT,
        enqueue_plan=lambda s: None,
        enqueue_drain=lambda s: None,
    )
    later = import_sample(sqlite_url, FIXTURES / "hzgy-491.txt")
    with transaction(sqlite_url) as session:  # the next day's run is due
        session.execute(update(ScheduleRule).values(next_run_at=utcnow()))
    tick(
        factory,
        now=utcnow(),
        tunables=ONE_SLOT,
        enqueue_plan=lambda s: None,
        enqueue_drain=lambda s: None,
    )
    with transaction(sqlite_url) as session:
        windows = [send.issue_ids for send in session.scalars(select(Send).order_by(Send.id))]
    assert windows == [[1], [later]]
    removed = CliRunner().invoke(main, ["schedule", "remove", "daily"], env=env)
    assert removed.output.strip() == "Schedule 'daily' removed."
    missing = CliRunner().invoke(main, ["schedule", "remove", "daily"], env=env)
    assert missing.exit_code == 2 and "no schedule named 'daily'" in missing.output
