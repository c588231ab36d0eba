"""README's main job: `distributor demo` on the embedded default, with no server running; its
messages' links are served while it waits for Enter."""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
from pathlib import Path
from subprocess import Popen
from typing import IO

import httpx
import pytest

pytestmark = pytest.mark.slow

LINK = re.compile(r"http://127\.0\.0\.1:\d+/\S+")
STOPPED = "Stopped the web server, the worker, the WeChat sandbox and the SMTP sink."


def demo_env() -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "REDIS_URL", "SMTP_HOST", "SMTP_PORT")
    }
    return {**env, "PYTHONUNBUFFERED": "1"}


def demo(tmp_path: Path, *args: str, stdout: IO[str] | int = subprocess.PIPE) -> Popen[str]:
    """The demo, with a keyboard (its standard input) that the test types on."""
    return Popen(
        [sys.executable, "-m", "distributor", "demo", "--dir", "demo", *args],
        cwd=tmp_path,
        env=demo_env(),
        stdin=subprocess.PIPE,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        text=True,
    )


def no_leftovers(tmp_path: Path) -> None:
    """Nothing the demo started is left running."""
    leftovers = subprocess.run(
        ["pgrep", "-f", f"--schedule={tmp_path}"], capture_output=True, text=True, check=False
    )
    assert leftovers.stdout == ""


def test_demo_sends_to_every_reader_serves_its_links_and_cleans_up(tmp_path: Path) -> None:
    running = demo(tmp_path, "--subscribers", "300", "--followers", "25")
    assert running.stdout is not None and running.stdin is not None
    try:
        lines: list[str] = []
        for line in running.stdout:  # until it waits for Enter (the test's timeout bounds this)
            lines.append(line.rstrip("\n"))
            if line.startswith("Press Enter"):
                break
        assert lines[-1].startswith("Press Enter to stop the web server"), "\n".join(lines)
        unsubscribe = next(line for line in lines if line.startswith("  unsubscribe"))
        archive = next(line for line in lines if line.startswith("  the issue in the archive"))
        links = [LINK.findall(line)[0] for line in (unsubscribe, archive)]
        assert "/u/" in links[0] and links[1].endswith("/archive/471")
        for link in links:
            page = httpx.get(link, timeout=10)
            assert page.status_code == 200, link
        assert "退订" in httpx.get(links[0], timeout=10).text  # the page, not an error
        # WeChat's side, as the sandbox standing in for it saw it: the issue published as one
        # draft of its 4 articles, mass-sent in one job to every follower, finished.
        wechat = next(line for line in lines if line.startswith("The WeChat sandbox received"))
        sandbox = httpx.get(LINK.findall(wechat)[0], timeout=10).json()
        assert sandbox["followers"] == 25 and sandbox["drafts"] == 1
        assert [(job["total"], job["status"]) for job in sandbox["jobs"]] == [
            (25, "SEND_SUCCESS")
        ]
        assert sandbox["calls"]["message/mass/sendall"] == 1
        assert sandbox["callback_attempts"] == 1  # its result, posted to the demo's web server
        rest, _ = running.communicate("\n", timeout=120)
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
    assert running.returncode == 0, "\n".join(lines) + rest
    lines += rest.splitlines()
    assert lines[0].startswith("1. Imported issue ID: 1 (杭州工运 第471期, 4 articles")
    assert "2. Imported 300 readers from readers.csv into list 'demo'" in lines
    assert any(re.match(r"   Synced 25 WeChat followers from the sandbox \(http", line)
               for line in lines)
    # Email and WeChat side by side: sent by email, by WeChat, in all.
    assert any(re.match(r"│ sent .*│ +300 │ +25 │ +325 │$", line) for line in lines), lines
    assert any(re.match(r"│ total .*│ +300 │ +25 │ +325 │$", line) for line in lines)
    # The WeChat job, done as WeChat reported it (total, filtered, sent, errors).
    job = r"│ 1 \(msg_id \d+\) +│ succeeded │ +25 │ send success +│ +25 │ +25 │ +25 │ +0 │$"
    assert any(re.match(job, line) for line in lines), lines
    assert any(re.fullmatch(r"The WeChat sandbox received 1 draft \(4 articles\) and made 1 "
                            r"mass-send job to 25 followers: http://\S+/sandbox/state", line)
               for line in lines)
    mail = tmp_path / "demo" / "mail"
    assert f"The SMTP sink received 300 messages: {mail / 'new'}" in lines
    assert len(mailbox.Maildir(mail)) == 300
    assert lines[-1] == STOPPED
    for stopped in (links[1], LINK.findall(wechat)[0]):  # the web server and the sandbox too
        with pytest.raises(httpx.TransportError):
            httpx.get(stopped, timeout=5)
    no_leftovers(tmp_path)


def test_demo_with_no_wait_stops_without_input(tmp_path: Path) -> None:
    with (tmp_path / "out.txt").open("w") as out:
        running = demo(tmp_path, "--subscribers", "3", "--no-wait", stdout=out)
        try:
            running.wait(timeout=240)  # its input stays open: waiting for Enter, it would not end
        finally:
            if running.poll() is None:
                running.kill()
                running.wait()
            assert running.stdin is not None
            running.stdin.close()
    output = (tmp_path / "out.txt").read_text()
    assert running.returncode == 0, output
    lines = output.splitlines()
    assert not any(line.startswith("Press Enter") for line in lines)
    assert any(line.startswith("  the issue in the archive:") for line in lines)
    assert lines[-1] == STOPPED
    no_leftovers(tmp_path)
