"""Rate limits shared by every worker on every machine: a message rate (global, per send, per
relay, per domain), a cap on parallel SMTP transactions per recipient domain (or relay), and
caps on messages per window (a relay's or a domain's hour and day).

The rate is a reservation (GCRA): each message atomically takes the next free instant of its key
and moves it on by one interval, then sleeps until its instant, so N workers together keep to the
rate (a per-process throttle would allow N times it). State lives in Redis when there
is one, else in the database (the embedded set-up).
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from distributor.config import Settings
from distributor.db import insert_ignoring_duplicates
from distributor.errors import ConfigurationError
from distributor.sending.models import DomainLease, QuotaCount, RateLimit
from distributor.sending.routing import Quota

if TYPE_CHECKING:
    import redis  # imported where Redis is used: whoever has none (a status) starts without it

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
    def wait_for_turn(self, key: str, rate: float, max_wait: float | None = None) -> float:
        """Block until this message may go under ``rate`` messages/second for ``key``; 0.
        With ``max_wait``, a turn further away than that is not taken: the seconds until it."""
        ...

    def hold_domain(self, domain: str, cap: int) -> AbstractContextManager[None]:
        """Block until fewer than ``cap`` transactions to ``domain`` run, and hold one."""
        ...

    def take_quota(self, quotas: Sequence[Quota]) -> int | None:
        """Count one message against every quota, all or none: None when counted, else the
        index of the first quota that is full."""
        ...

    def give_back(self, quotas: Sequence[Quota]) -> None:
        """Uncount one message (the server refused it: it did not use the cap)."""
        ...

    def used(self, keys: Sequence[str]) -> list[int]:
        """How many messages each window's key has counted (0 for one never used)."""
        ...


_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now - tonumber(ARGV[2]))
local wait = math.max(slot - now, 0)
if tonumber(ARGV[3]) >= 0 and wait > tonumber(ARGV[3]) then
  return string.format('-%.0f', wait)
end
redis.call('SET', KEYS[1], string.format('%.0f', slot + interval),
           'PX', math.floor((slot - now + interval) / 1000) + 1000)
return string.format('%.0f', wait)
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

# Quotas: all under their caps, then all counted, in one step. ARGV: cap (-1: count only) and
# seconds to live, per key.
_TAKE = """
for i = 1, #KEYS do
  local cap = tonumber(ARGV[2 * i - 1])
  if cap >= 0 and tonumber(redis.call('GET', KEYS[i]) or '0') >= cap then return i end
end
for i = 1, #KEYS do
  redis.call('INCR', KEYS[i])
  redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
end
return 0
"""


def _ttl(quota: Quota, now: float) -> int:
    return max(1, math.ceil(quota.ends_at - now)) + 60


@dataclass
class RedisLimits:
    client: redis.Redis
    _reserve: object = field(init=False)
    _acquire: object = field(init=False)

    def __post_init__(self) -> None:
        self._reserve = self.client.register_script(_RESERVE)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._take = self.client.register_script(_TAKE)

    def _call(self, script: object, keys: list[str], args: list[object]) -> bytes:
        import redis

        while True:
            try:
                return script(keys=keys, args=args)  # type: ignore[operator,no-any-return]
            except redis.ConnectionError as error:  # Redis restarting: wait, never skip the limit
                log.warning("rate limiter cannot reach Redis (%s); retrying", error)
                time.sleep(0.5)

    def wait_for_turn(self, key: str, rate: float, max_wait: float | None = None) -> float:
        tolerance_us = BURST_TOLERANCE * 1_000_000
        most_us = -1 if max_wait is None else max_wait * 1_000_000
        wait_us = int(self._call(self._reserve, [key], [1_000_000 / rate, tolerance_us, most_us]))
        if wait_us < 0:  # too far away: not taken
            return -wait_us / 1_000_000
        if wait_us > 0:
            time.sleep(wait_us / 1_000_000)
        return 0.0

    @contextmanager
    def hold_domain(self, domain: str, cap: int) -> Iterator[None]:
        import redis

        key, holder = f"domain:{domain}", uuid.uuid4().hex
        while not int(self._call(self._acquire, [key], [cap, holder, DOMAIN_LEASE_SECONDS])):
            time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            with suppress(redis.ConnectionError):  # else the lease expires by itself
                self.client.zrem(key, holder)

    def take_quota(self, quotas: Sequence[Quota]) -> int | None:
        now = time.time()
        args: list[object] = []
        for quota in quotas:
            args += [-1 if quota.cap is None else quota.cap, _ttl(quota, now)]
        full = int(self._call(self._take, [quota.key for quota in quotas], args))
        return full - 1 if full else None

    def give_back(self, quotas: Sequence[Quota]) -> None:
        import redis

        with suppress(redis.ConnectionError):  # the cap then errs on the safe side
            pipeline = self.client.pipeline()
            for quota in quotas:
                pipeline.decr(quota.key)
            pipeline.execute()

    def used(self, keys: Sequence[str]) -> list[int]:
        return [int(value or 0) for value in self.client.mget(keys)] if keys else []


