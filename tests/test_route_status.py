"""The routing's status from the real shared stores (the database, Redis): what each relay took
and deferred today, how long it still rests, its caps left; a capped or slowed domain's counts.
And the counters themselves: a cap is never passed by threads racing for its last places."""

from __future__ import annotations

import threading
import time

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from distributor.config_relays import DomainPace, Relay, RoutingPlan
from distributor.db import session_factory
from distributor.devservers.redis_server import RedisServer
from distributor.sending.health import read_strains, strain
from distributor.sending.limits import DatabaseLimits, Limits, RedisLimits
from distributor.sending.route_status import route_status
from distributor.sending.routing import Clockwork, Quota, quotas_for, rest, slow_down, window_key

CLOCK = Clockwork(3600, 8 * 3600, 30, 600, 300)
A = Relay("a", "h1")
B = Relay("b", "h2", daily_cap=5, hourly_cap=4)
PLAN = RoutingPlan(
    (A, B), {"163.com": DomainPace(hourly_cap=3, rate=8.0), "qq.com": DomainPace(rate=2.0)}
)


def limits_of(kind: str, factory: sessionmaker[Session], redis_server: RedisServer) -> Limits:
    if kind == "redis":
        return RedisLimits(redis.Redis.from_url(redis_server.url))
    return DatabaseLimits(factory)


@pytest.mark.parametrize("kind", ["database", "redis"])
def test_status_shows_each_relay_and_each_capped_or_slowed_domain(
    database_url: str, redis_server: RedisServer, kind: str
) -> None:
    factory = session_factory(database_url)
    limits = limits_of(kind, factory, redis_server)
    now = time.time()
    to_163 = quotas_for(B, "163.com", PLAN.pace_of("163.com"), now, CLOCK, count_relay=True)
    assert [limits.take_quota(to_163) for _ in range(4)] == [None, None, None, 2]  # 163's hour
    to_elsewhere = quotas_for(B, "example.org", None, now, CLOCK, count_relay=True)
    assert [limits.take_quota(to_elsewhere) for _ in range(2)] == [None, 0]  # b's hour: 4
    limits.give_back(to_elsewhere)  # refused by the server: it does not count
    deferred, ends_at = window_key("deferred:a", True, now, CLOCK)
    limits.take_quota([Quota(deferred, None, ends_at, False, "")])
    with factory.begin() as session:
        strain(session, "relay:a", lambda old: rest(old, now, CLOCK))
        strain(session, "domain:qq.com", lambda old: slow_down(old, now, CLOCK))
    with factory.begin() as session:
        strains = read_strains(session)
    relays, domains = route_status(PLAN, strains, limits, CLOCK, now + 1)
    a, b = relays
    assert (a.name, a.sent_today, a.deferred_today, a.daily_cap_left) == ("a", 0, 1, None)
    assert a.resting_until == pytest.approx(now + 30)
    assert (b.sent_today, b.deferred_today, b.resting_until) == (3, 0, None)
    assert (b.daily_cap_left, b.hourly_cap_left) == (2, 1)
    capped, slowed = domains
    assert (capped.domain, capped.sent_this_hour, capped.hourly_cap_left) == ("163.com", 3, 0)
    assert (capped.sent_today, capped.daily_cap_left, capped.slowdown) == (None, None, 0)
    assert (slowed.domain, slowed.slowdown, slowed.rate_now) == ("qq.com", 1, 1.0)


@pytest.mark.parametrize("kind", ["database", "redis"])
def test_threads_racing_for_a_caps_last_places_never_pass_it(
    database_url: str, redis_server: RedisServer, kind: str
) -> None:
    factory = session_factory(database_url)
    limits = limits_of(kind, factory, redis_server)
    now = time.time()
    quotas = quotas_for(Relay("r", "h", hourly_cap=25), "x.org", None, now, CLOCK)
    taken: list[int] = []

    def take() -> None:
        for _ in range(10):
            if limits.take_quota(quotas) is None:
                taken.append(1)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(taken) == 25
    assert limits.used([quotas[0].key]) == [25]


@pytest.mark.parametrize("kind", ["database", "redis"])
def test_a_turn_further_away_than_the_caller_may_wait_is_not_taken(
    database_url: str, redis_server: RedisServer, kind: str
) -> None:
    limits = limits_of(kind, session_factory(database_url), redis_server)
    key = f"rate:domain:163.com:{kind}"
    # One message every two seconds: wide enough that a loaded machine's pauses between the
    # calls below (CI, PostgreSQL) cannot bring the next turn within the caller's bound.
    assert limits.wait_for_turn(key, 0.5, max_wait=0.1) == 0.0  # free now: taken
    further = limits.wait_for_turn(key, 0.5, max_wait=0.1)
    assert 0.1 < further <= 2.0  # two seconds on (less the burst tolerance): not taken …
    # … so the next caller finds the same turn free
    assert 0.1 < limits.wait_for_turn(key, 0.5, max_wait=0.1) <= further
    started = time.monotonic()
    assert limits.wait_for_turn(key, 0.5) == 0.0  # without a bound it waits for that turn
    waited = time.monotonic() - started
    assert 0.1 < waited < further + 1.0  # that turn, not the one after it (two seconds later)
