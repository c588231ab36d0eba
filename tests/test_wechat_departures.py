"""A WeChat reader who leaves after the send was planned, before their job goes to WeChat, is not
in that job and ends suppressed; one whose job is already in WeChat's hands stays in it.

Leaving is each way a reader can: the unsubscribe page, email only on the preferences page, leaving
the send's list, and unfollowing the account (WeChat's ``unsubscribe`` event, posted by the
sandbox to the web server's callback URL)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, update

from distributor.campaigns.status import send_status
from distributor.db import session_factory, transaction, utcnow
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.web_server import serving
from distributor.devservers.wechat_sandbox import Fault, SandboxConfig, SandboxServer
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from distributor.web.app import create_app
from distributor.web.wechat_callback import CALLBACK_PATH
from distributor.wechat.jobs import ALL_FOLLOWERS, BY_OPENIDS, plan_jobs, send_wechat
from distributor.wechat.models import WechatJob, WechatJobState
from subscribers.models import ChannelPreference, Subscriber
from subscribers.public import leave
from subscribers.store import set_preferences
from tests.support.polling import wait_until
from tests.support.sending import engine_env, import_sample, wait_until_done
from tests.support.smtp import SmtpServer
from tests.support.web import web_settings
from tests.support.wechat import settings_for, wechat_env
from tests.support.wechat_sends import jobs_of, started_wechat_send, synced, wechat_deliveries

pytestmark = pytest.mark.slow

CALLBACK_TOKEN = "callback-token-departures"


def readers_of(url: str, job: WechatJob) -> list[tuple[int, str]]:
    """(subscriber ID, OpenID) of the deliveries a job was planned with, in order."""
    with transaction(url) as session:
        rows = session.execute(
            select(Delivery.subscriber_id, Delivery.address)
            .where(
                Delivery.send_id == job.send_id,
                Delivery.channel == "wechat",
                Delivery.id.between(job.first_delivery_id, job.last_delivery_id),
            )
            .order_by(Delivery.id)
        )
        return [(int(subscriber_id), address) for subscriber_id, address in rows]


def test_readers_who_leave_before_their_job_goes_are_not_in_it(
    database_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    port = free_port()  # the web server's: WeChat posts its events there
    config = SandboxConfig(
        job_finish_delay=0.2,
        clientmsgid_retry_window=0.0,
        callback_url=f"http://127.0.0.1:{port}{CALLBACK_PATH}",
        callback_token=CALLBACK_TOKEN,
    )
    web = create_app(web_settings(database_url, WECHAT_CALLBACK_TOKEN=CALLBACK_TOKEN))
    with SandboxServer(config) as wechat, SmtpServer() as smtp, serving(web, port):
        synced(wechat, database_url, 10_004)  # two jobs of 5,002
        issue_id = import_sample(database_url, sample_issue_path)
        # The first job is made at once and answered 8 s later: the second waits meanwhile.
        wechat.sandbox.inject("message/mass/send", Fault(delay=8.0))
        send_id = started_wechat_send(database_url, issue_id)
        env = engine_env(
            database_url,
            redis_server.url,
            smtp,
            **wechat_env(wechat),
        )
        worker = WorkerProcess(env, tmp_path, concurrency=1)
        worker.start()
        try:
            first, second = wait_until(
                lambda: jobs_of(database_url, send_id),
                lambda jobs: len(jobs) == 2 and jobs[0].calls == 1 and len(wechat.sandbox.jobs),
                timeout=120,
                what="the first job in WeChat's hands",
            )
            assert (second.state, second.calls) == (WechatJobState.WAITING, 0)
            in_first, in_second = readers_of(database_url, first), readers_of(database_url, second)
            too_late, unsubscribed, emailed, unfollowed, off_list = (
                in_first[10],
                in_second[0],
                in_second[1],
                in_second[2],
                in_second[-1],
            )
            wechat.sandbox.unfollow(unfollowed[1])  # its event, posted to the web server
            attempts = wechat.sandbox.callback_attempts  # and the first job's end, by now
            assert [a.status_code for a in attempts if a.msg_id == 0] == [200]
            with transaction(database_url) as session:
                for subscriber_id, _ in (too_late, unsubscribed):
                    subscriber = session.get(Subscriber, subscriber_id)
                    assert subscriber is not None
                    leave(session, subscriber)  # the web unsubscribe page's service
                reader = session.get(Subscriber, emailed[0])
                assert reader is not None
                set_preferences(reader, channel=ChannelPreference.EMAIL)  # the preferences page
                leaver = session.get(Subscriber, off_list[0])
                assert leaver is not None
                [subscription] = leaver.subscriptions
                assert leave(session, leaver, subscription.list_id)  # left the send's one list
            status = wait_until_done(database_url, send_id, timeout=120)
        finally:
            worker.stop()
    made = sorted(wechat.sandbox.jobs.values(), key=lambda job: job.created_at)
    assert len(made) == 2, "one WeChat job per planned job, no more"
    assert made[0].audience == [openid for _, openid in in_first]  # already in WeChat's hands
    left = {openid for _, openid in (unsubscribed, emailed, unfollowed, off_list)}
    assert made[1].audience == [openid for _, openid in in_second if openid not in left]
    jobs = jobs_of(database_url, send_id)
    assert [(job.openids, job.calls) for job in jobs] == [(5_002, 1), (4_998, 1)]
    assert wechat_deliveries(database_url, send_id) == {"sent": 10_000, "suppressed": 4}
    assert status.counts == {"sent": 10_000, "suppressed": 4}
    with transaction(database_url) as session:
        details = dict(
            session.execute(
                select(Delivery.address, Delivery.last_error).where(Delivery.send_id == send_id)
            ).all()
        )
        assert len(send_status(session, send_id).wechat_jobs) == 2
    assert {details[openid] for openid in left} == {"unsubscribed or suppressed before sending"}


def test_a_job_left_with_one_reader_is_skipped_and_that_reader_told_why(
    database_url: str, sample_issue_path: Path
) -> None:
    """WeChat mass-sends to two followers or more: a job whose other readers all left cannot go."""
    config = SandboxConfig(job_finish_delay=0.2, clientmsgid_retry_window=0.0)
    with SandboxServer(config) as wechat:
        client = synced(wechat, database_url, 3)
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = started_wechat_send(database_url, issue_id)
        factory = session_factory(database_url)
        with factory.begin() as session:
            assert plan_jobs(session, send_id, BY_OPENIDS) == 1
            session.execute(  # two of the three unsubscribe after the send was planned
                update(Subscriber)
                .where(Subscriber.id.in_(select(Delivery.subscriber_id).limit(2)))
                .values(status="unsubscribed", updated_at=utcnow())
            )
        report = send_wechat(factory, client, send_id, settings_for(wechat, database_url))
    assert report.accepted == [] and wechat.sandbox.jobs == {}
    [job] = jobs_of(database_url, send_id)
    assert (job.state, job.calls, job.openids) == (WechatJobState.SKIPPED, 0, 1)
    assert job.error is not None and job.error.startswith("only 1 of its readers did not leave")
    assert wechat_deliveries(database_url, send_id) == {"suppressed": 2, "failed": 1}
    with transaction(database_url) as session:
        error = session.scalars(
            select(Delivery.last_error).where(Delivery.state == DeliveryState.FAILED)
        ).one()
    assert error is not None and "mass-sends to two followers or more" in error


def test_a_job_to_all_followers_is_replaced_by_one_naming_those_still_there(
    database_url: str, sample_issue_path: Path
) -> None:
    """Sent to all, it would reach a reader who unsubscribed here but still follows the account."""
    config = SandboxConfig(job_finish_delay=0.2, clientmsgid_retry_window=0.0)
    with SandboxServer(config) as wechat:
        client = synced(wechat, database_url, 5, newcomers=0)
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = started_wechat_send(database_url, issue_id)
        factory = session_factory(database_url)
        with factory.begin() as session:
            assert plan_jobs(session, send_id, ALL_FOLLOWERS) == 1
            gone, openid = session.execute(
                select(Delivery.subscriber_id, Delivery.address)
                .where(Delivery.send_id == send_id)
                .order_by(Delivery.id)
                .limit(1)
            ).one()
            subscriber = session.get(Subscriber, gone)
            assert subscriber is not None and leave(session, subscriber)
        settings = settings_for(wechat, database_url)
        first = send_wechat(factory, client, send_id, settings)
        second = send_wechat(factory, client, send_id, settings)
    assert (first.accepted, second.accepted) == ([], [2])
    jobs = jobs_of(database_url, send_id)
    assert [(job.batch, job.state, job.target, job.calls) for job in jobs] == [
        (1, WechatJobState.SKIPPED, "all", 0),
        (2, WechatJobState.ACCEPTED, "openids", 1),
    ]
    assert jobs[0].error == (
        "1 of its readers left before it went: replaced by job 2, naming the others"
    )
    [made] = wechat.sandbox.jobs.values()
    assert not made.to_all and sorted(made.audience) == sorted(
        each for each in wechat.sandbox.followers if each != openid
    )
    assert "message/mass/sendall" not in wechat.sandbox.calls
    assert len(wechat.sandbox.drafts) == 1  # the skipped job's draft went with its replacement
    assert wechat_deliveries(database_url, send_id) == {"sent": 4, "suppressed": 1}
