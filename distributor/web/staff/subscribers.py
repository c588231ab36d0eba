"""``/staff/subscribers``, ``/staff/lists`` and ``/staff/schedules``: find, add and edit
subscribers, see what was sent to them, import a CSV (with its per-row error report to
download) and export one; lists with their counts; recurring digests."""

from __future__ import annotations

import base64
import csv
import io
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from distributor.automations.store import reader_steps
from distributor.campaigns.erasure import erase_subscriber
from distributor.db import get_engine, utcnow
from distributor.errors import DistributorError, NotFound
from distributor.sending.history import subscriber_history
from distributor.sending.recurring import EVERY, add_rule, list_rules, remove_rule
from distributor.staff.audit import audit_of, record_audit
from distributor.staff.models import StaffUser
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from distributor.web.pages import WebDep, cursor_id, upload_name
from distributor.web.staff.automations import when_words
from distributor.web.staff.common import PAGE_SIZE, WriterDep, see_other, shown_error, staff_page
from distributor.web.staff_auth import StaffDep
from subscribers.care import (
    required_note,
    resubscribe_at_request,
    set_attributes,
    set_lists,
    set_tags,
    unsubscribe_at_request,
)
from subscribers.csvfile import Problem, escape_cell
from subscribers.export import export_subscribers
from subscribers.importer import ImportReport, import_subscribers
from subscribers.links import signup_url
from subscribers.models import ChannelPreference, Subscriber
from subscribers.search import search_subscribers
from subscribers.signup import set_list_public
from subscribers.store import (
    add_subscriber,
    change_address,
    create_list,
    list_summaries,
    memberships,
    set_preferences,
    status_history,
    unsuppress,
)

router = APIRouter(include_in_schema=False)

SUBSCRIBERS = "/staff/subscribers"
IMPORT_MAX_BYTES = 50 * 1024 * 1024
PROBLEMS_SHOWN = 50


def _subscribers_page(
    request: Request,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
    imported: ImportReport | None = None,
    problems: list[Problem] | None = None,
) -> HTMLResponse:
    q = request.query_params.get("q", "")
    after = cursor_id(request.query_params.get("after"))
    with web.transaction() as session:
        found = search_subscribers(session, q, after_id=after, limit=PAGE_SIZE)
        rows = [(s, memberships(s)) for s in found]
        lists = list_summaries(session)
    return staff_page(
        request,
        "subscribers.html",
        user,
        status=status,
        rows=rows,
        q=q,
        lists=lists,
        next_after=found[-1].id if len(found) == PAGE_SIZE else None,
        error=error,
        imported=imported,
        problems=(problems or [])[:PROBLEMS_SHOWN],
        problem_count=len(problems or []),
        problems_csv=_problems_data_url(problems or []),
    )


@router.get(SUBSCRIBERS)
def subscribers_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _subscribers_page(request, web, user)


@router.post(SUBSCRIBERS)
def add(
    request: Request,
    web: WebDep,
    user: WriterDep,
    email: Annotated[str, Form(max_length=400)],
    name: Annotated[str, Form(max_length=400)] = "",
    lists: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
) -> Response:
    try:
        with web.transaction() as session:
            added = add_subscriber(session, email, name=name or None, lists=lists)
            subscriber_id = added.subscriber.id
            record_audit(
                session,
                user,
                "subscriber.add" if added.created else "subscriber.update",
                "subscriber",
                subscriber_id,
                {"lists": lists},
            )
    except DistributorError as error:
        return _subscribers_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return see_other(f"{SUBSCRIBERS}/{subscriber_id}")


