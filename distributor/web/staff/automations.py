"""``/staff/automations``: each list's welcome mail and steps, what each reached, and the
controls (add or remove a step, pause, resume) the CLI and the API have."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.responses import Response

from distributor.automations.delays import delay_parts, describe_delay, parse_delay
from distributor.automations.store import (
    list_automations,
    pause_automation,
    remove_step,
    resume_automation,
    set_step,
)
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.staff.audit import record_audit
from distributor.staff.models import StaffUser
from distributor.web.i18n import translator
from distributor.web.pages import WebDep, page_language
from distributor.web.staff.common import WriterDep, see_other, shown_error, staff_page
from distributor.web.staff_auth import StaffDep
from subscribers.store import list_summaries

router = APIRouter(include_in_schema=False)

AUTOMATIONS = "/staff/automations"


def when_words(request: Request) -> Callable[[int], str]:
    """A step's moment in the page's language: "on joining (welcome)", "3 days after joining"."""
    t = translator(page_language(request))

    def words(seconds: int) -> str:
        count, unit = delay_parts(seconds)
        if not unit:
            return t("staff.auto.welcome")
        return t("staff.auto.later", after=t(f"staff.auto.unit.{unit}", n=count))

    return words


def _page(
    request: Request, web: WebDep, user: StaffUser, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    with web.transaction() as session:
        automations = list_automations(session)
        lists = list_summaries(session)
    return staff_page(
        request,
        "automations.html",
        user,
        status=status,
        automations=automations,
        lists=lists,
        moment_of=when_words(request),
        error=error,
    )


def _act(
    request: Request, web: WebDep, user: StaffUser, act: Callable[[Session], None]
) -> Response:
    """Do ``act`` in one transaction; a refusal shows the page again with the reason."""
    try:
        with web.transaction() as session:
            act(session)
    except DistributorError as error:
        return _page(request, web, user, status=400, error=shown_error(request, error))
    return see_other(AUTOMATIONS)


@router.get(AUTOMATIONS)
def automations_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _page(request, web, user)


@router.post(AUTOMATIONS)
def add_step(
    request: Request,
    web: WebDep,
    user: WriterDep,
    list_name: Annotated[str, Form(max_length=100)],
    issue_id: Annotated[int, Form(ge=1, le=2**53 - 1)],
    after: Annotated[str, Form(max_length=40)] = "0",
) -> Response:
    def act(session: Session) -> None:
        step = set_step(session, list_name, parse_delay(after), issue_id, utcnow())
        detail = {"issue": issue_id, "after": step.delay}
        record_audit(session, user, "automation.step", "list", list_name, detail)

    return _act(request, web, user, act)


@router.post(AUTOMATIONS + "/{list_name}/steps/{delay_seconds}/remove")
def drop_step(
    request: Request, list_name: str, delay_seconds: int, web: WebDep, user: WriterDep
) -> Response:
    def act(session: Session) -> None:
        remove_step(session, list_name, delay_seconds, utcnow())
        detail = {"after": describe_delay(delay_seconds)}
        record_audit(session, user, "automation.unstep", "list", list_name, detail)

    return _act(request, web, user, act)


@router.post(AUTOMATIONS + "/{list_name}/pause")
def pause(request: Request, list_name: str, web: WebDep, user: WriterDep) -> Response:
    def act(session: Session) -> None:
        pause_automation(session, list_name, utcnow())
        record_audit(session, user, "automation.pause", "list", list_name)

    return _act(request, web, user, act)


@router.post(AUTOMATIONS + "/{list_name}/resume")
def resume(request: Request, list_name: str, web: WebDep, user: WriterDep) -> Response:
    def act(session: Session) -> None:
        resume_automation(session, list_name, utcnow())
        record_audit(session, user, "automation.resume", "list", list_name)

    return _act(request, web, user, act)
