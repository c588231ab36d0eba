"""A step's delay as staff write it ("0", "3d", "12h", "30m") and read it back."""

from __future__ import annotations

import re

from distributor.errors import DistributorError

UNITS = {"d": 86400, "h": 3600, "m": 60}
DELAY_MAX = 366 * 86400  # a year: longer is a typo, not an automation
_DELAY = re.compile(r"\s*(\d{1,6})\s*([dhm]?)\s*", re.IGNORECASE)


def parse_delay(text: str) -> int:
    """Seconds after joining: a number of days (``d``), hours (``h``) or minutes (``m``); a bare
    number is days, so ``0`` is the welcome."""
    found = _DELAY.fullmatch(text)
    seconds = int(found[1]) * UNITS[(found[2] or "d").lower()] if found else -1
    if not 0 <= seconds <= DELAY_MAX:
        raise DistributorError(
            f"{text[:40]!r} is not a delay: write days, hours or minutes after joining, "
            "e.g. 0 (the welcome), 3d, 12h or 30m, up to a year",
            code="automation.delay",
            delay=text[:40],
        )
    return seconds


def delay_parts(seconds: int) -> tuple[int, str]:
    """The delay in its largest exact unit: ``(3, "d")``, ``(36, "h")``; ``(0, "")``."""
    for unit, size in UNITS.items():
        if seconds and seconds % size == 0:
            return seconds // size, unit
    return (0, "") if seconds == 0 else (seconds // 60, "m")


def describe_delay(seconds: int) -> str:
    """The shortest exact spelling :func:`parse_delay` reads back: ``0``, ``3d``, ``36h``."""
    count, unit = delay_parts(seconds)
    return f"{count}{unit}"
