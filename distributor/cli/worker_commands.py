"""``distributor worker`` and ``beat``: run the engine (Celery checks the settings as it starts)."""

from __future__ import annotations

import math
import os
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from distributor.config import Settings

CELERY = [sys.executable, "-m", "celery", "-A", "distributor"]
# The scheduler's app has no task modules (distributor.celery_beat): a lighter process.
CELERY_BEAT = [sys.executable, "-m", "celery", "-A", "distributor.celery_beat"]
# What every sending process and the scheduler import, and that does nothing as it is imported:
# the supervisor loads it once and forks them, so that they share it (distributor.supervisor).
# Not distributor.celery or distributor.tasks: they read the settings and set up logging.
SHARED_MODULES = (
    "distributor.runtime",
    "distributor.bounces.mailbox",
    "distributor.webhooks.deliver",
    "distributor.readers.confirmation",
    "distributor.readers.mailto",
    "distributor.broker",
    "distributor.ops.heartbeats",
    "celery.bin.celery",
    "celery.apps.worker",
    "celery.apps.beat",
    "celery.worker.consumer",
    "celery.concurrency.thread",
    "celery.app.amqp",
    "celery.app.control",
    "celery.app.events",
    "celery.backends.base",
    "celery.events.state",
    "celery.worker.autoscale",
    "celery.worker.components",
    "celery.worker.strategy",
    "kombu.transport.sqlalchemy",
    "kombu.mixins",
    "billiard.pool",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "premailer",  # an issue's HTML is inlined where it is compiled: in a sending process
    "httpcore",  # httpx loads it with its first client
)


def sending_processes(
    settings: Settings, concurrency: int | None, *, supervisor: int
) -> list[list[str]]:
    """The Celery options of each sending process (WORKER_PROCESSES of them; one interpreter's
    threads share one core): the slots spread over them (each a thread per slot of its share, and
    two for ticks and planning), each its own node name."""
    count = settings.worker_process_count
    if count == 1:
        return [[] if concurrency is None else [f"--concurrency={concurrency}"]]
    threads = concurrency or math.ceil(settings.dispatch_slots / count) + 2
    return [
        [f"--concurrency={threads}", f"--hostname=worker{index}.{supervisor}@%h"]
        for index in range(1, count + 1)
    ]


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    help="Pool threads of each sending process [default: a thread per dispatcher slot of its "
    "share of DISPATCH_SLOTS, and two for the rest].",
)
@click.option("--beat", is_flag=True, help="Also run the scheduler beside it (one per site).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, beat: bool, loglevel: str) -> None:
    """Run the Celery worker (as `celery -A distributor worker`; WORKER_PROCESSES of them), and
    with --beat the scheduler beside it; a process of them that dies is started afresh."""
    from distributor.config import Settings
    from distributor.startup import check_settings
    from distributor.supervisor import become_supervisor

    settings = Settings.from_env()
    # One line and exit 2 here, not one per child; the warnings said once, by the supervisor.
    warnings = check_settings(settings)
    json_logs = settings.log_format == "json"
    # JSON: only log records on the output, no banners (the supervisor's lines as JSON too).
    quiet = ["--quiet"] if json_logs else []
    children = [
        ("worker", [*CELERY, *quiet, "worker", f"--loglevel={loglevel}", *options])
        for options in sending_processes(settings, concurrency, supervisor=os.getpid())
    ]
    if beat:
        children.append(("beat", [*CELERY_BEAT, *quiet, "beat", f"--loglevel={loglevel}"]))
    become_supervisor(children, json_logs=json_logs, warnings=warnings, preload=SHARED_MODULES)


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler: it ticks every second (start due sends, recover lost work)."""
    from distributor.celery_beat import app
    from distributor.config import Settings

    quiet = ["--quiet"] if Settings.from_env().log_format == "json" else []  # no banner
    app.start([*quiet, "beat", f"--loglevel={loglevel}"])
