"""Subscriber care as staff give it, on SQLite and PostgreSQL: stopping and restarting a person's
mail only with a note of their consent, their lists, tags and attributes, and erasing them: the
person and their personal data go, the sends' counts stay, anonymous."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from distributor.campaigns.erasure import erase_subscriber
from distributor.campaigns.schedule import create_send
from distributor.cli import main
from distributor.db import session_factory, transaction, utcnow
from distributor.errors import DistributorError
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery, DeliveryAttempt
from distributor.sending.planner import plan_send
from distributor.sending.queries import delivery_counts_of
from distributor.staff.audit import audit_of, record_audit
from distributor.vocabulary import DeliveryState, Variant
from subscribers.care import (
    resubscribe_at_request,
    set_attributes,
    set_lists,
    set_tags,
    unsubscribe_at_request,
)
from subscribers.models import Subscriber, SubscriberStatus, SubscriptionStatus, Tag
from subscribers.query import Audience
from subscribers.store import add_subscriber, create_list, find_subscriber, status_history
from tests.support.sending import import_sample

LEFT = SubscriptionStatus.UNSUBSCRIBED


def test_mail_stops_and_starts_again_only_with_a_note_of_consent(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        create_list(session, "青年")
        person = add_subscriber(session, "wang@qq.com", lists=["会员快讯"]).subscriber
        with pytest.raises(DistributorError, match="a note is required"):
            unsubscribe_at_request(session, person, note="  ", source="staff li")
        unsubscribe_at_request(session, person, note="asked by phone", source="staff li")
        assert person.status is SubscriberStatus.UNSUBSCRIBED
        with pytest.raises(DistributorError, match="join no list"):
            set_lists(session, person, ["青年"])
        with pytest.raises(DistributorError, match="a note is required"):
            resubscribe_at_request(session, person, ["青年"], note="", source="staff li")
        resubscribe_at_request(session, person, ["青年"], note="letter of 12-05", source="staff li")
    with transaction(database_url) as session:
        person = find_subscriber(session, "wang@qq.com")
        assert person.status is SubscriberStatus.ACTIVE
        assert person.consent_source == "staff li: letter of 12-05"
        on = {sub.mailing_list.name: sub.status for sub in person.subscriptions}
        assert on == {"会员快讯": LEFT, "青年": SubscriptionStatus.ACTIVE}
        log = [(e.new_status.value, e.reason, e.source) for e in status_history(session, person.id)]
        assert log == [
            ("unsubscribed", "asked by phone", "staff li"),
            ("active", "letter of 12-05", "staff li"),
        ]


def test_lists_tags_and_attributes_are_set_exactly(database_url: str) -> None:
    with transaction(database_url) as session:
        for name in ("会员快讯", "青年"):
            create_list(session, name)
        person = add_subscriber(session, "li@163.com", lists=["会员快讯"]).subscriber
        set_lists(session, person, ["青年"])
        set_tags(session, person, ["工会", " 青年 ", "工会", ""])
        set_attributes(person, {"城市": "宁波"})
        with pytest.raises(DistributorError, match="needs a name"):
            set_attributes(person, {" ": "x"})
        with pytest.raises(DistributorError, match="no list"):
            set_lists(session, person, ["没有这个"])
    with transaction(database_url) as session:
        person = find_subscriber(session, "li@163.com")
        on = {sub.mailing_list.name: sub.status for sub in person.subscriptions}
        assert on == {"会员快讯": LEFT, "青年": SubscriptionStatus.ACTIVE}
        assert [tag.name for tag in person.tags] == ["工会", "青年"]
        assert person.attributes == {"城市": "宁波"}
        set_tags(session, person, [])
    with transaction(database_url) as session:
        assert find_subscriber(session, "li@163.com").tags == []
        assert session.scalar(select(func.count(Tag.id))) == 2  # tags stay for others


def test_an_erased_person_is_gone_and_their_send_still_counts(
    database_url: str, sample_issue_path: Path
) -> None:
    issue_id = import_sample(database_url, sample_issue_path)
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        for email in ("wang@qq.com", "li@163.com"):
            add_subscriber(session, email, name="王五", lists=["会员快讯"])
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=("会员快讯",)),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("Asia/Shanghai"),
        ).id
        start_due_sends(session, utcnow())
    plan_send(session_factory(database_url), send_id, batch_size=10, lease=timedelta(minutes=1))
    with transaction(database_url) as session:
        wang = find_subscriber(session, "wang@qq.com")
        row = session.scalars(select(Delivery).where(Delivery.subscriber_id == wang.id)).one()
        row.state, row.smtp_response = DeliveryState.FAILED, "550 5.1.1 <wang@qq.com> unknown"
        refusal = "550 5.1.1 <wang@qq.com> unknown"
        session.add(
            DeliveryAttempt(delivery_id=row.id, attempt=1, outcome="failed", detail=refusal)
        )
        detail = {"email": "wang@qq.com"}
        record_audit(session, None, "subscriber.edit", "subscriber", wang.id, detail)
        wang_id = wang.id
    with transaction(database_url) as session:
        before = delivery_counts_of(session, [send_id])
        assert erase_subscriber(session, wang_id) == 1
    with transaction(database_url) as session:
        assert session.get(Subscriber, wang_id) is None
        assert delivery_counts_of(session, [send_id]) == before
        assert before == {send_id: {"pending": 1, "failed": 1}}
        addresses = session.scalars(select(Delivery.address).order_by(Delivery.id)).all()
        assert "wang@qq.com" not in addresses and "li@163.com" in addresses
        erased = session.scalars(select(Delivery).where(Delivery.address.like("erased-%"))).one()
        assert (erased.name, erased.subscriber_id, erased.smtp_response) == (None, None, None)
        assert erased.state is DeliveryState.FAILED
        details = session.scalars(select(DeliveryAttempt.detail)).all()
        assert not [d for d in details if d and "wang@qq.com" in d]
        assert [e.detail for e in audit_of(session, "subscriber", wang_id)] == [{}]


def test_the_cli_erases_only_with_a_note_and_a_yes(database_url: str) -> None:
    with transaction(database_url) as session:
        create_list(session, "会员快讯")
        person_id = add_subscriber(session, "zhao@qq.com", lists=["会员快讯"]).subscriber.id
    env = {"DATABASE_URL": database_url}

    def erase(*args: str, answer: str | None = None) -> str:
        result = CliRunner().invoke(main, ["subscribers", "erase", "zhao@qq.com", *args],
                                    env=env, input=answer)
        return result.output

    assert "a note is required" in erase("--note", " ", "--yes")
    assert "Aborted" in erase("--note", "by phone", answer="n\n")
    with transaction(database_url) as session:
        assert session.get(Subscriber, person_id) is not None
    assert erase("--note", "by phone", answer="y\n").endswith(
        f"Erased subscriber ID {person_id}: 0 of their deliveries stay, counted, without their "
        "address or name.\n"
    )
    with transaction(database_url) as session:
        assert session.get(Subscriber, person_id) is None
        [entry] = audit_of(session, "subscriber", person_id)
        assert (entry.actor, entry.action, entry.detail) == (
            "cli",
            "subscriber.erase",
            {"note": "by phone", "deliveries": 0},
        )
