"""Debian's Chromium driven by Playwright, for tests that need a real browser engine."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from distributor.cli.render_commands import CHROMIUM, CHROMIUM_ARGS


def launched_chromium() -> Iterator[Browser]:
    """A headless Chromium for a fixture to yield from; a missing one fails, never skips."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium fonts-noto-cjk")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
