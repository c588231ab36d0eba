"""What every command needs: the settings and a way to reach a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from rich.console import Console
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.db import is_sqlite, schema_is_current, transaction, upgrade
from distributor.errors import ConfigurationError


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


pass_app = click.make_pass_decorator(AppContext)
