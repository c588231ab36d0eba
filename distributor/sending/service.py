"""What staff do with sends, as functions the CLI and the web dashboard both call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, select, tuple_
from sqlalchemy.orm import Session

from distributor.bounces import FeedbackKind
from distributor.channels.base import DeliveryChannel
from distributor.db import like_prefix, prefix_key
from distributor.errors import DistributorError, EmptyAudience, InvalidTransition, NotFound
from distributor.issues.models import Issue, Variant
from distributor.sending.engagement import EngagementCounts, engagement_counts
from distributor.sending.models import (
    FINAL_DELIVERY_STATES,
    Delivery,
    DeliveryState,
    FeedbackMessage,
    FeedbackOutcome,
    Send,
    SendCount,
    SendState,
)
from distributor.sending.planner import audience_filter
from distributor.sending.unsubscribes import unsubscribes_by_send
from distributor.sending.wechat_quota import check_wechat_quota
from distributor.sending.wechat_status import WechatJobView, wechat_jobs_of
from subscribers.models import List
from subscribers.query import Audience, count_audience

DEFAULT_EXPIRY = timedelta(hours=6)
# A time this little in the past is "now" typed slowly; anything earlier is a mistake.
PAST_GRACE = timedelta(minutes=5)


def local_time(moment: datetime, zone: ZoneInfo) -> str:
    """A time as staff read it: weekday, date and minute in ``zone``, with the zone's name."""
    return f"{moment.astimezone(zone):%a %Y-%m-%d %H:%M} {zone.key}"


def check_send_time(at: datetime, now: datetime, zone: ZoneInfo) -> None:
    """A time already past (a wrong year, a wrong day) is pointed out, not left to expire."""
    if at < now - PAST_GRACE:
        raise DistributorError(
            f"{local_time(at, zone)} is in the past (it is now {local_time(now, zone)}): "
            "give a time from now on"
        )


def reachable_readers(session: Session, send: Send, *, wechat: bool = False) -> int:
    """How many readers the planner would give a message now: its own filter, counted
    (``wechat``: the WeChat channel is set up, so WeChat readers count too)."""
    return count_audience(session, audience_filter(send, wechat=wechat))


def check_lists(session: Session, names: Sequence[str]) -> None:
    """A misspelt list is an error, not an empty audience."""
    known = set(session.scalars(select(List.name).where(List.name.in_(names))))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise NotFound(f"there is no list named {', '.join(map(repr, unknown))}")


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
    if not audience.lists:
        raise DistributorError("a send needs at least one list")
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


def get_send(session: Session, send_id: int) -> Send:
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"there is no send with ID {send_id}")
    return send


@dataclass(frozen=True)
class SendStatus:
    id: int
    state: str
    issue_id: int
    issue_number: int
    variant: str
    audience: Audience
    is_test: bool
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int]
    possible_duplicates: int
    error: str | None = None  # why the send paused itself (e.g. its issue cannot be rendered)
    # What readers did, counted for one send's status (None in a list of sends: not counted).
    tracking: bool = False  # its HTML reports opens and clicks
    engagement: EngagementCounts | None = None  # opens and clicks, when tracked
    unsubscribes: int | None = None  # people who left through its messages' links
    # WeChat readers: the send's mass-send jobs, with WeChat's own counts (none per reader).
    wechat_jobs: tuple[WechatJobView, ...] = ()
    # Feedback loop: soft bounces (temporary failures reported after a 250) leave the delivery
    # sent, so they are counted from the feedback messages; hard bounces and complaints are
    # delivery states and are in ``counts``.
    soft_bounces: int = 0

    @property
    def bounced(self) -> int:
        return self.counts.get(DeliveryState.BOUNCED.value, 0)

    @property
    def complained(self) -> int:
        return self.counts.get(DeliveryState.COMPLAINED.value, 0)

    @property
    def bounce_rate(self) -> float | None:
        return feedback_rate(self.counts, DeliveryState.BOUNCED)

    @property
    def complaint_rate(self) -> float | None:
        return feedback_rate(self.counts, DeliveryState.COMPLAINED)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def finished_deliveries(self) -> int:
        return sum(n for state, n in self.counts.items() if state in FINAL_DELIVERY_STATES)

    @property
    def audience_text(self) -> str:
        return self.audience.describe()

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "id": self.id,
            "state": self.state,
            "issue_id": self.issue_id,
            "variant": self.variant,
            "audience": self.audience.to_json(),
            "is_test": self.is_test,
            "scheduled_at": iso(self.scheduled_at),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "counts": self.counts,
            "possible_duplicates": self.possible_duplicates,
            **({"error": self.error} if self.error else {}),
            "tracking": self.tracking,
            **({"unsubscribes": self.unsubscribes} if self.unsubscribes is not None else {}),
            **({"engagement": asdict(self.engagement)} if self.engagement else {}),
            **({"wechat_jobs": [job.to_json() for job in self.wechat_jobs]}
               if self.wechat_jobs else {}),
            "feedback": {
                "bounced": self.bounced,
                "complained": self.complained,
                "soft_bounces": self.soft_bounces,
                "bounce_rate": self.bounce_rate,
                "complaint_rate": self.complaint_rate,
            },
        }


