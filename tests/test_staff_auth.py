"""The FastAPI dependencies that say who is asking: a session cookie for pages, a bearer token
for the API, and the role a route needs."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient

from distributor.db import transaction
from distributor.staff.accounts import add_user
from distributor.staff.models import Role
from distributor.staff.sessions import start_session
from distributor.staff.tokens import issue_token
from distributor.web.app import create_app
from distributor.web.staff_auth import (
    SESSION_COOKIE,
    ApiEditorDep,
    ApiUserDep,
    EditorDep,
    StaffDep,
    safe_next,
)
from tests.support.web import web_settings

probe = APIRouter()


@probe.get("/staff/probe")
def page(user: StaffDep) -> dict[str, str]:
    return {"name": user.name}


@probe.post("/staff/probe")
def page_write(user: EditorDep) -> dict[str, str]:
    return {"name": user.name}


@probe.get("/api/probe")
def read(user: ApiUserDep) -> dict[str, str]:
    return {"name": user.name}


@probe.post("/api/probe")
def write(user: ApiEditorDep) -> dict[str, str]:
    return {"name": user.name}


@pytest.fixture
def client(sqlite_url: str) -> TestClient:
    app = create_app(web_settings(sqlite_url))
    app.include_router(probe)
    return TestClient(app, base_url="https://news.example.org", follow_redirects=False)


def _account(url: str, name: str, role: Role) -> tuple[str, str]:
    """A session id and an API token for a new account."""
    with transaction(url) as session:
        user = add_user(session, name, role, None)
        session_id = start_session(session, user)
        _, token = issue_token(session, name)
    return session_id, token


def test_the_api_wants_a_live_token_and_a_role_that_may_write(
    sqlite_url: str, client: TestClient
) -> None:
    _, viewer = _account(sqlite_url, "viewer", Role.VIEWER)
    _, editor = _account(sqlite_url, "editor", Role.EDITOR)
    assert client.get("/api/probe").status_code == 401
    assert client.get("/api/probe", headers={"Authorization": "Bearer dst_nope"}).status_code == 401
    assert client.get("/api/probe", headers={"Authorization": f"Basic {viewer}"}).status_code == 401
    as_viewer = {"Authorization": f"Bearer {viewer}"}
    assert client.get("/api/probe", headers=as_viewer).json() == {"name": "viewer"}
    assert client.post("/api/probe", headers=as_viewer).status_code == 403
    as_editor = {"Authorization": f"bearer {editor}"}
    assert client.post("/api/probe", headers=as_editor).json() == {"name": "editor"}


def test_a_page_without_a_session_redirects_to_the_login_and_back(
    sqlite_url: str, client: TestClient
) -> None:
    answer = client.get("/staff/probe?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/staff/login?next=%2Fstaff%2Fprobe%3Fx%3D1"
    client.cookies.set(SESSION_COOKIE, "forged")
    assert client.get("/staff/probe").status_code == 303
    viewer, _ = _account(sqlite_url, "viewer", Role.VIEWER)
    client.cookies.set(SESSION_COOKIE, viewer)
    assert client.get("/staff/probe").json() == {"name": "viewer"}
    assert client.post("/staff/probe").status_code == 403


@pytest.mark.parametrize(
    "asked",
    [
        None,
        "",
        "https://evil.example/staff/",
        "//evil.example/staff/",
        "/\\evil.example",
        "/archive/",
        "javascript:alert(1)",
        "/staff/\r\nSet-Cookie: x=1",
        "\\\\evil.example",
    ],
)
def test_next_never_leaves_the_staff_pages(asked: str | None) -> None:
    assert safe_next(asked) == "/staff/"


def test_next_keeps_a_staff_page_with_its_query() -> None:
    assert safe_next("/staff/sends/3?state=failed") == "/staff/sends/3?state=failed"
