"""Making a send and scheduling it, as staff do from the CLI, the dashboard and the API: every
check that can refuse it happens here, before it exists (an unknown list, a time in the past, an
empty audience, a WeChat mass-send quota it would break)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from distributor.errors import DistributorError, EmptyAudience, InvalidTransition, NotFound
from distributor.issues.models import Issue
from distributor.sending.models import Send
from distributor.sending.queries import (
    DEFAULT_EXPIRY,
    PAST_GRACE,
    check_lists,
    check_send_time,
    get_send,
    local_time,
    reachable_readers,
)
from distributor.vocabulary import DeliveryChannel, SendState, Variant
from distributor.wechat.quota import check_wechat_quota
from subscribers.query import Audience


@dataclass(frozen=True)
class NewSend:
    id: int
    state: str
    scheduled_at: datetime | None  # None: a draft without a time yet
    readers: int  # reachable when it was created; the audience is frozen when it starts


def create_send(
    session: Session,
    *,
    issue_id: int,
    audience: Audience,
    variant: Variant | None,
    at: datetime | None,
    now: datetime,
    zone: ZoneInfo,
    draft: bool = False,
    expires_after: timedelta = DEFAULT_EXPIRY,
    rate_limit: float | None = None,
    allow_empty: bool = False,
    tracking: bool = False,
    wechat_account: str | None = None,
) -> NewSend:
    """A send scheduled for ``at`` (None: now), or a draft (None: no time yet). Its audience is
    frozen when it starts; not started within ``expires_after`` of its time (workers down), it
    expires instead of going late. ``zone`` is the one staff read times in; ``tracking``: its
    HTML reports opens and clicks (off unless asked for: readers are not followed by default).
    ``wechat_account`` (the account type, when WeChat is set up): a send to WeChat readers that
    would break its mass-send quota is refused here rather than at WeChat."""
    if rate_limit is not None and rate_limit <= 0:
        raise DistributorError(f"a rate limit must be positive, not {rate_limit}")
    if tracking and variant is Variant.TEXT:
        raise DistributorError(
            "plain text has no images or wrapped links: opens and clicks can be tracked only "
            "in HTML (full, digest, or each reader's own format)"
        )
    if session.get(Issue, issue_id) is None:
        raise NotFound(f"there is no issue with ID {issue_id}")
    if not audience.lists and audience.segment is None:
        raise DistributorError("a send needs at least one list or a segment")
    if audience.lists:
        check_lists(session, audience.lists)
    if at is not None:
        check_send_time(at, now, zone)
    when = now if at is None and not draft else at
    send = Send(
        issue_id=issue_id,
        audience=audience,
        variant=variant,
        channel=DeliveryChannel.EMAIL,
        state=SendState.DRAFT if draft else SendState.SCHEDULED,
        scheduled_at=when,
        expires_at=when + expires_after if when is not None else None,
        rate_limit=rate_limit,
        tracking=tracking,
    )
    readers = reachable_readers(session, send, wechat=wechat_account is not None)
    if not readers and not allow_empty:
        channels = "by email" if wechat_account is None else "by email or WeChat"
        raise EmptyAudience(
            f"nobody to send to: no active subscriber reachable {channels} in "
            f"{send.audience.describe()}"
        )
    if wechat_account is not None and when is not None and not draft:
        check_wechat_quota(session, send, when, wechat_account, zone)
    session.add(send)
    session.flush()
    return NewSend(send.id, send.state.value, send.scheduled_at, readers)


def schedule_send(
    session: Session,
    send_id: int,
    at: datetime | None,
    *,
    now: datetime,
    zone: ZoneInfo,
    expires_after: timedelta | None = None,
    wechat_account: str | None = None,
) -> datetime:
    """Schedule a draft, or move a scheduled send; returns its time. Without ``at`` it keeps
    the time it was given (none: now), so it never goes out earlier than staff were told; without
    ``expires_after`` it keeps its expiry window."""
    send = get_send(session, send_id)
    if send.state not in (SendState.DRAFT, SendState.SCHEDULED):
        raise InvalidTransition(
            f"send {send_id} is {send.state}: only a draft or scheduled send can be scheduled"
        )
    if at is None and send.scheduled_at is not None:
        at = send.scheduled_at
        if at < now - PAST_GRACE:
            raise DistributorError(
                f"send {send_id} was to go out {local_time(at, zone)}, which has passed "
                f"(it is now {local_time(now, zone)}): give it a new time"
            )
    elif at is not None:
        check_send_time(at, now, zone)
    when = at if at is not None else now
    if wechat_account is not None:
        check_wechat_quota(session, send, when, wechat_account, zone)
    if expires_after is None:
        expires_after = (
            send.expires_at - send.scheduled_at
            if send.expires_at is not None and send.scheduled_at is not None
            else DEFAULT_EXPIRY
        )
    send.state, send.scheduled_at, send.expires_at = (
        SendState.SCHEDULED,
        when,
        when + expires_after,
    )
    return when
