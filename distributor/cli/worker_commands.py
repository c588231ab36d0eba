"""``distributor worker`` and ``beat``: run the engine (Celery checks the settings as it starts)."""

from __future__ import annotations

import logging
import sys

import click

CELERY = [sys.executable, "-m", "celery", "-A", "distributor"]


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    help="Pool threads [default: DISPATCH_SLOTS + 2: a thread per dispatcher, two for the rest].",
)
@click.option("--beat", is_flag=True, help="Also run the scheduler beside it (one per site).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (as `celery -A distributor worker`, with the same defaults), and with
    --beat the scheduler beside it; a process of them that dies is started afresh."""
    from distributor.config import Settings
    from distributor.logs import json_handler
    from distributor.startup import check_settings
    from distributor.supervisor import supervise

    settings = Settings.from_env()
    check_settings(settings)  # one line and exit 2 here, not one per child
    celery = CELERY
    if settings.log_format == "json":
        # Only log records on the output: no banners, the supervisor's lines as JSON too.
        logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
        celery = [*CELERY, "--quiet"]
    argv = [*celery, "worker", f"--loglevel={loglevel}"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    children = [("worker", argv)]
    if beat:
        children.append(("beat", [*celery, "beat", f"--loglevel={loglevel}"]))
    sys.exit(supervise(children))


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler: it ticks every second (start due sends, recover lost work)."""
    from distributor.celery import app
    from distributor.config import Settings

    quiet = ["--quiet"] if Settings.from_env().log_format == "json" else []  # no banner
    app.start([*quiet, "beat", f"--loglevel={loglevel}"])
