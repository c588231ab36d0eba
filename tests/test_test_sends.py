"""`send test`: it sends exactly its test messages while the command waits, marked as a test,
or nothing at all; never another campaign's mail, and never later through a worker."""

from __future__ import annotations

import email.header
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.runtime import WorkerRuntime
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryState, SendState
from subscribers.models import Subscriber, SubscriberStatus
from tests.support.audience import make_audience
from tests.support.sending import engine_env, import_sample, wait_until_done
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow
STAFF = "editor@hzgh.example.org"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def send_test(env: dict[str, str], issue_id: int, *addresses: str) -> tuple[int, str]:
    to = [arg for address in addresses for arg in ("--to", address)]
    result = CliRunner().invoke(main, ["send", "test", "--issue", str(issue_id), *to], env=env)
    return result.exit_code, result.output


def subject(raw: bytes) -> str:
    parsed = email.message_from_bytes(raw)
    return str(email.header.make_header(email.header.decode_header(parsed["Subject"])))


def test_a_test_send_goes_only_to_its_addresses_marked_as_a_test(
    sqlite_url: str, smtp: SmtpServer, sample_issue_path: Path
) -> None:
    make_audience(sqlite_url, "members", 50)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    env = engine_env(sqlite_url, "memory://", smtp)
    running = CliRunner().invoke(
        main, ["send", "create", "--issue", str(issue_id), "--list", "members"], env=env
    )
    campaign = int(running.output.splitlines()[0].removeprefix("Created send ID: "))
    with transaction(sqlite_url) as session:  # the campaign is running, its 50 rows waiting
        session.get_one(Send, campaign).state = SendState.RUNNING
    runtime = WorkerRuntime.from_settings(Settings.from_env(env))
    runtime.plan(campaign)
    runtime.close()

    code, output = send_test(env, issue_id, STAFF)

    assert code == 0, output
    assert [r.recipient for r in smtp.handler.received] == [STAFF]
    assert subject(smtp.handler.received[0].data).startswith("[测试] 杭州工运第471期")
    with transaction(sqlite_url) as session:
        waiting = session.scalar(
            select(func.count()).where(
                Delivery.send_id == campaign, Delivery.state == DeliveryState.PENDING
            )
        )
    assert waiting == 50  # nobody of the running campaign was sent anything


def test_a_suppressed_test_address_is_named_and_sent_nothing(
    sqlite_url: str, smtp: SmtpServer, sample_issue_path: Path
) -> None:
    [gone] = make_audience(sqlite_url, "members", 1, prefix="left")
    with transaction(sqlite_url) as session:
        session.scalars(select(Subscriber)).one().status = SubscriberStatus.UNSUBSCRIBED
    issue_id = import_sample(sqlite_url, sample_issue_path)
    code, output = send_test(engine_env(sqlite_url, "memory://", smtp), issue_id, STAFF, gone)
    assert [r.recipient for r in smtp.handler.received] == [STAFF]
    assert code == 0, output
    assert f"{gone} is suppressed: this address unsubscribed, bounced or complained" in output


def test_without_a_secret_key_nothing_is_stored(
    sqlite_url: str, smtp: SmtpServer, sample_issue_path: Path
) -> None:
    issue_id = import_sample(sqlite_url, sample_issue_path)
    env = {**engine_env(sqlite_url, "memory://", smtp), "DISTRIBUTOR_SECRET_KEY": ""}
    code, output = send_test(env, issue_id, STAFF)
    assert code == 2 and output.startswith("Error: DISTRIBUTOR_SECRET_KEY")
    with transaction(sqlite_url) as session:
        assert session.scalar(select(func.count()).select_from(Send)) == 0


def test_a_test_that_could_not_go_out_is_never_sent_later_by_a_worker(
    sqlite_url: str,
    redis_server: RedisServer,
    smtp: SmtpServer,
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    make_audience(sqlite_url, "members", 5)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    env = engine_env(sqlite_url, redis_server.url, smtp)
    closed = {**env, "SMTP_PORT": str(free_port())}  # nothing listens there
    code, output = send_test(closed, issue_id, STAFF)
    assert code == 2 and "not every address accepted the message" in output
    assert "nothing of it is retried later" in output
    # A worker that runs a whole campaign afterwards does not deliver the failed test.
    created = CliRunner().invoke(
        main, ["send", "create", "--issue", str(issue_id), "--list", "members"], env=env
    )
    campaign = int(created.output.splitlines()[0].removeprefix("Created send ID: "))
    with running_worker(env, tmp_path):
        wait_until_done(sqlite_url, campaign, timeout=60)
    assert STAFF not in smtp.handler.counts()
    assert len(smtp.handler.received) == 5
    with transaction(sqlite_url) as session:
        test = session.scalars(select(Send).where(Send.is_test)).one()
        assert test.state is SendState.DONE
        states = session.scalars(select(Delivery.state).where(Delivery.send_id == test.id)).all()
    assert states == [DeliveryState.FAILED]
