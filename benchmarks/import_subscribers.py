"""Import time and memory of ``distributor subscribers import``, and of streaming the audience.

    python benchmarks/import_subscribers.py [--rows 100000 1000000] [--backend sqlite postgresql]
        [--baseline DIR]

For each size and backend: writes N synthetic subscribers to a temporary CSV (streamed), runs
``distributor subscribers import FILE --list 会员快讯`` on it against a fresh database (a temporary
SQLite file; a PostgreSQL database created and dropped here), as a user would, then streams the
audience of one list in batches of 1,000. Each step runs in a process of its own: the import's
time includes the interpreter's start, and each peak RSS is that step's alone. ``--baseline DIR``
imports the same file with another source tree too (``git archive REV | tar -x -C DIR``), in
the same run and on the same machine load, which is printed beside each figure. "DB CPU" is
the CPU of the PostgreSQL backends serving the import (a local server), which "CPU s" (the
import's processes) leaves out: on PostgreSQL most of the work is theirs. Targets on a
2-core machine: 1,000,000 rows in under 30 s on each database, peak RSS under 300 MB and no
growth with N.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, make_url, select

from distributor.db import dispose_engines, get_engine, transaction
from distributor.devservers.postgres import DEFAULT_ADMIN_URL, throwaway_database
from subscribers.csvfile import EXPORT_COLUMNS
from subscribers.models import Subscriber
from subscribers.query import Audience, stream_audience

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)
LIST = "会员快讯"
DOMAINS = (
    "qq.com",
    "163.com",
    "126.com",
    "sina.com",
    "foxmail.com",
    "hz.gov.cn",
    "zjftu.org",
    "例子.中国",
    "gmail.com",
    "outlook.com",
)
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def write_csv(path: Path, rows: int) -> None:
    """Our export format, one row at a time; about 2 % unsubscribed, a third on a second list."""
    rng = random.Random(42)
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(EXPORT_COLUMNS)
        for i in range(rows):
            name = rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN)
            lists = LIST if i % 3 else f"{LIST}|青年"
            attributes = {"城市": "杭州", "单位": f"基层工会{i % 500}"} if i % 2 else {}
            writer.writerow(
                [
                    f"reader{i:07d}@{rng.choice(DOMAINS)}",
                    name,
                    "unsubscribed" if rng.random() < 0.02 else "active",
                    lists,
                    rng.choice(("email", "email", "wechat", "both")),
                    rng.choice(("full", "full", "digest", "text")),
                    f"o{i:027d}" if i % 4 == 0 else "",
                    json.dumps(attributes, ensure_ascii=False) if attributes else "",
                    "",
                ]
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def load() -> str:
    """The 1-minute load average: the machine's business while a figure was taken."""
    return f"{os.getloadavg()[0]:.1f}"


def cli_import(url: str, path: Path, tree: Path | None) -> dict[str, float]:
    """The import command in a process of its own: wall time from the interpreter's start to
    its exit, the process's peak RSS, and the CPU of the PostgreSQL backends serving it (on a
    local server: their share of the work is most of it). ``tree`` is another source tree to
    run instead: the working directory, which ``python -m`` puts first on the path."""
    env = {**os.environ, "DATABASE_URL": url}
    command = [
        sys.executable, "-m", "distributor", "subscribers", "import", str(path),
        "--list", LIST, "--create-list", "--errors", f"{path}.errors.csv",
    ]
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=tree or ROOT, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        peak, cpu, server = [0.0], dict[int, float](), dict[int, float]()
        database = make_url(url).database if url.startswith("postgresql") else None
        sampler = threading.Thread(
            target=_sample, args=(process.pid, peak, cpu, database, server), daemon=True
        )
        sampler.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        sampler.join()
        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        said = output.read().decode(errors="replace")
    if process.returncode or "problems are listed" in said:
        raise SystemExit(f"the import did not import every row:\n{said}")
    return {
        "seconds": seconds,
        # The import's own CPU, exactly; its parsing processes', as last seen.
        "cpu": usage.ru_utime + usage.ru_stime + sum(cpu.values()) - cpu.get(process.pid, 0),
        "rss": usage.ru_maxrss / 1024,
        "all": peak[0],
        "server": sum(server.values()) if database else float("nan"),
    }


def _sample(
    pid: int,
    peak: list[float],
    cpu: dict[int, float],
    database: str | None,
    server: dict[int, float],
) -> None:
    """Until ``pid`` ends, every 0.2 s: the most MB that it and its descendants (the processes
    parsing a big file) held together (PSS) into ``peak``, the CPU seconds of each into ``cpu``,
    those of each PostgreSQL backend serving ``database`` into ``server``."""
    while memory := _tree(pid, cpu):
        peak[0] = max(peak[0], memory / 1024)
        if database:
            _backends(database, server)
        time.sleep(0.2)


