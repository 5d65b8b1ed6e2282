"""An approver whose approval an edit set aside reads, in a real Chromium, all that changed since
the version they approved, not the last edit alone: the words they must approve again are the
ones they never read."""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.pages.conftest import Pages, pages

__all__ = ["pages"]  # the fixture, for these tests too


async def test_an_approver_reads_what_changed_since_the_version_they_approved(browser: Browser, pages: Pages) -> None:
    """Bob approves carol's version 1 ("Monday"); she makes it "Tuesday" (version 2), then adds
    a full stop (version 3). Bob's card on his queue, and on the post's page, shows what changed
    since version 1, the one he approved: Monday struck out, Tuesday added. Carol, who approved
    nothing, reads the last step alone, as before. (Before: bob read "since version 2", the full
    stop, and approved a day he never read.)"""
    gw = pages.gateway
    post = await gw.submit("alice", "cosigned", "We launch on Monday at noon")
    status, _ = await gw.act("bob", post["id"], "approve")
    assert status == 200
    for text in ("We launch on Tuesday at noon", "We launch on Tuesday at noon."):
        status, _ = await gw.call("alice", "PATCH", f"/v1/posts/{post['id']}", {"text": text})
        assert status == 200
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    for path in ("/queue", f"/posts/{post['id']}"):
        await page.goto(pages.base + path)
        changes = page.locator(f'article[data-post="{post["id"]}"] .changes')
        await expect(changes.locator(".as-shown").first).to_have_text(
            "What changed since version 1, the one you approved (removed, added):")
        await expect(changes.locator("del")).to_have_text(["Monday"])
        await expect(changes.locator("ins")).to_have_text(["Tuesday", "."])
        await expect(page.locator(f'article[data-post="{post["id"]}"] .approvals')).to_contain_text(
            "Approvals of this version: 0 of 2.")
    await assert_accessible(page)
    assert problems == []

    carol = await signed_in(browser, pages, "carol", problems)
    await carol.goto(pages.base + f"/posts/{post['id']}")
    changes = carol.locator(f'article[data-post="{post["id"]}"] .changes')
    await expect(changes.locator(".as-shown").first).to_have_text("What changed since version 2 (removed, added):")
    await expect(changes.locator("del")).to_have_count(0)
    await expect(changes.locator("ins")).to_have_text(["."])
    assert problems == []
