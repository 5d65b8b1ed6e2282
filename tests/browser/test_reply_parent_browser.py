"""A reply to a post of the account's own that is not out yet, on its approver's queue in a real
Chromium: the card shows the words it answers, as they go out, beside the link to that post;
an approver approves a reply knowing what it replies to, without leaving the queue."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.pages.conftest import Pages, pages

__all__ = ["pages"]  # the fixture, for these tests too


async def test_a_cosigner_reads_the_words_a_reply_answers(browser: Browser, pages: Pages) -> None:
    """Alice's post (markup in its words) waits for approval; her reply to it too. Bob's card of
    the reply shows what it replies to, linking to it, and that post's words as they go out,
    as text; once alice changes the post, the reply's card shows the new
    words. (Before: "post 1883…" alone, and bob had to leave the queue to read it.)"""
    gw = pages.gateway
    parent = await gw.submit("alice", "cosigned", "Doors open at <b>nine</b> on Monday")
    reply = await gw.submit("alice", "cosigned", "Bring your badge", reply_to_post=parent["id"])
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    shown = page.locator(f'article[data-post="{reply["id"]}"] .goes-out')
    await expect(shown.locator("dt")).to_have_text(["Replies to", "Replied-to words"])
    await expect(shown.get_by_role("link", name=f"post {parent['id']}")).to_have_attribute(
        "href", f"/posts/{parent['id']}")
    await expect(shown.locator("dd").nth(1)).to_have_text("Doors open at <b>nine</b> on Monday")
    assert await shown.locator("b").count() == 0
    await assert_accessible(page)

    status, _ = await gw.call("alice", "PATCH", f"/v1/posts/{parent['id']}", {"text": "Doors open at ten"})
    assert status == 200
    await page.reload()
    await expect(shown.locator("dd").nth(1)).to_have_text("Doors open at ten")
    assert problems == []
