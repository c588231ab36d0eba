"""``distributor web``: the pages, the staff dashboard and the API (distributor.web.server)."""

from __future__ import annotations

import click

from distributor.cli.context import AppContext, pass_app


@click.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to listen on.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Processes serving the app. Default: WEB_WORKERS, else one per CPU core when the rate "
    "limits are shared in Redis (REDIS_URL or a Redis broker), else 1.",
)
@pass_app
def web(app: AppContext, host: str, port: int, workers: int | None) -> None:
    """Serve the staff dashboard, the JSON API and the reader pages.

    The dashboard is under /staff/, the API under /api/v1; the reader pages are those behind
    every link in a message: unsubscribe, preferences, sign-up and confirmation, the archive,
    tracking. Put it behind an https proxy named in FORWARDED_ALLOW_IPS.

    Each process listens at once and answers /livez and /healthz while it loads; a process slow
    to start is waited for (WEB_START_TIMEOUT), a hung one replaced (WEB_HANG_TIMEOUT)."""
    from distributor.web.server import serve

    app.ready_database()
    serve(
        host=host,
        port=port,
        workers=workers or app.settings.web_worker_count,
        start_timeout=app.settings.web_start_timeout,
        hang_timeout=app.settings.web_hang_timeout,
        log_format=app.settings.log_format,
    )
