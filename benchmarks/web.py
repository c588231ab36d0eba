"""Throughput and latency of `distributor web` on PostgreSQL, as readers hit it after a send.

    python benchmarks/web.py [--connections 50] [--seconds 10] [--readers 30000]
        [--client auto|wrk|python] [--only archive pixel click one-click]

`distributor web` runs as deployed (the real CLI with its defaults: a worker process per CPU
core, as it picks when the rate limits are shared in Redis) in a child process on a throw-away
PostgreSQL database (server at BENCH_POSTGRES_URL) holding the sample issue, sent to
``--readers`` subscribers with tracking on, and a throw-away redis-server as ``REDIS_URL``.
The load comes from another process over loopback: Debian's ``wrk`` when installed
(``scripts/setup`` installs it), else a Python asyncio + httpx client (slower itself: its
figures are a floor). Each case runs ``--seconds`` at
``--connections`` connections after a short warm-up, and prints requests/s, p50 and p99 latency,
errors (refused connections, timeouts and any answer but the expected status) and the web
server's CPU time per request (a figure that holds whatever else the machine runs):

* archive: ``GET /archive/471``, the issue page every message's "view in browser" link opens;
* one-click: ``POST /u/<token>`` with ``List-Unsubscribe=One-Click`` (RFC 8058), a distinct
  reader each time, as mail providers send them;
* pixel: ``GET /t/o/<token>.gif`` and click: ``GET /t/c/<token>?u=…&s=…`` (a 302), readers in
  turn.

Afterwards it checks that the work was done: readers unsubscribed, opens and clicks recorded
(the web server writes those in batches, so they are counted once it has flushed).

Targets on a 2-core machine, shared with the load generator: pixel and click ≥ 1,500 req/s with
p99 < 50 ms at 50 connections; one-click ≥ 300 req/s; archive ≥ 800 req/s; no errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from send import SAMPLE, import_issue, make_audience, start_send
from sqlalchemy import func, select

from distributor.config import Settings
from distributor.db import dispose_engines, transaction, upgrade, utcnow
from distributor.devservers.ports import free_port, wait_for_port
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.devservers.processes import stop_process
from distributor.devservers.redis_server import RedisServer
from distributor.issues.importer import read_issue_file
from distributor.readers.models import EngagementEvent, EngagementKind
from distributor.render.tracking import click_url, open_pixel_url
from distributor.sending.lifecycle import start_due_sends
from subscribers.links import PublicLinks
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.tokens import TokenSigner

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
SECRET = "benchmark-secret-key-0123456789abcdef"
TARGET = "https://www.hzgh.org/news/2022/12/27/471.html?from=newsletter"
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"
WARM_UP_SECONDS = 2.0
TARGET_P99_MS = 50.0


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    paths: list[str]
    status: int  # the answer expected; anything else is an error
    rate: float  # the target, requests per second
    p99_ms: float | None  # the latency target, if any
    body: str = ""


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


# --- the data and the server --------------------------------------------------------------------


def fill(url: str, readers: int) -> tuple[int, list[int]]:
    """The sample issue, ``readers`` subscribers on one list and a started, tracked send of the
    issue to them (so the issue is in the archive); the send and the readers' ids. The same data
    as the send benchmark's."""
    issue_id = import_issue(url)
    ids = make_audience(url, readers)
    send_id = start_send(url, issue_id, tracking=True)
    with transaction(url) as session:
        start_due_sends(session, utcnow())
    return send_id, ids


def cases(send_id: int, readers: list[int], issue_number: int) -> dict[str, Case]:
    links = PublicLinks("", TokenSigner(SECRET))
    tracking = [links.tracking_token(send_id, reader) for reader in readers]
    signer = TokenSigner(SECRET)
    return {
        "archive": Case("archive", "GET", [f"/archive/{issue_number}"], 200, 800, None),
        "one-click": Case(
            "one-click",
            "POST",
            [links.unsubscribe(reader, send_id) for reader in readers],
            200,
            300,
            None,
            body=ONE_CLICK_BODY,
        ),
        "pixel": Case(
            "pixel", "GET", [open_pixel_url("", t) for t in tracking], 200, 1500, TARGET_P99_MS
        ),
        "click": Case(
            "click",
            "GET",
            [click_url("", t, TARGET, signer) for t in tracking],
            302,
            1500,
            TARGET_P99_MS,
        ),
    }


