"""Files that hold personal data or secrets (the SQLite database and broker, a subscriber export)
are created readable and writable by their owner only (0600), whatever the process's umask: a
default umask of 022 would let every user of the machine read the readers' addresses, the staff's
password hashes and the WeChat access token."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

PRIVATE = 0o600


def create_private(path: Path) -> None:
    """``path`` created empty, only its owner may read it; an existing file is left as it is, and
    a missing folder is left for the caller to report (SQLite says it cannot open the file)."""
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))


def open_private(path: Path, encoding: str) -> IO[str]:
    """``path`` opened for writing text from its start, made private if it was not."""
    descriptor = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, PRIVATE)
    os.fchmod(descriptor, PRIVATE)
    return os.fdopen(descriptor, "w", encoding=encoding, newline="")


def sqlite_file(url: str) -> Path | None:
    """The file an SQLite URL (``sqlite:///…`` or the broker's ``sqla+sqlite:///…``) names; None
    for another database or an in-memory one."""
    parsed = make_url(url.removeprefix("sqla+"))
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
