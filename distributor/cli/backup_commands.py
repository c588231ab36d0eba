"""``distributor backup``: copy the database to one file, and put it back."""

from __future__ import annotations

from pathlib import Path

import click

from distributor.cli.context import AppContext, pass_app, redacted
from distributor.db import current_revision, schema_is_current, utcnow
from distributor.ops.backup import create_backup, restore_backup

FILE = click.Path(dir_okay=False, path_type=Path)


@click.group()
def backup() -> None:
    """Back the database up to a file, or restore it from one (README, "Backups")."""


@backup.command("create")
@click.argument("file", type=FILE)
@pass_app
def backup_create(app: AppContext, file: Path) -> None:
    """Write a backup of DATABASE_URL to FILE (owner-only; safe while sends run)."""
    made = create_backup(app.settings.database_url, file)
    app.console.print(f"Backed up {made.kind} database at revision {made.revision} to {file}")


@backup.command("restore")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Overwrite a database that is not empty.")
@pass_app
def backup_restore(app: AppContext, file: Path, replace: bool) -> None:
    """Restore FILE into DATABASE_URL (stop every worker and beat first)."""
    url = app.settings.database_url
    restored = restore_backup(url, file, replace=replace, now=utcnow())
    app.console.print(
        f"Restored {file} (revision {current_revision(url)}) into {redacted(url)}"
    )
    if not schema_is_current(url):
        app.console.print(f"The backup is older than this release: run `distributor db upgrade`"
                          f" (from {restored.revision}) before starting the workers")
