"""Automations on the engine: a step's readers are claimed once, as their moment comes, into
its send; paused and resumed; visible per reader. (The kill -9 test is test_automations_crash.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from distributor.automations.delays import describe_delay, parse_delay
from distributor.automations.steps import run_due_steps
from distributor.automations.store import (
    list_automations,
    pause_automation,
    reader_steps,
    remove_step,
    resume_automation,
    set_step,
)
from distributor.db import session_factory, transaction, utcnow
from distributor.errors import AlreadyExists, DistributorError, NotFound
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import SendState
from subscribers.models import Subscriber
from subscribers.store import unsubscribe
from tests.support.automations import confirm, signed_up
from tests.support.sending import import_sample
from tests.support.web import web_settings


@pytest.mark.parametrize(
    ("text", "seconds", "spelt"),
    [("0", 0, "0"), ("3", 3 * 86400, "3d"), ("3d", 3 * 86400, "3d"), ("36h", 36 * 3600, "36h"),
     ("24H", 86400, "1d"), ("90m", 5400, "90m"), (" 2d ", 2 * 86400, "2d")],
)
def test_a_delay_reads_as_staff_write_it(text: str, seconds: int, spelt: str) -> None:
    assert parse_delay(text) == seconds
    assert describe_delay(seconds) == spelt


@pytest.mark.parametrize("text", ["", "-1", "3w", "1.5d", "367d", "d"])
def test_a_delay_that_does_not_read_is_refused(text: str) -> None:
    with pytest.raises(DistributorError) as refused:
        parse_delay(text)
    assert refused.value.code == "automation.delay"


def _deliveries(url: str, send_id: int) -> list[str]:
    with transaction(url) as session:
        return sorted(session.scalars(select(Delivery.address).where(Delivery.send_id == send_id)))


def _state(url: str, send_id: int) -> SendState:
    with transaction(url) as session:
        state = session.scalar(select(Send.state).where(Send.id == send_id))
        assert state is not None
        return state


def test_each_step_reaches_each_reader_once_as_their_moment_comes(
    database_url: str, sample_issue_path: Path
) -> None:
    url = database_url
    settings = web_settings(url)
    factory = session_factory(url)
    issue = import_sample(url, sample_issue_path)
    early = signed_up(url, "members", ["early@example.org"])
    confirm(url, early[0])  # joined before the automation existed: no welcome for them
    now = utcnow()
    with transaction(url) as session:
        welcome = set_step(session, "members", 0, issue, now)
        later = set_step(session, "members", parse_delay("3d"), issue, now)
        with pytest.raises(AlreadyExists):
            set_step(session, "members", 0, issue, now)
    with transaction(url) as session, pytest.raises(NotFound):
        set_step(session, "members", 60, 999_999, now)

    readers = signed_up(url, "members", [f"r{i}@example.org" for i in range(5)])
    for reader in readers[:4]:
        confirm(url, reader)
    confirm(url, readers[0])  # a second click: still one join
    soon = utcnow() + timedelta(seconds=1)
    assert run_due_steps(factory, settings, soon) == 4
    assert run_due_steps(factory, settings, soon) == 0, "a second tick claims nobody again"
    assert _deliveries(url, welcome.send_id) == [f"r{i}@example.org" for i in range(4)]
    assert _deliveries(url, later.send_id) == []
    assert _state(url, welcome.send_id) is SendState.RUNNING

    with transaction(url) as session:
        unsubscribe(session, session.get_one(Subscriber, readers[3]))  # left before day 3
        pause_automation(session, "members", utcnow())
    assert _state(url, welcome.send_id) is SendState.PAUSED
    in_three_days = soon + timedelta(days=3)
    assert run_due_steps(factory, settings, in_three_days) == 0, "paused: nobody is claimed"
    with transaction(url) as session:
        resume_automation(session, "members", utcnow())
    assert _state(url, welcome.send_id) is SendState.RUNNING
    assert run_due_steps(factory, settings, in_three_days) == 3, "resumed: the late ones go"
    assert len(_deliveries(url, later.send_id)) == 3, "not to the one who left"

    with transaction(url) as session:
        mine = reader_steps(session, readers[0])
        [view] = list_automations(session)
        assert reader_steps(session, readers[4]) == []  # never confirmed
        assert reader_steps(session, early[0]) == []
        joined = session.scalar(select(func.count()).select_from(Delivery))
    assert [(step.delay, step.send_id, step.state) for step in mine] == [
        ("0", welcome.send_id, "pending"),
        ("3d", later.send_id, "pending"),
    ]
    assert [(step.delay, step.reached) for step in view.steps] == [("0", 4), ("3d", 3)]
    assert joined == 7

    with transaction(url) as session:
        assert remove_step(session, "members", parse_delay("3d"), utcnow()) == later.send_id
    assert _state(url, later.send_id) is SendState.CANCELLED
