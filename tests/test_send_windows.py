"""Sending windows: parsed as staff write them, open and closed at the right minutes in the office's
zone (overnight windows included), the next opening found; refused with an example when wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from distributor.errors import DistributorError
from distributor.sending.windows import SendWindow, Windows, parse_window, send_is_open

OFFICE = "Asia/Shanghai"


def at(day: int, hour: int, minute: int) -> datetime:
    """A moment of December 2026 in Shanghai, as the engine holds it (UTC): the 7th is a
    Monday."""
    return datetime(2026, 12, day, hour, minute, tzinfo=ZoneInfo(OFFICE)).astimezone(UTC)


def test_windows_are_read_as_staff_write_them() -> None:
    assert parse_window("Mon-Fri 08:00-20:00") == SendWindow(frozenset(range(5)), 480, 1200)
    assert parse_window("sat, sun 9:30-12:00") == SendWindow(frozenset({5, 6}), 570, 720)
    assert parse_window("08:00-20:00").days == frozenset(range(7))
    assert parse_window("Fri-Mon 22:00-06:00") == SendWindow(frozenset({4, 5, 6, 0}), 1320, 360)
    assert parse_window("00:00-24:00") == SendWindow(frozenset(range(7)), 0, 1440)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weekdays 08:00-20:00", "is not like"),
        ("Mon-Fry 08:00-20:00", "days are Mon, Tue"),
        ("Mon 08:00-25:00", "25:00 is not a time of day"),
        ("Mon 08:00-08:00", "starts when it ends"),
        ("8-20", "is not like \"Mon-Fri 08:00-20:00\""),
    ],
)
def test_a_window_that_cannot_be_read_is_refused_with_an_example(text: str, message: str) -> None:
    with pytest.raises(DistributorError, match=message):
        parse_window(text)


def test_a_send_is_open_only_inside_its_windows_in_the_office_zone() -> None:
    office = Windows.of(["Mon-Fri 08:00-20:00"], OFFICE)
    assert office is not None
    assert not office.open_at(at(7, 7, 59))  # Monday 07:59 in Shanghai
    assert office.open_at(at(7, 8, 0))
    assert office.open_at(at(7, 19, 59))
    assert not office.open_at(at(7, 20, 0))
    assert not office.open_at(at(12, 10, 0))  # Saturday
    assert office.next_opening(at(7, 20, 0)) == at(8, 8, 0)
    assert office.next_opening(at(11, 21, 30)) == at(14, 8, 0)  # Friday night → Monday
    assert office.next_opening(at(7, 9, 0)) == at(7, 9, 0)  # open: now


def test_an_overnight_window_holds_after_midnight_of_its_day() -> None:
    night = Windows.of(["Fri 22:00-06:00"], OFFICE)
    assert night is not None
    assert night.open_at(at(11, 23, 0))  # Friday 23:00
    assert night.open_at(at(12, 5, 59))  # Saturday 05:59, still Friday's window
    assert not night.open_at(at(12, 6, 0))
    assert not night.open_at(at(10, 23, 0))  # Thursday
    assert night.next_opening(at(12, 6, 0)) == at(18, 22, 0)


def test_several_windows_and_none() -> None:
    both = ["Mon-Fri 08:00-12:00", "Mon-Fri 14:00-18:00"]
    assert send_is_open(both, OFFICE, at(7, 11, 0))
    assert not send_is_open(both, OFFICE, at(7, 13, 0))
    assert send_is_open(both, OFFICE, at(7, 14, 0))
    assert send_is_open(None, None, at(7, 3, 0))
