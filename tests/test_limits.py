"""Rate limits shared across workers: in-process threads against real Redis and real databases,
then two real worker processes against a real SMTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from distributor.cli import main
from distributor.db import session_factory
from distributor.devservers.celery_worker import WorkerProcess
from distributor.devservers.redis_server import RedisServer
from distributor.errors import ConfigurationError
from distributor.sending.limits import DatabaseLimits, Limits, RedisLimits, parse_domain_caps
from tests.support.audience import make_audience
from tests.support.sending import created_by_cli, engine_env, import_sample
from tests.support.smtp import RecordingHandler, SmtpServer


def measure_rate(limits: Limits, rate: float, seconds: float, threads: int = 2) -> float:
    stop_at = time.monotonic() + seconds
    turns: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        while time.monotonic() < stop_at:
            limits.wait_for_turn("rate:test", rate)
            with lock:
                turns.append(time.monotonic())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    inside = [t for t in turns if t <= stop_at]
    return len(inside) / seconds


def max_parallel(limits: Limits, cap: int, threads: int = 5) -> int:
    inside, peak, lock = 0, 0, threading.Lock()

    def worker() -> None:
        nonlocal inside, peak
        for _ in range(4):
            with limits.hold_domain("qq.com", cap):
                with lock:
                    inside += 1
                    peak = max(peak, inside)
                time.sleep(0.02)
                with lock:
                    inside -= 1

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return peak


def assert_paced(limits: Limits, rate: float) -> None:
    """The promise: at most ``rate`` turns a second (+10 %). And the limiter, not a stall, sets
    the pace: at least 90 % of the rate, or where the threads fall short of that (a loaded
    machine, the suite's other tests), 3/4 of what they reach here now with no useful limit."""
    measured = measure_rate(limits, rate, 2.0)
    assert measured <= 1.1 * rate
    if measured < 0.9 * rate:
        unthrottled = measure_rate(limits, 1000 * rate, 2.0)
        assert measured >= 0.75 * min(rate, unthrottled), f"{measured}/s, {unthrottled}/s free"


def test_redis_limits_hold_rate_and_domain_cap_across_threads(redis_server: RedisServer) -> None:
    limits = RedisLimits(redis.Redis.from_url(redis_server.url))
    assert_paced(limits, 100)
    assert max_parallel(limits, 2) == 2


def test_database_limits_hold_rate_and_domain_cap_across_threads(database_url: str) -> None:
    limits = DatabaseLimits(session_factory(database_url))
    assert_paced(limits, 50)
    assert max_parallel(limits, 2) == 2


def test_domain_caps_are_parsed_or_refused_clearly() -> None:
    assert parse_domain_caps("QQ.com=5, 163.com=3") == {"qq.com": 5, "163.com": 3}
    with pytest.raises(ConfigurationError, match=r"'qq.com=five' must be DOMAIN=N"):
        parse_domain_caps("qq.com=five")


@contextmanager
def workers(env: dict[str, str], workdir: Path, count: int) -> Iterator[list[WorkerProcess]]:
    with ExitStack() as stack:
        started = []
        for index in range(count):
            directory = workdir / f"worker{index}"
            directory.mkdir(parents=True)
            process = WorkerProcess(env, directory, concurrency=2, beat=index == 0)
            process.start()
            stack.callback(process.stop)
            started.append(process)
        yield started


def send_rate(
    env: dict[str, str], workdir: Path, smtp: SmtpServer, issue_id: int, seconds: float
) -> float:
    """Messages per second two workers send to ``smtp`` over ``seconds``, past their start-up;
    then the send is cancelled."""
    send_id = str(created_by_cli(env, issue_id))
    with workers(env, workdir, 2):
        smtp.handler.wait_for(len(smtp.handler.received) + 1, timeout=60)
        start = time.monotonic() + 2  # past the start-up
        time.sleep(2 + seconds + 0.5)  # the measured window itself, and the last arrivals
        arrivals = [r.at for r in smtp.handler.received]
        CliRunner().invoke(main, ["send", "cancel", send_id], env=env)
    return sum(1 for at in arrivals if start <= at < start + seconds) / seconds


@pytest.mark.slow
@pytest.mark.xdist_group("timing")  # not alongside the pause test: both measure time under load
def test_a_global_limit_holds_across_two_workers(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    limit = 80
    database_url = postgres_url
    make_audience(database_url, "members", 6000)
    issue_id = import_sample(database_url, sample_issue_path)
    with SmtpServer() as smtp:
        env = engine_env(database_url, redis_server.url, smtp, DISPATCH_SLOTS="4")
        unlimited = send_rate(env, tmp_path / "unlimited", smtp, issue_id, seconds=5)
        # A limit well below what two workers reach even on a loaded machine (120/s seen), so
        # that the limiter, not the machine, sets the pace being measured.
        limited_env = {**env, "RATE_LIMIT": str(limit)}
        rate = send_rate(limited_env, tmp_path / "limited", smtp, issue_id, seconds=20)
    print(
        f"\nmeasured {rate:.1f} msg/s over 20 s with a limit of {limit}/s and two workers "
        f"({unlimited:.1f} msg/s without a limit)"
    )
    assert rate <= limit * 1.1  # the guarantee: two workers together stay within the limit
    # And the limiter, not a stall, set the pace: at least half of what the same two workers
    # reach here, within the limit. Half, as the suite's parallel tests change the machine's
    # load between the two measurements.
    assert rate >= 0.5 * min(limit, unlimited)


@pytest.mark.slow
def test_a_domain_cap_of_2_never_sees_a_third_parallel_transaction(
    sqlite_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    make_audience(sqlite_url, "members", 150, domain="example.com")
    make_audience(sqlite_url, "members", 30, domain="example.net", prefix="other")
    issue_id = import_sample(sqlite_url, sample_issue_path)
    with SmtpServer(RecordingHandler(delay=0.03)) as smtp:
        env = engine_env(
            sqlite_url,
            redis_server.url,
            smtp,
            DOMAIN_CONCURRENCY="example.com=2",
            DISPATCH_SLOTS="4",
            DISPATCH_BATCH_SIZE="10",
        )
        CliRunner().invoke(
            main, ["send", "create", "--issue", str(issue_id), "--list", "members"], env=env
        )
        with workers(env, tmp_path, 2):
            smtp.handler.wait_for(180, timeout=90)
        peak_capped = smtp.handler.max_in_flight_by_domain["example.com"]
        peak_other = smtp.handler.max_in_flight_by_domain["example.net"]
    assert peak_capped == 2
    assert peak_other >= 2  # the cap is per domain: others still go in parallel
