"""Real Celery worker processes (with beat embedded) that a test can kill -9 and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class WorkerProcess:
    def __init__(
        self, env: dict[str, str], workdir: Path, *, concurrency: int = 2, beat: bool = True
    ) -> None:
        self.env = {**os.environ, **env}
        self.workdir = workdir
        self.concurrency = concurrency
        self.beat = beat
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "distributor",
            "worker",
            f"--concurrency={self.concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=test{self.starts}@%h",
        ]
        if self.beat:
            argv += ["--beat", f"--schedule={self.workdir / 'beat-schedule'}"]
        log = self.log_path.open("wb")
        # A session of its own, so kill() takes the pool children and beat down with it.
        self.process = subprocess.Popen(
            argv,
            env=self.env,
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        """SIGKILL the whole worker: parent, pool children and beat, as a crashed machine."""
        if self.process is not None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
        self.process = None

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("worker-*.log"))
        )


@contextmanager
def running_worker(env: dict[str, str], workdir: Path) -> Iterator[WorkerProcess]:
    """A started worker (with beat), stopped when the block ends."""
    process = WorkerProcess(env, workdir)
    process.start()
    try:
        yield process
    finally:
        process.stop()