def _cpu_seconds(stat: str) -> float:
    """utime + stime of a ``/proc/PID/stat`` text."""
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _backends(database: str, server: dict[int, float]) -> None:
    """The CPU seconds of each local PostgreSQL backend serving ``database`` (its process title
    names it) into ``server``, as last seen."""
    title = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if title in (entry / "cmdline").read_bytes().partition(b"\0")[0]:
                server[int(entry.name)] = _cpu_seconds((entry / "stat").read_text())
        except OSError:  # ended meanwhile
            continue


def _tree(pid: int, cpu: dict[int, float]) -> int:
    """The kB that ``pid`` and every process below it hold now, each counting its share of the
    pages they share (PSS: a forked process's pages are its parent's until written); their CPU
    into ``cpu``."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            memory = Path(f"/proc/{current}/smaps_rollup").read_text()
            stat = Path(f"/proc/{current}/stat").read_text()
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += map(int, (task / "children").read_text().split())
        except OSError:  # ended meanwhile
            continue
        cpu[current] = _cpu_seconds(stat)
        total += sum(
            int(line.split()[1]) for line in memory.splitlines() if line.startswith("Pss:")
        )
    return total


def _figure(value: float) -> str:
    """``value`` to a tenth, or a dash where there is none (SQLite has no server)."""
    return "-" if math.isnan(value) else f"{value:.1f}"


def stored(url: str) -> int:
    """How many subscribers the database holds: every row of the file, or the import lost some."""
    with get_engine(url).connect() as connection:
        count = connection.scalar(select(func.count()).select_from(Subscriber))
    dispose_engines()
    return count or 0


def child_stream(url: str) -> dict[str, float]:
    started = time.perf_counter()
    count = 0
    with transaction(url) as session:
        for batch in stream_audience(session, Audience(lists=(LIST,)), batch_size=1000):
            count += len(batch)
    return {"rows": count, "seconds": time.perf_counter() - started, "rss": peak_rss_mb()}


def in_child(*args: str) -> dict[str, float]:
    """Run one step in a fresh interpreter, so that its peak RSS is its own."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


@contextlib.contextmanager
def fresh_database(backend: str, workdir: Path, tree: Path | None) -> Iterator[str]:
    """An empty database (a temporary SQLite file, or a PostgreSQL database dropped afterwards)
    migrated by ``tree`` (None: this one), whose schema its import expects; yields its URL."""
    if backend == "sqlite":
        url = f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        _migrate(url, tree)
        yield url
        return
    with throwaway_database(POSTGRES_ADMIN_URL, "distributor_bench") as url:
        _migrate(url, tree)
        yield url


def _migrate(url: str, tree: Path | None) -> None:
    """``distributor db upgrade`` as ``tree`` ships it: a baseline without this tree's newest
    migration refuses a database that has it."""
    subprocess.run(
        [sys.executable, "-m", "distributor", "db", "upgrade"],
        cwd=tree or ROOT, env={**os.environ, "DATABASE_URL": url}, check=True, capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--backend", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--baseline", type=Path, metavar="DIR",
        help="another source tree (e.g. the commit before a change) to import with too",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_stream(args.child[0])))
        return

    trees: list[tuple[str, Path | None]] = [("this", None)]
    if args.baseline:
        trees.insert(0, ("baseline", args.baseline.resolve()))
    print(
        f"{'backend':<11}{'tree':<9}{'rows':>10}{'import s':>10}{'rows/s':>10}{'CPU s':>7}"
        f"{'DB CPU':>7}"
        f"{'peak MB':>9}{'all PSS':>8}{'load':>6}{'stream s':>10}{'peak MB':>9}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for rows in args.rows:
            path = workdir / f"subscribers-{rows}.csv"
            write_csv(path, rows)
            for backend in args.backend:
                for name, tree in trees:
                    with fresh_database(backend, workdir, tree) as url:
                        busy = load()
                        imported = cli_import(url, path, tree)
                        if stored(url) != rows:
                            raise SystemExit(f"{name}: {stored(url)} of {rows} rows stored")
                        streamed = in_child(url)
                    print(
                        f"{backend:<11}{name:<9}{rows:>10,}{imported['seconds']:>10.1f}"
                        f"{rows / imported['seconds']:>10,.0f}{imported['cpu']:>7.1f}"
                        f"{_figure(imported['server']):>7}"
                        f"{imported['rss']:>9.0f}{imported['all']:>8.0f}"
                        f"{busy:>6}{streamed['seconds']:>10.1f}{streamed['rss']:>9.0f}",
                        flush=True,
                    )
            path.unlink()


if __name__ == "__main__":
    main()
