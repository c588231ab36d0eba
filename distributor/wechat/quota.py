"""WeChat's mass-send quotas, checked when a send is scheduled rather than met at WeChat (45028).

A subscription account may mass-send once a day; a service account's followers receive at most
4 mass messages a calendar month (WeChat filters the excess readers out silently). Both count in
Beijing time, where WeChat's days and months turn. The service account's cap is per reader; it
is counted here per account (every WeChat send of ours goes to the followers on our lists), which
errs on the side of refusing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Exists, exists, select
from sqlalchemy.orm import Session

from distributor.errors import WechatQuotaExceeded
from distributor.sending.models import Send
from distributor.sending.planner import planned_channels
from distributor.vocabulary import SendState
from distributor.wechat.models import WechatJob, WechatJobState
from subscribers.query import count_audience

BEIJING = ZoneInfo("Asia/Shanghai")
SERVICE_MONTHLY = 4
COUNTED_STATES = (SendState.SCHEDULED, SendState.RUNNING, SendState.PAUSED, SendState.DONE)


def reaches_wechat(session: Session, send: Send) -> bool:
    """The send plans WeChat deliveries, and someone in its audience reads on WeChat now."""
    if "wechat" not in planned_channels(send, wechat=True):
        return False
    return count_audience(session, replace(send.audience, channel="wechat")) > 0


def _made_jobs(send_id: int) -> Exists:
    return exists().where(
        WechatJob.send_id == send_id,
        WechatJob.state.in_(
            [WechatJobState.ACCEPTED, WechatJobState.SUCCEEDED, WechatJobState.WAITING]
        ),
    )


def wechat_send_times(session: Session, *, other_than: int | None) -> list[tuple[int, datetime]]:
    """When each other send went (or goes) to WeChat readers: its start, else its time."""
    sends = session.scalars(
        select(Send).where(
            Send.state.in_(COUNTED_STATES),
            ~Send.is_test,
            Send.id != (other_than or 0),
        )
    ).all()
    times = []
    for send in sends:
        made = session.scalar(select(_made_jobs(send.id)))
        if not made and (send.state is SendState.DONE or not reaches_wechat(session, send)):
            continue
        moment = send.started_at or send.scheduled_at
        if moment is not None:
            times.append((send.id, moment))
    return times


def _next_day(moment: datetime) -> datetime:
    local = moment.astimezone(BEIJING)
    return (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


def _next_month(moment: datetime) -> datetime:
    local = moment.astimezone(BEIJING)
    first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first + timedelta(days=32)).replace(day=1)


def check_wechat_quota(
    session: Session, send: Send, at: datetime, account_type: str, zone: ZoneInfo
) -> None:
    """Refuse a send that would break the account's quota at ``at``, saying when it is possible."""
    if not reaches_wechat(session, send):
        return
    others = wechat_send_times(session, other_than=send.id)
    day = at.astimezone(BEIJING).date()
    month = (day.year, day.month)
    if account_type == "service":
        same_month = [
            send_id
            for send_id, moment in others
            if (moment.astimezone(BEIJING).year, moment.astimezone(BEIJING).month) == month
        ]
        if len(same_month) >= SERVICE_MONTHLY:
            raise WechatQuotaExceeded(
                f"the WeChat service account's followers receive at most {SERVICE_MONTHLY} mass "
                f"messages a month and sends {', '.join(map(str, same_month))} already go to "
                f"them in {day:%Y-%m} (Beijing time): the next is possible from "
                f"{_when(_next_month(at), zone)}",
                code="wechat.quota_month",
                most=SERVICE_MONTHLY,
                sends=", ".join(map(str, same_month)),
                month=f"{day:%Y-%m}",
                next=_when(_next_month(at), zone),
            )
        return
    same_day = [send_id for send_id, moment in others if moment.astimezone(BEIJING).date() == day]
    if same_day:
        raise WechatQuotaExceeded(
            f"the WeChat subscription account may mass-send once a day and send {same_day[0]} "
            f"already goes to WeChat readers on {day:%Y-%m-%d} (Beijing time): the next is "
            f"possible from {_when(_next_day(at), zone)}",
            code="wechat.quota_day",
            send=same_day[0],
            day=f"{day:%Y-%m-%d}",
            next=_when(_next_day(at), zone),
        )


def _when(moment: datetime, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    beijing = moment.astimezone(BEIJING)
    text = f"{beijing:%Y-%m-%d %H:%M} Beijing time"
    return text if zone.key == BEIJING.key else f"{text} ({local:%a %Y-%m-%d %H:%M} {zone.key})"
