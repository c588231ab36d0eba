"""The engine's tunables, built from :class:`~distributor.config.Settings` in this one place.

The engine's functions take a :class:`Tunables` (or one of its parts) and have no defaults of
their own: what a worker does is what the settings (``.env.example``) say.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from distributor.config import Settings
from distributor.sending.policy import RetryPolicy
from distributor.sending.refusals import RefusalPolicy


@dataclass(frozen=True)
class Tunables:
    batch_size: int  # deliveries claimed at a time
    lease: timedelta  # a dead worker's claims (and dispatcher slot) go out again after this
    renew_within: timedelta  # a claim is renewed once less is left: an answer and a recheck
    budget_seconds: float  # a drain hands its slot on after this, so ticks get a process
    recheck_seconds: float  # how stale a pause or an unsubscribe may be when a message goes
    retry: RetryPolicy
    tick_seconds: float
    slots: int  # dispatcher tasks sending at once, across all workers
    plan_batch_size: int
    planner_lease: timedelta
    refusals: RefusalPolicy  # when a domain's refusals pause a send

    @classmethod
    def from_settings(cls, settings: Settings) -> Tunables:
        return cls(
            batch_size=settings.batch_size,
            lease=timedelta(seconds=settings.claim_lease_seconds),
            renew_within=timedelta(seconds=settings.smtp_timeout + settings.recheck_seconds),
            budget_seconds=settings.dispatch_budget_seconds,
            recheck_seconds=settings.recheck_seconds,
            retry=RetryPolicy(
                max_attempts=settings.retry_max_attempts,
                base_delay=settings.retry_base_seconds,
                max_delay=settings.retry_max_delay_seconds,
            ),
            tick_seconds=settings.tick_seconds,
            slots=settings.dispatch_slots,
            plan_batch_size=settings.plan_batch_size,
            planner_lease=timedelta(seconds=settings.planner_lease_seconds),
            refusals=RefusalPolicy.from_settings(settings),
        )