@router.post(SUBSCRIBERS + "/import")
async def import_csv(
    request: Request,
    web: WebDep,
    user: WriterDep,
    file: UploadFile,
    list_name: Annotated[str, Form(max_length=200)] = "",
    create_lists: Annotated[str, Form()] = "",
) -> Response:
    problems: list[Problem] = []
    data = await file.read(IMPORT_MAX_BYTES + 1)
    try:
        if len(data) > IMPORT_MAX_BYTES:
            raise DistributorError(
                f"the file is larger than {IMPORT_MAX_BYTES // 2**20} MB",
                code="upload.too_large",
                megabytes=IMPORT_MAX_BYTES // 2**20,
            )
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / upload_name(file.filename, "upload.csv")
            path.write_bytes(data)
            with get_engine(web.settings.database_url).connect() as connection:
                report = import_subscribers(
                    connection,
                    path,
                    list_name=list_name.strip() or None,
                    create_lists=bool(create_lists),
                    on_problem=problems.append,
                )
        with web.transaction() as session:
            record_audit(
                session,
                user,
                "subscriber.import",
                "import",
                None,
                {
                    "file": file.filename,
                    "imported": report.imported,
                    "updated": report.updated,
                    "errors": report.errors,
                    "list": list_name,
                },
            )
    except DistributorError as error:
        return _subscribers_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return _subscribers_page(
        request,
        web,
        user,
        imported=report,
        problems=problems,
    )


def _problems_data_url(problems: list[Problem]) -> str | None:
    """The error report as a ``data:`` link to download: nothing is kept on the server."""
    if not problems:
        return None
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("line", "reason", "content"))
    for problem in problems:
        # The report is opened in a spreadsheet: no cell of it may run as a formula.
        writer.writerow((problem.line, escape_cell(problem.reason), escape_cell(problem.text)))
    encoded = base64.b64encode(("\ufeff" + out.getvalue()).encode()).decode()
    return f"data:text/csv;charset=utf-8;base64,{encoded}"


@router.get(SUBSCRIBERS + "/export.csv")
def export_csv(web: WebDep, user: StaffDep) -> Response:
    out = io.StringIO()
    with web.transaction() as session:
        export_subscribers(session, out)
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
    )


def _subscriber(session: Session, subscriber_id: int) -> Subscriber:
    found = session.get(Subscriber, subscriber_id)
    if found is None:
        raise NotFound(
            f"there is no subscriber with ID {subscriber_id}",
            code="subscriber.missing",
            subscriber=subscriber_id,
        )
    return found


def _subscriber_page(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    error: str | None = None,
) -> HTMLResponse:
    with web.transaction() as session:
        subscriber = _subscriber(session, subscriber_id)
        lists = memberships(subscriber)
        tags = [tag.name for tag in subscriber.tags]
        history = subscriber_history(session, subscriber_id)
        steps = reader_steps(session, subscriber_id)
        audit = audit_of(session, "subscriber", subscriber_id)
        events = status_history(session, subscriber_id)
        all_lists = list_summaries(session)
    return staff_page(
        request,
        "subscriber.html",
        user,
        status=status,
        s=subscriber,
        lists=lists,
        tags=tags,
        history=history,
        steps=steps,
        moment_of=when_words(request),
        audit=audit,
        error=error,
        channels=[c.value for c in ChannelPreference],
        formats=[v.value for v in EMAIL_VARIANTS],
        events=events,
        all_lists=all_lists,
        attributes="\n".join(f"{k}={v}" for k, v in subscriber.attributes.items()),
    )


@router.get(SUBSCRIBERS + "/{subscriber_id}")
def subscriber_page(
    request: Request, subscriber_id: int, web: WebDep, user: StaffDep
) -> HTMLResponse:
    return _subscriber_page(request, subscriber_id, web, user)


@router.post(SUBSCRIBERS + "/{subscriber_id}")
def edit_subscriber(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: WriterDep,
    email: Annotated[str, Form(max_length=400)],
    name: Annotated[str, Form(max_length=400)] = "",
    channel: Annotated[str, Form()] = ChannelPreference.EMAIL.value,
    format: Annotated[str, Form()] = Variant.FULL.value,
) -> Response:
    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        before = _fields(subscriber)
        if email.strip() != subscriber.email:
            change_address(session, subscriber.email, email)
        subscriber.name = name.strip()
        set_preferences(subscriber, channel=ChannelPreference(channel), format=Variant(format))
        after = _fields(subscriber)
        return {key: after[key] for key in after if after[key] != before[key]}

    return _care(request, web, user, subscriber_id, "edit", act)


def _fields(subscriber: Subscriber) -> dict[str, str]:
    return {
        "email": subscriber.email,
        "name": subscriber.name,
        "channel": subscriber.channel.value,
        "format": subscriber.format.value,
    }


