"""A module a supervisor preloads, then runs as its children's program (``python -m``): a child
says which process imported the module, then exits with the code it is given, or sleeps."""

from __future__ import annotations

import os
import sys
import time

IMPORTED_BY = os.getpid()

if __name__ == "__main__":
    from tests.support import preloaded  # the imported module, not this __main__ copy

    print(f"imported by {preloaded.IMPORTED_BY}, running as {os.getpid()}", flush=True)
    if sys.argv[1] == "sleep":
        time.sleep(60)
    sys.exit(int(sys.argv[1]))
