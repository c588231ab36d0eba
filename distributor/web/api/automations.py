"""``/api/v1/automations``: a list's welcome mail and the steps after it; and
``/api/v1/subscribers/{id}/automations``, the steps one reader was given."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, Field

from distributor.automations.delays import DELAY_MAX, describe_delay
from distributor.automations.store import (
    AutomationView,
    StepView,
    list_automations,
    pause_automation,
    reader_steps,
    remove_step,
    resume_automation,
    set_step,
    show_automation,
)
from distributor.db import utcnow
from distributor.errors import NotFound
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import MAX_ID, Body, ItemId
from distributor.web.pages import WebDep
from subscribers.models import LIST_NAME_MAX, Subscriber

router = APIRouter(prefix="/api/v1", tags=["automations"], responses=COMMON_ERRORS)

ListPath = Annotated[str, Path(max_length=LIST_NAME_MAX)]
Delay = Annotated[
    int, Path(ge=0, le=DELAY_MAX, multiple_of=60, description="Seconds after joining.")
]


class StepIn(Body):
    issue_id: int = Field(ge=1, le=MAX_ID, description="The issue to send.")
    delay_seconds: int = Field(
        default=0,
        ge=0,
        le=DELAY_MAX,
        multiple_of=60,
        description="Seconds after joining, in whole minutes; 0: the welcome.",
    )


class StepOut(BaseModel):
    after: str = Field(description="The delay as the CLI writes it: 0, 3d, 12h, 30m.")
    delay_seconds: int
    issue_id: int
    send_id: int = Field(description="The step's send: its deliveries are the readers reached.")
    send_state: str
    readers: int = Field(description="Readers the step was given so far.")
    deliveries: dict[str, int] = Field(description="Their messages per state.")


class AutomationOut(BaseModel):
    list_name: str
    paused: bool
    created_at: datetime
    steps: list[StepOut]


class AutomationsOut(BaseModel):
    items: list[AutomationOut]


class ReaderStepOut(BaseModel):
    list_name: str
    after: str
    issue_id: int
    send_id: int
    claimed_at: datetime = Field(description="When the step was given to the reader.")
    state: str | None = Field(description="Their message's state; null: not reachable by email.")
    sent_at: datetime | None


class ReaderStepsOut(BaseModel):
    items: list[ReaderStepOut]


def _step(step: StepView) -> StepOut:
    return StepOut(
        after=step.delay,
        delay_seconds=step.delay_seconds,
        issue_id=step.issue_id,
        send_id=step.send_id,
        send_state=step.send_state,
        readers=step.reached,
        deliveries=step.counts,
    )


def _out(view: AutomationView) -> AutomationOut:
    return AutomationOut(
        list_name=view.list_name,
        paused=view.paused,
        created_at=view.created_at,
        steps=[_step(step) for step in view.steps],
    )


@router.get("/automations", response_model=AutomationsOut, summary="Every list's automation")
def list_all(web: WebDep, user: Viewer) -> AutomationsOut:
    with web.reading() as session:
        return AutomationsOut(items=[_out(view) for view in list_automations(session)])


@router.get(
    "/automations/{list_name}",
    response_model=AutomationOut,
    responses=NOT_FOUND,
    summary="One list's automation",
)
def show(list_name: ListPath, web: WebDep, user: Viewer) -> AutomationOut:
    with web.reading() as session:
        return _out(show_automation(session, list_name))


@router.post(
    "/automations/{list_name}/steps",
    status_code=201,
    response_model=StepOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Add a step",
)
def add_step(list_name: ListPath, body: StepIn, web: WebDep, user: Editor) -> StepOut:
    """Each reader who joins the list from now on gets the issue ``delay_seconds`` after
    joining, once. A list or issue that does not exist, 404; a step at that delay, 409."""
    with web.transaction() as session:
        step = set_step(session, list_name, body.delay_seconds, body.issue_id, utcnow())
        audit(
            session,
            user,
            "automation.step",
            "list",
            list_name,
            {"issue": step.issue_id, "after": step.delay},
        )
        return _step(step)


@router.delete(
    "/automations/{list_name}/steps/{delay_seconds}",
    status_code=204,
    responses=NOT_FOUND,
    summary="Remove a step",
)
def delete_step(list_name: ListPath, delay_seconds: Delay, web: WebDep, user: Editor) -> Response:
    """Its messages not yet sent are cancelled; its send stays, with what it sent."""
    with web.transaction() as session:
        remove_step(session, list_name, delay_seconds, utcnow())
        audit(
            session,
            user,
            "automation.unstep",
            "list",
            list_name,
            {"after": describe_delay(delay_seconds)},
        )
    return Response(status_code=204)


@router.post(
    "/automations/{list_name}/pause",
    response_model=AutomationOut,
    responses=NOT_FOUND,
    summary="Pause",
)
def pause(list_name: ListPath, web: WebDep, user: Editor) -> AutomationOut:
    """Nothing goes out until resumed; readers whose moment comes meanwhile wait."""
    with web.transaction() as session:
        pause_automation(session, list_name, utcnow())
        audit(session, user, "automation.pause", "list", list_name)
        return _out(show_automation(session, list_name))


@router.post(
    "/automations/{list_name}/resume",
    response_model=AutomationOut,
    responses=NOT_FOUND,
    summary="Resume",
)
def resume(list_name: ListPath, web: WebDep, user: Editor) -> AutomationOut:
    """Go on where it stopped: the readers due meanwhile are sent to."""
    with web.transaction() as session:
        resume_automation(session, list_name, utcnow())
        audit(session, user, "automation.resume", "list", list_name)
        return _out(show_automation(session, list_name))


@router.get(
    "/subscribers/{subscriber_id}/automations",
    response_model=ReaderStepsOut,
    responses=NOT_FOUND,
    summary="Steps a reader was given",
    tags=["subscribers"],
)
def of_reader(subscriber_id: ItemId, web: WebDep, user: Viewer) -> ReaderStepsOut:
    """Oldest first, each with when it was given and what became of its message."""
    with web.reading() as session:
        if session.get(Subscriber, subscriber_id) is None:
            raise NotFound(
                f"there is no subscriber with ID {subscriber_id}",
                code="subscriber.missing",
                subscriber=subscriber_id,
            )
        steps = reader_steps(session, subscriber_id)
    return ReaderStepsOut(
        items=[
            ReaderStepOut(
                list_name=step.list_name,
                after=step.delay,
                issue_id=step.issue_id,
                send_id=step.send_id,
                claimed_at=step.claimed_at,
                state=step.state,
                sent_at=step.sent_at,
            )
            for step in steps
        ]
    )
