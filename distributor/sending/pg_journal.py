"""The journal's statement on PostgreSQL, run through libpq itself: the hot path's one round trip
per message (see :class:`~distributor.sending.dispatch.ResultRecorder`).

A message the server took is journalled: its attempt logged (with its event, if anyone listens)
while this worker still holds the row, which FOR SHARE keeps a sweep from taking meanwhile. The
row itself is updated later, with the batch's other taken messages: its update, index entries
and count triggers are a message's largest cost in the database. The answer selects 1 when it
was journalled, nothing when the claim was lost (a late answer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg
from psycopg.pq import ConnStatus, ExecStatus
from psycopg.pq.abc import PGconn, PGresult

JOURNAL_POSTGRES = b"""
    WITH held AS (
      SELECT id FROM deliveries
       WHERE id = $1::bigint AND claim_token = $2::varchar AND state = 'claimed' FOR SHARE),
    logged AS (
      INSERT INTO delivery_attempts (delivery_id, attempt, outcome, smtp_code, detail, worker, at)
      SELECT id, $3::integer, 'sent', $4::integer, $5::text, $6::varchar, $7::timestamptz
        FROM held
      RETURNING delivery_id),
    evented AS (
      INSERT INTO outbox_events (kind, payload, fanned_out, at)
      SELECT $8::varchar, $9::json, false, $7::timestamptz
       WHERE EXISTS (SELECT 1 FROM logged)
         AND EXISTS (SELECT 1 FROM event_listeners WHERE kind = $8::varchar))
    SELECT 1 FROM logged
    """
_NAME = b"distributor_journal"


class PreparedJournal:
    """The journal statement on one libpq connection, prepared there at its first run.

    Per message, psycopg's conversion of a query and its parameters costs about as much CPU as
    the round trip itself (45 against 24 µs for a two-parameter statement on the 2-core
    machine): here the parameters go as text straight to libpq, which releases the GIL while it
    waits. Errors are psycopg's own, as a cursor raises them."""

    def __init__(self, pgconn: PGconn) -> None:
        self.pgconn = pgconn
        self.prepared = False

    def run(self, values: Sequence[object]) -> bool:
        """Journal with ``values`` ($1 to $9: the delivery's id and claim token, the attempt,
        the SMTP code and answer, the worker, the time, the event's kind and payload); True
        when the line was written (the row was still held)."""
        if not self.prepared:
            _check(self.pgconn, self.pgconn.prepare(_NAME, JOURNAL_POSTGRES))
            self.prepared = True
        params = [None if value is None else _text(value).encode("utf-8") for value in values]
        # A NULL is None, as psycopg itself passes it (this method's stub is narrower than libpq).
        result = self.pgconn.exec_prepared(_NAME, params)  # type: ignore[arg-type]
        return _check(self.pgconn, result).ntuples == 1


def _text(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _check(pgconn: PGconn, result: PGresult) -> PGresult:
    if result.status in (ExecStatus.COMMAND_OK, ExecStatus.TUPLES_OK):
        return result
    if pgconn.status == ConnStatus.BAD:  # a lost connection, as psycopg words it
        raise psycopg.OperationalError(result.get_error_message("utf-8"))
    raise psycopg.errors.error_from_result(result)
