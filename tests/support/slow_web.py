"""A web server whose application takes ``SLOW_APP_SECONDS`` to load, served in two processes by
:class:`~distributor.web.server.PatientSupervisor`: a child as slow to start as one on a loaded
machine, on demand. Run as ``python -m tests.support.slow_web PORT START_TIMEOUT HANG_TIMEOUT``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from uvicorn.config import Config

from distributor.web.server import PatientSupervisor


async def _hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": f"served by {os.getpid()}".encode()})


def slow_app() -> Any:
    """The factory each child loads: it takes as long as a slow machine's import would."""
    time.sleep(float(os.environ["SLOW_APP_SECONDS"]))
    return _hello


def main() -> None:
    port, start_timeout, hang_timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    config = Config(
        "tests.support.slow_web:slow_app",
        factory=True,
        workers=2,
        host="127.0.0.1",
        port=port,
        lifespan="off",
        access_log=False,
    )
    PatientSupervisor(
        config, [config.bind_socket()], start_timeout=start_timeout, hang_timeout=hang_timeout
    ).run()


if __name__ == "__main__":
    main()
