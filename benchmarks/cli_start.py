"""How fast the CLI answers: `distributor --help`, `send status N` and `send list` on embedded
SQLite, against `python -c pass` in the same run (the interpreter's own start).

    python benchmarks/cli_start.py [--runs 15] [--no-bytecode]

Each command is run as a new process, as a person runs it; the figure is the median wall time.
The commands run as installed: with their modules' bytecode, which ``pip install`` (the Docker
image too) compiles once, written by an untimed first run into a folder of this run's own
(``PYTHONPYCACHEPREFIX``). ``--no-bytecode`` runs them with ``PYTHONDONTWRITEBYTECODE`` as the
environment gives it: a checkout without ``__pycache__`` (an editable install on a machine that
sets it) compiles its own modules again at every start, a few hundredths of a second that no
installed copy pays (and the figure then depends on whether tests left ``__pycache__`` behind).
Targets (issue 27): --help ≤ 0.3 s and send status ≤ 0.6 s on a quiet machine, each ≤ 3× pass.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from distributor.db import transaction, upgrade
from distributor.sending.models import Send
from distributor.vocabulary import SendState, Variant
from subscribers.query import Audience

SAMPLE = Path(__file__).resolve().parents[1] / "distributor" / "samples" / "hzgy-471.txt"
CLI = [sys.executable, "-m", "distributor"]


def seconds(command: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(command, env=env, check=True, capture_output=True)  # writes the bytecode
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--no-bytecode", action="store_true", help="bytecode as PYTHONDONTWRITEBYTECODE has it"
    )
    options = parser.parse_args()
    runs = options.runs
    folder = Path(tempfile.mkdtemp(prefix="cli-start-"))
    url = f"sqlite:///{folder / 'distributor.db'}"
    env = {**os.environ, "DATABASE_URL": url, "DISTRIBUTOR_SECRET_KEY": "x" * 32}
    if not options.no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(folder / "bytecode")
    upgrade(url)
    subprocess.run([*CLI, "issue", "import", str(SAMPLE)], env=env, check=True, capture_output=True)
    with transaction(url) as session:
        send = Send(issue_id=1, audience=Audience(), variant=Variant.FULL, state=SendState.DONE)
        session.add(send)
        session.flush()
        send_id = str(send.id)
    baseline = seconds([sys.executable, "-c", "pass"], env, runs)
    bytecode = "as the environment has it" if options.no_bytecode else "as installed"
    print(f"python -c pass: {baseline:.3f} s (median of {runs}; bytecode {bytecode})")
    for name, args in (
        ("distributor --help", ["--help"]),
        (f"distributor send status {send_id}", ["send", "status", send_id]),
        ("distributor send list", ["send", "list"]),
    ):
        took = seconds([*CLI, *args], env, runs)
        print(f"{name}: {took:.3f} s, {took / baseline:.1f}× python -c pass")


if __name__ == "__main__":
    main()
