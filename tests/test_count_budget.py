"""Counts too long for a staff page (distributor.count_budget), on PostgreSQL: the page answers
at once that the figure is being counted, the count is finished in the background (once, however
many ask for it) and kept, and the figure the page then shows is the plain count's. A count is
made slow here by holding a lock on a table it reads, from the test; a budget of 0 defers every
count that is not kept. A confirmation whose figures are pending cannot be confirmed."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from distributor.campaigns.left_out import left_out
from distributor.campaigns.schedule import audience_reach, create_send
from distributor.count_budget import give_budget, within_budget
from distributor.db import transaction, utcnow
from distributor.staff.models import StaffUser
from distributor.staff.sessions import start_session
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from distributor.web.staff_auth import SESSION_COOKIE
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.counting import (
    AUDIENCE,
    LIST,
    OTHER,
    PENDING_TEXT,
    TAG,
    ZONE,
    forget_kept,
    plain_readers,
    slow_counts,
    tagged_audience,
)
from tests.support.polling import wait_until
from tests.support.sending import import_sample
from tests.support.staff import sign_in
from tests.support.web import BASE_URL, csrf_of, serving, web_settings


@pytest.fixture
def issue_id(postgres_url: str, sample_issue_path: Path) -> int:
    return tagged_audience(postgres_url, sample_issue_path)


COUNTING = re.compile(r'data-counting="([^"]+)"')


def counts_under_way(url: str) -> int:
    """Backends running a count over readers now (the tests' own statements aside)."""
    with transaction(url) as session:
        return int(
            session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                    " AND datname = current_database()"
                    " AND query LIKE 'SELECT count(subscribers.id)%'"
                )
            )
            or 0
        )


@contextmanager
def editor_client(postgres_url: str, *, budget: str) -> Iterator[httpx.Client]:
    """The editor's browser, signed in, on a server whose pages count within ``budget``."""
    with transaction(postgres_url) as session:
        user = session.scalars(select(StaffUser).where(StaffUser.name == "editor")).one()
        cookie = start_session(session, user)
    settings = web_settings(postgres_url, COUNT_BUDGET_SECONDS=budget)
    with (
        serving(create_app(settings, limiter=MemoryRateLimiter())) as base,
        httpx.Client(base_url=base, cookies={SESSION_COOKIE: cookie}, timeout=30) as client,
    ):
        yield client


def server_ms(answer: httpx.Response) -> float:
    return float(answer.headers["server-timing"].partition("dur=")[2])


def test_a_count_too_long_answers_pending_then_the_plain_figure_once_counted(
    postgres_url: str, issue_id: int
) -> None:
    """Ten loads of the form's count while it is slow: each answers 202 within its budget (and
    its Server-Timing says so), one count is made in the background, and once the lock goes
    the endpoint answers the plain count, kept."""
    expected = plain_readers(postgres_url, issue_id, AUDIENCE)
    assert expected == 14
    forget_kept(postgres_url)
    path = f"/staff/audience-count?lists={LIST}&tags={TAG}&issue={issue_id}"
    # A budget well above a loaded machine's page time, so "no new try" (below) is plain to see.
    with editor_client(postgres_url, budget="1.0") as client:
        with slow_counts(postgres_url), ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(lambda _: client.get(path), range(10)))
            assert {a.status_code for a in answers} == {202}
            assert {a.json()["pending"] for a in answers} == {True}
            assert len({a.json()["counting"] for a in answers}) == 1
            # The count never ends while the lock is held: any answer is the budget's.
            assert max(server_ms(a) for a in answers) < 5000
            wait_until(lambda: counts_under_way(postgres_url), lambda n: n == 1, timeout=10,
                       what="one count in the background")
            time.sleep(0.3)  # nobody starts a second one meanwhile
            assert counts_under_way(postgres_url) == 1
            again = client.get(path)
            # No new try either: one would take the whole budget (1 s).
            assert again.status_code == 202 and server_ms(again) < 500
            status = client.get(answers[0].json()["counting"])
            assert status.status_code == 202 and status.json() == {"pending": True}
        status_url = answers[0].json()["counting"]
        wait_until(lambda: client.get(status_url).json(), lambda d: d == {"pending": False},
                   timeout=30, what="the count made")
        counted = client.get(path)
        assert counted.status_code == 200
        assert counted.json()["count"] == expected
    with transaction(postgres_url) as session:
        assert session.scalar(text("SELECT count(*) FROM kept_counts")) == 1


