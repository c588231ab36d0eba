"""The web app served by uvicorn in a thread of this process, on a free loopback port: for the
demo (its messages' links work while it runs) and the tests. Production runs ``distributor web``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from distributor.devservers.ports import free_port


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """``app`` served on 127.0.0.1:``port`` (default: a free one) while the block runs; yields
    its URL. The app's lifespan runs too (startup before the block, shutdown after)."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"web-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise TimeoutError(f"the web server did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