@dataclass
class DatabaseLimits:
    """The same limits in the database, for the embedded set-up (one machine, SQLite)."""

    factory: sessionmaker[Session]
    _windows: set[str] = field(default_factory=set)  # quota windows this process has seen

    def wait_for_turn(self, key: str, rate: float, max_wait: float | None = None) -> float:
        interval = 1.0 / rate
        with self.factory.begin() as session:
            now = time.time()
            insert_ignoring_duplicates(session, RateLimit, [{"key": key, "next_free": 0.0}])
            if max_wait is not None:  # look first: a turn too far away is not taken
                next_free = session.scalar(
                    select(RateLimit.next_free).where(RateLimit.key == key).with_for_update()
                )
                if (wait := max(float(next_free or 0), now - BURST_TOLERANCE) - now) > max_wait:
                    return wait
            greatest = func.max if session.get_bind().dialect.name == "sqlite" else func.greatest
            taken = session.scalar(
                update(RateLimit)
                .where(RateLimit.key == key)
                .values(next_free=greatest(RateLimit.next_free, now - BURST_TOLERANCE) + interval)
                .returning(RateLimit.next_free)
            )
        wait = float(taken or 0) - interval - now
        if wait > 0:
            time.sleep(wait)
        return 0.0

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

    def take_quota(self, quotas: Sequence[Quota]) -> int | None:
        try:
            with self.factory.begin() as session:
                now = time.time()
                rows = [{"key": q.key, "n": 0, "expires_at": q.ends_at} for q in quotas]
                insert_ignoring_duplicates(session, QuotaCount, rows)
                if any(quota.key not in self._windows for quota in quotas):  # a new window
                    self._windows.update(quota.key for quota in quotas)
                    session.execute(delete(QuotaCount).where(QuotaCount.expires_at < now - 60))
                for index, quota in enumerate(quotas):
                    counted = session.execute(
                        update(QuotaCount)
                        .where(QuotaCount.key == quota.key)
                        .where(*(() if quota.cap is None else (QuotaCount.n < quota.cap,)))
                        .values(n=QuotaCount.n + 1)
                    )
                    if not counted.rowcount:  # type: ignore[attr-defined]
                        raise _Full(index)
        except _Full as full:
            return full.index
        return None

    def give_back(self, quotas: Sequence[Quota]) -> None:
        with self.factory.begin() as session:
            session.execute(
                update(QuotaCount)
                .where(QuotaCount.key.in_([quota.key for quota in quotas]))
                .values(n=QuotaCount.n - 1)
            )

    def used(self, keys: Sequence[str]) -> list[int]:
        with self.factory.begin() as session:
            rows = session.execute(
                select(QuotaCount.key, QuotaCount.n).where(QuotaCount.key.in_(keys))
            )
            found = {key: n for key, n in rows}
        return [int(found.get(key, 0)) for key in keys]


class _Full(Exception):
    """A quota is full: the transaction that counted the others rolls back."""

    def __init__(self, index: int) -> None:
        self.index = index


def shared_limits(settings: Settings, factory: sessionmaker[Session]) -> Limits:
    """The limits every worker shares: in Redis when there is one, else in the database."""
    redis_url = settings.shared_redis_url
    if not redis_url:
        return DatabaseLimits(factory)
    import redis

    return RedisLimits(redis.Redis.from_url(redis_url))


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
