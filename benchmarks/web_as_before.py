"""`distributor web` as it ran before it had its own process manager: the baseline of
benchmarks/web_start.py. Usage: ``python web_as_before.py PORT WORKERS``.

Every CLI command is imported at start, as ``distributor.cli`` did then, and uvicorn's own
manager runs the workers. Each worker process re-imports this file as its ``__main__``
(multiprocessing's spawn), as each re-imported the CLI then: that import came before the worker
could answer uvicorn's first ping, which had to come within 5 s.
"""

from __future__ import annotations

import importlib
import sys

import uvicorn

from distributor.cli import LAZY_COMMANDS

for lazy in LAZY_COMMANDS.values():
    importlib.import_module(f"distributor.cli.{lazy.module}")

if __name__ == "__main__":
    uvicorn.run(
        "distributor.web.app:app_from_environment",
        factory=True,
        port=int(sys.argv[1]),
        workers=int(sys.argv[2]),
        proxy_headers=False,
        server_header=False,
        access_log=False,
    )
