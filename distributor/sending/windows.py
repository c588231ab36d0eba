"""Sending windows: a send with windows ("Mon-Fri 08:00-20:00", in the office's zone) goes out
only inside one, waits outside them and resumes. Pure: text in, a value out."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from distributor.errors import DistributorError

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EXAMPLE = '"Mon-Fri 08:00-20:00" (or "Sat,Sun 09:00-12:00", "08:00-20:00" for every day)'
_SHAPE = re.compile(
    r"(?:(?P<days>[A-Za-z]{3}(?:\s*[-,]\s*[A-Za-z]{3})*)\s+)?"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})"
)
_MINUTES_A_DAY = 24 * 60
# What parse_window takes, as a contract states it (one spelling: days as written in DAYS, hours
# in two digits, one space): a window a program sends is one it can be sure of.
_DAY = "(?:" + "|".join(DAYS) + ")"
_DAY_SPEC = f"{_DAY}(?:-{_DAY})?(?:,{_DAY}(?:-{_DAY})?)*"
_CLOCK = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
WINDOW_PATTERN = rf"^(?:{_DAY_SPEC} )?({_CLOCK})-(?!\1$)(?:{_CLOCK}|24:00)$"


@dataclass(frozen=True)
class SendWindow:
    days: frozenset[int]  # 0 = Monday; the day a window starts on (it may run past midnight)
    start: int  # minutes after midnight
    end: int  # minutes after midnight (1440: midnight); at or before ``start``: the next day

    def holds(self, local: datetime) -> bool:
        minute = local.hour * 60 + local.minute
        today, yesterday = local.weekday(), (local.weekday() - 1) % 7
        if self.start < self.end:
            return today in self.days and self.start <= minute < self.end
        return (today in self.days and minute >= self.start) or (
            yesterday in self.days and minute < self.end
        )


def parse_window(text: str) -> SendWindow:
    """``"Mon-Fri 08:00-20:00"`` → its days and minutes; DistributorError with an example."""
    found = _SHAPE.fullmatch(text.strip())
    if found is None:
        raise DistributorError(
            f"window {text!r} is not like {EXAMPLE}", code="window.shape", window=text[:60]
        )
    days = _days(found["days"], text) if found["days"] else frozenset(range(7))
    start, end = _minutes(found["start"], text) % _MINUTES_A_DAY, _minutes(found["end"], text)
    if start == end:
        raise DistributorError(
            f"window {text!r} starts when it ends", code="window.empty", window=text[:60]
        )
    return SendWindow(days, start, end)


def _days(spec: str, text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in re.split(r"\s*,\s*", spec):
        first, _, last = (piece.strip().title() for piece in part.partition("-"))
        if first not in DAYS or (last and last not in DAYS):
            raise DistributorError(
                f"window {text!r}: days are {', '.join(DAYS)} (a range like Mon-Fri)",
                code="window.days",
                window=text[:60],
                days=", ".join(DAYS),
            )
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _minutes(clock: str, text: str) -> int:
    hours, minutes = (int(n) for n in clock.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise DistributorError(
            f"window {text!r}: {clock} is not a time of day",
            code="window.clock",
            window=text[:60],
            clock=clock,
        )
    return hours * 60 + minutes  # 24:00: the end of the day


@dataclass(frozen=True)
class Windows:
    """A send's windows in its zone; no windows: always open."""

    windows: tuple[SendWindow, ...]
    zone: ZoneInfo

    @classmethod
    def of(cls, texts: Sequence[str] | None, zone: str | None) -> Windows | None:
        if not texts:
            return None
        return cls(tuple(parse_window(t) for t in texts), ZoneInfo(zone or "UTC"))

    def open_at(self, now: datetime) -> bool:
        local = now.astimezone(self.zone)
        return any(window.holds(local) for window in self.windows)

    def next_opening(self, now: datetime) -> datetime:
        """The next minute one of the windows is open (``now`` if one is)."""
        local = now.astimezone(self.zone).replace(second=0, microsecond=0)
        if self.open_at(now):
            return now
        starts = [
            (local + timedelta(days=ahead)).replace(hour=w.start // 60, minute=w.start % 60)
            for ahead in range(8)
            for w in self.windows
            if (local + timedelta(days=ahead)).weekday() in w.days
        ]
        return min(start for start in starts if start > local)


def send_is_open(texts: Sequence[str] | None, zone: str | None, now: datetime) -> bool:
    windows = Windows.of(texts, zone)
    return windows is None or windows.open_at(now)
