"""``/api/v1/sends``: create, schedule, control and watch sends; who got what; test sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from distributor.campaigns.left_out import left_out, look_up_reader
from distributor.campaigns.schedule import (
    SendChanges,
    audience_reach,
    create_send,
    edit_send,
    expiry_window,
    schedule_send,
    wechat_account_of,
)
from distributor.campaigns.status import SendStatus, list_sends, send_status
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.readers.arms import AbStatus
from distributor.segments.store import segment_audience
from distributor.sending.ab import AbTest
from distributor.sending.lifecycle import (
    cancel_send,
    pause_send,
    reopen_send,
    resume_send,
    retry_failed,
)
from distributor.sending.models import BY_PREFERENCE
from distributor.sending.queries import (
    DEFAULT_EXPIRY,
    DeliveryView,
    check_lists,
    delivery_page,
    get_send,
    list_deliveries,
)
from distributor.sending.reach import Reach
from distributor.sending.test_sends import create_test_send
from distributor.staff.models import StaffUser
from distributor.vocabulary import DeliveryState, SendState, Variant
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import (
    AbTestOut,
    ArmOut,
    AudienceOut,
    DeliveryOut,
    ItemId,
    LeftOutOut,
    ReadersOut,
    ReaderStandingOut,
    RetryIn,
    ScheduleIn,
    SendAction,
    SendCreate,
    SendCreated,
    SendEdit,
    SendEdited,
    SendOut,
    SendVariant,
    TestSendIn,
    TestSendOut,
)
from distributor.web.api.pagination import Cursor, Limit, Page, cursors
from distributor.web.pages import WebDep
from distributor.zones import zone_named
from subscribers.query import Audience

router = APIRouter(prefix="/api/v1", tags=["sends"], responses=COMMON_ERRORS)
ONE = {**NOT_FOUND, **CONFLICT}


def send_out(status: SendStatus) -> SendOut:
    audience = status.audience
    return SendOut(
        id=status.id,
        state=status.state,  # type: ignore[arg-type]
        issue_id=status.issue_id,
        issue_number=status.issue_number,
        variant=status.variant,
        audience=AudienceOut(
            lists=list(audience.lists),
            tags=list(audience.tags),
            addresses=list(audience.addresses),
            text=audience.describe(),
        ),
        is_test=status.is_test,
        scheduled_at=status.scheduled_at,
        started_at=status.started_at,
        finished_at=status.finished_at,
        counts=status.counts,
        total=status.total,
        possible_duplicates=status.possible_duplicates,
        error=status.error,
        windows=list(status.windows),
        window_zone=status.window_zone,
        opens_at=status.opens_at,
        commercial=status.commercial,
        ab_test=ab_test_out(status.ab) if status.ab else None,
    )


def ab_test_out(ab: AbStatus) -> AbTestOut:
    return AbTestOut(
        share=ab.share,
        winner_by=ab.winner_by,
        winner_after_seconds=int(ab.wait.total_seconds()),
        subject_a=ab.subject_a,
        subject_b=ab.subject_b,
        arms={
            arm: ArmOut(
                readers=f.readers, reached=f.reached, opened=f.opened, clicked=f.clicked
            )
            for arm, f in ab.arms.items()
        },
        tested_at=ab.tested_at,
        decided_at=ab.decided_at,
        winner=ab.winner,
        reason=ab.reason.value if ab.reason else None,
    )


def delivery_out(view: DeliveryView) -> DeliveryOut:
    return DeliveryOut(
        id=view.id,
        address=view.address,
        state=DeliveryState(view.state),
        attempts=view.attempts,
        smtp_code=view.smtp_code,
        detail=view.detail,
        sent_at=view.sent_at,
    )


def zone_or(name: str | None, default: ZoneInfo) -> ZoneInfo:
    return default if name is None else zone_named(name)


def in_zone(at: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A time without an offset is read in ``zone``, as the CLI reads ``--at``."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=zone)


def _status(session: Session, send_id: int) -> SendOut:
    return send_out(send_status(session, send_id))


@router.get("/sends", response_model=Page[SendOut], summary="Sends, newest first")
def list_all(web: WebDep, user: Viewer, limit: Limit = 20, cursor: Cursor = None) -> Page[SendOut]:
    before = cursors(web).decode("sends", cursor)
    with web.transaction() as session:
        statuses = list_sends(session, before_id=before[0] if before else None, limit=limit + 1)
    more = len(statuses) > limit
    items = [send_out(status) for status in statuses[:limit]]
    return Page(
        items=items, next_cursor=cursors(web).encode("sends", [items[-1].id]) if more else None
    )


@router.get(
    "/audience",
    response_model=ReadersOut,
    responses=NOT_FOUND,
    summary="How many readers an audience has",
)
def readers(
    web: WebDep,
    user: Viewer,
    lists: Annotated[list[str], Query(alias="list", min_length=1, max_length=50)],
    tags: Annotated[list[str], Query(alias="tag", max_length=50)] = [],  # noqa: B006
    variant: SendVariant = SendVariant.FULL,
    issue_id: int | None = None,
) -> ReadersOut:
    """Active subscribers on any of the lists (and with one of the tags) whom a send in
    `variant` created now would reach: the count `POST /sends` answers with."""
    with web.transaction() as session:
        check_lists(session, lists)
        reach = audience_reach(
            session,
            issue_id=issue_id,
            audience=Audience(lists=tuple(lists), tags=tuple(tags)),
            variant=None if variant == BY_PREFERENCE else Variant(variant),
            wechat_account=wechat_account_of(web.settings),
        )
        return readers_out(reach)


def readers_out(reach: Reach) -> ReadersOut:
    return ReadersOut(
        readers=reach.readers,
        channels=reach.channels,
        formats=reach.formats,
        fell_back_to_email=reach.fell_back,
    )


@router.post(
    "/sends", status_code=201, response_model=SendCreated, responses=NOT_FOUND, summary="Create"
)
def create(body: SendCreate, web: WebDep, user: Editor) -> SendCreated:
    """A send scheduled for `at` (absent: now), or a draft. A time in the past and an audience
    with nobody to send to are refused (`allow_empty` creates it anyway)."""
    web.settings.require_secret_key()
    zone = zone_or(body.timezone, web.settings.zone)
    at = in_zone(body.at, zone)
    if body.draft and at is None and body.expires_in_hours is not None:
        raise DistributorError(
            "the expiry counts from the send's time, and this draft has none: give it a time",
            code="send.expiry_no_time",
        )
    with web.transaction() as session:
        lists, tags = tuple(body.lists), tuple(body.tags)
        created = create_send(
            session,
            issue_id=body.issue_id,
            audience=Audience(lists=lists, tags=tags)
            if body.segment is None
            else segment_audience(session, body.segment, zone, lists=lists, tags=tags),
            variant=_variant(body.variant),
            at=at,
            now=utcnow(),
            zone=zone,
            draft=body.draft,
            expires_after=_hours(body.expires_in_hours) or DEFAULT_EXPIRY,
            rate_limit=body.rate,
            allow_empty=body.allow_empty,
            wechat_account=wechat_account_of(web.settings),
            windows=body.windows,
            commercial=body.commercial,
            ab=None
            if body.ab_test is None
            else AbTest(
                body.ab_test.subject_b,
                body.ab_test.share,
                body.ab_test.winner_by,
                timedelta(seconds=body.ab_test.winner_after_seconds),
            ),
        )
        audit(session, user, "send.create", "send", created.id, body.model_dump(mode="json"))
        return SendCreated(send=_status(session, created.id), readers=created.readers)


def _variant(variant: SendVariant) -> Variant | None:
    """None: each reader's own format."""
    return None if variant == BY_PREFERENCE else Variant(variant)


