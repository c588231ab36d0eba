"""Dispatch: claim a batch, drop the recipients who left, send each message, record each answer.

Each result is committed as soon as the server has answered, before the next message goes out, so
a killed worker leaves at most its in-flight transaction unrecorded: the bound on duplicates.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Envelope, Outcome, Receipt
from distributor.db import UTCDateTime, utcnow
from distributor.errors import ConfigurationError, InvalidRecipient, RenderError
from distributor.failures import Verdict, domain_of, read_failure
from distributor.logs import log_context
from distributor.outbox import EventKind, record_event
from distributor.sending.attempts import LogEntry, log_attempts
from distributor.sending.claim import (
    ClaimedDelivery,
    claim_batch,
    postpone,
    release_claims,
    renew_claims,
)
from distributor.sending.lifecycle import (
    cancel_waiting_deliveries,
    finish_if_complete,
    pause_for_error,
    send_state,
)
from distributor.sending.models import (
    DELIVERIES,
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    Send,
)
from distributor.sending.policy import RetryPolicy, decide
from distributor.sending.refusals import FailedDelivery, record_refusal
from distributor.sending.router import Router, Wait
from distributor.sending.tunables import Tunables
from distributor.sending.windows import Windows, send_is_open
from distributor.vocabulary import DeliveryState, SendState
from subscribers.query import EMAIL_CHANNELS, still_sendable

if TYPE_CHECKING:
    from distributor.sending.pg_journal import PreparedJournal


class Composer(Protocol):
    """Builds the exact bytes for one delivery (rendered once per send, personalised per row)."""

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope: ...


@dataclass
class DrainStats:
    counts: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    out_of_time: bool = False

    def add(self, state: DeliveryState, n: int = 1) -> None:
        self.counts[state.value] = self.counts.get(state.value, 0) + n


_ATTEMPTS = cast(Table, DeliveryAttempt.__table__)
LATE_DETAIL = "answer came after the claim expired"
WAVE_CHECK_EVERY = 10  # refusals at one domain between two looks at its wave, after the first

# Built once: per message only parameters change (no statement construction on the hot path).
_UPDATE_RESULT = (
    update(DELIVERIES)
    .where(
        DELIVERIES.c.id == bindparam("b_id"),
        DELIVERIES.c.claim_token == bindparam("b_token"),
        DELIVERIES.c.state == DeliveryState.CLAIMED,
    )
    .values(
        state=bindparam("b_state"),
        attempts=bindparam("b_attempt"),
        not_before=bindparam("b_not_before"),
        last_error=bindparam("b_error"),
        smtp_code=bindparam("b_code"),
        smtp_response=bindparam("b_response"),
        sent_at=bindparam("b_sent_at"),
        claim_token=None,
        lease_until=None,
        updated_at=bindparam("b_now"),
    )
)
_INSERT_ATTEMPT = insert(_ATTEMPTS).values(
    delivery_id=bindparam("b_id"),
    attempt=bindparam("b_attempt"),
    outcome=bindparam("b_outcome"),
    smtp_code=bindparam("b_code"),
    detail=bindparam("b_detail"),
    worker=bindparam("b_worker"),
    at=bindparam("b_now"),
)
# PostgreSQL: the row and its log in one statement, committed on its own: one round trip. It is
# run on the driver's cursor, prepared once (its parameters need no SQLAlchemy processing).
_RECORD_POSTGRES = """
    WITH updated AS (
      UPDATE deliveries SET state = %(b_state)s, attempts = %(b_attempt)s,
             not_before = %(b_not_before)s, last_error = %(b_error)s, smtp_code = %(b_code)s,
             smtp_response = %(b_response)s, sent_at = %(b_sent_at)s, claim_token = NULL,
             lease_until = NULL, updated_at = %(b_now)s
       WHERE id = %(b_id)s AND claim_token = %(b_token)s AND state = 'claimed'
      RETURNING id),
    logged AS (
      INSERT INTO delivery_attempts (delivery_id, attempt, outcome, smtp_code, detail, worker, at)
      SELECT %(b_id)s, %(b_attempt)s,
             CASE WHEN EXISTS (SELECT 1 FROM updated) THEN %(b_state)s ELSE %(b_late)s END,
             %(b_code)s,
             CASE WHEN EXISTS (SELECT 1 FROM updated)
                  THEN %(b_response)s ELSE %(b_late_detail)s END,
             %(b_worker)s, %(b_now)s)
    INSERT INTO outbox_events (kind, payload, fanned_out, at)
    SELECT %(b_kind)s::varchar, %(b_event)s::json, false, %(b_now)s
     WHERE EXISTS (SELECT 1 FROM updated)
       AND EXISTS (SELECT 1 FROM event_listeners WHERE kind = %(b_kind)s::varchar)
    """
# The journalled rows still held, set as sent in one statement (their count triggers run once).
_SETTLE_POSTGRES = """
    UPDATE deliveries AS d
       SET state = 'sent', attempts = v.attempt, not_before = NULL, last_error = NULL,
           smtp_code = v.code, smtp_response = v.response, sent_at = v.at, claim_token = NULL,
           lease_until = NULL, updated_at = v.at
      FROM unnest(%(ids)s::bigint[], %(tokens)s::varchar[], %(attempts)s::integer[],
                  %(codes)s::integer[], %(responses)s::text[], %(ats)s::timestamptz[])
           AS v(id, token, attempt, code, response, at)
     WHERE d.id = v.id AND d.claim_token = v.token AND d.state = 'claimed'
    """
# SQLite: the same, as two statements in one transaction on the driver's connection (a writer
# holds the database alone, so no other writer can take the row meanwhile).
_JOURNAL_SQLITE = """
    INSERT INTO delivery_attempts (delivery_id, attempt, outcome, smtp_code, detail, worker, at)
    SELECT id, :b_attempt, 'sent', :b_code, :b_response, :b_worker, :b_now
      FROM deliveries WHERE id = :b_id AND claim_token = :b_token AND state = 'claimed'
    """
_EVENT_SQLITE = """
    INSERT INTO outbox_events (kind, payload, fanned_out, at)
    SELECT :b_kind, :b_event, 0, :b_now
     WHERE EXISTS (SELECT 1 FROM event_listeners WHERE kind = :b_kind)
    """
_SETTLE_SQLITE = """
    UPDATE deliveries
       SET state = 'sent', attempts = :attempt, not_before = NULL, last_error = NULL,
           smtp_code = :code, smtp_response = :response, sent_at = :at, claim_token = NULL,
           lease_until = NULL, updated_at = :at
     WHERE id = :id AND claim_token = :token AND state = 'claimed'
    """


_EVENTS = {
    DeliveryState.SENT: EventKind.DELIVERY_SENT,
    DeliveryState.FAILED: EventKind.DELIVERY_FAILED,
}


@dataclass(frozen=True)
class _Journalled:
    """A taken message whose row still says claimed: what settling it writes."""

    id: int
    token: str
    attempt: int
    code: int | None
    response: str | None
    at: datetime


class ResultRecorder:
    """Commits one attempt's answer before the next message goes out, so a worker crash leaves
    at most its message in flight unrecorded: the bound on duplicates. This is the hot path.

    A message the server took is journalled (its attempt log line, committed while this worker
    holds the row); its row is settled as sent with the others of the batch, in one statement, by
    :meth:`settle` (the drain calls it at least every ``recheck_seconds``, and before it gives
    anything back). A sweep of a dead worker's rows settles what its journal says
    (:func:`~distributor.sending.claim.sweep_expired_claims`). Any other answer settles what is
    journalled and is then written at once, row and log together.

    On PostgreSQL each statement is autocommitted on one connection held for the whole drain,
    without waiting for the disk (see :meth:`_result_cursor`), and prepared once.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"
        self._connection: Connection | None = None
        self._cursor: Any = None  # the driver's (psycopg) cursor on that connection
        self._prepared_journal: PreparedJournal | None = None  # on that connection (PostgreSQL)
        self.journalled: list[_Journalled] = []
        # SQLite keeps times as the engine's type writes them: the same text here.
        self._stamp: Callable[[datetime], Any] = UTCDateTime().bind_processor(
            engine.dialect
        ) or (lambda value: value)

    def record(
        self,
        delivery: ClaimedDelivery,
        *,
        token: str,
        receipt: Receipt,
        policy: RetryPolicy,
        now: datetime,
        worker: str,
    ) -> DeliveryState:
        attempt = delivery.attempts + 1
        decision = decide(receipt, attempt=attempt, policy=policy, now=now)
        response = receipt.response[:1000] or None
        params = {
            "b_id": delivery.id,
            "b_token": token,
            "b_state": decision.state.value,
            "b_attempt": attempt,
            "b_not_before": decision.not_before,
            "b_error": decision.error,
            "b_code": receipt.code,
            "b_response": response,
            "b_worker": worker,
            "b_now": now,
            "b_sent_at": now if decision.state is DeliveryState.SENT else None,
        }
        # A final answer is an event for the webhooks listening (distributor.outbox), written
        # in the answer's own transaction: nothing at all while nobody listens.
        kind = _EVENTS.get(decision.state)
        event = {
            "send_id": delivery.send_id,
            "delivery_id": delivery.id,
            "subscriber_id": delivery.subscriber_id,
            "address": delivery.address,
            "smtp_code": receipt.code,
        }
        if decision.state is DeliveryState.SENT and self._journal(params, kind, event):
            self.journalled.append(
                _Journalled(delivery.id, token, attempt, receipt.code, response, now)
            )
            return decision.state
        self.settle()
        if self.postgres:
            self._driver_cursor().execute(
                _RECORD_POSTGRES,
                {
                    **params,
                    "b_late": AttemptOutcome.late(decision.state).value,
                    "b_late_detail": LATE_DETAIL,
                    "b_kind": kind,
                    "b_event": json.dumps(event, ensure_ascii=False),
                },
                prepare=True,
            )
        else:
            with self.engine.begin() as connection:
                held = connection.execute(_UPDATE_RESULT, params).rowcount == 1
                connection.execute(
                    _INSERT_ATTEMPT,
                    {
                        **params,
                        "b_outcome": (
                            AttemptOutcome(decision.state.value)
                            if held
                            else AttemptOutcome.late(decision.state)
                        ),
                        "b_detail": response if held else LATE_DETAIL,
                    },
                )
                if held and kind is not None:
                    record_event(connection, kind, event, at=now)
        return decision.state

    def _journal(
        self, params: dict[str, Any], kind: EventKind | None, event: dict[str, Any]
    ) -> bool:
        """Log a taken message's attempt while the row is still this worker's; False if it is
        not (the caller then records it as late)."""
        cursor = self._driver_cursor()
        payload = json.dumps(event, ensure_ascii=False)
        if self.postgres:
            if self._prepared_journal is None:
                from distributor.sending.pg_journal import PreparedJournal  # psycopg's: PostgreSQL

                self._prepared_journal = PreparedJournal(cursor.connection.pgconn)
            return self._prepared_journal.run(
                (
                    params["b_id"], params["b_token"], params["b_attempt"], params["b_code"],
                    params["b_response"], params["b_worker"], params["b_now"], kind, payload,
                )
            )  # fmt: skip
        stamped = {**params, "b_now": self._stamp(params["b_now"])}
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.execute(_JOURNAL_SQLITE, stamped)
            held = cursor.rowcount == 1
            if held and kind is not None:
                cursor.execute(_EVENT_SQLITE, {**stamped, "b_kind": kind, "b_event": payload})
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")
        return bool(held)

    def settle(self) -> None:
        """Set the journalled rows as sent, in one statement (those a sweep settled are no
        longer held and are left alone)."""
        rows, self.journalled = self.journalled, []
        if not rows:
            return
        if self.postgres:
            self._driver_cursor().execute(
                _SETTLE_POSTGRES,
                {
                    "ids": [row.id for row in rows],
                    "tokens": [row.token for row in rows],
                    "attempts": [row.attempt for row in rows],
                    "codes": [row.code for row in rows],
                    "responses": [row.response for row in rows],
                    "ats": [row.at for row in rows],
                },
            )
            return
        cursor = self._driver_cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            cursor.executemany(
                _SETTLE_SQLITE,
                [
                    {
                        "id": row.id,
                        "token": row.token,
                        "attempt": row.attempt,
                        "code": row.code,
                        "response": row.response,
                        "at": self._stamp(row.at),
                    }
                    for row in rows
                ],
            )
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        cursor.execute("COMMIT")

    def _driver_cursor(self) -> Any:
        if self._cursor is None:
            self._cursor = self._result_cursor()
        return self._cursor

    def _result_cursor(self) -> Any:
        """A cursor on the driver's connection, held for the drain and detached from the pool.

        PostgreSQL: autocommit, and commits do not wait for the WAL flush (``synchronous_commit
        = off``, as SQLite's ``synchronous=NORMAL`` in WAL mode). A killed worker loses nothing
        by it: its commits are in the server. Only a crash of the server itself may forget the
        answers of its last ``3 × wal_writer_delay`` (0.6 s by default); those recipients are
        sent again when their claims expire. Detached, the setting never reaches another user
        of the connection. SQLite: the connection as the engine made it (WAL, a busy timeout,
        no implicit transactions), each transaction begun here."""
        connection = self.engine.connect()
        if self.postgres:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.detach()
        if self.postgres:
            connection.exec_driver_sql("SET synchronous_commit = off")
        self._connection = connection
        return connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def close(self) -> None:
        """Settle what is journalled, then let the connection go."""
        try:
            self.settle()
        finally:
            if self._connection is not None:
                self._connection.close()
                self._connection = self._cursor = self._prepared_journal = None

