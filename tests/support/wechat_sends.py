"""WeChat sends for the tests: followers synced onto a list, a send to them started and planned,
its jobs and deliveries read back, and an issue too long for one WeChat article."""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from distributor.campaigns.schedule import create_send
from distributor.channels.wechat.client import WechatClient
from distributor.db import get_engine, session_factory, transaction, utcnow
from distributor.devservers.wechat_sandbox import SandboxServer
from distributor.issues.document import Article, Block, IssueDocument
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import Delivery
from distributor.sending.planner import plan_send
from distributor.wechat.followers import sync_followers
from distributor.wechat.models import WechatJob
from subscribers.query import Audience
from tests.support.wechat import settings_for

ZONE = ZoneInfo("Asia/Shanghai")
LIST = "微信读者"


def synced(
    server: SandboxServer, url: str, followers: int, *, newcomers: int = 1
) -> WechatClient:
    """``followers`` synced onto the list, and ``newcomers`` who followed after the sync (so a
    send to the list names OpenIDs, not all followers)."""
    server.sandbox.add_followers(followers)
    client = WechatClient.from_settings(settings_for(server, url))
    result = sync_followers(get_engine(url), client, LIST)
    assert result.followers == followers
    server.sandbox.add_followers(newcomers)
    return client


def started_wechat_send(url: str, issue_id: int, account: str = "service") -> int:
    """A send by preference (email and WeChat readers) to the list, started and planned."""
    with transaction(url) as session:
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=None,
            at=None,
            now=utcnow(),
            zone=ZONE,
            wechat_account=account,
        ).id
    with transaction(url) as session:
        start_due_sends(session, utcnow())
    plan_send(
        session_factory(url), send_id, batch_size=5_000, lease=timedelta(minutes=1), wechat=True
    )
    return send_id


def jobs_of(url: str, send_id: int) -> list[WechatJob]:
    with transaction(url) as session:
        return list(
            session.scalars(
                select(WechatJob).where(WechatJob.send_id == send_id).order_by(WechatJob.batch)
            )
        )


def wechat_deliveries(url: str, send_id: int) -> dict[str, int]:
    with transaction(url) as session:
        rows = session.execute(
            select(Delivery.state, func.count())
            .where(Delivery.send_id == send_id, Delivery.channel == "wechat")
            .group_by(Delivery.state)
        )
        return {str(state): int(n) for state, n in rows}


def long_issue(articles: int, paragraphs: int) -> IssueDocument:
    """An issue of ``articles`` articles of ``paragraphs`` paragraphs of 300 characters each."""
    return IssueDocument(
        title="杭州工运",
        number=500,
        date=date(2026, 11, 28),
        articles=[
            Article(
                headline=f"第{n}篇 长文",
                blocks=[Block("paragraph", f"{n}段{p}" + "劳" * 300) for p in range(paragraphs)],
            )
            for n in range(1, articles + 1)
        ],
    )
