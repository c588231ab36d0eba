"""Claims, leases, sweeps and slots against real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import func, insert, select, update

from distributor.campaigns.status import send_status
from distributor.channels.base import Outcome, Receipt
from distributor.channels.smtp import classify
from distributor.db import get_engine, session_factory, transaction
from distributor.issues.document import Article, Block, IssueDocument
from distributor.issues.store import save_issue
from distributor.sending.claim import (
    claim_batch,
    has_claimable,
    release_claims,
    sweep_expired_claims,
)
from distributor.sending.dispatch import ResultRecorder
from distributor.sending.lifecycle import cancel_send
from distributor.sending.models import Delivery, DeliveryAttempt, Send
from distributor.sending.pg_journal import PreparedJournal
from distributor.sending.policy import RetryPolicy
from distributor.sending.slots import (
    hand_over_slot,
    release_slot,
    reserve_free_slots,
    take_slot,
)
from distributor.vocabulary import DeliveryState, SendState, Variant
from subscribers.query import Audience
from tests.support.statements import statements_run

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
LEASE = NOW + timedelta(seconds=30)
POLICY = RetryPolicy(max_attempts=5, base_delay=60, max_delay=3600)


def running_send_with(url: str, n: int) -> int:
    doc = IssueDocument(
        title="杭州工运",
        number=1,
        date=NOW.date(),
        articles=[Article(headline="标题", blocks=[Block("paragraph", "正文。")])],
    )
    with transaction(url) as session:
        issue_id = save_issue(session, doc, source_format="json").id
        send = Send(
            issue_id=issue_id,
            audience=Audience(lists=("members",)),
            variant=Variant.FULL,
            state=SendState.RUNNING,
            planned_at=NOW,
        )
        session.add(send)
        session.flush()
        session.execute(
            insert(Delivery),
            [
                {
                    "send_id": send.id,
                    "subscriber_id": i,
                    "channel": "email",
                    "address": f"r{i}@example.org",
                    "variant": "full",
                }
                for i in range(1, n + 1)
            ],
        )
        return send.id


def test_concurrent_claimers_never_take_the_same_row(database_url: str) -> None:
    send_id = running_send_with(database_url, 1000)
    factory = session_factory(database_url)
    taken: dict[str, list[int]] = {"a": [], "b": []}

    def claimer(name: str) -> None:
        while True:
            with factory.begin() as session:
                batch = claim_batch(
                    session, send_id, token=name, limit=37, lease_until=LEASE, now=NOW
                )
            if not batch:
                return
            taken[name].extend(d.id for d in batch)
            time.sleep(0.002)  # a worker sends its batch before claiming the next

    threads = [threading.Thread(target=claimer, args=(name,)) for name in taken]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(taken["a"]) & set(taken["b"])
    assert len(taken["a"]) + len(taken["b"]) == 1000
    assert taken["a"] and taken["b"]  # both really worked


def test_an_expired_claim_is_swept_to_go_out_again_and_logged(database_url: str) -> None:
    send_id = running_send_with(database_url, 4)
    with transaction(database_url) as session:
        dead = claim_batch(session, send_id, token="dead", limit=2, lease_until=NOW, now=NOW)
        alive = claim_batch(session, send_id, token="alive", limit=2, lease_until=LEASE, now=NOW)
    later = NOW + timedelta(seconds=1)
    with transaction(database_url) as session:
        assert sweep_expired_claims(session, later, max_attempts=5) == 2
    with transaction(database_url) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
        # only the first unrecorded row of the dead batch can have reached the server: it counts
        # an attempt; the row behind it was never tried and simply waits again
        assert [rows[d.id].state for d in dead] == [DeliveryState.DEFERRED, DeliveryState.PENDING]
        assert [rows[d.id].attempts for d in dead] == [1, 0]
        assert {rows[d.id].reclaims for d in dead} == {1}
        assert [rows[d.id].possible_duplicate for d in dead] == [True, False]
        assert {rows[d.id].state for d in alive} == {DeliveryState.CLAIMED}
        logged = session.execute(
            select(DeliveryAttempt.delivery_id, DeliveryAttempt.outcome).order_by(
                DeliveryAttempt.delivery_id
            )
        ).all()
        assert [outcome for _, outcome in logged] == ["worker-died", "reclaimed"]
        again = claim_batch(session, send_id, token="next", limit=10, lease_until=LEASE, now=later)
    assert [d.id for d in again] == [d.id for d in dead]


def test_the_sweep_finds_expired_claims_in_an_index_of_claimed_rows_only(
    postgres_url: str,
) -> None:
    """Planning a row and settling it as sent write nothing into the sweep's index (the most
    frequent writes of a send); the sweep still finds a dead worker's rows through it, at once
    among thousands sent."""
    send_id = running_send_with(postgres_url, 3000)
    with transaction(postgres_url) as session:
        session.execute(
            update(Delivery)
            .where(Delivery.send_id == send_id, Delivery.id > 10)
            .values(state=DeliveryState.SENT, sent_at=NOW)
        )
        dead = claim_batch(session, send_id, token="dead", limit=10, lease_until=NOW, now=NOW)
    engine = get_engine(postgres_url)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE deliveries")
    with statements_run(postgres_url) as statements, transaction(postgres_url) as session:
        assert sweep_expired_claims(session, NOW + timedelta(seconds=1), max_attempts=5) == 10
    finding, parameters = statements[0]
    with engine.connect() as connection:
        plan = "\n".join(
            row[0] for row in connection.exec_driver_sql(f"EXPLAIN {finding}", parameters)
        )
    assert "ix_deliveries_claimed_lease" in plan, plan
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as connection:
        (predicate,) = connection.execute(
            "SELECT pg_get_expr(indpred, indrelid) FROM pg_index"
            " WHERE indexrelid = 'ix_deliveries_claimed_lease'::regclass"
        ).fetchone() or (None,)
    assert predicate is not None and "claimed" in predicate
    assert len(dead) == 10


def test_a_delivery_whose_worker_keeps_dying_fails_once_its_attempts_are_spent(
    database_url: str,
) -> None:
    """A 'poison' recipient: the worker dies while its message is in flight, every time."""
    send_id = running_send_with(database_url, 2)
    now = NOW
    for death in range(1, 4):
        with transaction(database_url) as session:
            token = f"worker{death}"
            batch = claim_batch(session, send_id, token=token, limit=1, lease_until=now, now=now)
            assert [d.id for d in batch] == [1]  # the poison row is first in line each time
        now += timedelta(seconds=31)
        with transaction(database_url) as session:
            sweep_expired_claims(session, now, max_attempts=3)
    with transaction(database_url) as session:
        poison = session.get(Delivery, 1)
        assert poison is not None
        assert (poison.state, poison.attempts) == (DeliveryState.FAILED, 3)
        assert poison.last_error == "the worker died 3 times while sending this; gave up"
        rest = claim_batch(session, send_id, token="next", limit=5, lease_until=LEASE, now=now)
    assert [d.id for d in rest] == [2]  # the rest of the send goes on


def test_a_result_for_a_lost_claim_does_not_overwrite_the_row(database_url: str) -> None:
    send_id = running_send_with(database_url, 1)
    with transaction(database_url) as session:
        [claimed] = claim_batch(session, send_id, token="old", limit=1, lease_until=NOW, now=NOW)
        sweep_expired_claims(session, NOW + timedelta(seconds=1), max_attempts=5)
    recorder = ResultRecorder(get_engine(database_url))
    receipt = Receipt(Outcome.SENT, 250, "ok")
    state = recorder.record(
        claimed, token="old", receipt=receipt, policy=POLICY, now=NOW, worker="w"
    )
    recorder.close()
    assert state is DeliveryState.SENT  # what the server said …
    with transaction(database_url) as session:
        row = session.get(Delivery, claimed.id)
        assert row is not None and row.state is DeliveryState.DEFERRED  # … but the row is not ours
        attempts = session.execute(
            select(DeliveryAttempt.outcome, DeliveryAttempt.detail).order_by(DeliveryAttempt.id)
        ).all()
        assert [a.outcome for a in attempts] == ["worker-died", "late-sent"]
        assert attempts[1].detail == "answer came after the claim expired"


def test_answers_holding_a_nul_are_recorded_as_the_server_gave_them_but_the_nul(
    database_url: str,
) -> None:
    """A hostile server's 250 (journalled) and 550 (recorded at once) with a NUL in them: both
    rows and log lines are written, the NUL kept as U+FFFD, and the recorder goes on."""
    send_id = running_send_with(database_url, 2)
    with transaction(database_url) as session:
        taken, refused = claim_batch(
            session, send_id, token="t", limit=2, lease_until=LEASE, now=NOW
        )
    recorder = ResultRecorder(get_engine(database_url))
    for delivery, code in ((taken, 250), (refused, 550)):
        recorder.record(
            delivery,
            token="t",
            receipt=classify(code, b"2.0.0 ok\x00queued" if code == 250 else b"gone\x00\x01"),
            policy=POLICY,
            now=NOW,
            worker="w",
        )
    recorder.close()
    with transaction(database_url) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
        assert (rows[taken.id].state, rows[taken.id].smtp_response) == (
            DeliveryState.SENT,
            "2.0.0 ok\ufffdqueued",
        )
        assert rows[refused.id].state is DeliveryState.FAILED
        details = session.scalars(select(DeliveryAttempt.detail).order_by(DeliveryAttempt.id))
        assert list(details) == ["2.0.0 ok\ufffdqueued", "gone\ufffd\x01"]


def test_a_result_is_recorded_on_the_row_and_in_the_log(database_url: str) -> None:
    send_id = running_send_with(database_url, 1)
    with transaction(database_url) as session:
        [claimed] = claim_batch(session, send_id, token="t", limit=1, lease_until=LEASE, now=NOW)
    recorder = ResultRecorder(get_engine(database_url))
    receipt = Receipt(Outcome.DEFERRED, 451, "4.3.0 greylisted")
    state = recorder.record(
        claimed, token="t", receipt=receipt, policy=POLICY, now=NOW, worker="w1"
    )
    recorder.close()
    assert state is DeliveryState.DEFERRED
    with transaction(database_url) as session:
        row = session.get(Delivery, claimed.id)
        assert row is not None
        assert (row.state, row.attempts, row.smtp_code, row.claim_token) == (
            DeliveryState.DEFERRED,
            1,
            451,
            None,
        )
        assert row.not_before == NOW + timedelta(seconds=60)
        assert row.last_error == "451 4.3.0 greylisted"
        [log] = session.scalars(select(DeliveryAttempt)).all()
        assert (log.outcome, log.smtp_code, log.detail, log.worker, log.at) == (
            "deferred",
            451,
            "4.3.0 greylisted",
            "w1",
            NOW,
        )


def test_a_taken_message_is_journalled_then_settled_with_its_batch(database_url: str) -> None:
    """The server's 250 is committed (the log line) before the next message; the row says sent
    once the recorder settles, which the drain does per batch and at least every recheck."""
    send_id = running_send_with(database_url, 3)
    with transaction(database_url) as session:
        batch = claim_batch(session, send_id, token="t", limit=3, lease_until=LEASE, now=NOW)
    recorder = ResultRecorder(get_engine(database_url))
    for place, claimed in enumerate(batch[:2]):
        at = NOW + timedelta(seconds=place)
        receipt = Receipt(Outcome.SENT, 250, f"2.0.0 queued as {place}")
        assert (
            recorder.record(claimed, token="t", receipt=receipt, policy=POLICY, now=at, worker="w")
            is DeliveryState.SENT
        )
    with transaction(database_url) as session:
        assert {d.state for d in session.scalars(select(Delivery))} == {DeliveryState.CLAIMED}
        logged = session.scalars(select(DeliveryAttempt.delivery_id).order_by("id")).all()
        assert logged == [batch[0].id, batch[1].id]
    recorder.close()  # settles
    with transaction(database_url) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
        first, second, third = (rows[d.id] for d in batch)
        assert (first.state, first.attempts, first.smtp_code) == (DeliveryState.SENT, 1, 250)
        assert (first.smtp_response, first.sent_at, first.updated_at) == (
            "2.0.0 queued as 0",
            NOW,
            NOW,
        )
        assert second.sent_at == NOW + timedelta(seconds=1)
        assert (first.claim_token, first.lease_until) == (None, None)
        assert third.state is DeliveryState.CLAIMED  # not attempted: still the worker's
        assert send_status(session, send_id).counts["sent"] == 2  # the kept counts follow


def test_a_dead_workers_journalled_messages_are_settled_never_sent_again(
    database_url: str,
) -> None:
    """A worker killed after two 250s it had not settled: the sweep sets those two sent from
    the log; only the third (it may have been in flight) counts as a possible duplicate."""
    send_id = running_send_with(database_url, 4)
    with transaction(database_url) as session:
        batch = claim_batch(session, send_id, token="dead", limit=4, lease_until=NOW, now=NOW)
    recorder = ResultRecorder(get_engine(database_url))
    for claimed in batch[:2]:
        receipt = Receipt(Outcome.SENT, 250, "ok")
        recorder.record(claimed, token="dead", receipt=receipt, policy=POLICY, now=NOW, worker="w")
    recorder.journalled.clear()  # killed: nothing settled
    recorder.close()
    later = NOW + timedelta(seconds=1)
    with transaction(database_url) as session:
        assert sweep_expired_claims(session, later, max_attempts=5) == 4
    with transaction(database_url) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
        assert [rows[d.id].state for d in batch] == [
            DeliveryState.SENT,
            DeliveryState.SENT,
            DeliveryState.DEFERRED,
            DeliveryState.PENDING,
        ]
        assert [rows[d.id].possible_duplicate for d in batch] == [False, False, True, False]
        assert [rows[d.id].sent_at for d in batch[:2]] == [NOW, NOW]
        assert send_status(session, send_id).counts["sent"] == 2
        again = claim_batch(session, send_id, token="next", limit=10, lease_until=LEASE, now=later)
    assert [d.id for d in again] == [d.id for d in batch[2:]]


def test_a_journalled_row_settled_by_a_sweep_is_left_alone_by_its_worker(
    database_url: str,
) -> None:
    """A worker stalled past its lease: the sweep settles its journalled row; when the worker
    settles later, it finds the row no longer its own and changes nothing."""
    send_id = running_send_with(database_url, 1)
    with transaction(database_url) as session:
        [claimed] = claim_batch(session, send_id, token="slow", limit=1, lease_until=NOW, now=NOW)
    recorder = ResultRecorder(get_engine(database_url))
    receipt = Receipt(Outcome.SENT, 250, "ok")
    recorder.record(claimed, token="slow", receipt=receipt, policy=POLICY, now=NOW, worker="w")
    later = NOW + timedelta(seconds=5)
    with transaction(database_url) as session:
        sweep_expired_claims(session, later, max_attempts=5)
    recorder.close()
    with transaction(database_url) as session:
        row = session.get(Delivery, claimed.id)
        assert row is not None
        assert (row.state, row.attempts, row.updated_at, row.reclaims) == (
            DeliveryState.SENT,
            1,
            later,
            0,
        )
        assert session.scalars(select(DeliveryAttempt.outcome)).all() == ["sent"]
        assert send_status(session, send_id).counts["sent"] == 1


def test_a_sweep_never_takes_a_row_whose_answer_is_being_journalled(postgres_url: str) -> None:
    """The journal's statement holds the row (FOR SHARE) until it commits: a sweep meanwhile
    skips it, and the next sweep settles it from the committed line instead of sending it
    again."""
    send_id = running_send_with(postgres_url, 2)
    with transaction(postgres_url) as session:
        batch = claim_batch(session, send_id, token="t", limit=2, lease_until=NOW, now=NOW)
    later = NOW + timedelta(seconds=1)
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as journalling:
        journalling.execute("SELECT 1")  # a transaction, held open over the sweep below
        assert PreparedJournal(journalling.pgconn).run(
            (batch[0].id, "t", 1, 250, "ok", "w", NOW, "delivery.sent", "{}")
        )
        with transaction(postgres_url) as session:
            assert sweep_expired_claims(session, later, max_attempts=5) == 1  # the other row
        journalling.commit()
    with transaction(postgres_url) as session:
        assert sweep_expired_claims(session, later, max_attempts=5) == 1
    with transaction(postgres_url) as session:
        rows = {d.id: d for d in session.scalars(select(Delivery))}
        assert (rows[batch[0].id].state, rows[batch[0].id].possible_duplicate) == (
            DeliveryState.SENT,
            False,
        )
        # swept first, as the batch's lowest unrecorded row: it may have been in flight
        assert rows[batch[1].id].state is DeliveryState.DEFERRED


def test_an_answer_while_a_sweep_holds_the_row_is_late_not_journalled(postgres_url: str) -> None:
    """The other order: a sweep has taken the row (not yet committed) when the server's 250
    comes. The journal waits for the sweep, then finds the row no longer the worker's: the
    answer is logged as late and no 'sent' line is left to be mistaken for this row's later."""
    send_id = running_send_with(postgres_url, 1)
    with transaction(postgres_url) as session:
        [claimed] = claim_batch(session, send_id, token="t", limit=1, lease_until=NOW, now=NOW)
    recorder = ResultRecorder(get_engine(postgres_url))
    answered: list[DeliveryState] = []

    def answer() -> None:
        receipt = Receipt(Outcome.SENT, 250, "ok")
        answered.append(
            recorder.record(claimed, token="t", receipt=receipt, policy=POLICY, now=NOW, worker="w")
        )

    late = threading.Thread(target=answer)
    with transaction(postgres_url) as session:
        assert sweep_expired_claims(session, NOW + timedelta(seconds=1), max_attempts=5) == 1
        late.start()
        late.join(0.5)
        assert late.is_alive()  # the journal waits for the sweep's transaction
    late.join(10)
    recorder.close()
    assert answered == [DeliveryState.SENT]
    with transaction(postgres_url) as session:
        row = session.get(Delivery, claimed.id)
        assert row is not None
        assert (row.state, row.attempts) == (DeliveryState.DEFERRED, 1)
        outcomes = session.scalars(select(DeliveryAttempt.outcome).order_by("id")).all()
        assert outcomes == ["worker-died", "late-sent"]