def suppress_departed(
    session: Session, claimed: list[ClaimedDelivery], *, token: str, now: datetime
) -> list[ClaimedDelivery]:
    """Honour unsubscribes (and switches to WeChat only) that came after the audience was
    frozen; return who may still receive."""
    subscriber_ids = [c.subscriber_id for c in claimed if c.subscriber_id is not None]
    sendable: set[int] = set()
    if subscriber_ids:
        audience = session.scalar(select(Send.audience).where(Send.id == claimed[0].send_id))
        lists = audience.lists if audience is not None else ()
        sendable = still_sendable(
            session, subscriber_ids, lists=lists, channels=EMAIL_CHANNELS, email_fallback=True
        )
    keep = [c for c in claimed if c.subscriber_id is None or c.subscriber_id in sendable]
    gone = [
        c.id for c in claimed if c.subscriber_id is not None and c.subscriber_id not in sendable
    ]
    mark_suppressed(session, gone, Delivery.claim_token == token, now=now)
    return keep


def mark_suppressed(
    session: Session, delivery_ids: list[int], held: ColumnElement[bool], *, now: datetime
) -> None:
    """End ``delivery_ids`` (those still ``held`` as the caller says) as suppressed, logged: their
    reader left after the send was planned. Shared by the email and WeChat paths."""
    if not delivery_ids:
        return
    session.execute(
        update(Delivery)
        .where(Delivery.id.in_(delivery_ids), held)
        .values(
            state=DeliveryState.SUPPRESSED,
            claim_token=None,
            lease_until=None,
            last_error="unsubscribed or suppressed before sending",
            updated_at=now,
        )
    )
    log_attempts(
        session,
        [LogEntry(delivery_id, AttemptOutcome.SUPPRESSED, detail="no longer subscribed")
         for delivery_id in delivery_ids],
        at=now,
    )


