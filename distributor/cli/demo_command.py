"""``distributor demo``: the whole job on the embedded default, on a machine with no server.

It imports the sample issue, imports a CSV of demo readers, starts a local SMTP sink and the
WeChat sandbox (whose followers it syncs onto the same list), the web server (``PUBLIC_BASE_URL``
points at it, so the messages' links work while the demo runs; the sandbox posts its
``MASSSENDJOBFINISH`` events to it) and a Celery worker with the scheduler, sends by preference
(email readers by email, WeChat followers as one article mass-sent), follows the send with a
progress bar, shows the status table with both channels side by side, where the messages went and
links to try, waits for Enter, and stops everything it started.
"""

from __future__ import annotations

import base64
import csv
import mailbox
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy.orm import Session

from distributor.campaigns.schedule import create_send
from distributor.campaigns.status import SendStatus, send_status
from distributor.channels.wechat.client import WechatClient
from distributor.cli.context import AppContext
from distributor.cli.send_status_output import print_status, watch_send
from distributor.config import Settings
from distributor.db import get_engine, transaction, upgrade, utcnow
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.ports import free_port
from distributor.devservers.smtp import MaildirSink
from distributor.devservers.web_server import serving
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
from distributor.errors import DistributorError
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from distributor.vocabulary import SendState
from distributor.web.app import create_app
from distributor.web.wechat_callback import CALLBACK_PATH
from distributor.wechat.followers import sync_followers
from distributor.wechat.models import OPEN_JOB_STATES
from subscribers.importer import import_subscribers
from subscribers.links import ARCHIVE_PATH, UNSUBSCRIBE_PATH
from subscribers.query import Audience

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "hzgy-471.txt"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
# Most readers want the whole issue; some chose the digest or plain text ("by preference").
FORMATS = ("full",) * 7 + ("digest",) * 2 + ("text",)