@contextlib.contextmanager
def web_server(
    url: str, redis_url: str, workdir: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], int]]:
    """``distributor web`` in a child process, as deployed; its URL, process and how many
    workers it runs. SIGTERM at the end (each worker's lifespan writes what opens and clicks it
    still holds)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "DISTRIBUTOR_SECRET_KEY": SECRET,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "MAIL_FROM": "杭州工运 <newsletter@news.example-union.org>",
    }
    env.pop("CELERY_BROKER_URL", None)
    env.pop("WEB_WORKERS", None)  # the product's default
    with (workdir / "web.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "distributor", "web", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_port(port, timeout=120)  # a busy machine imports slowly
        # The port opens before the workers are up (the parent listens for them): wait for an
        # answer, whatever it says.
        with httpx.Client(base_url=base, timeout=120) as client:
            client.get("/healthz")
        yield base, server, Settings.from_env(env).web_worker_count
    finally:
        stop_process(server, timeout=30)


# --- the load generators, each in a process of its own ----------------------------------------

# wrk runs this in each of its threads: readers in turn (thread i takes i, i + threads, …), the
# expected status checked, one JSON line at the end.
WRK_SCRIPT = """
local paths, threads, counter = {}, {}, 0
unexpected = 0  -- a global: done() reads each thread's with thread:get
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local method, body = os.getenv("BENCH_METHOD"), os.getenv("BENCH_BODY")
local expected = tonumber(os.getenv("BENCH_STATUS"))
local thread_count = tonumber(os.getenv("BENCH_THREADS"))
local headers = {}
if body ~= "" then headers["Content-Type"] = "application/x-www-form-urlencoded" end
if body == "" then body = nil end

function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

function request()
  local index = (id + counter * thread_count) % #paths + 1
  counter = counter + 1
  return wrk.format(method, paths[index], headers, body)
end

