"""``/staff/`` (home) and ``/staff/sends``: create and schedule sends, watch them live, act on
them (pause, resume, cancel, retry the failed ones), find a recipient, export the deliveries.

Every action calls the service the CLI calls and records an audit entry in the same
transaction; the live parts poll JSON endpoints from ``/static/staff.js`` (the CSP allows no
inline script).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from distributor.campaigns.left_out import LEFT_OUT_ORDER, LeftOut, left_out, look_up_reader
from distributor.campaigns.schedule import (
    SendChanges,
    audience_reach,
    create_send,
    edit_send,
    wechat_account_of,
)
from distributor.campaigns.status import SendStatus, list_sends, send_status
from distributor.count_budget import CountPending, still_counting
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.issues.store import list_issues
from distributor.readers.arms import AbStatus
from distributor.sending.ab import AbTest, WinnerBy, arm_quota, parse_wait, wait_text
from distributor.sending.breakdown import Outlook, outlook_of
from distributor.sending.lifecycle import (
    WAITING_DELIVERY_STATES,
    cancel_send,
    pause_send,
    reopen_send,
    resume_send,
    retry_failed,
)
from distributor.sending.models import BY_PREFERENCE
from distributor.sending.queries import DEFAULT_EXPIRY, get_send, list_deliveries
from distributor.sending.reach import Reach
from distributor.sending.route_status import routing_now
from distributor.staff.audit import audit_of, record_audit
from distributor.staff.models import StaffUser
from distributor.vocabulary import EMAIL_VARIANTS, DeliveryState, SendState, Variant
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, page_language
from distributor.web.staff.common import (
    PAGE_SIZE,
    WriterDep,
    see_other,
    shown_error,
    staff_page,
    when,
)
from distributor.web.staff.pictures import Translate, send_pictures, sends_side_by_side
from distributor.web.staff.reasons import REASONED_STATES, error_of, reason_key
from distributor.web.staff_auth import StaffDep
from subscribers.csvfile import escape_cell
from subscribers.query import Audience
from subscribers.store import list_summaries

router = APIRouter(include_in_schema=False)

SENDS = "/staff/sends"
ACTIVE = (SendState.RUNNING, SendState.PAUSED)
HOME_SENDS = 20
COMPARED = 8  # the last sends drawn side by side on the overview
EXPORT_BATCH = 5000
DELIVERY_STATES = [state.value for state in DeliveryState]
PREFERENCE = BY_PREFERENCE  # each reader's own format (variant None): the default, as the CLI's


FINAL_STATES = (SendState.DONE, SendState.CANCELLED, SendState.EXPIRED)
ACTIONS = {
    SendState.DRAFT: ("edit", "cancel"),
    SendState.SCHEDULED: ("edit", "pause", "cancel"),
    SendState.RUNNING: ("pause", "cancel", "retry"),
    SendState.PAUSED: ("resume", "cancel", "retry"),
    SendState.DONE: ("retry",),
    SendState.EXPIRED: ("resume",),
    SendState.CANCELLED: ("reopen",),
}
# Actions that stop or send mail: each asks for a confirmation first (a second POST).
CONFIRMED_ACTIONS = ("cancel", "reopen")


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
        # Rounded down: 100 only when every delivery has its answer.
        "percent": math.floor(1000 * done / total) / 10 if total else 0,
        "delivered_rate": round(100 * sent / done, 1) if done else None,
        "failed_rate": round(100 * failed / done, 1) if done else None,
        "final": status.state in FINAL_STATES,
        "issue_number": status.issue_number,
        "audience_text": status.audience_text,
        "scheduled_local": when(status.scheduled_at, zone),
        "started_local": when(status.started_at, zone),
        "finished_local": when(status.finished_at, zone),
        "actions": ACTIONS.get(SendState(status.state), ()),
        **({"ab_local": ab_times(status.ab, zone)} if status.ab else {}),
    }


def ab_times(ab: AbStatus, zone: ZoneInfo) -> dict[str, str]:
    """An A/B test's moments in the staff's zone: decided, or when it will be ("" not known);
    its wait as staff typed it."""
    due = ab.tested_at + ab.wait if ab.tested_at else None
    return {
        "decided": when(ab.decided_at, zone),
        "due": when(due, zone),
        "wait": wait_text(ab.wait),
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
        compared=sends_side_by_side(
            [s for s in sends if not s["is_test"]][:COMPARED], translator(page_language(request))
        ),
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
    request: Request,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    editing: dict[str, Any] | None = None,
    **values: object,
) -> HTMLResponse:
    """The create form, or (``editing``: the send's progress) the form changing a draft or a
    scheduled send."""
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
        editing=editing,
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
    request: Request,
    web: WebDep,
    user: StaffDep,
    lists: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI copies it
    tags: str = "",
    variant: str = PREFERENCE,
    issue: str = "",
) -> JSONResponse:
    """How many readers the create form's audience reaches now (the form polls this): the count
    the send will be created with; 202 ``{"pending": true}`` while a count too long for the
    page is made (the form asks again)."""
    audience = audience_of(lists, tags)
    if not audience.lists:
        return JSONResponse({"count": 0})
    with web.transaction(budget=True, waited=waited(request)) as session:
        try:
            reach = audience_reach(
                session,
                issue_id=int(issue) if issue.isdecimal() else None,
                audience=audience,
                variant=_variant(variant),
                wechat_account=wechat_account_of(web.settings),
            )
        except CountPending as pending:
            return JSONResponse({"pending": True, "counting": counting_url(pending)}, 202)
    return JSONResponse({"count": reach.readers, **reach.to_json()})


def counting_url(pending: CountPending) -> str:
    return f"/staff/counting/{pending.key}"


def waited(request: Request) -> list[str]:
    """The counts a page waited for before it was asked again: its ``counted`` parameters
    (staff.js adds the key of each count it waited for)."""
    return request.query_params.getlist("counted")


@router.get("/staff/counting/{key}")
def counting(
    web: WebDep, user: StaffDep, key: Annotated[str, Path(pattern="^[0-9a-f]{64}$")]
) -> JSONResponse:
    """Whether a count a page is waiting for is still being made (202 ``{"pending": true}``);
    once it is not, the page is asked for again and finds it kept."""
    with web.reading() as session:
        pending = still_counting(session, key)
    return JSONResponse({"pending": pending}, 202 if pending else 200)


def _variant(text: str) -> Variant | None:
    if text == PREFERENCE:
        return None
    try:
        return Variant(text)
    except ValueError:
        raise DistributorError(
            f"no variant {text[:40]!r}", code="send.no_variant", variant=text[:40]
        ) from None


def _local_time(text: str, web: WebDep) -> datetime | None:
    """The form's ``datetime-local`` value, read in the staff's time zone; empty: now."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DistributorError(
            f"not a date and time: {text!r}", code="form.not_time", value=text
        ) from None
    return moment.replace(tzinfo=web.settings.zone) if moment.tzinfo is None else moment


