"""Celery tasks: thin shells around :class:`distributor.runtime.WorkerRuntime`.

Every task is safe to run twice or not at all: the database decides what is done.

A worker asked to stop (SIGTERM: ``docker stop`` sends it to the main process, systemd to every
process of the unit) waits for its running tasks. A drain would otherwise send on for the rest of
its time budget, and a pool child killed by the signal could lose the answer to the message it was
sending; so both ways of asking end in one flag that the drain reads before each message, and it
gives back what it has not sent.
"""

from __future__ import annotations

import mmap
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_shutdown,
    worker_shutting_down,
)
from celery.utils.log import get_task_logger

from distributor.bounces.mailbox import poll_bounce_mailbox
from distributor.celery import TICK_TASK, WEBHOOK_TASK, app
from distributor.config import Settings
from distributor.db import dispose_engines
from distributor.errors import ConfirmationDeferred
from distributor.logs import log_context
from distributor.readers import confirmation
from distributor.readers.mailto import mailto_unsubscriber
from distributor.runtime import WorkerRuntime
from distributor.webhooks.deliver import deliver_webhooks

logger = get_task_logger(__name__)
# Each pool thread (the default pool) or process has a runtime of its own: its own SMTP connection
# and result connection, so every dispatcher sends and records strictly one message at a time.
_local = threading.local()
_runtimes: list[WorkerRuntime] = []  # every thread's, closed when the worker stops
_runtimes_lock = threading.Lock()
# One byte of anonymous shared memory, mapped before the pool forks: set by the main process or a
# child, read by every child (no lock: signal handlers write it).
_stopping = mmap.mmap(-1, 1)
_pool_child = False


def runtime() -> WorkerRuntime:
    current: WorkerRuntime | None = getattr(_local, "runtime", None)
    if current is None:
        current = _local.runtime = WorkerRuntime.from_settings(Settings.from_env())
        with _runtimes_lock:
            _runtimes.append(current)
    return current


def stopping() -> bool:
    return _stopping[0] == 1


@worker_shutting_down.connect
def _main_process_stops(**_: Any) -> None:
    _stopping[0] = 1


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked child must not share its parent's database or SMTP connections."""
    global _pool_child
    _local.runtime = None
    _runtimes.clear()
    _pool_child = True
    dispose_engines(close=False)


@contextmanager
def _sigterm_finishes_the_message_in_hand() -> Iterator[None]:
    """In a pool child, while a drain runs: the first SIGTERM sets the flag (billiard's own
    handler would raise SystemExit mid-message and lose its answer); a second one, or one when
    no drain runs, does what it did before."""
    if not _pool_child:
        yield
        return
    before = signal.getsignal(signal.SIGTERM)

    def asked_to_stop(signum: int, _frame: FrameType | None) -> None:
        _stopping[0] = 1
        signal.signal(signum, before)

    signal.signal(signal.SIGTERM, asked_to_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close(**_: Any) -> None:
    """A pool child's runtime as it exits, or every pool thread's as the worker exits."""
    with _runtimes_lock:
        for each in _runtimes:
            each.close()
        _runtimes.clear()


@app.task(name=TICK_TASK)
def tick() -> dict[str, Any]:
    report = vars(
        runtime().tick(
            enqueue_plan=plan.delay,
            enqueue_drain=drain.delay,
            enqueue_wechat=send_wechat.delay if runtime().settings.wechat_app_id else None,
        )
    )
    done = {what: value for what, value in report.items() if value}
    if done:
        logger.info("tick: %s", done)
    return report


@app.task(name="distributor.plan")
def plan(send_id: int) -> int:
    with log_context(send_id=send_id):
        planned = runtime().plan(send_id)
        logger.info("Planned send %d: %d deliveries", send_id, planned)
    return planned


@app.task(name="distributor.drain")
def drain(slot: int) -> dict[str, int] | None:
    with _sigterm_finishes_the_message_in_hand():
        stats = runtime().drain_slot(slot, requeue=drain.delay, stopping=stopping)
    return None if stats is None else stats.counts


@app.task(
    name="distributor.send_confirmation",
    autoretry_for=(ConfirmationDeferred,),
    retry_backoff=60,
    max_retries=8,
)
def send_confirmation(subscriber_id: int) -> str | None:
    """A sign-up's double opt-in message; retried while the mail server defers it."""
    receipt = confirmation.send_confirmation(runtime().settings, subscriber_id, runtime().channel)
    return None if receipt is None else receipt.outcome.value


@app.task(name="distributor.send_wechat")
def send_wechat(send_id: int) -> dict[str, Any]:
    """The WeChat jobs of a send; what is left (an answer that never came) waits for a tick."""
    with log_context(send_id=send_id):
        report = vars(runtime().send_wechat(send_id))
        logger.info("WeChat jobs of send %d: %s", send_id, report)
    return report


@app.task(name="distributor.poll_bounces")
def poll_bounces() -> dict[str, int] | None:
    """One poll of the bounce mailbox (scheduled only when ``BOUNCE_IMAP_HOST`` is set)."""
    settings = runtime().settings  # mail to the List-Unsubscribe address is read there too
    report = poll_bounce_mailbox(settings, take_first=mailto_unsubscriber(settings))
    return None if report is None else report.to_json()


@app.task(name=WEBHOOK_TASK)
def post_webhooks() -> dict[str, int]:
    """Post the outbox's events to their webhooks (scheduled every few seconds)."""
    return vars(deliver_webhooks(runtime().factory, runtime().settings))
