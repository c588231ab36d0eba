"""Rate limits shared by every worker on every machine: a message rate (global and per send) and
a cap on parallel SMTP transactions per recipient domain.

The rate is a reservation (GCRA): each message atomically takes the next free instant of its key
and moves it on by one interval, then sleeps until its instant, so N workers together keep to the
rate (a per-process throttle would allow N times it). State lives in Redis when there
is one, else in the database (the embedded set-up).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Protocol

import redis
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.db import insert_ignoring_duplicates
from distributor.errors import ConfigurationError
from distributor.sending.models import DomainLease, RateLimit

log = logging.getLogger(__name__)
GLOBAL_KEY = "rate:global"
DOMAIN_LEASE_SECONDS = 120.0  # a dead worker's domain slot frees itself after this
POLL_SECONDS = 0.005
# A sender idle for a moment may catch up by this much, so short gaps (a claim, a slow answer)
# do not lower the average below the limit; over any window the excess is at most rate × this.
BURST_TOLERANCE = 0.1


def parse_domain_caps(text: str) -> dict[str, int]:
    """``"qq.com=5, 163.com=3"`` → ``{"qq.com": 5, "163.com": 3}``."""
    caps: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        domain, _, number = item.partition("=")
        if not number.strip().isdigit() or int(number) < 1:
            raise ConfigurationError(
                f"DOMAIN_CONCURRENCY item {item!r} must be DOMAIN=N with N ≥ 1, e.g. qq.com=5"
            )
        caps[domain.strip().lower()] = int(number)
    return caps


class Limits(Protocol):
    def wait_for_turn(self, key: str, rate: float) -> None:
        """Block until this message may go under ``rate`` messages/second for ``key``."""
        ...

    def hold_domain(self, domain: str, cap: int) -> AbstractContextManager[None]:
        """Block until fewer than ``cap`` transactions to ``domain`` run, and hold one."""
        ...


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now - tonumber(ARGV[2]))
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval),
           'PX', math.floor((slot - now + interval) / 1000) + 1000)
return string.format('%.0f', math.max(slot - now, 0))
"""

_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3])) + 60)
  return 1
end
return 0
"""


@dataclass
class RedisLimits:
    client: redis.Redis
    _reserve: object = field(init=False)
    _acquire: object = field(init=False)

    def __post_init__(self) -> None:
        self._reserve = self.client.register_script(_RESERVE)
        self._acquire = self.client.register_script(_ACQUIRE)

    def _call(self, script: object, keys: list[str], args: list[object]) -> bytes:
        while True:
            try:
                return script(keys=keys, args=args)  # type: ignore[operator,no-any-return]
            except redis.ConnectionError as error:  # Redis restarting: wait, never skip the limit
                log.warning("rate limiter cannot reach Redis (%s); retrying", error)
                time.sleep(0.5)

    def wait_for_turn(self, key: str, rate: float) -> None:
        tolerance_us = BURST_TOLERANCE * 1_000_000
        wait_us = int(self._call(self._reserve, [key], [1_000_000 / rate, tolerance_us]))
        if wait_us > 0:
            time.sleep(wait_us / 1_000_000)

    @contextmanager
    def hold_domain(self, domain: str, cap: int) -> Iterator[None]:
        key, holder = f"domain:{domain}", uuid.uuid4().hex
        while not int(self._call(self._acquire, [key], [cap, holder, DOMAIN_LEASE_SECONDS])):
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            with suppress(redis.ConnectionError):  # else the lease expires by itself
                self.client.zrem(key, holder)


@dataclass
class DatabaseLimits:
    """The same limits in the database, for the embedded set-up (one machine, SQLite)."""

    factory: sessionmaker[Session]

    def wait_for_turn(self, key: str, rate: float) -> None:
        interval = 1.0 / rate
        with self.factory.begin() as session:
            now = time.time()
            greatest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
            insert_ignoring_duplicates(session, RateLimit, [{"key": key, "next_free": 0.0}])
            next_free = session.scalar(
                update(RateLimit)
                .where(RateLimit.key == key)
                .values(next_free=greatest(RateLimit.next_free, now - BURST_TOLERANCE) + interval)
                .returning(RateLimit.next_free)
            )
        wait = float(next_free or 0) - interval - now
        if wait > 0:
            time.sleep(wait)

    @contextmanager
    def hold_domain(self, domain: str, cap: int) -> Iterator[None]:
        holder = uuid.uuid4().hex
        while not self._try_domain(domain, cap, holder):
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            with self.factory.begin() as session:
                session.execute(delete(DomainLease).where(DomainLease.holder == holder))

    def _try_domain(self, domain: str, cap: int, holder: str) -> bool:
        with self.factory.begin() as session:
            now = time.time()
            if session.get_bind().dialect.name == "postgresql":  # serialise per domain
                session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:d))"), {"d": domain})
            session.execute(
                delete(DomainLease).where(
                    DomainLease.domain == domain, DomainLease.expires_at < now
                )
            )
            held = session.scalar(select(func.count()).where(DomainLease.domain == domain)) or 0
            if held >= cap:
                return False
            session.execute(
                insert(DomainLease).values(
                    domain=domain, holder=holder, expires_at=now + DOMAIN_LEASE_SECONDS
                )
            )
            return True


@dataclass(frozen=True)
class Throttle:
    """What the dispatcher asks before each message: its turn under the rates, a domain slot."""

    limits: Limits
    global_rate: float | None = None
    domain_caps: Mapping[str, int] = field(default_factory=dict)
    default_domain_cap: int | None = None

    def wait_for_turn(self, send_id: int, send_rate: float | None) -> None:
        if self.global_rate:
            self.limits.wait_for_turn(GLOBAL_KEY, self.global_rate)
        if send_rate:
            self.limits.wait_for_turn(f"rate:send:{send_id}", send_rate)

    def hold_domain(self, address: str) -> AbstractContextManager[None]:
        domain = address.rpartition("@")[2].lower()
        cap = self.domain_caps.get(domain, self.default_domain_cap)
        if not cap:
            return nullcontext()
        return self.limits.hold_domain(domain, cap)