def test_a_send_has_claimable_rows_while_one_is_pending_or_a_retry_is_due(
    database_url: str,
) -> None:
    send_id = running_send_with(database_url, 3)
    with transaction(database_url) as session:
        assert has_claimable(session, send_id, NOW)
        first, *rest = claim_batch(session, send_id, token="t", limit=3, lease_until=LEASE, now=NOW)
        assert not has_claimable(session, send_id, NOW)  # all three in hand
        later = NOW + timedelta(minutes=5)
        session.execute(
            update(Delivery)
            .where(Delivery.id == first.id)
            .values(state=DeliveryState.DEFERRED, not_before=later, claim_token=None)
        )
        assert not has_claimable(session, send_id, NOW)  # its retry is not due yet
        assert has_claimable(session, send_id, later)
        session.execute(
            update(Delivery).where(Delivery.id == first.id).values(state=DeliveryState.SENT)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id == rest[0].id)
            .values(state=DeliveryState.PENDING, channel="wechat", claim_token=None)
        )
        assert not has_claimable(session, send_id, later)  # WeChat goes out as jobs
        assert not has_claimable(session, send_id + 1, later)  # another send's rows


def test_released_rows_are_claimable_at_once(database_url: str) -> None:
    send_id = running_send_with(database_url, 3)
    with transaction(database_url) as session:
        batch = claim_batch(session, send_id, token="t", limit=3, lease_until=LEASE, now=NOW)
        assert release_claims(session, "t", [d.id for d in batch[1:]], NOW) == 2
        again = claim_batch(session, send_id, token="u", limit=3, lease_until=LEASE, now=NOW)
    assert [d.id for d in again] == [d.id for d in batch[1:]]


