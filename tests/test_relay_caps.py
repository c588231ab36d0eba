"""A relay's cap with nowhere else to go: what is over it waits, deferred without an attempt
spent and with the reason on the row, instead of failing; a message refused does not count."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from distributor.db import transaction
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from tests.support.audience import make_audience
from tests.support.sending import engine_env, import_sample, send_in_this_process, started_send
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
        plan = tmp_path / "relays.yaml"
        plan.write_text(
            f"relays:\n  - {{name: only, host: 127.0.0.1, port: {smtp.port}, hourly_cap: 3}}\n",
            encoding="utf-8",
        )
        env = engine_env(sqlite_url, "memory://", smtp, SMTP_RELAYS_FILE=str(plan))
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
