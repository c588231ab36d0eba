"""Staff accounts managed by an admin in the dashboard (``/staff/users``) and the API
(``/api/v1/users``, ``/api/v1/tokens``): the same services as ``distributor users``, 403 for
every other role, CSRF on the forms, an audit entry per action, and never a system without an
active admin."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from distributor.db import transaction
from distributor.errors import StaffAccountConflict
from distributor.staff.accounts import disable_user, list_users
from distributor.staff.models import AuditEntry, Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.api import Api, api_client, api_token, bearer
from tests.support.staff import PASSWORD, add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings

TOKEN = re.compile(r'<code class="token" id="issued-token">(dst_[^<]+)</code>')
LAST_ADMIN = "is the last active admin: add another admin before disabling it"


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    app = create_app(web_settings(database_url), limiter=MemoryRateLimiter())
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield client


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with api_client(web_settings(database_url)) as api:
        yield api


def audit_trail(url: str) -> list[tuple[str, str, str | None]]:
    """The entries about accounts and tokens (not the logins)."""
    with transaction(url) as session:
        return [
            (entry.actor, entry.action, entry.target_id)
            for entry in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if entry.action.startswith(("user.", "token."))
        ]


def accounts(url: str) -> dict[str, tuple[Role, bool]]:
    with transaction(url) as session:
        return {user.name: (user.role, user.disabled) for user in list_users(session)}


def account_id(url: str, name: str) -> int:
    with transaction(url) as session:
        return next(user.id for user in list_users(session) if user.name == name)


def test_an_admin_adds_an_editor_issues_and_revokes_a_token_and_disables_them(
    database_url: str, client: TestClient
) -> None:
    add_staff(database_url, "boss", Role.ADMIN)
    sign_in(client, "boss")
    home = client.get("/staff/")
    assert 'href="/staff/users"' in home.text
    page = client.get("/staff/users")
    assert page.status_code == 200 and 'data-user="boss"' in page.text
    added = client.post(
        "/staff/users",
        data={"name": "li", "role": "editor", "password": PASSWORD, "csrf": csrf_of(page.text)},
    )
    assert added.status_code == 303, added.text
    assert accounts(database_url)["li"] == (Role.EDITOR, False)
    li = account_id(database_url, "li")

    shown = client.post(f"/staff/users/{li}/tokens", data={"csrf": csrf_of(page.text)})
    assert shown.status_code == 200
    match = TOKEN.search(shown.text)
    assert match, shown.text
    token = match.group(1)
    assert client.get("/api/v1/sends", headers=bearer(token)).status_code == 200
    again = client.get("/staff/users")
    assert token not in again.text  # shown once
    token_id = int(re.findall(r'action="/staff/tokens/(\d+)/revoke"', again.text)[0])

    revoked = client.post(f"/staff/tokens/{token_id}/revoke", data={"csrf": csrf_of(page.text)})
    assert revoked.status_code == 303
    assert client.get("/api/v1/sends", headers=bearer(token)).status_code == 401

    disabled = client.post(f"/staff/users/{li}/disable", data={"csrf": csrf_of(page.text)})
    assert disabled.status_code == 303
    assert accounts(database_url)["li"] == (Role.EDITOR, True)
    assert audit_trail(database_url) == [
        ("boss", "user.add", str(li)),
        ("boss", "token.issue", str(token_id)),
        ("boss", "token.revoke", str(token_id)),
        ("boss", "user.disable", str(li)),
    ]


@pytest.mark.parametrize("role", [Role.EDITOR, Role.VIEWER])
def test_editors_and_viewers_get_403_for_the_users_page_and_every_form(
    sqlite_url: str, role: Role
) -> None:
    app = create_app(web_settings(sqlite_url), limiter=MemoryRateLimiter())
    client = TestClient(app, base_url=BASE_URL, follow_redirects=False)
    add_staff(sqlite_url, "boss", Role.ADMIN)
    add_staff(sqlite_url, "someone", role)
    sign_in(client, "someone")
    home = client.get("/staff/")
    assert "/staff/users" not in home.text
    csrf = csrf_of(home.text)
    assert client.get("/staff/users").status_code == 403
    boss = account_id(sqlite_url, "boss")
    for path, data in [
        ("/staff/users", {"name": "mallory", "role": "admin", "password": PASSWORD}),
        (f"/staff/users/{boss}/disable", {}),
        (f"/staff/users/{boss}/tokens", {}),
        ("/staff/tokens/1/revoke", {}),
    ]:
        answer = client.post(path, data={**data, "csrf": csrf})
        assert answer.status_code == 403, (path, answer.text)
        assert "dst_" not in answer.text
    assert accounts(sqlite_url) == {"boss": (Role.ADMIN, False), "someone": (role, False)}
    assert audit_trail(sqlite_url) == []


def test_the_users_forms_need_the_sessions_csrf_token(sqlite_url: str) -> None:
    app = create_app(web_settings(sqlite_url), limiter=MemoryRateLimiter())
    client = TestClient(app, base_url=BASE_URL, follow_redirects=False)
    add_staff(sqlite_url, "boss", Role.ADMIN)
    add_staff(sqlite_url, "li", Role.EDITOR)
    stale = csrf_of(client.get("/staff/login").text)  # from before the login
    sign_in(client, "boss")
    li = account_id(sqlite_url, "li")
    for csrf in ({}, {"csrf": "0" * 40}, {"csrf": stale}):
        for path, data in [
            ("/staff/users", {"name": "mallory", "role": "admin", "password": PASSWORD}),
            (f"/staff/users/{li}/disable", {}),
            (f"/staff/users/{li}/tokens", {}),
        ]:
            answer = client.post(path, data={**data, **csrf})
            assert answer.status_code == 403, (path, csrf, answer.text)
            assert "dst_" not in answer.text
    assert accounts(sqlite_url) == {"boss": (Role.ADMIN, False), "li": (Role.EDITOR, False)}
    assert audit_trail(sqlite_url) == []


def test_the_last_active_admin_cannot_be_disabled_by_any_face(
    database_url: str, client: TestClient
) -> None:
    add_staff(database_url, "boss", Role.ADMIN)
    add_staff(database_url, "li", Role.EDITOR)
    sign_in(client, "boss")
    boss = account_id(database_url, "boss")
    csrf = csrf_of(client.get("/staff/users").text)
    refused = client.post(f"/staff/users/{boss}/disable?lang=en", data={"csrf": csrf})
    assert refused.status_code == 400
    assert LAST_ADMIN in refused.text.replace("&#39;", "'")
    assert accounts(database_url)["boss"] == (Role.ADMIN, False)

    added = client.post(
        "/staff/users",
        data={"name": "second", "role": "admin", "password": PASSWORD, "csrf": csrf},
    )
    assert added.status_code == 303
    assert client.post(f"/staff/users/{boss}/disable", data={"csrf": csrf}).status_code == 303
    assert accounts(database_url)["boss"] == (Role.ADMIN, True)
    with (
        transaction(database_url) as session,
        pytest.raises(StaffAccountConflict, match=LAST_ADMIN),
    ):
        disable_user(session, "second")
    assert accounts(database_url)["second"] == (Role.ADMIN, False)


def test_an_admin_manages_accounts_and_tokens_through_the_api(api: Api) -> None:
    url = api.settings.database_url
    admin = bearer(api_token(url, "boss", Role.ADMIN))
    created = api.client.post(
        "/api/v1/users", headers=admin, json={"name": "li", "role": "editor", "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    li = created.json()
    assert (li["name"], li["role"], li["disabled"], li["tokens"]) == ("li", "editor", False, [])
    taken = api.client.post("/api/v1/users", headers=admin, json={"name": "li", "role": "viewer"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "conflict"
    short = api.client.post(
        "/api/v1/users", headers=admin, json={"name": "wang", "role": "viewer", "password": "x"}
    )
    assert short.status_code == 422 and "too short" in short.json()["error"]["message"]

    issued = api.client.post(f"/api/v1/users/{li['id']}/tokens", headers=admin)
    assert issued.status_code == 201
    token = issued.json()
    assert token["token"].startswith("dst_") and token["user_id"] == li["id"]
    assert api.client.get("/api/v1/sends", headers=bearer(token["token"])).status_code == 200
    listed = {u["name"]: u for u in api.client.get("/api/v1/users", headers=admin).json()["items"]}
    assert [t["id"] for t in listed["li"]["tokens"]] == [token["id"]]
    assert token["token"] not in api.client.get("/api/v1/users", headers=admin).text

    revoked = api.client.post(f"/api/v1/tokens/{token['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert api.client.get("/api/v1/sends", headers=bearer(token["token"])).status_code == 401
    assert api.client.post("/api/v1/tokens/999999/revoke", headers=admin).status_code == 404

    disabled = api.client.post(f"/api/v1/users/{li['id']}/disable", headers=admin)
    assert disabled.status_code == 200 and disabled.json()["disabled"] is True
    boss = listed["boss"]["id"]
    last = api.client.post(f"/api/v1/users/{boss}/disable", headers=admin)
    assert last.status_code == 409 and LAST_ADMIN in last.json()["error"]["message"]

    with transaction(url) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        trail = [(e.actor, e.action, e.detail.get("via")) for e in entries]
        assert all("password" not in e.detail for e in entries)
    assert trail == [
        ("boss", "user.add", "api"),
        ("boss", "token.issue", "api"),
        ("boss", "token.revoke", "api"),
        ("boss", "user.disable", "api"),
    ]


def test_editors_and_viewers_get_403_from_every_users_route(sqlite_url: str) -> None:
    with api_client(web_settings(sqlite_url)) as api:
        routes = [
            (method.upper(), re.sub(r"\{[a-z_]+\}", "1", path))
            for path, operations in api.app.openapi()["paths"].items()
            if path.startswith(("/api/v1/users", "/api/v1/tokens"))
            for method in operations
        ]
        assert len(routes) == 5, routes
        for headers in (api.viewer, api.editor):
            for method, path in routes:
                answer = api.client.request(method, path, headers=headers, json={})
                assert answer.status_code == 403, (method, path, answer.text)
                assert answer.json()["error"]["code"] == "forbidden"
        assert audit_trail(sqlite_url) == []
