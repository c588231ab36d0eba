"""``distributor worker`` and ``beat``: run the engine (Celery checks the settings as it starts)."""

from __future__ import annotations

import click


@click.command()
@click.option(
    "--concurrency",
    "-c",
    type=int,
    help="Pool threads [default: DISPATCH_SLOTS + 2: a thread per dispatcher, two for the rest].",
)
@click.option("--beat", is_flag=True, help="Also run the scheduler in this worker (one per site).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, beat: bool, loglevel: str) -> None:
    """Run a Celery worker (same as `celery -A distributor worker`, with the same defaults)."""
    from distributor.celery import app

    argv = ["worker", f"--loglevel={loglevel}"]
    if concurrency is not None:
        argv.append(f"--concurrency={concurrency}")
    if beat:
        argv.append("--beat")
    app.worker_main(argv)


@click.command()
@click.option("--loglevel", default="INFO", show_default=True)
def beat(loglevel: str) -> None:
    """Run the scheduler: it ticks every second (start due sends, recover lost work)."""
    from distributor.celery import app

    app.start(["beat", f"--loglevel={loglevel}"])