def running_sends(session: Session, now: datetime, only: int | None = None) -> list[int]:
    """Running sends inside their sending windows, oldest first: ``only`` that one, else every
    send but staff tests (a test send goes out from the command that made it, while it waits,
    or not at all)."""
    query = select(Send.id, Send.windows, Send.window_zone).where(Send.state == SendState.RUNNING)
    query = query.where(Send.id == only) if only is not None else query.where(~Send.is_test)
    rows = session.execute(query.order_by(Send.id))
    return [send_id for send_id, windows, zone in rows if send_is_open(windows, zone, now)]


def drain(
    factory: sessionmaker[Session],
    router: Router,
    composer: Composer,
    *,
    tunables: Tunables,
    worker: str,
    clock: Callable[[], datetime] = utcnow,
    keep_going: Callable[[], bool] = lambda: True,
    paced: bool = True,
    only_send: int | None = None,
) -> DrainStats:
    """Send every ready delivery of every running send (or of ``only_send``), batch by batch,
    until none is left; ``paced`` False (staff test sends): without rates and caps.

    Stops early when the time budget is spent or ``keep_going`` says so (the caller then queues
    another drain); rows claimed but not attempted are given back.
    """
    run = _Drain(
        factory,
        router,
        composer,
        ResultRecorder(factory.kw["bind"]),
        tunables,
        worker,
        clock,
        keep_going,
        paced,
        only_send,
    )
    try:
        return run.all_batches()
    finally:
        run.recorder.close()