def test_a_slot_is_held_by_one_task_and_freed_by_expiry(database_url: str) -> None:
    grace = timedelta(seconds=30)
    with transaction(database_url) as session:
        assert reserve_free_slots(session, count=2, now=NOW, grace=grace) == [0, 1]
        assert reserve_free_slots(session, count=2, now=NOW, grace=grace) == []
        lease = timedelta(seconds=10)
        assert take_slot(session, 0, "task-a", now=NOW, lease=lease)
        assert not take_slot(session, 0, "duplicate", now=NOW, lease=lease)
        # task-a dies: after its lease the slot is queued again and taken by a new task
        later = NOW + timedelta(seconds=31)
        assert reserve_free_slots(session, count=2, now=later, grace=grace) == [0, 1]
        assert take_slot(session, 0, "task-b", now=later, lease=lease)
        release_slot(session, 0, "task-a")  # a late release of a lost holder changes nothing
        assert not take_slot(session, 0, "task-c", now=later, lease=lease)
        # out of time, task-b hands the slot to the task it queues; the tick cannot take it
        assert hand_over_slot(session, 0, "task-b", now=later, grace=grace)
        assert reserve_free_slots(session, count=1, now=later, grace=grace) == []
        assert take_slot(session, 0, "task-d", now=later, lease=lease)