function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do bad = bad + thread:get("unexpected") end
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %f, "p50_ms": %f, "p99_ms": %f, "errors": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout + bad))
end
"""


def run_wrk(base: str, case: Case, connections: int, seconds: float, workdir: Path) -> Result:
    paths_file = workdir / f"{case.name}.paths"
    paths_file.write_text("\n".join(case.paths) + "\n")
    threads = min(2, connections)
    script = workdir / "bench.lua"
    script.write_text(WRK_SCRIPT)
    env = {
        **os.environ,
        "BENCH_PATHS": str(paths_file),
        "BENCH_METHOD": case.method,
        "BENCH_BODY": case.body,
        "BENCH_STATUS": str(case.status),
        "BENCH_THREADS": str(threads),
    }
    done = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds:g}s",
            "--timeout",
            "5s",
            "-s",
            str(script),
            base,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    last = done.stdout.strip().splitlines()[-1]
    return Result(**json.loads(last))


async def python_load(base: str, case: Case, connections: int, seconds: float) -> dict[str, float]:
    """``connections`` clients in turn over the case's paths for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    turn = 0
    headers = {"Content-Type": "application/x-www-form-urlencoded"} if case.body else {}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=5) as client:
        start = time.perf_counter()
        deadline = start + seconds

        async def one_connection() -> None:
            nonlocal errors, turn
            while time.perf_counter() < deadline:
                path = case.paths[turn % len(case.paths)]
                turn += 1
                sent = time.perf_counter()
                try:
                    answer = await client.request(
                        case.method, path, content=case.body or None, headers=headers
                    )
                    errors += answer.status_code != case.status
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - sent)

        await asyncio.gather(*(one_connection() for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()

    def percentile(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "errors": errors,
    }


def run_python(base: str, case: Case, connections: int, seconds: float, workdir: Path) -> Result:
    """The Python client in a child process, so it does not share this one's interpreter."""
    case_file = workdir / f"{case.name}.json"
    case_file.write_text(json.dumps(case.__dict__))
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--client-process",
            base,
            str(case_file),
            str(connections),
            str(seconds),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return Result(**json.loads(done.stdout.strip().splitlines()[-1]))


def client_process(base: str, case_file: str, connections: str, seconds: str) -> None:
    case = Case(**json.loads(Path(case_file).read_text()))
    print(json.dumps(asyncio.run(python_load(base, case, int(connections), float(seconds)))))


# --- the checks afterwards ----------------------------------------------------------------------


def done_work(url: str, send_id: int, name: str) -> int:
    """What the case left in the database: readers unsubscribed, opens, clicks."""
    with transaction(url) as session:
        if name == "one-click":
            count = session.scalar(
                select(func.count()).where(Subscriber.status == SubscriberStatus.UNSUBSCRIBED)
            )
        else:
            kind = EngagementKind.OPEN if name == "pixel" else EngagementKind.CLICK
            count = session.scalar(
                select(func.count()).where(
                    EngagementEvent.send_id == send_id, EngagementEvent.kind == kind
                )
            )
    return int(count or 0)


def settled(url: str, send_id: int, name: str, timeout: float = 15) -> int:
    """The case's count once it stops growing (the server writes events in batches)."""
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = done_work(url, send_id, name)
        if count == last:
            return count
        last = count
        time.sleep(1.0)
    return last


def children(pid: int) -> list[int]:
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def cpu_seconds(pid: int) -> float:
    """User and system CPU time the process and its children (the workers) are using: what a
    request costs, whatever else runs on the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in children(pid))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client-process":
        client_process(*sys.argv[2:6])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--readers", type=int, default=30_000)
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--only", nargs="+", choices=["archive", "one-click", "pixel", "click"], default=None
    )
    args = parser.parse_args()
    # A SIGTERM (timeout, an impatient colleague) still stops the server and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    run = run_wrk if client == "wrk" else run_python
    failed = []
    with (
        tempfile.TemporaryDirectory(prefix="distributor-web-bench-") as tmp,
        throwaway_database(POSTGRES_ADMIN_URL, "distributor_bench_web") as url,
        RedisServer(Path(tmp)) as redis_server,
    ):
        workdir = Path(tmp)
        upgrade(url)
        send_id, readers = fill(url, args.readers)
        issue_number = read_issue_file(SAMPLE).document.number
        chosen = cases(send_id, readers, issue_number)
        names = args.only or ["archive", "pixel", "click", "one-click"]
        with web_server(url, redis_server.url, workdir) as (base, server, workers):
            print(
                f"distributor web ({workers} worker processes, its default) on PostgreSQL, "
                f"{args.readers:,} readers; load from {client} in another process, "
                f"{args.connections} connections, {args.seconds:g} s per case; "
                f"{os.cpu_count()} CPUs shared by both"
            )
            header = f"{'case':<10} {'requests':>9} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
            print(header + f"{'errors':>6} {'CPU ms':>7}  target")
            for name in names:
                case = chosen[name]
                warm = Case(**{**case.__dict__, "paths": case.paths[-200:]})
                run(base, warm, min(10, args.connections), WARM_UP_SECONDS, workdir)
                before = settled(url, send_id, name)  # the warm-up's, once written
                cpu = cpu_seconds(server.pid)
                result = run(base, case, args.connections, args.seconds, workdir)
                cpu_ms = (cpu_seconds(server.pid) - cpu) * 1000 / max(1, result.requests)
                if server.poll() is not None:
                    raise SystemExit(f"the web server died: see {workdir / 'web.log'}")
                recorded = settled(url, send_id, name) - before
                target = f"≥ {case.rate:,.0f}/s" + (
                    f", p99 < {case.p99_ms:g} ms" if case.p99_ms else ""
                )
                met = (
                    result.rate >= case.rate
                    and result.errors == 0
                    and (case.p99_ms is None or result.p99_ms < case.p99_ms)
                )
                if not met:
                    failed.append(name)
                print(
                    f"{name:<10} {result.requests:>9,} {result.rate:>8,.0f} "
                    f"{result.p50_ms:>7.1f} {result.p99_ms:>7.1f} {result.errors:>6} "
                    f"{cpu_ms:>7.2f}  "
                    f"{target}: {'PASS' if met else 'MISSED'}"
                    + (f"; {recorded:,} recorded" if name != "archive" else "")
                )
        dispose_engines()
    print(
        "CPU ms: the web server's CPU time per request, all its processes together (1000 / CPU ms "
        "is what it serves per core it has to itself)"
    )
    if failed:
        print(f"Missed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
