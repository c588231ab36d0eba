"""In one process, against a real SMTP server: a relay's cap with nowhere else to go (what is over
it waits, deferred without an attempt spent and with the reason on the row, instead of failing; a
message refused does not count), and a domain that answers "too many" slowed down."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

from sqlalchemy import select

from distributor.config import Settings
from distributor.db import transaction
from distributor.sending.models import Delivery
from distributor.sending.route_status import routing_now
from distributor.vocabulary import DeliveryState
from tests.support.audience import make_audience
from tests.support.sending import (
    engine_env,
    import_sample,
    relays_file,
    send_in_this_process,
    started_send,
)
from tests.support.smtp import RecordingHandler, SmtpServer


def test_what_is_over_a_lone_relays_cap_waits_for_its_next_window(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 6)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    refused = "reader00001@example.org"
    handler = RecordingHandler(
        fault=lambda rcpt, _n: "451 4.3.0 try later" if rcpt == refused else None
    )
    with SmtpServer(handler) as smtp:
        plan = relays_file(
            tmp_path,
            f"relays:\n  - {{name: only, host: 127.0.0.1, port: {smtp.port}, hourly_cap: 3}}\n",
        )
        env = engine_env(sqlite_url, "memory://", smtp, SMTP_RELAYS_FILE=plan)
        send_id = started_send(sqlite_url, issue_id, "members")
        send_in_this_process(env, send_id)
    assert len(smtp.handler.received) == 3  # the refused one did not use a place
    with transaction(sqlite_url) as session:
        rows = session.execute(
            select(Delivery.address, Delivery.state, Delivery.attempts, Delivery.last_error)
            .where(Delivery.send_id == send_id)
            .order_by(Delivery.id)
        ).all()
    waiting = [row for row in rows if row.state is DeliveryState.DEFERRED and row.attempts == 0]
    assert len(waiting) == 2
    for row in waiting:
        assert row.last_error == (
            "waiting: every relay that may send to example.org is resting or full"
        )
    [tried] = [row for row in rows if row.address == refused]
    assert (tried.state, tried.attempts) == (DeliveryState.DEFERRED, 1)
    assert sum(row.state is DeliveryState.SENT for row in rows) == 3


def test_too_many_answers_slow_a_domain_down_and_the_status_shows_it(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 4, domain="163.com")
    issue_id = import_sample(sqlite_url, sample_issue_path)
    throttled = "421 4.7.0 HL:ICC too many connections from your IP, frequency limited"
    handler = RecordingHandler(fault=lambda _rcpt, n: throttled if n == 1 else None)
    with SmtpServer(handler) as smtp:
        plan = relays_file(
            tmp_path,
            f"relays:\n  - {{name: only, host: 127.0.0.1, port: {smtp.port}}}\n"
            "domains:\n  163.com: {rate: 40}\n",
        )
        env = engine_env(sqlite_url, "memory://", smtp, SMTP_RELAYS_FILE=plan)
        send_id = started_send(sqlite_url, issue_id, "members")
        send_in_this_process(env, send_id)
        report = routing_now(Settings.from_env(env))
    [netease] = [domain for domain in report.domains if domain.domain == "163.com"]
    # Four first tries, each "too many": the first halves the rate; the rest came within a tenth
    # of the slowdown period (answers to messages already on their way) and add nothing.
    assert (netease.slowdown, netease.rate_now) == (1, 20.0)
    assert netease.hourly_cap_left == 3000 and netease.daily_cap_left == 100_000
    assert len(smtp.handler.received) == 0  # all four deferred for their retry


def test_a_paced_domain_waits_its_turns_while_the_other_domains_go_on(
    sqlite_url: str, sample_issue_path: Path, tmp_path: Path
) -> None:
    netease = make_audience(sqlite_url, "members", 12, domain="163.com")
    others = make_audience(sqlite_url, "members", 20, prefix="other")
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer() as smtp:
        plan = relays_file(
            tmp_path,
            f"relays:\n  - {{name: only, host: 127.0.0.1, port: {smtp.port}}}\n"
            "domains:\n  163.com: {rate: 0.25}\n",  # a turn every 4 s: longer than a busy
            # machine takes to send the batch's 20 other readers
        )
        env = engine_env(sqlite_url, "memory://", smtp, SMTP_RELAYS_FILE=plan)
        send_id = started_send(sqlite_url, issue_id, "members")
        send_in_this_process(env, send_id)
        received = list(smtp.handler.received)
    # The batch's other readers went at once, not after 163.com's turns (its readers come first
    # in the batch); 163.com at its pace, its further readers deferred to their turns.
    to_163 = [r.at for r in received if r.recipient in netease]
    to_others = [r.at for r in received if r.recipient in others]
    assert len(to_others) == 20 and len(to_163) >= 1
    assert len(to_163) == 1 or max(to_others) < to_163[1]
    assert all(b - a >= 3.9 for a, b in pairwise(to_163))
    with transaction(sqlite_url) as session:
        waiting = session.execute(
            select(Delivery.attempts, Delivery.last_error)
            .where(Delivery.send_id == send_id, Delivery.state == DeliveryState.DEFERRED)
        ).all()
    assert len(waiting) == 12 - len(to_163)
    assert set(waiting) <= {(0, "waiting: 163.com is sent 0.25 a second")}
