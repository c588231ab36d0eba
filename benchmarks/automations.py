"""The automations' part of the tick on PostgreSQL, with many readers who joined a list: how long
the claims of a new wave take, and what a tick costs once everyone is claimed, with each step's
watermark (the claims look only at joins after it) and without it (every join since the step
was made is looked at again, every second).

    python benchmarks/automations.py [--joined 100000] [--wave 1000] [--repeats 20]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A throw-away database gets ``--joined`` active readers on one list, joined an hour ago, and a
welcome step made two hours ago whose readers are all claimed (rows written by SQL); then a
wave of ``--wave`` readers join now and ticks claim them (the deliveries included); then
ticks with nobody due are timed, with the watermark and with it cleared.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import text, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.automations.models import AutomationStep
from distributor.automations.steps import run_due_steps
from distributor.config import Settings
from distributor.db import session_factory, transaction, upgrade
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue

SAMPLE = Path(__file__).resolve().parents[1] / "distributor" / "samples" / "hzgy-471.txt"
FILL = (
    "INSERT INTO lists (id, name, description, public, created_at) VALUES"
    " (1, 'members', '', false, now())",
    "INSERT INTO subscribers (id, email, email_key, name, locale, attributes, status, channel,"
    " format, created_at, updated_at)"
    " SELECT g, 'r' || g || '@example.org', 'r' || g || '@example.org', '读者' || g, 'zh-CN',"
    " '{}', 'active', 'email', 'full', now(), now() FROM generate_series(1, :n + :wave) AS g",
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
    " SELECT g, 1, 'active', now(), now() FROM generate_series(1, :n + :wave) AS g",
    "INSERT INTO sends (id, issue_id, audience, channel, state, is_test, tracking, commercial,"
    " planned_through, planned_at, started_at, created_at, updated_at)"
    " VALUES (1, 1, '{\"lists\": [\"members\"]}', 'email', 'done', false, false, false, 0,"
    " now(), now(), now(), now())",
    "SELECT setval(pg_get_serial_sequence('sends', 'id'), 1)",
    "INSERT INTO automations (id, list_id, paused, created_at, updated_at)"
    " VALUES (1, 1, false, now() - interval '2 hours', now())",
    "INSERT INTO automation_steps (id, automation_id, delay_seconds, issue_id, send_id,"
    " created_at) VALUES (1, 1, 0, 1, 1, now() - interval '2 hours')",
    "INSERT INTO automation_joins (list_id, subscriber_id, joined_at)"
    " SELECT 1, g, now() - interval '1 hour' FROM generate_series(1, :n) AS g",
    "INSERT INTO automation_runs (step_id, subscriber_id, claimed_at)"
    " SELECT 1, g, now() - interval '1 hour' FROM generate_series(1, :n) AS g",
    "ANALYZE",
)
WAVE = (
    "INSERT INTO automation_joins (list_id, subscriber_id, joined_at)"
    " SELECT 1, g, now() FROM generate_series(:n + 1, :n + :wave) AS g"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--joined", type=int, default=100_000)
    parser.add_argument("--wave", type=int, default=1_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    params = {"n": args.joined, "wave": args.wave}
    with throwaway_database(args.admin_url, "automations_bench") as url:
        upgrade(url)
        with transaction(url) as session:
            report = read_issue_file(SAMPLE)
            save_issue(session, report.document, source_format=report.format)  # issue 1
            for statement in FILL:
                session.execute(text(statement), params)
        settings = Settings.from_env(
            {
                "DATABASE_URL": url,
                "DISTRIBUTOR_SECRET_KEY": "bench-secret-0123456789-0123456789",
                "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
                "PUBLIC_BASE_URL": "https://news.example.org",
            }
        )
        factory = session_factory(url)
        run_due_steps(factory, settings, _now(url))  # renders the step; moves its watermark
        with transaction(url) as session:
            session.execute(text(WAVE), params)
        started = time.perf_counter()
        claimed = run_due_steps(factory, settings, _now(url))
        wave = time.perf_counter() - started
        print(f"{args.joined:,} joined before; a wave of {claimed:,} claimed in {wave:.2f} s")
        with_mark = _ticks(factory, settings, url, args.repeats)
        without = _ticks(factory, settings, url, args.repeats, clear=True)
        print(f"a tick with nobody due: {with_mark} with the watermark, {without} without")


def _now(url: str) -> datetime:
    with transaction(url) as session:
        now = session.scalar(text("SELECT now()"))
        assert isinstance(now, datetime)
        return now


def _ticks(
    factory: sessionmaker[Session],
    settings: Settings,
    url: str,
    repeats: int,
    *,
    clear: bool = False,
) -> str:
    times: list[float] = []
    for _ in range(repeats):
        if clear:
            with factory.begin() as session:
                session.execute(update(AutomationStep).values(claimed_through=None))
        started = time.perf_counter()
        assert run_due_steps(factory, settings, _now(url)) == 0
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[max(0, round(len(times) * 0.95) - 1)]
    return f"median {statistics.median(times):.1f} ms, p95 {p95:.1f} ms"


if __name__ == "__main__":
    main()