@dataclass(frozen=True)
class SendForm:
    """The fields of the create and edit forms, as posted (their confirmation posts them again,
    with ``confirmed``)."""

    lists: list[str]
    tags: str
    variant: str
    at: str
    rate: str
    expiry_hours: str
    track: str
    action: str
    confirmed: str
    # An A/B subject test (the create form only): subject B, and how the winner is chosen.
    subject_b: str = ""
    test_share: str = ""
    winner_by: str = ""
    winner_after: str = ""

    @property
    def draft(self) -> bool:
        return self.action == "draft"

    @property
    def to_confirm(self) -> bool:
        """Mail would leave: the first POST only sums it up."""
        return not self.draft and not self.confirmed

    def values(self) -> dict[str, Any]:
        """What the form (and the confirmation's hidden fields) show again."""
        return {
            "lists": self.lists,
            "tags": self.tags,
            "variant": self.variant,
            "at": self.at,
            "rate": self.rate,
            "expiry_hours": self.expiry_hours,
            "track": self.track,
            **(
                {
                    "subject_b": self.subject_b,
                    "test_share": self.test_share,
                    "winner_by": self.winner_by,
                    "winner_after": self.winner_after,
                }
                if self.subject_b.strip()
                else {}
            ),
        }

    def ab_test(self) -> AbTest | None:
        """The A/B test asked for, or None (no subject B)."""
        if not self.subject_b.strip():
            return None
        share = int(self.test_share) if self.test_share.strip() else 20
        return AbTest(
            self.subject_b,
            share,
            WinnerBy(self.winner_by or WinnerBy.OPENS),
            parse_wait(self.winner_after or "4h"),
        )

    def changes(self, web: WebDep) -> SendChanges:
        """The fields, read (a ValueError or DistributorError says which is wrong)."""
        return SendChanges(
            audience=audience_of(self.lists, self.tags),
            variant=_variant(self.variant),
            at=_local_time(self.at, web),
            rate_limit=float(self.rate) if self.rate.strip() else None,
            expires_after=(
                timedelta(hours=float(self.expiry_hours))
                if self.expiry_hours.strip()
                else DEFAULT_EXPIRY
            ),
            tracking=bool(self.track),
        )


