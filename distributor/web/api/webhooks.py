"""``/api/v1/webhooks``: register URLs for events, pause them, read what each was sent."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StrictBool

from distributor.outbox import EventKind
from distributor.web.api.access import Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, NOT_FOUND
from distributor.web.api.models import WEB_URL_PATTERN, Body, ItemId
from distributor.web.pages import WebDep
from distributor.web.staff_auth import ApiAdminDep as Admin
from distributor.webhooks.models import DESCRIPTION_MAX, URL_MAX, HookState
from distributor.webhooks.store import (
    EVENT_NAMES,
    LOG_LIMIT_MAX,
    WebhookView,
    add_webhook,
    delivery_log,
    list_webhooks,
    remove_webhook,
    set_active,
    show_webhook,
)

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], responses=COMMON_ERRORS)


class WebhookIn(Body):
    url: str = Field(
        max_length=URL_MAX,
        pattern=WEB_URL_PATTERN,
        description="Where to post, http(s), without a user or password.",
    )
    events: list[EventKind] = Field(min_length=1, max_length=len(EVENT_NAMES))
    description: str = Field(default="", max_length=DESCRIPTION_MAX)


class WebhookEdit(Body):
    active: StrictBool = Field(description="False: events from now on are not kept for it.")


class WebhookOut(BaseModel):
    id: int
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(
        description="Shown this once here: the key of the HMAC-SHA256 signature of its posts."
    )


class WebhooksOut(BaseModel):
    items: list[WebhookOut]


class LogEntryOut(BaseModel):
    event: str = Field(description="The idempotency id (the `Webhook-Id` header).")
    kind: str
    state: HookState
    attempts: int
    last_status: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None
    next_attempt_at: datetime | None = Field(description="None once delivered or given up.")
    delivered_at: datetime | None
    created_at: datetime


class LogOut(BaseModel):
    items: list[LogEntryOut]


def _out(hook: WebhookView) -> WebhookOut:
    return WebhookOut(
        id=hook.id,
        url=hook.url,
        events=list(hook.events),
        description=hook.description,
        active=hook.active,
        created_at=hook.created_at,
    )


@router.get("", response_model=WebhooksOut, summary="Webhooks")
def list_all(web: WebDep, user: Viewer) -> WebhooksOut:
    with web.reading() as session:
        return WebhooksOut(items=[_out(hook) for hook in list_webhooks(session)])


@router.post("", status_code=201, response_model=WebhookCreated, summary="Register (admins)")
def create(body: WebhookIn, web: WebDep, user: Admin) -> WebhookCreated:
    """Each event of the kinds given is posted to `url` from now on, signed with the secret
    answered here (README, Webhooks)."""
    with web.transaction() as session:
        hook, secret = add_webhook(
            session, body.url, [event.value for event in body.events], body.description
        )
        audit(session, user, "webhook.add", "webhook", hook.id, {"url": hook.url})
        return WebhookCreated(**_out(hook).model_dump(), secret=secret)


@router.get("/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND, summary="One")
def show(webhook_id: ItemId, web: WebDep, user: Viewer) -> WebhookOut:
    with web.reading() as session:
        return _out(show_webhook(session, webhook_id))


@router.patch(
    "/{webhook_id}", response_model=WebhookOut, responses=NOT_FOUND, summary="Pause or resume"
)
def edit(webhook_id: ItemId, body: WebhookEdit, web: WebDep, user: Admin) -> WebhookOut:
    with web.transaction() as session:
        hook = set_active(session, webhook_id, body.active)
        audit(session, user, "webhook.active", "webhook", webhook_id, body.model_dump())
        return _out(hook)


@router.delete("/{webhook_id}", status_code=204, responses=NOT_FOUND, summary="Remove")
def delete(webhook_id: ItemId, web: WebDep, user: Admin) -> Response:
    with web.transaction() as session:
        remove_webhook(session, webhook_id)
        audit(session, user, "webhook.remove", "webhook", webhook_id)
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries", response_model=LogOut, responses=NOT_FOUND, summary="Its log"
)
def log(
    webhook_id: ItemId,
    web: WebDep,
    user: Viewer,
    state: HookState | None = None,
    limit: Annotated[int, Query(ge=1, le=LOG_LIMIT_MAX)] = 50,
) -> LogOut:
    """What was sent to it, newest first: each event, its tries and the last answer."""
    with web.reading() as session:
        entries = delivery_log(session, webhook_id, state=state, limit=limit)
    return LogOut(
        items=[
            LogEntryOut(
                event=e.event,
                kind=e.kind,
                state=HookState(e.state),
                attempts=e.attempts,
                last_status=e.last_status,
                last_error=e.last_error,
                next_attempt_at=e.next_attempt_at,
                delivered_at=e.delivered_at,
                created_at=e.created_at,
            )
            for e in entries
        ]
    )
