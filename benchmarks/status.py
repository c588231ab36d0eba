"""Status latency of a send with 1,000,000 deliveries on PostgreSQL.

    python benchmarks/status.py [--deliveries 1000000] [--runs 50]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

`send status` reads the trigger-kept counters (target < 50 ms); the baseline, in the same run, is
what peers do: COUNT(*) … GROUP BY state over every delivery row of the send.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import date

from sqlalchemy import func, select, text

from distributor.campaigns.status import send_status
from distributor.db import transaction, upgrade
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.issues.document import Article, Block, IssueDocument
from distributor.issues.store import save_issue
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import SendState, Variant
from subscribers.query import Audience


def timed(runs: int, work: Callable[[], object]) -> tuple[float, float, object]:
    """Median and worst milliseconds over ``runs`` calls, and the last result."""
    samples, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = work()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples), max(samples), result


def fill(url: str, n: int) -> int:
    doc = IssueDocument(
        title="杭州工运",
        number=1,
        date=date(2022, 12, 27),
        articles=[Article(headline="标题", blocks=[Block("paragraph", "正文。")])],
    )
    with transaction(url) as session:
        issue_id = save_issue(session, doc, source_format="json").id
        send = Send(
            issue_id=issue_id,
            audience=Audience(),
            variant=Variant.FULL,
            state=SendState.RUNNING,
        )
        session.add(send)
        session.flush()
        send_id = send.id
    start = time.perf_counter()
    with transaction(url) as session:  # one statement: the insert trigger counts it in one go
        session.execute(
            text(
                "INSERT INTO deliveries (send_id, subscriber_id, channel, address, variant, state,"
                " attempts, reclaims, possible_duplicate, created_at, updated_at)"
                " SELECT :send, g, 'email', 'reader' || g || '@example.org', 'full', 'pending',"
                " 0, 0, false, now(), now() FROM generate_series(1, :n) AS g"
            ),
            {"send": send_id, "n": n},
        )
    with transaction(url) as session:  # a send under way: most sent, some failed, some deferred
        session.execute(
            text(
                "UPDATE deliveries SET state = CASE WHEN id % 100 = 0 THEN 'failed'"
                " WHEN id % 50 = 1 THEN 'deferred' ELSE 'sent' END"
                " WHERE send_id = :send AND id % 10 <> 9"
            ),
            {"send": send_id},
        )
    with transaction(url) as session:
        session.execute(text("ANALYZE deliveries"))
    print(
        f"filled {n:,} deliveries (and moved 90 % of them) in {time.perf_counter() - start:.1f} s"
    )
    return send_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    with throwaway_database(args.admin_url, "distributor_status_bench") as url:
        upgrade(url)
        send_id = fill(url, args.deliveries)

        def counters() -> object:
            with transaction(url) as session:
                return send_status(session, send_id).counts

        def count_rows() -> object:
            with transaction(url) as session:
                rows = session.execute(
                    select(Delivery.state, func.count())
                    .where(Delivery.send_id == send_id)
                    .group_by(Delivery.state)
                )
                return {str(state): n for state, n in rows}

        fast_median, fast_worst, fast = timed(args.runs, counters)
        slow_median, slow_worst, slow = timed(max(3, args.runs // 10), count_rows)
        assert fast == {str(k): v for k, v in slow.items()}, (fast, slow)  # type: ignore[union-attr]
        print(f"counts: {fast}")
        print(
            f"send status (trigger-kept counters): median {fast_median:7.2f} ms, "
            f"worst {fast_worst:7.2f} ms  (target < 50 ms)"
        )
        print(
            f"baseline COUNT(*) GROUP BY state:    median {slow_median:7.2f} ms, "
            f"worst {slow_worst:7.2f} ms"
        )
        print(
            f"ratio: counters are {slow_median / fast_median:,.0f}x faster; "
            f"{'PASS' if fast_median < 50 else 'FAIL'}"
        )


if __name__ == "__main__":
    main()