# States of a message the mail server accepted: what bounce and complaint rates are out of.
ACCEPTED_STATES = (DeliveryState.SENT, DeliveryState.BOUNCED, DeliveryState.COMPLAINED)


def feedback_rate(counts: dict[str, int], state: DeliveryState) -> float | None:
    """The share of accepted messages now in ``state`` (bounced, complained); None before any."""
    accepted = sum(counts.get(each.value, 0) for each in ACCEPTED_STATES)
    return counts.get(state.value, 0) / accepted if accepted else None


def _soft_bounces_of(session: Session, send_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(
        select(FeedbackMessage.send_id, func.count(func.distinct(FeedbackMessage.delivery_id)))
        .where(
            FeedbackMessage.send_id.in_(send_ids),
            FeedbackMessage.kind == FeedbackKind.SOFT_BOUNCE,
            FeedbackMessage.outcome == FeedbackOutcome.APPLIED,
        )
        .group_by(FeedbackMessage.send_id)
    )
    return {send_id: int(n) for send_id, n in rows if send_id is not None}


# Built once: the feedback loop reads the counts of each batch's sends.
_COUNTS = (
    select(SendCount.send_id, SendCount.state, func.sum(SendCount.n))
    .where(SendCount.send_id.in_(bindparam("b_send_ids", expanding=True)))
    .group_by(SendCount.send_id, SendCount.state)
)


def delivery_counts_of(session: Session, send_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    """Deliveries per state of each send, from the trigger-kept counters: a few rows per send,
    whatever the audience."""
    rows = session.connection().execute(_COUNTS, {"b_send_ids": list(send_ids)})
    found: dict[int, dict[str, int]] = {}
    for send_id, state, n in rows:
        if n:
            found.setdefault(send_id, {})[state] = int(n)
    return {
        send_id: {s.value: counts[s.value] for s in DeliveryState if s.value in counts}
        for send_id, counts in found.items()
    }


def _duplicates_of(session: Session, send_ids: Sequence[int]) -> dict[int, int]:
    rows = session.execute(
        select(Delivery.send_id, func.count())
        .where(
            Delivery.send_id.in_(send_ids),
            Delivery.possible_duplicate,
            Delivery.state == DeliveryState.SENT,
        )
        .group_by(Delivery.send_id)
    )
    return {send_id: int(n) for send_id, n in rows}


def _statuses(session: Session, sends: Sequence[tuple[Send, int]]) -> list[SendStatus]:
    ids = [send.id for send, _ in sends]
    counts, duplicates = delivery_counts_of(session, ids), _duplicates_of(session, ids)
    wechat = wechat_jobs_of(session, ids)
    soft_bounces = _soft_bounces_of(session, ids)
    return [
        SendStatus(
            id=send.id,
            state=send.state.value,
            issue_id=send.issue_id,
            issue_number=issue_number,
            variant=send.variant_label,
            audience=send.audience,
            is_test=send.is_test,
            scheduled_at=send.scheduled_at,
            started_at=send.started_at,
            finished_at=send.finished_at,
            counts=counts.get(send.id, {}),
            possible_duplicates=duplicates.get(send.id, 0),
            error=send.error,
            tracking=send.tracking,
            wechat_jobs=wechat.get(send.id, ()),
            soft_bounces=soft_bounces.get(send.id, 0),
        )
        for send, issue_number in sends
    ]


def _with_issue_number() -> Any:
    return select(Send, Issue.number).join(Issue, Issue.id == Send.issue_id)


def send_status(session: Session, send_id: int) -> SendStatus:
    row = session.execute(_with_issue_number().where(Send.id == send_id)).one_or_none()
    if row is None:
        raise NotFound(f"there is no send with ID {send_id}")
    status = _statuses(session, [(row[0], row[1])])[0]
    return replace(
        status,
        engagement=engagement_counts(session, send_id) if status.tracking else None,
        unsubscribes=unsubscribes_by_send(session, send_id),
    )


def list_sends(
    session: Session, *, before_id: int | None = None, limit: int = 20
) -> list[SendStatus]:
    """Sends newest first, ``limit`` at a time; the next page starts before the last id shown."""
    query = _with_issue_number()
    if before_id is not None:
        query = query.where(Send.id < before_id)
    rows = session.execute(query.order_by(Send.id.desc()).limit(limit)).all()
    return _statuses(session, [(row[0], row[1]) for row in rows])


@dataclass(frozen=True)
class DeliveryView:
    id: int
    address: str
    state: str
    attempts: int
    smtp_code: int | None
    detail: str | None
    sent_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "state": self.state,
            "attempts": self.attempts,
            "smtp_code": self.smtp_code,
            "detail": self.detail,
            "sent_at": self.sent_at.isoformat() if self.sent_at else None,
        }


def list_deliveries(
    session: Session,
    send_id: int,
    *,
    state: DeliveryState | None = None,
    after_id: int = 0,
    limit: int = 1000,
    address: str | None = None,
) -> list[DeliveryView]:
    """Who got what and why not, in id order; page with ``after_id``; ``address``: only the
    addresses containing it (case-insensitively)."""
    get_send(session, send_id)
    query = select(Delivery).where(Delivery.send_id == send_id, Delivery.id > after_id)
    if state is not None:
        query = query.where(Delivery.state == state)
    if address:
        query = query.where(func.lower(Delivery.address).contains(address.lower(), autoescape=True))
    rows = session.scalars(query.order_by(Delivery.id).limit(limit))
    return [_delivery_view(d) for d in rows]


# --- keyset pages for the staff API: each page one index range, at any depth ---------------------


@dataclass(frozen=True)
class DeliveryPage:
    rows: list[DeliveryView]
    # Where the next page starts: (id,) in id order, (address key, id) in address order; None at
    # the end.
    after: tuple[Any, ...] | None


def delivery_page(
    session: Session,
    send_id: int,
    *,
    state: DeliveryState | None = None,
    address_prefix: str | None = None,
    after: Sequence[Any] | None = None,
    limit: int = 50,
) -> DeliveryPage:
    """A send's deliveries in id order, or, searched by the start of the address (any case), in
    address order: ``ix_deliveries_send_address_key`` holds that order, so a page costs the
    same for a prefix that matches ten or a million rows."""
    get_send(session, send_id)
    conditions: list[Any] = [Delivery.send_id == send_id]
    if state is not None:
        conditions.append(Delivery.state == state)
    order: tuple[Any, ...] = (Delivery.id,)
    if address_prefix:
        key = prefix_key(func.lower(Delivery.address), session.get_bind().dialect.name)
        conditions.append(key.like(like_prefix(address_prefix.lower()), escape="\\"))
        order = (key, Delivery.id)
    if after is not None:
        conditions.append(tuple_(*order) > tuple_(*after))
    rows = session.execute(
        select(Delivery, *order).where(*conditions).order_by(*order).limit(limit + 1)
    ).all()
    views = [_delivery_view(row[0]) for row in rows[:limit]]
    return DeliveryPage(views, tuple(rows[limit - 1][1:]) if len(rows) > limit else None)


def _delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        d.id, d.address, d.state.value, d.attempts, d.smtp_code, d.last_error or d.smtp_response,
        d.sent_at,
    )
