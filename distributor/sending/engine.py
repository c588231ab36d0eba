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

from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Channel
from distributor.channels.smtp import SmtpChannel
from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.sending.compose import EmailComposer
from distributor.sending.dispatch import Composer, DrainConfig, DrainStats, drain
from distributor.sending.planner import plan_send
from distributor.sending.policy import RetryPolicy
from distributor.sending.scheduler import TickConfig, TickReport, tick
from distributor.sending.slots import release_slot, renew_slot, take_slot


@dataclass
class Engine:
    """What a worker process holds: built once per process (after fork), closed on exit."""

    settings: Settings
    factory: sessionmaker[Session]
    channel: Channel
    composer: Composer
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")

    @classmethod
    def from_settings(cls, settings: Settings) -> Engine:
        factory = session_factory(settings.database_url)
        return cls(
            settings=settings,
            factory=factory,
            channel=SmtpChannel.from_settings(settings),
            composer=EmailComposer(settings, factory),
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
            config=TickConfig(slots=self.settings.dispatch_slots),
            enqueue_plan=enqueue_plan,
            enqueue_drain=enqueue_drain,
        )

    def plan(self, send_id: int) -> int:
        return plan_send(self.factory, send_id)

    def drain_slot(self, slot: int) -> DrainStats | None:
        """Hold dispatcher ``slot`` and drain; None if another task already holds it."""
        holder = uuid.uuid4().hex[:16]
        lease = timedelta(seconds=self.settings.claim_lease_seconds)
        with self.factory.begin() as session:
            if not take_slot(session, slot, holder, now=utcnow(), lease=lease):
                return None
        renew_every = self.settings.claim_lease_seconds / 3
        next_renewal = time.monotonic() + renew_every

        def keep_going() -> bool:
            nonlocal next_renewal
            if time.monotonic() < next_renewal:
                return True
            next_renewal = time.monotonic() + renew_every
            with self.factory.begin() as session:
                return renew_slot(session, slot, holder, until=utcnow() + lease)

        try:
            return drain(
                self.factory,
                self.channel,
                self.composer,
                config=self.drain_config,
                worker=self.name,
                keep_going=keep_going,
            )
        finally:
            with self.factory.begin() as session:
                release_slot(session, slot, holder)

    def drain_now(self) -> DrainStats:
        """Drain in this process without slots (the CLI's test send, tests)."""
        return drain(
            self.factory, self.channel, self.composer, config=self.drain_config, worker=self.name
        )

    def close(self) -> None:
        self.channel.close()
