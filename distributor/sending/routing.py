"""Which relay takes a message now, and what an answer means for the relay and the domain: pure
rules over the plan and the shared counters' values, tested without a server.

The counters themselves (caps per window, rests, slowdowns) live at the edge
(:mod:`distributor.sending.limits`, :mod:`distributor.sending.health`); the router
(:mod:`distributor.sending.router`) asks these functions and acts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from distributor.channels.base import Outcome, Receipt
from distributor.config import Settings
from distributor.config_relays import DomainPace, Relay, RoutingPlan
from distributor.failures import read_failure
from distributor.vocabulary import FailureCause

DAY_HOURS = 24
MAX_SLOWDOWN = 4  # a domain is slowed to at most 1/16 of its rate
RELAY_BURST = 5  # refusals (4xx) in a row after which a relay rests


@dataclass(frozen=True)
class Quota:
    """One counter a message counts against: ``cap`` messages per window, the window's key."""

    key: str
    cap: int | None  # None: only counted (a relay's messages today, for its status)
    ends_at: float  # seconds since the epoch: when the window (and the key) ends
    domain: bool  # a receiving domain's cap (else a relay's)
    label: str  # for staff: "163.com hourly cap 3000"


@dataclass(frozen=True)
class Clockwork:
    """The routing's times, from the settings: how long an "hour" is (shortened in tests),
    how far the office's midnight is from UTC's, rests and slowdowns."""

    hour_seconds: float
    utc_offset_seconds: float
    rest_seconds: float
    rest_max_seconds: float
    slowdown_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Clockwork:
        offset = settings.zone.utcoffset(datetime.now(UTC).replace(tzinfo=None))
        return cls(
            hour_seconds=settings.cap_hour_seconds,
            utc_offset_seconds=offset.total_seconds() if offset is not None else 0.0,
            rest_seconds=settings.relay_rest_seconds,
            rest_max_seconds=settings.relay_rest_max_seconds,
            slowdown_seconds=settings.domain_slowdown_seconds,
        )

    def window(self, now: float, length: float) -> tuple[int, float]:
        """The index of the window of ``length`` seconds holding ``now``, and when it ends."""
        shifted = now + self.utc_offset_seconds
        index = math.floor(shifted / length)
        return index, (index + 1) * length - self.utc_offset_seconds


def quotas_for(
    relay: Relay,
    domain: str,
    pace: DomainPace | None,
    now: float,
    clock: Clockwork,
    *,
    count_relay: bool = False,
) -> list[Quota]:
    """The caps one message to ``domain`` through ``relay`` counts against, right now;
    ``count_relay``: the relay's day is counted even without a cap (for its status)."""
    day = DAY_HOURS * clock.hour_seconds
    caps: list[tuple[str, int | None, float, bool, str]] = [
        (f"relay:{relay.name}", relay.hourly_cap, clock.hour_seconds, False, "hourly"),
        (f"relay:{relay.name}", relay.daily_cap, day, False, "daily"),
    ]
    if pace is not None:
        caps += [
            (f"domain:{domain}", pace.hourly_cap, clock.hour_seconds, True, "hourly"),
            (f"domain:{domain}", pace.daily_cap, day, True, "daily"),
        ]
    quotas = []
    for prefix, cap, length, is_domain, kind in caps:
        counted = cap is not None or (count_relay and not is_domain and length == day)
        if not counted:
            continue
        key, ends_at = window_key(prefix, length == day, now, clock)
        label = f"{prefix.partition(':')[2]} {kind} cap {cap}"
        quotas.append(Quota(key, cap, ends_at, is_domain, label))
    return quotas


def window_key(prefix: str, day: bool, now: float, clock: Clockwork) -> tuple[str, float]:
    """The key counting ``prefix``'s (``relay:a``, ``domain:163.com``, ``deferred:a``) messages
    in this hour's or day's window, and when that window ends."""
    index, ends_at = clock.window(now, clock.hour_seconds * (DAY_HOURS if day else 1))
    return f"cap:{prefix}:{'day' if day else 'hour'}:{index}", ends_at


