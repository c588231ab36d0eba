"""End-to-end send throughput: N recipients through Celery, the database and SMTP to smtp-sink.

    python benchmarks/send.py [--n 10000 100000] [--embedded-n 20000] [--dkim-n 20000]
                              [--runs 3] [--concurrency C] [--baseline-processes 2] [--quick]
                              [--skip-postgres] [--skip-embedded] [--skip-dkim]

Each case runs on parts of its own: a PostgreSQL database created and dropped here (server at
BENCH_POSTGRES_URL) with a redis-server broker, or the embedded default (SQLite database and SQLite
broker in a temporary directory); a Postfix ``smtp-sink`` that counts what it accepts; a Celery
worker with beat embedded. The audience is bulk-inserted and timed apart. A baseline first sends
N copies of one message the engine would send (same personalised size) with plain smtplib from
``--baseline-processes`` processes over reused connections to the same sink; then the send is
created and measured from its first delivery to its state 'done'. The worker runs with the
product's defaults, as ``distributor worker --beat`` with no options and no engine settings (or
``--concurrency`` pool processes and as many dispatch slots, to compare). The RSS of the worker's
processes (parent, pool children, beat) is sampled from /proc every 0.5 s. A part that dies mid-run
(worker, sink, Redis) fails its case at once; SIGTERM still stops everything and drops the database.

Cases: PostgreSQL + Redis at each ``--n``; the embedded default (SQLite database and broker); and
PostgreSQL + Redis with DKIM signing (a fresh RSA-2048 key). Each case runs ``--runs`` times and
its row is the run of median ratio. Targets on a 2-core machine (issue 27): PostgreSQL + Redis
≥ 1.5 × the baseline (first milestone 1.2); embedded and DKIM ≥ 1.0 ×; the worker's processes
together ≤ 300 MB (the sum of their PSS, sampled as their RSS), and flat as N grows (peak at the
largest N at most 15 % above the smallest's).
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import re
import signal
import smtplib
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, insert, select, text

from distributor.campaigns.schedule import create_send
from distributor.campaigns.status import send_status
from distributor.config import Settings
from distributor.db import dispose_engines, get_engine, transaction, upgrade, utcnow
from distributor.devservers.celery_worker import WorkerProcess, running_worker
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from distributor.devservers.processes import ServerProcess
from distributor.devservers.redis_server import RedisServer
from distributor.devservers.smtp_sink import SmtpSink
from distributor.issues.importer import read_issue_file
from distributor.issues.store import save_issue
from distributor.render.dkim import DkimSigner
from distributor.render.email import compile_issue
from distributor.render.personalise import Recipient, personalise
from distributor.sending.models import Delivery, Send
from distributor.vocabulary import DeliveryState, Variant
from subscribers.links import PublicLinks
from subscribers.models import List, Subscriber, SubscriberStatus, Subscription, SubscriptionStatus
from subscribers.query import Audience
from subscribers.tokens import TokenSigner

POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
SAMPLE = Path(__file__).resolve().parents[1] / "distributor" / "samples" / "hzgy-471.txt"
LIST = "会员快讯"
ENV = {
    "DISTRIBUTOR_SECRET_KEY": "benchmark-secret-key-0123456789abcdef",
    "MAIL_FROM": "杭州工运 <newsletter@news.example-union.org>",
    "PUBLIC_BASE_URL": "https://news.example-union.org",
    "SMTP_HOST": "127.0.0.1",
    "SMTP_SECURITY": "none",
}
TARGET_RATIO = {"postgres": 1.5, "embedded": 1.0, "dkim": 1.0}
MILESTONE_RATIO = 1.2  # the first milestone of the PostgreSQL ratio
RSS_LIMIT_MB, RSS_GROWTH = 300, 1.15
DKIM_SELECTOR = "bench"
SAMPLE_SECONDS = 0.5
PROGRESS_SECONDS = 10.0


def address(i: int) -> str:
    return f"reader{i:06d}@example.org"


# --- the parts each case starts and stops -------------------------------------------------------


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """A migrated, empty PostgreSQL database of its own, dropped afterwards."""
    with throwaway_database(POSTGRES_ADMIN_URL, "distributor_bench") as url:
        upgrade(url)
        yield url


def settle_postgres(url: str) -> None:
    """Pay the set-up's debts before the measured send, as the hours between an import and a
    send do in use: autovacuum's pass over the freshly inserted audience (its statistics and
    visibility map), and a checkpoint, so that no time-based checkpoint (every 5 minutes,
    spread over half of them) falls inside the send by chance. One did, mid-way through a
    100,000 send, and that run lost a fifth of its rate to full-page writes."""
    with get_engine(url).connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")  # VACUUM's need
        connection.execute(text("VACUUM (ANALYZE) subscribers, subscriptions, lists"))
        connection.execute(text("CHECKPOINT"))


@contextlib.contextmanager
def sqlite_database(workdir: Path) -> Iterator[str]:
    url = f"sqlite:///{workdir / 'distributor.db'}"
    try:
        upgrade(url)
        yield url
    finally:
        dispose_engines()


# --- worker memory ------------------------------------------------------------------------------


def group_rss_kb(
    pgid: int, cpu_ticks: dict[int, int] | None = None, pss: dict[int, int] | None = None
) -> dict[int, int]:
    """VmRSS of every live process in process group ``pgid``, by pid; with ``cpu_ticks``, also
    each one's CPU time so far (user + system, in clock ticks); with ``pss``, each one's PSS in
    kB (its share of the pages it shares with others: what they use together adds up)."""
    rss = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            fields = stat.rpartition(")")[2].split()
            if int(fields[2]) != pgid:
                continue
            if cpu_ticks is not None:
                cpu_ticks[int(entry)] = int(fields[11]) + int(fields[12])
            status = Path(f"/proc/{entry}/status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        if match:
            rss[int(entry)] = int(match.group(1))
        if pss is not None:
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                rollup = Path(f"/proc/{entry}/smaps_rollup").read_text()
                found = re.search(r"^Pss:\s+(\d+) kB", rollup, re.MULTILINE)
                pss[int(entry)] = int(found.group(1)) if found else 0
    return rss


@dataclass
class RssPeaks:
    """Peak VmRSS in kB: of the group's leader (the supervisor, or a lone Celery worker), of the
    largest other process, of all together;
    and the CPU time the processes used (clock ticks, the latest sample of each)."""

    parent: int = 0
    child: int = 0
    total: int = 0
    pss: int = 0  # the highest sum of the processes' PSS
    processes: set[int] = field(default_factory=set)
    cpu_ticks: dict[int, int] = field(default_factory=dict)

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def add(self, pgid: int, sample: dict[int, int], pss: dict[int, int]) -> None:
        self.pss = max(self.pss, sum(pss.values()))
        self.parent = max(self.parent, sample.get(pgid, 0))
        self.child = max([self.child, *(kb for pid, kb in sample.items() if pid != pgid)])
        self.total = max(self.total, sum(sample.values()))
        self.processes |= sample.keys()


@contextlib.contextmanager
def sampling_rss(pgid: int) -> Iterator[RssPeaks]:
    """Sample the group's RSS every 0.5 s in a thread while the block runs."""
    peaks = RssPeaks()
    stop = threading.Event()

    def sample() -> None:
        while True:
            pss: dict[int, int] = {}
            peaks.add(pgid, group_rss_kb(pgid, peaks.cpu_ticks, pss), pss)
            if stop.wait(SAMPLE_SECONDS):
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peaks
    finally:
        stop.set()
        thread.join()


