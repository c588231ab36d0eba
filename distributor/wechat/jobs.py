"""A send's WeChat readers: its WeChat deliveries sent as mass-send jobs, and their results.

WeChat takes a mass send by OpenID list for 2 to 10,000 followers at a time and reports only
per job, so a send's WeChat deliveries (planned beside its email ones) are cut into balanced
batches, one :class:`WechatJob` each. Every job row, with its ``clientmsgid``, exists before
WeChat is called and every call is counted before it is made: a retry after a lost answer or a
dead worker repeats the ``clientmsgid`` and WeChat answers with the job it already made (45065).

A WeChat delivery ends ``sent`` with the detail "accepted by WeChat in job N": that is all
anyone can know about one reader (WeChat's counts per job are on the job).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.wechat.callbacks import MassJobFinished
from distributor.channels.wechat.client import WechatClient
from distributor.channels.wechat.protocol import (
    OPENIDS_PER_SEND,
    MassJob,
    MassStatus,
    ToAll,
    ToOpenids,
    ToTag,
)
from distributor.channels.wechat.protocol import Audience as WechatAudience
from distributor.config import Settings
from distributor.db import insert_ignoring_duplicates, utcnow
from distributor.errors import (
    NotFound,
    RenderError,
    WechatError,
    WechatRateLimited,
    WechatUnavailable,
)
from distributor.issues.store import load_issue
from distributor.render.wechat import compile_wechat_message
from distributor.sending.attempts import LogEntry, log_attempts
from distributor.sending.dispatch import mark_suppressed
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.models import AttemptOutcome, Delivery, Send
from distributor.vocabulary import DeliveryChannel, DeliveryState, SendState
from distributor.wechat.models import (
    OPEN_JOB_STATES,
    WechatJob,
    WechatJobState,
    WechatMessage,
)
from distributor.wechat.publish import (
    articles_from_json,
    articles_to_json,
    prepare_articles,
)
from subscribers.models import Subscriber
from subscribers.query import WECHAT_CHANNELS, still_sendable

POLL_AFTER = timedelta(minutes=2)  # an accepted job with no callback by then is asked about
LEASE_MARGIN = timedelta(seconds=15)  # beyond the call's timeout, before another may retry it


def clientmsgid_for(send_id: int, batch: int) -> str:
    """Stable across retries, distinct per job (WeChat dedupes on it for 24 hours)."""
    return f"distributor-send-{send_id}-job-{batch}"


def batch_ranges(ids: Sequence[int], most: int = OPENIDS_PER_SEND[1]) -> list[list[int]]:
    """``ids`` (in order) cut into as few batches of at most ``most`` as possible, of balanced
    sizes, so that no batch is left with the single reader WeChat refuses (it wants two)."""
    if not ids:
        return []
    count = math.ceil(len(ids) / most)
    size, extra = divmod(len(ids), count)
    batches, start = [], 0
    for number in range(count):
        end = start + size + (1 if number < extra else 0)
        batches.append(list(ids[start:end]))
        start = end
    return batches


def _wechat_deliveries(send_id: Any) -> list[ColumnElement[bool]]:
    return [Delivery.send_id == send_id, Delivery.channel == DeliveryChannel.WECHAT]


@dataclass(frozen=True)
class Target:
    """Whom a send's WeChat job(s) name: every follower, one WeChat tag, or OpenID lists."""

    kind: str  # "all" | "tag" | "openids"
    tag_id: int | None = None


ALL_FOLLOWERS, BY_OPENIDS = Target("all"), Target("openids")


def choose_target(
    readers: set[str], followers: Iterable[str], tags: Iterable[tuple[int, set[str]]]
) -> Target:
    """The one mass send that names exactly ``readers``: all followers when they are all of
    them (one job, and the message enters the account's history), a tag whose members they are,
    else lists of OpenIDs (a certified service account's). Never a wider audience."""
    if readers and readers == set(followers):
        return ALL_FOLLOWERS
    for tag_id, members in tags:
        if readers and members == readers:
            return Target("tag", tag_id)
    return BY_OPENIDS


def target_for(client: WechatClient, readers: set[str]) -> Target:
    """:func:`choose_target`, asking WeChat for its followers (and the tags of that size)."""
    tags = (
        (tag.id, set(client.tag_followers(tag.id)))
        for tag in client.tags()
        if tag.count == len(readers)
    )
    return choose_target(readers, client.followers(), tags)


