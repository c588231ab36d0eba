"""The web server comes up and stays up on a busy machine: a slow child is waited for, a child
that cannot start is retried with growing pauses (each said in one line), a hung child is
replaced, and ``distributor web`` serves one-click unsubscribes and pixels under CPU load."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from distributor.db import transaction
from distributor.devservers.ports import free_port
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.web_server import serving
from distributor.render.tracking import open_pixel_url
from distributor.web.warmup import WarmingApp
from subscribers.links import PublicLinks
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.tokens import TokenSigner
from tests.conftest import ROOT
from tests.support.audience import make_audience
from tests.support.sending import SECRET, import_sample
from tests.support.web import started_send

LINKS = PublicLinks("", TokenSigner(SECRET))
RESTARTED = re.compile(r"web worker \[\d+\] .*starting another")


@contextmanager
def running(command: list[str], log: Path, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **env},
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def slow_web(port: int, log: Path, *, load_seconds: float, start: float, hang: float) -> Any:
    return running(
        [sys.executable, "-m", "tests.support.slow_web", str(port), str(start), str(hang)],
        log,
        SLOW_APP_SECONDS=str(load_seconds),
    )


def wait_until(check: Callable[[], bool], seconds: float, log: Path) -> float:
    """How long ``check`` took to come true; fails with the server's log after ``seconds``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, log.read_text()
        time.sleep(0.2)
    return time.monotonic() - started


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@contextmanager
def cpu_burners(per_core: int) -> Iterator[None]:
    """Processes that do nothing but burn CPU, at the server's own priority."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(per_core * (os.cpu_count() or 1))
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_a_child_slow_to_start_is_waited_for_not_killed(tmp_path: Path) -> None:
    """uvicorn's own manager kills a child that has not answered within 5 s, start-up included."""
    port, log = free_port(), tmp_path / "web.log"
    with slow_web(port, log, load_seconds=7, start=60, hang=30):
        took = wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 60, log)
        assert took >= 6
    assert not RESTARTED.search(log.read_text()), log.read_text()


