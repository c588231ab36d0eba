"""The router: sends one message through a relay that serves its domain, within the relays' and
the domain's caps and rates, and acts on the answer (a relay that fails rests and its message goes
to another; a domain that says "too many" is slowed down).

The choices are :mod:`distributor.sending.routing`'s pure rules; this module holds the edges: the
relays' connections, the shared counters (:class:`~distributor.sending.limits.Limits`) and the
shared strains (:mod:`distributor.sending.health`), read again about once a second.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Channel, Envelope, Outcome, Receipt
from distributor.config_relays import DomainPace, Relay, RoutingPlan
from distributor.failures import domain_of
from distributor.sending.health import read_strains, strain
from distributor.sending.limits import Throttle
from distributor.sending.routing import (
    RELAY_BURST,
    Clockwork,
    Quota,
    Strain,
    Verdict,
    by_weight,
    eligible,
    next_free,
    paced_rate,
    quotas_for,
    read_answer,
    rest,
    slow_down,
    too_many,
    window_key,
)

STRAINS_FRESH_SECONDS = 1.0  # how stale another worker's rest or slowdown may be here
# A dispatcher waits this long at most for a paced domain's turn; a turn further away is not
# taken, and that domain's messages in the batch wait their turns instead, so the others go on.
PACE_MAX_WAIT = 0.1


@dataclass(frozen=True)
class Wait:
    """This message cannot go now: it waits (deferred, no attempt spent) until then; with
    ``spacing``, the batch's further messages to its domain one ``spacing`` after another."""

    until: float  # seconds since the epoch
    reason: str
    spacing: float = 0.0