def _hours(hours: float | None) -> timedelta | None:
    return timedelta(hours=hours) if hours is not None else None


@router.get("/sends/{send_id}", response_model=SendOut, responses=NOT_FOUND, summary="Status")
def status(send_id: ItemId, web: WebDep, user: Viewer) -> SendOut:
    """The send, and how many of its deliveries are in each state (kept counters: as fast for
    a million recipients as for ten)."""
    with web.reading() as session:
        return _status(session, send_id)


def _acted(
    session: Session,
    user: StaffUser,
    send_id: int,
    action: str,
    deliveries: int,
    detail: Mapping[str, object] | None = None,
) -> SendAction:
    """An action on a send, done: audited, answered with the send as it now stands."""
    audit(session, user, f"send.{action}", "send", send_id, detail)
    return SendAction(send=_status(session, send_id), deliveries=deliveries)


@router.post("/sends/{send_id}/schedule", response_model=SendAction, responses=ONE)
def schedule(send_id: ItemId, body: ScheduleIn, web: WebDep, user: Editor) -> SendAction:
    """Schedule a draft, or move a scheduled send."""
    zone = zone_or(body.timezone, web.settings.zone)
    with web.transaction() as session:
        schedule_send(
            session,
            send_id,
            in_zone(body.at, zone),
            now=utcnow(),
            zone=zone,
            expires_after=_hours(body.expires_in_hours),
        )
        return _acted(session, user, send_id, "schedule", 0, body.model_dump(mode="json"))


