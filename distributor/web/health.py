"""``/livez``, ``/healthz`` and ``/metrics``: whether this web process is alive, whether it can
do its work, and how sending goes.

``/livez`` is liveness: 200 as soon as the process listens. ``/readyz`` is readiness: 200 when
the application is built and the database and the broker both answer, else 503 with which one
did not. ``/healthz``, for the compose healthcheck and load balancers, is readiness too, but for
a process still building its application (:mod:`distributor.web.warmup` answers then), which
answers 200 with ``"status": "starting"``: it holds each request until it can serve it, so it is
healthy, only slow for a few seconds.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel
from sqlalchemy import text

from distributor.campaigns.outcome_figures import outcome_figures
from distributor.config import Settings
from distributor.db import get_engine, utcnow
from distributor.sending.monitoring import sending_snapshot
from distributor.sending.route_status import routing_now
from distributor.web.metrics import MetricsAccess
from distributor.web.pages import WebDep
from distributor.web.prometheus import CONTENT_TYPE, exposition

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
CHECK_TIMEOUT = 3.0  # seconds a part may take to answer


class Health(BaseModel):
    status: str  # "ok" or "unavailable" ("starting" from distributor.web.warmup)
    database: str  # "ok" or why not
    broker: str


def database_answers(settings: Settings) -> str:
    try:
        with get_engine(settings.database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        log.warning("health: database: %s", error)
        return f"unreachable ({type(error).__name__})"
    return "ok"


def broker_answers(settings: Settings) -> str:
    url = settings.broker_url
    try:
        if url.startswith(("redis://", "rediss://")):
            import redis

            client = redis.Redis.from_url(
                url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT
            )
            try:
                client.ping()
            finally:
                client.close()
        else:
            from kombu.connection import Connection

            with Connection(url, connect_timeout=CHECK_TIMEOUT) as connection:  # type: ignore[no-untyped-call]
                connection.ensure_connection(max_retries=1)
    except Exception as error:
        log.warning("health: broker: %s", error)
        return f"unreachable ({type(error).__name__})"
    return "ok"


def _health(settings: Settings) -> Health:
    database, broker = database_answers(settings), broker_answers(settings)
    ok = database == broker == "ok"
    return Health(status="ok" if ok else "unavailable", database=database, broker=broker)


@router.get("/livez")
async def livez() -> JSONResponse:
    return JSONResponse({"status": "ok"}, headers={"Cache-Control": "no-store"})


@router.get("/healthz")
@router.get("/readyz")
async def healthz(web: WebDep) -> JSONResponse:
    health = await run_in_threadpool(_health, web.settings)
    return JSONResponse(
        health.model_dump(),
        status_code=200 if health.status == "ok" else 503,
        headers={"Cache-Control": "no-store"},
    )


@router.get("/metrics")
def metrics(request: Request, web: WebDep) -> PlainTextResponse:
    access: MetricsAccess = request.app.state.metrics_access
    if not access.allows(request):
        return PlainTextResponse("metrics are not shown to this address\n", status_code=403)
    with web.transaction() as session:
        now = utcnow()
        snapshot, figures = sending_snapshot(session, now), outcome_figures(session, now)
    routing = routing_now(web.settings)
    return PlainTextResponse(exposition(snapshot, figures, routing), media_type=CONTENT_TYPE)
