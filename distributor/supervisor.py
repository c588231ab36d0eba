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

With modules to preload, the supervisor imports them once and forks each ``python -m MODULE``
child from itself instead of starting a fresh interpreter: the children share those modules'
memory (copy on write) rather than each holding its own copy, which is what lets a sending
process per core fit in the workers' memory. Only modules that do nothing as they are imported
belong there (no connections, threads or settings); the child's own program runs as it would
under ``python -m``.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import importlib
import json
import logging
import os
import runpy
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn, Protocol

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


class Process(Protocol):
    """What the supervisor uses of a child process (:class:`subprocess.Popen` has it)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...


@dataclass
class ForkedProcess:
    """A child forked from the supervisor; its return code as Popen's (-N: killed by signal N)."""

    pid: int
    returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self) -> int:
        if self.returncode is None:
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


def forkable(argv: Sequence[str]) -> bool:
    """A ``python -m MODULE …`` of this interpreter: it can run in a fork of the supervisor."""
    return len(argv) >= 3 and argv[0] == sys.executable and argv[1] == "-m"


def name_this_process(role: str) -> None:
    """``dist-ROLE`` as the process's name (what ``top``, ``ps -o comm`` and ``pgrep`` show): a
    forked child keeps its supervisor's command line, so this is what tells them apart. Linux
    only, at most 15 bytes; elsewhere nothing."""
    with contextlib.suppress(OSError):
        Path("/proc/self/comm").write_text(f"dist-{role}"[:15])


def _run_as_python_m(argv: Sequence[str], role: str) -> NoReturn:
    """In a forked child: run ``python -m MODULE ARGS`` as a fresh interpreter would, with an
    interpreter's signal handling and logging (not the supervisor's), and exit with its code."""
    code = 1
    try:
        name_this_process(role)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for signum in (signal.SIGTERM, signal.SIGQUIT):
            signal.signal(signum, signal.SIG_DFL)
        _stop_with_the_supervisor()
        for handler in logging.root.handlers[:]:
            logging.root.removeHandler(handler)
        logging.root.setLevel(logging.WARNING)
        sys.argv = [argv[2], *argv[3:]]
        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        if exit_.code is None or isinstance(exit_.code, int):
            code = exit_.code or 0
        else:
            print(exit_.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os._exit(code)


@dataclass
class Child:
    """One supervised program and what the supervisor knows of it; ``fork``: run in a fork of
    the supervisor (a ``python -m`` program after the supervisor preloaded its modules)."""

    name: str
    argv: list[str]
    fork: bool = False
    process: Process | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    start_at: float = 0.0  # when to start it (again)

    def start(self) -> None:
        if self.fork:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            pid = os.fork()
            if pid == 0:
                _run_as_python_m(self.argv, self.name)
            self.process = ForkedProcess(pid)
        else:
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
    def __init__(self, children: Sequence[tuple[str, list[str]]], *, fork: bool = False) -> None:
        self.children = [Child(name, argv, fork and forkable(argv)) for name, argv in children]
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


def supervise(
    children: Sequence[tuple[str, list[str]]],
    warnings: Sequence[str] = (),
    preload: Sequence[str] = (),
) -> int:
    """Run and keep alive ``children`` (a name and an argv each); the exit code to end with.
    ``warnings``: what the settings' check found, said once here rather than by each child;
    ``preload``: modules to import once and fork the ``python -m`` children from."""
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s: %(levelname)s/Supervisor] %(message)s"
    )
    for warning in warnings:
        logger.warning("%s", warning)
    name_this_process("supervisor")
    return Supervisor(children, fork=_preloaded(preload)).run()


def _preloaded(modules: Sequence[str]) -> bool:
    """Import ``modules`` to fork the children from; False (a fresh interpreter each, as
    without) if there are none or one cannot be imported: the child then says why itself."""
    try:
        for module in modules:
            importlib.import_module(module)
    except Exception as error:  # any import error: fall back, said in one line
        logger.warning(
            "Could not preload %s (%s: %s): each process starts as an interpreter of its own",
            module, type(error).__name__, error,
        )  # fmt: skip
        return False
    if modules:
        gc.freeze()  # the collector would otherwise touch, and so copy, every shared object
    return bool(modules)


def become_supervisor(
    children: Sequence[tuple[str, list[str]]],
    *,
    json_logs: bool,
    warnings: Sequence[str] = (),
    preload: Sequence[str] = (),
) -> NoReturn:
    """Replace this process (same pid: signals sent to it still reach the supervisor) with a
    fresh interpreter that imports only this module (and ``preload``): the command that checked
    the settings holds tens of MB of modules the supervisor never uses."""
    argv = [
        sys.executable,
        "-m",
        "distributor.supervisor",
        json.dumps(children),
        json.dumps(list(warnings)),
        *([f"--preload={','.join(preload)}"] if preload else []),
        *(["--json"] if json_logs else []),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def main(argv: Sequence[str]) -> int:
    """``python -m distributor.supervisor CHILDREN_JSON [WARNINGS_JSON] [--preload=M,…]
    [--json]`` (:func:`become_supervisor`)."""
    if "--json" in argv:
        from distributor.logs import json_handler

        logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
    preload = [
        module
        for arg in argv
        if arg.startswith("--preload=")
        for module in arg.removeprefix("--preload=").split(",")
    ]
    given = [arg for arg in argv if not arg.startswith("--")]
    children = [(name, list(child_argv)) for name, child_argv in json.loads(given[0])]
    warnings = json.loads(given[1]) if len(given) > 1 else []
    return supervise(children, warnings, preload)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