def plan_jobs(session: Session, send_id: int, target: Target) -> int:
    """The send's jobs, once it is fully planned: one to all followers or a tag, or one per
    batch of its WeChat deliveries."""
    known = session.scalar(select(exists().where(WechatJob.send_id == send_id)))
    if known:
        return 0
    ids = session.scalars(
        select(Delivery.id).where(*_wechat_deliveries(send_id)).order_by(Delivery.id)
    ).all()
    batches = batch_ranges(ids) if target == BY_OPENIDS else [list(ids)] if ids else []
    _add_jobs(session, send_id, target, batches, after=0)
    return len(batches)


def _add_jobs(
    session: Session, send_id: int, target: Target, batches: list[list[int]], *, after: int
) -> None:
    """One waiting job per batch of delivery IDs, numbered from ``after`` + 1."""
    insert_ignoring_duplicates(
        session,
        WechatJob,
        [
            {
                "send_id": send_id,
                "batch": number,
                "clientmsgid": clientmsgid_for(send_id, number),
                "target": target.kind,
                "tag_id": target.tag_id,
                "first_delivery_id": batch[0],
                "last_delivery_id": batch[-1],
                "openids": len(batch),
                "state": WechatJobState.WAITING,
            }
            for number, batch in enumerate(batches, start=after + 1)
        ],
    )


def _readers(session: Session, send_id: int) -> set[str]:
    return set(session.scalars(select(Delivery.address).where(*_wechat_deliveries(send_id))))


def sends_with_wechat_work(session: Session, now: datetime) -> list[int]:
    """Running, fully planned sends with a WeChat delivery or job still waiting, and sends
    (running or done) with a job whose result is overdue (no callback within
    :data:`POLL_AFTER`): the tick queues one task for each."""
    waiting = or_(
        exists().where(*_wechat_deliveries(Send.id), Delivery.state == DeliveryState.PENDING),
        exists().where(WechatJob.send_id == Send.id, WechatJob.state == WechatJobState.WAITING),
    )
    to_send = select(Send.id).where(
        Send.state == SendState.RUNNING, Send.planned_at.is_not(None), ~Send.is_test, waiting
    )
    overdue = select(WechatJob.send_id).where(
        WechatJob.state == WechatJobState.ACCEPTED, WechatJob.updated_at < now - POLL_AFTER
    )
    return sorted(set(session.scalars(to_send)) | set(session.scalars(overdue)))


def prepare_message(
    factory: sessionmaker[Session], client: WechatClient, send_id: int, settings: Settings
) -> list[dict[str, Any]]:
    """The send's draft articles, made (images and cover uploaded) the first time. Uploads are
    not idempotent: two workers racing here upload twice, harmlessly; the first row stays."""
    with factory.begin() as session:
        stored = session.get(WechatMessage, send_id)
        if stored is not None:
            return stored.articles
        send = session.get(Send, send_id)
        if send is None:
            raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
        articles = compile_wechat_message(load_issue(session, send.issue_id), settings)
    prepared = articles_to_json(prepare_articles(client, articles))
    with factory.begin() as session:
        insert_ignoring_duplicates(
            session, WechatMessage, [{"send_id": send_id, "articles": prepared}]
        )
        stored = session.get(WechatMessage, send_id)
        return stored.articles if stored is not None else prepared


@dataclass
class WechatReport:
    jobs: int = 0
    accepted: list[int] = field(default_factory=list)  # batches accepted by this run
    failed: list[int] = field(default_factory=list)
    postponed: str | None = None  # why a job was left for the next tick
    polled: int = 0  # jobs whose result mass/get gave


def _settle_deliveries(
    session: Session, job: WechatJob, state: DeliveryState, detail: str, now: datetime
) -> None:
    column = Delivery.smtp_response if state is DeliveryState.SENT else Delivery.last_error
    session.execute(
        update(Delivery)
        .where(
            *_wechat_deliveries(job.send_id),
            Delivery.id.between(job.first_delivery_id, job.last_delivery_id),
            Delivery.state == DeliveryState.PENDING,
        )
        .values(
            {
                Delivery.state: state,
                column: detail,
                Delivery.sent_at: now if state is DeliveryState.SENT else None,
                Delivery.updated_at: now,
            }
        )
    )


