"""Celery tasks: thin shells around :class:`distributor.sending.runtime.WorkerRuntime`.

Every task is safe to run twice or not at all: the database decides what is done.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from distributor.celery import app
from distributor.config import Settings
from distributor.db import dispose_engines
from distributor.errors import ConfirmationDeferred
from distributor.sending import confirmation
from distributor.sending.bounce_mailbox import poll_bounce_mailbox
from distributor.sending.runtime import WorkerRuntime

_runtime: WorkerRuntime | None = None


def runtime() -> WorkerRuntime:
    global _runtime
    if _runtime is None:
        _runtime = WorkerRuntime.from_settings(Settings.from_env())
    return _runtime


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked child must not share its parent's database or SMTP connections."""
    global _runtime
    _runtime = None
    dispose_engines(close=False)


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _runtime is not None:
        _runtime.close()


@app.task(name="distributor.tick")
def tick() -> dict[str, Any]:
    report = runtime().tick(enqueue_plan=plan.delay, enqueue_drain=drain.delay)
    return vars(report)


@app.task(name="distributor.plan")
def plan(send_id: int) -> int:
    return runtime().plan(send_id)


@app.task(name="distributor.drain")
def drain(slot: int) -> dict[str, int] | None:
    stats = runtime().drain_slot(slot, requeue=drain.delay)
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


@app.task(name="distributor.poll_bounces")
def poll_bounces() -> dict[str, int] | None:
    """One poll of the bounce mailbox (scheduled only when ``BOUNCE_IMAP_HOST`` is set)."""
    report = poll_bounce_mailbox(runtime().settings)
    return None if report is None else report.to_json()
