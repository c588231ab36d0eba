"""The application as each ``distributor web`` process serves it: listening at once, built behind.

Importing and building the whole application (FastAPI, SQLAlchemy, the templates, the staff
dashboard and the API) takes a second on a quiet machine and ten or more on a loaded one. A
process that listens only after that is a process its manager and the load balancer cannot tell
from a dead one, and a single process refuses connections meanwhile. So this module imports
almost nothing and builds the application in a thread; the process starts listening when it is
built, or after :data:`GRACE` seconds if that takes longer. Until it is built ``/livez`` and
``/healthz`` answer 200 with ``"status": "starting"`` and ``/readyz`` 503 (see
:mod:`distributor.web.health`); every other request waits for the application and is then served
as usual, so a one-click unsubscribe that arrives while a process starts is answered, a moment
late, rather than refused.

An application that cannot be built at all (a bug, a broken install) ends the process with
uvicorn's start-up failure code, which stops the server instead of restarting it in a loop;
the settings are checked before listening, so a wrong setting is reported the usual way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AsyncExitStack
from typing import Any

from distributor.config import Settings
from distributor.redaction import redact_every_log_record

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("uvicorn.error")
STARTUP_FAILURE = 3  # uvicorn.config.STARTUP_FAILURE, without importing uvicorn's config here
GRACE = 10.0  # seconds the process waits for its application before it listens without it
# Health checks answered while the application is built: path → status code.
WARMING_ANSWERS = {"/livez": 200, "/healthz": 200, "/readyz": 503}


class WarmingApp:
    """An ASGI application that serves ``build()``'s application once it exists, and answers the
    health checks while it is being built."""

    def __init__(self, build: Callable[[], Any], *, grace: float = GRACE) -> None:
        self._build = build
        self._grace = grace
        self._app: Any = None
        self._ready = asyncio.Event()
        self._lifespans = AsyncExitStack()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if self._app is None:
            if scope["type"] == "http" and scope["path"] in WARMING_ANSWERS:
                await _answer_warming(WARMING_ANSWERS[scope["path"]], send)
                return
            await self._ready.wait()
        await self._app(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Start the build and report the start-up complete once it is done, or after
        :data:`GRACE`; at shutdown, wait for the build and run the application's own shutdown."""
        building: asyncio.Future[Any] | None = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                building = asyncio.ensure_future(self._warm_up())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(building), self._grace)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if building is not None:
                    await building
                await self._lifespans.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _warm_up(self) -> None:
        loop = asyncio.get_running_loop()
        built: asyncio.Future[Any] = loop.create_future()

        def build() -> None:
            try:
                app = self._build()
            except BaseException as error:  # reported below, on the event loop
                loop.call_soon_threadsafe(built.set_exception, error)
            else:
                loop.call_soon_threadsafe(built.set_result, app)

        threading.Thread(target=build, name="build-app", daemon=True).start()
        try:
            app = await built
            # The application's own start-up (its lifespan), as uvicorn would have run it.
            await self._lifespans.enter_async_context(app.router.lifespan_context(app))
        except Exception:
            log.exception("the web application could not be built; this process stops")
            os._exit(STARTUP_FAILURE)
        self._app = app
        self._ready.set()


async def _answer_warming(status: int, send: Send) -> None:
    body = {"status": "starting", "database": "not checked yet", "broker": "not checked yet"}
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
    if status != 200:
        headers.append((b"retry-after", b"1"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})


def _build_from_environment() -> Any:
    from distributor.web.app import app_from_environment

    return app_from_environment()


def app_for_server() -> WarmingApp:
    """The factory ``distributor web`` gives uvicorn: settings checked now, the rest behind."""
    Settings.from_env().require_secret_key()
    redact_every_log_record()  # a WeChat callback's signature, a token in a URL: masked
    return WarmingApp(_build_from_environment)