def _care(
    request: Request,
    web: WebDep,
    user: StaffUser,
    subscriber_id: int,
    action: str,
    act: Callable[[Session, Subscriber], dict[str, object]],
) -> Response:
    """One act of subscriber care: done through its service, audited (what the service
    returns is the audit's detail), or the page again with the service's message."""
    try:
        with web.transaction() as session:
            subscriber = _subscriber(session, subscriber_id)
            detail = act(session, subscriber)
            record_audit(session, user, f"subscriber.{action}", "subscriber", subscriber_id, detail)
    except (DistributorError, ValueError) as error:
        return _subscriber_page(
            request,
            subscriber_id,
            web,
            user,
            status=400,
            error=shown_error(request, error),
        )
    return see_other(f"{SUBSCRIBERS}/{subscriber_id}")


def _source(user: StaffUser) -> str:
    return f"staff {user.name}"


Note = Annotated[str, Form(max_length=2000)]
Lists = Annotated[list[str], Form()]


@router.post(SUBSCRIBERS + "/{subscriber_id}/unsubscribe")
def unsubscribe_person(
    request: Request, subscriber_id: int, web: WebDep, user: WriterDep, note: Note = ""
) -> Response:
    """They asked to stop (by phone, in a letter): the note says so."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        unsubscribe_at_request(session, subscriber, note=note, source=_source(user))
        return {"note": note}

    return _care(request, web, user, subscriber_id, "unsubscribe", act)


@router.post(SUBSCRIBERS + "/{subscriber_id}/resubscribe")
def resubscribe_person(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: WriterDep,
    note: Note = "",
    lists: Lists = [],  # noqa: B006 - FastAPI copies it
) -> Response:
    """They asked to be sent again: their consent is the note."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        resubscribe_at_request(session, subscriber, lists, note=note, source=_source(user))
        return {"note": note, "lists": lists}

    return _care(request, web, user, subscriber_id, "resubscribe", act)


@router.post(SUBSCRIBERS + "/{subscriber_id}/lists")
def change_lists(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: WriterDep,
    lists: Lists = [],  # noqa: B006 - FastAPI copies it
) -> Response:
    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        set_lists(session, subscriber, lists)
        return {"lists": lists}

    return _care(request, web, user, subscriber_id, "lists", act)


@router.post(SUBSCRIBERS + "/{subscriber_id}/labels")
def change_labels(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: WriterDep,
    tags: Annotated[str, Form(max_length=2000)] = "",
    attributes: Annotated[str, Form(max_length=10000)] = "",
) -> Response:
    """Tags (comma-separated) and attributes (one ``name=value`` a line)."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        pairs = {}
        for line in attributes.splitlines():
            if line.strip():
                key, equals, value = line.partition("=")
                if not equals:
                    raise DistributorError(
                        f"an attribute is written name=value, not {line!r}",
                        code="care.attribute_line",
                        line=line[:80],
                    )
                pairs[key.strip()] = value.strip()
        names = [tag.strip() for tag in tags.replace("，", ",").split(",")]
        set_tags(session, subscriber, names)
        set_attributes(subscriber, pairs)
        return {"tags": [name for name in names if name], "attributes": sorted(pairs)}

    return _care(request, web, user, subscriber_id, "labels", act)


@router.post(SUBSCRIBERS + "/{subscriber_id}/unsuppress")
def lift_suppression(
    request: Request, subscriber_id: int, web: WebDep, user: WriterDep, note: Note = ""
) -> Response:
    """A bounce or a complaint lifted knowingly (the address was fixed, it was a mistake)."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        unsuppress(session, subscriber.email, reason=note, source=_source(user))
        return {"reason": note}

    return _care(request, web, user, subscriber_id, "unsuppress", act)


