"""The periodic tick (Celery beat): every decision about time lives here, in the database.

One tick: create the sends of due recurring digests, start due sends, sweep claims of dead
workers, queue planning of unplanned sends, choose the winners of A/B tests that are due, finish
completed ones, and keep the dispatcher slots
busy while there is work; and queue the work of a channel that sends by jobs (:class:`JobQueue`).
Queuing is a callback, so the same tick runs under Celery, in the CLI and in tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.sending.claim import has_claimable, sweep_expired_claims
from distributor.sending.dispatch import running_sends
from distributor.sending.lifecycle import (
    cancel_waiting_deliveries,
    finish_complete_sends,
    start_due_sends,
)
from distributor.sending.models import SchedulerState, Send
from distributor.sending.recurring import run_due_rules
from distributor.sending.slots import reserve_free_slots
from distributor.sending.tunables import Tunables
from distributor.vocabulary import SendState


@dataclass
class TickReport:
    digests: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    swept: int = 0
    planning: list[int] = field(default_factory=list)
    finished: list[int] = field(default_factory=list)
    drains: list[int] = field(default_factory=list)
    jobs: list[int] = field(default_factory=list)  # sends whose channel jobs were queued
    automations: int = 0  # readers given an automation step's delivery (by the runtime)
    decided: list[int] = field(default_factory=list)  # A/B sends whose winner was chosen


@dataclass(frozen=True)
class JobQueue:
    """A channel that sends by jobs of its own rather than one message at a time (WeChat's mass
    sends): which sends have such work now, and how to queue a task for one. The tick asks; the
    channel's engine, above this one, answers."""

    sends_with_work: Callable[[Session, datetime], list[int]]
    enqueue: Callable[[int], None]


def sends_needing_a_planner(session: Session, now: datetime, grace: timedelta) -> list[int]:
    """Running, not fully planned, and no planner alive: mark queued and return them."""
    rows = session.execute(
        update(Send)
        .where(
            Send.state == SendState.RUNNING,
            Send.planned_at.is_(None),
            or_(Send.planner_lease_until.is_(None), Send.planner_lease_until < now),
        )
        .values(planner_lease_until=now + grace)
        .returning(Send.id)
    )
    return sorted(row.id for row in rows)


def has_ready_work(session: Session, now: datetime) -> bool:
    """A running send (not a staff test: its command sends it) inside its sending windows has
    a delivery ready now."""
    running = running_sends(session, now)
    return any(has_claimable(session, send_id, now) for send_id in running)


def tick(
    factory: sessionmaker[Session],
    *,
    now: datetime,
    tunables: Tunables,
    enqueue_plan: Callable[[int], None],
    enqueue_drain: Callable[[int], None],
    jobs: JobQueue | None = None,
    decide: Callable[[Session, datetime], list[int]] | None = None,
) -> TickReport:
    """One tick. ``decide`` chooses the winners of A/B tests whose wait is over (it reads the
    readers' opens, a room above this one: :func:`distributor.readers.arms.decide_due_tests`)."""
    report = TickReport()
    with factory.begin() as session:
        report.digests = run_due_rules(session, now)
    with factory.begin() as session:
        report.started = start_due_sends(session, now)
    with factory.begin() as session:
        report.swept = sweep_expired_claims(
            session, now, max_attempts=tunables.retry.max_attempts
        )
        cancel_waiting_deliveries(session, now)
    with factory.begin() as session:
        report.planning = sends_needing_a_planner(session, now, tunables.planner_lease)
    for send_id in report.planning:
        enqueue_plan(send_id)
    if decide is not None:  # before the drains: released rows are ready work at once
        with factory.begin() as session:
            report.decided = decide(session, now)
    with factory.begin() as session:
        report.finished = finish_complete_sends(session, now)
    with factory.begin() as session:
        if has_ready_work(session, now):
            report.drains = reserve_free_slots(
                session, count=tunables.slots, now=now, grace=tunables.lease
            )
    for slot in report.drains:
        enqueue_drain(slot)
    if jobs is not None:  # e.g. WeChat readers: mass-send jobs beside the email dispatch
        with factory.begin() as session:
            report.jobs = jobs.sends_with_work(session, now)
        for send_id in report.jobs:
            jobs.enqueue(send_id)
    with factory.begin() as session:
        session.execute(
            update(SchedulerState)
            .where(SchedulerState.id == 1)
            .values(ticks=SchedulerState.ticks + 1, last_tick_at=now)
        )
    return report
