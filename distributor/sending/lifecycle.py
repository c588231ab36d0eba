"""A send's own states. Every move is one conditional UPDATE, so two schedulers, a redelivered
task or two staff clicks can never start, finish or cancel a send twice::

    draft → scheduled → running → done
    scheduled | running → paused → running (resume)        scheduled → expired → running (resume)
    anything not done → cancelled (its open deliveries become cancelled)
    cancelled → running again when staff reopen it (draft, if it never started)
    done → running again when staff retry its failed deliveries
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, exists, func, select, update
from sqlalchemy.orm import Session

from distributor.errors import InvalidTransition, NotFound
from distributor.outbox import EventKind, record_event
from distributor.sending.attempts import LogEntry, log_attempts, log_attempts_of
from distributor.sending.models import (
    ARM_REST,
    OPEN_DELIVERY_STATES,
    AttemptOutcome,
    Delivery,
    Send,
)
from distributor.vocabulary import DeliveryState, SendState

WAITING_DELIVERY_STATES = (DeliveryState.PENDING, DeliveryState.DEFERRED, DeliveryState.HELD)


def send_state(session: Session, send_id: int) -> SendState | None:
    """The send's state as committed now (not an ORM object that may be stale)."""
    return session.scalar(select(Send.state).where(Send.id == send_id))


def start_due_sends(session: Session, now: datetime) -> list[int]:
    """Scheduled sends whose time has come start; those whose expiry passed meanwhile (workers
    were down) become expired instead of going out late, and wait for staff."""
    session.execute(
        update(Send)
        .where(
            Send.state == SendState.SCHEDULED,
            Send.scheduled_at <= now,
            Send.expires_at.is_not(None),
            Send.expires_at < now,
        )
        .values(state=SendState.EXPIRED, updated_at=now)
    )
    rows = session.execute(
        update(Send)
        .where(Send.state == SendState.SCHEDULED, Send.scheduled_at <= now)
        .values(state=SendState.RUNNING, started_at=now, updated_at=now)
        .returning(Send.id)
    )
    started = sorted(row.id for row in rows)
    for send_id in started:
        _announce(session, EventKind.SEND_STARTED, send_id, now)
    return started


def _announce(
    session: Session, kind: EventKind, send_id: int, now: datetime, **detail: object
) -> None:
    """Tell the webhooks listening (distributor.outbox), in the transaction of the move."""
    record_event(session, kind, {"send_id": send_id, **detail}, at=now)


