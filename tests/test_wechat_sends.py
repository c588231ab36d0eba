"""A send's WeChat readers: followers synced, jobs of at most 10,000 with their own clientmsgid,
retries that never make a second job, WeChat's result by callback or by asking, the quotas."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from distributor.campaigns.schedule import create_send, schedule_send
from distributor.campaigns.status import send_status
from distributor.channels.wechat.client import WechatClient
from distributor.cli.context import AppContext
from distributor.cli.send_commands import send
from distributor.db import get_engine, session_factory, transaction, utcnow
from distributor.devservers.wechat_sandbox import Fault, SandboxConfig, SandboxServer
from distributor.errors import WechatQuotaExceeded
from distributor.issues.store import save_issue
from distributor.sending.lifecycle import finish_complete_sends, start_due_sends
from distributor.sending.models import Delivery
from distributor.sending.planner import plan_send
from distributor.web.app import create_app
from distributor.wechat.followers import follower_key, sync_followers
from distributor.wechat.jobs import (
    POLL_AFTER,
    poll_overdue,
    send_wechat,
    sends_with_wechat_work,
)
from distributor.wechat.models import WechatJobState
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.query import Audience
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import import_sample
from tests.support.web import serving, web_settings
from tests.support.wechat import settings_for
from tests.support.wechat_sends import (
    LIST,
    ZONE,
    jobs_of,
    long_issue,
    started_wechat_send,
    synced,
    wechat_deliveries,
)

CALLBACK_TOKEN = "callback-token-0123"


@pytest.fixture
def wechat() -> Iterator[SandboxServer]:
    # Retries in these tests come within seconds: WeChat's "too fast" (45066) window is off.
    config = SandboxConfig(job_finish_delay=0.2, clientmsgid_retry_window=0.0)
    with SandboxServer(config) as server:
        yield server


def test_25000_followers_synced_and_sent_in_3_jobs_with_3_clientmsgids(
    wechat: SandboxServer, sqlite_url: str, sample_issue_path: Path
) -> None:
    """On SQLite only: the split into jobs is the same on either database, and 25,000 deliveries
    take long; the other tests here run both."""
    database_url = sqlite_url
    client = synced(wechat, database_url, 25_000)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_wechat_send(database_url, issue_id, account="service")

    report = send_wechat(
        session_factory(database_url), client, send_id, settings_for(wechat, database_url)
    )

    assert report.accepted == [1, 2, 3] and report.postponed is None
    jobs = jobs_of(database_url, send_id)
    assert [job.openids for job in jobs] == [8_334, 8_333, 8_333]
    assert len({job.clientmsgid for job in jobs}) == 3
    assert all(job.state is WechatJobState.ACCEPTED and job.calls == 1 for job in jobs)
    made = wechat.sandbox.jobs.values()
    assert sorted(len(job.audience) for job in made) == [8_333, 8_333, 8_334]
    assert {str(job.msg_id) for job in made} == {job.msg_id for job in jobs}
    assert len(set().union(*(job.audience for job in made))) == 25_000  # each follower once
    assert wechat_deliveries(database_url, send_id) == {"sent": 25_000}
    with transaction(database_url) as session:
        detail = session.scalars(
            select(Delivery.smtp_response).where(Delivery.channel == "wechat").limit(1)
        ).one()
    assert detail is not None and detail.startswith("accepted by WeChat in job ")

    # No callback URL here: the fallback asks WeChat (mass/get) once the result is overdue.
    wait_until(
        lambda: [job.status for job in wechat.sandbox.jobs.values()],
        lambda states: set(states) == {"SEND_SUCCESS"},
        timeout=10,
        what="the sandbox's jobs finished",
    )
    later = utcnow() + POLL_AFTER + timedelta(seconds=1)
    with transaction(database_url) as session:
        assert finish_complete_sends(session, utcnow()) == [send_id]  # every reader accounted
    with transaction(database_url) as session:
        assert sends_with_wechat_work(session, utcnow()) == []  # the callback may still come
        assert sends_with_wechat_work(session, later) == [send_id]  # done, but asked about
    assert poll_overdue(session_factory(database_url), client, send_id, later) == 3
    with transaction(database_url) as session:
        jobs_seen = send_status(session, send_id).wechat_jobs
    assert [job.state for job in jobs_seen] == ["succeeded"] * 3


def test_followers_sync_is_idempotent_and_marks_those_who_left(
    wechat: SandboxServer, database_url: str
) -> None:
    client = synced(wechat, database_url, 5, newcomers=0)
    gone = wechat.sandbox.followers.pop()
    del wechat.sandbox.follower_index[gone]
    again = sync_followers(get_engine(database_url), client, LIST)
    assert (again.followers, again.left) == (4, 1)
    with transaction(database_url) as session:
        rows = dict(session.execute(select(Subscriber.openid, Subscriber.status)).all())
        keys = set(session.scalars(select(Subscriber.email_key)))
    assert len(rows) == 5  # nobody twice
    assert rows[gone] is SubscriberStatus.UNSUBSCRIBED
    assert sum(status is SubscriberStatus.ACTIVE for status in rows.values()) == 4
    assert follower_key(gone) in keys and follower_key(gone).endswith("@wechat.invalid")
    # Coming back does not lift suppression: only the person's own confirmation does.
    wechat.sandbox.followers.append(gone)
    wechat.sandbox.follower_index[gone] = len(wechat.sandbox.followers) - 1
    sync_followers(get_engine(database_url), client, LIST)
    with transaction(database_url) as session:
        status = session.scalar(select(Subscriber.status).where(Subscriber.openid == gone))
    assert status is SubscriberStatus.UNSUBSCRIBED


def test_an_answer_that_never_comes_then_a_retry_makes_no_second_job(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path
) -> None:
    synced(wechat, database_url, 6)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_wechat_send(database_url, issue_id)
    settings = settings_for(wechat, database_url)
    factory = session_factory(database_url)
    # WeChat makes the job, then its answer is later than the client waits.
    wechat.sandbox.inject("message/mass/send", Fault(delay=3.0))
    with WechatClient.from_settings(settings, timeout=1.0) as impatient:
        first = send_wechat(factory, impatient, send_id, settings)
    assert first.accepted == [] and first.postponed and "did not answer" in first.postponed
    assert len(wechat.sandbox.jobs) == 1
    [job] = jobs_of(database_url, send_id)
    assert (job.state, job.calls, job.msg_id) == (WechatJobState.WAITING, 1, None)
    assert wechat_deliveries(database_url, send_id) == {"pending": 6}

    with WechatClient.from_settings(settings) as client:
        second = send_wechat(factory, client, send_id, settings)

    assert second.accepted == [1]
    assert len(wechat.sandbox.jobs) == 1  # WeChat answered 45065 with the job it had made
    [job] = jobs_of(database_url, send_id)
    [made] = wechat.sandbox.jobs.values()
    assert (job.state, job.calls, job.msg_id) == (WechatJobState.ACCEPTED, 2, str(made.msg_id))
    assert wechat_deliveries(database_url, send_id) == {"sent": 6}


def test_the_callback_records_wechat_counts_and_refuses_bad_signatures_and_entities(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path
) -> None:
    client = synced(wechat, database_url, 4)
    issue_id = import_sample(database_url, sample_issue_path)
    send_id = started_wechat_send(database_url, issue_id)
    app = create_app(web_settings(database_url, WECHAT_CALLBACK_TOKEN=CALLBACK_TOKEN))
    with serving(app) as base:
        endpoint = f"{base}/wechat/callback"
        wechat.sandbox.config.callback_url = endpoint
        wechat.sandbox.config.callback_token = CALLBACK_TOKEN

        timestamp, nonce = str(int(time.time())), "n0nce"
        good = hashlib.sha1("".join(sorted([CALLBACK_TOKEN, timestamp, nonce])).encode())
        signed = {"signature": good.hexdigest(), "timestamp": timestamp, "nonce": nonce}
        echo = httpx.get(endpoint, params={**signed, "echostr": "hello-wechat"})
        assert (echo.status_code, echo.text) == (200, "hello-wechat")
        forged = httpx.get(endpoint, params={**signed, "signature": "0" * 40, "echostr": "x"})
        assert forged.status_code == 403 and "x" not in forged.text

        settings = settings_for(wechat, database_url)
        send_wechat(session_factory(database_url), client, send_id, settings)
        [job] = jobs_of(database_url, send_id)
        bomb = (
            b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<xml><Event>MASSSENDJOBFINISH</Event><MsgID>" + str(job.msg_id).encode()
            + b"</MsgID><Status>&b;</Status></xml>"
        )
        refused = httpx.post(endpoint, params=signed, content=bomb)
        assert refused.status_code == 400
        unsigned = httpx.post(endpoint, params={**signed, "signature": "f" * 40}, content=b"<xml/>")
        assert unsigned.status_code == 403

        finished = wait_until(
            lambda: jobs_of(database_url, send_id)[0],
            lambda job: job.state is not WechatJobState.ACCEPTED,
            timeout=15,
            what="the sandbox's MASSSENDJOBFINISH recorded",
        )
    assert finished.state is WechatJobState.SUCCEEDED
    assert finished.wechat_status == "send success"
    assert (finished.total, finished.filtered, finished.sent, finished.errors) == (4, 4, 4, 0)
    attempts = wait_until(  # noted by the sandbox once our answer is back
        lambda: list(wechat.sandbox.callback_attempts),
        bool,
        timeout=15,
        what="the sandbox's note of its callback attempt",
    )
    assert [attempt.status_code for attempt in attempts] == [200]

    app_context = AppContext(settings_for(wechat, database_url))
    shown = CliRunner().invoke(send, ["status", str(send_id)], obj=app_context)
    assert shown.exit_code == 0, shown.output
    assert "WeChat (counts as WeChat reports them)" in shown.output
    # Email and WeChat messages side by side, then in all: these readers are all on WeChat.
    assert re.search(r"│ sent +│ [^│]+│ +0 │ +4 │ +4 │", shown.output), shown.output
    [row] = [line for line in shown.output.splitlines() if f"msg_id {finished.msg_id}" in line]
    assert re.search(r"succeeded\W+4\W+send success\W+4\W+4\W+4\W+0", row), row
    as_json = CliRunner().invoke(send, ["status", str(send_id), "--json"], obj=app_context)
    [job_json] = json.loads(as_json.output)["wechat_jobs"]
    assert (job_json["state"], job_json["sent"], job_json["errors"]) == ("succeeded", 4, 0)


def test_a_second_send_the_same_day_is_refused_at_scheduling_with_the_next_time(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path
) -> None:
    synced(wechat, database_url, 3)
    issue_id = import_sample(database_url, sample_issue_path)
    started_wechat_send(database_url, issue_id, account="subscription")
    now = utcnow()
    with pytest.raises(WechatQuotaExceeded) as refused, transaction(database_url) as session:
        create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=None,
            at=None,  # now: the same Beijing day as the first
            now=now,
            zone=ZONE,
            wechat_account="subscription",
        )
    message = refused.value.message
    assert "once a day" in message
    tomorrow = (now.astimezone(ZONE) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert f"the next is possible from {tomorrow} 00:00 Beijing time" in message
    # Another day is fine; and a send with no WeChat readers is never counted.
    with transaction(database_url) as session:
        create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=None,
            at=now + timedelta(days=1, hours=1),
            now=now,
            zone=ZONE,
            wechat_account="subscription",
        )


def test_without_wechat_set_up_a_send_by_preference_plans_email_only(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path
) -> None:
    synced(wechat, database_url, 3)
    emails = make_audience(database_url, LIST, 2)
    issue_id = import_sample(database_url, sample_issue_path)
    with transaction(database_url) as session:
        send_id = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=None,
            at=None,
            now=utcnow(),
            zone=ZONE,
        ).id
        assert send_status(session, send_id).state == "scheduled"
    with transaction(database_url) as session:
        start_due_sends(session, utcnow())
    plan_send(session_factory(database_url), send_id, batch_size=100, lease=timedelta(minutes=1))
    with transaction(database_url) as session:
        planned = session.execute(select(Delivery.channel, Delivery.address)).all()
    assert sorted(address for _, address in planned) == emails
    assert {str(channel) for channel, _ in planned} == {"email"}


def test_a_send_to_every_follower_is_one_send_to_all(
    database_url: str, sample_issue_path: Path
) -> None:
    config = SandboxConfig(job_finish_delay=0.2, account_type="subscription")
    with SandboxServer(config) as server:
        client = synced(server, database_url, 12, newcomers=0)
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = started_wechat_send(database_url, issue_id, account="subscription")
        report = send_wechat(
            session_factory(database_url), client, send_id, settings_for(server, database_url)
        )
        assert report.accepted == [1]
        [made] = server.sandbox.jobs.values()
        assert made.to_all and len(made.audience) == 12  # is_to_all: into the history list
        [job] = jobs_of(database_url, send_id)
        assert (job.target, job.openids) == ("all", 12)
        assert wechat_deliveries(database_url, send_id) == {"sent": 12}


def test_a_send_to_the_members_of_a_wechat_tag_is_one_send_to_the_tag(
    database_url: str, sample_issue_path: Path
) -> None:
    config = SandboxConfig(job_finish_delay=0.2, account_type="subscription")
    with SandboxServer(config) as server:
        client = synced(server, database_url, 4)
        readers = server.sandbox.followers[:4]
        tag_id = server.sandbox.add_tag("会员", readers)
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = started_wechat_send(database_url, issue_id, account="subscription")
        send_wechat(
            session_factory(database_url), client, send_id, settings_for(server, database_url)
        )
        [made] = server.sandbox.jobs.values()
        assert not made.to_all and sorted(made.audience) == sorted(readers)
        [job] = jobs_of(database_url, send_id)
        assert (job.target, job.tag_id, job.state) == ("tag", tag_id, WechatJobState.ACCEPTED)


def test_a_subscription_account_cannot_name_openids_and_says_so(
    database_url: str, sample_issue_path: Path
) -> None:
    config = SandboxConfig(job_finish_delay=0.2, account_type="subscription")
    with SandboxServer(config) as server:
        client = synced(server, database_url, 3)  # and a newcomer: neither all nor a tag
        issue_id = import_sample(database_url, sample_issue_path)
        send_id = started_wechat_send(database_url, issue_id, account="subscription")
        report = send_wechat(
            session_factory(database_url), client, send_id, settings_for(server, database_url)
        )
        assert report.failed == [1] and not server.sandbox.jobs
        [job] = jobs_of(database_url, send_id)
        assert job.state is WechatJobState.FAILED and job.error is not None
        assert "service account" in job.error
        assert wechat_deliveries(database_url, send_id) == {"failed": 3}


def test_an_issue_wechat_cannot_take_pauses_the_send_with_the_reason(
    wechat: SandboxServer, database_url: str
) -> None:
    client = synced(wechat, database_url, 3)
    with transaction(database_url) as session:
        issue_id = save_issue(session, long_issue(1, 80), source_format="json").id
    send_id = started_wechat_send(database_url, issue_id)
    report = send_wechat(
        session_factory(database_url), client, send_id, settings_for(wechat, database_url)
    )
    assert report.postponed is not None and "20,000" in report.postponed
    with transaction(database_url) as session:
        status = send_status(session, send_id)
    assert status.state == "paused"
    assert status.error is not None and status.error.startswith("WeChat: issue 500, article 1")
    assert not wechat.sandbox.jobs and not wechat.sandbox.images


def test_a_fifth_send_in_a_month_of_a_service_account_is_refused_when_scheduled(
    wechat: SandboxServer, database_url: str, sample_issue_path: Path
) -> None:
    synced(wechat, database_url, 3)
    issue_id = import_sample(database_url, sample_issue_path)
    now = utcnow()

    def new_send(*, draft: bool = False) -> int:
        with transaction(database_url) as session:
            return create_send(
                session,
                issue_id=issue_id,
                audience=Audience(lists=(LIST,)),
                variant=None,
                at=now,
                now=now,
                zone=ZONE,
                draft=draft,
                wechat_account="service",
            ).id

    firsts = [new_send() for _ in range(4)]
    fifth = new_send(draft=True)  # a draft is not counted until it is scheduled
    with pytest.raises(WechatQuotaExceeded) as refused, transaction(database_url) as session:
        schedule_send(session, fifth, None, now=now, zone=ZONE, wechat_account="service")
    message = refused.value.message
    assert "at most 4 mass messages a month" in message
    assert ", ".join(map(str, firsts)) in message
    beijing = now.astimezone(ZONE)
    next_month = (beijing.replace(day=1) + timedelta(days=32)).replace(day=1)
    assert f"the next is possible from {next_month:%Y-%m-%d} 00:00 Beijing time" in message
