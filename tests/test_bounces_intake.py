"""Manual and HTTP intake of bounce messages: ``distributor bounces process|list``,
``distributor subscribers unsuppress``, ``send status`` with bounces, and POST /bounces/intake
with its shared secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient

from distributor.cli import main
from distributor.db import transaction
from distributor.vocabulary import DeliveryState
from distributor.web.app import create_app
from distributor.web.bounce_intake import INTAKE_PATH
from subscribers.models import SubscriberStatus
from subscribers.store import status_history
from tests.support.bounces import BOUNCE_DOMAIN, SECRET, fixture
from tests.support.feedback import (
    SEND_ID,
    delivery_state,
    fixture_settings,
    readdressed,
    seed_fixture_deliveries,
    subscriber_status,
)

INTAKE_SECRET = "intake-secret-4f1c"
HARD = "postfix-dsn-user-unknown.eml"
COMPLAINT = "arf-abuse-yahoo.eml"


def run(database_url: str, *args: str) -> Result:
    env = {
        "DATABASE_URL": database_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "BOUNCE_DOMAIN": BOUNCE_DOMAIN,
    }
    return CliRunner().invoke(main, list(args), env=env)


def test_process_list_and_unsuppress_from_the_command_line(
    database_url: str, tmp_path: Path
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    folder = tmp_path / "mail"
    folder.mkdir()
    for name in (HARD, COMPLAINT, "autoreply-qq-chinese.eml"):
        (folder / name).write_bytes(readdressed(fixture(name), now=None))
    (folder / "notes.txt").write_text("not a message")

    result = run(database_url, "bounces", "process", str(folder), "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(Path(line["file"]).name, line["kind"], line["outcome"]) for line in lines] == [
        (COMPLAINT, "complaint", "applied"),
        ("autoreply-qq-chinese.eml", "auto_reply", "ignored"),
        (HARD, "hard_bounce", "applied"),
    ]
    again = run(database_url, "bounces", "process", str(folder / HARD))
    assert again.exit_code == 0 and "already processed" in again.output

    listed = run(database_url, "bounces", "list", "--send", str(SEND_ID), "--json")
    rows = json.loads(listed.output)
    assert [(row["kind"], row["cause"], row["address"]) for row in rows] == [
        ("hard_bounce", "address_gone", seeded[HARD].address),
        ("complaint", None, seeded[COMPLAINT].address),
    ]
    status = run(database_url, "send", "status", str(SEND_ID))
    assert status.exit_code == 0, status.output
    accepted = len(seeded)
    assert f"Bounces:   1 hard ({1 / accepted:.1%} of accepted), 0 soft" in status.output
    assert f"Complaints: 1 ({1 / accepted:.1%} of accepted)" in status.output
    assert "accepted, then bounced" in status.output

    refused = run(database_url, "subscribers", "unsuppress", seeded[HARD].address)
    assert refused.exit_code == 2 and "--reason" in refused.output
    lifted = run(
        database_url, "subscribers", "unsuppress", seeded[HARD].address,
        "--reason", "new mailbox, confirmed by phone",
    )  # fmt: skip
    assert lifted.exit_code == 0, lifted.output
    assert subscriber_status(database_url, seeded[HARD].subscriber_id) is SubscriberStatus.ACTIVE
    with transaction(database_url) as session:
        history = status_history(session, seeded[HARD].subscriber_id)
    assert [(e.new_status, e.reason) for e in history][-1] == (
        SubscriberStatus.ACTIVE,
        "new mailbox, confirmed by phone",
    )
    not_suppressed = run(
        database_url, "subscribers", "unsuppress", seeded[HARD].address, "--reason", "x"
    )
    assert not_suppressed.exit_code == 2
    assert not_suppressed.output.startswith("Error: ") and "not suppressed" in not_suppressed.output


def test_processing_without_a_bounce_domain_is_a_clear_error(
    sqlite_url: str, tmp_path: Path
) -> None:
    message = tmp_path / "bounce.eml"
    message.write_bytes(fixture(HARD))
    result = CliRunner().invoke(
        main,
        ["bounces", "process", str(message)],
        env={"DATABASE_URL": sqlite_url, "DISTRIBUTOR_SECRET_KEY": SECRET, "BOUNCE_DOMAIN": ""},
    )
    assert result.exit_code == 2
    assert result.output.startswith("Error: BOUNCE_DOMAIN is not set")


@pytest.fixture
def intake(database_url: str) -> TestClient:
    app = create_app(fixture_settings(database_url, bounce_intake_secret=INTAKE_SECRET))
    return TestClient(app)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-secret"},
        {"Authorization": f"Basic {INTAKE_SECRET}"},
        {"Authorization": f"Bearer {INTAKE_SECRET}x"},
    ],
)
def test_intake_without_the_secret_is_refused(
    database_url: str, intake: TestClient, headers: dict[str, str]
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    response = intake.post(
        INTAKE_PATH, content=readdressed(fixture(HARD), now=None), headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert delivery_state(database_url, seeded[HARD].delivery_id) is DeliveryState.SENT


def test_intake_with_no_secret_configured_refuses_everyone(database_url: str) -> None:
    client = TestClient(create_app(fixture_settings(database_url)))
    response = client.post(INTAKE_PATH, content=b"x", headers={"Authorization": "Bearer "})
    assert response.status_code == 401


def test_intake_with_the_secret_processes_the_message_once(
    database_url: str, intake: TestClient
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    raw = readdressed(fixture(HARD), now=None)
    headers = {"Authorization": f"Bearer {INTAKE_SECRET}"}
    response = intake.post(INTAKE_PATH, content=raw, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["kind"], body["outcome"], body["delivery_id"], body["repeat"]) == (
        "hard_bounce", "applied", seeded[HARD].delivery_id, False,
    )  # fmt: skip
    assert delivery_state(database_url, seeded[HARD].delivery_id) is DeliveryState.BOUNCED
    assert subscriber_status(database_url, seeded[HARD].subscriber_id) is SubscriberStatus.BOUNCED
    again = intake.post(INTAKE_PATH, content=raw, headers=headers)
    assert again.json()["repeat"] is True and again.json()["id"] == body["id"]
    empty = intake.post(INTAKE_PATH, content=b"", headers=headers)
    assert empty.status_code == 400
