"""``/staff/webhooks``: the webhooks that hear of events, and what was delivered to each,
through the same services as ``distributor webhooks`` and ``/api/v1/webhooks``. Staff read them;
admins register one (its signing secret shown this once), pause, resume and remove them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from starlette.responses import Response

from distributor.errors import DistributorError
from distributor.staff.audit import record_audit
from distributor.staff.models import StaffUser
from distributor.web.pages import WebDep
from distributor.web.staff.common import AdminFormDep, see_other, shown_error, staff_page
from distributor.web.staff_auth import StaffDep
from distributor.webhooks.models import DESCRIPTION_MAX, URL_MAX
from distributor.webhooks.store import (
    EVENT_NAMES,
    add_webhook,
    delivery_log,
    list_webhooks,
    remove_webhook,
    set_active,
    show_webhook,
)

router = APIRouter(include_in_schema=False)

WEBHOOKS = "/staff/webhooks"
LOG_SHOWN = 100  # the newest deliveries a webhook's page lists


def _webhooks_page(
    request: Request,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
    secret: tuple[int, str] | None = None,
    values: dict[str, object] | None = None,
) -> HTMLResponse:
    """``secret``: (webhook id, secret) of a webhook just registered, shown this once."""
    with web.transaction() as session:
        hooks = list_webhooks(session)
    return staff_page(
        request,
        "webhooks.html",
        user,
        status=status,
        hooks=hooks,
        events=EVENT_NAMES,
        error=error,
        secret=secret,
        values=values or {},
    )


@router.get(WEBHOOKS)
def webhooks_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _webhooks_page(request, web, user)


@router.post(WEBHOOKS)
def register(
    request: Request,
    web: WebDep,
    admin: AdminFormDep,
    url: Annotated[str, Form(max_length=URL_MAX)],
    events: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
    description: Annotated[str, Form(max_length=DESCRIPTION_MAX)] = "",
) -> Response:
    """The secret is in this answer only (never in a URL): the page shows it."""
    try:
        with web.transaction() as session:
            hook, secret = add_webhook(session, url, events, description)
            record_audit(session, admin, "webhook.add", "webhook", hook.id, {"url": hook.url})
    except DistributorError as error:
        values: dict[str, object] = {"url": url, "events": events, "description": description}
        return _webhooks_page(
            request, web, admin, status=400, error=shown_error(request, error), values=values
        )
    return _webhooks_page(request, web, admin, secret=(hook.id, secret))


def _hook_page(
    request: Request, web: WebDep, user: StaffUser, webhook_id: int, *, status: int = 200
) -> HTMLResponse:
    try:
        with web.transaction() as session:
            hook = show_webhook(session, webhook_id)
            log = delivery_log(session, webhook_id, limit=LOG_SHOWN)
    except DistributorError as error:
        return _webhooks_page(request, web, user, status=404, error=shown_error(request, error))
    return staff_page(request, "webhook.html", user, status=status, hook=hook, log=log)


@router.get(WEBHOOKS + "/{webhook_id}")
def webhook_page(request: Request, web: WebDep, user: StaffDep, webhook_id: int) -> HTMLResponse:
    return _hook_page(request, web, user, webhook_id)


@router.post(WEBHOOKS + "/{webhook_id}/{action}")
def act(
    request: Request, web: WebDep, admin: AdminFormDep, webhook_id: int, action: str
) -> Response:
    """pause, resume or remove (its log goes with it)."""
    if action not in ("pause", "resume", "remove"):
        return _hook_page(request, web, admin, webhook_id, status=404)
    try:
        with web.transaction() as session:
            if action == "remove":
                remove_webhook(session, webhook_id)
                record_audit(session, admin, "webhook.remove", "webhook", webhook_id)
            else:
                set_active(session, webhook_id, action == "resume")
                record_audit(
                    session, admin, "webhook.active", "webhook", webhook_id,
                    {"active": action == "resume"},
                )
    except DistributorError as error:
        return _webhooks_page(request, web, admin, status=404, error=shown_error(request, error))
    return see_other(WEBHOOKS if action == "remove" else f"{WEBHOOKS}/{webhook_id}")