@router.patch("/sends/{send_id}", response_model=SendEdited, responses=ONE, summary="Edit")
def edit(send_id: ItemId, body: SendEdit, web: WebDep, user: Editor) -> SendEdited:
    """Change a draft or a scheduled send that has not started (409 once it has), with every
    check a new send has: the service the dashboard's edit and `distributor send edit` use.
    What is not given stays as it is; `dry_run` answers whom it would reach and changes
    nothing (what the dashboard asks staff to confirm)."""
    zone = zone_or(body.timezone, web.settings.zone)
    with web.transaction() as session:
        send = get_send(session, send_id)
        lists = tuple(body.lists) if body.lists is not None else send.audience.lists
        tags = tuple(body.tags) if body.tags is not None else send.audience.tags
        audience = (
            replace(send.audience, lists=lists, tags=tags)
            if body.segment is None
            else segment_audience(
                session,
                body.segment,
                zone,
                lists=tuple(body.lists or ()),
                tags=tuple(body.tags or ()),
            )
        )
        changes = SendChanges(
            audience=audience,
            variant=send.variant if body.variant is None else _variant(body.variant),
            at=in_zone(body.at, zone) if body.at is not None else send.scheduled_at,
            rate_limit=body.rate if body.rate is not None else send.rate_limit,
            expires_after=_hours(body.expires_in_hours) or expiry_window(send),
            tracking=send.tracking if body.tracking is None else body.tracking,
        )
        draft = send.state is SendState.DRAFT if body.draft is None else body.draft
        reach = edit_send(
            session,
            send_id,
            changes,
            now=utcnow(),
            zone=zone,
            draft=draft,
            wechat_account=wechat_account_of(web.settings),
            dry_run=body.dry_run,
        )
        if not body.dry_run:
            detail = body.model_dump(mode="json", exclude_none=True) | {"readers": reach.readers}
            audit(session, user, "send.edit" if draft else "send.schedule", "send", send_id, detail)
        session.flush()
        session.expire_all()  # the send as stored (its time in UTC), not as it was set
        return SendEdited(
            send=_status(session, send_id), readers=readers_out(reach), dry_run=body.dry_run
        )


@router.post("/sends/{send_id}/pause", response_model=SendAction, responses=ONE)
def pause(send_id: ItemId, web: WebDep, user: Editor) -> SendAction:
    """No new message goes out (workers notice within seconds); messages in flight finish."""
    with web.transaction() as session:
        pause_send(session, send_id, utcnow())
        return _acted(session, user, send_id, "pause", 0)


@router.post("/sends/{send_id}/resume", response_model=SendAction, responses=ONE)
def resume(send_id: ItemId, web: WebDep, user: Editor) -> SendAction:
    """It goes on where it stopped; one paused before its time waits for that time again."""
    with web.transaction() as session:
        resume_send(session, send_id, utcnow())
        return _acted(session, user, send_id, "resume", 0)


@router.post("/sends/{send_id}/cancel", response_model=SendAction, responses=ONE)
def cancel(send_id: ItemId, web: WebDep, user: Editor) -> SendAction:
    """Nothing not yet sent goes out; `deliveries` is how many were cancelled."""
    with web.transaction() as session:
        cancelled = cancel_send(session, send_id, utcnow())
        return _acted(session, user, send_id, "cancel", cancelled, {"cancelled": cancelled})


