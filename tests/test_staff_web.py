"""The staff dashboard through HTTP: signing in and out, the pages, their forms and the
security around them (sessions, CSRF, roles, escaping)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.db import transaction
from distributor.sending.models import Send
from distributor.staff.audit import audit_of
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from distributor.web.staff_auth import SESSION_COOKIE
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.staff import PASSWORD, add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings

STAFF_PAGES = [
    "/staff/",
    "/staff/sends",
    "/staff/sends/new",
    "/staff/sends/1",
    "/staff/sends/1/recipients",
    "/staff/sends/1/deliveries.csv",
    "/staff/sends/1/status.json",
    "/staff/audience-count",
]


@pytest.fixture
def client(sqlite_url: str) -> TestClient:
    app = create_app(web_settings(sqlite_url), limiter=MemoryRateLimiter())
    return TestClient(app, base_url=BASE_URL, follow_redirects=False)


@pytest.fixture
def issue_id(sqlite_url: str, sample_issue_path: Path) -> int:
    make_audience(sqlite_url, "会员快讯", 5)
    return import_sample(sqlite_url, sample_issue_path)


@pytest.mark.parametrize("path", STAFF_PAGES)
def test_every_staff_page_without_a_session_redirects_to_the_login(
    client: TestClient, path: str
) -> None:
    answer = client.get(path)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/staff/login?next=%2Fstaff%2F")


def test_signing_in_starts_a_new_session_with_a_safe_cookie(
    sqlite_url: str, client: TestClient
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    client.cookies.set(
        SESSION_COOKIE, "planted-by-an-attacker", domain="news.example.org", path="/staff"
    )
    form = client.get("/staff/login?next=https://evil.example/")
    assert 'name="next" value="/staff/"' in form.text
    answer = client.post(
        "/staff/login",
        data={
            "name": "editor",
            "password": PASSWORD,
            "next": "//evil.example/",
            "csrf": csrf_of(form.text),
        },
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    session_id = client.cookies.get(SESSION_COOKIE)
    assert session_id and session_id != "planted-by-an-attacker"
    home = client.get("/staff/")
    assert home.status_code == 200 and "editor" in home.text
    sign_in(client, "editor")
    assert client.cookies.get(SESSION_COOKIE) != session_id  # a new id at every login
    assert client.get("/staff/").status_code == 200


def test_a_wrong_password_is_refused_and_repeated_tries_are_slowed(
    sqlite_url: str, client: TestClient
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    csrf = csrf_of(client.get("/staff/login").text)
    codes = [
        client.post(
            "/staff/login", data={"name": "editor", "password": "wrong password", "csrf": csrf}
        ).status_code
        for _ in range(11)
    ]
    assert codes == [401] * 10 + [429]
    # The account is protected now, even with the right password.
    right = {"name": "editor", "password": PASSWORD, "csrf": csrf}
    assert client.post("/staff/login", data=right).status_code == 429


def test_a_form_without_its_csrf_token_is_refused(sqlite_url: str, client: TestClient) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    login = {"name": "editor", "password": PASSWORD}
    assert client.post("/staff/login", data=login).status_code == 403
    sign_in(client, "editor")
    assert client.post("/staff/logout").status_code == 403
    assert client.post("/staff/sends/new", data={"issue": "1"}).status_code == 403
    assert client.get("/staff/").status_code == 200  # still signed in


def test_signing_out_ends_the_session(sqlite_url: str, client: TestClient) -> None:
    add_staff(sqlite_url, "viewer", Role.VIEWER)
    sign_in(client, "viewer")
    session_id = client.cookies.get(SESSION_COOKIE)
    csrf = csrf_of(client.get("/staff/").text)
    assert client.post("/staff/logout", data={"csrf": csrf}).status_code == 303
    client.cookies.set(SESSION_COOKIE, session_id or "", domain="news.example.org", path="/staff")
    assert client.get("/staff/").status_code == 303


def test_an_editor_creates_a_send_and_acts_on_it_with_an_audit_trail(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    form = client.get(f"/staff/sends/new?issue={issue_id}")
    assert form.status_code == 200 and "会员快讯" in form.text
    count = client.get("/staff/audience-count", params={"lists": "会员快讯"})
    assert count.json() == {"count": 5}
    created = client.post(
        "/staff/sends/new",
        data={
            "issue": str(issue_id),
            "lists": "会员快讯",
            "variant": "full",
            "at": "2099-01-01T09:00",
            "action": "draft",
            "csrf": csrf_of(form.text),
        },
    )
    assert created.status_code == 303, created.text
    send_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/staff/sends/{send_id}")
    assert page.status_code == 200 and 'id="action-schedule"' in page.text
    status = client.get(f"/staff/sends/{send_id}/status.json").json()
    assert (status["state"], status["scheduled_local"]) == ("draft", "2099-01-01 09:00")
    scheduled = client.post(f"/staff/sends/{send_id}/schedule", data={"csrf": csrf_of(page.text)})
    assert scheduled.status_code == 303
    refused = client.post(f"/staff/sends/{send_id}/resume", data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 400 and "is scheduled" in refused.text
    with transaction(sqlite_url) as session:
        send = session.scalars(select(Send).where(Send.id == send_id)).one()
        assert send.state == "scheduled"
        actions = [(e.actor, e.action) for e in audit_of(session, "send", send_id)]
    assert actions == [("editor", "send.schedule"), ("editor", "send.create")]
    assert "send.schedule" in client.get(f"/staff/sends/{send_id}").text


def test_a_bad_send_form_shows_the_services_message(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/sends/new").text)
    answer = client.post(
        "/staff/sends/new",
        data={"issue": str(issue_id), "lists": "没有这个", "csrf": csrf, "lang": "en"},
    )
    assert answer.status_code == 400
    assert "there is no list named" in answer.text


def test_a_viewer_sees_no_write_buttons_and_may_not_post(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "viewer", Role.VIEWER)
    sign_in(client, "viewer")
    home = client.get("/staff/")
    assert home.status_code == 200 and "/staff/sends/new" not in home.text
    csrf = csrf_of(home.text)
    answer = client.post(
        "/staff/sends/new",
        data={"issue": str(issue_id), "lists": "会员快讯", "csrf": csrf},
    )
    assert answer.status_code == 403
    with transaction(sqlite_url) as session:
        assert session.scalars(select(Send)).all() == []
