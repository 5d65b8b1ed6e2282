"""The page a refused decision shows (the post moved on while its approver read it), on a phone in
a real Chromium: the post as it is now is laid out as on the queue, its picture within the
screen, what goes out with it in the same two columns, its reasons set apart."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.clients.test_media_update import _cosigned_on_mastodon
from tests.clients.world import World
from tests.images import png_of
from tests.pages.conftest import pages_on

PHONE = {"width": 390, "height": 844}
"""A phone's screen, in CSS pixels."""


async def _laid_out(page: Page, post_id: str) -> dict[str, object]:
    """How the card of ``post_id`` is laid out: its picture's right edge, whether the first thing
    that goes out with it sits beside its label, and how heavy the "As it will appear" label is."""
    card = page.locator(f'article[data-post="{post_id}"]')
    picture = await card.locator(".goes-out img").bounding_box()
    label = await card.locator(".goes-out dt").first.bounding_box()
    value = await card.locator(".goes-out dd").first.bounding_box()
    assert picture is not None and label is not None and value is not None
    weight = await card.locator(".as-shown").first.evaluate("e => getComputedStyle(e).fontWeight")
    return {"picture_within": picture["x"] + picture["width"] <= PHONE["width"],
            "beside": abs(label["y"] - value["y"]) < 2, "weight": weight,
            "page_width": await page.evaluate("() => document.documentElement.scrollWidth")}


async def test_a_refused_approval_shows_the_post_as_the_queue_does_on_a_phone(
    world: World, policy_dir: Path, browser: Browser,
) -> None:
    """Alice's post goes out with a wide picture and a content warning; bob reads it on his
    phone, and she changes its warning before he approves. His approval is refused (409), and
    the page shows the post as it is now laid out as his queue showed it: the picture within the
    screen, each thing that goes out beside its label, the labels in bold. (Before: the page
    had none of the queue's styles, and the picture ran 1200 px wide, off the screen.)"""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, png_of(1200, 400), mime_type="image/png", description="Our new office")
    status = await world.run(api.status_post, "Our new office", media_ids=[media], spoiler_text="Photos")
    problems: list[str] = []
    async with pages_on(world.gateway, ["bob"]) as pages:
        page = await signed_in(browser, pages, "bob", problems)
        await page.set_viewport_size(PHONE)
        expected = {"picture_within": True, "beside": True, "weight": "600", "page_width": PHONE["width"]}
        assert await _laid_out(page, str(status.id)) == expected
        await world.run(api.status_update, status.id, "Our new office", media_ids=[media.id], spoiler_text="Pics")
        await page.locator(f'article[data-post="{status.id}"]').get_by_role("button", name="Approve version 1").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("This did not go through")
        await expect(page.get_by_role("alert")).to_contain_text("you saw version 1")
        assert await _laid_out(page, str(status.id)) == expected
        await assert_accessible(page)
    assert problems == [f"409 {world.base}/posts/{status.id}/approve"]
