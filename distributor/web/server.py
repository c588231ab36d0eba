"""The web server: uvicorn, and its process manager, which starts worker processes patiently.

uvicorn's own manager pings every child each half second and kills one that has not answered
within five seconds, its start-up included. On a loaded machine (a large send with tracking on,
load average 10 on two cores) a child spends longer than that just starting Python, so every
child was killed before it served anything, and the next one too, forever: "Child process died"
and connection refused. This manager pings without blocking and tells a child that is starting
from one that hangs:

- a child that is starting gets ``start_timeout`` to become ready (its server listening);
- a child that answered pings and then stops answering for ``hang_timeout`` is killed and
  replaced, whether it was ready or still starting;
- a child that dies or times out before it was ready is replaced after a pause that doubles
  (1 s up to a minute), each said in one log line; one that failed to load the application
  (uvicorn's start-up failure code) stops the server, as uvicorn does, since every other would
  fail the same way.
"""

from __future__ import annotations

import atexit
import logging
import os
import pickle
import shutil
import tempfile
import time
from dataclasses import dataclass
from socket import socket

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.server import Server
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from distributor.logs import uvicorn_log_config
from distributor.redaction import redact_every_log_record
from distributor.web.prometheus import MULTIPROCESS_DIR
from distributor.web.protocol import BoundedHttpToolsProtocol

log = logging.getLogger("uvicorn.error")
FIRST_PAUSE = 1.0  # seconds before replacing a child that never became ready
LONGEST_PAUSE = 60.0


@dataclass
class Watch:
    """What the manager knows of one child: when it started, whether it is ready, and the ping
    it is waiting for an answer to (one at a time, so answers never queue up stale)."""

    started_at: float
    ready_at: float | None = None
    ping_sent_at: float | None = None
    answered: bool = False  # it has answered a ping: its pong thread runs

    def poll(self, process: Process, now: float) -> None:
        """Read the child's answer if one came; send the next ping if none is out. Never waits."""
        connection = process.parent_conn
        try:
            if self.ping_sent_at is not None and connection.poll():
                started = connection.recv()
                self.ping_sent_at = None
                self.answered = True
                if started and self.ready_at is None:
                    self.ready_at = now
                    log.info(
                        "web worker [%s] is ready, %.1f s after its start",
                        process.pid, now - self.started_at,
                    )
            if self.ping_sent_at is None:
                connection.send(b"ping")
                self.ping_sent_at = now
        except (OSError, EOFError, pickle.UnpicklingError):
            pass  # the child is going away: the exit check sees it


@dataclass
class Slot:
    """One of the ``workers`` places: its child, and when a replacement may start."""

    process: Process
    watch: Watch
    restart_at: float | None = None  # set while waiting to replace a child that failed


class PatientSupervisor(Multiprocess):
    """uvicorn's :class:`Multiprocess` with a start-up allowance, hang detection and backoff in
    place of its blocking five-second ping."""

    def __init__(
        self, config: Config, sockets: list[socket], *, start_timeout: float, hang_timeout: float
    ) -> None:
        # What a SIGHUP restart waits for each new child (uvicorn's restart_all).
        config.timeout_worker_healthcheck = int(start_timeout)
        super().__init__(config, sockets)
        self.start_timeout, self.hang_timeout = start_timeout, hang_timeout
        self.slots: list[Slot] = []
        self.failures = 0  # children in a row that never became ready

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            self.slots.append(self._start())
        self.processes = [slot.process for slot in self.slots]

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        self._adopt_signalled_changes()
        now = time.monotonic()
        for index, slot in enumerate(self.slots):
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self.slots[index] = self._start()
                continue
            process, watch = slot.process, slot.watch
            if not process.process.is_alive():
                self._replace(index, f"exited with code {process.exitcode}", now)
                continue
            watch.poll(process, now)
            unanswered = now - watch.ping_sent_at if watch.ping_sent_at is not None else 0.0
            if watch.answered and unanswered > self.hang_timeout:
                self._kill(process)
                self._replace(index, f"did not answer for {self.hang_timeout:.0f} s", now)
            elif watch.ready_at is None and now - watch.started_at > self.start_timeout:
                self._kill(process)
                self._replace(index, f"was not ready after {self.start_timeout:.0f} s", now)
            elif watch.ready_at is not None:
                self.failures = 0
        self.processes = [slot.process for slot in self.slots]

    def _start(self) -> Slot:
        process = Process(self.config, self.sockets)
        process.start()
        return Slot(process, Watch(time.monotonic()))

    def _replace(self, index: int, why: str, now: float) -> None:
        slot = self.slots[index]
        pid, ready = slot.process.pid, slot.watch.ready_at is not None
        if slot.process.exitcode == STARTUP_FAILURE:
            log.error(
                "web worker [%s] could not load the application (see above); stopping the server",
                pid,
            )
            self.should_exit.set()
            return
        if ready:
            log.warning("web worker [%s] %s; starting another", pid, why)
            self.slots[index] = self._start()
            return
        self.failures += 1
        pause = min(LONGEST_PAUSE, FIRST_PAUSE * 2 ** (self.failures - 1))
        log.warning(
            "web worker [%s] %s before it was ready (%d in a row); starting another in %.0f s",
            pid, why, self.failures, pause,
        )
        slot.restart_at = now + pause

    @staticmethod
    def _kill(process: Process) -> None:
        process.kill()
        process.join()

    def _adopt_signalled_changes(self) -> None:
        """uvicorn's signal handlers (SIGTTIN/SIGTTOU add or remove a child, SIGHUP restarts
        them all) change ``self.processes``; follow them."""
        known = {id(slot.process): slot for slot in self.slots}
        if [id(p) for p in self.processes] == list(known):
            return
        self.slots = [
            known.get(id(process)) or Slot(process, Watch(time.monotonic()))
            for process in self.processes
        ]


def serve(
    *,
    host: str,
    port: int,
    workers: int,
    start_timeout: float,
    hang_timeout: float,
    log_format: str = "text",
) -> None:
    """Serve the pages on ``host``:``port`` in ``workers`` processes (one: in this process)."""
    redact_every_log_record()
    config = Config(
        # Each process builds the app from the same environment as this one, behind a listener
        # that answers at once (distributor.web.warmup).
        "distributor.web.warmup:app_for_server",
        factory=True,
        http=BoundedHttpToolsProtocol,  # a deadline and a size limit for each request's head
        workers=workers,
        host=host,
        port=port,
        proxy_headers=False,  # the app applies them, from FORWARDED_ALLOW_IPS only
        server_header=False,
        # Page URLs carry signed tokens, which are credentials: keep them out of the logs.
        access_log=False,
        log_config=uvicorn_log_config(log_format),
    )
    if workers == 1:
        server = Server(config)
        server.run()
        if not server.started:
            raise SystemExit(STARTUP_FAILURE)
        return
    if not os.environ.get(MULTIPROCESS_DIR):
        # Each process writes its request latencies here, and /metrics sums them all.
        os.environ[MULTIPROCESS_DIR] = tempfile.mkdtemp(prefix="distributor-metrics-")
        atexit.register(shutil.rmtree, os.environ[MULTIPROCESS_DIR], ignore_errors=True)
    supervisor = PatientSupervisor(
        config, [config.bind_socket()], start_timeout=start_timeout, hang_timeout=hang_timeout
    )
    supervisor.run()
