"""Routing end to end: a real worker sends through three real SMTP relays on loopback, one killed
mid-send and one answering 421 to everything for a while; a domain's hourly cap (an "hour" of
a few seconds) held across windows; a send's window opening and closing. Everything is counted
at the servers."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import update

from distributor.cli import main
from distributor.db import transaction
from distributor.devservers.celery_worker import running_worker
from distributor.devservers.redis_server import RedisServer
from distributor.sending.models import Send
from distributor.sending.windows import DAYS
from tests.support.audience import make_audience
from tests.support.polling import wait_until
from tests.support.sending import (
    created_by_cli,
    engine_env,
    import_sample,
    relays_file,
    status_of,
    wait_for_ticks,
    wait_until_done,
)
from tests.support.smtp import RecordingHandler, SmtpServer

pytestmark = pytest.mark.slow

SLOTS = 2


class RefusesAtFirst(RecordingHandler):
    """Answers 421 to every message for ``seconds`` from the first one it sees."""

    def __init__(self, seconds: float) -> None:
        super().__init__(fault=self.refuse)
        self.seconds = seconds
        self.first: float | None = None
        self.refused = 0

    def refuse(self, recipient: str, attempt: int) -> str | None:
        self.first = self.first or time.monotonic()
        if time.monotonic() - self.first < self.seconds:
            self.refused += 1
            return "421 4.3.2 Service not available, closing transmission channel"
        return None


def peak_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times)),
               default=0)


@pytest.fixture
def three_relays() -> Iterator[tuple[SmtpServer, SmtpServer, SmtpServer]]:
    """Relays a, b and c; the test kills a (stopped here if it did not)."""
    with SmtpServer() as b, SmtpServer(RefusesAtFirst(seconds=3.0)) as c:
        a = SmtpServer()
        a.controller.start()
        try:
            yield a, b, c
        finally:
            with suppress(AssertionError):  # "not running": the test killed it
                a.controller.stop()


def test_a_send_completes_through_the_other_relays_when_one_dies_and_one_refuses(
    postgres_url: str,
    redis_server: RedisServer,
    three_relays: tuple[SmtpServer, SmtpServer, SmtpServer],
    sample_issue_path: Path,
    tmp_path: Path,
) -> None:
    a, b, c = three_relays
    emails = make_audience(postgres_url, "members", 300)
    issue_id = import_sample(postgres_url, sample_issue_path)
    plan = relays_file(
        tmp_path,
        f"""relays:
  - {{name: a, host: 127.0.0.1, port: {a.port}, rate: 20, weight: 2}}
  - {{name: b, host: 127.0.0.1, port: {b.port}, daily_cap: 50}}
  - {{name: c, host: 127.0.0.1, port: {c.port}}}
""",
    )
    env = engine_env(
        postgres_url,
        redis_server.url,
        a,
        SMTP_RELAYS_FILE=plan,
        RELAY_REST_SECONDS="0.5",
        DISPATCH_SLOTS=str(SLOTS),
        DISPATCH_BATCH_SIZE="20",
    )
    send_id = created_by_cli(env, issue_id)
    with running_worker(env, tmp_path, concurrency=SLOTS + 2):
        a.handler.wait_for(40, timeout=60)
        killed = threading.Thread(target=a.controller.stop)  # mid-send, connections and all
        killed.start()
        status = wait_until_done(postgres_url, send_id, timeout=60)
        killed.join()
    at = {name: server.handler.counts() for name, server in zip("abc", (a, b, c), strict=True)}
    everyone: Counter[str] = at["a"] + at["b"] + at["c"]
    assert status.counts == {"sent": 300}
    assert sorted(everyone) == emails  # 0 lost
    assert sum(n - 1 for n in everyone.values()) <= SLOTS  # duplicates: at most those in flight
    assert isinstance(c.handler, RefusesAtFirst)
    assert c.handler.refused >= 1 and at["c"]  # it refused a while, then took its share
    assert sum(at["b"].values()) == 50  # its daily cap, reached and held
    assert peak_in_any_second([r.at for r in a.handler.received]) <= 20 * 1.1 + 1
    assert 40 <= sum(at["a"].values()) < 300
    shown = CliRunner().invoke(main, ["send", "status", str(send_id), "--json"], env=env)
    relays = {r["name"]: r for r in json.loads(shown.output)["routing"]["relays"]}
    assert (relays["b"]["sent_today"], relays["b"]["daily_cap_left"]) == (50, 0)
    assert relays["c"]["sent_today"] == sum(at["c"].values())  # its refusals did not count
    assert relays["c"]["deferred_today"] == c.handler.refused
    assert relays["a"]["sent_today"] >= sum(at["a"].values())  # and what was lost with it
    assert relays["a"]["deferred_today"] >= 1
    text = CliRunner().invoke(main, ["send", "status", str(send_id)], env=env).output
    assert "Relays (all sends)" in text and "Cap left today" in text


def test_a_domains_hourly_cap_holds_in_every_window(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    netease = make_audience(postgres_url, "members", 70, domain="163.com")
    others = make_audience(postgres_url, "members", 30, prefix="other")
    issue_id = import_sample(postgres_url, sample_issue_path)
    hour = 3.0
    with SmtpServer() as smtp:
        plan = relays_file(
            tmp_path,
            f"""relays:
  - {{name: only, host: 127.0.0.1, port: {smtp.port}}}
