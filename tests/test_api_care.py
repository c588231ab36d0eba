"""The API's editing of a send until it starts, and its care for one reader (a note for who
asked, lists, tags, attributes, a suppression lifted, erasure), on SQLite and PostgreSQL: the
dashboard's services, their refusals with the services' codes, one audit entry per change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from distributor.db import transaction
from distributor.staff.models import AuditEntry
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.api import Api, api_client
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.web import web_settings


@pytest.fixture
def api(database_url: str) -> Iterator[Api]:
    with api_client(web_settings(database_url)) as api:
        yield api


def audit_of(url: str) -> list[tuple[str, dict[str, object]]]:
    with transaction(url) as session:
        entries = session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        return [(entry.action, dict(entry.detail or {})) for entry in entries]


def test_a_send_is_edited_until_it_starts(api: Api, sample_issue_path: Path) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    issue_id = import_sample(url, sample_issue_path)
    make_audience(url, "会员快讯", 5)
    make_audience(url, "理事会", 2, prefix="council")
    made = client.post(
        "/api/v1/sends",
        json={"issue_id": issue_id, "lists": ["会员快讯"], "draft": True},
        headers=editor,
    )
    send_id = made.json()["send"]["id"]
    path = f"/api/v1/sends/{send_id}"

    asked = client.patch(path, json={"lists": ["理事会"], "dry_run": True}, headers=editor)
    assert asked.status_code == 200, asked.text
    assert (asked.json()["readers"]["readers"], asked.json()["dry_run"]) == (2, True)
    assert asked.json()["send"]["audience"]["lists"] == ["会员快讯"]  # nothing changed

    edited = client.patch(path, json={"lists": ["理事会"], "variant": "digest"}, headers=editor)
    assert edited.status_code == 200, edited.text
    send = edited.json()["send"]
    assert (send["state"], send["variant"], send["audience"]["lists"]) == (
        "draft",
        "digest",
        ["理事会"],
    )
    timed = client.patch(
        path,
        json={"draft": False, "at": "2099-01-05T09:00", "timezone": "Asia/Shanghai"},
        headers=editor,
    )
    assert timed.status_code == 200, timed.text
    assert (timed.json()["send"]["state"], timed.json()["send"]["scheduled_at"]) == (
        "scheduled",
        "2099-01-05T01:00:00Z",
    )
    assert timed.json()["send"]["variant"] == "digest"  # what is not given stays
    past = client.patch(path, json={"at": "2001-01-01T09:00+08:00"}, headers=editor)
    assert (past.status_code, past.json()["error"]["reason"]) == (422, "send.past")
    nobody = client.patch(path, json={"tags": ["无人"]}, headers=editor)
    assert (nobody.status_code, nobody.json()["error"]["reason"]) == (422, "send.nobody")

    assert client.post(f"{path}/cancel", headers=editor).status_code == 200
    late = client.patch(path, json={"variant": "text"}, headers=editor)
    assert (late.status_code, late.json()["error"]["reason"]) == (409, "send.not_editable")
    assert client.patch("/api/v1/sends/999", json={}, headers=editor).status_code == 404
    assert client.patch(path, json={}, headers=api.viewer).status_code == 403
    actions = [action for action, _ in audit_of(url)]
    assert actions == ["send.create", "send.edit", "send.schedule", "send.cancel"]


def test_a_reader_is_cared_for_at_their_request_and_erased(api: Api) -> None:
    url, client, editor = api.settings.database_url, api.client, api.editor
    for name in ("会员快讯", "理事会"):
        client.post("/api/v1/lists", json={"name": name}, headers=editor)
    added = client.post(
        "/api/v1/subscribers",
        json={"email": "wang@example.org", "lists": ["会员快讯"]},
        headers=editor,
    )
    path = f"/api/v1/subscribers/{added.json()['subscriber']['id']}"

    tagged = client.put(f"{path}/tags", json={"tags": ["理事", "北京"]}, headers=editor)
    assert tagged.status_code == 200, tagged.text
    assert tagged.json()["tags"] == sorted(["理事", "北京"])
    described = client.put(
        f"{path}/attributes", json={"attributes": {"城市": "北京"}}, headers=editor
    )
    assert described.json()["attributes"] == {"城市": "北京"}
    moved = client.put(f"{path}/lists", json={"lists": ["理事会"]}, headers=editor)
    assert moved.json()["lists"] == [
        {"list": "会员快讯", "status": "unsubscribed"},
        {"list": "理事会", "status": "active"},
    ]
    blank = client.post(f"{path}/unsubscribe", json={"note": "  "}, headers=editor)
    assert blank.status_code == 422 and "is blank" in blank.json()["error"]["message"]
    stopped = client.post(f"{path}/unsubscribe", json={"note": "本人来电"}, headers=editor)
    assert stopped.status_code == 200 and stopped.json()["status"] == "unsubscribed"
    again = client.post(f"{path}/unsubscribe", json={"note": "本人来电"}, headers=editor)
    assert (again.status_code, again.json()["error"]["reason"]) == (
        422,
        "care.unsubscribed_already",
    )
    joined = client.put(f"{path}/lists", json={"lists": ["理事会"]}, headers=editor)
    assert joined.json()["error"]["reason"] == "care.no_join"
    not_suppressed = client.post(f"{path}/unsuppress", json={"reason": "误判"}, headers=editor)
    assert not_suppressed.json()["error"]["reason"] == "suppression.not_suppressed"
    back = client.post(
        f"{path}/resubscribe", json={"note": "本人来信同意", "lists": ["会员快讯"]}, headers=editor
    )
    assert back.status_code == 200, back.text
    assert (back.json()["status"], back.json()["lists"][0]) == (
        "active",
        {"list": "会员快讯", "status": "active"},
    )

    with transaction(url) as session:  # a hard bounce, as the bounce processor records it
        session.scalars(select(Subscriber)).one().status = SubscriberStatus.BOUNCED
    lifted = client.post(f"{path}/unsuppress", json={"reason": "地址已改正"}, headers=editor)
    assert lifted.status_code == 200 and lifted.json()["status"] == "active"

    notes = [detail.get("note") or detail.get("reason") for _, detail in audit_of(url)]
    assert [note for note in notes if note] == ["本人来电", "本人来信同意", "地址已改正"]
    erased = client.post(f"{path}/erase", json={"note": "本人要求删除"}, headers=editor)
    assert erased.status_code == 200 and erased.json()["deliveries"] == 0
    assert client.get(path, headers=api.viewer).status_code == 404
    care = [action for action, _ in audit_of(url) if action != "list.create"]
    assert care == [
        "subscriber.add",
        "subscriber.labels",
        "subscriber.labels",
        "subscriber.lists",
        "subscriber.unsubscribe",
        "subscriber.resubscribe",
        "subscriber.unsuppress",
        "subscriber.erase",
    ]
