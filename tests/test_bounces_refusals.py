"""A real send to a loopback SMTP server that refuses some readers itself: "550 5.1.1 user
unknown" at RCPT suppresses them with its cause; "550 5.7.1 … blocklist" at DATA never counts
against the reader, but a wave of it pauses the send, naming the domain and why."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction
from distributor.runtime import WorkerRuntime
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState, FailureCause
from subscribers.models import Subscriber, SubscriberEvent, SubscriberStatus
from tests.support.audience import make_audience
from tests.support.sending import (
    engine_env,
    import_sample,
    send_in_this_process,
    started_send,
    status_of,
)
from tests.support.smtp import RecordingHandler, SmtpServer

GONE_DOMAIN, BLOCKING_DOMAIN = "gone.example.org", "blocking.example.net"
USER_UNKNOWN = "550 5.1.1 <{}>: Recipient address rejected: User unknown in virtual mailbox table"
BLOCKLISTED = (
    "550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org; "
    "https://www.spamhaus.org/query/ip/127.0.0.1 (our blocklist)"
)


class RefusingServer(RecordingHandler):
    """Refuses unknown users at RCPT and everyone of a blocking domain at DATA."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.endswith("@" + GONE_DOMAIN):
            return USER_UNKNOWN.format(address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


def refuse_blocking_domain(recipient: str, attempt: int) -> str | None:
    return BLOCKLISTED if recipient.endswith("@" + BLOCKING_DOMAIN) else None


def test_user_unknown_suppresses_the_reader_and_a_blocklist_pauses_the_send(
    database_url: str, sample_issue_path: Any
) -> None:
    fine = make_audience(database_url, "members", 4)
    gone = make_audience(database_url, "members", 3, domain=GONE_DOMAIN, prefix="gone")
    blocked = make_audience(database_url, "members", 12, domain=BLOCKING_DOMAIN, prefix="b")
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer(RefusingServer(fault=refuse_blocking_domain)) as smtp:
        env = engine_env(
            database_url,
            "memory://",
            smtp,
            REFUSAL_PAUSE_RATE="0.5",
            REFUSAL_PAUSE_MIN_ATTEMPTS="4",
        )
        send_id = started_send(database_url, issue_id, "members")
        send_in_this_process(env, send_id)
        received = smtp.handler.counts()
    assert sorted(received) == fine

    status = status_of(database_url, send_id)
    assert status.state == "paused"
    assert status.error is not None and status.error.startswith(
        f"{BLOCKING_DOMAIN} refuses our mail (blocked): "
    )
    assert "spamhaus" in status.error
    assert status.refused_by is not None
    assert status.refused_by.startswith(f"{BLOCKING_DOMAIN} refuses our mail (blocked)")
    with transaction(database_url) as session:
        readers = {s.email: s for s in session.scalars(select(Subscriber))}
        events = {e.subscriber_id: e for e in session.scalars(select(SubscriberEvent))}
        deliveries = {d.address: d for d in session.scalars(select(Delivery))}
    for address in gone:
        reader = readers[address]
        assert reader.status is SubscriberStatus.BOUNCED
        event = events[reader.id]
        assert (event.cause, event.send_id) == (FailureCause.ADDRESS_GONE, send_id)
        assert event.evidence is not None and "User unknown" in event.evidence
        assert deliveries[address].failure_cause is FailureCause.ADDRESS_GONE
    refused = [a for a in blocked if deliveries[a].state is DeliveryState.FAILED]
    assert len(refused) == 4  # the pause stopped the wave at once
    assert all(deliveries[a].failure_cause is FailureCause.BLOCKED for a in refused)
    assert all(readers[a].status is SubscriberStatus.ACTIVE for a in blocked)
    assert not {readers[a].id for a in blocked} & set(events)

    shown = CliRunner().invoke(main, ["send", "status", str(send_id)], env=env)
    assert f"{BLOCKING_DOMAIN} refuses our mail (blocked)" in shown.output.replace("\n", " ")


class FullMailbox(RecordingHandler):
    """Answers at RCPT that one reader's mailbox is full."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("full"):
            return f"552 5.2.2 <{address}>: Recipient address rejected: Mailbox is full"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"


def test_a_full_mailbox_suppresses_the_reader_at_the_third_send_not_before(
    database_url: str, sample_issue_path: Any
) -> None:
    make_audience(database_url, "members", 2)
    (full,) = make_audience(database_url, "members", 1, prefix="full")
    issue_id = import_sample(database_url, sample_issue_path)
    seen = []
    with SmtpServer(FullMailbox()) as smtp:
        runtime = WorkerRuntime.from_settings(Settings.from_env(
            engine_env(database_url, "memory://", smtp)))  # fmt: skip
        try:
            for _ in range(3):
                send_id = started_send(database_url, issue_id, "members")
                runtime.plan(send_id)
                runtime.drain_now()
                with transaction(database_url) as session:
                    reader = session.scalars(select(Subscriber).filter_by(email=full)).one()
                    seen.append(reader.status)
        finally:
            runtime.close()
    assert seen == [SubscriberStatus.ACTIVE, SubscriberStatus.ACTIVE, SubscriberStatus.BOUNCED]
    with transaction(database_url) as session:
        (event,) = session.scalars(select(SubscriberEvent).filter_by(subscriber_id=reader.id))
    assert (event.cause, event.send_id) == (FailureCause.MAILBOX_FULL, send_id)
    assert event.reason.startswith("3 of the last 3 messages failed at the reader's mailbox")
