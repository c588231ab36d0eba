"""The staff dashboard through HTTP: signing in and out, the pages, their forms and the
security around them (sessions, CSRF, roles, escaping)."""

from __future__ import annotations

import re
import time
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
    "/staff/sends/1/left-out",
    "/staff/sends/1/edit",
    "/staff/audience-count",
    "/staff/counting/" + "0" * 64,
    "/staff/issues",
    "/staff/issues/1",
    "/staff/subscribers",
    "/staff/subscribers/1",
    "/staff/subscribers/export.csv",
    "/staff/lists",
    "/staff/schedules",
    "/staff/automations",
    "/staff/users",
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


def test_a_stranger_guessing_cannot_lock_a_staff_member_out(sqlite_url: str) -> None:
    """Failures from one address shut out that address, not the account: the staff member at
    another address still signs in (a little slowed). Successes count for nothing."""
    app = create_app(web_settings(sqlite_url, FORWARDED_ALLOW_IPS="*"), limiter=MemoryRateLimiter())
    client = TestClient(app, base_url=BASE_URL, follow_redirects=False)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    csrf = csrf_of(client.get("/staff/login").text)

    def attempt(password: str, address: str) -> int:
        return client.post(
            "/staff/login",
            data={"name": "editor", "password": password, "csrf": csrf},
            headers={"X-Forwarded-For": address},
        ).status_code

    for _ in range(12):  # a staff member who signs in often is never throttled
        assert attempt(PASSWORD, "198.51.100.7") == 303
    stranger = [attempt("wrong password", "203.0.113.9") for _ in range(11)]
    assert stranger == [401] * 10 + [429]
    assert attempt(PASSWORD, "203.0.113.9") == 429  # that address stays shut out
    started = time.monotonic()
    assert attempt(PASSWORD, "198.51.100.7") == 303  # the staff member is not
    assert time.monotonic() - started >= 0.5  # the account under attack is slowed


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
    count = client.get("/staff/audience-count", params={"lists": "会员快讯", "variant": "full"})
    assert count.json()["count"] == 5 and count.json()["channels"] == {"email": 5}
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
    assert created.status_code == 303, created.text  # a draft sends nothing: no confirmation
    send_id = int(created.headers["location"].rsplit("/", 1)[1])
    page = client.get(f"/staff/sends/{send_id}")
    assert page.status_code == 200 and 'id="action-edit"' in page.text
    status = client.get(f"/staff/sends/{send_id}/status.json").json()
    assert (status["state"], status["scheduled_local"]) == ("draft", "2099-01-01 09:00")
    csrf = csrf_of(page.text)
    edit = client.get(f"/staff/sends/{send_id}/edit")
    assert edit.status_code == 200 and 'value="2099-01-01T09:00"' in edit.text
    fields = {"lists": "会员快讯", "variant": "full", "expiry_hours": "6", "csrf": csrf}
    # Scheduling asks for the time, then for a confirmation; only that schedules it.
    timeless = client.post(f"/staff/sends/{send_id}/edit", data={**fields, "at": ""})
    assert timeless.status_code == 400
    asked = client.post(f"/staff/sends/{send_id}/edit", data={**fields, "at": "2099-01-02T10:00"})
    assert asked.status_code == 200 and 'id="confirm"' in asked.text
    assert 'id="confirm-readers">5<' in asked.text and "2099-01-02 10:00" in asked.text
    assert client.get(f"/staff/sends/{send_id}/status.json").json()["state"] == "draft"
    scheduled = client.post(
        f"/staff/sends/{send_id}/edit",
        data={**fields, "at": "2099-01-02T10:00", "confirmed": "yes"},
    )
    assert scheduled.status_code == 303, scheduled.text
    status = client.get(f"/staff/sends/{send_id}/status.json").json()
    assert (status["state"], status["scheduled_local"]) == ("scheduled", "2099-01-02 10:00")
    refused = client.post(f"/staff/sends/{send_id}/resume", data={"csrf": csrf})
    assert refused.status_code == 400 and "当前为「已排期」" in refused.text
    # Cancelling asks first; the confirmation's POST cancels; reopening too.
    ask = client.post(f"/staff/sends/{send_id}/cancel", data={"csrf": csrf})
    assert ask.status_code == 200 and 'id="confirm"' in ask.text
    assert client.get(f"/staff/sends/{send_id}/status.json").json()["state"] == "scheduled"
    done = client.post(f"/staff/sends/{send_id}/cancel", data={"csrf": csrf, "confirmed": "yes"})
    assert done.status_code == 303
    assert client.get(f"/staff/sends/{send_id}/status.json").json()["state"] == "cancelled"
    twice = client.post(f"/staff/sends/{send_id}/cancel?lang=en", data={"csrf": csrf})
    assert twice.status_code == 400 and "is cancelled: it cannot be cancelled" in twice.text
    reopen = client.post(f"/staff/sends/{send_id}/reopen", data={"csrf": csrf})
    assert reopen.status_code == 200 and 'id="confirm"' in reopen.text
    client.post(f"/staff/sends/{send_id}/reopen", data={"csrf": csrf, "confirmed": "yes"})
    assert client.get(f"/staff/sends/{send_id}/status.json").json()["state"] == "draft"
    with transaction(sqlite_url) as session:
        send = session.scalars(select(Send).where(Send.id == send_id)).one()
        assert send.state == "draft"
        actions = [(e.actor, e.action) for e in audit_of(session, "send", send_id)]
    assert actions == [
        ("editor", "send.reopen"),
        ("editor", "send.cancel"),
        ("editor", "send.schedule"),
        ("editor", "send.create"),
    ]
    assert "scheduled the send for" in client.get(f"/staff/sends/{send_id}").text