def send_form(
    lists: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
    tags: Annotated[str, Form(max_length=2000)] = "",
    variant: Annotated[str, Form()] = PREFERENCE,
    at: Annotated[str, Form(max_length=40)] = "",
    rate: Annotated[str, Form(max_length=20)] = "",
    expiry_hours: Annotated[str, Form(max_length=10)] = "",
    track: Annotated[str, Form(max_length=5)] = "",
    action: Annotated[str, Form()] = "schedule",
    confirmed: Annotated[str, Form(max_length=5)] = "",
    subject_b: Annotated[str, Form(max_length=400)] = "",
    test_share: Annotated[str, Form(max_length=5)] = "",
    winner_by: Annotated[str, Form(max_length=10)] = "",
    winner_after: Annotated[str, Form(max_length=20)] = "",
) -> SendForm:
    return SendForm(
        lists, tags, variant, at, rate, expiry_hours, track, action, confirmed,
        subject_b, test_share, winner_by, winner_after,
    )


SendFormDep = Annotated[SendForm, Depends(send_form)]


@router.post(SENDS + "/new")
def new_send_post(
    request: Request,
    web: WebDep,
    user: WriterDep,
    issue: Annotated[int, Form()],
    form: SendFormDep,
) -> Response:
    """Save a draft at once (nothing leaves); a send to go out is summed up for a confirmation
    first, and made only by the confirmation's own POST."""
    values = {"issue": str(issue), **form.values()}
    if form.action == "back":
        return _new_form(request, web, user, **values)
    try:
        changes = form.changes(web)
        ab = form.ab_test()
        with web.transaction(budget=form.to_confirm, waited=waited(request)) as session:
            try:
                created = create_send(
                    session,
                    issue_id=issue,
                    audience=changes.audience,
                    variant=changes.variant,
                    at=changes.at,
                    now=utcnow(),
                    zone=web.settings.zone,
                    draft=form.draft,
                    expires_after=changes.expires_after,
                    rate_limit=changes.rate_limit,
                    tracking=changes.tracking,
                    wechat_account=wechat_account_of(web.settings),
                    dry_run=form.to_confirm,
                    ab=ab,
                )
            except CountPending as pending:  # only a confirmation has a budget
                return _confirmation(
                    request, session, web, user, f"{SENDS}/new", values, None, changes,
                    issue_id=issue, ab=ab, pending=pending,
                )
            if form.to_confirm:
                return _confirmation(
                    request, session, web, user, f"{SENDS}/new", values, created.reach, changes,
                    issue_id=issue, ab=ab,
                )
            record_audit(
                session,
                user,
                "send.create",
                "send",
                created.id,
                {**values, "state": created.state, "readers": created.readers},
            )
    except (DistributorError, ValueError) as error:
        return _new_form(
            request, web, user, status=400, error=shown_error(request, error), **values
        )
    return see_other(f"{SENDS}/{created.id}")


