"""A send as staff see it: its deliveries per state, and everything else known about it from
every room: its WeChat jobs, the opens, clicks and unsubscribes of its readers, its bounces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.bounces import FeedbackKind
from distributor.bounces.models import FeedbackMessage, FeedbackOutcome
from distributor.db import utcnow
from distributor.errors import NotFound
from distributor.issues.models import Issue
from distributor.readers.arms import AbStatus, ab_status
from distributor.readers.engagement import EngagementCounts, engagement_counts
from distributor.readers.unsubscribes import unsubscribes_by_send
from distributor.sending.models import FINAL_DELIVERY_STATES, Send
from distributor.sending.queries import delivery_counts_of, duplicates_of, feedback_rate
from distributor.sending.refusals import worst_refusal
from distributor.sending.windows import Windows
from distributor.vocabulary import DeliveryState, SendState
from distributor.wechat.status import WechatJobView, wechat_jobs_of
from subscribers.query import Audience


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
    # The receiving domain refusing us most, and why, in one line (one send's status only).
    refused_by: str | None = None
    windows: tuple[str, ...] = ()  # sending windows, in ``window_zone``; () = any time
    window_zone: str | None = None
    opens_at: datetime | None = None  # running outside its windows: when the next one opens
    commercial: bool = False  # advertising, marked as such
    ab: AbStatus | None = None  # an A/B subject test: its arms and decision (one send's status)

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
            **({"refused_by": self.refused_by} if self.refused_by else {}),
            "tracking": self.tracking,
            **({"windows": list(self.windows), "window_zone": self.window_zone}
               if self.windows else {}),
            **({"opens_at": iso(self.opens_at)} if self.opens_at else {}),
            "commercial": self.commercial,
            **({"unsubscribes": self.unsubscribes} if self.unsubscribes is not None else {}),
            **({"engagement": self.engagement.to_json()} if self.engagement else {}),
            **({"ab_test": self.ab.to_json()} if self.ab else {}),
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


def _statuses(session: Session, sends: Sequence[tuple[Send, int]]) -> list[SendStatus]:
    ids = [send.id for send, _ in sends]
    counts, duplicates = delivery_counts_of(session, ids), duplicates_of(session, ids)
    wechat = wechat_jobs_of(session, ids)
    soft_bounces = _soft_bounces_of(session, ids)
    now = utcnow()
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
            windows=tuple(send.windows or ()),
            window_zone=send.window_zone,
            opens_at=_opens_at(send, now),
            commercial=send.commercial,
        )
        for send, issue_number in sends
    ]


def _opens_at(send: Send, now: datetime) -> datetime | None:
    """When a running send waiting outside its windows goes on."""
    windows = Windows.of(send.windows, send.window_zone)
    if send.state is not SendState.RUNNING or windows is None or windows.open_at(now):
        return None
    return windows.next_opening(now)


def _with_issue_number() -> Any:
    return select(Send, Issue.number).join(Issue, Issue.id == Send.issue_id)


def send_status(session: Session, send_id: int, *, engagement: bool = True) -> SendStatus:
    """One send's status; ``engagement=False`` leaves its opens and clicks uncounted (None):
    counting the readers among a million recipients' opens is the dearest part, and a page that
    does not show them need not pay for it."""
    row = session.execute(_with_issue_number().where(Send.id == send_id)).one_or_none()
    if row is None:
        raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
    status = _statuses(session, [(row[0], row[1])])[0]
    return replace(
        status,
        engagement=engagement_counts(session, send_id) if status.tracking and engagement else None,
        unsubscribes=unsubscribes_by_send(session, send_id),
        refused_by=worst_refusal(session, send_id),
        ab=ab_status(session, row[0]),
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
