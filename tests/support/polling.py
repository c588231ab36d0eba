"""Tests wait for a condition, never for a fixed time: poll until it holds or a deadline passes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

Value = TypeVar("Value")


def wait_until(
    read: Callable[[], Value], holds: Callable[[Value], bool], *, timeout: float, what: str
) -> Value:
    """Call ``read`` every 0.1 s until ``holds`` is true of what it returns; that value. The
    deadline only bounds a test that would otherwise hang: ``what`` names the awaited condition."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if holds(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not {what} after {timeout}s: last {value!r}")
        time.sleep(0.1)
