"""A real Celery worker process: ``celery -A distributor worker``, with beat unless asked not to."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from distributor.devservers.processes import kill_process, stop_process


class WorkerProcess:
    """A worker in a session of its own, so that stop() and kill() take its pool children and beat
    down with it; it may be killed (as a crashed machine) and started again. Each start logs to a
    file of its own in ``workdir``, where beat keeps its schedule too.

    ``env`` is laid over this process's environment, or with ``inherit_environment=False`` is the
    whole of the worker's (for a caller that has taken settings out of it). With ``supervised``
    it is ``distributor worker`` as shipped: a supervisor with the Celery worker (the sending
    process) and beat as its children, which :meth:`started_pids` names.
    """

    def __init__(
        self,
        env: Mapping[str, str],
        workdir: Path,
        *,
        concurrency: int | None = 2,
        beat: bool = True,
        inherit_environment: bool = True,
        supervised: bool = False,
    ) -> None:
        self.env = {**os.environ, **env} if inherit_environment else dict(env)
        self.workdir = workdir
        self.concurrency = concurrency
        self.beat = beat
        self.supervised = supervised
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        """The log of the latest start."""
        return self.workdir / f"worker-{self.starts}.log"

    def argv(self) -> list[str]:
        concurrency = [] if self.concurrency is None else [f"--concurrency={self.concurrency}"]
        if self.supervised:
            beat = ["--beat"] if self.beat else []
            return [sys.executable, "-m", "distributor", "worker", *concurrency, *beat]
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "distributor",
            "worker",
            *concurrency,
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            f"--hostname=worker{self.starts}-{uuid.uuid4().hex[:6]}@%h",
        ]
        if self.beat:
            argv += ["--beat", f"--schedule={self.workdir / 'beat-schedule'}"]
        return argv

    def start(self) -> None:
        self.starts += 1
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv(),
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def exit_code(self) -> int | None:
        """How the worker ended, if it stopped by itself; None while it runs."""
        return self.process.poll() if self.process is not None else None

    def wait_until_ready(self, timeout: float = 60) -> None:
        """Return once the worker says it is ready to take tasks (supervised: every sending
        process it started)."""
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.exit_code() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker did not start; {self.log_path} ends:\n{self.tail()}"
                )
            time.sleep(0.1)

    def _ready(self) -> bool:
        ready = self.log_path.read_bytes().count(b" ready.")
        return ready > 0 and (not self.supervised or ready >= len(self.started_pids()))

    def kill(self) -> None:
        """SIGKILL the whole worker: parent, pool children and beat, as a crashed machine."""
        if self.process is not None:
            kill_process(self.process, group=True)
            self.process = None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the whole worker (a warm shutdown), SIGKILL after ``timeout`` seconds."""
        if self.process is not None:
            stop_process(self.process, group=True, timeout=timeout)
            self.process = None

    def logs(self) -> str:
        """Every start's log, oldest first."""
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("worker-*.log"))
        )

    def started_pids(self, name: str = "worker") -> list[int]:
        """The process ids a supervised worker gave its ``name`` children, in order of start."""
        started = re.compile(rf"Started the {name} process \(pid (\d+)\)")
        return [int(pid) for pid in started.findall(self.logs())]

    def tail(self, lines: int = 30) -> str:
        """The last lines of the latest start's log."""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_worker(
    env: Mapping[str, str],
    workdir: Path,
    *,
    concurrency: int | None = 2,
    beat: bool = True,
    inherit_environment: bool = True,
    supervised: bool = False,
) -> Iterator[WorkerProcess]:
    """A started worker, stopped when the block ends (see :class:`WorkerProcess`); with
    ``concurrency=None`` and ``supervised`` it runs the product's defaults (what ``distributor
    worker`` runs: a sending process per core)."""
    process = WorkerProcess(
        env,
        workdir,
        concurrency=concurrency,
        beat=beat,
        inherit_environment=inherit_environment,
        supervised=supervised,
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
