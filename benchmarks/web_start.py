"""`distributor web` starting and serving on a busy machine, against uvicorn's own process manager.

    python benchmarks/web_start.py [--readers 20000] [--minutes 5] [--baseline-minutes 1]
        [--burners-per-core 2] [--only before uvicorn product]

The machine is made as busy as during a large send with tracking on: a 20,000-reader tracked
send in progress (`distributor worker --beat` on PostgreSQL and Redis, to smtp-sink, held to
``RATE_LIMIT`` so that it lasts the whole window) and two CPU-burning processes per core. Then
the web server starts with the product's default worker count (one per core: the rate limits
are shared in Redis) and a client, in another process's thread, sends one-click unsubscribes
(RFC 8058 POST, a distinct reader each) and open pixels, one after the other, for ``--minutes``.
Printed per case: the seconds from start to the first answer of ``/healthz`` and to its first
200; requests answered, refused connections, timeouts, other answers; p50 and p99 latency; child
processes restarted (the server's log).

The cases, in one run on the same machine state:
* before (the baseline): `distributor web` as it ran before it had a process manager of its own
  (benchmarks/web_as_before.py: every CLI command imported at start, uvicorn's manager, which
  kills a child that has not answered its ping within 5 s, start-up included);
* uvicorn: ``uvicorn distributor.web.app:app_from_environment --factory --workers N``, uvicorn's
  manager with a light ``__main__``;
* product: ``distributor web``.

Target (issue 29): /healthz answers within 30 s of start; for the whole window no refused
connection and no child restart.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from send import ENV, import_issue, make_audience, postgres_database, start_send
from sqlalchemy import func, select

from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.ports import free_port
from distributor.devservers.processes import stop_process
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.smtp_sink import SmtpSink
from distributor.render.tracking import open_pixel_url
from distributor.sending.models import Delivery
from distributor.vocabulary import DeliveryState
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

HEALTH_TARGET_SECONDS = 30.0
SEND_RATE = 70  # messages a second: 20,000 readers take about five minutes
RESTART_LINE = re.compile(r"Child process \[\d+\] died|web worker \[\d+\] .*starting another")


@dataclass
class Window:
    """What the client saw."""

    answered: int = 0
    refused: int = 0
    timeouts: int = 0
    other: int = 0  # answers but the expected status
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return self.refused + self.timeouts + self.other

    def percentile(self, share: float) -> float:
        if len(self.latencies_ms) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies_ms, n=100)[int(share * 100) - 1]


@dataclass
class Outcome:
    case: str
    first_answer: float | None = None  # seconds from start to /healthz's first answer
    first_ok: float | None = None  # … to its first 200
    window: Window = field(default_factory=Window)
    restarts: int = 0
    sent_during: int = 0  # messages the send delivered during the window

    @property
    def passed(self) -> bool:
        return (
            self.first_ok is not None
            and self.first_ok <= HEALTH_TARGET_SECONDS
            and self.window.errors == 0
            and self.restarts == 0
        )


@contextlib.contextmanager
def cpu_burners(per_core: int) -> Iterator[int]:
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(per_core * (os.cpu_count() or 1))
    ]
    try:
        yield len(burners)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def server_command(case: str, port: int, workers: int) -> list[str]:
    if case == "before":
        return [sys.executable, str(Path(__file__).with_name("web_as_before.py")), str(port),
                str(workers)]
    if case == "uvicorn":
        return [sys.executable, "-m", "uvicorn", "distributor.web.app:app_from_environment",
                "--factory", "--workers", str(workers), "--port", str(port), "--no-access-log"]
    return [sys.executable, "-m", "distributor", "web", "--port", str(port)]


def first_health(base: str, started: float, outcome: Outcome, limit: float) -> None:
    """Poll /healthz until it says 200 or ``limit`` seconds pass; note the first answer too."""
    while time.monotonic() - started < limit:
        try:
            status = httpx.get(f"{base}/healthz", timeout=5).status_code
        except httpx.TransportError:
            time.sleep(0.25)
            continue
        if outcome.first_answer is None:
            outcome.first_answer = time.monotonic() - started
        if status == 200:
            outcome.first_ok = time.monotonic() - started
            return
        time.sleep(0.25)


def load(base: str, send_id: int, readers: list[int], seconds: float, window: Window) -> None:
    """One-click unsubscribes of distinct readers and open pixels, in turn, for ``seconds``."""
    links = PublicLinks("", TokenSigner(ENV["DISTRIBUTOR_SECRET_KEY"]))
    deadline = time.monotonic() + seconds
    turn = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        while time.monotonic() < deadline:
            reader = readers[turn // 2 % len(readers)]
            started = time.perf_counter()
            try:
                if turn % 2 == 0:
                    answer = client.post(links.unsubscribe(reader, send_id),
                                         data={"List-Unsubscribe": "One-Click"})
                else:
                    answer = client.get(
                        open_pixel_url("", links.tracking_token(send_id, reader))
                    )
            except httpx.ConnectError:
                window.refused += 1
                time.sleep(0.1)
            except httpx.TimeoutException:
                window.timeouts += 1
            else:
                window.latencies_ms.append(1000 * (time.perf_counter() - started))
                if answer.status_code == 200:
                    window.answered += 1
                else:
                    window.other += 1
            turn += 1


def sent(url: str, send_id: int) -> int:
    with transaction(url) as session:
        return session.scalar(
            select(func.count()).where(
                Delivery.send_id == send_id, Delivery.state == DeliveryState.SENT
            )
        ) or 0


def run_case(case: str, readers_n: int, minutes: float, per_core: int) -> Outcome:
    outcome = Outcome(case)
    with tempfile.TemporaryDirectory(prefix="bench-web-start-") as tmp, \
            contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        url = stack.enter_context(postgres_database())
        redis = stack.enter_context(RedisServer(workdir))
        sink = stack.enter_context(SmtpSink(workdir / "smtp-sink.log"))
        env = {**ENV, "DATABASE_URL": url, "CELERY_BROKER_URL": redis.url,
               "REDIS_URL": redis.url, "SMTP_PORT": str(sink.port),
               "RATE_LIMIT": str(SEND_RATE)}
        issue_id = import_issue(url)
        readers = make_audience(url, readers_n)
        worker = stack.enter_context(running_worker(env, workdir, concurrency=None))
        worker.wait_until_ready()
        send_id = start_send(url, issue_id, tracking=True)
        while sent(url, send_id) == 0:
            time.sleep(0.5)
        burners = stack.enter_context(cpu_burners(per_core))
        time.sleep(5)  # the load settles
        print(f"  send {send_id} in progress ({sent(url, send_id):,} of {readers_n:,} sent), "
              f"{burners} CPU burners, load average {os.getloadavg()[0]:.1f}", flush=True)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_env = {**os.environ, **env, "PUBLIC_BASE_URL": base}
        server_env.pop("WEB_WORKERS", None)
        log = workdir / "web.log"
        with log.open("wb") as out:
            started = time.monotonic()
            server = subprocess.Popen(server_command(case, port, os.cpu_count() or 1),
                                      env=server_env, cwd=workdir, stdout=out,
                                      stderr=subprocess.STDOUT)
        try:
            first_health(base, started, outcome, limit=max(60.0, minutes * 60))
            before = sent(url, send_id)
            load(base, send_id, readers, minutes * 60, outcome.window)
            outcome.sent_during = sent(url, send_id) - before
        finally:
            stop_process(server, timeout=30)
        outcome.restarts = len(RESTART_LINE.findall(log.read_text(errors="replace")))
    return outcome


def report(outcome: Outcome) -> None:
    def seconds(value: float | None) -> str:
        return "never" if value is None else f"{value:.1f} s"

    w = outcome.window
    print(
        f"  {outcome.case}: /healthz first answer {seconds(outcome.first_answer)}, first 200 "
        f"{seconds(outcome.first_ok)}; {w.answered:,} requests answered, {w.refused:,} refused, "
        f"{w.timeouts} timeouts, {w.other} other answers; p50 {w.percentile(0.5):.0f} ms, "
        f"p99 {w.percentile(0.99):.0f} ms; {outcome.restarts} child restarts; the send "
        f"delivered {outcome.sent_during:,} meanwhile: {'PASS' if outcome.passed else 'MISSED'}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=20_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--baseline-minutes", type=float, default=1.0)
    parser.add_argument("--burners-per-core", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=("before", "uvicorn", "product"),
                        default=["before", "uvicorn", "product"])
    args = parser.parse_args()
    outcomes = []
    for case in args.only:
        minutes = args.minutes if case == "product" else args.baseline_minutes
        print(f"\n== {case}: {args.readers:,} readers, {minutes:g} min ==", flush=True)
        outcomes.append(run_case(case, args.readers, minutes, args.burners_per_core))
        report(outcomes[-1])
    print("\n== summary ==")
    for outcome in outcomes:
        report(outcome)
    product = [o for o in outcomes if o.case == "product"]
    sys.exit(0 if all(o.passed for o in product) else 1)


if __name__ == "__main__":
    main()
