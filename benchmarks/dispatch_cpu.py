"""Where one dispatcher's CPU goes, per message: the profile behind the send benchmark's figures.

    python benchmarks/dispatch_cpu.py [--n 3000] [--dkim] [--sqlite] [--batch-size B]

One thread plans and then drains a send of N recipients of the sample issue through a PostgreSQL
database of its own (server at BENCH_POSTGRES_URL), or with ``--sqlite`` a SQLite file (the
embedded default), to a Postfix ``smtp-sink``: the real ``plan``
and ``drain``, without Celery. Each stage is timed with ``time.thread_time`` (CPU of this thread:
what a worker's other dispatchers wait for while it holds the GIL), and printed per message.
Stages nest: ``compose`` includes ``personalise``, which includes ``dkim``; ``smtp`` includes
``smtp envelope`` (MAIL, RCPT, DATA and their answers).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from send import (
    ENV,
    dkim_key,
    import_issue,
    make_audience,
    postgres_database,
    sqlite_database,
    start_send,
)

import distributor.channels.smtp as smtp
import distributor.render.dkim as dkim
import distributor.sending.compose as compose
import distributor.sending.dispatch as dispatch
from distributor.config import Settings
from distributor.devservers.smtp_sink import SmtpSink
from distributor.runtime import WorkerRuntime

STAGES: list[tuple[Any, str, str]] = [
    (compose.EmailComposer, "compose", "compose"),
    (compose, "personalise", "personalise"),
    (dkim.DkimSigner, "sign", "dkim"),
    (smtp.SmtpChannel, "send", "smtp"),
    (smtp.SmtpChannel, "_open_data", "smtp envelope"),
    (dispatch.ResultRecorder, "record", "record"),
    (dispatch.ResultRecorder, "settle", "settle"),
    (dispatch, "claim_batch", "claim"),
    (dispatch, "suppress_departed", "re-check"),
]


@contextlib.contextmanager
def timed_stages(cpu: dict[str, float]) -> Iterator[None]:
    """Wrap each stage so that its thread CPU adds up in ``cpu``; unwrapped afterwards."""
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in STAGES]

    def timing(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                cpu[label] = cpu.get(label, 0.0) + time.thread_time() - started

        return wrapper

    for (owner, name, label), (_, _, function) in zip(STAGES, originals, strict=True):
        setattr(owner, name, timing(function, label))
    try:
        yield
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000, help="recipients (default 3000)")
    parser.add_argument("--dkim", action="store_true", help="sign with a fresh RSA-2048 key")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default's database")
    parser.add_argument("--batch-size", type=int, help="DISPATCH_BATCH_SIZE (default: product's)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        database = sqlite_database(Path(tmp)) if args.sqlite else postgres_database()
        url = stack.enter_context(database)
        sink = stack.enter_context(SmtpSink(Path(tmp) / "smtp-sink.log"))
        env = {**ENV, "DATABASE_URL": url, "SMTP_PORT": str(sink.port)}
        if args.dkim:
            env |= {
                "DKIM_DOMAIN": "news.example-union.org",
                "DKIM_SELECTOR": "bench",
                "DKIM_PRIVATE_KEY_FILE": str(dkim_key(Path(tmp))),
            }
        if args.batch_size:
            env["DISPATCH_BATCH_SIZE"] = str(args.batch_size)
        issue_id = import_issue(url)
        make_audience(url, args.n)
        runtime = WorkerRuntime.from_settings(Settings.from_env(env))
        send_id = start_send(url, issue_id)
        runtime.tick(enqueue_plan=lambda _: None, enqueue_drain=lambda _: None)
        started, planning_wall = time.thread_time(), time.perf_counter()
        runtime.plan(send_id)
        planning = time.thread_time() - started
        planning_wall = time.perf_counter() - planning_wall
        cpu: dict[str, float] = {}
        wall, started = time.perf_counter(), time.thread_time()
        sent = 0
        with timed_stages(cpu):
            while True:  # a drain stops after its time budget: drain again until none is left
                stats = runtime.drain_now()
                sent += stats.counts.get("sent", 0)
                if not stats.out_of_time:
                    break
        total, wall = time.thread_time() - started, time.perf_counter() - wall
        runtime.close()
    signed = " + DKIM" if args.dkim else ""
    kind = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"dispatch CPU, one thread, {kind}, {args.n:,} recipients{signed}")
    print(
        f"  planning: {1e6 * planning / args.n:.1f} µs of CPU per delivery row "
        f"({1e6 * planning_wall / args.n:.1f} µs wall: the rest is the database's)"
    )
    print(f"  sent {sent:,} in {wall:.1f} s ({sent / wall:,.0f} msg/s on one connection)")
    print(f"  {'whole thread':14s} {1000 * total / max(sent, 1):.3f} ms per message")
    for label, seconds in sorted(cpu.items(), key=lambda item: -item[1]):
        print(f"  {label:14s} {1000 * seconds / max(sent, 1):.3f} ms per message")


if __name__ == "__main__":
    main()
