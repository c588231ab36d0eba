"""Segments at a million subscribers on PostgreSQL: how long a count takes (target p95 under
200 ms), that it equals a plain SQL check of the same words, and how fast a send to a segment
is planned into delivery rows.

    python benchmarks/segments.py [--rows 1000000] [--repeats 20]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A throw-away database gets ``--rows`` subscribers (INSERT … SELECT generate_series) with facts
spread by their id: two lists, a tag, a department attribute, channels, formats, sign-up dates
over a year, five tracked sends with opens and clicks by a fifth of the readers, and soft
bounces for one in a hundred. Each segment below is counted ``--repeats`` times through
``count_segment`` (the service the CLI and the API call), then once by hand-written SQL. The
first count is reported apart from the repeated ones (p50, p95): where counts are kept
(:mod:`distributor.snapshot_counts`), the first one counts and the others read it back. Then one
reader unsubscribes, and each segment is counted once more and checked again: a kept count must
not outlive the change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from distributor.campaigns.schedule import create_send
from distributor.db import session_factory, transaction, upgrade, utcnow
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.segments.store import count_segment, create_segment, segment_audience
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery
from distributor.sending.planner import plan_send
from distributor.vocabulary import Variant

ZONE = ZoneInfo("Asia/Shanghai")
FILL = (
    "INSERT INTO newsletters (id, title, created_at) VALUES (1, '杭州工运', now())",
    "INSERT INTO issues (id, newsletter_id, number, issue_date, masthead, source_format,"
    " imported_at) VALUES (1, 1, 1, '2022-12-27', '{}', 'json', now())",
    "INSERT INTO lists (id, name, description, public, created_at) VALUES"
    " (1, 'members', '', false, now()), (2, 'youth', '', false, now())",
    "INSERT INTO tags (id, name) VALUES (1, '青年')",
    "INSERT INTO subscribers (id, email, email_key, name, locale, attributes, status, channel,"
    " format, openid, created_at, updated_at)"
    " SELECT g, 'r' || g || '@example.org', 'r' || g || '@example.org', '读者' || g, 'zh-CN',"
    " json_build_object('department', (ARRAY['工会办', '宣传部', '组织部', '财务部'])[g % 4 + 1]),"
    " CASE WHEN g % 50 = 0 THEN 'bounced' ELSE 'active' END,"
    " (ARRAY['email', 'email', 'email', 'wechat', 'both'])[g % 5 + 1],"
    " (ARRAY['full', 'digest', 'text'])[g % 3 + 1],"
    " CASE WHEN g % 5 >= 3 THEN 'o' || g END,"
    " now() - make_interval(days => g % 365), now()"
    " FROM generate_series(1, :n) AS g",
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
    " SELECT g, 1, CASE WHEN g % 17 = 0 THEN 'unsubscribed' ELSE 'active' END, now(), now()"
    " FROM generate_series(1, :n) AS g WHERE g % 3 <> 0",
    "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
    " SELECT g, 2, 'active', now(), now() FROM generate_series(1, :n) AS g WHERE g % 4 = 0",
    "INSERT INTO subscriber_tags (subscriber_id, tag_id)"
    " SELECT g, 1 FROM generate_series(1, :n) AS g WHERE g % 7 = 0",
    "INSERT INTO sends (id, issue_id, audience, variant, channel, state, is_test, tracking,"
    " planned_through, started_at, created_at, updated_at)"
    " SELECT s, 1, '{}', 'full', 'email', 'done', false, true, 0, now(), now(), now()"
    " FROM generate_series(1, 5) AS s",
    "SELECT setval(pg_get_serial_sequence('sends', 'id'), 5)",
    "INSERT INTO engagement_events (send_id, subscriber_id, kind, at, machine)"
    " SELECT g % 5 + 1, g, CASE WHEN g % 3 = 0 THEN 'click' ELSE 'open' END,"
    " now() - make_interval(days => g % 90), false"
    " FROM generate_series(1, :n) AS g WHERE g % 5 = 1",
    "INSERT INTO deliveries (send_id, subscriber_id, channel, address, variant, state, attempts,"
    " reclaims, possible_duplicate, failure_cause, created_at, updated_at)"
    " SELECT 1, g, 'email', 'r' || g || '@example.org', 'full', 'failed', 1, 0, false,"
    " 'mailbox_full', now(), now() FROM generate_series(1, :n) AS g WHERE g % 100 = 7",
)
ON_A_LIST = (
    "s.status = 'active' AND EXISTS (SELECT 1 FROM subscriptions u WHERE"
    " u.subscriber_id = s.id AND u.status = 'active')"
)
SEGMENTS = (
    (
        "on a list",
        "list = members",
        "EXISTS (SELECT 1 FROM subscriptions u WHERE"
        " u.subscriber_id = s.id AND u.status = 'active' AND u.list_id = 1)",
    ),
    ("an attribute", "attr.department = 工会办", "s.attributes ->> 'department' = '工会办'"),
    (
        "young, by email, not bounced softly",
        "(tag = 青年 or list = youth) and channel = email and not bounced softly",
        "(EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.subscriber_id = s.id AND t.tag_id = 1)"
        " OR EXISTS (SELECT 1 FROM subscriptions u WHERE u.subscriber_id = s.id"
        " AND u.status = 'active' AND u.list_id = 2)) AND s.channel IN ('email', 'both')"
        " AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.subscriber_id = s.id"
        " AND d.failure_cause IN ('mailbox_full', 'mailbox_disabled'))",
    ),
    (
        "engaged lately",
        "opened any of last 3 sends or clicked since 2026-11-01",
        "EXISTS (SELECT 1 FROM engagement_events e WHERE e.subscriber_id = s.id AND"
        " ((e.kind = 'open' AND e.send_id IN (3, 4, 5)) OR (e.kind = 'click' AND NOT e.machine"
        " AND e.at >= '2026-11-01T00:00+08:00')))",
    ),
    (
        "lapsed members who joined this year",
        "list = members and never opened since 2026-10-01 and joined >= 2026-01-01",
        "EXISTS (SELECT 1 FROM subscriptions u WHERE u.subscriber_id = s.id"
        " AND u.status = 'active' AND u.list_id = 1) AND NOT EXISTS (SELECT 1 FROM"
        " engagement_events e WHERE e.subscriber_id = s.id AND e.kind = 'open'"
        " AND e.at >= '2026-10-01T00:00+08:00') AND s.created_at >= '2026-01-01T00:00+08:00'",
    ),
)


def timed_count(url: str, number: int) -> tuple[int, float]:
    """Segment ``number`` counted through the service, and how long it took (ms)."""
    with transaction(url) as session:
        began = time.perf_counter()
        readers = count_segment(session, f"s{number}", ZONE)
        return readers, (time.perf_counter() - began) * 1000


def by_hand_count(url: str, plain: str) -> tuple[int, float]:
    """The same words in hand-written SQL, and how long it took (ms)."""
    with transaction(url) as session:
        began = time.perf_counter()
        check = session.scalar(
            text(f"SELECT count(*) FROM subscribers s WHERE {ON_A_LIST} AND ({plain})")
        )
        return int(check or 0), (time.perf_counter() - began) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    with throwaway_database(args.admin_url, "distributor_segments_bench") as url:
        upgrade(url)
        start = time.perf_counter()
        with transaction(url) as session:
            for statement in FILL:
                session.execute(text(statement), {"n": args.rows})
        with transaction(url) as session:
            session.connection().exec_driver_sql("ANALYZE")
        print(f"{args.rows:,} subscribers made in {time.perf_counter() - start:.0f} s")
        wrong = 0
        for number, (label, expression, plain) in enumerate(SEGMENTS):
            with transaction(url) as session:
                create_segment(session, f"s{number}", expression, ZONE)
            times = [timed_count(url, number)[1] for _ in range(args.repeats + 1)]
            ours, check, by_hand = timed_count(url, number)[0], *by_hand_count(url, plain)
            p95 = statistics.quantiles(times[1:], n=20)[-1]
            same = "equal" if ours == check else f"DIFFERENT (plain SQL: {check:,})"
            wrong += ours != check
            print(
                f"{label:40} {ours:>9,} readers  first {times[0]:6.0f} ms, then"
                f" p50 {statistics.median(times[1:]):6.0f} ms  p95 {p95:6.0f} ms"
                f"  {'PASS' if p95 < 200 else 'MISSED'}  count {same}"
                f" (the plain SQL: {by_hand:.0f} ms)"
            )
        with transaction(url) as session:
            session.execute(text("UPDATE subscribers SET status = 'unsubscribed' WHERE id = 4"))
        for number, (label, _, plain) in enumerate(SEGMENTS):
            (ours, took), (check, _) = timed_count(url, number), by_hand_count(url, plain)
            same = "equal" if ours == check else f"DIFFERENT (plain SQL: {check:,})"
            wrong += ours != check
            print(f"after one reader left: {label:40} {ours:>9,}  {took:6.0f} ms  count {same}")
        with transaction(url) as session:
            created = create_send(
                session,
                issue_id=1,
                audience=segment_audience(session, "s2", ZONE),
                variant=Variant.FULL,
                at=None,
                now=utcnow(),
                zone=ZONE,
            )
            start_due_sends(session, utcnow())
        began = time.perf_counter()
        plan_send(session_factory(url), created.id, batch_size=1000, lease=timedelta(minutes=5))
        took = time.perf_counter() - began
        with transaction(url) as session:
            rows = len(
                session.scalars(select(Delivery.id).where(Delivery.send_id == created.id)).all()
            )
        print(
            f"planning a send to {SEGMENTS[2][0]!r}: {rows:,} deliveries in {took:.1f} s "
            f"({rows / took:,.0f} a second; {created.readers:,} counted when it was made)"
        )
    sys.exit(1 if wrong else 0)


if __name__ == "__main__":
    main()