def _confirmation(
    request: Request,
    session: Session,
    web: WebDep,
    user: StaffUser,
    post_to: str,
    values: dict[str, Any],
    reach: Reach | None,
    changes: SendChanges,
    *,
    issue_id: int,
    send: dict[str, Any] | None = None,
    ab: AbTest | None = None,
    pending: CountPending | None = None,
) -> HTMLResponse:
    """The summary of a send about to be made or scheduled, with the button that does it; an
    A/B test's arms as planning will cut them from today's readers. ``pending`` (no ``reach``):
    its readers are still being counted; the page says so, its button is disabled, and it is
    posted again (unconfirmed) once they are counted, every check then made."""
    issue = next(i for i in list_issues(session) if i.id == issue_id)
    zone = web.settings.zone
    return staff_page(
        request,
        "send_confirm.html",
        user,
        kind="create" if send is None else "schedule",
        post_to=post_to,
        hidden=values,
        send=send,
        counting=counting_url(pending) if pending else None,
        summary={
            "issue": issue,
            "lists": changes.audience.lists,
            "tags": changes.audience.tags,
            "variant": PREFERENCE if changes.variant is None else changes.variant.value,
            "reach": reach,
            "at_local": when(changes.at, zone) if changes.at else None,
            "tracking": changes.tracking or ab is not None,  # an A/B test counts opens
            "rate": changes.rate_limit,
            "expiry_hours": round(changes.expires_after.total_seconds() / 3600, 2),
            "ab": None if ab is None or reach is None else ab_summary(ab, reach.readers),
        },
    )


def ab_summary(ab: AbTest, readers: int) -> dict[str, Any]:
    """What the confirmation says of an A/B test: each arm's readers, as planning cuts them."""
    in_a, in_b = arm_quota(0, readers, ab.share)
    return {
        "subject_b": ab.subject_b.strip(),
        "share": ab.share,
        "a": in_a,
        "b": in_b,
        "rest": readers - in_a - in_b,
        "winner_by": ab.winner_by.value,
        "wait": wait_text(ab.wait),
    }


def _edit_values(web: WebDep, send_id: int) -> dict[str, Any]:
    with web.transaction() as session:
        send = get_send(session, send_id)
        hours = (
            (send.expires_at - send.scheduled_at).total_seconds() / 3600
            if send.expires_at is not None and send.scheduled_at is not None
            else None
        )
        return {
            "issue": str(send.issue_id),
            "lists": list(send.audience.lists),
            "tags": ", ".join(send.audience.tags),
            "variant": send.variant_label,
            "at": (
                send.scheduled_at.astimezone(web.settings.zone).strftime("%Y-%m-%dT%H:%M")
                if send.scheduled_at is not None
                else ""
            ),
            "rate": "" if send.rate_limit is None else f"{send.rate_limit:g}",
            "expiry_hours": "" if hours is None else f"{hours:g}",
            "track": "on" if send.tracking else "",
        }


@router.get(SENDS + "/{send_id}/edit")
def edit_form(request: Request, send_id: int, web: WebDep, user: StaffDep) -> HTMLResponse:
    """A draft or a scheduled send, to change (and a draft, to schedule: its time is asked)."""
    with web.transaction() as session:
        shown = progress(send_status(session, send_id), web.settings.zone)
    return _new_form(request, web, user, editing=shown, **_edit_values(web, send_id))


@router.post(SENDS + "/{send_id}/edit")
def edit_post(
    request: Request, send_id: int, web: WebDep, user: WriterDep, form: SendFormDep
) -> Response:
    """Keep it a draft (at once), or schedule it: a time is required, and the change is summed
    up for a confirmation first."""
    values = form.values()
    with web.transaction() as session:
        shown = progress(send_status(session, send_id), web.settings.zone)
    if form.action == "back":
        return _new_form(request, web, user, editing=shown, issue=str(shown["issue_id"]), **values)
    try:
        if not form.draft and not form.at.strip():
            raise DistributorError("give the time it is to go out", code="send.no_time")
        changes = form.changes(web)
        with web.transaction(budget=form.to_confirm, waited=waited(request)) as session:
            pending = None
            try:
                reach: Reach | None = edit_send(
                    session,
                    send_id,
                    changes,
                    now=utcnow(),
                    zone=web.settings.zone,
                    draft=form.draft,
                    wechat_account=wechat_account_of(web.settings),
                    dry_run=form.to_confirm,
                )
            except CountPending as counting:  # only a confirmation has a budget
                reach, pending = None, counting
            if form.to_confirm or reach is None:
                return _confirmation(
                    request, session, web, user, f"{SENDS}/{send_id}/edit", values, reach,
                    changes, issue_id=shown["issue_id"], send=shown, pending=pending,
                )
            action = "send.edit" if form.draft else "send.schedule"
            detail = {**values, "readers": reach.readers}
            record_audit(session, user, action, "send", send_id, detail)
    except (DistributorError, ValueError) as error:
        return _new_form(
            request,
            web,
            user,
            status=400,
            editing=shown,
            error=shown_error(request, error),
            issue=str(shown["issue_id"]),
            **values,
        )
    return see_other(f"{SENDS}/{send_id}")


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
    template: str = "send.html",
) -> HTMLResponse:
    who = request.query_params.get("who", "")[:254]
    wechat = web.settings.wechat_app_id is not None
    t = translator(page_language(request))
    with web.transaction() as session:
        # Only the report shows the readers who opened and clicked.
        shown = _live_progress(session, send_id, web, t, engagement=template == "report.html")
        pictures = send_pictures(
            session, send_id, web.settings.zone, t, tracking=shown["tracking"], final=shown["final"]
        )
        audit = audit_of(session, "send", send_id)
        found = look_up_reader(session, send_id, who, wechat=wechat) if who.strip() else None
    routing = routing_now(web.settings)
    resting = {
        relay.name: when(datetime.fromtimestamp(relay.resting_until, UTC), web.settings.zone)
        for relay in routing.relays
        if relay.resting_until is not None
    }
    return staff_page(
        request,
        template,
        user,
        send=shown,
        pictures=pictures,
        audit=audit,
        routing=routing,
        resting=resting,
        states=DELIVERY_STATES,
        status=status,
        error=error,
        who=who,
        found=found,
        made=when(utcnow(), web.settings.zone),
    )


