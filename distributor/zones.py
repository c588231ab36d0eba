"""Time zones by their IANA names (``Asia/Shanghai``): one set of names that a schedule, a send's
time or an API request may use, the same set the API's document lists."""

from __future__ import annotations

import functools
from zoneinfo import ZoneInfo, available_timezones

from distributor.errors import DistributorError


@functools.cache
def zone_names() -> frozenset[str]:
    """Read once, when first needed: listing the zone files takes a few milliseconds."""
    return frozenset(available_timezones())


def zone_named(name: str) -> ZoneInfo:
    """The zone ``name`` names, or a :class:`DistributorError` that says what one looks like."""
    if name not in zone_names():
        raise DistributorError(
            f"{name!r} is not a time zone like Asia/Shanghai", code="zone.unknown", name=name
        )
    return ZoneInfo(name)
