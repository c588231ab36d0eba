"""kill -9 a real worker while its mass send is in WeChat's hands, restart it: one job, not two.

The send is by preference: its email readers go out over SMTP beside the WeChat job, both from
the same send and the same worker.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.wechat_sandbox import Fault, SandboxConfig, SandboxServer
from distributor.wechat.models import WechatJobState
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import engine_env, import_sample, wait_until_done
from tests.support.smtp import SmtpServer
from tests.support.wechat import wechat_env
from tests.support.wechat_sends import (
    LIST,
    jobs_of,
    started_wechat_send,
    synced,
    wechat_deliveries,
)

pytestmark = pytest.mark.slow


def test_a_worker_killed_between_the_call_and_the_commit_makes_no_second_job(
    database_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    config = SandboxConfig(job_finish_delay=0.2, clientmsgid_retry_window=0.0)
    with SandboxServer(config) as wechat, SmtpServer() as smtp:
        synced(wechat, database_url, 5)
        emails = make_audience(database_url, LIST, 3)
        issue_id = import_sample(database_url, sample_issue_path)
        # WeChat makes the job at once and answers only after 60 s: the worker dies meanwhile.
        wechat.sandbox.inject("message/mass/send", Fault(delay=60.0))
        send_id = started_wechat_send(database_url, issue_id)
        env = engine_env(
            database_url,
            redis_server.url,
            smtp,
            **wechat_env(wechat),
            WECHAT_TIMEOUT_SECONDS="5",  # its lease: 5 s + the margin, then a retry may call
        )
        worker = WorkerProcess(env, tmp_path, concurrency=2)
        worker.start()
        try:
            wait_until(
                lambda: len(wechat.sandbox.jobs),
                lambda made: made == 1,
                timeout=90,
                what="the mass send in WeChat's hands",
            )
            worker.kill()
            [job] = jobs_of(database_url, send_id)
            assert (job.state, job.calls, job.msg_id) == (WechatJobState.WAITING, 1, None)
            worker.start()
            status = wait_until_done(database_url, send_id, timeout=120)
        finally:
            worker.stop()
        received = sorted(smtp.handler.counts())
    assert len(wechat.sandbox.jobs) == 1, "WeChat made one job"
    [made] = wechat.sandbox.jobs.values()
    [job] = jobs_of(database_url, send_id)
    assert job.state in (WechatJobState.ACCEPTED, WechatJobState.SUCCEEDED)
    assert (job.calls, job.msg_id) == (2, str(made.msg_id))
    assert (job.target, wechat_deliveries(database_url, send_id)) == ("openids", {"sent": 5})
    assert received == emails, "the email readers got it from the same send"
    assert status.counts == {"sent": 8}
    logs = worker.logs()  # httpx logged each call to WeChat, with the token masked
    assert "access_token=***" in logs
    assert "access_token=" not in logs.replace("access_token=***", "")