def _live_progress(
    session: Session, send_id: int, web: WebDep, t: Translate, *, engagement: bool = False
) -> dict[str, Any]:
    """One send's progress with what is still to come, in words (the live page's line)."""
    status = send_status(session, send_id, engagement=engagement)
    shown = progress(status, web.settings.zone)
    outlook = outlook_of(
        session, send_id, status.counts, started_at=status.started_at, now=utcnow()
    )
    shown["outlook"] = outlook_words(outlook, shown, web.settings.zone, t)
    shown["state_text"] = t("state." + shown["state"])  # the live page's, in its language
    return shown


def outlook_words(outlook: Outlook, shown: dict[str, Any], zone: ZoneInfo, t: Translate) -> str:
    """What is still to come, in one line ('' once the send is final)."""
    if shown["final"]:
        return ""
    parts = []
    if unfinished := shown["total"] - shown["finished"]:
        parts.append(t("staff.outlook.unfinished", count=unfinished))
    if outlook.retries:
        parts.append(
            t("staff.outlook.retries", count=outlook.retries, at=when(outlook.next_retry, zone))
        )
    if outlook.finish is not None and shown["state"] == SendState.RUNNING:
        parts.append(t("staff.outlook.finish", at=when(outlook.finish, zone)))
    return " · ".join(parts)


@router.get(SENDS + "/{send_id}/status.json")
def send_status_json(
    request: Request, send_id: int, web: WebDep, user: StaffDep
) -> JSONResponse:
    t = translator(page_language(request))
    with web.transaction() as session:
        return JSONResponse(_live_progress(session, send_id, web, t))


@router.get(SENDS + "/{send_id}/pictures")
def send_pictures_part(
    request: Request, send_id: int, web: WebDep, user: StaffDep
) -> HTMLResponse:
    """The send page's pictures alone: what the live page fetches again while the send runs."""
    t = translator(page_language(request))
    with web.transaction() as session:
        send = get_send(session, send_id)
        pictures = send_pictures(
            session,
            send_id,
            web.settings.zone,
            t,
            tracking=send.tracking,
            final=send.state in FINAL_STATES,
        )
    return staff_page(request, "_send_pictures.html", user, pictures=pictures)


@router.get(SENDS + "/{send_id}/report")
def send_report(request: Request, send_id: int, web: WebDep, user: StaffDep) -> HTMLResponse:
    """One printable page for the office's leadership: numbers, pictures, reasons."""
    return _send_page(request, send_id, web, user, template="report.html")


def _state(value: str | None) -> DeliveryState | None:
    try:
        return DeliveryState(value) if value else None
    except ValueError:
        raise DistributorError(
            f"no delivery state {value!r}", code="form.no_state", value=value
        ) from None


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
        status = progress(send_status(session, send_id, engagement=False), web.settings.zone)
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
        reasoned=REASONED_STATES,
        reason_key=reason_key,
        error_of=error_of,
    )