def test_a_count_within_its_budget_is_made_inline_and_leaves_the_timeout_as_it_was(
    postgres_url: str,
) -> None:
    with transaction(postgres_url) as session:
        before = session.scalar(text("SHOW statement_timeout"))
        assert within_budget(session, 5, lambda: session.scalar(text("SELECT 7"))) == 7
        assert session.scalar(text("SHOW statement_timeout")) == before
        slow = within_budget(session, 0.05, lambda: session.execute(text("SELECT pg_sleep(2)")))
        assert slow is None
        assert session.scalar(text("SHOW statement_timeout")) == before
        assert session.scalar(text("SELECT 1")) == 1  # the transaction goes on
        assert within_budget(session, 0, lambda: 1) is None  # 0: nothing is tried


def test_a_budget_changes_nothing_on_sqlite(sqlite_url: str, sample_issue_path: Path) -> None:
    make_audience(sqlite_url, LIST, 5)
    issue = import_sample(sqlite_url, sample_issue_path)
    with transaction(sqlite_url) as session:
        give_budget(session, 0)
        assert audience_reach(
            session, issue_id=issue, audience=Audience(lists=(LIST, OTHER)), variant=None
        ).readers == 5


def until_counted(client: TestClient, ask: Any, tries: int = 5) -> Any:
    """``ask()`` again each time the count its page waits for is made (as staff.js asks its
    ``data-counting`` URL), until the page shows no pending figure."""
    for _ in range(tries):
        answer = ask()
        waiting = COUNTING.search(answer.text)
        if waiting is None:
            return answer
        assert PENDING_TEXT in answer.text
        url = waiting.group(1)
        wait_until(lambda: client.get(url), lambda r: r.status_code == 200,  # noqa: B023
                   timeout=30, what="the count made")
    raise AssertionError("still counting")


@pytest.fixture
def pending_client(postgres_url: str) -> TestClient:
    """The dashboard with no time for a count: each one not kept is pending at first."""
    app = create_app(
        web_settings(postgres_url, COUNT_BUDGET_SECONDS="0"), limiter=MemoryRateLimiter()
    )
    client = TestClient(app, base_url=BASE_URL, follow_redirects=False)
    sign_in(client, "editor")
    return client


def test_pages_with_pending_figures_cannot_be_confirmed_and_then_show_the_plain_ones(
    postgres_url: str, issue_id: int, pending_client: TestClient
) -> None:
    """The new send's confirmation, a draft's scheduling and cancel confirmations and its
    left-out readers, at a budget of 0: each first says it is counting (a confirmation's button
    disabled, the same form ready to post again), then shows what a page without a budget
    shows."""
    client = pending_client
    expected = plain_readers(postgres_url, issue_id, AUDIENCE)
    with transaction(postgres_url) as session:
        draft = create_send(
            session, issue_id=issue_id, audience=AUDIENCE, variant=None, at=None, now=utcnow(),
            zone=ZONE, draft=True,
        ).id
        plain_left_out = left_out(session, draft)
    forget_kept(postgres_url)
    csrf = csrf_of(client.get("/staff/sends/new").text)
    fields = {"issue": str(issue_id), "lists": LIST, "tags": TAG, "action": "schedule",
              "csrf": csrf}
    asked = client.post("/staff/sends/new", data=fields)
    assert asked.status_code == 200 and PENDING_TEXT in asked.text
    assert re.search(r'id="confirm"[^>]* disabled', asked.text)
    assert 'id="recount"' in asked.text and 'data-recount="recount"' in asked.text
    confirmation = until_counted(client, lambda: client.post("/staff/sends/new", data=fields))
    assert f'id="confirm-readers">{expected}<' in confirmation.text
    assert not re.search(r'id="confirm"[^>]* disabled', confirmation.text)

    forget_kept(postgres_url)
    edit = {**fields, "at": "2099-01-02T10:00"}
    del edit["issue"]
    scheduling = client.post(f"/staff/sends/{draft}/edit", data=edit)
    assert scheduling.status_code == 200 and PENDING_TEXT in scheduling.text
    assert re.search(r'id="confirm"[^>]* disabled', scheduling.text)
    scheduling = until_counted(
        client, lambda: client.post(f"/staff/sends/{draft}/edit", data=edit)
    )
    assert f'id="confirm-readers">{expected}<' in scheduling.text

    forget_kept(postgres_url)
    cancel = client.post(f"/staff/sends/{draft}/cancel", data={"csrf": csrf})
    assert cancel.status_code == 200 and re.search(r'id="confirm"[^>]* disabled', cancel.text)
    cancelling = until_counted(
        client, lambda: client.post(f"/staff/sends/{draft}/cancel", data={"csrf": csrf})
    )
    assert f'id="confirm-readers">{expected}<' in cancelling.text

    forget_kept(postgres_url)
    first = client.get(f"/staff/sends/{draft}/left-out")
    assert first.status_code == 200 and PENDING_TEXT in first.text
    page = until_counted(client, lambda: client.get(f"/staff/sends/{draft}/left-out"))
    assert (
        f'<div data-reason="list_readers"><dt>列表中的读者</dt><dd>{plain_left_out.list_readers}<'
        in page.text
    ), page.text
    assert f"<dd>{plain_left_out.in_send}<" in page.text