def write_readers(path: Path, count: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["email", "name", "format"])
        for i in range(count):
            name = SURNAMES[i % len(SURNAMES)] + GIVEN[(i // len(SURNAMES)) % len(GIVEN)]
            writer.writerow([f"reader{i + 1:05d}@demo.example", name, FORMATS[i % len(FORMATS)]])


def demo_settings(
    workdir: Path, smtp_port: int, web_port: int, wechat: SandboxServer
) -> dict[str, str]:
    """Embedded everything, in ``workdir``; the caller's secret key if it has one; links to the
    demo's own web server; the WeChat channel on the sandbox (never the real WeChat)."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "CELERY_BROKER_URL")}
    sandbox = wechat.sandbox.config
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'demo.db'}",
        CELERY_BROKER_URL=f"sqla+sqlite:///{workdir / 'broker.db'}",
        DISTRIBUTOR_SECRET_KEY=os.environ.get("DISTRIBUTOR_SECRET_KEY")
        or secrets.token_urlsafe(32),
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp_port),
        SMTP_SECURITY="none",
        MAIL_FROM=os.environ.get("MAIL_FROM", "杭州工运 <newsletter@demo.example>"),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{web_port}",
        WECHAT_APP_ID=sandbox.app_id,
        WECHAT_APP_SECRET=sandbox.app_secret,
        WECHAT_API_BASE=wechat.url,
        WECHAT_ACCOUNT_TYPE=sandbox.account_type,
        WECHAT_CALLBACK_TOKEN=sandbox.callback_token,
        WECHAT_ENCODING_AES_KEY=sandbox.encoding_aes_key,
    )
    return env


def wechat_sandbox(web_port: int) -> SandboxServer:
    """The sandbox as a certified service account, posting its signed job results to the demo's
    web server (WeChat posts them a little after the job, as here), in safe mode (encrypted)."""
    return SandboxServer(
        SandboxConfig(
            account_type="service",
            callback_url=f"http://127.0.0.1:{web_port}{CALLBACK_PATH}",
            callback_token=secrets.token_urlsafe(16),
            encoding_aes_key=base64.b64encode(secrets.token_bytes(32)).decode().rstrip("="),
            job_finish_delay=1.0,
        )
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def wechat_summary(server: SandboxServer) -> str:
    """What the sandbox, standing in for WeChat, was given: drafts, jobs, and where to look."""
    with server.sandbox.lock:
        drafts = list(server.sandbox.drafts.values())
        jobs = list(server.sandbox.jobs.values())
    articles = sum(len(draft.articles) for draft in drafts)
    followers = sum(len(job.audience) for job in jobs)
    return (
        f"The WeChat sandbox received {plural(len(drafts), 'draft')} "
        f"({plural(articles, 'article')}) and made {plural(len(jobs), 'mass-send job')} "
        f"to {plural(followers, 'follower')}: {server.url}/sandbox/state"
    )


def first_unsubscribe_link(maildir: Path, base_url: str) -> str | None:
    """The one-click unsubscribe link of a message the sink received, as a reader would find it."""
    pattern = re.compile(rf"<({re.escape(base_url + UNSUBSCRIBE_PATH)}[^>]+)>")
    for message in mailbox.Maildir(maildir, create=False):
        match = pattern.search(str(message.get("List-Unsubscribe", "")))
        if match:
            return match.group(1)
    return None


@click.command()
@click.option(
    "--subscribers",
    "count",
    type=click.IntRange(1, 1_000_000),
    default=3000,
    show_default=True,
    help="How many demo readers to create.",
)
@click.option(
    "--followers",
    type=click.IntRange(2, 100_000),
    default=200,
    show_default=True,
    help="How many followers the WeChat sandbox's account has (all on the demo list).",
)
@click.option(
    "--dir",
    "workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("distributor-demo"),
    show_default=True,
    help="Where the demo keeps its database, broker and received mail (emptied first).",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Stop at once when the send is done, instead of serving its links until Enter.",
)
def demo(count: int, followers: int, workdir: Path, no_wait: bool) -> None:
    """Run the whole job on the embedded default: import, subscribe, send by email and WeChat
    (on the local sandbox), show, and serve the messages' links until Enter is pressed."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    workdir = workdir.resolve()
    web_port = free_port()
    with MaildirSink(workdir / "mail") as sink, wechat_sandbox(web_port) as wechat:
        env = demo_settings(workdir, sink.port, web_port, wechat)
        app = AppContext(Settings.from_env(env))
        url = app.settings.database_url
        upgrade(url)
        report = read_issue_file(SAMPLE)
        with transaction(url) as session:
            issue_id = save_issue(session, report.document, source_format=report.format).id
        click.echo(
            f"1. Imported issue ID: {issue_id} ({report.document.title} "
            f"第{report.document.number}期, {len(report.document.articles)} articles, "
            f"{len(report.repairs)} page-break splits repaired)"
        )
        readers = workdir / "readers.csv"
        write_readers(readers, count)
        with get_engine(url).connect() as connection:
            imported = import_subscribers(
                connection,
                readers,
                list_name="demo",
                create_lists=True,
                on_problem=lambda problem: None,
            )
        click.echo(f"2. Imported {imported.imported} readers from {readers.name} into list 'demo'")
        wechat.sandbox.add_followers(followers)
        with WechatClient.from_settings(app.settings) as client:
            synced = sync_followers(get_engine(url), client, "demo")
        click.echo(
            f"   Synced {synced.followers} WeChat followers from the sandbox ({wechat.url}) "
            "into list 'demo'"
        )
        site = app.settings.public_base_url
        click.echo(
            f"3. SMTP sink on 127.0.0.1:{sink.port}, WeChat sandbox on {wechat.url}, "
            f"web server on {site}; starting a worker with the scheduler"
        )
        # demo_settings took the caller's broker and Redis out: the worker must not inherit them.
        with (
            serving(create_app(app.settings), web_port),
            running_worker(env, workdir, inherit_environment=False) as worker,
        ):
            with app.session() as session:
                send_id = _send(session, issue_id, app.settings)
            click.echo(
                f"4. Created send ID: {send_id} (each reader gets the format they chose, by "
                "email or as a WeChat article)"
            )

            def worker_alive() -> None:
                code, log = worker.exit_code(), worker.log_path
                if code is not None:
                    raise DistributorError(f"the worker stopped (exit {code}); see {log}")

            watch_send(app, send_id, check=worker_alive)
            status = _wechat_results(app, send_id, check=worker_alive)
            print_status(app, status)
            click.echo(
                f"The SMTP sink received {sink.received} messages: {workdir / 'mail' / 'new'}"
            )
            click.echo(wechat_summary(wechat))
            click.echo(f"Open one in a mail program, or: distributor issue preview {issue_id}")
            click.echo(f"Look around: DATABASE_URL={url} distributor send deliveries {send_id}")
            _serve_links(site, workdir / "mail", report.document.number, wait=not no_wait)
    click.echo("Stopped the web server, the worker, the WeChat sandbox and the SMTP sink.")


def _serve_links(site: str, maildir: Path, issue_number: int, *, wait: bool) -> None:
    """Links to try while the web server runs, then wait for Enter (end of input counts)."""
    unsubscribe = first_unsubscribe_link(maildir, site)
    click.echo(f"The messages' links are served by the web server on {site}. Try:")
    if unsubscribe is not None:
        click.echo(f"  unsubscribe (a reader's link): {unsubscribe}")
    click.echo(f"  the issue in the archive:      {site}{ARCHIVE_PATH}{issue_number}")
    if wait:
        click.echo(
            "Press Enter to stop the web server, the worker, the WeChat sandbox and the SMTP sink."
        )
        sys.stdin.readline()


def _send(session: Session, issue_id: int, settings: Settings) -> int:
    return create_send(
        session,
        issue_id=issue_id,
        audience=Audience(lists=("demo",)),
        variant=None,
        at=None,
        now=utcnow(),
        zone=settings.zone,
        wechat_account=settings.wechat_account_type,
    ).id


WECHAT_RESULT_WAIT = 30.0  # seconds: the sandbox reports a job a second after it; WeChat, later


def _wechat_results(
    app: AppContext, send_id: int, *, check: Callable[[], None]
) -> SendStatus:
    """The send's status once WeChat reported each of its jobs (by callback): a WeChat delivery
    is done when WeChat accepted its job, the job when WeChat says it finished."""
    deadline = time.monotonic() + WECHAT_RESULT_WAIT
    while True:
        with app.session() as session:
            status = send_status(session, send_id)
        open_jobs = [job for job in status.wechat_jobs if job.state in OPEN_JOB_STATES]
        if not open_jobs or status.state != SendState.DONE or time.monotonic() > deadline:
            return status
        check()
        time.sleep(0.5)