@router.get(SENDS + "/{send_id}/deliveries.csv")
def deliveries_csv(send_id: int, web: WebDep, user: StaffDep) -> StreamingResponse:
    with web.transaction() as session:
        send_status(session, send_id, engagement=False)  # a missing send: 404, not an empty file

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
    confirmed: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Pause, resume, retry at once; cancel and reopen only from their confirmation."""
    now = utcnow()
    detail: dict[str, object] = {}
    to_confirm = action in CONFIRMED_ACTIONS and not confirmed
    try:
        with web.transaction(budget=to_confirm, waited=waited(request)) as session:
            if to_confirm:
                return _confirm_action(request, session, web, user, send_id, action)
            if action == "pause":
                pause_send(session, send_id, now)
            elif action == "resume":
                resume_send(session, send_id, now)
            elif action == "cancel":
                detail["cancelled"] = cancel_send(session, send_id, now)
            elif action == "reopen":
                detail["waiting"] = reopen_send(session, send_id, now)
            elif action == "retry":
                smtp_code = int(code) if code.strip() else None
                detail.update(
                    code=smtp_code, retried=retry_failed(session, send_id, now, code=smtp_code)
                )
            else:
                raise DistributorError(
                    f"no action {action!r} on a send", code="send.no_action", action=action
                )
            record_audit(session, user, f"send.{action}", "send", send_id, detail)
    except (DistributorError, ValueError) as error:
        return _send_page(
            request, send_id, web, user, status=400, error=shown_error(request, error)
        )
    return see_other(f"{SENDS}/{send_id}")


def _confirm_action(
    request: Request, session: Session, web: WebDep, user: StaffUser, send_id: int, action: str
) -> HTMLResponse:
    """What cancelling (or reopening) would do to this send, and the button that does it."""
    shown = progress(send_status(session, send_id), web.settings.zone)
    if action not in ACTIONS.get(SendState(shown["state"]), ()):
        done = {"cancel": "cancelled", "reopen": "reopened"}[action]
        raise DistributorError(
            f"send {send_id} is {shown['state']}: it cannot be {done}",
            code="send.cannot_cancel" if action == "cancel" else "send.cannot_reopen",
            send=send_id,
            state=SendState(shown["state"]),
        )
    counts = shown["counts"]
    waiting = sum(counts.get(state.value, 0) for state in WAITING_DELIVERY_STATES)
    reach, pending = None, None
    if shown["started_at"] is None:  # nothing planned yet: whom it would have reached
        send = get_send(session, send_id)
        try:
            reach = audience_reach(
                session,
                issue_id=send.issue_id,
                audience=send.audience,
                variant=send.variant,
                wechat_account=wechat_account_of(web.settings),
            )
        except CountPending as counting:
            pending = counting
    return staff_page(
        request,
        "send_confirm.html",
        user,
        kind=action,
        send=shown,
        post_to=f"{SENDS}/{send_id}/{action}",
        hidden={},
        waiting=waiting,
        cancelled=counts.get(DeliveryState.CANCELLED.value, 0),
        counting=counting_url(pending) if pending else None,
        summary={"reach": reach} if reach is not None else {},
    )


@router.get(SENDS + "/{send_id}/left-out")
def left_out_page(
    request: Request,
    send_id: int,
    web: WebDep,
    user: StaffDep,
    who: Annotated[str, Query(max_length=254)] = "",
) -> HTMLResponse:
    """Every reader of the send's lists: in it, or left out and why; one address looked up.
    Counts too long for the page are made meanwhile: "Counting…", and the page loads again."""
    wechat = web.settings.wechat_app_id is not None
    pending = None
    with web.transaction(budget=True, waited=waited(request)) as session:
        shown = progress(send_status(session, send_id), web.settings.zone)
        try:
            counts: LeftOut | None = left_out(session, send_id, wechat=wechat)
        except CountPending as counting:
            counts, pending = None, counting
        found = look_up_reader(session, send_id, who, wechat=wechat) if who.strip() else None
    return staff_page(
        request,
        "left_out.html",
        user,
        send=shown,
        left_out=counts,
        counting=counting_url(pending) if pending else None,
        reasons=[s.value for s in LEFT_OUT_ORDER],
        who=who,
        found=found,
    )
