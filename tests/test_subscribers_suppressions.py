"""Suppressions by cause: listed with their evidence, and lifted in bulk for one cause, domain and
time window, from the command line and the API; every lifting logged, nobody else touched."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from distributor.cli import main
from distributor.db import transaction, utcnow
from distributor.vocabulary import FailureCause
from subscribers.models import Subscriber, SubscriberEvent, SubscriberStatus
from subscribers.store import Suppression, suppress_all
from tests.support.api import Api, api_client
from tests.support.audience import make_audience
from tests.support.web import web_settings

BLOCKED, GONE = FailureCause.BLOCKED, FailureCause.ADDRESS_GONE


@pytest.fixture
def suppressed(database_url: str) -> dict[str, list[str]]:
    """At qq.com: 3 suppressed for a blocklist today, 1 two days ago, 2 whose address is gone;
    at 163.com: 2 for a blocklist today; and one reader at qq.com left active."""
    groups = {
        "qq_blocked": make_audience(database_url, "m", 3, domain="qq.com", prefix="b"),
        "qq_blocked_old": make_audience(database_url, "m", 1, domain="qq.com", prefix="old"),
        "qq_gone": make_audience(database_url, "m", 2, domain="qq.com", prefix="gone"),
        "netease_blocked": make_audience(database_url, "m", 2, domain="163.com", prefix="n"),
        "active": make_audience(database_url, "m", 1, domain="qq.com", prefix="active"),
    }
    causes = {"qq_gone": GONE}
    with transaction(database_url) as session:
        ids = {s.email: s.id for s in session.scalars(select(Subscriber))}
        suppress_all(
            session,
            [
                Suppression(
                    ids[email], SubscriberStatus.BOUNCED, address=email, reason="bounced",
                    source="bounce", cause=causes.get(group, BLOCKED),
                    evidence="550 5.7.1 blocked using zen.spamhaus.org", send_id=None,
                )
                for group, emails in groups.items() if group != "active"
                for email in emails
            ],
        )  # fmt: skip
        old = [ids[email] for email in groups["qq_blocked_old"]]
        session.execute(
            update(SubscriberEvent)
            .where(SubscriberEvent.subscriber_id.in_(old))
            .values(at=utcnow() - timedelta(days=2))
        )
    return groups


def statuses(url: str) -> dict[str, SubscriberStatus]:
    with transaction(url) as session:
        return {s.email: s.status for s in session.scalars(select(Subscriber))}


def run(url: str, *args: str) -> Result:
    env = {"DATABASE_URL": url, "DISTRIBUTOR_TIMEZONE": "UTC"}
    return CliRunner().invoke(main, ["subscribers", *args], env=env)


def test_suppressions_are_listed_and_lifted_by_cause_domain_and_time_from_the_cli(
    database_url: str, suppressed: dict[str, list[str]]
) -> None:
    listed = run(database_url, "suppressions", "--cause", "blocked", "--domain", "qq.com",
                 "--json")  # fmt: skip
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert sorted(row["email"] for row in rows) == sorted(
        suppressed["qq_blocked"] + suppressed["qq_blocked_old"]
    )
    assert {(row["cause"], row["evidence"]) for row in rows} == {
        ("blocked", "550 5.7.1 blocked using zen.spamhaus.org")
    }
    since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    window = ("--cause", "blocked", "--domain", "QQ.com", "--since", since)
    before = statuses(database_url)
    dry = run(database_url, "unsuppress", *window, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert dry.output.startswith("3 readers would be made active again (dry run")
    assert statuses(database_url) == before

    lifted = run(database_url, "unsuppress", *window)
    assert lifted.exit_code == 0, lifted.output
    assert lifted.output.startswith("3 readers are active again")
    after = statuses(database_url)
    assert {e for e, s in after.items() if s != before[e]} == set(suppressed["qq_blocked"])
    assert all(after[e] is SubscriberStatus.ACTIVE for e in suppressed["qq_blocked"])
    with transaction(database_url) as session:
        reasons = session.scalars(
            select(SubscriberEvent.reason).where(
                SubscriberEvent.new_status == SubscriberStatus.ACTIVE
            )
        ).all()
    assert reasons == [f"lifted in bulk: cause blocked, domain QQ.com, since {since}"] * 3
    assert run(database_url, "unsuppress", *window, "--dry-run").output.startswith("0 readers")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("unsuppress",), "name an EMAIL, or the suppressions to lift"),
        (("unsuppress", "a@qq.com", "--cause", "blocked"), "not both"),
        (("unsuppress", "--domain", "qq com"), "'qq com' is not a domain name"),
        (("unsuppress", "--since", "2026-12-05"), "--since '2026-12-05' is a date without a time"),
        (("unsuppress", "--since", "2026-12-05T10:00", "--until", "2026-12-05T09:00"),
         "the window is empty"),
        (("suppressions", "--until", "soon"), "--until 'soon' is not a date and time"),
    ],
)  # fmt: skip
def test_bad_input_is_one_clear_error_and_changes_nothing(
    sqlite_url: str, args: tuple[str, ...], words: str
) -> None:
    result = run(sqlite_url, *args)
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and words in result.output, result.output


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with api_client(web_settings(database_url)) as api:
        yield api


def test_suppressions_are_listed_and_lifted_through_the_api(
    api: Api, suppressed: dict[str, list[str]]
) -> None:
    client, url = api.client, api.settings.database_url
    pages, cursor = [], None
    while True:
        answer = client.get(
            "/api/v1/subscribers/suppressions",
            params={"cause": "blocked", "limit": 2, **({"cursor": cursor} if cursor else {})},
            headers=api.viewer,
        )
        assert answer.status_code == 200, answer.text
        pages.append([item["email"] for item in answer.json()["items"]])
        if (cursor := answer.json()["next_cursor"]) is None:
            break
    blocked = suppressed["qq_blocked"] + suppressed["qq_blocked_old"] + suppressed[
        "netease_blocked"]  # fmt: skip
    assert sorted(e for page in pages for e in page) == sorted(blocked)
    assert all(len(page) <= 2 for page in pages)

    body = {"cause": "blocked", "domain": "163.com"}
    forbidden = client.post("/api/v1/subscribers/suppressions/lift", json=body,
                            headers=api.viewer)  # fmt: skip
    assert forbidden.status_code == 403
    dry = client.post("/api/v1/subscribers/suppressions/lift", json=body | {"dry_run": True},
                      headers=api.editor)  # fmt: skip
    assert dry.json() == {"count": 2, "dry_run": True}
    before = statuses(url)
    done = client.post("/api/v1/subscribers/suppressions/lift", json=body, headers=api.editor)
    assert done.json() == {"count": 2, "dry_run": False}
    after = statuses(url)
    assert {e for e, s in after.items() if s != before[e]} == set(suppressed["netease_blocked"])
    empty = client.post("/api/v1/subscribers/suppressions/lift", json={}, headers=api.editor)
    assert empty.status_code == 422 and "name the suppressions" in empty.text
    bad = client.get("/api/v1/subscribers/suppressions", params={"domain": "x"},
                     headers=api.viewer)  # fmt: skip
    assert bad.status_code == 422 and "not a domain name" in bad.text