def record_accepted(session: Session, job_id: int, made: MassJob, now: datetime) -> None:
    job = session.get(WechatJob, job_id, with_for_update=True)
    if job is None or job.state is not WechatJobState.WAITING:
        return
    job.state, job.msg_id, job.accepted_at = WechatJobState.ACCEPTED, str(made.msg_id), now
    job.msg_data_id = None if made.msg_data_id is None else str(made.msg_data_id)
    _settle_deliveries(
        session, job, DeliveryState.SENT, f"accepted by WeChat in job {made.msg_id}", now
    )


def record_refused(session: Session, job_id: int, error: str, now: datetime) -> None:
    job = session.get(WechatJob, job_id, with_for_update=True)
    if job is None or job.state is not WechatJobState.WAITING:
        return
    job.state, job.error, job.finished_at = WechatJobState.FAILED, error, now
    _settle_deliveries(session, job, DeliveryState.FAILED, f"WeChat refused the job: {error}", now)


def record_finished(session: Session, event: MassJobFinished, now: datetime) -> bool:
    """A ``MASSSENDJOBFINISH`` event on its job; False if no job of ours has that msg_id.
    Idempotent: WeChat repeats an event whose answer it did not get."""
    job = session.scalars(
        select(WechatJob).where(WechatJob.msg_id == str(event.msg_id)).with_for_update()
    ).first()
    if job is None:
        return False
    job.state = WechatJobState.SUCCEEDED if event.succeeded else WechatJobState.FAILED
    job.wechat_status = event.status[:40]
    job.total, job.filtered, job.sent, job.errors = (
        event.total,
        event.filtered,
        event.sent,
        event.errors,
    )
    job.error = event.reason or None
    job.finished_at = job.finished_at or now
    return True


def _waiting_in(job: WechatJob) -> list[ColumnElement[bool]]:
    return [
        *_wechat_deliveries(job.send_id),
        Delivery.id.between(job.first_delivery_id, job.last_delivery_id),
        Delivery.state == DeliveryState.PENDING,
    ]


def _openids(session: Session, job: WechatJob) -> tuple[str, ...]:
    """Whom the job names: its deliveries still waiting. The same on every call of the job, as
    those left out before the first call ended suppressed and the rest end only with the job."""
    return tuple(
        session.scalars(select(Delivery.address).where(*_waiting_in(job)).order_by(Delivery.id))
    )


def departed_readers(session: Session, job: WechatJob) -> list[int]:
    """The job's waiting deliveries whose reader left after the send was planned: unsubscribed,
    off the send's lists (the email path's rule, :func:`still_sendable`), switched to email
    only, or no longer following the account (their OpenID is not the one planned)."""
    rows = session.execute(
        select(Delivery.id, Delivery.subscriber_id, Delivery.address, Subscriber.openid)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(*_waiting_in(job))
    ).all()
    audience = session.scalar(select(Send.audience).where(Send.id == job.send_id))
    lists = audience.lists if audience is not None else ()
    sendable = still_sendable(
        session, [row.subscriber_id for row in rows], lists=lists, channels=WECHAT_CHANNELS
    )
    return [
        row.id for row in rows if row.subscriber_id not in sendable or row.openid != row.address
    ]


def leave_out_departed(session: Session, job: WechatJob, now: datetime) -> tuple[str, ...]:
    """Before a job's first call: its readers who left end suppressed, as an email reader who
    left does, and the OpenIDs still to name are returned. A job left with one reader cannot be
    mass-sent (WeChat wants two): it is skipped and that reader's delivery fails, saying why."""
    mark_suppressed(
        session, departed_readers(session, job), Delivery.state == DeliveryState.PENDING, now=now
    )
    openids = _openids(session, job)
    job.openids = len(openids)
    if len(openids) >= OPENIDS_PER_SEND[0]:
        return openids
    job.state, job.finished_at, job.lease_until = WechatJobState.SKIPPED, now, None
    job.error = (
        f"only {len(openids)} of its readers did not leave before it went, and WeChat "
        "mass-sends to two followers or more"
    )
    lone = session.scalars(select(Delivery.id).where(*_waiting_in(job))).all()
    _settle_deliveries(
        session,
        job,
        DeliveryState.FAILED,
        "every other reader of its WeChat job left before it went, and WeChat mass-sends "
        "to two followers or more: send it to this reader another way",
        now,
    )
    log_attempts(session, [LogEntry(i, AttemptOutcome.FAILED, detail=job.error) for i in lone],
                 at=now)
    return ()


