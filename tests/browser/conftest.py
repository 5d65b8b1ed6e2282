"""Fixtures for the browser tests: Debian's Chromium driven by Playwright, and the same gateway
and Mastodon stand-in as the client tests."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
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


class SharedChromium:
    """Chromium launched once for the browser tests by Playwright (with Playwright's own flags and
    ours), on a thread with an event loop of its own: each test has its own loop, and a browser
    belongs to the loop that launched it. Tests connect to it over the DevTools protocol, and
    each page or context a test opens is a browser context of its own, gone when the test
    disconnects (as pytest-playwright shares one browser between tests). Launching it for every
    test cost most of a second."""

    def __init__(self, chromium: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self._chromium = chromium
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), name="chromium", daemon=True)
        self._thread.start()
        assert self._ready.wait(60), "Chromium did not start within 60 s"
        if self._error is not None:
            raise self._error

    @property
    def endpoint(self) -> str:
        """Where a test connects to it."""
        return f"http://127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        try:
            async with async_playwright() as playwright:
                launched = await playwright.chromium.launch(
                    executable_path=str(self._chromium),
                    args=[*CHROMIUM_ARGS, f"--remote-debugging-port={self.port}"])
                self._ready.set()
                while not self._stop.is_set():  # noqa: ASYNC110 - the session's end is a thread's event
                    await asyncio.sleep(0.1)
                await launched.close()
        except BaseException as exc:  # the session's fixture raises it
            self._error = exc
            self._ready.set()

    def close(self) -> None:
        """Close it (at the session's end)."""
        self._stop.set()
        self._thread.join(30)


@pytest.fixture(scope="package")
def shared_chromium() -> Iterator[SharedChromium]:
    """The browser tests' Chromium (started by the first, closed after the last)."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run tests/browser/install.sh"
    shared = SharedChromium(CHROMIUM)
    try:
        yield shared
    finally:
        shared.close()


@pytest.fixture
async def browser(chromium: Path, shared_chromium: SharedChromium) -> AsyncIterator[Browser]:
    """Chromium, headless, driven by Playwright: the session's, with nothing of earlier tests'
    (every page a test opens is in a fresh context, closed when the test ends)."""
    async with async_playwright() as playwright:
        connected = await playwright.chromium.connect_over_cdp(shared_chromium.endpoint)
        try:
            assert connected.contexts[0].pages == [] or all(
                page.url == "about:blank" for page in connected.contexts[0].pages), "a page left open"
            yield connected
        finally:
            await connected.close()
