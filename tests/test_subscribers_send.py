"""A reader who leaves the list a send is for, or chooses WeChat only, while it is going out,
gets nothing more from it by email; leaving some other list changes nothing. A real worker, Redis
and SMTP server, as in test_send_e2e."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert, select, update

from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from subscribers.models import (
    ChannelPreference,
    List,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample, wait_until_done
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow


def also_on(url: str, emails: list[str], list_name: str) -> None:
    with transaction(url) as session:
        mailing_list = List(name=list_name)
        session.add(mailing_list)
        session.flush()
        ids = session.scalars(select(Subscriber.id).where(Subscriber.email.in_(emails)))
        session.execute(
            insert(Subscription),
            [
                {"subscriber_id": i, "list_id": mailing_list.id, "status": "active"}
                for i in ids
            ],
        )


def leave(url: str, emails: list[str], list_name: str) -> None:
    with transaction(url) as session:
        list_id = session.scalar(select(List.id).where(List.name == list_name))
        leaving = select(Subscriber.id).where(Subscriber.email.in_(emails))
        session.execute(
            update(Subscription)
            .where(Subscription.list_id == list_id, Subscription.subscriber_id.in_(leaving))
            .values(status=SubscriptionStatus.UNSUBSCRIBED)
        )


def switch_to_wechat(url: str, emails: list[str]) -> None:
    with transaction(url) as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.email.in_(emails))
            # A follower now: WeChat reaches them, so email stops (without an OpenID they
            # would get email instead, test_left_out's fallback).
            .values(channel=ChannelPreference.WECHAT, openid="o-follower")
        )


def test_leaving_the_targeted_list_mid_send_stops_only_that_readers_messages(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    staying = make_audience(sqlite_url, "members", 150)
    # Later in id order, so still unsent when they leave: on an untargeted list too, or on the
    # other list the send is for.
    leaving = make_audience(sqlite_url, "members", 40, prefix="leaver")
    on_youth = make_audience(sqlite_url, "members", 10, prefix="young")
    switching = make_audience(sqlite_url, "members", 10, prefix="switcher")
    also_on(sqlite_url, leaving, "news")
    also_on(sqlite_url, on_youth, "youth")
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.02)) as smtp:
        env = engine_env(sqlite_url, redis_server.url, smtp, DISPATCH_SLOTS="1")
        send_id = created_by_cli(env, issue_id, "--list", "youth")
        with running_worker(env, tmp_path):
            smtp.handler.wait_for(30, timeout=60)
            leave(sqlite_url, leaving + on_youth, "members")
            switch_to_wechat(sqlite_url, switching)
            status = wait_until_done(sqlite_url, send_id, timeout=60)
        received = smtp.handler.counts()
    assert not set(leaving + switching) & set(received)
    assert set(staying + on_youth) <= set(received)
    assert status.counts == {"sent": 160, "suppressed": 50}
    assert set(received.values()) == {1}
