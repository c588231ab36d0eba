"""A staff audience whose counts are not kept per list (a list and a tag), and counts made slow
on purpose: for the tests of counts finished after the page (distributor.count_budget)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text

from distributor.campaigns.schedule import audience_reach
from distributor.db import get_engine, transaction
from distributor.staff.models import Role
from subscribers.models import Subscriber, Tag, subscriber_tags
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.staff import add_staff

LIST, OTHER, TAG = "会员快讯", "青年", "工会"
AUDIENCE = Audience(lists=(LIST,), tags=(TAG,))  # not one list: counted over readers
PENDING_TEXT = "正在计算…"
ZONE = ZoneInfo("Asia/Shanghai")


def tagged_audience(postgres_url: str, sample_issue_path: Path) -> int:
    """An audience whose counts are not kept per list: 40 readers on one list, 30 on another,
    every third tagged, an editor, and the sample issue (its id); no count kept yet."""
    make_audience(postgres_url, LIST, 40)
    make_audience(postgres_url, OTHER, 30, prefix="young")
    with transaction(postgres_url) as session:
        tag_id = session.scalars(insert(Tag).returning(Tag.id), [{"name": TAG}]).one()
        ids = session.scalars(select(Subscriber.id).order_by(Subscriber.id)).all()
        session.execute(
            insert(subscriber_tags), [{"subscriber_id": i, "tag_id": tag_id} for i in ids[::3]]
        )
    add_staff(postgres_url, "editor", Role.EDITOR)
    return import_sample(postgres_url, sample_issue_path)


def forget_kept(url: str) -> None:
    with transaction(url) as session:
        session.execute(text("DELETE FROM kept_counts"))


def plain_readers(url: str, issue: int, audience: Audience) -> int:
    """The audience's readers counted afresh, without a budget or a kept count."""
    forget_kept(url)
    with transaction(url) as session:
        return audience_reach(session, issue_id=issue, audience=audience, variant=None).readers


@contextmanager
def slow_counts(url: str) -> Iterator[None]:
    """Every count reading the readers' tags waits (a lock held by the test) until the block
    ends: a count over a million readers, in miniature."""
    with get_engine(url).connect() as connection, connection.begin():
        connection.execute(text("LOCK TABLE subscriber_tags IN ACCESS EXCLUSIVE MODE"))
        yield