def test_a_child_that_cannot_start_is_retried_after_growing_pauses(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "web.log"
    with slow_web(port, log, load_seconds=600, start=1, hang=30):
        wait_until(lambda: len(RESTARTED.findall(log.read_text())) >= 4, 30, log)
        time.sleep(3)
    lines = RESTARTED.findall(log.read_text())
    pauses = [float(p) for p in re.findall(r"was not ready after 1 s before it was ready "
                                           r"\(\d+ in a row\); starting another in (\d+) s",
                                           log.read_text())]
    assert pauses[:4] == [1, 2, 4, 8], log.read_text()
    assert len(lines) <= 5, "children are replaced in a loop instead of after pauses"


def test_a_child_that_stops_answering_is_replaced(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "web.log"
    url = f"http://127.0.0.1:{port}/"
    with slow_web(port, log, load_seconds=0, start=60, hang=2):
        wait_until(lambda: answers(url), 60, log)
        hung = int(httpx.get(url).text.removeprefix("served by "))
        # Once its manager has seen it ready: a child stopped before it ever answered a ping is
        # one that is still starting, for which the start allowance holds.
        wait_until(lambda: f"web worker [{hung}] is ready" in log.read_text(), 30, log)
        os.kill(hung, signal.SIGSTOP)  # alive, but answers nothing: as a deadlocked process
        wait_until(lambda: f"web worker [{hung}] did not answer for 2 s" in log.read_text(), 30,
                   log)
        served_by = {httpx.get(url, timeout=10).text for _ in range(6)}
        assert f"served by {hung}" not in served_by


def test_distributor_web_serves_unsubscribes_and_pixels_under_cpu_load(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    """Two CPU burners per core, the default worker count (one per core: the limits are shared in
    Redis): /healthz answers, then every one-click unsubscribe and pixel is served, and no
    child is ever restarted."""
    make_audience(sqlite_url, "members", 16)
    issue_id = import_sample(sqlite_url, sample_issue_path)
    send_id = started_send(sqlite_url, issue_id, "members", tracking=True)
    with transaction(sqlite_url) as session:
        readers = list(session.scalars(select(Subscriber.id).order_by(Subscriber.id)))
    port, log = free_port(), tmp_path / "web.log"
    base = f"http://127.0.0.1:{port}"
    env = {"HOME": str(tmp_path), "DATABASE_URL": sqlite_url, "DISTRIBUTOR_SECRET_KEY": SECRET,
           "REDIS_URL": redis_server.url}
    with cpu_burners(per_core=2), running(
        [sys.executable, "-m", "distributor", "web", "--port", str(port)], log, **env
    ):
        wait_until(lambda: answers(f"{base}/healthz"), 90, log)
        served = []
        for reader in readers:
            served.append(httpx.post(
                base + LINKS.unsubscribe(reader, send_id),
                data={"List-Unsubscribe": "One-Click"},
                timeout=30,
            ).status_code)
            pixel = open_pixel_url(base, LINKS.tracking_token(send_id, reader))
            served.append(httpx.get(pixel, timeout=30).status_code)
    assert served == [200] * (2 * len(readers))
    text = log.read_text()
    assert not RESTARTED.search(text) and "died" not in text, text
    with transaction(sqlite_url) as session:
        statuses = set(session.scalars(select(Subscriber.status)))
    assert statuses == {SubscriberStatus.UNSUBSCRIBED}


def test_a_slow_or_huge_request_head_does_not_hold_a_connection(
    sqlite_url: str, tmp_path: Path
) -> None:
    """A head that trickles in is cut off after WEB_HEADER_TIMEOUT; one over
    WEB_MAX_HEADER_BYTES is answered 431; a normal request, and a second one on the same
    connection, are served as ever."""
    port, log = free_port(), tmp_path / "web.log"
    env = {"HOME": str(tmp_path), "DATABASE_URL": sqlite_url, "DISTRIBUTOR_SECRET_KEY": SECRET,
           "WEB_HEADER_TIMEOUT": "1", "WEB_MAX_HEADER_BYTES": "8192"}
    with running([sys.executable, "-m", "distributor", "web", "--port", str(port)], log, **env):
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/livez"), 60, log)
        slow = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(50)]
        for connection in slow:
            connection.sendall(b"GET /livez HTTP/1.1\r\nHost: news.example.org\r\nX-Slow: ")
        started = time.monotonic()
        assert all(connection.recv(1024) == b"" for connection in slow)  # closed by the server
        assert time.monotonic() - started < 5
        with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
            connection.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
            assert connection.recv(1024).startswith(b"HTTP/1.1 431 ")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            assert [client.get("/livez").status_code for _ in range(2)] == [200, 200]
        for connection in slow:
            connection.close()


def test_a_process_answers_its_health_checks_while_it_builds_the_application() -> None:
    """Past its grace the process listens: /livez and /healthz say it is starting, /readyz
    that it is not ready, and a reader's request waits for the application, then is served."""
    built = threading.Event()
    app = FastAPI()

    @app.get("/u/{token}")
    def unsubscribe(token: str) -> dict[str, str]:
        return {"unsubscribed": token}

    @app.get("/readyz")
    def ready() -> dict[str, str]:
        return {"status": "ok"}

    def build() -> FastAPI:
        built.wait(30)
        return app

    with serving(WarmingApp(build, grace=0.2)) as url:
        assert httpx.get(f"{url}/livez").json()["status"] == "starting"
        health = httpx.get(f"{url}/healthz")
        assert (health.status_code, health.json()["status"]) == (200, "starting")
        assert httpx.get(f"{url}/readyz").status_code == 503
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(httpx.get, f"{url}/u/abc", timeout=30)
            time.sleep(0.5)
            assert not waiting.done()  # held, not refused
            built.set()
            assert waiting.result().json() == {"unsubscribed": "abc"}
        assert httpx.get(f"{url}/readyz").status_code == 200
