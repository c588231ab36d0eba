"""What a worker process holds (database, channel, composer, limits, the WeChat client) and its
entry points: the email engine (:mod:`distributor.sending`) and the WeChat engine
(:mod:`distributor.wechat`) put together.

Celery tasks, the CLI and tests call these; each is a thin sequence of the engines' pure and SQL
steps. It sits above the engines and below the faces: no engine imports it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from distributor.automations.steps import run_due_steps
from distributor.channels.base import Channel
from distributor.channels.smtp import SmtpChannel
from distributor.channels.wechat.client import WechatClient
from distributor.config import Settings
from distributor.db import session_factory, utcnow
from distributor.errors import ConfigurationError, RenderError
from distributor.readers.arms import decide_due_tests
from distributor.segments import install as install_segments
from distributor.sending.compose import EmailComposer
from distributor.sending.dispatch import Composer, DrainStats, drain
from distributor.sending.lifecycle import pause_for_error
from distributor.sending.limits import Throttle, parse_domain_caps, shared_limits
from distributor.sending.planner import plan_send
from distributor.sending.renders import render_send
from distributor.sending.router import Router
from distributor.sending.routing import Clockwork
from distributor.sending.scheduler import JobQueue, TickReport, tick
from distributor.sending.slots import hand_over_slot, release_slot, renew_slot, take_slot
from distributor.sending.test_sends import finish_test_send
from distributor.sending.tunables import Tunables
from distributor.wechat.jobs import WechatReport, send_wechat, sends_with_wechat_work


@dataclass
class WorkerRuntime:
    """What a dispatcher holds: built once per pool thread (or process, after fork)."""

    settings: Settings
    tunables: Tunables
    factory: sessionmaker[Session]
    router: Router
    composer: Composer
    name: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    _wechat: WechatClient | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> WorkerRuntime:
        install_segments()  # the planner reads sends to segments
        factory = session_factory(settings.database_url)
        limits = shared_limits(settings, factory)
        plan = settings.routing
        throttle = Throttle(
            limits,
            global_rate=settings.rate_limit,
            domain_caps={
                **plan.domain_concurrency(),
                **parse_domain_caps(settings.domain_concurrency),
            },
            default_domain_cap=settings.default_domain_concurrency,
        )
        return cls(
            settings=settings,
            tunables=Tunables.from_settings(settings),
            factory=factory,
            router=Router(
                plan,
                {relay.name: SmtpChannel.for_relay(relay, settings) for relay in plan.relays},
                factory,
                throttle,
                Clockwork.from_settings(settings),
            ),
            composer=EmailComposer(settings, factory),
        )

    @property
    def channel(self) -> Channel:
        """The first relay's connection: for the odd message outside a send (a confirmation)."""
        return self.router.channels[self.router.plan.relays[0].name]

    def tick(
        self,
        *,
        enqueue_plan: Callable[[int], None],
        enqueue_drain: Callable[[int], None],
        enqueue_wechat: Callable[[int], None] | None = None,
    ) -> TickReport:
        """Automation steps first: the readers whose moment came have their deliveries when the
        engine's tick looks for work."""
        now = utcnow()
        readers = run_due_steps(self.factory, self.settings, now)
        report = tick(
            self.factory,
            now=now,
            tunables=self.tunables,
            enqueue_plan=enqueue_plan,
            enqueue_drain=enqueue_drain,
            jobs=JobQueue(sends_with_wechat_work, enqueue_wechat) if enqueue_wechat else None,
            decide=decide_due_tests,
        )
        report.automations = readers
        return report

    def plan(self, send_id: int) -> int:
        """Render the send, then freeze its audience into deliveries. A send whose message
        cannot be made pauses with the reason before a single delivery exists."""
        try:
            with self.factory.begin() as session:
                render_send(session, send_id, self.settings)
        except (RenderError, ConfigurationError) as error:
            with self.factory.begin() as session:
                pause_for_error(session, send_id, error.message, utcnow())
            return 0
        return plan_send(
            self.factory,
            send_id,
            batch_size=self.tunables.plan_batch_size,
            lease=self.tunables.planner_lease,
            wechat=self.settings.wechat_app_id is not None,
        )

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
        lease = self.tunables.lease
        with self.factory.begin() as session:
            if not take_slot(session, slot, holder, now=utcnow(), lease=lease):
                return None
        renew_every = lease.total_seconds() / 3
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
            stats = self._drain(keep_going=keep_going)
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
        """Drain every running send in this process, without slots (tests)."""
        return self._drain()

    def send_test(self, send_id: int) -> DrainStats:
        """Send a staff test send from this process, now; what could not go out is failed, not
        left for a worker: a test goes out while its command waits, or not at all."""
        try:
            return self._drain(only_send=send_id, paced=False)
        finally:
            with self.factory.begin() as session:
                finish_test_send(session, send_id, utcnow())

    def _drain(
        self,
        *,
        keep_going: Callable[[], bool] = lambda: True,
        paced: bool = True,
        only_send: int | None = None,
    ) -> DrainStats:
        return drain(
            self.factory,
            self.router,
            self.composer,
            tunables=self.tunables,
            worker=self.name,
            keep_going=keep_going,
            paced=paced,
            only_send=only_send,
        )

    def send_wechat(self, send_id: int) -> WechatReport:
        """The WeChat jobs of a send (its WeChat readers), beside the email dispatch."""
        if self._wechat is None:
            self._wechat = WechatClient.from_settings(
                self.settings, timeout=self.settings.wechat_timeout_seconds
            )
        return send_wechat(self.factory, self._wechat, send_id, self.settings)

    def close(self) -> None:
        self.router.close()
        if self._wechat is not None:
            self._wechat.close()
