"""Automations as staff keep them: a list's steps, pausing and resuming them, what each reached,
and which steps one reader got."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from distributor.automations.delays import describe_delay
from distributor.automations.models import Automation, AutomationRun, AutomationStep
from distributor.errors import AlreadyExists, NotFound
from distributor.issues.models import Issue
from distributor.sending.lifecycle import cancel_send, pause_send, resume_send
from distributor.sending.models import Delivery, Send
from distributor.sending.queries import delivery_counts_of
from distributor.vocabulary import DeliveryChannel, SendState
from subscribers.models import List
from subscribers.query import Audience
from subscribers.store import get_list


@dataclass(frozen=True)
class StepView:
    delay: str  # as staff write it: 0, 3d, 12h
    delay_seconds: int
    issue_id: int
    send_id: int
    send_state: str  # the step's send: running/done (taking readers), paused, cancelled
    reached: int  # readers claimed by the step so far
    counts: dict[str, int]  # their deliveries per state


@dataclass(frozen=True)
class AutomationView:
    list_name: str
    paused: bool
    created_at: datetime
    steps: list[StepView]


@dataclass(frozen=True)
class ReaderStep:
    """A step one reader was given: when it was claimed, and what became of its message."""

    list_name: str
    delay: str
    delay_seconds: int
    issue_id: int
    send_id: int
    claimed_at: datetime
    state: str | None  # their delivery's state; None: not reachable by email
    sent_at: datetime | None


def _automation(session: Session, list_name: str) -> Automation:
    found = session.scalar(
        select(Automation).where(Automation.list_id == get_list(session, list_name).id)
    )
    if found is None:
        raise NotFound(
            f"the list '{list_name}' has no automation: add a step first",
            code="automation.missing",
            list=list_name,
        )
    return found


def set_step(
    session: Session, list_name: str, delay_seconds: int, issue_id: int, now: datetime
) -> StepView:
    """Send ``issue_id`` to each reader who joins ``list_name`` from now on, ``delay_seconds``
    after they join (0: the welcome). The list's automation is made with its first step; a
    step's moment is its own (another step at the same delay is refused: remove it first)."""
    mailing_list = get_list(session, list_name)
    if session.get(Issue, issue_id) is None:
        raise NotFound(
            f"there is no issue with ID {issue_id}", code="issue.missing", issue=issue_id
        )
    automation = session.scalar(select(Automation).where(Automation.list_id == mailing_list.id))
    if automation is None:
        automation = Automation(list_id=mailing_list.id)
        session.add(automation)
        session.flush()
    taken = select(AutomationStep.id).where(
        AutomationStep.automation_id == automation.id,
        AutomationStep.delay_seconds == delay_seconds,
    )
    if session.scalar(taken) is not None:
        raise AlreadyExists(
            f"the list '{list_name}' already has a step {describe_delay(delay_seconds)} after "
            "joining: remove it first",
            code="automation.step_taken",
            list=list_name,
            delay=describe_delay(delay_seconds),
        )
    send = Send(
        issue_id=issue_id,
        audience=Audience(lists=(mailing_list.name,)),
        variant=None,  # each reader gets the format they chose
        channel=DeliveryChannel.EMAIL,
        state=SendState.PAUSED if automation.paused else SendState.RUNNING,
        scheduled_at=now,
        started_at=now,
        planned_at=now,  # nothing to plan: the tick adds each reader when their moment comes
    )
    session.add(send)
    session.flush()
    step = AutomationStep(
        automation_id=automation.id,
        delay_seconds=delay_seconds,
        issue_id=issue_id,
        send_id=send.id,
        created_at=now,
    )
    session.add(step)
    session.flush()
    return _step_views(session, [step])[0]


def remove_step(session: Session, list_name: str, delay_seconds: int, now: datetime) -> int:
    """Stop a step: its send is cancelled (messages not yet sent are not) and the step goes;
    the send stays, with what it sent. Returns the send's id."""
    automation = _automation(session, list_name)
    step = session.scalar(
        select(AutomationStep).where(
            AutomationStep.automation_id == automation.id,
            AutomationStep.delay_seconds == delay_seconds,
        )
    )
    if step is None:
        raise NotFound(
            f"the list '{list_name}' has no step {describe_delay(delay_seconds)} after joining",
            code="automation.no_step",
            list=list_name,
            delay=describe_delay(delay_seconds),
        )
    send_id = step.send_id
    if session.scalar(select(Send.state).where(Send.id == send_id)) is not SendState.CANCELLED:
        session.execute(  # a finished send is reopened only to be cancelled with the rest
            update(Send)
            .where(Send.id == send_id, Send.state == SendState.DONE)
            .values(state=SendState.RUNNING, updated_at=now)
        )
        cancel_send(session, send_id, now)
    session.execute(delete(AutomationStep).where(AutomationStep.id == step.id))
    return send_id


