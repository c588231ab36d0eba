"""``distributor send`` and ``schedule`` as a communications officer meets them (issue 10):
times that mean what was confirmed, audiences that are counted, a list of sends, plain words."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select, update

from distributor.campaigns.schedule import create_send, schedule_send
from distributor.cli import main
from distributor.config import Settings
from distributor.db import session_factory, transaction, utcnow
from distributor.errors import DistributorError, InvalidTransition
from distributor.sending.lifecycle import cancel_send, reopen_send, start_due_sends
from distributor.sending.models import Delivery, Send
from distributor.sending.planner import plan_send
from distributor.sending.recurring import add_rule, remove_rule
from distributor.sending.test_sends import create_test_send
from distributor.vocabulary import DeliveryState, SendState, Variant
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, import_sample, started_send

ZONE = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def env(sqlite_url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": sqlite_url,
        "DISTRIBUTOR_SECRET_KEY": "send-cli-test-secret-0123456789abcdef",
        "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
    }


@pytest.fixture
def issue_id(sqlite_url: str, sample_issue_path: Path) -> int:
    make_audience(sqlite_url, "members", 3)
    return import_sample(sqlite_url, sample_issue_path)


def run(env: dict[str, str], *args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exit_code == code, result.output
    return result


def local(moment: datetime) -> str:
    """``moment`` as the CLI names it, and as a person types it (no offset: the zone's time)."""
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M")


def stored_send(url: str, send_id: int) -> Send:
    with transaction(url) as session:
        send = session.get(Send, send_id)
        assert send is not None
        session.expunge(send)
        return send


def send_count(url: str) -> int:
    with transaction(url) as session:
        return int(session.scalar(select(func.count()).select_from(Send)) or 0)


# 1. Scheduling a draft keeps the time it was given.


def test_scheduling_a_draft_keeps_the_time_it_was_given(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(env, issue_id, "--draft", "--at", "2030-12-02T09:00")
    output = run(env, "send", "schedule", str(send_id)).output
    assert output.startswith(f"Send {send_id} is scheduled for Mon 2030-12-02 09:00 Asia/Shanghai")
    send = stored_send(sqlite_url, send_id)
    assert send.state is SendState.SCHEDULED
    assert send.scheduled_at == datetime(2030, 12, 2, 9, 0, tzinfo=ZONE)


def test_a_new_time_moves_the_draft_and_its_expiry_window_is_kept(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(
        env, issue_id, "--draft", "--at", "2030-12-02T09:00", "--expires-in", "2"
    )
    run(env, "send", "schedule", str(send_id), "--at", "2030-12-03T10:30")
    send = stored_send(sqlite_url, send_id)
    assert send.scheduled_at == datetime(2030, 12, 3, 10, 30, tzinfo=ZONE)
    assert send.expires_at == datetime(2030, 12, 3, 12, 30, tzinfo=ZONE)


def test_a_draft_without_a_time_goes_now_when_scheduled(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(env, issue_id, "--draft")
    assert stored_send(sqlite_url, send_id).scheduled_at is None
    before = utcnow()
    run(env, "send", "schedule", str(send_id))
    scheduled_at = stored_send(sqlite_url, send_id).scheduled_at
    assert scheduled_at is not None and before <= scheduled_at <= utcnow()


def test_a_draft_whose_time_passed_asks_for_a_new_one(sqlite_url: str, issue_id: int) -> None:
    then = utcnow() - timedelta(days=1)
    with transaction(sqlite_url) as session:
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            at=then + timedelta(hours=1),
            now=then,
            zone=ZONE,
            draft=True,
        ).id
    with pytest.raises(DistributorError, match="has passed") as refused, transaction(
        sqlite_url
    ) as session:
        schedule_send(session, send_id, None, now=utcnow(), zone=ZONE)
    assert local(then + timedelta(hours=1)).replace("T", " ") in refused.value.message
    assert stored_send(sqlite_url, send_id).state is SendState.DRAFT


# 2. Times in the past and dates alone.


def test_a_time_in_the_past_is_refused_and_named_in_the_zone(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    last_year = utcnow() - timedelta(days=365)
    result = run(
        env, "send", "create", "--issue", str(issue_id), "--list", "members",
        "--at", local(last_year), code=2,
    )  # fmt: skip
    shown = last_year.astimezone(ZONE).strftime("%a %Y-%m-%d %H:%M")
    assert result.output.startswith(f"Error: {shown} Asia/Shanghai is in the past (it is now ")
    assert len(result.output.strip().splitlines()) == 1
    assert send_count(sqlite_url) == 0


def test_schedule_refuses_a_time_in_the_past(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(env, issue_id, "--draft")
    yesterday = local(utcnow() - timedelta(days=1))
    result = run(env, "send", "schedule", str(send_id), "--at", yesterday, code=2)
    assert "is in the past" in result.output
    assert stored_send(sqlite_url, send_id).state is SendState.DRAFT


def test_a_time_a_minute_ago_is_now_typed_slowly(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(env, issue_id, "--at", local(utcnow() - timedelta(minutes=2)))
    assert stored_send(sqlite_url, send_id).state is SendState.SCHEDULED


def test_a_date_without_a_time_is_refused(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    result = run(
        env, "send", "create", "--issue", str(issue_id), "--list", "members",
        "--at", "2030-12-02", code=2,
    )  # fmt: skip
    assert result.output.strip() == (
        "Error: --at '2030-12-02' is a date without a time of day: add one, e.g. 2030-12-02T09:00"
    )
    assert send_count(sqlite_url) == 0


def test_the_confirmation_names_the_time_and_the_readers(
    env: dict[str, str], issue_id: int
) -> None:
    output = run(
        env, "send", "create", "--issue", str(issue_id), "--list", "members",
        "--at", "2030-12-02T09:00",
    ).output  # fmt: skip
    assert output.splitlines()[1].startswith(
        "It goes to 3 readers (list members) at Mon 2030-12-02 09:00 Asia/Shanghai, once a worker"
    )


# 5. Empty audiences.


def test_a_list_with_nobody_to_send_to_is_refused_unless_allowed(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    run(env, "lists", "create", "nobody")
    args = ("send", "create", "--issue", str(issue_id), "--list", "nobody")
    refused = run(env, *args, code=2).output
    assert refused.strip() == (
        "Error: nobody to send to: no active subscriber reachable by email in list nobody "
        "(--allow-empty creates it anyway)"
    )
    assert send_count(sqlite_url) == 0
    allowed = run(env, *args, "--allow-empty").output
    assert "It goes to 0 readers" in allowed and "Nobody can receive it now" in allowed
    assert send_count(sqlite_url) == 1


def test_the_count_is_what_the_planner_plans(sqlite_url: str, issue_id: int) -> None:
    make_audience(sqlite_url, "members", 2, prefix="gone")
    run(
        {"DATABASE_URL": sqlite_url},
        "subscribers", "unsubscribe", "gone00001@example.org",
    )  # fmt: skip
    with transaction(sqlite_url) as session:
        created = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZONE,
        )
        assert start_due_sends(session, utcnow()) == [created.id]
    plan_send(session_factory(sqlite_url), created.id, batch_size=1000, lease=timedelta(minutes=1))
    with transaction(sqlite_url) as session:
        planned = session.scalar(
            select(func.count()).where(Delivery.send_id == created.id)
        )
    assert created.readers == planned == 4


def test_schedule_add_says_how_many_digest_readers_it_reaches(
    env: dict[str, str], sqlite_url: str
) -> None:
    make_audience(sqlite_url, "members", 3, fmt="full")
    make_audience(sqlite_url, "members", 2, prefix="digest", fmt="digest")
    output = run(
        env, "schedule", "add", "weekly", "--every", "monday", "--at", "09:00",
        "--list", "members",
    ).output  # fmt: skip
    assert "It reaches 2 readers today: those of its lists who chose the digest." in output
    run(env, "lists", "create", "quiet")
    nobody = run(
        env, "schedule", "add", "quiet", "--every", "day", "--at", "18:00", "--list", "quiet"
    ).output
    assert "It reaches nobody today" in nobody


# 4. send list and send status.


def test_send_list_newest_first_with_audience_state_time_counts_and_test(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    first = created_by_cli(env, issue_id, "--at", "2030-12-02T09:00")
    second = created_by_cli(env, issue_id, "--draft")
    with transaction(sqlite_url) as session:
        test = create_test_send(
            session,
            issue_id=issue_id,
            addresses=["editor@example.org"],
            variant=Variant.FULL,
            settings=Settings.from_env(env),
            now=utcnow(),
        ).id
    rows = [
        line for line in run(env, "send", "list").output.splitlines() if re.match(r"│ \d", line)
    ]
    assert [int(row.split("│")[1]) for row in rows] == [test, second, first]
    cells = [[cell.strip() for cell in row.split("│")[1:-1]] for row in rows]
    assert cells[0][2] == "test to editor@example.org" and cells[0][8] == "test"
    assert cells[1][2:5] == ["list members", "draft", "no time yet"]
    assert cells[2][2:5] == ["list members", "scheduled", "Mon 2030-12-02 09:00 Asia/Shanghai"]
    assert cells[2][8] == ""
    page = run(env, "send", "list", "--limit", "2").output
    assert page.rstrip().endswith(f"Older ones: distributor send list --before {second}")
    rest = json.loads(run(env, "send", "list", "--before", str(second), "--json").output)
    assert [row["id"] for row in rest] == [first]


def test_send_status_shows_audience_time_and_test(
    env: dict[str, str], issue_id: int
) -> None:
    send_id = created_by_cli(
        env, issue_id, "--at", "2030-12-02T09:00", "--tag", "工会", "--allow-empty"
    )
    output = run(env, "send", "status", str(send_id)).output
    assert f"Send {send_id}: issue {issue_id} (No. 471), full, scheduled" in output
    assert "To:        list members, tagged 工会" in output
    assert "Scheduled: Mon 2030-12-02 09:00 Asia/Shanghai" in output
    as_json = json.loads(run(env, "send", "status", str(send_id), "--json").output)
    assert as_json["audience"]["lists"] == ["members"] and as_json["audience"]["tags"] == ["工会"]
    assert as_json["is_test"] is False
    assert as_json["scheduled_at"] == "2030-12-02T01:00:00+00:00"


def test_names_from_outside_are_shown_not_obeyed(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    make_audience(sqlite_url, "[bold]x\x1b[2J", 1, prefix="odd")
    run(env, "send", "create", "--issue", str(issue_id), "--list", "[bold]x\x1b[2J")
    output = run(env, "send", "list").output
    assert "list [bold]x\ufffd[2J" in output and "\x1b" not in output


# 6. Wording: no repetition, and services never name the CLI.


def test_control_messages_say_what_happened_once(env: dict[str, str], issue_id: int) -> None:
    send_id = created_by_cli(env, issue_id, "--at", "2030-12-02T09:00")
    paused = run(env, "send", "pause", str(send_id)).output.strip()
    assert paused == (
        f"Send {send_id} paused: no new message goes out until distributor send resume {send_id}."
    )
    resumed = run(env, "send", "resume", str(send_id)).output.strip()
    assert resumed == (
        f"Send {send_id} resumed: it waits for its time, Mon 2030-12-02 09:00 Asia/Shanghai."
    )
    for output in (paused, resumed, run(env, "send", "cancel", str(send_id)).output):
        assert output.count("paused") <= 1 and "it is now" not in output


def test_service_messages_do_not_name_flags_or_commands(
    sqlite_url: str, issue_id: int
) -> None:
    def message_of(action: object) -> str:
        with pytest.raises(DistributorError) as raised, transaction(sqlite_url) as session:
            assert callable(action)
            action(session)
        return raised.value.message

    def send_to(**changes: object) -> object:
        arguments: dict[str, object] = {
            "issue_id": issue_id,
            "audience": Audience(lists=("members",)),
            "variant": Variant.FULL,
            "at": None,
            "now": utcnow(),
            "zone": ZONE,
        }
        return lambda session: create_send(session, **{**arguments, **changes})  # type: ignore[arg-type]

    def rule(**changes: object) -> object:
        arguments: dict[str, object] = {
            "name": "weekly",
            "every": "monday",
            "at_time": "09:00",
            "timezone": "Asia/Shanghai",
            "lists": ["members"],
            "now": utcnow(),
        }
        return lambda session: add_rule(session, **{**arguments, **changes})  # type: ignore[arg-type]

    messages = [
        message_of(send_to(issue_id=999)),
        message_of(send_to(audience=Audience())),
        message_of(send_to(audience=Audience(lists=("nope",)))),
        message_of(send_to(at=utcnow() - timedelta(days=2))),
        message_of(rule(every="someday")),
        message_of(rule(at_time="9h")),
        message_of(rule(lists=[])),
        message_of(rule(timezone="Mars/Olympus")),
        message_of(lambda session: remove_rule(session, "nope")),
    ]
    for message in messages:
        assert "--" not in message and "distributor " not in message, message


# 3. Reopen, without a worker: what it refuses and what it restores.


def test_only_a_cancelled_send_can_be_reopened(env: dict[str, str], issue_id: int) -> None:
    send_id = created_by_cli(env, issue_id, "--at", "2030-12-02T09:00")
    refused = run(env, "send", "reopen", str(send_id), code=2).output.strip()
    assert refused == (
        f"Error: send {send_id} is scheduled: only a send that is cancelled can be reopened"
    )


def test_a_send_cancelled_before_it_started_comes_back_as_a_draft_with_its_time(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    send_id = created_by_cli(env, issue_id, "--at", "2030-12-02T09:00")
    run(env, "send", "cancel", str(send_id))
    output = run(env, "send", "reopen", str(send_id)).output
    assert output.startswith(f"Send {send_id} reopened as a draft")
    send = stored_send(sqlite_url, send_id)
    assert send.state is SendState.DRAFT and send.finished_at is None
    run(env, "send", "schedule", str(send_id))
    assert stored_send(sqlite_url, send_id).scheduled_at == datetime(2030, 12, 2, 9, tzinfo=ZONE)


def test_reopen_twice_is_refused(sqlite_url: str, issue_id: int) -> None:
    with transaction(sqlite_url) as session:
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZONE,
        ).id
        cancel_send(session, send_id, utcnow())
        reopen_send(session, send_id, utcnow())
    with pytest.raises(InvalidTransition, match="is draft"), transaction(sqlite_url) as session:
        reopen_send(session, send_id, utcnow())


def test_reopen_waits_until_no_worker_holds_a_message_of_the_send(
    sqlite_url: str, issue_id: int
) -> None:
    send_id = started_send(sqlite_url, issue_id, "members")
    plan_send(session_factory(sqlite_url), send_id, batch_size=1000, lease=timedelta(minutes=1))
    with transaction(sqlite_url) as session:
        first = session.scalar(select(func.min(Delivery.id)).where(Delivery.send_id == send_id))
        session.execute(
            update(Delivery).where(Delivery.id == first).values(state=DeliveryState.CLAIMED)
        )
        cancel_send(session, send_id, utcnow())
    with (
        pytest.raises(InvalidTransition, match="is still stopping \\(1 messages are with"),
        transaction(sqlite_url) as session,
    ):
        reopen_send(session, send_id, utcnow())
    assert stored_send(sqlite_url, send_id).state is SendState.CANCELLED
    with transaction(sqlite_url) as session:
        session.execute(
            update(Delivery).where(Delivery.id == first).values(state=DeliveryState.CANCELLED)
        )
        assert reopen_send(session, send_id, utcnow()) == 3
    assert stored_send(sqlite_url, send_id).state is SendState.RUNNING


def test_a_draft_or_scheduled_send_is_changed_until_it_starts(
    env: dict[str, str], sqlite_url: str, issue_id: int
) -> None:
    make_audience(sqlite_url, "youth", 2, prefix="young")
    later = local(utcnow() + timedelta(days=2))
    send_id = created_by_cli(env, issue_id, "--draft")
    changed = run(env, "send", "edit", str(send_id), "--list", "youth", "--variant", "digest")
    assert changed.output == f"Send {send_id} changed: draft, to 2 readers, no time yet.\n"
    run(env, "send", "edit", str(send_id), "--at", later, "--track")
    scheduled = run(env, "send", "schedule", str(send_id)).output
    assert later.replace("T", " ") in scheduled
    send = stored_send(sqlite_url, send_id)
    assert (send.state, send.audience.lists, send.variant, send.tracking) == (
        SendState.SCHEDULED,
        ("youth",),
        Variant.DIGEST,
        True,
    )
    unscheduled = run(env, "send", "edit", str(send_id), "--draft").output
    assert unscheduled.startswith(f"Send {send_id} changed: draft, to 2 readers, ")
    with transaction(sqlite_url) as session:
        start_due_sends(session, utcnow() + timedelta(days=3))  # a draft never starts
        schedule_send(session, send_id, None, now=utcnow(), zone=ZONE)
        start_due_sends(session, utcnow() + timedelta(days=2, hours=1))
    refused = run(env, "send", "edit", str(send_id), "--list", "members", code=2)
    assert "only a draft or a scheduled send that has not started can be changed" in refused.output
