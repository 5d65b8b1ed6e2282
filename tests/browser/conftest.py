"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and the same gateway
and Mastodon stand-in as the client tests."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from tests.clients.world import world

__all__ = ["browser", "chromium", "world"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = os.environ.get("BYLINE_SCREENSHOTS") == "1"
"""Whether to write the README's screenshots (docs/screenshots): read when the tests are
collected, because the test fixtures clear BYLINE_ variables before each test."""


@pytest.fixture
def chromium() -> Path:
    """Debian's Chromium; a missing one fails the test rather than skipping it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run tests/browser/install.sh"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    """Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
