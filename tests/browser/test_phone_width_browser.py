"""The public pages at a phone's width (390 px) in a real Chromium: what a reader pasted or typed
(a post's address from an app, a person's name) is shown whole, wrapped, and never makes the
page scroll sideways."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.async_api import Browser, expect

from tests.conftest import Gateway

PHONE = {"width": 390, "height": 844}
"""A phone's screen, in CSS pixels."""

BLUESKY_URL = "https://bsky.app/profile/did:plc:ewvi7nxzyoun6zhxrhs64oiz/post/3kgsamsfkvc2a"
"""A post's address as the Bluesky app shares it: no space or hyphen to break a line at."""


async def test_a_pasted_address_wraps_on_a_phone(gateway: Gateway, browser: Browser) -> None:
    """An auditor on a phone pastes a Bluesky post's address, or searches a long name: the
    results' heading shows it whole within the screen's width, and the page is as wide as the
    screen. (Before: the heading ran 877 px wide, and the whole page scrolled sideways.)"""
    base = str(gateway.client.make_url("")).rstrip("/")
    page = await browser.new_page(viewport=PHONE)
    for kind, query in (("url", BLUESKY_URL), ("person", "w" * 64), ("post", "9" * 24)):
        await page.goto(f"{base}/audit?{urlencode({'kind': kind, 'q': query})}")
        heading = page.get_by_role("heading", name=f"Results for {query}")
        await expect(heading).to_be_visible()
        box = await heading.locator("bdi").bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], (kind, box)
        widths = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths == [PHONE["width"], PHONE["width"]], kind
    await page.close()
