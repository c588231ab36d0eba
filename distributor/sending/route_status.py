"""The routing as staff and monitoring see it: per relay (sent and deferred today, resting until,
caps left) and per capped or slowed domain (sent, caps left, slowdown), read from the shared
counters and strains."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from distributor.config import Settings
from distributor.config_relays import RoutingPlan
from distributor.db import session_factory
from distributor.sending.health import read_strains
from distributor.sending.limits import Limits, shared_limits
from distributor.sending.routing import Clockwork, Strain, level_now, paced_rate, window_key


@dataclass(frozen=True)
class RelayView:
    name: str
    sent_today: int | None  # None: not counted (one relay without caps)
    deferred_today: int
    resting_until: float | None  # seconds since the epoch
    daily_cap_left: int | None  # None: no cap
    hourly_cap_left: int | None


@dataclass(frozen=True)
class DomainView:
    domain: str
    sent_today: int | None  # None: not counted (no daily cap)
    sent_this_hour: int | None
    daily_cap_left: int | None
    hourly_cap_left: int | None
    slowdown: int  # halvings of its rate after "too many" answers, now
    rate_now: float | None  # messages a second it is sent at now


def route_status(
    plan: RoutingPlan,
    strains: Mapping[str, Strain],
    limits: Limits,
    clock: Clockwork,
    now: float,
) -> tuple[list[RelayView], list[DomainView]]:
    """Every relay of a plan with several or with caps; every domain with a cap or slowed."""
    counted = [r for r in plan.relays if plan.failover or r.capped]
    paced = {
        domain: pace
        for domain, pace in sorted(plan.domains.items())
        if pace.hourly_cap
        or pace.daily_cap
        or level_now(strains.get(f"domain:{domain}"), now, clock.slowdown_seconds)
    }
    prefixes = [
        *(f"{kind}:{relay.name}" for relay in counted for kind in ("relay", "deferred")),
        *(f"domain:{domain}" for domain in paced),
    ]
    windows = {
        (prefix, day): window_key(prefix, day, now, clock)[0]
        for prefix in prefixes
        for day in (True, False)
    }
    used = dict(zip(windows, limits.used(list(windows.values())), strict=True))

    def left(cap: int | None, n: int) -> int | None:
        return None if cap is None else max(0, cap - n)

    relays = []
    for relay in counted:
        rest = strains.get(f"relay:{relay.name}")
        today, hour = used[f"relay:{relay.name}", True], used[f"relay:{relay.name}", False]
        relays.append(
            RelayView(
                relay.name,
                today,
                used[f"deferred:{relay.name}", True],
                rest.until if rest is not None and rest.until > now else None,
                left(relay.daily_cap, today),
                left(relay.hourly_cap, hour),
            )
        )
    domains = []
    for domain, pace in paced.items():
        strain = strains.get(f"domain:{domain}")
        today, hour = used[f"domain:{domain}", True], used[f"domain:{domain}", False]
        domains.append(
            DomainView(
                domain,
                today if pace.daily_cap else None,
                hour if pace.hourly_cap else None,
                left(pace.daily_cap, today),
                left(pace.hourly_cap, hour),
                level_now(strain, now, clock.slowdown_seconds),
                paced_rate(pace.rate, strain, now, clock) if pace.rate else None,
            )
        )
    return relays, domains


@dataclass(frozen=True)
class RoutingReport:
    relays: list[RelayView]
    domains: list[DomainView]
    unreachable: str | None = None  # the shared counters could not be read: why

    def to_json(self) -> dict[str, Any]:
        return {
            "relays": [asdict(relay) for relay in self.relays],
            "domains": [asdict(domain) for domain in self.domains],
            **({"unreachable": self.unreachable} if self.unreachable else {}),
        }


def routing_now(settings: Settings) -> RoutingReport:
    """The routing of these settings' relays and domains, now."""
    factory = session_factory(settings.database_url)
    limits = shared_limits(settings, factory)
    clock = Clockwork.from_settings(settings)
    try:
        with factory.begin() as session:
            strains = read_strains(session)
        relays, domains = route_status(settings.routing, strains, limits, clock, time.time())
    except _redis_errors(settings) as error:  # a status is still shown without them
        return RoutingReport([], [], f"the shared counters in Redis: {error}")
    return RoutingReport(relays, domains)


def _redis_errors(settings: Settings) -> tuple[type[Exception], ...]:
    """Redis's errors where the counters are in Redis; else none, and Redis is not imported."""
    if not settings.shared_redis_url:
        return ()
    import redis

    return (redis.RedisError,)
