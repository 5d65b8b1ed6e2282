"""The card of a pending revision (an edit of a published post that its policy holds) in a real
headless Chromium: a co-signer reads the published words beside the proposed ones, approves
from the card, and the page passes axe."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.clients.revisions import pending_revision
from tests.clients.world import World, world
from tests.pages.conftest import pages_on

__all__ = ["world"]  # the fixture, for these tests too


async def test_a_cosigner_approves_an_edit_of_a_published_post_from_its_card(
    browser: Browser, world: World, policy_dir: Path,
) -> None:
    """bob's queue shows alice's pending edit titled as one, with the words Mastodon shows now,
    what it changes and a link to the published post, the block set apart by the pages'
    stylesheet; he approves it there, and it counts."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Doors open at 9", "Doors open at 10")
    async with pages_on(gw) as pages:
        problems: list[str] = []
        page = await signed_in(browser, pages, "bob", problems)
        card = page.get_by_role("article", name="Edit of a published post by alice on @masto")
        await expect(card.locator(".text.published")).to_have_text("Doors open at 9")
        # Set apart as the reasons a post waits are, by the pages' stylesheet.
        await expect(card.locator(".revises")).to_have_css("border-left", "4px solid rgb(29, 78, 216)")
        await expect(card.locator(".revises .text.published")).to_have_css("background-color", "rgb(255, 255, 255)")
        await expect(card.locator("del")).to_have_text("9")
        await expect(card.locator("ins")).to_have_text("10\n\n—alice")
        await expect(card.get_by_role("link", name="the published post")).to_have_attribute(
            "href", f"/posts/{post_id}")
        await assert_accessible(page)
        await card.get_by_role("button", name="Approve version 1").click()
        await expect(page.get_by_role("status").filter(has_text="You approved the post.")).to_be_visible()
        assert problems == []
    assert (await gw.get("alice", pending["id"]))["approvals_needed"] == 1
    assert (status.text, status.edits) == ("Doors open at 9", [])