def test_a_send_goes_out_only_from_its_confirmation(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/sends/new").text)
    fields = {"issue": str(issue_id), "lists": "会员快讯", "variant": "full", "csrf": csrf}
    summary = client.post("/staff/sends/new?lang=en", data={**fields, "track": "on"})
    assert summary.status_code == 200, summary.text[-3000:]
    assert 'id="confirm-readers">5<' in summary.text
    assert 'data-format="full">5<' in summary.text and 'id="confirm-tracking">on<' in summary.text
    with transaction(sqlite_url) as session:
        assert session.scalars(select(Send)).all() == []
    back = client.post("/staff/sends/new", data={**fields, "action": "back"})
    assert back.status_code == 200 and 'id="schedule"' in back.text
    made = client.post("/staff/sends/new", data={**fields, "confirmed": "yes"})
    assert made.status_code == 303
    # The same issue to the same readers again: the confirmation says so.
    again = client.post("/staff/sends/new?lang=en", data=fields)
    assert 'id="confirm-already"' in again.text and "#1" in again.text
    # In Chinese, every word of the new pages has its translation (no message id shows).
    chinese = [
        client.post("/staff/sends/new?lang=zh-CN", data=fields).text,
        client.get("/staff/sends/1?lang=zh-CN").text,
        client.get("/staff/sends/1/left-out?lang=zh-CN&who=reader00001@example.org").text,
        client.get("/staff/sends/1/edit?lang=zh-CN").text,
        client.post("/staff/sends/1/cancel?lang=zh-CN", data={"csrf": csrf}).text,
        client.get("/staff/subscribers/1?lang=zh-CN").text,
        client.get("/staff/lists?lang=zh-CN").text,
    ]
    for html in chinese:
        assert "确认" in html or "未包含" in html or "列表" in html
        untranslated = re.findall(r"\bstaff\.[a-z_]+\.[a-z_.]+", html)  # staff.css is a file
        assert not untranslated, untranslated


def test_a_bad_send_form_shows_the_services_message(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/sends/new").text)
    form = {"issue": str(issue_id), "lists": "没有这个", "csrf": csrf}
    answer = client.post("/staff/sends/new", data=form)
    assert answer.status_code == 400
    assert "没有名为“没有这个”的列表。" in answer.text
    in_english = client.post("/staff/sends/new?lang=en", data=form)
    assert "There is no list named “没有这个”." in in_english.text


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


XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def test_text_from_issues_subscribers_and_lists_is_escaped_on_every_page(
    sqlite_url: str, client: TestClient, sample_issue_path: Path
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    sample = sample_issue_path.read_text(encoding="utf-8")
    hostile = sample.replace("12月21日,市总工会召开", f"12月21日,{XSS}市总工会召开", 1)
    assert hostile != sample
    csrf = csrf_of(client.get("/staff/issues").text)
    uploaded = client.post(
        "/staff/issues",
        data={"csrf": csrf},
        files={"file": ("hzgy-471.txt", hostile.encode(), "text/plain")},
    )
    assert uploaded.status_code == 200, uploaded.text
    assert client.post("/staff/lists", data={"name": f"会员{XSS}", "csrf": csrf}).status_code in (
        303,
        400,
    )
    added = client.post(
        "/staff/subscribers",
        data={"email": "xss@example.org", "name": f"王{XSS}", "csrf": csrf},
    )
    assert added.status_code == 303
    pages = [
        "/staff/issues",
        "/staff/issues/1",
        "/staff/subscribers",
        "/staff/subscribers/1",
        "/staff/subscribers?q=xss",
        "/staff/lists",
        "/staff/sends/new",
    ]
    for path in pages:
        page = client.get(path)
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
    assert "&lt;script&gt;" in client.get("/staff/subscribers/1").text


def test_an_issue_upload_reports_what_was_recognised_or_the_line_at_fault(
    sqlite_url: str, client: TestClient, sample_issue_path: Path
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/issues?lang=en").text)
    uploaded = client.post(
        "/staff/issues?lang=en",
        data={"csrf": csrf},
        files={"file": ("hzgy-471.txt", sample_issue_path.read_bytes(), "text/plain")},
    )
    assert uploaded.status_code == 200
    assert "Imported" in uploaded.text and "Recognised" in uploaded.text
    bad = client.post(
        "/staff/issues?lang=en",
        data={"csrf": csrf},
        files={"file": ("bad.txt", b"\x00\x01\x02" * 100, "text/plain")},
    )
    assert bad.status_code == 400 and 'class="error"' in bad.text
    issue = client.get("/staff/issues/1")
    assert issue.status_code == 200
    assert issue.text.count('sandbox=""') == 6  # three variants, at two widths each
    assert "style-src 'self' 'unsafe-inline'" in issue.headers["content-security-policy"]
    with transaction(sqlite_url) as session:
        assert [e.action for e in audit_of(session, "issue", 1)] == ["issue.import"]


def test_subscribers_are_added_edited_imported_and_audited(
    sqlite_url: str, client: TestClient, tmp_path: Path
) -> None:
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/lists").text)
    assert client.post("/staff/lists", data={"name": "周刊", "csrf": csrf}).status_code == 303
    added = client.post(
        "/staff/subscribers",
        data={"email": "Li.Ming@Example.com", "name": "李明", "lists": "周刊", "csrf": csrf},
    )
    assert added.status_code == 303
    page_path = added.headers["location"]
    edited = client.post(
        page_path,
        data={
            "email": "li.ming@example.org",
            "name": "李明明",
            "channel": "email",
            "format": "digest",
            "csrf": csrf,
        },
    )
    assert edited.status_code == 303, edited.text
    page = client.get(page_path + "?lang=en")
    assert "li.ming@example.org" in page.text and "edited the subscriber" in page.text
    assert "周刊" in client.get("/staff/lists").text
    members = "email,name\nwang@qq.com,王\nbad@,坏\n".encode("gb18030")
    imported = client.post(
        "/staff/subscribers/import?lang=en",
        data={"csrf": csrf, "list_name": "周刊"},
        files={"file": ("members.csv", members, "text/csv")},
    )
    assert imported.status_code == 200, imported.text
    assert "1 new" in imported.text and "data:text/csv;charset=utf-8;base64," in imported.text
    found = client.get("/staff/subscribers?q=wang")
    assert "wang@qq.com" in found.text and "li.ming" not in found.text
    export = client.get("/staff/subscribers/export.csv")
    assert "wang@qq.com" in export.text and "li.ming@example.org" in export.text


def test_a_viewer_may_look_at_everything_but_change_nothing(
    sqlite_url: str, client: TestClient, issue_id: int
) -> None:
    add_staff(sqlite_url, "viewer", Role.VIEWER)
    sign_in(client, "viewer")
    for path in [
        "/staff/issues",
        f"/staff/issues/{issue_id}",
        "/staff/subscribers",
        "/staff/lists",
        "/staff/schedules",
    ]:
        page = client.get(path)
        assert page.status_code == 200, path
        assert 'method="post"' not in page.text.replace(
            'method="post" action="/staff/logout"', ""
        ), path
    csrf = csrf_of(client.get("/staff/lists").text)
    for path, data in [
        ("/staff/lists", {"name": "新"}),
        ("/staff/subscribers", {"email": "a@example.org"}),
        ("/staff/schedules", {"name": "d", "every": "day", "at_time": "09:00"}),
        (f"/staff/issues/{issue_id}/test", {"addresses": "a@example.org"}),
    ]:
        assert client.post(path, data={**data, "csrf": csrf}).status_code == 403, path


def test_recipients_are_searched_filtered_paged_and_exported(
    database_url: str, sample_issue_path: Path
) -> None:
    """Through the engine in this process: 60 readers, one refused with a 550."""
    from tests.support.smtp import RecordingHandler, SmtpServer
    from tests.support.web import send_through_engine

    def refuse(recipient: str, attempt: int) -> str | None:
        return "550 5.1.1 no such user" if recipient == "reader00042@example.org" else None

    make_audience(database_url, "会员快讯", 60)
    issue = import_sample(database_url, sample_issue_path)
    add_staff(database_url, "viewer", Role.VIEWER)
    with SmtpServer(RecordingHandler(fault=refuse)) as smtp:
        settings = web_settings(database_url, **smtp.env())
        send_id = send_through_engine(settings, issue, "会员快讯")
    client = TestClient(
        create_app(settings, limiter=MemoryRateLimiter()),
        base_url=BASE_URL,
        follow_redirects=False,
    )
    sign_in(client, "viewer")
    base = f"/staff/sends/{send_id}/recipients"
    failed = client.get(base, params={"state": "failed"})
    assert failed.text.count("<tr><td>reader") == 1 and "reader00042@example.org" in failed.text
    found = client.get(base, params={"q": "READER0004"})
    assert found.text.count("<tr><td>reader") == 10
    first = client.get(base)
    assert first.text.count("<tr><td>reader") == 50 and "reader00050@" in first.text
    after = first.text.split("after=")[1].split('"')[0]
    second = client.get(base, params={"after": after})
    assert second.text.count("<tr><td>reader") == 10 and "reader00051@" in second.text
    assert client.get(base, params={"q": "%"}).text.count("<tr><td>reader") == 0
    export = client.get(f"/staff/sends/{send_id}/deliveries.csv").text.splitlines()
    assert len(export) == 61 and "reader00042@example.org,failed,1,550," in export[42]
    home = client.get("/staff/?lang=en").text
    assert f"/staff/sends/{send_id}" in home and "1.7%" in home  # 1 of 60 failed
