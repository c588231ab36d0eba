"""Registering webhooks, and reading what was delivered to each (the delivery log)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from distributor.errors import DistributorError, NotFound
from distributor.outbox import EventKind, EventListener, OutboxEvent
from distributor.webhooks.models import (
    DESCRIPTION_MAX,
    URL_MAX,
    HookState,
    Webhook,
    WebhookDelivery,
)
from distributor.webhooks.signing import new_secret

EVENT_NAMES = tuple(kind.value for kind in EventKind)
LOG_LIMIT_MAX = 500


@dataclass(frozen=True)
class WebhookView:
    id: int
    url: str
    events: tuple[str, ...]
    description: str
    active: bool
    created_at: datetime


@dataclass(frozen=True)
class LogEntry:
    id: int
    event: str  # the idempotency id the receiver sees
    kind: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: datetime | None  # None once delivered or given up
    delivered_at: datetime | None
    created_at: datetime


def _view(hook: Webhook) -> WebhookView:
    return WebhookView(
        hook.id, hook.url, tuple(hook.events), hook.description, hook.active, hook.created_at
    )


def check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > URL_MAX:
        raise DistributorError(
            f"{url[:80]!r} is not a web address like https://example.org/hooks/distributor",
            code="webhook.url",
            url=url[:80],
        )
    if parts.username or parts.password:
        raise DistributorError(
            "a webhook URL cannot carry a password: its posts are signed", code="webhook.password"
        )
    return url


def check_events(events: list[str]) -> list[str]:
    if not events:
        raise DistributorError(
            f"name at least one event: {', '.join(EVENT_NAMES)}",
            code="webhook.no_events",
            events=", ".join(EVENT_NAMES),
        )
    unknown = [event for event in events if event not in EVENT_NAMES]
    if unknown:
        raise DistributorError(
            f"{', '.join(map(repr, unknown))} is not an event; the events are "
            f"{', '.join(EVENT_NAMES)}",
            code="webhook.unknown_events",
            unknown=", ".join(unknown),
            events=", ".join(EVENT_NAMES),
        )
    return list(dict.fromkeys(events))


def add_webhook(
    session: Session, url: str, events: list[str], description: str = ""
) -> tuple[WebhookView, str]:
    """A new webhook and its secret (shown once here; ``webhook_secret`` shows it again)."""
    if len(description) > DESCRIPTION_MAX:
        raise DistributorError(
            f"the description is longer than {DESCRIPTION_MAX} characters",
            code="webhook.description_long",
            most=DESCRIPTION_MAX,
        )
    hook = Webhook(
        url=check_url(url),
        secret=new_secret(),
        events=check_events(events),
        description=description,
    )
    session.add(hook)
    session.flush()
    _listen(session, hook)
    return _view(hook), hook.secret


def _listen(session: Session, hook: Webhook) -> None:
    session.execute(delete(EventListener).where(EventListener.webhook_id == hook.id))
    if hook.active:
        session.execute(
            insert(EventListener), [{"kind": kind, "webhook_id": hook.id} for kind in hook.events]
        )


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(
            f"there is no webhook with ID {webhook_id}", code="webhook.missing", webhook=webhook_id
        )
    return hook


def list_webhooks(session: Session) -> list[WebhookView]:
    return [_view(hook) for hook in session.scalars(select(Webhook).order_by(Webhook.id))]


def show_webhook(session: Session, webhook_id: int) -> WebhookView:
    return _view(get_webhook(session, webhook_id))


def webhook_secret(session: Session, webhook_id: int) -> str:
    return get_webhook(session, webhook_id).secret


def set_active(session: Session, webhook_id: int, active: bool) -> WebhookView:
    """Pause a webhook (events from now on are not kept for it) or resume it."""
    hook = get_webhook(session, webhook_id)
    hook.active = active
    _listen(session, hook)
    return _view(hook)


def remove_webhook(session: Session, webhook_id: int) -> None:
    session.delete(get_webhook(session, webhook_id))


def delivery_log(
    session: Session, webhook_id: int, *, state: str | None = None, limit: int = 50
) -> list[LogEntry]:
    """The webhook's deliveries, newest first."""
    get_webhook(session, webhook_id)
    query = (
        select(WebhookDelivery, OutboxEvent.kind)
        .join(OutboxEvent, OutboxEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.webhook_id == webhook_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(min(limit, LOG_LIMIT_MAX))
    )
    if state is not None:
        query = query.where(WebhookDelivery.state == HookState(state))
    return [
        LogEntry(
            row.id,
            event_id(row.event_id),
            kind,
            row.state.value,
            row.attempts,
            row.last_status,
            row.last_error,
            row.next_attempt_at if row.state is HookState.PENDING else None,
            row.delivered_at,
            row.created_at,
        )
        for row, kind in session.execute(query)
    ]


def event_id(outbox_id: int) -> str:
    """The idempotency id of an event: the same for every try and every webhook."""
    return f"evt_{outbox_id}"
