"""The feedback loop's effects in a real database: what each report does to its delivery, its
subscriber and its send, once, and never to anyone the report merely names."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from distributor.bounces import Feedback, FeedbackKind
from distributor.bounces.apply import (
    PausePolicy,
    Processed,
    apply_readings,
    decide,
    pause_reason,
    process_feedback,
    read,
)
from distributor.bounces.feedback import RecipientFailure, bounce_of
from distributor.bounces.mailbox import process_batch
from distributor.bounces.models import FeedbackMessage, FeedbackOutcome
from distributor.campaigns.status import send_status
from distributor.db import session_factory, transaction
from distributor.errors import DistributorError
from distributor.render.message_ids import MessageRef
from distributor.sending.lifecycle import resume_send
from distributor.sending.models import Delivery, Send
from distributor.sending.refusals import RefusalPolicy
from distributor.vocabulary import DeliveryChannel, DeliveryState, FailureCause, SendState, Variant
from subscribers.models import SubscriberStatus
from subscribers.store import change_address, status_history, unsuppress
from tests.support.bounces import VERP, fixture
from tests.support.feedback import (
    NOW_AT,
    SEND_ID,
    Seeded,
    delivery_state,
    readdressed,
    refusing_changes_to,
    seed_fixture_deliveries,
    subscriber_status,
)
from tests.test_bounces_classify import CAUSES, EXPECTED

LENIENT = PausePolicy(rate=1.0, min_accepted=1)
HARD, SOFT = FeedbackKind.HARD_BOUNCE, FeedbackKind.SOFT_BOUNCE
GONE = FailureCause.ADDRESS_GONE


def process(
    url: str, raw: bytes, policy: PausePolicy = LENIENT, at: timedelta = timedelta()
) -> Processed:
    with transaction(url) as session:
        return process_feedback(session, raw, verp=VERP, policy=policy, now=NOW_AT + at)


# --- the rules, pure -----------------------------------------------------------------------------


def test_the_rules() -> None:
    gone = RecipientFailure("a@example.org", HARD, "5.1.1", "user unknown", GONE)
    hard = bounce_of((gone,), "r", "rfc3464")
    effects = decide(hard, delivery_state=DeliveryState.SENT, address="a@example.org")
    assert (effects.delivery_state, effects.failure) == (DeliveryState.BOUNCED, gone)
    assert effects.reason == "hard bounce (address_gone): 5.1.1 user unknown"
    failed = decide(hard, delivery_state=DeliveryState.FAILED, address="a@example.org")
    assert failed.delivery_state is None
    complaint = decide(
        Feedback(FeedbackKind.COMPLAINT, "abuse report"),
        delivery_state=DeliveryState.SENT,
        address="a@example.org",
    )
    assert (complaint.delivery_state, complaint.suppress) == (
        DeliveryState.COMPLAINED,
        SubscriberStatus.COMPLAINED,
    )
    opt_out = decide(
        Feedback(FeedbackKind.OPT_OUT, "opt-out report"),
        delivery_state=DeliveryState.SENT,
        address="a@example.org",
    )
    assert (opt_out.delivery_state, opt_out.suppress) == (None, SubscriberStatus.UNSUBSCRIBED)
    full = RecipientFailure("a@example.org", SOFT, "4.2.2", None, FailureCause.MAILBOX_FULL)
    soft = decide(bounce_of((full,), "r", "rfc3464"), delivery_state=DeliveryState.SENT,
                  address="a@example.org")  # fmt: skip
    assert (soft.delivery_state, soft.suppress, soft.failure) == (None, None, full)


def test_a_multi_recipient_report_is_read_for_the_delivery_it_matched() -> None:
    first = RecipientFailure("a@example.org", HARD, "5.7.1", "blocked", FailureCause.BLOCKED)
    second = RecipientFailure("b@example.org", HARD, "5.1.1", "user unknown", GONE)
    report = bounce_of((first, second), "r", "rfc3464")
    assert decide(report, delivery_state=DeliveryState.SENT, address="B@example.org").failure == (
        second
    )
    assert decide(report, delivery_state=DeliveryState.SENT, address="c@x.org").failure == first


def test_a_send_pauses_when_a_bounce_crosses_the_limit_and_only_then() -> None:
    policy = PausePolicy(rate=0.05, min_accepted=100)
    assert pause_reason({"sent": 95, "bounced": 4}, {"sent": 94, "bounced": 5}, policy) is None
    reason = pause_reason({"sent": 96, "bounced": 5}, {"sent": 95, "bounced": 6}, policy)
    assert reason is not None and "6 messages bounced hard (5.9%" in reason
    # Already over before (staff resumed knowingly): the next bounce does not pause it again.
    assert pause_reason({"sent": 94, "bounced": 7}, {"sent": 93, "bounced": 8}, policy) is None
    # Too few accepted to judge.
    assert pause_reason({"sent": 5}, {"sent": 4, "bounced": 1}, policy) is None


# --- in a database -------------------------------------------------------------------------------


def test_every_fixture_has_its_effect_once(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url)
    first = {name: process(database_url, fixture(name)) for name in sorted(EXPECTED)}
    for name, result in first.items():
        kind = EXPECTED[name][0]
        assert result.kind is kind, name
        assert not result.repeat
        if name not in seeded:
            assert result.outcome is FeedbackOutcome.IGNORED, name  # the automatic replies
            continue
        each = seeded[name]
        state = delivery_state(database_url, each.delivery_id)
        status = subscriber_status(database_url, each.subscriber_id)
        if isinstance(EXPECTED[name][4], MessageRef):  # it quotes only our Message-ID
            assert result.outcome is FeedbackOutcome.UNMATCHED, name
            assert (state, status) == (DeliveryState.SENT, SubscriberStatus.ACTIVE), name
            continue
        assert result.outcome is FeedbackOutcome.APPLIED, (name, result.reason)
        assert result.delivery_id == each.delivery_id
        if kind is HARD and CAUSES[name] is GONE:
            assert (state, status) == (DeliveryState.BOUNCED, SubscriberStatus.BOUNCED), name
        elif kind is HARD:  # not the reader's doing, or not yet (a disabled mailbox)
            assert (state, status) == (DeliveryState.BOUNCED, SubscriberStatus.ACTIVE), name
        elif kind is SOFT:
            assert (state, status) == (DeliveryState.SENT, SubscriberStatus.ACTIVE), name
        else:
            assert (state, status) == (DeliveryState.COMPLAINED, SubscriberStatus.COMPLAINED)
    with transaction(database_url) as session:
        stored = session.scalars(select(FeedbackMessage).order_by(FeedbackMessage.id)).all()
        before = [(row.id, row.outcome, row.reason) for row in stored]
        status = send_status(session, SEND_ID)
        history = status_history(session, seeded["postfix-dsn-user-unknown.eml"].subscriber_id)
    hard = sum(1 for each in seeded.values() if each.kind is HARD)
    soft = sum(1 for each in seeded.values() if each.kind is SOFT)
    assert (status.bounced, status.complained, status.soft_bounces) == (hard, 1, soft)
    assert status.bounce_rate == pytest.approx(hard / len(seeded))
    assert "5.1.1" in (history[0].evidence or "")
    assert (history[0].cause, history[0].send_id) == (GONE, SEND_ID)
    assert [(e.old_status, e.new_status, e.source) for e in history] == [
        (SubscriberStatus.ACTIVE, SubscriberStatus.BOUNCED, "bounce")
    ]
    assert "5.1.1" in history[0].reason
    again = {name: process(database_url, fixture(name)) for name in sorted(EXPECTED)}
    assert all(result.repeat for result in again.values())
    assert {name: result.id for name, result in again.items()} == {
        name: result.id for name, result in first.items()
    }
    with transaction(database_url) as session:
        stored = session.scalars(select(FeedbackMessage).order_by(FeedbackMessage.id)).all()
        assert [(row.id, row.outcome, row.reason) for row in stored] == before


def test_a_full_mailbox_suppresses_when_3_of_the_readers_last_5_messages_fail(
    database_url: str,
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    reader = seeded["postfix-dsn-delayed.eml"]  # 452 4.2.2 Mailbox full
    first, *later = [reader.delivery_id, *add_sends_to(database_url, reader, [
        1102, 1202, 1302, 1402, 1502, 1602])]  # fmt: skip
    delayed = fixture("postfix-dsn-delayed.eml")

    def soft(delivery_id: int, salt: bytes = b"") -> Processed:
        result = process(database_url, readdressed(delayed, delivery_id) + salt)
        assert result.outcome is FeedbackOutcome.APPLIED, result.reason
        return result

    soft(first)
    soft(first, b"\n")  # the relay warned again about the same message: it counts once
    soft(later[0])
    # Four messages arrived since: the last 5 hold one failure.
    soft(later[5])
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.ACTIVE
    soft(later[4])
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.ACTIVE
    third = soft(later[3])
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.BOUNCED
    assert "3 of the last 5 messages failed at the reader's mailbox" in third.reason
    assert delivery_state(database_url, later[3]) is DeliveryState.SENT
    with transaction(database_url) as session:
        (event,) = status_history(session, reader.subscriber_id)
    assert (event.cause, event.send_id) == (FailureCause.MAILBOX_FULL, SEND_ID + 4)


def test_a_blocklist_bounce_never_suppresses_and_a_wave_pauses_the_send(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url, state=SendState.RUNNING)
    gone = seeded["postfix-dsn-user-unknown.eml"]
    blocked = (
        fixture("postfix-dsn-user-unknown.eml")
        .replace(b"Status: 5.1.1", b"Status: 5.7.1")
        .replace(
            b"smtp; 550 5.1.1 <wang.fang@example.net>: Recipient address\n    rejected: User "
            b"unknown in virtual mailbox table",
            b"smtp; 550 5.7.1 Service unavailable; client [203.0.113.25] blocked\n    using "
            b"zen.spamhaus.org",
        )
    )
    assert blocked != fixture("postfix-dsn-user-unknown.eml")
    policy = PausePolicy(rate=1.0, min_accepted=1, refusals=RefusalPolicy(0.5, 1))
    result = process(database_url, blocked, policy)
    assert result.outcome is FeedbackOutcome.APPLIED, result.reason
    assert delivery_state(database_url, gone.delivery_id) is DeliveryState.BOUNCED
    assert subscriber_status(database_url, gone.subscriber_id) is SubscriberStatus.ACTIVE
    assert f"send {SEND_ID} paused: example.net refuses our mail (blocked)" in result.reason
    with transaction(database_url) as session:
        assert session.get_one(Send, SEND_ID).state is SendState.PAUSED
        cause = session.get_one(Delivery, gone.delivery_id).failure_cause
    assert cause is FailureCause.BLOCKED


def add_sends_to(url: str, reader: Seeded, delivery_ids: list[int]) -> list[int]:
    """One more send per id, each with a sent delivery to ``reader``."""
    with transaction(url) as session:
        template = session.get_one(Send, SEND_ID)
        for offset, delivery_id in enumerate(delivery_ids, start=1):
            session.add(
                Send(
                    id=SEND_ID + offset,
                    issue_id=template.issue_id,
                    audience=template.audience,
                    variant=template.variant,
                    state=SendState.DONE,
                )
            )
            session.flush()
            session.add(
                Delivery(
                    id=delivery_id,
                    send_id=SEND_ID + offset,
                    subscriber_id=reader.subscriber_id,
                    channel=DeliveryChannel.EMAIL,
                    address=reader.address,
                    variant=Variant.FULL,
                    state=DeliveryState.SENT,
                )
            )
    return delivery_ids


def test_suppression_follows_the_delivery_not_the_address_the_report_names(
    database_url: str,
) -> None:
    seeded = seed_fixture_deliveries(database_url)
    bounced = seeded["postfix-dsn-user-unknown.eml"]
    victim = seeded["gmail-dsn-no-such-account.eml"]
    raw = fixture("postfix-dsn-user-unknown.eml").replace(
        bounced.address.encode(), victim.address.encode()
    )
    result = process(database_url, raw)
    assert result.delivery_id == bounced.delivery_id
    assert subscriber_status(database_url, bounced.subscriber_id) is SubscriberStatus.BOUNCED
    assert subscriber_status(database_url, victim.subscriber_id) is SubscriberStatus.ACTIVE


def test_a_bounce_for_an_address_since_corrected_suppresses_nobody(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url)
    bounced = seeded["postfix-dsn-user-unknown.eml"]
    with transaction(database_url) as session:
        change_address(session, bounced.address, "wang.fang@new.example.net")
    result = process(database_url, fixture("postfix-dsn-user-unknown.eml"))
    assert result.outcome is FeedbackOutcome.APPLIED
    assert delivery_state(database_url, bounced.delivery_id) is DeliveryState.BOUNCED
    assert subscriber_status(database_url, bounced.subscriber_id) is SubscriberStatus.ACTIVE


def test_a_send_with_too_many_hard_bounces_pauses_itself_once(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url, state=SendState.RUNNING)
    hard = sorted(name for name, each in seeded.items() if CAUSES.get(name) is GONE)
    policy = PausePolicy(rate=0.1, min_accepted=len(seeded))
    first, second, third = (process(database_url, fixture(name), policy) for name in hard[:3])
    assert "paused" not in first.reason + second.reason  # 1/21, 2/21
    assert f"send {SEND_ID} paused;" in third.reason  # 3/21 > 10 %
    with transaction(database_url) as session:
        status = send_status(session, SEND_ID)
        assert status.state == "paused"
        assert status.error is not None and "3 messages bounced hard (14.3%" in status.error
        resume_send(session, SEND_ID, NOW_AT)
    assert "paused" not in process(database_url, fixture(hard[3]), policy).reason
    with transaction(database_url) as session:
        assert session.get_one(Send, SEND_ID).state is SendState.RUNNING


def test_unmatched_reports_are_kept_whole_for_a_person(database_url: str) -> None:
    seed_fixture_deliveries(database_url)
    forged = re.sub(rb"-[a-z2-7]{26}@", b"-" + b"a" * 26 + b"@", fixture("exim-failed.eml"))
    result = process(database_url, forged)
    assert result.outcome is FeedbackOutcome.UNMATCHED and not result.handled
    assert "forged" in result.reason
    assert subscriber_status(database_url, 5001) is SubscriberStatus.ACTIVE
    with transaction(database_url) as session:
        row = session.get_one(FeedbackMessage, result.id)
        assert row.raw == forged and row.delivery_id is None


def test_lifting_a_suppression_needs_a_reason_and_is_logged(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url)
    complained = seeded["arf-abuse-yahoo.eml"]
    process(database_url, fixture("arf-abuse-yahoo.eml"))
    with transaction(database_url) as session:
        with pytest.raises(DistributorError, match="a reason is required"):
            unsuppress(session, complained.address, reason="  ", source="staff")
        unsuppress(session, complained.address, reason="asked us by phone", source="staff")
        history = status_history(session, complained.subscriber_id)
        with pytest.raises(DistributorError, match="is active, not suppressed"):
            unsuppress(session, complained.address, reason="again", source="staff")
    assert [(e.new_status, e.source) for e in history] == [
        (SubscriberStatus.COMPLAINED, "complaint"),
        (SubscriberStatus.ACTIVE, "staff"),
    ]
    assert history[1].reason == "asked us by phone"


# --- in batches ----------------------------------------------------------------------------------


def test_a_batch_has_the_effects_of_its_messages_one_after_another(database_url: str) -> None:
    """Within one transaction: soft bounces counting up to a suppression, a pause crossing its
    limit, a second report on a bounced delivery, and the same bytes twice."""
    seeded = seed_fixture_deliveries(database_url, state=SendState.RUNNING)
    reader = seeded["postfix-dsn-delayed.eml"]
    later = add_sends_to(database_url, reader, [1102, 1202])
    delayed = fixture("postfix-dsn-delayed.eml")
    hard = sorted(name for name, each in seeded.items() if CAUSES.get(name) is GONE)
    raws = [
        readdressed(delayed, reader.delivery_id),
        readdressed(delayed, later[0]),
        *(fixture(name) for name in hard[:3]),
        fixture(hard[0]),  # the same bytes again
        fixture(hard[1]) + b"\n",  # another report on a delivery bounced just before
        readdressed(delayed, later[1]),
    ]
    policy = PausePolicy(rate=0.1, min_accepted=len(seeded))
    with transaction(database_url) as session:
        readings = [read(raw, verp=VERP, now=NOW_AT) for raw in raws]
        results = apply_readings(session, readings, policy=policy, now=NOW_AT)

    assert [result.outcome for result in results] == [FeedbackOutcome.APPLIED] * len(raws)
    assert [result.repeat for result in results] == [False] * 5 + [True] + [False] * 2
    assert results[5].id == results[2].id and results[5].reason == results[2].reason
    assert len({result.id for result in results}) == len(raws) - 1
    first, second, third = (seeded[name] for name in hard[:3])
    for result, each in zip(results[2:5], (first, second, third), strict=True):
        assert f"delivery {each.delivery_id} is bounced" in result.reason
        assert f"subscriber {each.subscriber_id} suppressed" in result.reason
    assert "paused" not in results[2].reason + results[3].reason  # 1/21, 2/21
    assert f"send {SEND_ID} paused;" in results[4].reason  # 3/21 > 10 %
    assert "delivery" not in results[6].reason and "suppressed" not in results[6].reason
    assert "soft bounces" not in results[0].reason + results[1].reason
    assert "3 of the last 3 messages failed at the reader's mailbox" in results[7].reason
    assert f"subscriber {reader.subscriber_id} suppressed" in results[7].reason
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.BOUNCED
    with transaction(database_url) as session:
        assert session.get_one(Send, SEND_ID).state is SendState.PAUSED
        status = send_status(session, SEND_ID)
        assert (status.bounced, status.soft_bounces) == (3, 1)
        assert len(status_history(session, first.subscriber_id)) == 1
        assert len(status_history(session, reader.subscriber_id)) == 1
        stored = session.scalars(select(FeedbackMessage.id).order_by(FeedbackMessage.id)).all()
    assert stored == sorted({result.id for result in results})
    # The whole batch again: nothing new.
    with transaction(database_url) as session:
        again = apply_readings(session, readings, policy=policy, now=NOW_AT)
    assert [(r.id, r.reason, r.repeat) for r in again] == [(r.id, r.reason, True) for r in results]


def test_a_message_that_fails_in_a_batch_costs_only_itself(database_url: str) -> None:
    seeded = seed_fixture_deliveries(database_url)
    names = sorted(name for name, each in seeded.items() if each.kind is HARD)[:4]
    raws = [readdressed(fixture(name), now=None) for name in names]
    victim = seeded[names[1]]
    factory = session_factory(database_url)
    with refusing_changes_to(database_url, victim.delivery_id):
        results = process_batch(factory, raws, verp=VERP, policy=LENIENT)
    assert isinstance(results[1], SQLAlchemyError)
    for name, result in zip(names, results, strict=True):
        if name == names[1]:
            continue
        assert isinstance(result, Processed) and result.outcome is FeedbackOutcome.APPLIED, name
        assert delivery_state(database_url, seeded[name].delivery_id) is DeliveryState.BOUNCED
    assert delivery_state(database_url, victim.delivery_id) is DeliveryState.SENT
    assert subscriber_status(database_url, victim.subscriber_id) is SubscriberStatus.ACTIVE
    with transaction(database_url) as session:
        assert (
            session.scalar(select(FeedbackMessage.id).filter_by(delivery_id=victim.delivery_id))
            is None
        )

    again = process_batch(factory, raws, verp=VERP, policy=LENIENT)
    assert [isinstance(r, Processed) and r.repeat for r in again] == [True, False, True, True]
    assert delivery_state(database_url, victim.delivery_id) is DeliveryState.BOUNCED
    assert subscriber_status(database_url, victim.subscriber_id) is SubscriberStatus.BOUNCED


def test_feedback_reports_act_by_their_type(database_url: str) -> None:
    """ARF by feedback type: opt-out unsubscribes the reader (the message stays delivered);
    auth-failure, a DMARC failure report about our mail, touches nobody."""
    seeded = seed_fixture_deliveries(database_url)
    reader = seeded["arf-abuse-yahoo.eml"]
    abuse = fixture("arf-abuse-yahoo.eml")
    assert b"Feedback-Type: abuse" in abuse
    dmarc = process(
        database_url, abuse.replace(b"Feedback-Type: abuse", b"Feedback-Type: auth-failure")
    )
    assert (dmarc.kind, dmarc.outcome) == (FeedbackKind.AUTH_REPORT, FeedbackOutcome.IGNORED)
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.ACTIVE
    opt_out = process(
        database_url, abuse.replace(b"Feedback-Type: abuse", b"Feedback-Type: opt-out")
    )
    assert (opt_out.kind, opt_out.outcome) == (FeedbackKind.OPT_OUT, FeedbackOutcome.APPLIED)
    assert delivery_state(database_url, reader.delivery_id) is DeliveryState.SENT
    assert subscriber_status(database_url, reader.subscriber_id) is SubscriberStatus.UNSUBSCRIBED
    with transaction(database_url) as session:
        (event,) = status_history(session, reader.subscriber_id)
    assert (event.new_status, event.source) == (SubscriberStatus.UNSUBSCRIBED, "opt-out report")
