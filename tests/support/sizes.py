"""How big the real-process tests run. By default small enough that the whole suite keeps to its
ten minutes on two cores; ``FULL_SIZE=1`` runs each at the size its issue's acceptance named (the
five thousand of the crash test, Redis down for a full minute, …), as README's "Acceptance sizes"
says. The property each test checks is the same at both sizes; only how much traffic carries it
changes."""

from __future__ import annotations

import os

FULL = os.environ.get("FULL_SIZE") == "1"


def sized(suite: int, acceptance: int) -> int:
    """``acceptance`` under ``FULL_SIZE=1``, else ``suite``."""
    return acceptance if FULL else suite
