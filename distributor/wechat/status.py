"""How a send's WeChat jobs look to staff: each job's state and WeChat's own counts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryChannel
from distributor.wechat.models import WechatJob


@dataclass(frozen=True)
class WechatJobView:
    batch: int
    state: str
    openids: int  # followers the job named
    calls: int
    msg_id: str | None
    wechat_status: str | None
    total: int | None  # WeChat's counts (MASSSENDJOBFINISH): None until the event comes
    filtered: int | None
    sent: int | None
    errors: int | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


def wechat_jobs_of(
    session: Session, send_ids: Sequence[int]
) -> dict[int, tuple[WechatJobView, ...]]:
    jobs = session.scalars(
        select(WechatJob).where(WechatJob.send_id.in_(send_ids)).order_by(WechatJob.batch)
    )
    found: dict[int, list[WechatJobView]] = {}
    for job in jobs:
        found.setdefault(job.send_id, []).append(
            WechatJobView(
                batch=job.batch,
                state=job.state.value,
                openids=job.openids,
                calls=job.calls,
                msg_id=job.msg_id,
                wechat_status=job.wechat_status,
                total=job.total,
                filtered=job.filtered,
                sent=job.sent,
                errors=job.errors,
                error=job.error,
            )
        )
    return {send_id: tuple(views) for send_id, views in found.items()}


def wechat_delivery_counts(session: Session, send_id: int) -> dict[str, int]:
    """The send's WeChat deliveries per state (the email ones are the rest of the send's counts).
    Counted from its WeChat rows, so read once for a status, not on every refresh of a watch."""
    rows = session.execute(
        select(Delivery.state, func.count())
        .where(Delivery.send_id == send_id, Delivery.channel == DeliveryChannel.WECHAT)
        .group_by(Delivery.state)
    )
    return {str(state): int(n) for state, n in rows}
