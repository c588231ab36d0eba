"""``distributor worker`` and ``beat``: run the engine (Celery checks the settings as it starts)."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    default=4,
    show_default=True,
    help="Worker processes (sending waits on I/O: about 2 per core).",
)
@click.option("--beat", is_flag=True, help="Also run the scheduler in this worker (one per site).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (same as `celery -A distributor worker`)."""
    from distributor.celery import app

    argv = ["worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}"]
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler: it ticks every second (start due sends, recover lost work)."""
    from distributor.celery import app

    app.start(["beat", f"--loglevel={loglevel}"])
