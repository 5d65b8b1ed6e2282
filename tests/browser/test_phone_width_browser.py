"""The pages at a phone's width (390 px) in a real Chromium: what a reader pasted or typed (a
post's address from an app, a person's name) is shown whole, wrapped, and never makes the page
scroll sideways; a post's log entries fit the screen."""

from __future__ import annotations

from urllib.parse import urlencode

from playwright.async_api import Browser, expect

from tests.browser.test_queue_browser import signed_in
from tests.conftest import Gateway
from tests.pages.conftest import Pages, pages

__all__ = ["pages"]  # the fixture, for these tests too

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


async def test_a_posts_log_fits_a_phone(browser: Browser, pages: Pages) -> None:
    """Bob reads on his phone the log of a post alice edited and he approved: each entry, when,
    who, what and its proof fit within the screen, read without scrolling the table sideways.
    (Before: the table ran 14 px wider than its region, "checkpoint" cut off at the edge.)"""
    gw = pages.gateway
    post = await gw.submit("alice", "cosigned", "Doors open at nine on Monday")
    status, _ = await gw.call("alice", "PATCH", f"/v1/posts/{post['id']}", {"text": "Doors open at ten"})
    assert status == 200
    status, _ = await gw.act("bob", post["id"], "approve")
    assert status == 200
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    await page.set_viewport_size(PHONE)
    await page.goto(f"{pages.base}/posts/{post['id']}")
    region = page.get_by_role("region", name="Log entries about this post")
    await expect(region.get_by_role("row")).to_have_count(4)
    widths = await region.evaluate("r => [r.scrollWidth, r.clientWidth, document.documentElement.scrollWidth]")
    assert widths[0] <= widths[1] and widths[2] == PHONE["width"], widths
    assert problems == []
