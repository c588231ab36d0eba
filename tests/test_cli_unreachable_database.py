"""A PostgreSQL that cannot be reached is one line naming the URL (password hidden), exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from distributor.devservers.ports import free_port

COMMANDS = [
    ["issue", "list"],
    ["issue", "show", "1"],
    ["send", "status", "1"],
    ["subscribers", "export"],
    ["db", "upgrade"],
    ["db", "current"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_closed_port_is_one_line_with_the_password_hidden(
    command: list[str], tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql+psycopg://staff:s3cret-pw@127.0.0.1:{port}/distributor"
    done = subprocess.run(
        [sys.executable, "-m", "distributor", *command],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        check=False,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"Error: cannot reach the database at "
        f"postgresql+psycopg://staff:***@127.0.0.1:{port}/distributor (Connection refused); "
        "is the server running, and is DATABASE_URL right?\n"
    )
