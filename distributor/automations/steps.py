"""The automations' part of the tick: for each step, the readers whose moment came get a
delivery in the step's send, and the send runs; the engine does the rest.

Exactly once per reader and step: a reader's :class:`AutomationRun` row (unique per step and
reader) and their delivery are written in one transaction, so a crash before the commit leaves
neither and one after leaves both; the next tick claims only readers without a row. From the
delivery on, the engine's own guarantee holds (claims, leases, the sweep of a dead worker's
claims, one Message-ID per send and reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from distributor.automations.models import (
    Automation,
    AutomationJoin,
    AutomationRun,
    AutomationStep,
)
from distributor.config import Settings
from distributor.errors import ConfigurationError, RenderError
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.models import Send, SendRender
from distributor.sending.planner import insert_deliveries
from distributor.sending.renders import render_send
from distributor.vocabulary import DeliveryChannel, SendState
from subscribers.models import Subscriber, SubscriberStatus, Subscription, SubscriptionStatus

CLAIM_BATCH = 1000  # readers claimed per step in one transaction
CLAIMING_STATES = (SendState.RUNNING, SendState.DONE)  # a paused or cancelled send waits
# A join is written in the transaction of its confirmation, with that transaction's time: one
# that commits late is still looked at if it is no older than this behind the step's watermark.
SETTLE = timedelta(minutes=10)
ADVANCE = timedelta(minutes=1)  # the watermark moves by at least this: not a write every tick


@dataclass(frozen=True)
class DueStep:
    step_id: int
    send_id: int
    list_id: int
    delay: timedelta
    created_at: datetime
    claimed_through: datetime | None  # joins until then are decided (AutomationStep)
    rendered: bool  # its message is rendered already


def due_steps(session: Session) -> list[DueStep]:
    """Steps of automations that are not paused, whose send may take new readers."""
    rows = session.execute(
        select(
            AutomationStep.id,
            AutomationStep.send_id,
            Automation.list_id,
            AutomationStep.delay_seconds,
            AutomationStep.created_at,
            AutomationStep.claimed_through,
            exists().where(SendRender.send_id == AutomationStep.send_id),
        )
        .join(Automation, Automation.id == AutomationStep.automation_id)
        .join(Send, Send.id == AutomationStep.send_id)
        .where(~Automation.paused, Send.state.in_(CLAIMING_STATES))
        .order_by(AutomationStep.id)
    )
    return [
        DueStep(step_id, send_id, list_id, timedelta(seconds=delay), created, through, rendered)
        for step_id, send_id, list_id, delay, created, through, rendered in rows
    ]


def readers_due(step: DueStep, now: datetime, limit: int) -> Select[Any]:
    """The readers the step owes its message now: joined ``delay`` ago or more (but not before
    the step existed, less its delay), still active on the list, not yet claimed."""
    join = AutomationJoin
    since = [] if step.claimed_through is None else [join.joined_at > step.claimed_through]
    return (
        select(join.subscriber_id)
        .where(
            join.list_id == step.list_id,
            join.joined_at <= now - step.delay,
            join.joined_at >= step.created_at - step.delay,
            *since,
            ~exists().where(
                AutomationRun.step_id == step.step_id,
                AutomationRun.subscriber_id == join.subscriber_id,
            ),
            exists().where(
                Subscription.subscriber_id == join.subscriber_id,
                Subscription.list_id == step.list_id,
                Subscription.status == SubscriptionStatus.ACTIVE,
            ),
            exists().where(
                Subscriber.id == join.subscriber_id, Subscriber.status == SubscriberStatus.ACTIVE
            ),
        )
        .order_by(join.subscriber_id)
        .limit(limit)
    )


def claim_due(
    session: Session, step: DueStep, now: datetime, *, limit: int = CLAIM_BATCH, wechat: bool
) -> int:
    """Claim up to ``limit`` readers whose moment came and add their deliveries to the step's
    send (by email: the engine's channel for one reader at a time), which runs again if it had
    finished. Returns how many were claimed; a reader claimed by someone else meanwhile is not."""
    due = list(session.scalars(readers_due(step, now, limit)))
    if len(due) < limit:  # every join until its moment is decided by this transaction
        settled = now - step.delay - SETTLE
        session.execute(
            update(AutomationStep)
            .where(
                AutomationStep.id == step.step_id,
                or_(
                    AutomationStep.claimed_through.is_(None),
                    AutomationStep.claimed_through < settled - ADVANCE,
                ),
            )
            .values(claimed_through=settled)
        )
    if not due:
        return 0
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    claimed = list(
        session.scalars(
            dialect.insert(AutomationRun)
            .on_conflict_do_nothing()
            .returning(AutomationRun.subscriber_id),
            [
                {"step_id": step.step_id, "subscriber_id": reader, "claimed_at": now}
                for reader in due
            ],
        )
    )
    if not claimed:
        return 0
    send = session.get(Send, step.send_id)
    assert send is not None
    insert_deliveries(
        session, send, DeliveryChannel.EMAIL, [Subscriber.id.in_(claimed)], wechat=wechat
    )
    session.execute(
        update(Send)
        .where(Send.id == step.send_id, Send.state == SendState.DONE)
        .values(state=SendState.RUNNING, finished_at=None, updated_at=now)
    )
    return len(claimed)


def rendered(
    factory: sessionmaker[Session], send_id: int, settings: Settings, now: datetime
) -> bool:
    """Render the step's message now, before a delivery of it exists; one that cannot be made
    pauses its send with the reason, as a send's would."""
    try:
        with factory.begin() as session:
            render_send(session, send_id, settings)
    except (RenderError, ConfigurationError) as error:
        with factory.begin() as session:
            pause_for_error(session, send_id, error.message, now)
        return False
    return True


def run_due_steps(factory: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """One tick's claims, every step in turn, a batch per transaction; how many readers."""
    with factory.begin() as session:
        steps = due_steps(session)
    wechat = settings.wechat_app_id is not None
    total = 0
    for step in steps:
        if not step.rendered and not rendered(factory, step.send_id, settings, now):
            continue
        while True:
            with factory.begin() as session:
                claimed = claim_due(session, step, now, wechat=wechat)
            total += claimed
            if claimed < CLAIM_BATCH:
                break
    return total