@router.post("/sends/{send_id}/reopen", response_model=SendAction, responses=ONE)
def reopen(send_id: ItemId, web: WebDep, user: Editor) -> SendAction:
    """Finish a cancelled send after all: `deliveries` wait again. One cancelled before it
    started comes back as a draft."""
    with web.transaction() as session:
        waiting = reopen_send(session, send_id, utcnow())
        return _acted(session, user, send_id, "reopen", waiting, {"waiting": waiting})


@router.post("/sends/{send_id}/retry-failed", response_model=SendAction, responses=ONE)
def retry(send_id: ItemId, body: RetryIn, web: WebDep, user: Editor) -> SendAction:
    """Send the failed deliveries again (all, or those that failed with `code`)."""
    with web.transaction() as session:
        reopened = retry_failed(session, send_id, utcnow(), code=body.code)
        detail = {"code": body.code, "reopened": reopened}
        return _acted(session, user, send_id, "retry-failed", reopened, detail)


@router.get("/sends/{send_id}/deliveries", response_model=Page[DeliveryOut], responses=NOT_FOUND)
def deliveries(
    send_id: ItemId,
    web: WebDep,
    user: Viewer,
    state: DeliveryState | None = None,
    q: Annotated[
        str | None, Query(max_length=320, description="The start of the address, any case.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[DeliveryOut]:
    """Who got what and why not: in id order, or in address order when searched."""
    kind = f"deliveries:{send_id}:{state}:{q or ''}"
    with web.reading() as session:
        page = delivery_page(
            session,
            send_id,
            state=state,
            address_prefix=q or None,
            after=cursors(web).decode(kind, cursor),
            limit=limit,
        )
    return Page(
        items=[delivery_out(row) for row in page.rows],
        next_cursor=cursors(web).encode(kind, list(page.after)) if page.after else None,
    )


@router.get(
    "/sends/{send_id}/left-out",
    response_model=LeftOutOut,
    responses=NOT_FOUND,
    summary="Readers of its lists left out, and why",
)
def left_out_of(
    send_id: ItemId,
    web: WebDep,
    user: Viewer,
    email: Annotated[
        str | None, Query(max_length=320, description="Also say where this address stands.")
    ] = None,
) -> LeftOutOut:
    """Every reader of the send's lists is in it or counted under one reason (unsubscribed,
    suppressed, not confirmed, …); `email` looks one address up."""
    wechat = web.settings.wechat_app_id is not None
    with web.reading() as session:
        counts = left_out(session, send_id, wechat=wechat)
        found = look_up_reader(session, send_id, email, wechat=wechat) if email else None
    return LeftOutOut(
        send_id=send_id,
        list_readers=counts.list_readers,
        in_send=counts.in_send,
        fell_back_to_email=counts.fell_back,
        left_out=sum(counts.reasons.values()),
        reasons=counts.reasons,
        reader=ReaderStandingOut(
            address=found.address,
            standing=found.standing.value,
            since=found.since,
            detail=found.detail,
            state=DeliveryState(found.state) if found.state else None,
            channel=found.channel,
            fell_back_to_email=found.fell_back,
        )
        if found
        else None,
    )


@router.post("/sends/test", response_model=TestSendOut, responses=NOT_FOUND, summary="Test send")
async def test_send(body: TestSendIn, web: WebDep, user: Editor) -> TestSendOut:
    """Send the issue now to a few staff addresses from this server, and answer with each mail
    server's answer. The subject starts with [测试]; nothing of it is retried later."""
    return await run_in_threadpool(_test_send, body, web, user)


def _test_send(body: TestSendIn, web: WebDep, user: Editor) -> TestSendOut:
    from distributor.runtime import WorkerRuntime

    runtime = WorkerRuntime.from_settings(web.settings)
    try:
        with web.transaction() as session:
            send_id = create_test_send(
                session,
                issue_id=body.issue_id,
                addresses=body.to,
                variant=Variant(body.variant),
                settings=web.settings,
                now=utcnow(),
            ).id
            audit(session, user, "send.test", "send", send_id, body.model_dump(mode="json"))
        runtime.send_test(send_id)
    finally:
        runtime.close()
    with web.transaction() as session:
        rows = list_deliveries(session, send_id)
    return TestSendOut(
        send_id=send_id,
        deliveries=[delivery_out(row) for row in rows],
        all_accepted=all(row.state in ("sent", "suppressed") for row in rows),
    )