def finish_if_complete(session: Session, send_id: int, now: datetime) -> bool:
    """A running send is done once it is fully planned and no delivery is still open."""
    still_open = exists().where(
        Delivery.send_id == send_id, Delivery.state.in_(OPEN_DELIVERY_STATES)
    )
    result = session.execute(
        update(Send)
        .where(
            Send.id == send_id,
            Send.state == SendState.RUNNING,
            Send.planned_at.is_not(None),
            ~still_open,
        )
        .values(state=SendState.DONE, finished_at=now, updated_at=now)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        _announce(session, EventKind.SEND_DONE, send_id, now)
        return True
    return False


def finish_complete_sends(session: Session, now: datetime) -> list[int]:
    running = session.scalars(
        select(Send.id).where(Send.state == SendState.RUNNING, Send.planned_at.is_not(None))
    ).all()
    return [send_id for send_id in running if finish_if_complete(session, send_id, now)]


def _move(
    session: Session,
    send_id: int,
    sources: Sequence[SendState],
    target: SendState,
    now: datetime,
    verb: str,
    **values: object,
) -> None:
    result = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.state.in_(sources))
        .values(state=target, updated_at=now, **values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        state = send_state(session, send_id)
        if state is None:
            raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
        names = [s.value for s in sources]
        allowed = (
            " or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1]
        )
        raise InvalidTransition(
            f"send {send_id} is {state.value}: only a send that is {allowed} can be {verb}",
            code="send.not_now",
            send=send_id,
            state=state,
        )


def pause_send(session: Session, send_id: int, now: datetime) -> None:
    """No new message goes out (dispatchers notice within a second); in-flight ones finish."""
    _move(
        session, send_id, (SendState.SCHEDULED, SendState.RUNNING), SendState.PAUSED, now, "paused"
    )
    _announce(session, EventKind.SEND_PAUSED, send_id, now, reason=None)


def pause_for_error(session: Session, send_id: int, error: str, now: datetime) -> bool:
    """The send cannot go on by itself (e.g. its issue cannot be rendered): it waits, paused,
    with the reason for staff to read; resuming clears it. False if it was not running."""
    result = session.execute(
        update(Send)
        .where(Send.id == send_id, Send.state.in_((SendState.SCHEDULED, SendState.RUNNING)))
        .values(state=SendState.PAUSED, error=error[:2000], updated_at=now)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        _announce(session, EventKind.SEND_PAUSED, send_id, now, reason=error[:2000])
        return True
    return False


def resume_send(session: Session, send_id: int, now: datetime) -> None:
    """Continue exactly where it stopped: only deliveries still open go out. A send paused before
    its time goes back to waiting for it; an expired one starts now, as staff asked."""
    send = session.execute(
        select(Send.started_at, Send.scheduled_at, Send.state).where(Send.id == send_id)
    ).one_or_none()
    waiting = (
        send is not None
        and send.started_at is None
        and send.state is SendState.PAUSED
        and send.scheduled_at is not None
        and send.scheduled_at > now
    )
    if waiting:
        paused = (SendState.PAUSED,)
        _move(session, send_id, paused, SendState.SCHEDULED, now, "resumed", error=None)
        return
    started = {"started_at": now} if send is not None and send.started_at is None else {}
    _move(
        session,
        send_id,
        (SendState.PAUSED, SendState.EXPIRED),
        SendState.RUNNING,
        now,
        "resumed",
        expires_at=None,
        error=None,
        **started,
    )


def cancel_send(session: Session, send_id: int, now: datetime) -> int:
    """Stop for good: every delivery not yet attempted becomes cancelled. Claimed ones are left
    to their dispatcher, which records what is in flight and cancels the rest of its batch."""
    _move(
        session,
        send_id,
        (
            SendState.DRAFT,
            SendState.SCHEDULED,
            SendState.RUNNING,
            SendState.PAUSED,
            SendState.EXPIRED,
        ),
        SendState.CANCELLED,
        now,
        "cancelled",
        finished_at=now,
    )
    return cancel_waiting_deliveries(session, now, send_id=send_id)


def cancel_waiting_deliveries(
    session: Session, now: datetime, *, send_id: int | None = None
) -> int:
    """Deliveries still waiting in cancelled sends (also those swept back after a crash)."""
    cancelled_sends = select(Send.id).where(Send.state == SendState.CANCELLED)
    if send_id is not None:
        cancelled_sends = cancelled_sends.where(Send.id == send_id)
    result = session.execute(
        update(Delivery)
        .where(Delivery.send_id.in_(cancelled_sends), Delivery.state.in_(WAITING_DELIVERY_STATES))
        .values(state=DeliveryState.CANCELLED, last_error="send cancelled by staff", updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def reopen_send(session: Session, send_id: int, now: datetime) -> int:
    """Finish a cancelled send after all: its cancelled deliveries wait again, and planning goes
    on where it stopped, so it reaches the readers it had not reached; nobody who got it is
    touched. A send cancelled before it started comes back as a draft, to be scheduled again.
    Refused while a worker still holds some of its messages (it would cancel them after us).
    Returns how many deliveries wait again; each is logged, as in :func:`retry_failed`."""
    started = session.scalar(select(Send.started_at).where(Send.id == send_id))
    target, values = (
        (SendState.RUNNING, {"expires_at": None, "finished_at": None, "planner_lease_until": None})
        if started is not None
        else (SendState.DRAFT, {"finished_at": None})
    )
    _move(session, send_id, (SendState.CANCELLED,), target, now, "reopened", **values)
    in_flight = session.scalar(
        select(func.count()).where(
            Delivery.send_id == send_id, Delivery.state == DeliveryState.CLAIMED
        )
    )
    if in_flight:  # their worker is about to mark the rest of its batch cancelled
        raise InvalidTransition(
            f"send {send_id} is still stopping ({in_flight} messages are with a worker): "
            "try again in a minute",
            code="send.stopping",
            send=send_id,
            messages=in_flight,
        )
    cancelled = (Delivery.send_id == send_id, Delivery.state == DeliveryState.CANCELLED)
    log_attempts_of(
        session,
        select(Delivery.id).where(*cancelled),
        AttemptOutcome.REOPENED,
        "send reopened by staff",
        at=now,
    )
    # An A/B test still undecided holds its rest of the audience again (distributor.sending.ab).
    undecided = session.scalar(
        select(Send.ab_decided_at.is_(None) & Send.ab_share.is_not(None)).where(Send.id == send_id)
    )
    waiting: object = DeliveryState.PENDING.value
    if undecided:
        waiting = case(
            (Delivery.arm == ARM_REST, DeliveryState.HELD.value), else_=DeliveryState.PENDING.value
        )
    result = session.execute(
        update(Delivery)
        .where(*cancelled)
        .values(state=waiting, not_before=None, last_error=None, updated_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def retry_failed(session: Session, send_id: int, now: datetime, *, code: int | None = None) -> int:
    """Reopen the failed deliveries (those with SMTP ``code``, or all): the one exception to
    'states only move forward', logged on each row. Nobody already sent is touched."""
    state = send_state(session, send_id)
    if state is None:
        raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
    if state in (SendState.CANCELLED, SendState.DRAFT):
        raise InvalidTransition(
            f"send {send_id} is {state.value}: its failures cannot be retried",
            code="send.no_retry",
            send=send_id,
            state=state,
        )
    query = update(Delivery).where(
        Delivery.send_id == send_id, Delivery.state == DeliveryState.FAILED
    )
    if code is not None:
        query = query.where(Delivery.smtp_code == code)
    reopened = session.execute(
        query.values(
            state=DeliveryState.PENDING,
            attempts=0,
            not_before=None,
            last_error=None,
            updated_at=now,
        ).returning(Delivery.id, Delivery.smtp_code)
    ).all()
    if reopened:
        detail = "failed one retried by staff" + (f" (those with code {code})" if code else "")
        log_attempts(
            session,
            [
                LogEntry(row.id, AttemptOutcome.REOPENED, detail=detail, smtp_code=row.smtp_code)
                for row in reopened
            ],
            at=now,
        )
        session.execute(
            update(Send)
            .where(Send.id == send_id, Send.state == SendState.DONE)
            .values(state=SendState.RUNNING, finished_at=None, updated_at=now)
        )
    return len(reopened)
