"""The staff JSON API on SQLite and PostgreSQL: tokens and roles, the main flows through the
same services as the CLI, keyset pages, one error shape, the audit log, /healthz, /metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.staff.models import AuditEntry
from distributor.web.app import create_app
from tests.support.api import Api, api_client, bearer
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.smtp import SmtpServer
from tests.support.web import send_through_engine, serving, web_settings

FIXTURES = Path(__file__).parent / "fixtures" / "issues"


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with api_client(web_settings(database_url)) as api:
        yield api


@pytest.fixture
def sqlite_api(sqlite_url: str) -> Iterator[Api]:
    with api_client(web_settings(sqlite_url)) as api:
        yield api


def api_routes(api: Api) -> list[tuple[str, str]]:
    """Every (method, path) under /api/v1 that the OpenAPI document lists, parameters filled."""
    found = []
    for template, operations in api.app.openapi()["paths"].items():
        if template.startswith("/api/v1"):
            path = re.sub(r"\{[a-z_]+_id\}", "1", template)
            path = re.sub(r"\{[a-z_]+\}", "x", path)
            found += [(method.upper(), path) for method in operations]
    assert len(found) >= 25, found
    return found


def audit_actions(url: str) -> list[str]:
    with transaction(url) as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def error_of(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


# --- who may do what -----------------------------------------------------------------------------


def test_every_api_route_answers_401_without_a_valid_token(sqlite_api: Api) -> None:
    for method, path in api_routes(sqlite_api):
        for headers in ({}, bearer("not-a-token"), {"Authorization": "Basic eDp5"}):
            response = sqlite_api.client.request(method, path, headers=headers, json={})
            assert response.status_code == 401, (method, path, headers, response.text)
            assert error_of(response)["code"] == "not_authenticated"


def test_a_viewer_reads_but_every_write_answers_403_and_changes_nothing(sqlite_api: Api) -> None:
    writes = [(m, p) for m, p in api_routes(sqlite_api) if m != "GET"]
    assert len(writes) >= 15
    for method, path in writes:
        response = sqlite_api.client.request(method, path, headers=sqlite_api.viewer, json={})
        assert response.status_code == 403, (method, path, response.text)
        assert error_of(response)["code"] == "forbidden"
    assert sqlite_api.client.get("/api/v1/sends", headers=sqlite_api.viewer).status_code == 200
    assert audit_actions(sqlite_api.settings.database_url) == []


# --- issues --------------------------------------------------------------------------------------


def test_an_issue_is_imported_shown_and_rendered(api: Api, sample_issue_path: Path) -> None:
    client, editor = api.client, api.editor
    upload = {"file": ("hzgy-471.txt", sample_issue_path.read_bytes(), "text/plain")}
    dry = client.post("/api/v1/issues", files=upload, data={"dry_run": "true"}, headers=editor)
    assert dry.status_code == 200 and dry.json()["id"] is None, dry.text
    assert client.get("/api/v1/issues", headers=editor).json() == {"items": []}

    imported = client.post("/api/v1/issues", files=upload, headers=editor)
    assert imported.status_code == 201, imported.text
    report = imported.json()
    assert (report["number"], report["articles"], report["created"]) == (471, 4, True)
    again = client.post("/api/v1/issues", files=upload, headers=editor)
    assert again.status_code == 200 and again.json() == {**report, "created": False}

    issue_id = report["id"]
    [listed] = client.get("/api/v1/issues", headers=api.viewer).json()["items"]
    assert listed["id"] == issue_id and listed["title"] == "杭州工运"
    shown = client.get(f"/api/v1/issues/{issue_id}", headers=api.viewer).json()
    assert len(shown["articles"]) == 4 and shown["articles"][0]["blocks"]
    full = client.get(f"/api/v1/issues/{issue_id}/render", headers=api.viewer).json()
    assert "第471期" in full["subject"] and "<html" in full["html"] and full["text"]
    text = client.get(
        f"/api/v1/issues/{issue_id}/render", params={"variant": "text"}, headers=api.viewer
    ).json()
    assert text["html"] is None and "第471期" in text["text"]
    assert audit_actions(api.settings.database_url) == ["issue.import"]


def test_a_bad_issue_file_gets_the_importers_error_with_its_line(api: Api) -> None:
    bad = "---\ntitle: 杭州工运\n---\n正文\n".encode()
    response = api.client.post(
        "/api/v1/issues", files={"file": ("bad.md", bad)}, headers=api.editor
    )
    assert response.status_code == 422, response.text
    error = error_of(response)
    assert error["code"] == "import_failed" and error["line"] == 1
    assert error["message"] == "bad.md, line 1: front matter has no 'number'"
    missing = api.client.get("/api/v1/issues/99", headers=api.viewer)
    assert missing.status_code == 404
    assert error_of(missing) == {
        "code": "not_found",
        "message": "there is no issue with ID 99",
        "reason": "issue.missing",
    }


# --- sends ---------------------------------------------------------------------------------------


def test_a_send_is_created_scheduled_and_controlled(api: Api, sample_issue_path: Path) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    issue_id = import_sample(url, sample_issue_path)
    make_audience(url, "会员快讯", 12)
    count = client.get("/api/v1/audience", params={"list": "会员快讯"}, headers=api.viewer)
    assert count.json() == {
        "readers": 12,
        "channels": {"email": 12},
        "formats": {"full": 12},
        "fell_back_to_email": 0,
    }
    unknown = client.get("/api/v1/audience", params={"list": "nope"}, headers=api.viewer)
    assert unknown.status_code == 404
    assert error_of(unknown)["message"] == "there is no list named 'nope'"

    draft = client.post(
        "/api/v1/sends",
        json={"issue_id": issue_id, "lists": ["会员快讯"], "draft": True, "variant": "text"},
        headers=editor,
    )
    assert draft.status_code == 201, draft.text
    send = draft.json()["send"]
    assert (send["state"], send["variant"], draft.json()["readers"]) == ("draft", "text", 12)
    send_id = send["id"]

    paused = client.post(f"/api/v1/sends/{send_id}/pause", headers=editor)
    assert paused.status_code == 409
    assert error_of(paused) == {
        "code": "invalid_transition",
        "message": f"send {send_id} is draft: only a send that is scheduled or running can be "
        "paused",
        "reason": "send.not_now",
    }
    scheduled = client.post(
        f"/api/v1/sends/{send_id}/schedule",
        json={"at": "2099-01-05T09:00", "timezone": "Asia/Shanghai"},
        headers=editor,
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["send"]["scheduled_at"] == "2099-01-05T01:00:00Z"
    past = client.post(
        f"/api/v1/sends/{send_id}/schedule", json={"at": "2001-01-01T09:00+08:00"}, headers=editor
    )
    assert past.status_code == 422 and "is in the past" in error_of(past)["message"]
    for action, state in (("pause", "paused"), ("cancel", "cancelled"), ("reopen", "draft")):
        moved = client.post(f"/api/v1/sends/{send_id}/{action}", headers=editor)
        assert moved.status_code == 200, (action, moved.text)
        assert moved.json()["send"]["state"] == state
    empty = client.post(
        "/api/v1/sends",
        json={"issue_id": issue_id, "lists": ["会员快讯"], "tags": ["无人"]},
        headers=editor,
    )
    assert empty.status_code == 422 and error_of(empty)["message"].startswith("nobody to send to")
    unknown_field = client.post(
        "/api/v1/sends",
        json={"issue_id": issue_id, "lists": ["会员快讯"], "lsts": []},
        headers=editor,
    )
    assert unknown_field.status_code == 422 and "lsts" in error_of(unknown_field)["message"]
    statuses = client.get("/api/v1/sends", headers=api.viewer).json()["items"]
    assert [s["id"] for s in statuses] == [send_id]
    assert audit_actions(url) == [
        "send.create",
        "send.schedule",
        "send.pause",
        "send.cancel",
        "send.reopen",
    ]


def test_a_send_is_created_with_windows_and_marked_commercial(
    api: Api, sample_issue_path: Path
) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    issue_id = import_sample(url, sample_issue_path)
    make_audience(url, "会员快讯", 2)
    body = {"issue_id": issue_id, "lists": ["会员快讯"], "draft": True, "timezone": "Europe/Berlin"}
    created = client.post(
        "/api/v1/sends",
        json={**body, "windows": ["Mon-Fri 08:00-20:00", "Sat 09:00-12:00"], "commercial": True},
        headers=editor,
    )
    assert created.status_code == 201, created.text
    send = created.json()["send"]
    assert send["windows"] == ["Mon-Fri 08:00-20:00", "Sat 09:00-12:00"]
    assert (send["window_zone"], send["commercial"], send["opens_at"]) == (
        "Europe/Berlin", True, None
    )
    plain = client.post("/api/v1/sends", json=body, headers=editor).json()["send"]
    assert (plain["windows"], plain["window_zone"], plain["commercial"]) == ([], None, False)
    wrong = client.post(
        "/api/v1/sends", json={**body, "windows": ["weekdays 8-20"]}, headers=editor
    )
    assert wrong.status_code == 422
    assert error_of(wrong)["message"].endswith(
        "'weekdays 8-20' is not a sending window like \"Mon-Fri 08:00-20:00\""
    )


def test_deliveries_page_by_state_and_address_and_failures_are_retried(
    database_url: str, sample_issue_path: Path
) -> None:
    refused = {"reader00003@example.org", "reader00017@example.org"}
    with SmtpServer() as smtp:
        smtp.handler.fault = lambda rcpt, _attempt: (
            "550 5.1.1 no such user" if rcpt in refused else None
        )
        settings = web_settings(database_url, **smtp.env())
        issue_id = import_sample(database_url, sample_issue_path)
        make_audience(database_url, "会员快讯", 25)
        send_id = send_through_engine(settings, issue_id, "会员快讯")
    with api_client(settings) as api:
        client, viewer = api.client, api.viewer
        status = client.get(f"/api/v1/sends/{send_id}", headers=viewer).json()
        assert status["counts"] == {"sent": 23, "failed": 2} and status["total"] == 25

        def walk(**params: object) -> list[dict[str, Any]]:
            rows, cursor = [], None
            while True:
                page = client.get(
                    f"/api/v1/sends/{send_id}/deliveries",
                    params={**params, "limit": 4, **({"cursor": cursor} if cursor else {})},
                    headers=viewer,
                ).json()
                rows += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    return rows

        everyone = walk()
        assert len(everyone) == 25 and [r["id"] for r in everyone] == sorted(
            r["id"] for r in everyone
        )
        failed = walk(state="failed")
        assert {r["address"] for r in failed} == refused
        assert {r["smtp_code"] for r in failed} == {550}
        found = walk(q="READER0001")
        assert [r["address"] for r in found] == [f"reader{n:05}@example.org" for n in range(10, 20)]
        assert walk(q="reader0001", state="failed")[0]["address"] == "reader00017@example.org"
        assert walk(q="%") == [] and walk(q="_") == []

        other_cursor = client.get(
            "/api/v1/subscribers", params={"limit": 1}, headers=viewer
        ).json()["next_cursor"]
        misused = client.get(
            f"/api/v1/sends/{send_id}/deliveries", params={"cursor": other_cursor}, headers=viewer
        )
        assert misused.status_code == 422 and error_of(misused)["code"] == "invalid"

        retried = client.post(
            f"/api/v1/sends/{send_id}/retry-failed", json={"code": 550}, headers=api.editor
        )
        assert retried.status_code == 200, retried.text
        assert retried.json()["deliveries"] == 2
        assert retried.json()["send"]["counts"] == {"pending": 2, "sent": 23}
        assert audit_actions(database_url) == ["send.retry-failed"]


def test_a_test_send_answers_with_each_servers_answer(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    with SmtpServer() as smtp:
        settings = web_settings(sqlite_url, **smtp.env())
        issue_id = import_sample(sqlite_url, sample_issue_path)
        with api_client(settings) as api:
            response = api.client.post(
                "/api/v1/sends/test",
                json={"issue_id": issue_id, "to": ["staff@example.org"], "variant": "digest"},
                headers=api.editor,
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["all_accepted"] is True
            assert [(d["address"], d["state"]) for d in body["deliveries"]] == [
                ("staff@example.org", "sent")
            ]
        assert [r.recipient for r in smtp.handler.received] == ["staff@example.org"]
    assert audit_actions(sqlite_url) == ["send.test"]


# --- subscribers, lists, schedules ---------------------------------------------------------------


def test_subscribers_are_searched_and_paged_by_address_and_name(api: Api) -> None:
    url, client, viewer = api.settings.database_url, api.client, api.viewer
    make_audience(url, "会员快讯", 30)

    def walk(**params: object) -> list[str]:
        emails, cursor = [], None
        while True:
            response = client.get(
                "/api/v1/subscribers",
                params={**params, "limit": 3, **({"cursor": cursor} if cursor else {})},
                headers=viewer,
            )
            assert response.status_code == 200, response.text
            emails += [s["email"] for s in response.json()["items"]]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                return emails

    assert walk(email="Reader0002") == [f"reader{n:05}@example.org" for n in range(20, 30)]
    assert len(walk()) == 30 and len(walk(list="会员快讯")) == 30
    assert walk(name="读者0000") == [f"reader{n:05}@example.org" for n in range(1, 10)]
    assert walk(email="nobody") == [] and walk(email="%") == []
    assert (
        client.get("/api/v1/subscribers", params={"list": "nope"}, headers=viewer).status_code
        == 404
    )
    tampered = client.get("/api/v1/subscribers", params={"cursor": "eyJ4IjoxfQ"}, headers=viewer)
    assert tampered.status_code == 422


def test_a_subscriber_is_added_edited_corrected_and_unsubscribed(api: Api) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    assert (
        client.post("/api/v1/lists", json={"name": "会员快讯"}, headers=editor).status_code == 201
    )
    added = client.post(
        "/api/v1/subscribers",
        json={"email": "Wang@Example.ORG", "name": "王", "lists": ["会员快讯"]},
        headers=editor,
    )
    assert added.status_code == 201, added.text
    person = added.json()["subscriber"]
    assert (person["email"], person["status"]) == ("Wang@example.org", "active")
    assert person["lists"] == [{"list": "会员快讯", "status": "active"}]
    again = client.post("/api/v1/subscribers", json={"email": "wang@example.org"}, headers=editor)
    assert again.status_code == 200 and again.json()["created"] is False

    sid = person["id"]
    edited = client.patch(f"/api/v1/subscribers/{sid}", json={"format": "digest"}, headers=editor)
    assert edited.status_code == 200 and edited.json()["format"] == "digest"
    bad = client.post(
        f"/api/v1/subscribers/{sid}/email", json={"email": "no-at-sign"}, headers=editor
    )
    assert bad.status_code == 422 and "no-at-sign" in error_of(bad)["message"]
    client.post("/api/v1/subscribers", json={"email": "li@example.org"}, headers=editor)
    taken = client.post(
        f"/api/v1/subscribers/{sid}/email", json={"email": "LI@example.org"}, headers=editor
    )
    assert taken.status_code == 409 and error_of(taken)["code"] == "conflict"
    moved = client.post(
        f"/api/v1/subscribers/{sid}/email", json={"email": "wang@163.com"}, headers=editor
    )
    assert moved.status_code == 200 and moved.json()["email"] == "wang@163.com"
    gone = client.post(f"/api/v1/subscribers/{sid}/unsubscribe", headers=editor)
    assert gone.json()["status"] == "unsubscribed"
    assert gone.json()["lists"] == [{"list": "会员快讯", "status": "unsubscribed"}]
    assert client.get("/api/v1/subscribers/999", headers=api.viewer).status_code == 404
    assert audit_actions(url) == [
        "list.create",
        "subscriber.add",
        "subscriber.update",
        "subscriber.update",
        "subscriber.add",
        "subscriber.set-email",
        "subscriber.unsubscribe",
    ]


def test_lists_and_recurring_schedules(api: Api) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    created = client.post(
        "/api/v1/lists",
        json={"name": "公开", "description": "每周", "public": True},
        headers=editor,
    )
    assert created.status_code == 201 and created.json()["public"] is True
    duplicate = client.post("/api/v1/lists", json={"name": "公开"}, headers=editor)
    assert duplicate.status_code == 409
    assert error_of(duplicate)["message"] == "a list named '公开' exists already"
    closed = client.patch("/api/v1/lists/公开", json={"public": False}, headers=editor)
    assert closed.status_code == 200 and closed.json()["public"] is False
    make_audience(url, "公开", 3)
    [listed] = client.get("/api/v1/lists", headers=api.viewer).json()["items"]
    assert (listed["name"], listed["active"], listed["public"]) == ("公开", 3, False)

    rule = {"name": "周报", "every": "monday", "at_time": "09:00", "timezone": "Asia/Shanghai"}
    added = client.post("/api/v1/schedules", json={**rule, "lists": ["公开"]}, headers=editor)
    assert added.status_code == 201, added.text
    assert added.json()["next_run_at"].endswith("T01:00:00Z")
    bad_zone = client.post(
        "/api/v1/schedules",
        json={**rule, "name": "x", "timezone": "Mars/Base", "lists": ["公开"]},
        headers=editor,
    )
    assert bad_zone.status_code == 422
    assert error_of(bad_zone)["message"] == "'Mars/Base' is not a time zone like Asia/Shanghai"
    assert [
        r["name"] for r in client.get("/api/v1/schedules", headers=api.viewer).json()["items"]
    ] == ["周报"]
    assert client.delete("/api/v1/schedules/周报", headers=editor).status_code == 204
    assert client.delete("/api/v1/schedules/周报", headers=editor).status_code == 404
    assert audit_actions(url) == [
        "list.create",
        "list.public",
        "schedule.add",
        "schedule.remove",
    ]


# --- health and metrics --------------------------------------------------------------------------


def test_healthz_says_whether_the_database_and_the_broker_answer(sqlite_url: str) -> None:
    with api_client(web_settings(sqlite_url)) as api:
        healthy = api.client.get("/healthz")
        assert healthy.status_code == 200
        assert healthy.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    nobody = f"redis://127.0.0.1:{free_port()}/0"
    with api_client(web_settings(sqlite_url, CELERY_BROKER_URL=nobody)) as api:
        down = api.client.get("/healthz")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "unavailable" and body["database"] == "ok"
        assert body["broker"].startswith("unreachable")


def test_metrics_are_shown_to_allowed_addresses_or_the_token_only(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    later = "reader00002@example.org"
    with SmtpServer() as smtp:
        smtp.handler.fault = lambda rcpt, _a: "451 4.7.1 try later" if rcpt == later else None
        settings = web_settings(sqlite_url, METRICS_TOKEN="metrics-secret", **smtp.env())
        make_audience(sqlite_url, "会员", 5)
        send_through_engine(settings, import_sample(sqlite_url, sample_issue_path), "会员")
    app = create_app(settings)
    with serving(app) as base:
        # From 127.0.0.1, allowed by default; the suite's parallel tests may make it slow.
        metrics = httpx.get(f"{base}/metrics", timeout=30)
        assert metrics.status_code == 200, metrics.text
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = {
            family.name: {
                tuple(sorted(sample.labels.items())): sample.value for sample in family.samples
            }
            for family in text_string_to_metric_families(metrics.text)
        }
        assert families["distributor_sends"][(("state", "running"),)] == 1
        assert families["distributor_deliveries"][(("state", "sent"),)] == 4
        assert families["distributor_deliveries"][(("state", "deferred"),)] == 1
        assert families["distributor_smtp_answers_last_hour"][(("class", "2xx"),)] == 4
        assert families["distributor_smtp_answers_last_hour"][(("class", "4xx"),)] == 1
        assert families["distributor_queue_depth"][()] == 1
        assert families["distributor_sent_per_second"][()] == pytest.approx(4 / 60, abs=0.001)
        # By channel and receiving domain; the running send's progress; the rates and the
        # providers' thresholds they are held to.
        by_domain = families["distributor_messages_last_hour"]
        email = (("channel", "email"), ("domain", "example.org"))
        assert by_domain[(*email, ("outcome", "sent"))] == 4
        assert by_domain[(*email, ("outcome", "deferred"))] == 1
        [progress] = families["distributor_send_progress_ratio"].values()
        assert progress == pytest.approx(0.8)
        assert families["distributor_sent_last_day"][()] == 4
        assert families["distributor_complaint_rate"][()] == 0
        limits = families["distributor_complaint_rate_limit"]
        assert limits[(("level", "target"), ("provider", "gmail"))] == 0.001
        assert limits[(("level", "maximum"), ("provider", "gmail"))] == 0.003
        # Routing: the presets' capped domains (one relay without caps is not counted).
        assert families["distributor_domain_cap_left_today"][(("domain", "163.com"),)] == 100000
        assert families["distributor_domain_cap_left_hour"][(("domain", "163.com"),)] == 3000
        assert families["distributor_domain_slowdown"][(("domain", "163.com"),)] == 0
        assert not families["distributor_relay_sent_today"]
        again = httpx.get(f"{base}/metrics").text
        assert re.search(r'_count\{route="/metrics"\} [1-9]', again), again
    remote = web_settings(
        sqlite_url, METRICS_ALLOW_IPS="10.9.9.0/24", METRICS_TOKEN="metrics-secret"
    )
    with serving(create_app(remote)) as base:
        assert httpx.get(f"{base}/metrics").status_code == 403
        wrong = httpx.get(f"{base}/metrics", headers=bearer("guess"))
        assert wrong.status_code == 403
        assert httpx.get(f"{base}/metrics", headers=bearer("metrics-secret")).status_code == 200


def test_a_read_opens_no_transaction_on_postgresql_and_a_write_still_does(
    postgres_url: str,
) -> None:
    """A read-only view's statements commit on their own (no BEGIN, no COMMIT to wait for); the
    connection goes back to the pool as it came, so the next transaction is one again."""
    from psycopg.pq import TransactionStatus

    with api_client(web_settings(postgres_url)) as api:
        web = api.app.state.web
        for context, status in (
            (web.reading, TransactionStatus.IDLE),
            (web.transaction, TransactionStatus.INTRANS),
            (web.reading, TransactionStatus.IDLE),
            (web.transaction, TransactionStatus.INTRANS),
        ):
            with context() as session:
                assert session.execute(select(AuditEntry.id)).all() == []
                dbapi = session.connection().connection.dbapi_connection
                assert dbapi.info.transaction_status == status, context