domains:
  163.com: {{hourly_cap: 30, rate: 200}}
""",
        )
        env = engine_env(
            postgres_url,
            redis_server.url,
            smtp,
            SMTP_RELAYS_FILE=plan,
            CAP_HOUR_SECONDS=str(hour),
            DISPATCH_SLOTS=str(SLOTS),
            DISPATCH_BATCH_SIZE="20",
        )
        wall = time.time() - time.monotonic()
        send_id = created_by_cli(env, issue_id)
        with running_worker(env, tmp_path, concurrency=4):
            status = wait_until_done(postgres_url, send_id, timeout=60)
        received = list(smtp.handler.received)
    assert status.counts == {"sent": 100}
    assert sorted(r.recipient for r in received) == sorted(netease + others)
    # The office zone is whole hours from UTC: the short "hours" start on multiples of `hour`.
    windows = Counter(
        int((r.at + wall) // hour) for r in received if r.recipient.endswith("@163.com")
    )
    # A message counts when it is reserved, the server sees it a moment later: those on their
    # way at a window's end (one per dispatcher) may land in the next window by the server's clock.
    assert max(windows.values()) <= 30 + SLOTS
    assert sum(windows.values()) == 70
    assert len(windows) >= 3  # 70 at 30 a window: it waited for the next window, twice


def set_windows(url: str, send_id: int, windows: list[str]) -> None:
    """What the clock does to a send's windows, done at once: a window opening or closing."""
    with transaction(url) as session:
        session.execute(update(Send).where(Send.id == send_id).values(windows=windows))


def test_a_send_waits_outside_its_window_stops_within_a_batch_when_it_closes_and_resumes(
    postgres_url: str, redis_server: RedisServer, sample_issue_path: Path, tmp_path: Path
) -> None:
    emails = make_audience(postgres_url, "members", 150)
    issue_id = import_sample(postgres_url, sample_issue_path)
    batch = 10
    today = datetime.now(ZoneInfo("Asia/Shanghai")).weekday()
    closed = f"{DAYS[(today + 3) % 7]} 08:00-09:00"  # another day: closed all today
    with SmtpServer(RecordingHandler(delay=0.02)) as smtp:
        env = engine_env(
            postgres_url, redis_server.url, smtp, DISPATCH_SLOTS="1",
            DISPATCH_BATCH_SIZE=str(batch),
        )
        send_id = created_by_cli(env, issue_id, "--window", closed)
        with running_worker(env, tmp_path, concurrency=3):
            wait_until(
                lambda: status_of(postgres_url, send_id),
                lambda status: status.state == "running" and status.opens_at is not None,
                timeout=30,
                what="a running send waiting for its window",
            )
            shown = CliRunner().invoke(main, ["send", "status", str(send_id)], env=env).output
            assert f"Windows:   {closed} (Asia/Shanghai)" in shown
            assert "Waiting:   outside its windows; it goes on " in shown
            wait_for_ticks(postgres_url, 3)
            assert smtp.handler.received == []
            set_windows(postgres_url, send_id, ["00:00-24:00"])  # it opens
            smtp.handler.wait_for(50, timeout=30)
            set_windows(postgres_url, send_id, [closed])  # it closes mid-send
            at_close = len(smtp.handler.received)
            wait_for_ticks(postgres_url, 3)
            after_close = len(smtp.handler.received)
            time.sleep(1.0)
            assert len(smtp.handler.received) == after_close  # it waits
            assert after_close - at_close <= batch + 1  # within one batch (and one in flight)
            set_windows(postgres_url, send_id, ["00:00-24:00"])  # and resumes
            status = wait_until_done(postgres_url, send_id, timeout=30)
    assert status.counts == {"sent": 150}
    counts = smtp.handler.counts()
    assert sorted(counts) == emails and set(counts.values()) == {1}
