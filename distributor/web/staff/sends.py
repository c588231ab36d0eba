"""``/staff/`` (home) and ``/staff/sends``: create and schedule sends, watch them live, act on
them (pause, resume, cancel, retry the failed ones), find a recipient, export the deliveries.

Every action calls the service the CLI calls and records an audit entry in the same
transaction; the live parts poll JSON endpoints from ``/static/staff.js`` (the CSP allows no
inline script).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.responses import Response

from distributor.campaigns.schedule import create_send, schedule_send
from distributor.campaigns.status import SendStatus, list_sends, send_status
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.issues.store import list_issues
from distributor.sending.lifecycle import cancel_send, pause_send, resume_send, retry_failed
from distributor.sending.queries import DEFAULT_EXPIRY, list_deliveries
from distributor.sending.route_status import routing_now
from distributor.staff.audit import audit_of, record_audit
from distributor.staff.models import StaffUser
from distributor.vocabulary import EMAIL_VARIANTS, DeliveryState, SendState, Variant
from distributor.web.pages import WebDep
from distributor.web.staff.common import (
    PAGE_SIZE,
    WriterDep,
    see_other,
    shown_error,
    staff_page,
    when,
)
from distributor.web.staff_auth import StaffDep
from subscribers.csvfile import escape_cell
from subscribers.query import Audience, count_audience
from subscribers.store import list_summaries

router = APIRouter(include_in_schema=False)

SENDS = "/staff/sends"
ACTIVE = (SendState.RUNNING, SendState.PAUSED)
HOME_SENDS = 20
EXPORT_BATCH = 5000
DELIVERY_STATES = [state.value for state in DeliveryState]
PREFERENCE = "preference"  # the form's word for "each reader's own format" (variant None)


ACTIONS = {
    SendState.DRAFT: ("schedule", "cancel"),
    SendState.SCHEDULED: ("pause", "cancel"),
    SendState.RUNNING: ("pause", "cancel", "retry"),
    SendState.PAUSED: ("resume", "cancel", "retry"),
    SendState.DONE: ("retry",),
    SendState.EXPIRED: ("resume",),
}


def progress(status: SendStatus, zone: ZoneInfo) -> dict[str, Any]:
    """A send's status for the live page: the service's JSON, the share finished, and what
    staff may do with it now."""
    total = status.total
    done = status.finished_deliveries
    sent = status.counts.get(DeliveryState.SENT.value, 0)
    failed = status.counts.get(DeliveryState.FAILED.value, 0)
    return {
        **status.to_json(),
        "total": total,
        "finished": done,
        "percent": round(100 * done / total, 1) if total else 0,
        "delivered_rate": round(100 * sent / done, 1) if done else None,
        "failed_rate": round(100 * failed / done, 1) if done else None,
        "final": status.state in (SendState.DONE, SendState.CANCELLED, SendState.EXPIRED),
        "issue_number": status.issue_number,
        "audience_text": status.audience_text,
        "scheduled_local": when(status.scheduled_at, zone),
        "actions": ACTIONS.get(SendState(status.state), ()),
    }


@router.get("/staff/")
def home(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    with web.transaction() as session:
        sends = [
            progress(status, web.settings.zone) for status in list_sends(session, limit=HOME_SENDS)
        ]
    running = [s for s in sends if s["state"] in ACTIVE]
    scheduled = sorted(
        (s for s in sends if s["state"] == SendState.SCHEDULED),
        key=lambda s: str(s["scheduled_at"]),
    )
    return staff_page(
        request,
        "home.html",
        user,
        running=running,
        next_send=scheduled[0] if scheduled else None,
        recent=[s for s in sends if s["state"] not in ACTIVE and not s["is_test"]][:10],
    )


@router.get(SENDS)
def sends_list(
    request: Request, web: WebDep, user: StaffDep, before: int | None = None
) -> HTMLResponse:
    with web.transaction() as session:
        sends = [
            progress(s, web.settings.zone)
            for s in list_sends(session, before_id=before, limit=PAGE_SIZE)
        ]
    older = sends[-1]["id"] if len(sends) == PAGE_SIZE else None
    return staff_page(request, "sends.html", user, sends=sends, older=older)


def _new_form(
    request: Request, web: WebDep, user: StaffDep, *, status: int = 200, **values: object
) -> HTMLResponse:
    with web.transaction() as session:
        issues = list_issues(session)
        lists = list_summaries(session)
    return staff_page(
        request,
        "send_new.html",
        user,
        status=status,
        issues=sorted(issues, key=lambda issue: -issue.id),
        lists=lists,
        variants=[PREFERENCE, *(variant.value for variant in EMAIL_VARIANTS)],
        default_expiry=int(DEFAULT_EXPIRY.total_seconds() // 3600),
        values=values,
    )


@router.get(SENDS + "/new")
def new_send_form(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    issue = request.query_params.get("issue", "")
    return _new_form(request, web, user, issue=issue)


def audience_of(lists: list[str], tags: str) -> Audience:
    return Audience(
        lists=tuple(name for name in lists if name),
        tags=tuple(tag.strip() for tag in tags.split(",") if tag.strip()),
    )


@router.get("/staff/audience-count")
def audience_count(
    web: WebDep,
    user: StaffDep,
    lists: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
    tags: str = "",
) -> JSONResponse:
    """How many readers the create form's audience reaches now (the form polls this)."""
    audience = audience_of(lists, tags)
    with web.transaction() as session:
        count = count_audience(session, audience) if audience.lists else 0
    return JSONResponse({"count": count})


