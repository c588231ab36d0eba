"""Posting the outbox's events to their webhooks: fan out, claim what is due, post, record.

Run by a Celery beat task (``distributor.webhooks``) every few seconds, apart from sending: a
slow or dead receiver delays only its own deliveries. Each try's answer is recorded before the
next post; a worker killed mid-post leaves its claim to run out (``LEASE``), and the event is
posted again with the same idempotency id, which is how the receiver knows it had it.
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import and_, insert, literal, select, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.config import Settings
from distributor.db import utcnow
from distributor.outbox import EventListener, OutboxEvent
from distributor.webhooks.models import HookState, Webhook, WebhookDelivery
from distributor.webhooks.signing import headers
from distributor.webhooks.store import event_id

LEASE = timedelta(seconds=60)  # a claimed try not recorded by then goes out again
FAN_OUT_BATCH = 1000
CLAIM_BATCH = 20
MAX_DELAY = timedelta(hours=1)
ERROR_MAX = 500  # characters of a receiver's answer kept in the log


@dataclass(frozen=True)
class Retry:
    base: timedelta
    max_attempts: int

    def delay(self, attempts: int) -> timedelta:
        """After the ``attempts``-th failure: base, 2×, 4× … capped at an hour."""
        return min(self.base * (1 << min(attempts - 1, 20)), MAX_DELAY)


@dataclass
class HookReport:
    fanned_out: int = 0
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


def fan_out(session: Session, now: datetime) -> int:
    """One delivery row per waiting event and active webhook listening for it."""
    waiting = list(
        session.scalars(
            select(OutboxEvent.id)
            .where(OutboxEvent.fanned_out.is_(False))
            .order_by(OutboxEvent.id)
            .limit(FAN_OUT_BATCH)
        )
    )
    if not waiting:
        return 0
    rows = (
        select(
            EventListener.webhook_id,
            OutboxEvent.id,
            literal(now, WebhookDelivery.__table__.c.next_attempt_at.type),
        )
        .join(EventListener, EventListener.kind == OutboxEvent.kind)
        .join(Webhook, and_(Webhook.id == EventListener.webhook_id, Webhook.active))
        .where(OutboxEvent.id.in_(waiting))
    )
    session.execute(
        insert(WebhookDelivery).from_select(["webhook_id", "event_id", "next_attempt_at"], rows)
    )
    session.execute(update(OutboxEvent).where(OutboxEvent.id.in_(waiting)).values(fanned_out=True))
    return len(waiting)


@dataclass(frozen=True)
class Try:
    id: int
    url: str
    secret: str
    attempts: int
    event: str
    body: bytes


def claim_due(
    session: Session, now: datetime, token: str, *, limit: int = CLAIM_BATCH
) -> list[Try]:
    """Due deliveries, held by ``token`` for a lease (SKIP LOCKED where the database has it)."""
    due = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.state == HookState.PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    ids = list(session.scalars(due))
    if not ids:
        return []
    session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_(ids))
        .values(next_attempt_at=now + LEASE, claim_token=token, updated_at=now)
    )
    rows = session.execute(
        select(
            WebhookDelivery.id,
            Webhook.url,
            Webhook.secret,
            WebhookDelivery.attempts,
            OutboxEvent.id,
            OutboxEvent.kind,
            OutboxEvent.payload,
            OutboxEvent.at,
        )
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.id.in_(ids))
        .order_by(WebhookDelivery.id)
    )
    return [
        Try(row_id, url, secret, attempts, event_id(outbox_id), _body(outbox_id, kind, payload, at))
        for row_id, url, secret, attempts, outbox_id, kind, payload, at in rows
    ]


def _body(outbox_id: int, kind: str, payload: dict[str, Any], at: datetime) -> bytes:
    """The same bytes on every try of an event."""
    document = {
        "id": event_id(outbox_id),
        "type": kind,
        "created_at": at.isoformat(),
        "data": payload,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()


def post(client: httpx.Client, attempt: Try, now: float) -> tuple[int | None, str | None]:
    """(HTTP status, error in words); a 2xx has no error."""
    try:
        answer = client.post(
            attempt.url,
            content=attempt.body,
            headers=headers(attempt.secret, attempt.event, int(now), attempt.body),
        )
    except httpx.HTTPError as error:
        return None, f"{type(error).__name__}: {error}"[:ERROR_MAX]
    if answer.is_success:
        return answer.status_code, None
    return answer.status_code, f"HTTP {answer.status_code}: {answer.text[:ERROR_MAX]}"


def record(
    session: Session,
    attempt: Try,
    token: str,
    status: int | None,
    error: str | None,
    now: datetime,
    retry: Retry,
) -> HookState | None:
    """The try's outcome, if the row is still this try's (None: its lease ran out meanwhile)."""
    attempts = attempt.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status": status,
        "last_error": error,
        "claim_token": None,
        "updated_at": now,
    }
    if error is None:
        state = HookState.DELIVERED
        values |= {"state": state, "delivered_at": now}
    elif attempts >= retry.max_attempts:
        state = HookState.FAILED
        values |= {"state": state}
    else:
        state = HookState.PENDING
        values |= {"next_attempt_at": now + retry.delay(attempts)}
    moved = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == attempt.id, WebhookDelivery.claim_token == token)
        .values(**values)
    )
    return state if moved.rowcount else None  # type: ignore[attr-defined]


def run_webhooks(
    factory: sessionmaker[Session],
    client: httpx.Client,
    retry: Retry,
    *,
    budget: timedelta = timedelta(seconds=20),
    clock: Callable[[], datetime] = utcnow,
) -> HookReport:
    """Fan the outbox out, then post what is due until nothing is or the budget is spent."""
    report = HookReport()
    with factory.begin() as session:
        while fanned := fan_out(session, clock()):
            report.fanned_out += fanned
    token = uuid.uuid4().hex
    ends = time.monotonic() + budget.total_seconds()
    while time.monotonic() < ends:
        with factory.begin() as session:
            tries = claim_due(session, clock(), token)
        if not tries:
            break
        for attempt in tries:
            status, error = post(client, attempt, time.time())
            with factory.begin() as session:
                state = record(session, attempt, token, status, error, clock(), retry)
            if state is HookState.DELIVERED:
                report.delivered += 1
            elif state is HookState.PENDING:
                report.retrying += 1
            elif state is HookState.FAILED:
                report.failed += 1
    return report


def deliver_webhooks(factory: sessionmaker[Session], settings: Settings) -> HookReport:
    """One round, with the settings' timeout and retry schedule (the beat task's work)."""
    retry = Retry(
        timedelta(seconds=settings.webhook_retry_base_seconds), settings.webhook_max_attempts
    )
    return run_webhooks(factory, _client(settings.webhook_timeout_seconds), retry)


@functools.lru_cache(maxsize=4)
def _client(timeout: float) -> httpx.Client:
    """One client per process and timeout, kept: making one loads the CA bundle (30 ms of CPU),
    and a round runs every two seconds, mostly with nothing to post."""
    return httpx.Client(timeout=timeout, follow_redirects=False)
