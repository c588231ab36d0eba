"""Server programs run as child processes: find the program, start it on a free port, stop it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Self

from distributor.devservers.ports import free_port, wait_for_port
from distributor.errors import MissingProgram

# Postfix installs smtp-sink in sbin, which is not on an ordinary user's PATH.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")


def find_program(name: str, package: str) -> str:
    """The path of the program ``name``; the error says which package brings it."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))
    if found is None:
        raise MissingProgram(
            f"{name} is not installed: scripts/setup installs it (Debian package {package})"
        )
    return found


def stop_process(
    process: subprocess.Popen[bytes], *, group: bool = False, timeout: float = 30
) -> None:
    """SIGTERM (the whole process group with ``group``), SIGKILL after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    if group:
        os.killpg(process.pid, signal.SIGTERM)
    else:
        process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_process(process, group=group)


def kill_process(process: subprocess.Popen[bytes], *, group: bool = False) -> None:
    """SIGKILL (the whole process group with ``group``): what a crashed machine does."""
    if process.poll() is None:
        if group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
    process.wait()


class ServerProcess:
    """A server program listening on 127.0.0.1:``port``, started again after a stop if asked.

    Subclasses say how to run it (:meth:`argv`); its output goes to ``log_path``, or nowhere.
    """

    def __init__(self, log_path: Path | None = None) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Run the program and return once it accepts connections."""
        if self.log_path is None:
            self.process = subprocess.Popen(
                self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        else:
            with self.log_path.open("wb") as log:
                self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise

    def exit_code(self) -> int | None:
        """How the program ended, if it stopped by itself; None while it runs."""
        return self.process.poll() if self.process is not None else None

    def stop(self) -> None:
        """Kill it: a throw-away server keeps nothing worth a clean shutdown."""
        if self.process is not None:
            kill_process(self.process)
            self.process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
