"""Automations as staff and programs meet them: the API (steps, pause, a reader's steps, the
subscriber API's ``welcome``), the dashboard page and the reader's page, and the CLI's import
with ``--welcome``."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.automations.models import AutomationJoin
from distributor.automations.steps import run_due_steps
from distributor.automations.store import set_step
from distributor.cli import main
from distributor.db import session_factory, transaction, utcnow
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from subscribers.links import PublicLinks
from subscribers.models import List
from subscribers.signup import set_list_public
from subscribers.store import add_subscriber, create_list
from subscribers.tokens import TokenSigner
from tests.support.api import api_client
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.staff import add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings


def _joins(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(AutomationJoin)) or 0)


def test_the_api_and_the_dashboard_keep_steps_and_show_each_reader_s(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    url = sqlite_url
    settings = web_settings(url)
    make_audience(url, "members", 2)
    issue_id = import_sample(url, sample_issue_path)
    with api_client(settings) as api:
        client = api.client
        step = {"issue_id": issue_id, "delay_seconds": 0}
        made = client.post("/api/v1/automations/members/steps", json=step, headers=api.editor)
        assert made.status_code == 201, made.text
        send_id = made.json()["send_id"]
        assert made.json() | {"send_id": 0} == {
            "after": "0",
            "delay_seconds": 0,
            "issue_id": issue_id,
            "send_id": 0,
            "send_state": "running",
            "readers": 0,
            "deliveries": {},
        }
        again = client.post("/api/v1/automations/members/steps", json=step, headers=api.editor)
        assert again.status_code == 409
        assert client.post(
            "/api/v1/automations/members/steps", json=step, headers=api.viewer
        ).status_code == 403
        assert client.post(
            "/api/v1/automations/无/steps", json=step, headers=api.editor
        ).status_code == 404

        welcomed = client.post(
            "/api/v1/subscribers",
            json={"email": "new@example.org", "lists": ["members"], "welcome": True},
            headers=api.editor,
        ).json()["subscriber"]["id"]
        client.post(
            "/api/v1/subscribers",
            json={"email": "quiet@example.org", "lists": ["members"]},
            headers=api.editor,
        )
        assert run_due_steps(session_factory(url), settings, utcnow()) == 1
        mine = client.get(f"/api/v1/subscribers/{welcomed}/automations", headers=api.viewer)
        assert [(s["list_name"], s["after"], s["send_id"], s["state"]) for s in
                mine.json()["items"]] == [("members", "0", send_id, "pending")]
        assert client.get(
            "/api/v1/subscribers/999999/automations", headers=api.viewer
        ).status_code == 404

        paused = client.post("/api/v1/automations/members/pause", headers=api.editor).json()
        assert paused["paused"] is True and paused["steps"][0]["send_state"] == "paused"
        listed = client.get("/api/v1/automations", headers=api.viewer).json()["items"]
        assert [(a["list_name"], a["paused"], a["steps"][0]["readers"]) for a in listed] == [
            ("members", True, 1)
        ]

    add_staff(url, "editor", Role.EDITOR)
    staff = TestClient(
        create_app(settings, limiter=MemoryRateLimiter()), base_url=BASE_URL,
        follow_redirects=False,
    )
    sign_in(staff, "editor")
    page = staff.get("/staff/automations")
    assert page.status_code == 200 and f'href="/staff/sends/{send_id}"' in page.text
    resumed = staff.post(
        "/staff/automations/members/resume", data={"csrf": csrf_of(page.text)}
    )
    assert resumed.status_code == 303
    wrong = staff.post(
        "/staff/automations",
        data={"csrf": csrf_of(page.text), "list_name": "members", "issue_id": issue_id,
              "after": "3w"},
    )
    assert wrong.status_code == 400 and "3w" in wrong.text
    reader = staff.get(f"/staff/subscribers/{welcomed}")
    assert reader.status_code == 200 and f'href="/staff/sends/{send_id}"' in reader.text


def test_an_import_gives_the_welcome_only_when_asked(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    url = sqlite_url
    make_audience(url, "members", 1)
    issue_id = import_sample(url, sample_issue_path)
    env = {"DATABASE_URL": url}

    def run(*args: str) -> str:
        result = CliRunner().invoke(main, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result.output

    assert "on joining" in run("automations", "welcome", "members", "--issue", str(issue_id))
    quiet, welcomed = tmp_path / "quiet.csv", tmp_path / "welcomed.csv"
    quiet.write_text("email\nq1@example.org\n", encoding="utf-8")
    welcomed.write_text("email\nw1@example.org\nw2@example.org\n", encoding="utf-8")
    run("subscribers", "import", str(quiet), "--list", "members")
    assert _joins(url) == 0
    run("subscribers", "import", str(welcomed), "--list", "members", "--welcome")
    assert _joins(url) == 2
    run("subscribers", "import", str(welcomed), "--list", "members", "--welcome")
    assert _joins(url) == 2, "an import again joins nobody again"
    run("automations", "pause", "members")
    assert "paused" in run("automations", "list")
    assert "was given no automation step" in run("automations", "reader", "w1@example.org")


def test_a_reader_joining_a_public_list_on_their_preferences_page_is_welcomed_once(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    url = sqlite_url
    make_audience(url, "members", 1)
    issue_id = import_sample(url, sample_issue_path)
    with transaction(url) as session:
        for name in ("open", "news"):
            create_list(session, name)
            set_list_public(session, name)
        reader_id = add_subscriber(session, "reader00001@example.org", lists=["open"]).subscriber.id
        ids = dict(session.execute(select(List.name, List.id)).all())
        for name in ("open", "news"):
            set_step(session, name, 0, issue_id, utcnow())
    client = TestClient(create_app(web_settings(url), limiter=MemoryRateLimiter()))
    path = PublicLinks("", TokenSigner(SECRET)).preferences(reader_id)
    for _ in range(2):  # saved twice: the list joined once, the list they were on never
        page = client.get(path)
        saved = client.post(
            path,
            data={"format": "full", "channel": "email", "language": "zh-CN",
                  "lists": [ids["open"], ids["news"]], "csrf": csrf_of(page.text)},
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
    with transaction(url) as session:
        joined = session.execute(select(AutomationJoin.list_id, AutomationJoin.subscriber_id))
        assert joined.all() == [(ids["news"], reader_id)]
