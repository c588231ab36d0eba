"""``distributor worker`` keeps its processes alive without an outside supervisor.

The Celery worker (the sending process) and, with ``--beat``, the scheduler run as child
processes. One that dies (killed, out of memory, an unrecoverable error) is started afresh: the
database says what it was doing (its claims come back after ``CLAIM_LEASE_SECONDS``), so the new
one carries on without sending anyone twice beyond the messages it had in flight. A child that
keeps dying at once is started again after a growing pause (1 s, 2 s, 4 s … 60 s), each said in
one log line, instead of a restart loop that fills the log.

A child that exits 0 was asked to stop, and one that exits 2 refused its settings: both end
the supervisor. SIGTERM, SIGINT (as SIGTERM) and SIGQUIT are passed on to the children
(``docker stop`` signals only this process), and the supervisor exits once they have stopped.
A child also gets SIGTERM when the supervisor itself dies, so none is left behind.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import NoReturn

from distributor.errors import DistributorError

QUICK_DEATH_SECONDS = 10.0  # a child that dies sooner than this after its start "died at once"
MAX_PAUSE_SECONDS = 60.0
POLL_SECONDS = 0.2
PASSED_ON = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
_PR_SET_PDEATHSIG = 1

logger = logging.getLogger("distributor.supervisor")


def pause_before_restart(quick_deaths: int) -> float:
    """Seconds to wait before starting a child again: none after one that ran for a while,
    then 1, 2, 4 … up to a minute while it keeps dying at once."""
    if quick_deaths == 0:
        return 0.0
    return min(2.0 ** (quick_deaths - 1), MAX_PAUSE_SECONDS)


def how_it_ended(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"exit code {returncode}"


def _stop_with_the_supervisor() -> None:
    """In the child, before it runs: SIGTERM it when its parent dies (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised program and what the supervisor knows of it."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    start_at: float = 0.0  # when to start it (again)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, preexec_fn=_stop_with_the_supervisor)
        self.started_at = time.monotonic()
        logger.info("Started the %s process (pid %d)", self.name, self.process.pid)

    def died(self, returncode: int) -> None:
        """Note the death and plan the next start, in one log line."""
        assert self.process is not None
        pid, self.process = self.process.pid, None
        now = time.monotonic()
        lived = now - self.started_at
        self.quick_deaths = self.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        pause = pause_before_restart(self.quick_deaths)
        self.start_at = now + pause
        if self.quick_deaths > 1:
            logger.error(
                "The %s process (pid %d) died at once again (%s, %d times in a row within %.0f s"
                " of starting): a fresh one starts in %.0f s",
                self.name, pid, how_it_ended(returncode), self.quick_deaths,
                QUICK_DEATH_SECONDS, pause,
            )  # fmt: skip
        else:
            logger.warning(
                "The %s process (pid %d) died (%s) after %.1f s: a fresh one starts in %.0f s",
                self.name, pid, how_it_ended(returncode), lived, pause,
            )  # fmt: skip


class Supervisor:
    def __init__(self, children: Sequence[tuple[str, list[str]]]) -> None:
        self.children = [Child(name, argv) for name, argv in children]
        self.asked_to_stop = False

    def _pass_on(self, signum: int, _frame: FrameType | None) -> None:
        """SIGQUIT (Celery's cold shutdown) as it is, the others as SIGTERM (its warm one): a
        Ctrl-C in a terminal has already given each child a SIGINT, and a second would be cold."""
        self.asked_to_stop = True
        passed_on = signal.SIGQUIT if signum == signal.SIGQUIT else signal.SIGTERM
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(passed_on)

    def run(self) -> int:
        """Keep the children running until asked to stop or one ends for good; its exit code."""
        for signum in PASSED_ON:
            signal.signal(signum, self._pass_on)
        code = 0
        while not self.asked_to_stop:
            for child in self.children:
                if self.asked_to_stop:
                    break
                if child.process is None:
                    if time.monotonic() >= child.start_at:
                        child.start()
                    continue
                returncode = child.process.poll()
                if returncode is None:
                    continue
                if returncode in (0, DistributorError.exit_code):
                    self.asked_to_stop, code = True, returncode
                    child.process = None
                    break
                child.died(returncode)
            time.sleep(POLL_SECONDS)
        return max(code, self._stop_all())

    def _stop_all(self) -> int:
        """SIGTERM to the children still running (once more is harmless) and wait for them."""
        worst = 0
        for child in self.children:
            if child.process is None:
                continue
            if child.process.poll() is None:
                child.process.terminate()
            returncode = child.process.wait()
            worst = max(worst, returncode if returncode >= 0 else 128 - returncode)
        return worst


def supervise(children: Sequence[tuple[str, list[str]]], warnings: Sequence[str] = ()) -> int:
    """Run and keep alive ``children`` (a name and an argv each); the exit code to end with.
    ``warnings``: what the settings' check found, said once here rather than by each child."""
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/Supervisor] %(message)s"
    )
    for warning in warnings:
        logger.warning("%s", warning)
    return Supervisor(children).run()


def become_supervisor(
    children: Sequence[tuple[str, list[str]]], *, json_logs: bool, warnings: Sequence[str] = ()
) -> NoReturn:
    """Replace this process (same pid: signals sent to it still reach the supervisor) with a
    fresh interpreter that imports only this module: the command that checked the settings
    holds tens of MB of modules the supervisor never uses."""
    argv = [
        sys.executable,
        "-m",
        "distributor.supervisor",
        json.dumps(children),
        json.dumps(list(warnings)),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [*argv, *(["--json"] if json_logs else [])])


def main(argv: Sequence[str]) -> int:
    """``python -m distributor.supervisor CHILDREN_JSON [WARNINGS_JSON] [--json]``
    (:func:`become_supervisor`)."""
    if "--json" in argv:
        from distributor.logs import json_handler

        logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
    given = [arg for arg in argv if arg != "--json"]
    children = [(name, list(child_argv)) for name, child_argv in json.loads(given[0])]
    warnings = json.loads(given[1]) if len(given) > 1 else []
    return supervise(children, warnings)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