def pause_automation(session: Session, list_name: str, now: datetime) -> None:
    """No reader is claimed and no message of its steps goes out until it is resumed; readers
    whose moment comes meanwhile are sent to on resume (late, not lost)."""
    automation = _automation(session, list_name)
    automation.paused = True
    for send_id in _step_sends(session, automation.id, (SendState.RUNNING,)):
        pause_send(session, send_id, now)


def resume_automation(session: Session, list_name: str, now: datetime) -> None:
    """Go on where it stopped: the messages waiting go out, and readers due are claimed."""
    automation = _automation(session, list_name)
    automation.paused = False
    for send_id in _step_sends(session, automation.id, (SendState.PAUSED,)):
        resume_send(session, send_id, now)


def _step_sends(session: Session, automation_id: int, states: tuple[SendState, ...]) -> list[int]:
    return list(
        session.scalars(
            select(Send.id)
            .join(AutomationStep, AutomationStep.send_id == Send.id)
            .where(AutomationStep.automation_id == automation_id, Send.state.in_(states))
            .order_by(Send.id)
        )
    )


def list_automations(session: Session) -> list[AutomationView]:
    """Every list's automation, by list name, with its steps in order of delay."""
    rows = session.execute(
        select(Automation, List.name).join(List, List.id == Automation.list_id).order_by(List.name)
    ).all()
    steps = session.scalars(
        select(AutomationStep).order_by(AutomationStep.automation_id, AutomationStep.delay_seconds)
    ).all()
    views = _step_views(session, steps)
    by_automation: dict[int, list[StepView]] = {}
    for step, view in zip(steps, views, strict=True):
        by_automation.setdefault(step.automation_id, []).append(view)
    return [
        AutomationView(
            name, automation.paused, automation.created_at, by_automation.get(automation.id, [])
        )
        for automation, name in rows
    ]


def show_automation(session: Session, list_name: str) -> AutomationView:
    name = get_list(session, list_name).name
    _automation(session, name)
    return next(view for view in list_automations(session) if view.list_name == name)


def _step_views(session: Session, steps: Sequence[AutomationStep]) -> list[StepView]:
    ids = [step.id for step in steps]
    reached = dict(
        session.execute(
            select(AutomationRun.step_id, func.count())
            .where(AutomationRun.step_id.in_(ids))
            .group_by(AutomationRun.step_id)
        ).all()
    )
    states = dict(
        session.execute(
            select(Send.id, Send.state).where(Send.id.in_([step.send_id for step in steps]))
        ).all()
    )
    counts = delivery_counts_of(session, [step.send_id for step in steps])
    return [
        StepView(
            delay=describe_delay(step.delay_seconds),
            delay_seconds=step.delay_seconds,
            issue_id=step.issue_id,
            send_id=step.send_id,
            send_state=states[step.send_id].value,
            reached=int(reached.get(step.id, 0)),
            counts=counts.get(step.send_id, {}),
        )
        for step in steps
    ]


def reader_steps(session: Session, subscriber_id: int) -> list[ReaderStep]:
    """The steps this reader was given, oldest first, each with its message's fate."""
    rows = session.execute(
        select(
            List.name,
            AutomationStep.delay_seconds,
            AutomationStep.issue_id,
            AutomationStep.send_id,
            AutomationRun.claimed_at,
            Delivery.state,
            Delivery.sent_at,
        )
        .join(AutomationStep, AutomationStep.id == AutomationRun.step_id)
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .join(List, List.id == Automation.list_id)
        .outerjoin(
            Delivery,
            (Delivery.send_id == AutomationStep.send_id)
            & (Delivery.subscriber_id == AutomationRun.subscriber_id),
        )
        .where(AutomationRun.subscriber_id == subscriber_id)
        .order_by(AutomationRun.claimed_at, AutomationStep.delay_seconds)
    ).all()
    return [
        ReaderStep(
            list_name=name,
            delay=describe_delay(delay),
            delay_seconds=delay,
            issue_id=issue_id,
            send_id=send_id,
            claimed_at=claimed_at,
            state=None if state is None else state.value,
            sent_at=sent_at,
        )
        for name, delay, issue_id, send_id, claimed_at, state, sent_at in rows
    ]
