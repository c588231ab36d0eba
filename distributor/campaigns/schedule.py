"""Making a send and scheduling it, as staff do from the CLI, the dashboard and the API: every
check that can refuse it happens here, before it exists (an unknown list, a time in the past, an
empty audience, a WeChat mass-send quota it would break)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.errors import DistributorError, EmptyAudience, InvalidTransition, NotFound
from distributor.issues.models import Issue
from distributor.sending.ab import AbTest
from distributor.sending.models import Send
from distributor.sending.queries import (
    DEFAULT_EXPIRY,
    PAST_GRACE,
    check_lists,
    check_send_time,
    get_send,
    local_time,
)
from distributor.sending.reach import Reach, send_reach
from distributor.sending.windows import parse_window
from distributor.vocabulary import DeliveryChannel, SendState, Variant
from distributor.wechat.quota import check_wechat_quota
from subscribers.query import Audience


def wechat_account_of(settings: Settings) -> str | None:
    """The WeChat account type whose quota sends are checked against; None without WeChat (its
    readers then get email)."""
    return settings.wechat_account_type if settings.wechat_app_id else None


@dataclass(frozen=True)
class NewSend:
    id: int
    state: str
    scheduled_at: datetime | None  # None: a draft without a time yet
    readers: int  # reachable when it was created; the audience is frozen when it starts
    reach: Reach  # those readers per channel and format, and who got the issue already


def _checked(
    session: Session,
    send: Send,
    *,
    at: datetime | None,
    now: datetime,
    zone: ZoneInfo,
    draft: bool,
    expires_after: timedelta,
    allow_empty: bool,
    wechat_account: str | None,
) -> Reach:
    """Every check of a new or edited send, its state and times set; whom it reaches."""
    if send.rate_limit is not None and send.rate_limit <= 0:
        raise DistributorError(
            f"a rate limit must be positive, not {send.rate_limit}",
            code="send.rate",
            rate=send.rate_limit,
        )
    if send.tracking and send.variant is Variant.TEXT:
        raise DistributorError(
            "plain text has no images or wrapped links: opens and clicks can be tracked only "
            "in HTML (full, digest, or each reader's own format)",
            code="send.tracking_text",
        )
    if session.get(Issue, send.issue_id) is None:
        raise NotFound(
            f"there is no issue with ID {send.issue_id}", code="issue.missing", issue=send.issue_id
        )
    if not send.audience.lists and send.audience.segment is None:
        raise DistributorError("a send needs at least one list or a segment", code="send.no_lists")
    if send.audience.lists:
        check_lists(session, send.audience.lists)
    if at is not None:
        check_send_time(at, now, zone)
    when = now if at is None and not draft else at
    send.state = SendState.DRAFT if draft else SendState.SCHEDULED
    send.scheduled_at = when
    send.expires_at = when + expires_after if when is not None else None
    reach = send_reach(session, send, wechat=wechat_account is not None)
    if not reach.readers and not allow_empty:
        channels = "by email" if wechat_account is None else "by email or WeChat"
        raise EmptyAudience(
            f"nobody to send to: no active subscriber reachable {channels} in "
            f"{send.audience.describe()}",
            code="send.nobody",
            audience=send.audience,
        )
    if wechat_account is not None and when is not None and not draft:
        check_wechat_quota(session, send, when, wechat_account, zone)
    return reach


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
    dry_run: bool = False,
    windows: Sequence[str] = (),
    commercial: bool = False,
    ab: AbTest | None = None,
) -> NewSend:
    """A send scheduled for ``at`` (None: now), or a draft (None: no time yet). Its audience is
    frozen when it starts; not started within ``expires_after`` of its time (workers down), it
    expires instead of going late. ``zone`` is the one staff read times in; ``tracking``: its
    HTML reports opens and clicks (off unless asked for: readers are not followed by default).
    ``wechat_account`` (the account type, when WeChat is set up): a send to WeChat readers that
    would break its mass-send quota is refused here rather than at WeChat. ``dry_run``: every
    check made and its readers counted, nothing saved (what staff confirm; its id is 0).
    ``windows`` ("Mon-Fri 08:00-20:00", in ``zone``): it goes out only inside them;
    ``commercial``: advertising, marked as the rules on commercial email ask. ``ab``: an A/B
    subject test (:mod:`distributor.sending.ab`), which tracks opens and clicks to choose."""
    for window in windows:
        parse_window(window)
    if ab is not None:
        ab.check()
        tracking = True  # the winner is the arm whose readers opened (clicked) more
    send = Send(
        issue_id=issue_id,
        audience=audience,
        variant=variant,
        channel=DeliveryChannel.EMAIL,
        is_test=False,
        rate_limit=rate_limit,
        tracking=tracking,
        windows=list(windows) or None,
        window_zone=zone.key if windows else None,
        commercial=commercial,
    )
    if ab is not None:
        send.ab_subject_b, send.ab_share = ab.subject_b.strip(), ab.share
        send.ab_winner_by, send.ab_wait = ab.winner_by.value, int(ab.wait.total_seconds())
    reach = _checked(
        session,
        send,
        at=at,
        now=now,
        zone=zone,
        draft=draft,
        expires_after=expires_after,
        allow_empty=allow_empty,
        wechat_account=wechat_account,
    )
    if ab is not None and reach.readers * ab.share // 100 < 2:
        raise DistributorError(
            f"an A/B test of {ab.share}% of {reach.readers} readers has nobody in an arm: "
            "give it a larger share or audience",
            code="send.ab_too_few",
            share=ab.share,
            readers=reach.readers,
        )
    if not dry_run:
        session.add(send)
        session.flush()
    return NewSend(send.id or 0, send.state.value, send.scheduled_at, reach.readers, reach)


@dataclass(frozen=True)
class SendChanges:
    """What staff may change in a send until it starts."""

    audience: Audience
    variant: Variant | None
    at: datetime | None  # None: a draft keeps no time; a scheduled send goes now
    rate_limit: float | None = None
    expires_after: timedelta = DEFAULT_EXPIRY
    tracking: bool = False


def edit_send(
    session: Session,
    send_id: int,
    changes: SendChanges,
    *,
    now: datetime,
    zone: ZoneInfo,
    draft: bool,
    wechat_account: str | None = None,
    dry_run: bool = False,
) -> Reach:
    """Change a draft or a scheduled send that has not started (its lists, tags, variant, time,
    rate, expiry, tracking), with every check a new send has; ``draft`` keeps (or makes) it a
    draft, else it is scheduled. ``dry_run``: only whom it would reach, nothing changed (what
    staff confirm). The row is locked, so a scheduler starting it meanwhile waits, then finds it
    changed."""
    send = session.get(Send, send_id, with_for_update=True)
    if send is None:
        raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
    if send.state not in (SendState.DRAFT, SendState.SCHEDULED) or send.started_at is not None:
        raise InvalidTransition(
            f"send {send_id} is {send.state.value}: only a draft or a scheduled send that has "
            "not started can be changed",
            code="send.not_editable",
            send=send_id,
            state=send.state,
        )
    if dry_run:
        session.expunge(send)  # the checks below set its fields: none of it is kept
    send.audience, send.variant = changes.audience, changes.variant
    send.rate_limit, send.tracking = changes.rate_limit, changes.tracking
    return _checked(
        session,
        send,
        at=changes.at,
        now=now,
        zone=zone,
        draft=draft,
        expires_after=changes.expires_after,
        allow_empty=False,
        wechat_account=wechat_account,
    )


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
            f"send {send_id} is {send.state}: only a draft or scheduled send can be scheduled",
            code="send.not_schedulable",
            send=send_id,
            state=send.state,
        )
    if at is None and send.scheduled_at is not None:
        at = send.scheduled_at
        if at < now - PAST_GRACE:
            raise DistributorError(
                f"send {send_id} was to go out {local_time(at, zone)}, which has passed "
                f"(it is now {local_time(now, zone)}): give it a new time",
                code="send.time_passed",
                send=send_id,
                at=local_time(at, zone),
                now=local_time(now, zone),
            )
    elif at is not None:
        check_send_time(at, now, zone)
    when = at if at is not None else now
    if wechat_account is not None:
        check_wechat_quota(session, send, when, wechat_account, zone)
    if expires_after is None:
        expires_after = expiry_window(send)
    send.state, send.scheduled_at, send.expires_at = (
        SendState.SCHEDULED,
        when,
        when + expires_after,
    )
    return when


def expiry_window(send: Send) -> timedelta:
    """How long after its time ``send`` may still start: the window it was given."""
    if send.expires_at is not None and send.scheduled_at is not None:
        return send.expires_at - send.scheduled_at
    return DEFAULT_EXPIRY


def audience_reach(
    session: Session,
    *,
    issue_id: int | None,
    audience: Audience,
    variant: Variant | None,
    wechat_account: str | None = None,
) -> Reach:
    """Whom a send of ``issue_id`` to ``audience`` would reach now: what the create form and the
    API show while staff choose, counted as :func:`create_send` counts."""
    send = Send(
        issue_id=issue_id or 0, audience=audience, variant=variant, channel=DeliveryChannel.EMAIL,
        is_test=False,
    )
    return send_reach(session, send, wechat=wechat_account is not None)
