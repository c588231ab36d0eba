"""Every reader of a send's lists is in it or has a reason, on SQLite and PostgreSQL: one list
with a reader in each state, counted before the send is planned and after, and looked up one by
one; the form's count, the created send's and the planned rows agree; a reader who chose WeChat
without a follower account gets email, and the send says so."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from distributor.campaigns.left_out import Standing, left_out, look_up_reader
from distributor.campaigns.schedule import SendChanges, audience_reach, create_send, edit_send
from distributor.db import session_factory, transaction, utcnow
from distributor.errors import DistributorError, InvalidTransition
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery
from distributor.sending.planner import plan_send
from distributor.sending.queries import get_send
from distributor.vocabulary import Variant
from subscribers.query import Audience
from tests.support.sending import import_sample
from tests.support.standings import EXPECTED, LIST, readers_in_each_state

ZONE = ZoneInfo("Asia/Shanghai")

def test_every_reader_of_the_list_is_in_the_send_or_has_a_reason(
    database_url: str, sample_issue_path: Path
) -> None:
    readers_in_each_state(database_url)
    issue_id = import_sample(database_url, sample_issue_path)
    audience = Audience(lists=(LIST,), tags=("工会",))
    with transaction(database_url) as session:
        shown = audience_reach(
            session,
            issue_id=issue_id,
            audience=audience,
            variant=Variant.FULL,
            wechat_account="service",
        )
        created = create_send(
            session,
            issue_id=issue_id,
            audience=audience,
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZONE,
            wechat_account="service",
        )
    # The form's count is the send's: the WeChat reader without an account is one of them.
    assert shown.readers == created.readers == 2
    assert (shown.channels, shown.formats) == ({"email": 2}, {"full": 2})
    assert shown.fell_back == 1

    def counted() -> dict[str, int]:
        with transaction(database_url) as session:
            found = left_out(session, created.id, wechat=True)
        assert found.list_readers == len(EXPECTED)
        assert found.in_send + sum(found.reasons.values()) == found.list_readers
        assert found.fell_back == 1
        return {"in_send": found.in_send, **found.reasons}

    expected_counts: dict[str, int] = {}
    for standing in EXPECTED.values():
        expected_counts[standing.value] = expected_counts.get(standing.value, 0) + 1
    assert counted() == expected_counts  # before planning: whom it would reach

    with transaction(database_url) as session:
        start_due_sends(session, utcnow())
    plan_send(
        session_factory(database_url),
        created.id,
        batch_size=3,
        lease=timedelta(minutes=1),
        wechat=True,
    )
    with transaction(database_url) as session:
        planned = session.scalar(
            select(func.count(Delivery.id)).where(Delivery.send_id == created.id)
        )
    assert planned == created.readers
    assert counted() == expected_counts  # after: the same, from the rows

    with transaction(database_url) as session:
        for email, standing in EXPECTED.items():
            assert look_up_reader(session, created.id, email, wechat=True).standing is standing
        bounced = look_up_reader(session, created.id, "bounced@x.cn", wechat=True)
        assert bounced.detail == "bounced by test" and bounced.since is not None
        gone = look_up_reader(session, created.id, "GONE@x.cn", wechat=True)
        assert gone.since is not None
        fell_back = look_up_reader(session, created.id, "wechat@x.cn", wechat=True)
        assert (fell_back.state, fell_back.channel, fell_back.fell_back) == (
            "pending",
            "email",
            True,
        )
        elsewhere = look_up_reader(session, created.id, "elsewhere@x.cn", wechat=True)
        assert elsewhere.standing is Standing.NOT_ON_LISTS
        nobody = look_up_reader(session, created.id, "nobody@x.cn", wechat=True)
        assert nobody.standing is Standing.UNKNOWN


def test_without_wechat_set_up_every_wechat_reader_gets_email(
    database_url: str, sample_issue_path: Path
) -> None:
    readers_in_each_state(database_url)
    issue_id = import_sample(database_url, sample_issue_path)
    with transaction(database_url) as session:
        shown = audience_reach(
            session, issue_id=issue_id, audience=Audience(lists=(LIST,)), variant=Variant.FULL
        )
    # in, tagless, wechat and follower: WeChat cannot reach anyone, so both get email.
    assert (shown.readers, shown.channels, shown.fell_back) == (4, {"email": 4}, 2)


def test_a_draft_or_scheduled_send_changes_until_it_starts(
    database_url: str, sample_issue_path: Path
) -> None:
    readers_in_each_state(database_url)
    issue_id = import_sample(database_url, sample_issue_path)
    now = utcnow()
    with transaction(database_url) as session:
        draft = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=Variant.FULL,
            at=None,
            now=now,
            zone=ZONE,
            draft=True,
        )
    later = now + timedelta(days=1)
    changes = SendChanges(
        audience=Audience(lists=(LIST,), tags=("工会",)), variant=None, at=later, tracking=True
    )
    with transaction(database_url) as session:
        looked = edit_send(
            session, draft.id, changes, now=now, zone=ZONE, draft=False, dry_run=True
        )
    assert looked.readers == 3  # in, wechat (email instead), follower (no WeChat: email)
    with transaction(database_url) as session:
        still = get_send(session, draft.id)
        assert (still.state.value, still.scheduled_at, still.tracking) == ("draft", None, False)
        edit_send(session, draft.id, changes, now=now, zone=ZONE, draft=False)
    with transaction(database_url) as session:
        send = get_send(session, draft.id)
        assert (send.state.value, send.tracking, send.audience.tags) == (
            "scheduled",
            True,
            ("工会",),
        )
        assert send.scheduled_at == later
        past = SendChanges(audience=changes.audience, variant=None, at=now - timedelta(days=1))
        try:
            edit_send(session, draft.id, past, now=now, zone=ZONE, draft=False)
        except DistributorError as error:
            assert "in the past" in error.message
        else:
            raise AssertionError("a time in the past was taken")
    with transaction(database_url) as session:
        start_due_sends(session, later + timedelta(minutes=1))
    with transaction(database_url) as session:
        try:
            edit_send(session, draft.id, changes, now=now, zone=ZONE, draft=True)
        except InvalidTransition as error:
            assert "not started can be changed" in error.message
        else:
            raise AssertionError("a running send was changed")
