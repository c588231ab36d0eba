"""What every command needs: the settings and a way to reach a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from rich.console import Console
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from distributor.cli.terminal import plain
from distributor.config import Settings
from distributor.db import is_sqlite, schema_is_current, transaction, upgrade
from distributor.errors import ConfigurationError, DatabaseUnreachable


def _console() -> Console:
    """A terminal's own width; piped output (a file, a test) gets wide tables, not wrapped ones."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


@dataclass
class AppContext:
    settings: Settings
    console: Console = field(default_factory=_console)
    _schema_checked: bool = False

    @classmethod
    def from_env(cls) -> AppContext:
        return cls(Settings.from_env())

    def ready_database(self) -> str:
        """The database URL, migrated: automatically on embedded SQLite, else ask for it."""
        url = self.settings.database_url
        if not self._schema_checked:
            if not schema_is_current(url):
                if not is_sqlite(url):
                    raise ConfigurationError(
                        "the database schema is not up to date: run `distributor db upgrade`"
                    )
                upgrade(url)
            self._schema_checked = True
        return url

    @contextmanager
    def session(self) -> Iterator[Session]:
        with transaction(self.ready_database()) as session:
            yield session


def redacted(url: str) -> str:
    """A database URL fit to show: the password replaced by ``***``."""
    return make_url(url).render_as_string(hide_password=True)


def unreachable(url: str, error: OperationalError) -> DatabaseUnreachable | None:
    """The one-line error for a connection that could not be opened or was lost, else None.

    SQLAlchemy raises the driver's error without a statement when opening a connection fails,
    and marks one lost mid-statement as invalidated; other operational errors (a deadlock, a
    lock timeout) are not about reaching the server.
    """
    if error.statement is not None and not error.connection_invalidated:
        return None
    reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else ""
    reason = reason.rpartition(": ")[2].strip() or "no reason given"
    return DatabaseUnreachable(
        f"cannot reach the database at {redacted(url)} ({plain(reason, 200)})"
    )


pass_app = click.make_pass_decorator(AppContext)