def eligible(
    plan: RoutingPlan, domain: str, unavailable: Mapping[str, float], now: float
) -> list[Relay]:
    """The relays that may take a message to ``domain`` now: those that serve it, else (none
    serves it, or all that do are resting or full) the general ones."""
    up = [relay for relay in plan.relays if unavailable.get(relay.name, 0.0) <= now]
    serving = [relay for relay in up if domain in relay.domains]
    return serving or [relay for relay in up if not relay.domains]


def next_free(plan: RoutingPlan, domain: str, unavailable: Mapping[str, float]) -> float:
    """When the first relay that could take ``domain`` is free again."""
    mine = [r for r in plan.relays if domain in r.domains or not r.domains]
    return min(unavailable.get(relay.name, 0.0) for relay in mine or plan.relays)


def by_weight(relays: Sequence[Relay], roll: float) -> Relay:
    """One of ``relays`` in proportion to its weight; ``roll`` is uniform in [0, 1)."""
    point = roll * sum(relay.weight for relay in relays)
    for relay in relays:
        point -= relay.weight
        if point < 0:
            return relay
    return relays[-1]


class Verdict(Enum):
    """What an answer says about the relay that gave it."""

    FINE = "fine"  # record it: the reader's or the message's business
    REFUSED = "refused"  # a 4xx: recorded, and counted towards a burst that rests the relay
    UNREACHABLE = "unreachable"  # the relay took nothing (down, 421): rest it, send elsewhere
    LOST = "lost"  # the connection broke after the message went: record, and rest the relay


def read_answer(receipt: Receipt) -> Verdict:
    if receipt.outcome is Outcome.SENT or receipt.outcome is Outcome.FAILED:
        return Verdict.FINE
    if receipt.code == 421 or (receipt.code is None and receipt.unsent):
        return Verdict.UNREACHABLE
    if receipt.code is None:
        return Verdict.LOST
    return Verdict.REFUSED


def too_many(receipt: Receipt) -> bool:
    """A 421 or 450 that says we send too fast or too much (the domain's throttle)."""
    if receipt.code not in (421, 450):
        return False
    return read_failure(receipt.response, code=receipt.code).cause is FailureCause.BLOCKED


@dataclass(frozen=True)
class Strain:
    """A relay's rest or a domain's slowdown, as the shared store keeps it."""

    level: int  # rests in a row / halvings of the rate
    until: float  # when the rest (or this step of the slowdown) ends


def level_now(strain: Strain | None, now: float, span: float) -> int:
    """A strain eases one level per ``span`` after its end: speeding back up step by step."""
    if strain is None or strain.level <= 0:
        return 0
    if now < strain.until:
        return strain.level
    return max(0, strain.level - 1 - math.floor((now - strain.until) / span))


def rest(previous: Strain | None, now: float, clock: Clockwork) -> Strain:
    """A failing relay's next rest: doubling while it keeps failing, from the start after a
    while of good health. A relay already resting stays as it is: several workers that saw the
    same failure rest it once."""
    if previous is not None and previous.until > now:
        return previous
    recent = previous is not None and now - previous.until < clock.rest_max_seconds
    level = min(previous.level + 1, 16) if previous is not None and recent else 1
    seconds = min(clock.rest_max_seconds, clock.rest_seconds * 2 ** (level - 1))
    return Strain(level, now + seconds)


def slow_down(previous: Strain | None, now: float, clock: Clockwork) -> Strain:
    """A domain that said "too many": half its rate again, for another slowdown period (once
    per tenth of that period: the answers of messages already in flight add no more)."""
    if previous is not None and previous.until - 0.9 * clock.slowdown_seconds > now:
        return previous
    level = min(MAX_SLOWDOWN, level_now(previous, now, clock.slowdown_seconds) + 1)
    return Strain(level, now + clock.slowdown_seconds)


def paced_rate(rate: float, strain: Strain | None, now: float, clock: Clockwork) -> float:
    return rate / float(2 ** level_now(strain, now, clock.slowdown_seconds))