def _local_time(text: str, web: WebDep) -> datetime | None:
    """The form's ``datetime-local`` value, read in the staff's time zone; empty: now."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DistributorError(f"not a date and time: {text!r}") from None
    return moment.replace(tzinfo=web.settings.zone) if moment.tzinfo is None else moment


@router.post(SENDS + "/new")
def new_send(
    request: Request,
    web: WebDep,
    user: WriterDep,
    issue: Annotated[int, Form()],
    lists: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
    tags: Annotated[str, Form(max_length=2000)] = "",
    variant: Annotated[str, Form()] = PREFERENCE,
    at: Annotated[str, Form(max_length=40)] = "",
    rate: Annotated[str, Form(max_length=20)] = "",
    expiry_hours: Annotated[str, Form(max_length=10)] = "",
    action: Annotated[str, Form()] = "schedule",
) -> Response:
    values = {
        "issue": str(issue),
        "lists": lists,
        "tags": tags,
        "variant": variant,
        "at": at,
        "rate": rate,
        "expiry_hours": expiry_hours,
    }
    try:
        chosen = None if variant == PREFERENCE else Variant(variant)
        when = _local_time(at, web)
        rate_limit = float(rate) if rate.strip() else None
        expiry = timedelta(hours=float(expiry_hours)) if expiry_hours.strip() else DEFAULT_EXPIRY
        with web.transaction() as session:
            created = create_send(
                session,
                issue_id=issue,
                audience=audience_of(lists, tags),
                variant=chosen,
                at=when,
                now=utcnow(),
                zone=web.settings.zone,
                draft=action == "draft",
                expires_after=expiry,
                rate_limit=rate_limit,
            )
            record_audit(
                session,
                user,
                "send.create",
                "send",
                created.id,
                {
                    "issue": issue,
                    "lists": lists,
                    "tags": tags,
                    "variant": variant,
                    "state": created.state,
                    "readers": created.readers,
                },
            )
    except (DistributorError, ValueError) as error:
        message = error.message if isinstance(error, DistributorError) else str(error)
        return _new_form(
            request, web, user, status=400, error=shown_error(request, message), **values
        )
    return see_other(f"{SENDS}/{created.id}")


@router.get(SENDS + "/{send_id}")
def send_page(request: Request, send_id: int, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _send_page(request, send_id, web, user)


def _send_page(
    request: Request,
    send_id: int,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    with web.transaction() as session:
        shown = progress(send_status(session, send_id), web.settings.zone)
        audit = audit_of(session, "send", send_id)
    routing = routing_now(web.settings)
    resting = {
        relay.name: when(datetime.fromtimestamp(relay.resting_until, UTC), web.settings.zone)
        for relay in routing.relays
        if relay.resting_until is not None
    }
    return staff_page(
        request,
        "send.html",
        user,
        send=shown,
        audit=audit,
        routing=routing,
        resting=resting,
        states=DELIVERY_STATES,
        status=status,
        error=error,
    )


@router.get(SENDS + "/{send_id}/status.json")
def send_status_json(send_id: int, web: WebDep, user: StaffDep) -> JSONResponse:
    with web.transaction() as session:
        return JSONResponse(progress(send_status(session, send_id), web.settings.zone))


def _state(value: str | None) -> DeliveryState | None:
    try:
        return DeliveryState(value) if value else None
    except ValueError:
        raise DistributorError(f"no delivery state {value!r}") from None


@router.get(SENDS + "/{send_id}/recipients")
def recipients(
    request: Request,
    send_id: int,
    web: WebDep,
    user: StaffDep,
    q: Annotated[str, Query(max_length=254)] = "",
    state: str = "",
    after: int = 0,
) -> HTMLResponse:
    with web.transaction() as session:
        status = progress(send_status(session, send_id), web.settings.zone)
        rows = list_deliveries(
            session,
            send_id,
            state=_state(state),
            after_id=after,
            limit=PAGE_SIZE,
            address=q.strip() or None,
        )
    return staff_page(
        request,
        "recipients.html",
        user,
        send=status,
        rows=rows,
        q=q,
        state=state,
        states=DELIVERY_STATES,
        next_after=rows[-1].id if len(rows) == PAGE_SIZE else None,
    )


@router.get(SENDS + "/{send_id}/deliveries.csv")
def deliveries_csv(send_id: int, web: WebDep, user: StaffDep) -> StreamingResponse:
    with web.transaction() as session:
        send_status(session, send_id)  # a missing send is a 404, not an empty file

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["address", "state", "attempts", "smtp_code", "detail", "sent_at"])
        after = 0
        while True:
            with web.transaction() as session:
                batch = list_deliveries(session, send_id, after_id=after, limit=EXPORT_BATCH)
            for d in batch:
                writer.writerow(
                    [
                        escape_cell(d.address),
                        d.state,
                        d.attempts,
                        d.smtp_code or "",
                        escape_cell(d.detail or ""),
                        d.sent_at.isoformat() if d.sent_at else "",
                    ]
                )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(batch) < EXPORT_BATCH:
                return
            after = batch[-1].id

    return StreamingResponse(
        rows(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="send-{send_id}-deliveries.csv"'},
    )


@router.post(SENDS + "/{send_id}/{action}")
def send_action(
    request: Request,
    send_id: int,
    action: str,
    web: WebDep,
    user: WriterDep,
    code: Annotated[str, Form(max_length=3)] = "",
    at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    now = utcnow()
    detail: dict[str, object] = {}
    try:
        with web.transaction() as session:
            if action == "pause":
                pause_send(session, send_id, now)
            elif action == "resume":
                resume_send(session, send_id, now)
            elif action == "cancel":
                detail["cancelled"] = cancel_send(session, send_id, now)
            elif action == "retry":
                smtp_code = int(code) if code.strip() else None
                detail.update(
                    code=smtp_code, retried=retry_failed(session, send_id, now, code=smtp_code)
                )
            elif action == "schedule":
                when = schedule_send(
                    session, send_id, _local_time(at, web), now=now, zone=web.settings.zone
                )
                detail["at"] = when.isoformat()
            else:
                raise DistributorError(f"no action {action!r} on a send")
            record_audit(session, user, f"send.{action}", "send", send_id, detail)
    except (DistributorError, ValueError) as error:
        message = error.message if isinstance(error, DistributorError) else str(error)
        return _send_page(
            request, send_id, web, user, status=400, error=shown_error(request, message)
        )
    return see_other(f"{SENDS}/{send_id}")
