"""README's main job: `distributor demo` on the embedded default, with no server running."""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_demo_sends_to_every_reader_and_cleans_up(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SMTP_HOST", "SMTP_PORT")
    }
    done = subprocess.run(
        [sys.executable, "-m", "distributor", "demo", "--subscribers", "300", "--dir", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("1. Imported issue ID: 1 (杭州工运 第471期, 4 articles")
    assert "2. Imported 300 readers from readers.csv into list 'demo'" in lines
    assert any(line.startswith("│ sent") and line.rstrip(" │").endswith("300") for line in lines)
    mail = tmp_path / "demo" / "mail"
    assert f"The SMTP sink received 300 messages: {mail / 'new'}" in done.stdout
    assert len(mailbox.Maildir(mail)) == 300
    assert lines[-1] == "Stopped the worker and the SMTP sink."
    # nothing it started is left running
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--schedule={tmp_path}"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""