def test_a_count_that_failed_in_the_background_is_made_inline_when_asked_again(
    postgres_url: str, issue_id: int, pending_client: TestClient
) -> None:
    """The page is not left counting for ever: its count's backend ended mid-count, the page
    is told the count is over, and asked again counts inline (an error would show there)."""
    client = pending_client
    expected = plain_readers(postgres_url, issue_id, AUDIENCE)
    forget_kept(postgres_url)
    path = f"/staff/audience-count?lists={LIST}&tags={TAG}&issue={issue_id}"
    with slow_counts(postgres_url):
        first = client.get(path)
        assert first.status_code == 202
        wait_until(lambda: counts_under_way(postgres_url), lambda n: n == 1, timeout=10,
                   what="the count in the background")
        with transaction(postgres_url) as session:
            session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database()"
                    " AND state = 'active' AND query LIKE 'SELECT count(subscribers.id)%'"
                )
            )
        wait_until(lambda: client.get(first.json()["counting"]), lambda r: r.status_code == 200,
                   timeout=10, what="the count given up")
    again = client.get(path)
    assert again.status_code == 200 and again.json()["count"] == expected


def test_a_page_that_waited_for_a_count_is_shown_it_though_its_readers_changed_since(
    postgres_url: str, issue_id: int
) -> None:
    """While a send of the issue goes out, every answer changes what the "already got this
    issue" count reads: a page asked again with ``counted`` (the key it waited for) is shown
    the count as made, where one asked afresh (or naming a count it did not wait for, or not
    a key at all) waits for a new one."""
    expected = plain_readers(postgres_url, issue_id, AUDIENCE)
    forget_kept(postgres_url)
    path = f"/staff/audience-count?lists={LIST}&tags={TAG}&issue={issue_id}"
    with editor_client(postgres_url, budget="0") as client:
        first = client.get(path)
        assert first.status_code == 202
        status_url = first.json()["counting"]
        key = status_url.rpartition("/")[2]
        wait_until(lambda: client.get(status_url).json(), lambda d: d == {"pending": False},
                   timeout=30, what="the count made")
        with transaction(postgres_url) as session:  # a reader's status written: a change
            session.execute(text("UPDATE subscribers SET status = status WHERE id = "
                                 "(SELECT min(id) FROM subscribers)"))
        with slow_counts(postgres_url):  # the new count cannot end while the page asks
            assert client.get(path).status_code == 202
            assert client.get(f"{path}&counted={'0' * 64}").status_code == 202
            assert client.get(f"{path}&counted=not-a-key").status_code == 202
            waited = client.get(f"{path}&counted={key}")
            assert waited.status_code == 200
            assert waited.json()["count"] == expected
