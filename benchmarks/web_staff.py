"""The staff API and dashboard at a million rows on PostgreSQL: a send's status, a page of its
recipients by state, a subscriber search by address prefix; a send's page with its pictures, its
live parts, its printable report, its recipients, and the overview; each through HTTP (target
p95 < 100 ms, of the client's time for the API, of the server's own time for the pages).

    python benchmarks/web_staff.py [--rows 1000000] [--requests 200]
        [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

A throw-away database gets 1,000,000 subscribers and a tracked send with 1,000,000 deliveries
at seven receiving domains, answered over five hours (INSERT … SELECT generate_series), with
200,000 opens and 20,000 clicks on 20 links; a second issue has a draft send to the same list.
The readers differ as an office's do: some unsubscribed or bounced, some off the list, some
reading the digest, some WeChat only; a quarter are also on a second list, a seventh tagged.
The pages that count a send's audience (the create form's live count for one list, two lists, a
list and a tag, and for the issue going out already, its confirmation, a draft's cancel
confirmation, the readers left out of the draft and of the running send) are asked for fewer
times (``--requests`` / 40, at least 5): the first load is reported apart (where counts are kept,
:mod:`distributor.snapshot_counts`, it is the one that counts), p50 and p95 are of the others.
A count that does not fit in the page's budget (``COUNT_BUDGET_SECONDS``,
:mod:`distributor.count_budget`) is finished after the page: the first load then answers at once
that it is counting (202, or a page saying 正在计算…), and what a person waits for is the time
until the figure is there, reported beside it: the first load's URL for the count
(``/staff/counting/…``) asked every 0.1 s until it is made, then the page asked again, as
``staff.js`` does (it asks every half second), naming the count it waited for. Last, the
count for the issue going out is asked three times while the send goes out (a batch of its
deliveries written every 0.1 s, as its answers are recorded): each time it is counted anew.
Run it from another
checkout (``PYTHONPATH=/tmp/base python benchmarks/web_staff.py`` in ``/tmp/base``, from
``git archive main | tar -x -C /tmp/base``) for a baseline of the same pages there.
`distributor web` serves it in its own process; each
request is timed at the client, over a kept-alive connection, and by the server
(its ``Server-Timing`` header). Pages are asked for at random depths (a cursor for a random
position) and searches for random prefixes. The baseline, timed in the same run directly on the
database, is the same question asked the usual way: COUNT(*) for the status and for a page's
total, OFFSET for a page's depth, GROUP BY over the deliveries for the pictures.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from sqlalchemy import create_engine, text

from distributor.db import dispose_engines, get_engine, transaction, upgrade
from distributor.devservers.ports import free_port
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.devservers.processes import stop_process
from distributor.staff.accounts import add_user
from distributor.staff.models import Role, StaffUser
from distributor.staff.sessions import start_session
from distributor.staff.tokens import issue_token
from distributor.web.api.pagination import Cursors
from distributor.web.staff_auth import SESSION_COOKIE

SECRET = "benchmark-secret-key-not-for-production-0123456789"
PAGE = 50
DOMAINS = (
    "ARRAY['qq.com', '163.com', '126.com', 'sina.com', '139.com', 'foxmail.com', 'example.org']"
)


def fill(url: str, n: int) -> int:
    """``n`` subscribers on one list and a running send with a delivery to each of them."""
    start = time.perf_counter()
    with transaction(url) as session:
        for statement in (
            "INSERT INTO newsletters (id, title, created_at) VALUES (1, '杭州工运', now())",
            "INSERT INTO issues (id, newsletter_id, number, issue_date, masthead, source_format,"
            " imported_at) VALUES (1, 1, 1, '2022-12-27', '{}', 'json', now())",
            "INSERT INTO lists (id, name, description, public, created_at)"
            " VALUES (1, '会员', '', false, now())",
            "INSERT INTO subscribers (id, email, email_key, name, locale, attributes, status,"
            " channel, format, created_at, updated_at)"
            f" SELECT g, 'Reader' || g || '@' || ({DOMAINS})[1 + g % 7],"
            f" 'reader' || g || '@' || ({DOMAINS})[1 + g % 7],"
            " '读者' || g, 'zh-CN', '{}',"
            " CASE WHEN g % 20 = 0 THEN 'unsubscribed' WHEN g % 50 = 1 THEN 'bounced'"
            " ELSE 'active' END,"
            " CASE WHEN g % 40 = 3 THEN 'wechat' ELSE 'email' END,"
            " CASE WHEN g % 3 = 0 THEN 'digest' ELSE 'full' END, now(), now()"
            " FROM generate_series(1, :n) AS g",
            "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
            " SELECT g, 1, CASE WHEN g % 25 = 2 THEN 'unsubscribed' ELSE 'active' END, now(),"
            " now() FROM generate_series(1, :n) AS g",
            "INSERT INTO lists (id, name, description, public, created_at)"
            " VALUES (2, '青年', '', false, now())",
            "INSERT INTO subscriptions (subscriber_id, list_id, status, created_at, updated_at)"
            " SELECT g, 2, 'active', now(), now() FROM generate_series(4, :n, 4) AS g",
            "INSERT INTO tags (id, name) VALUES (1, '工会')",
            "INSERT INTO subscriber_tags (subscriber_id, tag_id)"
            " SELECT g, 1 FROM generate_series(7, :n, 7) AS g",
            "INSERT INTO issues (id, newsletter_id, number, issue_date, masthead, source_format,"
            " imported_at) VALUES (2, 1, 2, '2023-01-03', '{}', 'json', now())",
            "INSERT INTO sends (id, issue_id, audience, variant, channel, state, is_test,"
            " planned_through, created_at, updated_at, tracking) VALUES (2, 2,"
            " '{\"lists\": [\"会员\"]}', NULL, 'email', 'draft', false, 0, now(), now(), false)",
            "INSERT INTO sends (id, issue_id, audience, variant, channel, state, is_test,"
            " planned_through, created_at, updated_at, started_at, scheduled_at, tracking)"
            " VALUES (1, 1, '{\"lists\": [\"会员\"]}', 'full', 'email', 'running', false, 0,"
            " now(), now(), now() - interval '5 hours', now(), true)",
        ):
            session.execute(text(statement), {"n": n})
    with transaction(url) as session:  # one statement: the insert trigger counts it in one go
        session.execute(
            text(
                "INSERT INTO deliveries (send_id, subscriber_id, channel, address, variant, state,"
                " attempts, reclaims, possible_duplicate, created_at, updated_at)"
                f" SELECT 1, g, 'email', 'Reader' || g || '@' || ({DOMAINS})[1 + g % 7], 'full',"
                " 'pending',"
                " 0, 0, false, now(), now() FROM generate_series(1, :n) AS g"
            ),
            {"n": n},
        )
    with transaction(url) as session:  # under way: most sent, 1 % failed, some deferred
        session.execute(
            text(
                "UPDATE deliveries SET state = CASE WHEN id % 100 = 0 THEN 'failed'"
                " WHEN id % 50 = 1 THEN 'deferred' ELSE 'sent' END,"
                " smtp_code = CASE WHEN id % 100 = 0 THEN 550 ELSE 250 END,"
                " failure_cause = CASE WHEN id % 300 = 0 THEN 'address_gone'"
                " WHEN id % 100 = 0 THEN 'blocked' END,"
                " not_before = CASE WHEN id % 50 = 1 THEN now() + interval '10 minutes' END,"
                " updated_at = now() - interval '5 hours' + (id % 300) * interval '1 minute'"
                " WHERE send_id = 1 AND id % 10 <> 9"
            )
        )
    with transaction(url) as session:  # a fifth opened, one in fifty clicked a link
        session.execute(
            text(
                "INSERT INTO engagement_events (send_id, subscriber_id, kind, url, at, machine)"
                " SELECT 1, g * 5, 'open', NULL,"
                " now() - interval '5 hours' + (g % 600) * interval '30 seconds', false"
                " FROM generate_series(1, :n / 5) AS g"
                " UNION ALL SELECT 1, g * 50, 'click', 'https://hzgh.example.org/a' || g % 20,"
                " now() - interval '5 hours' + (g % 600) * interval '30 seconds', false"
                " FROM generate_series(1, :n / 50) AS g"
            ),
            {"n": n},
        )
    # As autovacuum leaves a table soon after a bulk load: statistics and the visibility map.
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        for table in (
            "subscribers", "subscriptions", "subscriber_tags", "deliveries", "engagement_events"
        ):
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    print(f"filled {n:,} subscribers and {n:,} deliveries in {time.perf_counter() - start:.0f} s")
    return 1


def editor_token(url: str) -> tuple[str, str]:
    """An editor's API token, and a dashboard session of theirs (the cookie's value)."""
    with transaction(url) as session:
        add_user(session, "bench", Role.EDITOR, None)
        _, token = issue_token(session, "bench")
        user = session.query(StaffUser).filter_by(name="bench").one()
        return token, start_session(session, user)


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def measure(requests: int, ask: Callable[[int], object]) -> list[float]:
    samples = []
    for i in range(requests):
        start = time.perf_counter()
        ask(i)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def report(name: str, samples: list[float], naive: list[float]) -> bool:
    ok = p95(samples) < 100
    print(
        f"{name:<42} API p50 {statistics.median(samples):6.1f} ms  p95 {p95(samples):6.1f} ms"
        f"  {'PASS' if ok else 'FAIL'}   naive (COUNT/OFFSET, SQL only) p50 "
        f"{statistics.median(naive):7.1f} ms  p95 {p95(naive):7.1f} ms"
    )
    return ok


def server_ms(response: httpx.Response) -> float:
    """The server's own time for a response (``Server-Timing: app;dur=<ms>``)."""
    response.raise_for_status()
    return float(response.headers["server-timing"].partition("dur=")[2])


