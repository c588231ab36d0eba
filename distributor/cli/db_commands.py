"""``distributor db``: the schema."""

from __future__ import annotations

import click

from distributor.cli.context import AppContext, pass_app, redacted
from distributor.db import current_revision, upgrade


@click.group()
def db() -> None:
    """Create or upgrade the database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Migration to upgrade to.")
@pass_app
def db_upgrade(app: AppContext, revision: str) -> None:
    """Apply every pending migration to DATABASE_URL, saying which first. Many processes may
    run it at once: one migrates, the others wait for it and find nothing to do."""
    url = app.settings.database_url
    # One line a migration, however long its description: a log and a grep read it whole.
    upgrade(url, revision, say=lambda line: app.console.print(line, soft_wrap=True))
    app.console.print(f"Database is at revision {current_revision(url)} ({redacted(url)})")


@db.command("current")
@pass_app
def db_current(app: AppContext) -> None:
    """Show the schema revision of DATABASE_URL."""
    app.console.print(
        current_revision(app.settings.database_url) or "empty (run: distributor db upgrade)"
    )