@dataclass
class Router:
    plan: RoutingPlan
    channels: Mapping[str, Channel]  # one per relay, by name: this dispatcher's connections
    factory: sessionmaker[Session]
    throttle: Throttle
    clock: Clockwork
    roll: Callable[[], float] = random.random
    _strains: dict[str, Strain] = field(default_factory=dict)
    _strains_read: float = float("-inf")  # monotonic
    _refusals: Counter[str] = field(default_factory=Counter)  # 4xx in a row, per relay

    def send(
        self,
        envelope: Envelope,
        *,
        send_id: int,
        send_rate: float | None,
        paced: bool = True,
        then: Envelope | None = None,
    ) -> Receipt | Wait:
        """Send through the first relay that takes it; ``paced`` False (a staff test send):
        without rates and caps. ``then``, the message the caller sends next, is started on the
        same connection when nothing could make it wait or go elsewhere."""
        if then is not None and not self._goes_straight(then, send_rate, paced):
            then = None
        domain = domain_of(envelope.recipient)
        pace = self.plan.pace_of(domain)
        now = time.time()
        strains = self._current_strains()
        unavailable = {
            relay.name: strains[f"relay:{relay.name}"].until
            for relay in self.plan.relays
            if self.plan.failover and f"relay:{relay.name}" in strains
        }
        while True:
            relays = (
                eligible(self.plan, domain, unavailable, now)
                if self.plan.failover
                else [r for r in self.plan.relays if r.name not in unavailable]  # takes all
            )
            if not relays:
                until = next_free(self.plan, domain, unavailable)
                return Wait(until, f"every relay that may send to {domain} is resting or full")
            relay = relays[0] if len(relays) == 1 else by_weight(relays, self.roll())
            quotas = (
                quotas_for(relay, domain, pace, now, self.clock, count_relay=self.plan.failover)
                if paced
                else []
            )
            if quotas and (full := self.throttle.limits.take_quota(quotas)) is not None:
                if quotas[full].domain:
                    return Wait(quotas[full].ends_at, f"{quotas[full].label} reached")
                unavailable[relay.name] = quotas[full].ends_at
                continue
            receipt = self._through(relay, envelope, domain, pace, send_id, send_rate, paced, then)
            if isinstance(receipt, Wait):  # the domain's pace: its turn is further away
                if quotas:
                    self.throttle.limits.give_back(quotas)
                return receipt
            if quotas and receipt.outcome is not Outcome.SENT and (receipt.code or receipt.unsent):
                self.throttle.limits.give_back(quotas)  # refused: the server did not count it
            if pace is not None and pace.rate and too_many(receipt):
                self._strain(f"domain:{domain}", lambda old: slow_down(old, now, self.clock))
            if not self.plan.failover:
                return receipt
            verdict = read_answer(receipt)
            if verdict is Verdict.FINE:
                self._refusals.pop(relay.name, None)
                return receipt
            self._count_deferred(relay, now)
            self._refusals[relay.name] += 1
            if verdict is not Verdict.REFUSED or self._refusals[relay.name] >= RELAY_BURST:
                self._refusals.pop(relay.name, None)
                rested = self._strain(f"relay:{relay.name}", lambda old: rest(old, now, self.clock))
                unavailable[relay.name] = rested.until
            if verdict is not Verdict.UNREACHABLE:
                return receipt
            # Nothing reached that relay: the message goes to another at once.

    def _through(
        self,
        relay: Relay,
        envelope: Envelope,
        domain: str,
        pace: DomainPace | None,
        send_id: int,
        send_rate: float | None,
        paced: bool,
        then: Envelope | None,
    ) -> Receipt | Wait:
        channel = self.channels[relay.name]
        if not paced:
            return channel.send(envelope, then)
        limits = self.throttle.limits
        if pace is not None and pace.rate:
            slowed = self._strains.get(f"domain:{domain}")
            rate = paced_rate(pace.rate, slowed, time.time(), self.clock)
            wait = limits.wait_for_turn(f"rate:domain:{domain}", rate, max_wait=PACE_MAX_WAIT)
            if wait:
                return Wait(time.time() + wait, f"{domain} is sent {rate:g} a second", 1 / rate)
        self.throttle.wait_for_turn(send_id, send_rate)
        if relay.rate:
            limits.wait_for_turn(f"rate:relay:{relay.name}", relay.rate)
        with self.throttle.hold_domain(envelope.recipient), self._hold_relay(relay):
            return channel.send(envelope, then)

    def _goes_straight(self, envelope: Envelope, send_rate: float | None, paced: bool) -> bool:
        """Whether ``envelope`` would go through the one relay without waiting for a turn or a
        domain slot: only then is it started behind the message before it."""
        if len(self.plan.relays) != 1:
            return False
        if not paced:
            return True
        domain, relay = domain_of(envelope.recipient), self.plan.relays[0]
        pace = self.plan.pace_of(domain)
        return not (
            send_rate
            or self.throttle.global_rate
            or relay.rate
            or relay.max_connections
            or (pace is not None and pace.rate)
            or self.throttle.domain_caps.get(domain, self.throttle.default_domain_cap)
        )

    def _hold_relay(self, relay: Relay) -> AbstractContextManager[None]:
        if relay.max_connections is None:
            return nullcontext()
        return self.throttle.limits.hold_domain(f"relay:{relay.name}", relay.max_connections)

    def _current_strains(self) -> dict[str, Strain]:
        if time.monotonic() - self._strains_read > STRAINS_FRESH_SECONDS:
            with self.factory.begin() as session:
                self._strains = read_strains(session)
            self._strains_read = time.monotonic()
        return self._strains

    def _strain(self, key: str, step: Callable[[Strain | None], Strain]) -> Strain:
        with self.factory.begin() as session:
            new = strain(session, key, step)
        self._strains[key] = new
        return new

    def _count_deferred(self, relay: Relay, now: float) -> None:
        key, ends_at = window_key(f"deferred:{relay.name}", True, now, self.clock)
        self.throttle.limits.take_quota([Quota(key, None, ends_at, False, "")])

    def drop_started(self) -> None:
        """The next message started behind the last one is not coming (the batch ended)."""
        for channel in self.channels.values():
            channel.drop_started()

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
