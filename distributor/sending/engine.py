"""The engine's entry points, wired to one process's database, channel and composer.

Celery tasks, the CLI and tests call these; each is a thin sequence of the pure and SQL steps in
the sibling modules.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

import redis
from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Channel
from distributor.channels.smtp import SmtpChannel
from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.sending.compose import EmailComposer
from distributor.sending.dispatch import Composer, DrainConfig, DrainStats, drain
from distributor.sending.limits import (
    DatabaseLimits,
    Limits,
    RedisLimits,
    Throttle,
    parse_domain_caps,
)
from distributor.sending.planner import plan_send
from distributor.sending.policy import RetryPolicy
from distributor.sending.scheduler import TickConfig, TickReport, tick
from distributor.sending.slots import hand_over_slot, release_slot, renew_slot, take_slot


@dataclass
class Engine:
    """What a worker process holds: built once per process (after fork), closed on exit."""

    settings: Settings
    factory: sessionmaker[Session]
    channel: Channel
    composer: Composer
    throttle: Throttle
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        factory = session_factory(settings.database_url)
        redis_url = settings.shared_redis_url
        limits: Limits = (
            RedisLimits(redis.Redis.from_url(redis_url)) if redis_url else DatabaseLimits(factory)
        )
        return cls(
            settings=settings,
            factory=factory,
            channel=SmtpChannel.from_settings(settings),
            composer=EmailComposer(settings, factory),
            throttle=Throttle(
                limits,
                global_rate=settings.rate_limit,
                domain_caps=parse_domain_caps(settings.domain_concurrency),
                default_domain_cap=settings.default_domain_concurrency,
            ),
        )

    @property
    def drain_config(self) -> DrainConfig:
        return DrainConfig(
            batch_size=self.settings.batch_size,
            lease_seconds=self.settings.claim_lease_seconds,
            policy=RetryPolicy(
                max_attempts=self.settings.retry_max_attempts,
                base_delay=self.settings.retry_base_seconds,
            ),
        )

    def tick(
        self, *, enqueue_plan: Callable[[int], None], enqueue_drain: Callable[[int], None]
    ) -> TickReport:
        return tick(
            self.factory,
            now=utcnow(),
            config=TickConfig(
                slots=self.settings.dispatch_slots,
                slot_grace=timedelta(seconds=self.settings.claim_lease_seconds),
            ),
            enqueue_plan=enqueue_plan,
            enqueue_drain=enqueue_drain,
        )

    def plan(self, send_id: int) -> int:
        return plan_send(self.factory, send_id)

    def drain_slot(
        self,
        slot: int,
        *,
        requeue: Callable[[int], None],
        stopping: Callable[[], bool] = lambda: False,
    ) -> DrainStats | None:
        """Hold dispatcher ``slot`` and drain; None if another task already holds it.

        A drain stops after its time budget so that ticks and planning get a worker process in
        between, or as soon as ``stopping`` says the process is shutting down; it then hands its
        slot straight to a new task (``requeue``) instead of waiting for the next tick."""
        holder = uuid.uuid4().hex[:16]
        lease = timedelta(seconds=self.settings.claim_lease_seconds)
        with self.factory.begin() as session:
            if not take_slot(session, slot, holder, now=utcnow(), lease=lease):
                return None
        renew_every = self.settings.claim_lease_seconds / 3
        next_renewal = time.monotonic() + renew_every

        def keep_going() -> bool:
            nonlocal next_renewal
            if stopping():
                return False
            if time.monotonic() < next_renewal:
                return True
            next_renewal = time.monotonic() + renew_every
            with self.factory.begin() as session:
                return renew_slot(session, slot, holder, until=utcnow() + lease)

        stats = None
        try:
            stats = drain(
                self.factory,
                self.channel,
                self.composer,
                config=self.drain_config,
                worker=self.name,
                keep_going=keep_going,
                throttle=self.throttle,
            )
            return stats
        finally:
            with self.factory.begin() as session:
                handed_over = (
                    stats is not None
                    and stats.out_of_time
                    and hand_over_slot(session, slot, holder, now=utcnow(), grace=lease)
                )
                if not handed_over:
                    release_slot(session, slot, holder)
            if handed_over:
                requeue(slot)

    def drain_now(self) -> DrainStats:
        """Drain in this process without slots (the CLI's test send, tests)."""
        return drain(
            self.factory,
            self.channel,
            self.composer,
            config=self.drain_config,
            worker=self.name,
            throttle=self.throttle,
        )

    def close(self) -> None:
        self.channel.close()
