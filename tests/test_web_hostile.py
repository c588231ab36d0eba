"""Hostile values on every route: a NUL byte, overlong text, bad cursors, out-of-range choices and
file names are answered 4xx with a message, never a 500 (which also drops the connection), and
nothing they carry reaches the database. On PostgreSQL too: it refuses a NUL where SQLite stores
one, and checks the width of every column."""

from __future__ import annotations

import base64
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from distributor.db import transaction
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.links import PublicLinks
from subscribers.models import List, Subscriber
from subscribers.tokens import TokenSigner
from tests.support.api import api_token, bearer
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.staff import add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings

HOSTILE = [
    "\x00",
    "wang\x00@qq.com",
    "x" * 3000,
    "abc",
    "-1",
    "99999999999999999999999",
    "../../etc/passwd",
    "%",
    "'; drop table subscribers; --",
    "<script>alert(1)</script>",
    "²",
]
PARAMETERS = ("q", "email", "list", "tag", "after", "before", "state", "address", "lang",
              "next", "limit", "page", "variant", "issue", "format", "who")
STAFF_GETS = [
    "/staff/", "/staff/sends", "/staff/sends/new", "/staff/sends/1", "/staff/sends/1/recipients",
    "/staff/sends/1/status.json", "/staff/audience-count", "/staff/issues", "/staff/issues/1",
    "/staff/sends/1/left-out", "/staff/sends/1/edit",
    "/staff/subscribers", "/staff/subscribers/1", "/staff/lists", "/staff/schedules",
    "/staff/users", "/archive", "/archive/471", "/subscribe/1", "/staff/login",
]


@pytest.fixture
def site(database_url: str, sample_issue_path: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    import_sample(database_url, sample_issue_path)
    make_audience(database_url, "会员快讯", 3)
    add_staff(database_url, "boss", Role.ADMIN)
    token = bearer(api_token(database_url, "robot", Role.ADMIN))
    app = create_app(web_settings(database_url), enqueue_confirmation=lambda _: None,
                     limiter=MemoryRateLimiter())
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        sign_in(client, "boss")
        yield client, token


def api_gets(client: TestClient) -> list[str]:
    paths = client.get("/api/openapi.json").json()["paths"]
    return [re.sub(r"\{[a-z_]+\}", "1", path) for path, ops in paths.items() if "get" in ops]


def test_hostile_query_values_on_every_page_and_api_route(
    site: tuple[TestClient, dict[str, str]]
) -> None:
    client, token = site
    failures = []
    for path in STAFF_GETS + api_gets(client):
        for value in HOSTILE:
            answer = client.get(path, params={name: value for name in PARAMETERS},
                                headers=token if path.startswith("/api/") else {})
            if answer.status_code >= 500:
                failures.append((path, value[:20], answer.status_code))
    assert failures == []


def test_a_nul_anywhere_is_a_400_with_a_message(
    database_url: str, site: tuple[TestClient, dict[str, str]]
) -> None:
    client, token = site
    for answer in (
        client.get("/staff/subscribers", params={"q": "wang\x00"}),
        client.get("/api/v1/subscribers", params={"email": "\x00"}, headers=token),
        client.post("/api/v1/lists", json={"name": "会员\u0000快讯"}, headers=token),
    ):
        assert answer.status_code == 400, answer.text
        assert "NUL character" in answer.text
    form = client.post("/subscribe/1", data={"email": "li\x00@qq.com"})
    assert form.status_code == 400 and "<html" in form.text  # the reader's error page
    with transaction(database_url) as session:
        assert session.scalar(select(func.count()).select_from(List)) == 1
    # In JSON, "%00" is three characters of text, not a NUL: the list is made as named.
    percent = client.post("/api/v1/lists", json={"name": "涨幅100%00"}, headers=token)
    assert percent.status_code == 201, percent.text
    with transaction(database_url) as session:
        assert session.scalar(select(List.name).where(List.name == "涨幅100%00")) == "涨幅100%00"


def test_long_names_bad_cursors_and_choices_are_refused_or_kept_whole(
    database_url: str, site: tuple[TestClient, dict[str, str]]
) -> None:
    client, token = site
    long_name = "会员" * 45  # 90 characters: a list may have 100, an audit target 64
    made = client.post("/api/v1/lists", json={"name": long_name}, headers=token)
    assert made.status_code == 201, made.text
    assert client.get("/staff/subscribers?after=abc").status_code == 400
    assert client.get("/staff/subscribers?after=12").status_code == 200
    links = PublicLinks("", TokenSigner(SECRET))
    with transaction(database_url) as session:
        reader = session.scalars(select(Subscriber.id)).first()
    assert reader is not None
    link = links.unsubscribe(reader)
    csrf = client.app.state.web.csrf.for_link(link.rpartition("/")[2])  # the page's own token
    assert f'value="{csrf}"' in client.get(link).text
    for scope in ("99999999999999999999999", "²", "-1"):
        answer = client.post(link, data={"scope": scope, "csrf": csrf})
        assert answer.status_code == 400, (scope, answer.text)
    with transaction(database_url) as session:
        assert session.scalar(select(List.name).where(List.name == long_name)) == long_name
        assert session.get(Subscriber, reader).status.value == "active"


def import_file(client: TestClient, name: str, data: bytes) -> Response:
    """A CSV import through the dashboard's form, as a signed-in editor sends it."""
    form = client.get("/staff/subscribers")
    return client.post(
        "/staff/subscribers/import",
        files={"file": (name, data, "text/csv")},
        data={"csrf": csrf_of(form.text), "list_name": "会员快讯"},
    )


def test_an_upload_named_dot_dot_is_read_as_any_other(
    site: tuple[TestClient, dict[str, str]]
) -> None:
    answer = import_file(site[0], "..", "email,name\nzhao@126.com,赵\n".encode())
    assert answer.status_code in (200, 303), answer.text


def test_a_path_naming_another_host_is_never_linked_to(
    site: tuple[TestClient, dict[str, str]]
) -> None:
    client, _ = site
    page = client.get(f"{BASE_URL}//evil.example/x")  # the path itself begins with //
    assert page.status_code == 404
    links = re.findall(r'(?:href|action)="([^"]*)"', page.text)
    assert links and not [link for link in links if link.startswith("//")]
    assert any(link.startswith("/evil.example/x?lang=") for link in links)


def test_the_import_error_report_runs_no_formula_in_a_spreadsheet(
    site: tuple[TestClient, dict[str, str]]
) -> None:
    answer = import_file(site[0], "readers.csv", b'email,name\n=HYPERLINK("http://x"),x\n')
    match = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', answer.text)
    assert match, answer.text
    report = base64.b64decode(match.group(1)).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[1][2].startswith("'=HYPERLINK"), rows
    assert not any(cell.startswith(("=", "+", "@")) for row in rows for cell in row)


def test_a_405_names_every_method_of_the_path_and_booleans_are_booleans(
    site: tuple[TestClient, dict[str, str]]
) -> None:
    client, token = site
    for method, path, allowed in (
        ("PUT", "/api/v1/lists", "GET, POST"),
        ("DELETE", "/api/v1/users", "GET, POST"),
        ("PUT", "/api/v1/lists/会员快讯", "PATCH"),
    ):
        answer = client.request(method, path, headers=token)
        assert (answer.status_code, answer.headers["allow"]) == (405, allowed), path
    for public in (0, 1, "true", None):
        answer = client.patch("/api/v1/lists/会员快讯", json={"public": public}, headers=token)
        assert answer.status_code == 422, (public, answer.text)
    assert client.patch("/api/v1/lists/会员快讯", json={"public": True},
                        headers=token).status_code == 200
