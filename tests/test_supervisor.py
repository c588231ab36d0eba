"""The supervisor of ``distributor worker``: a child that dies is started again, one that keeps
dying at once after a growing pause said in one line; a stop signal reaches the children."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from distributor.supervisor import MAX_PAUSE_SECONDS, pause_before_restart
from tests.support.polling import wait_until


def supervisor(
    children: list[tuple[str, list[str]]], log: Path, preload: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """A real supervisor process around ``children``, logging to ``log``."""
    code = (
        "import sys\nfrom distributor.supervisor import supervise\n"
        f"sys.exit(supervise({children!r}, (), {preload!r}))"
    )
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT)


def lines_with(log: Path, text: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if text in line]


def worker_pids(log: Path) -> list[int]:
    """The pids the supervisor started its worker children with, in order."""
    found = re.findall(r"Started the worker process \(pid (\d+)\)", log.read_text())
    return [int(pid) for pid in found]


def kill_the_worker(log: Path, pid: int) -> int:
    """SIGKILL the worker child ``pid`` and wait for the supervisor's next start: its pid."""
    started = len(worker_pids(log))
    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: worker_pids(log),
        lambda pids: len(pids) > started,
        timeout=10,
        what="a fresh worker",
    )
    return worker_pids(log)[started]


def test_the_pause_grows_only_while_a_child_keeps_dying_at_once() -> None:
    assert [pause_before_restart(n) for n in range(5)] == [0, 1, 2, 4, 8]
    assert pause_before_restart(50) == MAX_PAUSE_SECONDS


def test_a_child_that_keeps_dying_at_once_is_started_again_after_longer_pauses(
    tmp_path: Path,
) -> None:
    log = tmp_path / "supervisor.log"
    process = supervisor([("worker", [sys.executable, "-c", "raise SystemExit(1)"])], log)
    try:
        wait_until(
            lambda: lines_with(log, "died"),
            lambda lines: len(lines) >= 3,
            timeout=30,
            what="3 deaths",
        )
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
    first = lines_with(log, "died")[:3]
    assert [re.findall(r"starts in (\d+) s", line) for line in first] == [["1"], ["2"], ["4"]]
    assert "died at once again (exit code 1, 3 times in a row" in first[2], first
    assert "ERROR/Supervisor" in first[2]
    # One line for each start and each death, nothing else.
    starts, all_deaths = lines_with(log, "Started the worker"), lines_with(log, "died")
    assert len(log.read_text().splitlines()) == len(starts) + len(all_deaths)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_killed_child_is_replaced_and_a_stop_signal_to_the_supervisor_stops_every_child(
    tmp_path: Path, stop: signal.Signals
) -> None:
    log = tmp_path / "supervisor.log"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    process = supervisor([("worker", sleeper), ("beat", sleeper)], log)

    def started() -> list[int]:
        found = re.findall(r"Started the \w+ process \(pid (\d+)\)", log.read_text())
        return [int(pid) for pid in found]

    try:
        wait_until(started, lambda pids: len(pids) == 2, timeout=30, what="both started")
        (worker_pid,) = worker_pids(log)
        kill_the_worker(log, worker_pid)
        (death,) = lines_with(log, "died")
        assert f"The worker process (pid {worker_pid}) died (killed by SIGKILL)" in death
        assert "a fresh one starts in 1 s" in death  # it had lived for less than 10 s
        children = started()[-2:]
        process.send_signal(stop)  # to the supervisor only, as `docker stop` does
        code = process.wait(timeout=10)
    finally:
        process.kill()
    assert code == 128 + signal.SIGTERM  # each child ended by a SIGTERM passed on
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]


PRELOADED = [sys.executable, "-m", "tests.support.preloaded"]


def test_children_forked_from_a_preloading_supervisor_share_its_modules_and_are_kept_alike(
    tmp_path: Path,
) -> None:
    """What the supervisor preloaded, its children do not import again (they share its pages);
    a forked child that dies or is killed is started again, and a stop reaches every one."""
    log = tmp_path / "supervisor.log"
    children = [("worker", [*PRELOADED, "sleep"]), ("beat", [*PRELOADED, "3"])]
    process = supervisor(children, log, preload=("tests.support.preloaded",))
    try:
        wait_until(
            lambda: lines_with(log, "Started the worker"),
            lambda lines: len(lines) == 1,
            timeout=30,
            what="the worker",
        )
        (worker_pid,) = worker_pids(log)
        wait_until(
            lambda: lines_with(log, f"running as {worker_pid}"),
            lambda lines: len(lines) == 1,
            timeout=10,
            what="the worker's line",
        )
        assert lines_with(log, f"running as {worker_pid}") == [
            f"imported by {process.pid}, running as {worker_pid}"
        ]
        # The command line is the supervisor's; the name says which is which (top, pgrep).
        assert Path(f"/proc/{process.pid}/comm").read_text() == "dist-supervisor\n"
        assert Path(f"/proc/{worker_pid}/comm").read_text() == "dist-worker\n"
        # A child's own exit code, and Python's exit handling, as under a fresh interpreter.
        wait_until(
            lambda: lines_with(log, "The beat process"),
            lambda lines: len(lines) >= 1,
            timeout=10,
            what="the beat's exit",
        )
        assert "died (exit code 3)" in lines_with(log, "The beat process")[0]
        fresh = kill_the_worker(log, worker_pid)
        assert fresh != worker_pid
        assert f"(pid {worker_pid}) died (killed by SIGKILL)" in log.read_text()
        wait_until(
            lambda: lines_with(log, f"running as {fresh}"),
            lambda lines: lines == [f"imported by {process.pid}, running as {fresh}"],
            timeout=10,
            what="the fresh worker, forked too",
        )
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
    finally:
        process.kill()
    assert code == 128 + signal.SIGTERM
    assert not Path(f"/proc/{fresh}").exists()


def test_a_child_that_exits_0_ends_a_preloading_supervisor_and_a_failed_preload_is_said(
    tmp_path: Path,
) -> None:
    """A module that cannot be preloaded is one warning; the children then start as fresh
    interpreters (each imports for itself), and one that exits 0 ends the supervisor with 0."""
    log = tmp_path / "supervisor.log"
    process = supervisor(
        [("worker", [*PRELOADED, "0"])], log, preload=("tests.support.no_such_module",)
    )
    assert process.wait(timeout=30) == 0
    (warning,) = lines_with(log, "Could not preload")
    assert "tests.support.no_such_module (ModuleNotFoundError" in warning
    assert "each process starts as an interpreter of its own" in warning
    (line,) = lines_with(log, "imported by")
    imported_by, running_as = re.findall(r"\d+", line)
    assert imported_by == running_as  # its own interpreter imported it


def test_what_distributor_worker_preloads_does_nothing_as_it_is_imported() -> None:
    """The supervisor forks its children from what it preloaded: a thread, a log handler or the
    Celery app made at import would be shared by every child (or lost in the fork)."""
    code = (
        "import importlib, logging, sys, threading\n"
        "from distributor.cli.worker_commands import SHARED_MODULES\n"
        "for module in SHARED_MODULES:\n"
        "    importlib.import_module(module)\n"
        "apps = sorted(m for m in sys.modules if m.startswith(('distributor.celery', "
        "'distributor.tasks')))\n"
        "print(threading.active_count(), len(logging.root.handlers), apps)\n"
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith("DISTRIBUTOR")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.split("\n")[0] == "1 0 []", result.stderr
