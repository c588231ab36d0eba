"""Starting the engine: a worker or beat with unusable settings stops at once with one line; a
running one leaves the current folder clean and its log quiet while nothing happens; and the
README's everyday use works on the documented defaults with a local mail server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis

from distributor.devservers.redis_server import RedisServer
from tests.conftest import ROOT
from tests.support.sending import SECRET, wait_until_done
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

SETTING_PREFIXES = (
    "DATABASE_URL",
    "CELERY_",
    "REDIS_URL",
    "DISTRIBUTOR_",
    "MAIL_FROM",
    "PUBLIC_BASE_URL",
    "SMTP_",
    "DKIM_",
    "DISPATCH_",
    "CLAIM_",
    "RETRY_",
    "RATE_LIMIT",
    "DOMAIN_CONCURRENCY",
    "DEFAULT_DOMAIN_CONCURRENCY",
)
DISTRIBUTOR = [sys.executable, "-m", "distributor"]
CELERY = [sys.executable, "-m", "celery", "-A", "distributor"]


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any of our settings, plus ``settings``."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(SETTING_PREFIXES)}
    return {**kept, **settings}


@contextmanager
def started(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[Popen]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


Popen = subprocess.Popen[bytes]


def exit_of(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[int | None, str]:
    """The exit code (None: still running after 60 s) and everything the process printed."""
    log = cwd / "start.log"
    with started(argv, env, cwd, log) as process:
        try:
            code: int | None = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            code = None
    return code, log.read_text(errors="replace")


@pytest.mark.parametrize(
    "argv",
    [
        [*DISTRIBUTOR, "worker", "--beat", "-c", "1"],
        [*CELERY, "worker", "--concurrency=1"],
        [*DISTRIBUTOR, "beat"],
        [*CELERY, "beat"],
    ],
    ids=["distributor-worker", "celery-worker", "distributor-beat", "celery-beat"],
)
def test_a_worker_or_beat_without_a_secret_key_stops_at_once_with_one_line(
    tmp_path: Path, argv: list[str]
) -> None:
    env = environment(DATABASE_URL=f"sqlite:///{tmp_path / 'd.db'}")
    code, output = exit_of(argv, env, tmp_path)
    assert code == 2, output[-2000:]
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert errors == [
        "Error: DISTRIBUTOR_SECRET_KEY is not set: it signs every public link. Generate one "
        "with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
    ]
    assert "Traceback" not in output and "ready" not in output


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        (
            {"DISTRIBUTOR_SECRET_KEY": "short"},
            "Error: DISTRIBUTOR_SECRET_KEY has 5 characters, fewer than 32",
        ),
        ({"PUBLIC_BASE_URL": "https://a.org\r\nX: y"}, "Error: PUBLIC_BASE_URL="),
        ({"MAIL_FROM": "newsletter@intranet"}, "Error: MAIL_FROM cannot be used"),
        ({"SMTP_USERNAME": "hzgh"}, "Error: SMTP_USERNAME is set but SMTP_SECURITY is none"),
    ],
    ids=["short-key", "crlf-url", "mail-from", "plaintext-auth"],
)
def test_a_worker_with_an_unusable_setting_names_it_and_stops(
    tmp_path: Path, settings: dict[str, str], error: str
) -> None:
    env = environment(
        **{"DATABASE_URL": f"sqlite:///{tmp_path / 'd.db'}", "DISTRIBUTOR_SECRET_KEY": SECRET}
        | settings
    )
    code, output = exit_of([*CELERY, "worker", "--concurrency=1"], env, tmp_path)
    assert code == 2, output[-2000:]
    (line,) = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert line.startswith(error)
    assert "Traceback" not in output and "ready" not in output


def lpush_calls(client: redis.Redis) -> int:
    """How many messages were published to the Redis broker so far (kombu sends with LPUSH)."""
    stats = client.info("commandstats")
    return int(stats.get("cmdstat_lpush", {}).get("calls", 0))


def wait_for_ticks(client: redis.Redis, n: int, *, taken: bool, timeout: float = 60) -> None:
    """Until beat has published ``n`` more ticks (and, ``taken``, a worker has taken them)."""
    target = lpush_calls(client) + n
    deadline = time.monotonic() + timeout
    while lpush_calls(client) < target or (taken and client.llen("celery")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"beat published {lpush_calls(client)} of {target} ticks")
        time.sleep(0.1)


def wait_for_line(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not in {log}:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


@pytest.mark.parametrize("worker", [True, False], ids=["worker-with-beat", "beat"])
def test_an_idle_engine_logs_nothing_and_writes_nothing_into_the_current_folder(
    tmp_path: Path, redis_server: RedisServer, worker: bool
) -> None:
    argv = [*DISTRIBUTOR, "worker", "--beat", "-c", "1"] if worker else [*DISTRIBUTOR, "beat"]
    folder, elsewhere = tmp_path / "cwd", tmp_path / "data"
    folder.mkdir()
    elsewhere.mkdir()
    env = environment(
        DATABASE_URL=f"sqlite:///{elsewhere / 'd.db'}",
        CELERY_BROKER_URL=redis_server.url,
        DISTRIBUTOR_SECRET_KEY=SECRET,
        MAIL_FROM="杭州工运 <newsletter@hzgh.org.cn>",
        PUBLIC_BASE_URL="https://news.hzgh.org.cn",
    )
    client = redis.Redis.from_url(redis_server.url)
    log = elsewhere / "engine.log"
    with started(argv, env, folder, log):
        wait_for_ticks(client, 2, taken=worker)  # started, and past the lines of starting
        before = log.read_text(errors="replace")
        wait_for_ticks(client, 5, taken=worker)
        idle = log.read_text(errors="replace").removeprefix(before)
    assert idle == "", idle
    assert sorted(p.name for p in folder.iterdir()) == []


def test_everyday_use_works_on_the_defaults_with_a_local_mail_server(
    tmp_path: Path, sample_issue_path: Path
) -> None:
    """README, 'Everyday use', in a fresh folder: only the mail server and a key are set."""
    readers = ROOT / "distributor" / "samples" / "readers.csv"
    with SmtpServer() as smtp:
        env = environment(
            SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), DISTRIBUTOR_SECRET_KEY=SECRET
        )

        def distributor(*args: str) -> str:
            done = subprocess.run(
                [*DISTRIBUTOR, *args], env=env, cwd=tmp_path, capture_output=True, text=True
            )
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            return done.stdout

        distributor("db", "upgrade")
        assert "Imported issue ID: 1" in distributor("issue", "import", str(sample_issue_path))
        distributor("issue", "list")
        distributor("lists", "create", "members")
        distributor("subscribers", "import", str(readers), "--list", "members")
        distributor("send", "test", "--issue", "1", "--to", "editor@example.org")
        assert [r.recipient for r in smtp.handler.received] == ["editor@example.org"]
        # README schedules it for tomorrow 09:00; here it goes at once, to see it arrive.
        distributor("send", "create", "--issue", "1", "--list", "members")
        assert "test" in distributor("send", "list")
        log = tmp_path / "worker.log"
        with started([*DISTRIBUTOR, "worker", "--beat", "-c", "2"], env, tmp_path, log):
            smtp.handler.wait_for(6, timeout=90)
            # Watched in the database (polling with the status command would load the machine it
            # waits on), then seen as staff see it.
            wait_until_done(f"sqlite:///{tmp_path / 'distributor.db'}", 2, timeout=30)
            assert json.loads(distributor("send", "status", "2", "--json"))["state"] == "done"
    expected = [line.split(",")[0] for line in readers.read_text().splitlines()[1:]]
    assert sorted(r.recipient for r in smtp.handler.received[1:]) == sorted(expected)
    assert {r.sender for r in smtp.handler.received} == {"newsletter@localhost"}
    assert log.read_text(errors="replace").count("MAIL_FROM is at localhost") == 1
