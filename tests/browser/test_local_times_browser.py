"""The times a person acts on, in their own time zone, in a real Chromium: a co-signer in New York
reads when a held post asks to go out and until when it waits, and an author when theirs goes
out, in their time beside the UTC the server writes; a reader whose zone is UTC reads UTC alone."""

from __future__ import annotations

import re
from datetime import timedelta

from playwright.async_api import Browser, Page, expect

from gateway.appkeys import LIVE
from tests.browser.axe import assert_accessible
from tests.pages.conftest import Pages, pages, password_of

__all__ = ["pages"]  # the fixture, for these tests too


async def _signed_in(browser: Browser, pages: Pages, name: str, zone: str, path: str) -> Page:
    """A page of ``name``'s in a browser set to the time zone ``zone`` (British English), signed
    in through the form, at ``path``."""
    context = await browser.new_context(timezone_id=zone, locale="en-GB")
    page = await context.new_page()
    await page.goto(pages.base + "/signin?next=" + path)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Password").fill(password_of(name))
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**" + path)
    return page


def _local(day: str, clock: str) -> re.Pattern[str]:
    """A time said in New York's winter zone, however this Chromium's ICU words the rest."""
    return re.compile(rf"\(your time: .*\b{day}\b.*\b{clock}\b.*(GMT-5|EST)\)")


async def test_a_cosigner_in_new_york_reads_when_a_post_goes_out_in_their_own_time(
    browser: Browser, pages: Pages,
) -> None:
    """The gateway's clock is 1 Jan 2026, 12:00 UTC. Carol's post asks to go out on 3 Jan at
    12:00 UTC and waits for approvals until 2 Jan, 12:00 UTC: bob, in New York, reads both in
    his time too (07:00), on his queue and on the post's page, and still after the queue
    refreshed itself when dave approved. Bob's own post in its cooling-off window goes out at
    07:10 his time. In a browser set to UTC, no second time is added. (Before: UTC alone, to be
    worked out by each approver.)"""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.2
    held = await gw.submit("carol", "cosigned", "We launch on Saturday",
                           publish_at=(gw.clock.now() + timedelta(days=2)).isoformat())
    await gw.submit("bob", "delayed", "Slides from today's talk are up")
    page = await _signed_in(browser, pages, "bob", "America/New_York", "/queue")
    card = page.locator(f'article[data-post="{held["id"]}"]')
    await expect(card.locator(".asked-time")).to_contain_text("Asked to go out at 3 Jan 2026, 12:00 UTC")
    await expect(card.locator(".asked-time .local-time")).to_have_text(_local("3", "07:00"))
    await expect(card.locator(".approvals .local-time").first).to_have_text(_local("2", "07:00"))
    await expect(page.locator(".cooling .local-time")).to_have_text(_local("1", "07:10"))
    await assert_accessible(page)

    await page.wait_for_timeout(300)  # the stream is open
    gw.clock.advance(timedelta(minutes=1))  # the approval's time tells the queue it changed
    status, _ = await gw.act("dave", held["id"], "approve")
    assert status == 200
    await expect(card.locator(".approvals")).to_contain_text("1 of 2, by dave", timeout=10_000)
    await expect(card.locator(".asked-time .local-time")).to_have_text(_local("3", "07:00"))

    await page.goto(pages.base + f"/posts/{held['id']}")
    await expect(page.locator(".asked-time .local-time")).to_have_text(_local("3", "07:00"))
    await page.context.close()

    utc = await _signed_in(browser, pages, "bob", "UTC", "/queue")
    await expect(utc.locator(".asked-time")).to_contain_text("Asked to go out at 3 Jan 2026, 12:00 UTC")
    await expect(utc.locator(".local-time")).to_have_count(0)
    await utc.context.close()
