"""Celery tasks: thin shells around :class:`distributor.sending.engine.Engine`.

Every task is safe to run twice or not at all: the database decides what is done.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from distributor.celery import app
from distributor.config import Settings
from distributor.db import dispose_engines
from distributor.sending.engine import Engine

_engine: Engine | None = None


def engine() -> Engine:
    global _engine
    if _engine is None:
        _engine = Engine.from_settings(Settings.from_env())
    return _engine


@worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked child must not share its parent's database or SMTP connections."""
    global _engine
    _engine = None
    dispose_engines(close=False)


@worker_process_shutdown.connect
def _close(**_: Any) -> None:
    if _engine is not None:
        _engine.close()


@app.task(name="distributor.tick")
def tick() -> dict[str, Any]:
    report = engine().tick(enqueue_plan=plan.delay, enqueue_drain=drain.delay)
    return vars(report)


@app.task(name="distributor.plan")
def plan(send_id: int) -> int:
    return engine().plan(send_id)


@app.task(name="distributor.drain")
def drain(slot: int) -> dict[str, int] | None:
    stats = engine().drain_slot(slot, requeue=drain.delay)
    return None if stats is None else stats.counts
