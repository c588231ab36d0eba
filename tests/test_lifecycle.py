"""Send state moves without a worker: each is one conditional UPDATE on a real database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from distributor.campaigns.schedule import create_send
from distributor.db import transaction, utcnow
from distributor.errors import InvalidTransition
from distributor.sending.lifecycle import (
    cancel_send,
    pause_send,
    resume_send,
    start_due_sends,
)
from distributor.sending.models import Send
from distributor.vocabulary import SendState, Variant
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.sending import import_sample


def new_send(url: str, sample: Path, *, in_hours: float) -> int:
    make_audience(url, "members", 1)
    issue_id = import_sample(url, sample)
    at = utcnow() + timedelta(hours=in_hours)
    with transaction(url) as session:
        return create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            at=at,
            now=min(at, utcnow()),  # a send in the past was created back then
            zone=ZoneInfo("Asia/Shanghai"),
        ).id


def state(url: str, send_id: int) -> SendState:
    with transaction(url) as session:
        send = session.get(Send, send_id)
        assert send is not None
        return send.state


def test_a_send_paused_before_its_time_waits_for_it_again(
    database_url: str, sample_issue_path: Path
) -> None:
    send_id = new_send(database_url, sample_issue_path, in_hours=2)
    with transaction(database_url) as session:
        pause_send(session, send_id, utcnow())
        assert start_due_sends(session, utcnow() + timedelta(hours=3)) == []  # paused: not started
        resume_send(session, send_id, utcnow())
    assert state(database_url, send_id) is SendState.SCHEDULED


def test_expiry_then_resume_starts_it_now(database_url: str, sample_issue_path: Path) -> None:
    send_id = new_send(database_url, sample_issue_path, in_hours=-7)  # default expiry: 6 h
    with transaction(database_url) as session:
        assert start_due_sends(session, utcnow()) == []
    assert state(database_url, send_id) is SendState.EXPIRED
    with transaction(database_url) as session:
        resume_send(session, send_id, utcnow())
        send = session.get(Send, send_id)
        assert send is not None and send.started_at is not None and send.expires_at is None
    assert state(database_url, send_id) is SendState.RUNNING


def test_a_cancelled_send_stays_cancelled(sqlite_url: str, sample_issue_path: Path) -> None:
    send_id = new_send(sqlite_url, sample_issue_path, in_hours=1)
    with transaction(sqlite_url) as session:
        cancel_send(session, send_id, utcnow())
    for action in (pause_send, resume_send, cancel_send):
        with (
            pytest.raises(InvalidTransition, match=f"send {send_id} is cancelled"),
            transaction(sqlite_url) as session,
        ):
            action(session, send_id, utcnow())