@dataclass
class _Drain:
    factory: sessionmaker[Session]
    router: Router
    composer: Composer
    recorder: ResultRecorder
    tunables: Tunables
    worker: str
    clock: Callable[[], datetime]
    keep_going: Callable[[], bool]
    paced: bool
    only_send: int | None
    stats: DrainStats = field(default_factory=DrainStats)
    # Refusals of ours or the path per (send, domain): not yet looked at, and looks so far.
    unchecked: Counter[tuple[int, str]] = field(default_factory=Counter)
    wave_checks: Counter[tuple[int, str]] = field(default_factory=Counter)
    composed: dict[int, Envelope] = field(default_factory=dict)  # the next message, made early

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.tunables.budget_seconds
        self.lease = self.tunables.lease
        self.lease_until = self.clock()  # the batch's lease: set by its claim, then renewed

    def all_batches(self) -> DrainStats:
        while self.next_batch() and not self.stats.out_of_time:
            pass
        return self.stats

    def next_batch(self) -> bool:
        """Claim and send one batch of the earliest running send that has work; False if none."""
        with self.factory.begin() as session:
            send_ids = running_sends(session, self.clock(), self.only_send)
        for send_id in send_ids:
            token, now = uuid.uuid4().hex, self.clock()
            self.lease_until = now + self.lease
            with self.factory.begin() as session:
                claimed = claim_batch(
                    session,
                    send_id,
                    token=token,
                    limit=self.tunables.batch_size,
                    lease_until=self.lease_until,
                    now=now,
                )
                if not claimed:
                    finish_if_complete(session, send_id, now)
                    continue
            self.stats.batches += 1
            with self.factory.begin() as session:
                sendable = suppress_departed(session, claimed, token=token, now=now)
                send_rate, windows, zone = session.execute(
                    select(Send.rate_limit, Send.windows, Send.window_zone).where(
                        Send.id == send_id
                    )
                ).one()
            self.stats.add(DeliveryState.SUPPRESSED, len(claimed) - len(sendable))
            self.send_batch(send_id, sendable, token, send_rate, Windows.of(windows, zone))
            return True
        return False

    def send_batch(
        self,
        send_id: int,
        batch: list[ClaimedDelivery],
        token: str,
        send_rate: float | None,
        windows: Windows | None,
    ) -> None:
        """Send a claimed batch in id order. Every ``recheck_seconds`` the send's state, its
        window and the rest of the batch's subscriptions are read again and the lease renewed,
        so a pause, a window closing, an unsubscribe or a slow server is noticed within that
        time."""
        try:
            self._send_batch(send_id, deque(batch), token, send_rate, windows)
        finally:
            self.composed.clear()
            self.router.drop_started()
            self.recorder.settle()

    def _send_batch(
        self,
        send_id: int,
        pending: deque[ClaimedDelivery],
        token: str,
        send_rate: float | None,
        windows: Windows | None,
    ) -> None:
        next_check = time.monotonic() + self.tunables.recheck_seconds
        while pending:
            if time.monotonic() > self.deadline or not self.keep_going():
                self.stats.out_of_time = True
                with self.factory.begin() as session:
                    release_claims(session, token, [d.id for d in pending], self.clock())
                return
            if time.monotonic() > next_check:
                if not self.recheck(send_id, pending, token, windows):
                    return
                next_check = time.monotonic() + self.tunables.recheck_seconds
                continue
            try:
                with log_context(send_id=send_id, delivery_id=pending[0].id):
                    receipt = self.attempt(send_id, pending, send_rate)
            except (RenderError, ConfigurationError) as error:
                # The send's message cannot be made: nothing of this batch went out; the send
                # waits for staff with the reason, instead of failing everyone in turn.
                with self.factory.begin() as session:
                    pause_for_error(session, send_id, error.message, self.clock())
                    release_claims(session, token, [d.id for d in pending], self.clock())
                return
            if isinstance(receipt, Wait):
                self.postpone(pending, token, receipt)
                continue
            delivery = pending.popleft()
            state = self.recorder.record(
                delivery,
                token=token,
                receipt=receipt,
                policy=self.tunables.retry,
                now=self.clock(),
                worker=self.worker,
            )
            self.stats.add(state)
            paused = False
            if state is DeliveryState.FAILED and receipt.code is not None:
                paused = self.apply_refusal(delivery, receipt)
            if paused and not self.recheck(send_id, pending, token, windows):
                return  # a wave of refusals paused the send: the rest waits

    def apply_refusal(self, delivery: ClaimedDelivery, receipt: Receipt) -> bool:
        """The one rule for failures, for an answer the server gave us itself (a ``550 5.1.1``
        at RCPT suppresses the reader; a ``550 5.7.1`` blocklist counts against the domain).

        A domain's wave is looked at on each of its first :data:`WAVE_CHECK_EVERY` refusals in
        this drain, then every :data:`WAVE_CHECK_EVERY`: each look counts the send's messages
        at that domain, which a long wave below the limit must not do per message. True when
        it paused the send."""
        reading = read_failure(receipt.response, code=receipt.code)
        failed = FailedDelivery(
            delivery.id, delivery.send_id, delivery.subscriber_id, delivery.address
        )
        unchecked = 0
        if reading.verdict is Verdict.NOT_READER:
            key = (delivery.send_id, domain_of(delivery.address))
            self.unchecked[key] += 1
            if self.wave_checks[key] < WAVE_CHECK_EVERY or (
                self.unchecked[key] >= WAVE_CHECK_EVERY
            ):
                unchecked, self.unchecked[key] = self.unchecked[key], 0
                self.wave_checks[key] += 1
        with self.factory.begin() as session:
            effects = record_refusal(
                session,
                failed,
                reading,
                evidence=receipt.response[:1000] or str(receipt.code),
                policy=self.tunables.refusals,
                now=self.clock(),
                unchecked=unchecked,
            )
        return effects.paused is not None

    def recheck(
        self,
        send_id: int,
        pending: deque[ClaimedDelivery],
        token: str,
        windows: Windows | None = None,
    ) -> bool:
        """False when the send is no longer running, or its window closed: the rest is given
        back (or cancelled). What is journalled is settled first: a status read meanwhile is
        at most this stale. Rows a sweep took back while this worker stalled (past its lease)
        are dropped from the batch: whoever claims them next sends them, once.

        The lease is renewed only once what is left of it might not outlast one more answer
        (``SMTP_TIMEOUT``) before the next recheck: until then no sweep can take a row, and a
        batch usually ends long before (renewing rewrites every row)."""
        self.recorder.settle()
        with self.factory.begin() as session:
            if send_state(session, send_id) is not SendState.RUNNING:
                release_claims(session, token, [d.id for d in pending], self.clock())
                cancel_waiting_deliveries(session, self.clock(), send_id=send_id)
                return False
            if windows is not None and not windows.open_at(self.clock()):
                release_claims(session, token, [d.id for d in pending], self.clock())
                return False
            mine, now = list(pending), self.clock()
            if self.lease_until - now < self.tunables.renew_within:
                self.lease_until = now + self.lease
                held = renew_claims(session, token, [d.id for d in pending], self.lease_until)
                mine = [delivery for delivery in pending if delivery.id in held]
            still = suppress_departed(session, mine, token=token, now=self.clock())
        self.stats.add(DeliveryState.SUPPRESSED, len(mine) - len(still))
        pending.clear()
        pending.extend(still)
        return True

    def postpone(self, pending: deque[ClaimedDelivery], token: str, wait: Wait) -> None:
        """The first delivery's domain can take nothing now: it and the rest of the batch's
        deliveries to that domain wait from ``wait.until`` on (one ``wait.spacing`` apart),
        deferred without an attempt, while the batch's other domains go on."""
        self.recorder.settle()
        domain = domain_of(pending[0].address)
        waiting = [d.id for d in pending if domain_of(d.address) == domain]
        with self.factory.begin() as session:
            until = datetime.fromtimestamp(wait.until, UTC)
            spacing = timedelta(seconds=wait.spacing)
            postpone(session, token, waiting, until, wait.reason, self.clock(), spacing)
        self.stats.add(DeliveryState.DEFERRED, len(waiting))
        kept = [d for d in pending if domain_of(d.address) != domain]
        pending.clear()
        pending.extend(kept)

    def attempt(
        self, send_id: int, pending: deque[ClaimedDelivery], send_rate: float | None
    ) -> Receipt | Wait:
        """Send the first pending message; the one after it is composed now and may be started
        behind it (SMTP pipelining across messages)."""
        try:
            envelope = self.compose(send_id, pending[0])
        except InvalidRecipient as error:
            return Receipt(Outcome.FAILED, None, f"could not build this message: {error}")
        then = None
        if len(pending) > 1:
            with suppress(InvalidRecipient, RenderError, ConfigurationError):  # its turn says it
                then = self.compose(send_id, pending[1])
        return self.router.send(
            envelope, send_id=send_id, send_rate=send_rate, paced=self.paced, then=then
        )

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope:
        """The delivery's message, composed once: the next one is composed a turn early."""
        envelope = self.composed.pop(delivery.id, None)
        if envelope is None:
            envelope = self.composer.compose(send_id, delivery)
        self.composed = {delivery.id: envelope}
        return envelope
