"""``/api/v1/segments`` and a send to a segment over the API, as a program meets them."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from distributor.db import transaction
from distributor.sending.models import Send
from tests.support.api import api_client
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.web import web_settings


def test_segments_are_saved_counted_edited_and_sent_to(
    database_url: str, sample_issue_path: Path
) -> None:
    make_audience(database_url, "members", 5)
    make_audience(database_url, "youth", 2, prefix="young")
    issue_id = import_sample(database_url, sample_issue_path)
    with api_client(web_settings(database_url)) as api:
        client = api.client
        body = {"name": "年轻人", "where": "list = youth", "description": "青年"}
        saved = client.post("/api/v1/segments", json=body, headers=api.editor)
        assert saved.status_code == 201, saved.text
        assert saved.json() | {"created_at": 0, "updated_at": 0} == {
            "name": "年轻人",
            "where": "list = youth",
            "description": "青年",
            "readers": 2,
            "created_at": 0,
            "updated_at": 0,
        }
        again = client.post("/api/v1/segments", json=body, headers=api.editor)
        assert again.status_code == 409
        assert client.post("/api/v1/segments", json=body, headers=api.viewer).status_code == 403

        wrong = client.post(
            "/api/v1/segments", json={"name": "x", "where": "list in (youth"}, headers=api.editor
        )
        assert wrong.status_code == 422
        assert wrong.json()["error"]["message"].startswith(
            "at position 15: expected ',' or ')' in the list, found the end"
        )
        unknown = client.post(
            "/api/v1/segments", json={"name": "x", "where": "tag = 无"}, headers=api.editor
        )
        assert unknown.status_code == 404 and "no tag named '无'" in unknown.text

        count = client.get("/api/v1/segments/年轻人/count", headers=api.viewer)
        assert count.json() == {"readers": 2}
        edited = client.patch(
            "/api/v1/segments/年轻人",
            json={"where": "list = youth or list = members"},
            headers=api.editor,
        )
        assert edited.json()["readers"] == 7
        listed = client.get("/api/v1/segments", headers=api.viewer).json()["items"]
        assert [(s["name"], s["readers"]) for s in listed] == [("年轻人", 7)]

        send = client.post(
            "/api/v1/sends",
            json={"issue_id": issue_id, "segment": "年轻人", "lists": ["youth"], "draft": True},
            headers=api.editor,
        )
        assert send.status_code == 201, send.text
        assert send.json()["readers"] == 2  # the segment within the list given
        neither = client.post(
            "/api/v1/sends", json={"issue_id": issue_id, "draft": True}, headers=api.editor
        )
        assert neither.status_code == 422

        assert client.delete("/api/v1/segments/年轻人", headers=api.editor).status_code == 204
        assert client.get("/api/v1/segments/年轻人", headers=api.viewer).status_code == 404
    with transaction(database_url) as session:
        audience = session.scalars(select(Send.audience)).one()
        assert (audience.segment, audience.where) == ("年轻人", "list = youth or list = members")