@router.post(SUBSCRIBERS + "/{subscriber_id}/erase")
def erase_person(
    request: Request,
    subscriber_id: int,
    web: WebDep,
    user: WriterDep,
    confirmed: Annotated[str, Form(max_length=5)] = "",
    note: Note = "",
) -> Response:
    """Erase a person at their request; the first POST only asks to confirm."""
    if not confirmed:
        with web.transaction() as session:
            subscriber = _subscriber(session, subscriber_id)
            history = subscriber_history(session, subscriber_id)
        return staff_page(
            request, "subscriber_erase.html", user, s=subscriber, deliveries=len(history)
        )
    try:
        required_note(note)
        with web.transaction() as session:
            made_anonymous = erase_subscriber(session, subscriber_id)
            record_audit(
                session,
                user,
                "subscriber.erase",
                "subscriber",
                subscriber_id,
                {"note": note, "deliveries": made_anonymous},
            )
    except DistributorError as error:
        message = shown_error(request, error)
        return _subscriber_page(request, subscriber_id, web, user, status=400, error=message)
    return see_other(f"{SUBSCRIBERS}?erased={subscriber_id}")


# --- lists ----------------------------------------------------------------------------------


def _lists_page(
    request: Request, web: WebDep, user: StaffUser, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    with web.transaction() as session:
        lists = list_summaries(session)
    base = web.settings.public_base_url
    return staff_page(
        request,
        "lists.html",
        user,
        status=status,
        lists=lists,
        error=error,
        signup={each.id: signup_url(base, each.id) for each in lists if each.public},
    )


@router.get("/staff/lists")
def lists_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _lists_page(request, web, user)


@router.post("/staff/lists")
def new_list(
    request: Request,
    web: WebDep,
    user: WriterDep,
    name: Annotated[str, Form(max_length=400)],
    description: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    try:
        with web.transaction() as session:
            created = create_list(session, name, description)
            record_audit(session, user, "list.create", "list", created.id, {"name": name})
    except DistributorError as error:
        return _lists_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return see_other("/staff/lists")


@router.post("/staff/lists/{list_id}/public")
def list_public(
    request: Request,
    list_id: int,
    web: WebDep,
    user: WriterDep,
    public: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    """Open a list to sign-ups on its page (and members' preferences), or close it."""
    try:
        with web.transaction() as session:
            name = next((each.name for each in list_summaries(session) if each.id == list_id), None)
            if name is None:
                raise NotFound(
                    f"there is no list with ID {list_id}", code="list.no_id", list=list_id
                )
            set_list_public(session, name, public=bool(public))
            detail = {"name": name, "public": bool(public)}
            record_audit(session, user, "list.public", "list", list_id, detail)
    except DistributorError as error:
        return _lists_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return see_other("/staff/lists")


# --- recurring digests ----------------------------------------------------------------------


def _schedules_page(
    request: Request, web: WebDep, user: StaffUser, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    with web.transaction() as session:
        rules = list_rules(session)
        lists = list_summaries(session)
    return staff_page(
        request,
        "schedules.html",
        user,
        status=status,
        rules=rules,
        lists=lists,
        every=EVERY,
        error=error,
    )


@router.get("/staff/schedules")
def schedules_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _schedules_page(request, web, user)


@router.post("/staff/schedules")
def new_schedule(
    request: Request,
    web: WebDep,
    user: WriterDep,
    name: Annotated[str, Form(max_length=200)],
    every: Annotated[str, Form()],
    at_time: Annotated[str, Form(max_length=10)],
    lists: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies it
) -> Response:
    try:
        with web.transaction() as session:
            add_rule(
                session,
                name=name,
                every=every,
                at_time=at_time,
                timezone=web.settings.timezone,
                lists=lists,
                now=utcnow(),
            )
            record_audit(
                session,
                user,
                "schedule.add",
                "schedule",
                name,
                {"every": every, "at": at_time, "lists": lists},
            )
    except DistributorError as error:
        return _schedules_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return see_other("/staff/schedules")


@router.post("/staff/schedules/{name}/remove")
def drop_schedule(request: Request, name: str, web: WebDep, user: WriterDep) -> Response:
    try:
        with web.transaction() as session:
            remove_rule(session, name)
            record_audit(session, user, "schedule.remove", "schedule", name)
    except DistributorError as error:
        return _schedules_page(
            request, web, user, status=400, error=shown_error(request, error)
        )
    return see_other("/staff/schedules")