def take_job(session: Session, job_id: int, now: datetime, lease: timedelta) -> bool:
    """Hold a waiting job for one worker's call; False if another worker holds it now."""
    taken = session.execute(
        update(WechatJob)
        .where(
            WechatJob.id == job_id,
            WechatJob.state == WechatJobState.WAITING,
            or_(WechatJob.lease_until.is_(None), WechatJob.lease_until < now),
        )
        .values(lease_until=now + lease)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


def release_job(factory: sessionmaker[Session], job_id: int) -> None:
    """This worker's call ended without a job being known: the next try need not wait."""
    with factory.begin() as session:
        session.execute(update(WechatJob).where(WechatJob.id == job_id).values(lease_until=None))


def replan_by_openids(session: Session, job: WechatJob, now: datetime) -> bool:
    """Before the first call of a job to all followers or a tag: if some of its readers left
    (and may still follow), the job would reach them, so it is skipped (WeChat never saw it)
    and replaced by jobs naming the readers still there. False when nobody left."""
    departed = departed_readers(session, job)
    if not departed:
        return False
    mark_suppressed(session, departed, Delivery.state == DeliveryState.PENDING, now=now)
    ids = list(session.scalars(select(Delivery.id).where(*_waiting_in(job)).order_by(Delivery.id)))
    last = session.scalar(select(func.max(WechatJob.batch)).where(WechatJob.send_id == job.send_id))
    batches = batch_ranges(ids)
    _add_jobs(session, job.send_id, BY_OPENIDS, batches, after=last or 0)
    first = (last or 0) + 1
    session.execute(  # its draft, made already, serves the first of them
        update(WechatJob)
        .where(WechatJob.send_id == job.send_id, WechatJob.batch == first)
        .values(media_id=job.media_id)
    )
    job.state, job.finished_at, job.lease_until = WechatJobState.SKIPPED, now, None
    job.media_id = None
    named = (
        "nobody is left to send to"
        if not batches
        else f"replaced by job {first}, naming the others"
        if len(batches) == 1
        else f"replaced by jobs {first}–{first + len(batches) - 1}, naming the others"
    )
    job.error = f"{len(departed)} of its readers left before it went: {named}"
    return True


def run_job(
    factory: sessionmaker[Session],
    client: WechatClient,
    job_id: int,
    articles: list[dict[str, Any]],
) -> MassJob | None:
    """Make the job's draft (once), count the call, then ask WeChat to send it. None when
    another worker is calling for the job now, or when readers left and it is skipped (replaced
    by jobs naming the others, if any)."""
    lease = timedelta(seconds=client.timeout) + LEASE_MARGIN
    with factory.begin() as session:
        if not take_job(session, job_id, utcnow(), lease):
            return None
        job = session.get(WechatJob, job_id)
        assert job is not None
        media_id, clientmsgid = job.media_id, job.clientmsgid
        target = Target(job.target, job.tag_id)
    if media_id is None:
        made = client.add_draft(articles_from_json(articles))
        with factory.begin() as session:
            session.execute(
                update(WechatJob)
                .where(WechatJob.id == job_id, WechatJob.media_id.is_(None))
                .values(media_id=made)
            )
            media_id = session.get(WechatJob, job_id).media_id  # type: ignore[union-attr]
    with factory.begin() as session:  # recorded before the call: never one more job than this
        job = session.get(WechatJob, job_id, with_for_update=True)
        assert job is not None
        audience: WechatAudience
        # Only a service account may name OpenIDs; a subscription account's job to all
        # followers or a tag goes as planned (a reader who left but still follows gets it).
        replannable = target != BY_OPENIDS and client.account.account_type == "service"
        if replannable and job.calls == 0 and replan_by_openids(session, job, utcnow()):
            return None
        if target == ALL_FOLLOWERS:
            audience = ToAll()
        elif target.tag_id is not None:
            audience = ToTag(target.tag_id)
        else:  # the last moment a reader who left can still be kept out of the job
            openids = (
                leave_out_departed(session, job, utcnow())
                if job.calls == 0
                else _openids(session, job)
            )
            if not openids:
                return None
            audience = ToOpenids(openids)
        job.calls, job.lease_until = job.calls + 1, utcnow() + lease
    return client.mass_send(str(media_id), audience, clientmsgid)


def send_wechat(
    factory: sessionmaker[Session], client: WechatClient, send_id: int, settings: Settings
) -> WechatReport:
    """Send the WeChat jobs of ``send_id`` still waiting; poll those whose result is overdue."""
    report = WechatReport()
    with factory.begin() as session:
        send = session.get(Send, send_id)
        sending = (
            send is not None and send.state is SendState.RUNNING and send.planned_at is not None
        )
        unplanned = sending and not session.scalar(
            select(exists().where(WechatJob.send_id == send_id))
        )
        readers = _readers(session, send_id) if unplanned else set()
    if unplanned:
        try:
            target = target_for(client, readers)
        except WechatError as error:
            report.postponed = error.message
            return report
        with factory.begin() as session:
            plan_jobs(session, send_id, target)
    with factory.begin() as session:
        jobs = session.scalars(
            select(WechatJob)
            .where(WechatJob.send_id == send_id, WechatJob.state.in_(OPEN_JOB_STATES))
            .order_by(WechatJob.batch)
        ).all()
    if not sending:  # done (or stopped): only the results of its jobs are still to learn
        report.polled = poll_overdue(factory, client, send_id, utcnow())
        return report
    report.jobs = len(jobs)
    waiting = [job for job in jobs if job.state is WechatJobState.WAITING]
    if waiting:
        try:
            articles = prepare_message(factory, client, send_id, settings)
        except (WechatUnavailable, WechatRateLimited) as error:
            report.postponed = error.message
            return report
        except (RenderError, WechatError) as error:
            # The message cannot be made (too long, an image WeChat refuses): the send pauses
            # with the reason, as for an email it cannot render; staff resume it once fixed.
            with factory.begin() as session:
                pause_for_error(session, send_id, f"WeChat: {error.message}", utcnow())
            report.postponed = error.message
            return report
    for job in waiting:
        try:
            made = run_job(factory, client, job.id, articles)
        except (WechatUnavailable, RenderError) as error:
            release_job(factory, job.id)  # the answer may be lost: the next try repeats it
            report.postponed = error.message
            return report
        except WechatError as error:
            if isinstance(error, WechatRateLimited):  # a wait WeChat asked for
                release_job(factory, job.id)
                report.postponed = error.message
                return report
            with factory.begin() as session:
                record_refused(session, job.id, error.message, utcnow())
            report.failed.append(job.batch)
            continue
        if made is None:
            continue  # another worker is calling for it
        with factory.begin() as session:
            record_accepted(session, job.id, made, utcnow())
        report.accepted.append(job.batch)
    report.polled = poll_overdue(factory, client, send_id, utcnow())
    return report


def poll_overdue(
    factory: sessionmaker[Session], client: WechatClient, send_id: int, now: datetime
) -> int:
    """Ask WeChat (``mass/get``) about accepted jobs whose callback has not come: the fallback
    when the callback URL is not set up or its posts were lost. Counts come only by callback."""
    with factory.begin() as session:
        overdue = session.execute(
            select(WechatJob.id, WechatJob.msg_id).where(
                WechatJob.send_id == send_id,
                WechatJob.state == WechatJobState.ACCEPTED,
                WechatJob.updated_at < now - POLL_AFTER,
                WechatJob.msg_id.is_not(None),
            )
        ).all()
    settled = 0
    for job_id, msg_id in overdue:
        wire = str(msg_id)
        status = client.mass_status(int(wire) if wire.isdigit() else wire)
        with factory.begin() as session:
            job = session.get(WechatJob, job_id, with_for_update=True)
            if job is None or job.state is not WechatJobState.ACCEPTED:
                continue
            job.wechat_status = status.value
            job.updated_at = now  # asked now: the next question waits POLL_AFTER again
            if status is MassStatus.SEND_SUCCESS:
                job.state, job.finished_at = WechatJobState.SUCCEEDED, now
                settled += 1
            elif status in (MassStatus.SEND_FAIL, MassStatus.DELETE):
                job.state, job.finished_at = WechatJobState.FAILED, now
                job.error = f"WeChat reports the job {status.value}"
                settled += 1
    return settled