def report_page(
    name: str, client: list[float], server: list[float], naive: list[float] | None = None
) -> bool:
    ok = p95(server) < 100
    baseline = (
        f"   naive (GROUP BY deliveries, SQL only) p50 {statistics.median(naive):7.1f} ms"
        f"  p95 {p95(naive):7.1f} ms"
        if naive
        else ""
    )
    print(
        f"{name:<42} server p50 {statistics.median(server):6.1f} ms  p95 {p95(server):6.1f} ms"
        f"  {'PASS' if ok else 'FAIL'}   client p50 {statistics.median(client):6.1f} ms"
        f"  p95 {p95(client):6.1f} ms{baseline}"
    )
    return ok


def measure_page(
    requests: int, client: httpx.Client, path: str, data: dict[str, str] | None = None
) -> tuple[list[float], list[float]]:
    """Client and server times of ``requests`` loads of one dashboard page (posting ``data``:
    a form's answer)."""
    times, server = [], []
    for _ in range(requests):
        start = time.perf_counter()
        response = client.get(path) if data is None else client.post(path, data=data)
        times.append((time.perf_counter() - start) * 1000)
        server.append(server_ms(response))
    return times, server


@contextmanager
def serving(url: str, port: int) -> Iterator[None]:
    """`distributor web` on ``port`` while the block runs; stopped however the block ends."""
    env = {**os.environ, "DATABASE_URL": url, "DISTRIBUTOR_SECRET_KEY": SECRET}
    server = subprocess.Popen(
        [sys.executable, "-m", "distributor", "web", "--port", str(port)], env=env
    )
    try:
        wait_for_health(port)
        yield
    finally:
        stop_process(server)


