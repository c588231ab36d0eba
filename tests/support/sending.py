"""Helpers for end-to-end sends: the worker's environment, the sample issue, waiting for a send."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from click.testing import CliRunner
from sqlalchemy import select

from distributor.campaigns.schedule import create_send
from distributor.campaigns.status import SendStatus, send_status
from distributor.cli import main
from distributor.config import Settings
from distributor.db import transaction, utcnow
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from distributor.runtime import WorkerRuntime
from distributor.sending.lifecycle import start_due_sends
from distributor.sending.models import SchedulerState
from distributor.vocabulary import Variant
from subscribers.query import Audience
from tests.support.polling import wait_until
from tests.support.smtp import SmtpServer

SECRET = "test-secret-0123456789-0123456789"


def engine_env(
    database_url: str, broker_url: str, smtp: SmtpServer, **extra: str
) -> dict[str, str]:
    """Settings for a worker and the CLI: short leases and retry delays so tests run in seconds."""
    return {
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "MAIL_FROM": "杭州工运 <newsletter@hzgh.example.org>",
        "PUBLIC_BASE_URL": "https://news.example.org",
        "CLAIM_LEASE_SECONDS": "3",
        "RETRY_BASE_SECONDS": "0.3",
        "DISPATCH_SLOTS": "2",
        **smtp.env(),
        **extra,
    }


def created_by_cli(
    env: dict[str, str], issue_id: int, *extra: str, list_name: str = "members"
) -> int:
    """``send create --issue ID --list LIST EXTRA…`` as staff type it; the new send's id."""
    result = CliRunner().invoke(
        main, ["send", "create", "--issue", str(issue_id), "--list", list_name, *extra], env=env
    )
    assert result.exit_code == 0, result.output
    first_line = result.output.splitlines()[0]
    assert first_line.startswith("Created send ID: ")
    return int(first_line.removeprefix("Created send ID: "))


def relays_file(directory: Path, text: str) -> str:
    """A relays file (SMTP_RELAYS_FILE) with ``text`` in ``directory``; its path."""
    path = directory / "relays.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def send_in_this_process(env: dict[str, str], send_id: int) -> WorkerRuntime:
    """Plan a started send and send it all from this process, as a worker would (no Celery);
    the runtime that sent it, closed (its counters stay readable)."""
    runtime = WorkerRuntime.from_settings(Settings.from_env(env))
    try:
        runtime.plan(send_id)
        runtime.drain_now()
    finally:
        runtime.close()
    return runtime


def import_sample(url: str, sample: Path) -> int:
    report = read_issue_file(sample)
    with transaction(url) as session:
        return save_issue(session, report.document, source_format=report.format).id


def status_of(url: str, send_id: int) -> SendStatus:
    with transaction(url) as session:
        return send_status(session, send_id)


def wait_until_done(url: str, send_id: int, timeout: float) -> SendStatus:
    return wait_until(
        lambda: status_of(url, send_id),
        lambda status: status.state == "done",
        timeout=timeout,
        what=f"send {send_id} done",
    )


def ticks_run(url: str) -> int:
    """How many scheduler ticks have finished, as the database records them."""
    with transaction(url) as session:
        return int(session.scalar(select(SchedulerState.ticks)) or 0)


def wait_for_ticks(url: str, count: int, timeout: float = 60) -> None:
    """Return once ``count`` more ticks have finished: each looked at every send."""
    target = ticks_run(url) + count
    wait_until(
        lambda: ticks_run(url),
        lambda done: done >= target,
        timeout=timeout,
        what=f"{count} more ticks run",
    )


def started_send(url: str, issue_id: int, *lists: str, tracking: bool = False) -> int:
    """A send of ``issue_id`` to ``lists`` that has started (as beat starts it), unsent."""
    with transaction(url) as session:
        send = create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=lists),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("Asia/Shanghai"),
            tracking=tracking,
        )
        send_id = send.id
    with transaction(url) as session:
        start_due_sends(session, utcnow())
    return send_id