def test_a_claim_never_takes_more_than_its_limit(database_url: str) -> None:
    """PostgreSQL may re-run an `id IN (… LIMIT n FOR UPDATE SKIP LOCKED)` subquery per row and
    so over-claim; the claim uses a materialised CTE instead."""
    send_id = running_send_with(database_url, 10)
    with transaction(database_url) as session:
        first = claim_batch(session, send_id, token="a", limit=2, lease_until=LEASE, now=NOW)
        second = claim_batch(session, send_id, token="b", limit=3, lease_until=LEASE, now=NOW)
    assert [d.id for d in first] == [1, 2]
    assert [d.id for d in second] == [3, 4, 5]


def test_trigger_kept_counts_match_the_rows_after_small_and_large_moves(database_url: str) -> None:
    send_id = running_send_with(database_url, 3000)
    with transaction(database_url) as session:  # a one-row move, then large ones, one connection
        claim_batch(session, send_id, token="a", limit=1, lease_until=NOW, now=NOW)
        claim_batch(session, send_id, token="b", limit=1000, lease_until=NOW, now=NOW)
        sweep_expired_claims(session, NOW + timedelta(seconds=1), max_attempts=5)
        cancel_send(session, send_id, NOW)
    with transaction(database_url) as session:
        counted = dict(
            session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all()
        )
        assert (
            send_status(session, send_id).counts
            == {state.value: n for state, n in counted.items()}
            == {"cancelled": 3000}
        )