def wait_for_health(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("distributor web did not start")


def naive(
    url: str, requests: int, sql: str, params: Callable[[int], dict[str, object]]
) -> list[float]:
    with transaction(url) as session:
        samples = []
        for i in range(requests):
            start = time.perf_counter()
            for statement in sql.split(";"):
                session.execute(text(statement), params(i)).all()
            samples.append((time.perf_counter() - start) * 1000)
    return samples


CSRF = re.compile(r'name="csrf" value="([^"]+)"')
DRAFT = 2  # the draft send of the second issue, to the same list


COUNTING = re.compile(r'data-counting="([^"]+)"')


def counting_url(response: httpx.Response) -> str | None:
    """Where a first load says its figure is being counted (None: it has its figures)."""
    response.raise_for_status()
    if response.status_code == 202:
        return str(response.json()["counting"])
    match = COUNTING.search(response.text) if "html" in response.headers["content-type"] else None
    return match.group(1) if match else None


def first_load(
    browser: httpx.Client, path: str, data: dict[str, str] | None
) -> tuple[float, str]:
    """A first load's server time, and whether it was answered pending and how long until its
    figure was there (the page asked again, as staff.js does, naming the count it waited for,
    until it had it)."""

    def ask(path: str) -> httpx.Response:
        return browser.get(path) if data is None else browser.post(path, data=data)

    start = time.perf_counter()
    response = ask(path)
    first = server_ms(response)
    waiting, loads = counting_url(response), 1
    if waiting is None:
        return first, "with its figures"
    while waiting is not None:
        while browser.get(waiting).status_code == 202:
            time.sleep(0.1)
        path += f"{'&' if '?' in path else '?'}counted={waiting.rpartition('/')[2]}"
        response = ask(path)
        waiting, loads = counting_url(response), loads + 1
    took = time.perf_counter() - start
    return first, f"pending; figures after {took:.2f} s ({loads} loads)"


@contextmanager
def answers_coming(url: str, send_id: int) -> Iterator[None]:
    """The send going out meanwhile: every 0.1 s a batch of its deliveries is written, as the
    dispatchers record their answers (each changes what "already got this issue" reads)."""
    stop = threading.Event()

    def answer() -> None:
        engine = create_engine(url)
        offset = 0
        while not stop.is_set():
            with engine.begin() as connection:
                connection.execute(
                    text(
                        "UPDATE deliveries SET state = state, updated_at = now() WHERE id IN"
                        " (SELECT id FROM deliveries WHERE send_id = :s ORDER BY id"
                        " OFFSET :o LIMIT 250)"
                    ),
                    {"s": send_id, "o": offset},
                )
            offset += 250
            stop.wait(0.1)
        engine.dispose()

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def audience_pages(
    browser: httpx.Client, requests: int, send_id: int, url: str
) -> bool:
    """The pages that count a send's audience: the create form's live count (for an issue
    nobody sent yet, and for the one going out: then who got it already is counted too), the
    confirmation of a new send and of cancelling the draft, and the readers left out."""
    form = browser.get("/staff/sends/new")
    form.raise_for_status()
    match = CSRF.search(form.text)
    assert match, "the form has no CSRF field"
    confirm = {"issue": "2", "lists": "会员", "action": "schedule", "csrf": match.group(1)}
    times = max(5, requests // 40)
    ok = True
    for name, path, data in (
        ("dashboard: the form's audience count", "/staff/audience-count?lists=会员&issue=2",
         None),
        ("dashboard: …, two lists", "/staff/audience-count?lists=会员&lists=青年&issue=2", None),
        ("dashboard: …, a list and a tag", "/staff/audience-count?lists=会员&tags=工会&issue=2",
         None),
        ("dashboard: …, the issue going out already", "/staff/audience-count?lists=会员&issue=1",
         None),
        ("dashboard: a new send's confirmation", "/staff/sends/new", confirm),
        ("dashboard: cancelling a draft, confirmed", f"/staff/sends/{DRAFT}/cancel",
         {"csrf": match.group(1)}),
        ("dashboard: a draft's left-out readers", f"/staff/sends/{DRAFT}/left-out", None),
        ("dashboard: a running send's left-out", f"/staff/sends/{send_id}/left-out", None),
    ):
        first, waited = first_load(browser, path, data)
        client, server = measure_page(times - 1, browser, path, data)
        print(f"{name:<42} first load: server {first:7.1f} ms, {waited}; then:")
        ok &= first < 100
        ok &= report_page("", client, server)
    with answers_coming(url, send_id):
        for _ in range(3):
            time.sleep(0.5)  # answers recorded since the last count
            first, waited = first_load(browser, "/staff/audience-count?lists=会员&issue=1", None)
            name = "dashboard: …, already, while it goes out"
            print(f"{name:<42} a load:     server {first:7.1f} ms, {waited}")
            ok &= first < 100
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--admin-url", default=DEFAULT_ADMIN_URL)
    args = parser.parse_args()
    # A SIGTERM (a timeout, an impatient colleague) still stops the server and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    n, requests = args.rows, args.requests
    rng = random.Random(471)
    with throwaway_database(args.admin_url, "distributor_web_staff_bench") as url:
        print("load average at the start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        upgrade(url)
        send_id = fill(url, n)
        token, session_id = editor_token(url)
        dispose_engines()
        port = free_port()
        cursors = Cursors(SECRET)
        depths = [rng.randrange(0, n) for _ in range(requests)]
        prefixes = [f"reader{rng.randrange(1, 10_000)}" for _ in range(requests)]
        ok = True
        with (
            serving(url, port),
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}/api/v1",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as client,
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                cookies={SESSION_COOKIE: session_id},
                timeout=120,  # a count over a million readers, as before the kept counts
            ) as browser,
        ):
            for _ in range(10):  # warm up the connection and the server's pool
                client.get(f"/sends/{send_id}").raise_for_status()

            def status(_: int) -> None:
                client.get(f"/sends/{send_id}").raise_for_status()

            kind = f"deliveries:{send_id}:failed:"

            def failed_page(i: int) -> None:
                cursor = cursors.encode(kind, [depths[i]]) if depths[i] else None
                params: dict[str, str | int] = {
                    "state": "failed",
                    "limit": PAGE,
                    **({"cursor": cursor} if cursor else {}),
                }
                page = client.get(f"/sends/{send_id}/deliveries", params=params)
                page.raise_for_status()
                assert page.json()["items"] or depths[i] > n - 200

            def search(i: int) -> None:
                found = client.get("/subscribers", params={"email": prefixes[i], "limit": PAGE})
                found.raise_for_status()
                assert found.json()["items"], prefixes[i]

            ok &= report(
                "send status (1,000,000 deliveries)",
                measure(requests, status),
                naive(
                    url,
                    max(5, requests // 20),
                    "SELECT state, count(*) FROM deliveries WHERE send_id = :s GROUP BY state",
                    lambda i: {"s": send_id},
                ),
            )
            ok &= report(
                "failed deliveries, a page at a random depth",
                measure(requests, failed_page),
                naive(
                    url,
                    max(5, requests // 20),
                    "SELECT count(*) FROM deliveries WHERE send_id = :s AND state = 'failed';"
                    " SELECT * FROM deliveries WHERE send_id = :s AND state = 'failed'"
                    " ORDER BY id OFFSET :o LIMIT 50",
                    lambda i: {"s": send_id, "o": depths[i] // 100},
                ),
            )
            ok &= report(
                "subscribers by address prefix",
                measure(requests, search),
                naive(
                    url,
                    max(5, requests // 20),
                    "SELECT count(*) FROM subscribers WHERE lower(email) LIKE :p;"
                    " SELECT * FROM subscribers WHERE lower(email) LIKE :p ORDER BY id LIMIT 50",
                    lambda i: {"p": prefixes[i] + "%"},
                ),
            )
            for _ in range(5):  # warm up the dashboard's templates
                browser.get(f"/staff/sends/{send_id}").raise_for_status()
            pictures_sql = (
                "SELECT date_trunc('minute', updated_at), state, count(*) FROM deliveries"
                " WHERE send_id = :s AND state IN ('sent', 'deferred', 'failed') GROUP BY 1, 2;"
                " SELECT split_part(address, '@', -1), state, failure_cause, count(*)"
                " FROM deliveries WHERE send_id = :s GROUP BY 1, 2, 3"
            )
            for name, path, sql in (
                ("dashboard: a send's page, with its pictures", f"/staff/sends/{send_id}",
                 pictures_sql),
                ("dashboard: a send's live status", f"/staff/sends/{send_id}/status.json", None),
                ("dashboard: a send's pictures, refreshed", f"/staff/sends/{send_id}/pictures",
                 pictures_sql),
                ("dashboard: a send's printable report", f"/staff/sends/{send_id}/report",
                 pictures_sql),
                ("dashboard: failed recipients", f"/staff/sends/{send_id}/recipients?state=failed",
                 None),
                ("dashboard: the overview", "/staff/", None),
            ):
                ok &= report_page(
                    name,
                    *measure_page(requests, browser, path),
                    naive(url, max(3, requests // 40), sql, lambda i: {"s": send_id})
                    if sql
                    else None,
                )
            ok &= audience_pages(browser, requests, send_id, url)
        print("PASS" if ok else "FAIL", "(a shared 2-core machine: figures vary run to run)")
        print("load average at the end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