# --- where the machine's CPU goes ----------------------------------------------------------------


def _ticks(pid: int, *, children: bool = False) -> int:
    """utime + stime of ``pid`` so far (with ``children``, also those of its ended children that
    it waited for: a server's finished connections); 0 once it has ended."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0
    return sum(int(value) for value in fields[11 : 15 if children else 13])


def _postgres_ticks() -> int | None:
    """CPU ticks of the local PostgreSQL server so far: its postmaster, its live processes and
    those that ended (their time adds up in the postmaster's). None without a local server."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if stat[stat.index("(") + 1 : stat.rindex(")")] == "postgres":
            parents[int(entry)] = int(stat.rpartition(")")[2].split()[1])
    roots = [pid for pid, parent in parents.items() if parent not in parents]
    if len(roots) != 1:
        return None
    root = roots[0]
    live = sum(_ticks(pid) for pid, parent in parents.items() if parent == root)
    return _ticks(root, children=True) + live


@dataclass(frozen=True)
class CpuUse:
    """The machine's busy and total clock ticks, and the mail sink's and PostgreSQL's (None: not
    asked for, or no local server) over a span: from two :meth:`now` readings. The baseline
    waits for the sink's every answer and leaves cores idle; the engine keeps them busy."""

    busy: int
    total: int
    sink: int
    postgres: int | None

    @classmethod
    def now(cls, sink: SmtpSink, *, postgres: bool = False) -> CpuUse:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
        idle = values[3] + values[4]  # idle and iowait
        sink_pid = sink.process.pid if sink.process is not None else 0
        server = _postgres_ticks() if postgres else None
        return cls(sum(values) - idle, sum(values), _ticks(sink_pid), server)

    def __sub__(self, before: CpuUse) -> CpuUse:
        server = None
        if self.postgres is not None and before.postgres is not None:
            server = self.postgres - before.postgres
        return CpuUse(
            self.busy - before.busy, self.total - before.total, self.sink - before.sink, server
        )

    def describe(self, messages: int) -> str:
        """'56 % of the machine busy, 0.70 ms of CPU a message: the sink 0.28, …'."""
        per = 1000 / os.sysconf("SC_CLK_TCK") / max(messages, 1)
        text = (
            f"{100 * self.busy / max(self.total, 1):.0f} % of the machine busy, "
            f"{self.busy * per:.2f} ms of CPU a message: the sink {self.sink * per:.2f}"
        )
        if self.postgres is not None:
            text += f", PostgreSQL {self.postgres * per:.2f}"
        return text


# --- data ---------------------------------------------------------------------------------------


def import_issue(url: str) -> int:
    report = read_issue_file(SAMPLE)
    with transaction(url) as session:
        return save_issue(session, report.document, source_format=report.format).id


def start_send(url: str, issue_id: int, *, tracking: bool = False) -> int:
    """A send of the issue to the benchmark's list, now: the tick starts it."""
    with transaction(url) as session:
        return create_send(
            session,
            issue_id=issue_id,
            audience=Audience(lists=(LIST,)),
            variant=Variant.FULL,
            at=None,
            now=utcnow(),
            zone=ZoneInfo("UTC"),
            tracking=tracking,
        ).id


def make_audience(url: str, n: int, chunk: int = 5_000) -> list[int]:
    """N active subscribers on one list, inserted with Core executemany in chunks; their ids."""
    every: list[int] = []
    with transaction(url) as session:
        mailing_list = List(name=LIST)
        session.add(mailing_list)
        session.flush()
        for start in range(1, n + 1, chunk):
            ids = session.scalars(
                insert(Subscriber).returning(Subscriber.id),
                [
                    {
                        "email": address(i),
                        "email_key": address(i),
                        "name": f"读者{i:06d}",
                        "status": SubscriberStatus.ACTIVE,
                        "channel": "email",
                        "format": "full",
                        "attributes": {},
                    }
                    for i in range(start, min(start + chunk, n + 1))
                ],
            ).all()
            session.execute(
                insert(Subscription),
                [
                    {
                        "subscriber_id": i,
                        "list_id": mailing_list.id,
                        "status": SubscriptionStatus.ACTIVE,
                    }
                    for i in ids
                ],
            )
            every += ids
    return every


def engine_message(settings: Settings) -> tuple[str, bytes]:
    """Envelope sender and bytes of the message the engine sends to subscriber 1."""
    compiled = compile_issue(read_issue_file(SAMPLE).document, Variant.FULL, settings)
    links = PublicLinks(settings.public_base_url, TokenSigner(settings.require_secret_key()))
    message = personalise(
        compiled,
        Recipient(1, address(1), "读者000001"),
        send_id=1,
        links=links,
        signer=DkimSigner.from_settings(settings),
    )
    return message.envelope_from, message.data


# --- the baseline -------------------------------------------------------------------------------


def _baseline_share(port: int, sender: str, data: bytes, numbers: range) -> tuple[float, float]:
    """One process: one connection, one transaction per recipient; its (start, end) times."""
    with smtplib.SMTP("127.0.0.1", port) as connection:
        connection.ehlo()
        started = time.perf_counter()
        for i in numbers:
            connection.sendmail(sender, [address(i)], data)
        return started, time.perf_counter()


def baseline(port: int, sender: str, data: bytes, n: int, processes: int) -> float:
    """Plain smtplib from ``processes`` processes: seconds from the first start to the last end."""
    shares = [(port, sender, data, range(1 + k, n + 1, processes)) for k in range(processes)]
    # The pool's children must die of the SIGTERM its exit sends them: this script's handler
    # (inherited through the fork) would leave one blocked on the queue's lock, for ever.
    with multiprocessing.get_context("fork").Pool(
        processes, initializer=signal.signal, initargs=(signal.SIGTERM, signal.SIG_DFL)
    ) as pool:
        spans = pool.starmap(_baseline_share, shares)
    return max(end for _, end in spans) - min(start for start, _ in spans)


# --- one case -----------------------------------------------------------------------------------


@dataclass
class Result:
    case: str
    n: int
    baseline_seconds: float = 0.0
    seconds: float = 0.0
    sent: int = 0
    accepted: int = 0
    done: bool = False
    rss: RssPeaks = field(default_factory=RssPeaks)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.n / self.baseline_seconds if self.baseline_seconds else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline_rate if self.baseline_rate else 0.0

    @property
    def complete(self) -> bool:
        """Done, every recipient sent exactly once as far as the database and the sink can tell."""
        return self.done and self.sent == self.n and self.accepted == self.n

    @property
    def passed(self) -> bool:
        return (
            self.complete
            and self.ratio >= TARGET_RATIO[self.case]
            and self.rss.pss <= RSS_LIMIT_MB * 1024
        )

    @property
    def target(self) -> str:
        return f"≥{TARGET_RATIO[self.case]}× base, ≤{RSS_LIMIT_MB} MB"


def wait_until_done(
    url: str,
    send_id: int,
    parts: dict[str, ServerProcess | WorkerProcess],
    worker: WorkerProcess,
    timeout: float,
) -> bool:
    """Poll the send's state until 'done', checking that every part still runs; print progress."""
    started = time.monotonic()
    next_progress = started + PROGRESS_SECONDS
    while True:
        with transaction(url) as session:
            state = session.scalar(select(Send.state).where(Send.id == send_id))
            if time.monotonic() >= next_progress:
                sent = session.scalar(
                    select(func.count()).where(
                        Delivery.send_id == send_id, Delivery.state == DeliveryState.SENT
                    )
                )
                print(f"    {time.monotonic() - started:6.0f} s: {sent:,} sent", flush=True)
                next_progress += PROGRESS_SECONDS
        if state == "done":
            return True
        if time.monotonic() - started > timeout:
            return False
        for name, part in parts.items():
            code = part.exit_code()
            if code is not None:
                raise RuntimeError(
                    f"{name} exited with {code} during the send; worker log:\n{worker.tail()}"
                )
        time.sleep(0.2)


def run_case(
    case: str, n: int, run: int, concurrency: int | None, baseline_processes: int
) -> Result:
    """One run of a case; a run that cannot finish is a failed run, not the end of the benchmark."""
    result = Result(case, n)
    pool = "the product's defaults" if concurrency is None else f"concurrency {concurrency}"
    print(
        f"\n== {case}: N = {n:,}, run {run}, {pool} (load average before: "
        f"{os.getloadavg()[0]:.2f}) ==",
        flush=True,
    )
    try:
        measure(result, concurrency=concurrency, baseline_processes=baseline_processes)
    except Exception as error:
        result.error = f"{type(error).__name__}: {error}"
        print(f"  ERROR {result.error}", flush=True)
    return result


def dkim_key(workdir: Path) -> Path:
    """A fresh RSA-2048 private key (PEM) in ``workdir``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = workdir / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def measure(result: Result, *, concurrency: int | None, baseline_processes: int) -> None:
    """Set up, baseline, send, measure, tear down; every part is stopped whatever happens."""
    n, embedded = result.n, result.case == "embedded"
    with tempfile.TemporaryDirectory(prefix="bench-send-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        parts: dict[str, ServerProcess | WorkerProcess] = {}
        if embedded:
            url = stack.enter_context(sqlite_database(workdir))
            broker = f"sqla+sqlite:///{workdir / 'distributor-broker.db'}"
        else:
            url = stack.enter_context(postgres_database())
            parts["redis-server"] = redis = stack.enter_context(RedisServer(workdir))
            broker = redis.url
        parts["smtp-sink"] = sink = stack.enter_context(SmtpSink(workdir / "smtp-sink.log"))
        env = {
            **ENV,
            "DATABASE_URL": url,
            "CELERY_BROKER_URL": broker,
            "SMTP_PORT": str(sink.port),
        }
        if concurrency is not None:
            env["DISPATCH_SLOTS"] = str(concurrency)
        if result.case == "dkim":
            env["DKIM_DOMAIN"] = "news.example-union.org"
            env["DKIM_SELECTOR"] = DKIM_SELECTOR
            env["DKIM_PRIVATE_KEY_FILE"] = str(dkim_key(workdir))

        issue_id = import_issue(url)
        started = time.perf_counter()
        make_audience(url, n)
        print(
            f"  audience: {n:,} subscribers inserted in {time.perf_counter() - started:.1f} s "
            "(not counted)"
        )

        sender, data = engine_message(Settings.from_env(env))
        before = CpuUse.now(sink)
        result.baseline_seconds = baseline(sink.port, sender, data, n, baseline_processes)
        baseline_cpu = CpuUse.now(sink) - before
        baseline_accepted = sink.accepted()
        print(
            f"  baseline: smtplib, {baseline_processes} processes, "
            f"{len(data) / 1024:.1f} KB message: "
            f"{n:,} in {result.baseline_seconds:.1f} s = {result.baseline_rate:,.0f} msg/s "
            f"(sink accepted {baseline_accepted:,}); {baseline_cpu.describe(n)}",
            flush=True,
        )
        if baseline_accepted != n:
            raise RuntimeError(
                f"the baseline sent {n} messages, the sink accepted {baseline_accepted}"
            )

        worker = stack.enter_context(
            running_worker(env, workdir, concurrency=concurrency, supervised=concurrency is None)
        )
        worker.wait_until_ready()
        parts["the worker"] = worker
        assert worker.process is not None  # started: its pid is its process group's id
        peaks = stack.enter_context(sampling_rss(worker.process.pid))
        if not embedded:
            settle_postgres(url)
        before = CpuUse.now(sink, postgres=not embedded)
        send_id = start_send(url, issue_id)
        created = time.monotonic()
        result.done = wait_until_done(url, send_id, parts, worker, timeout=120 + n / 50)
        wall = time.monotonic() - created
        send_cpu = CpuUse.now(sink, postgres=not embedded) - before
        with transaction(url) as session:
            status = send_status(session, send_id)
            first, result.sent = session.execute(
                select(func.min(Delivery.sent_at), func.count()).where(
                    Delivery.send_id == send_id, Delivery.state == DeliveryState.SENT
                )
            ).one()
        result.accepted = sink.accepted() - baseline_accepted
        result.rss = peaks
        if first is not None:
            result.seconds = ((status.finished_at or utcnow()) - first).total_seconds()
        counts = ", ".join(f"{state} {k:,}" for state, k in status.counts.items())
        lag = (first - status.started_at).total_seconds() if first and status.started_at else 0.0
        print(
            f"  engine:   {status.state}, {counts}; sink accepted "
            f"{result.accepted:,}; first delivery {lag:.1f} s after the start, then "
            f"{result.seconds:.1f} s to done = {result.rate:,.0f} msg/s "
            f"({result.ratio:.2f}× baseline); {wall:.1f} s from create to done (the start "
            f"included): {send_cpu.describe(result.sent)}"
        )
        print(
            f"  worker RSS peak: parent {peaks.parent / 1024:.0f} MB, largest child "
            f"{peaks.child / 1024:.0f} MB, all {len(peaks.processes)} processes together "
            f"{peaks.total / 1024:.0f} MB (PSS {peaks.pss / 1024:.0f} MB); "
            f"their CPU time {peaks.cpu_seconds:.1f} s "
            f"({1000 * peaks.cpu_seconds / max(result.sent, 1):.2f} ms per message); "
            f"load average now {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        if not result.complete:
            print(f"  worker log tail:\n{worker.tail()}")


# --- report -------------------------------------------------------------------------------------


@dataclass
class Case:
    """The runs of one case; reported by its run of median ratio, and the highest RSS of all."""

    runs: list[Result]

    @property
    def median(self) -> Result:
        return sorted(self.runs, key=lambda r: r.ratio)[len(self.runs) // 2]

    @property
    def rss_total(self) -> int:
        """The highest PSS of the runs: what the processes use together (their VmRSS added up
        counts every page they share, the libraries, once in each)."""
        return max(r.rss.pss for r in self.runs)

    @property
    def verdict(self) -> str:
        median = self.median
        if median.passed and self.rss_total <= RSS_LIMIT_MB * 1024:
            return "PASS"
        if median.error:
            return "FAIL (error)"
        if not all(r.complete for r in self.runs):
            return "FAIL (incomplete run)"
        if median.case == "postgres" and median.ratio >= MILESTONE_RATIO:
            return f"FAIL (milestone {MILESTONE_RATIO} met)"
        return "FAIL"


def summary(cases: list[Case]) -> bool:
    """Print the table; True when every row passed."""
    rows = [
        (
            c.median.case,
            f"{c.median.n:,}",
            " ".join(f"{r.ratio:.2f}" for r in c.runs),
            f"{c.median.rate:,.0f}",
            f"{c.median.baseline_rate:,.0f}",
            f"{c.median.ratio:.2f}",
            f"{c.median.rss.child / 1024:.0f} / {max(r.rss.total for r in c.runs) / 1024:.0f} / "
            f"{c.rss_total / 1024:.0f}",
            c.median.target,
            c.verdict,
        )
        for c in cases
    ]
    postgres = sorted((c for c in cases if c.median.case == "postgres"), key=lambda c: c.median.n)
    if len(postgres) >= 2 and postgres[0].median.n < postgres[-1].median.n:
        small, large = postgres[0], postgres[-1]
        growth = large.rss_total / small.rss_total if small.rss_total else 0.0
        rows.append(
            (
                f"RSS {small.median.n:,}→{large.median.n:,}",
                "",
                "",
                "",
                "",
                "",
                f"{small.rss_total / 1024:.0f} → {large.rss_total / 1024:.0f}",
                f"≤{RSS_GROWTH:.2f}× (is {growth:.2f}×)",
                "PASS" if growth <= RSS_GROWTH else "FAIL",
            )
        )
    header = (
        "case",
        "N",
        "ratio of each run",
        "msg/s",
        "base/s",
        "ratio",
        "MB RSS child/all, PSS all",
        "target",
        "result",
    )
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    print(
        "\nSummary (msg/s = sent rows / seconds from the first delivery to 'done'; "
        "base = smtplib baseline; the run of median ratio; RSS and PSS all = the highest of "
        "the runs; "
        f"load average now {os.getloadavg()[0]:.2f})"
    )
    for row in [header, *rows]:
        print(
            "  ".join(
                cell.rjust(w) if 0 < i < 7 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return all(row[-1] == "PASS" for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--n",
        type=int,
        nargs="+",
        help="PostgreSQL + Redis sizes (default 10000 100000; --quick 500 2000)",
    )
    parser.add_argument(
        "--embedded-n", type=int, help="embedded SQLite size (default 20000; --quick 1000)"
    )
    parser.add_argument(
        "--dkim-n", type=int, help="PostgreSQL + Redis with DKIM size (default 20000; --quick 1000)"
    )
    parser.add_argument("--runs", type=int, help="runs of each case (default 3; --quick 1)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-dkim", action="store_true")
    parser.add_argument(
        "--concurrency",
        type=int,
        help="worker pool size and dispatcher slots (default: the product's defaults)",
    )
    parser.add_argument(
        "--baseline-processes",
        type=int,
        default=2,
        help="smtplib processes of the baseline (the issue's baseline: 2)",
    )
    args = parser.parse_args()
    # A SIGTERM (timeout, an impatient colleague) still stops the worker and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sizes = args.n or ([500, 2_000] if args.quick else [10_000, 100_000])
    embedded_n = args.embedded_n or (1_000 if args.quick else 20_000)
    dkim_n = args.dkim_n or (1_000 if args.quick else 20_000)
    runs = args.runs or (1 if args.quick else 3)
    print(
        f"send benchmark: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"sample {SAMPLE.name}"
    )
    wanted = [
        *([] if args.skip_postgres else [("postgres", n) for n in sizes]),
        *([] if args.skip_embedded else [("embedded", embedded_n)]),
        *([] if args.skip_dkim else [("dkim", dkim_n)]),
    ]
    cases = [
        Case(
            [
                run_case(case, n, run, args.concurrency, args.baseline_processes)
                for run in range(1, runs + 1)
            ]
        )
        for case, n in wanted
    ]
    if cases and not summary(cases):
        sys.exit(1)


if __name__ == "__main__":
    main()
