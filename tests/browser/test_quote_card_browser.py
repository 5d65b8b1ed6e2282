"""A Bluesky quote on its approver's queue, in a real headless Chromium, on both databases: the
card shows the words it quotes, whose they are and where to read them, kept when the quote was
written, and the page passes axe."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from atproto import Client
from playwright.async_api import Browser, expect

from gateway.clock import ManualClock
from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.clients.test_atproto_quoted_records import _quote_of_a_held_post, _quoting
from tests.clients.test_atproto_reply_parents import on_pds, skyreply_policy
from tests.clients.test_atproto_threads import clients, clock, login, posts_by_key, run
from tests.conftest import started_gateway
from tests.pages.conftest import pages_on
from tests.platforms.bluesky.fixture import BlueskyPds, app_tid

__all__ = ["clients", "clock"]  # fixtures, used by name


async def test_a_cosigner_reads_what_a_quote_quotes_before_approving_it(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client], browser: Browser,
) -> None:
    """Alice quotes bob.test's post (its words carrying markup) and her own post not yet out.
    Bob's queue shows, on the first card, the quoted words as text, "@bob.test's post" linking
    to it in the Bluesky app; on the second, her post's words at the version the quote is bound
    to, linking to its page. The page passes axe, runs no markup from the quoted words, and bob
    approves from it. (Before: each card showed only an at:// address.)"""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    words = secrets.token_hex(4)
    hostile = f'<img src=x onerror="document.title=1"> Tea is best iced ({words})'
    there = await (await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))).write(app_tid(), hostile)
    rkey = there["uri"].rsplit("/", 1)[1]
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        quote = await run(client.send_post, f"Never ({words})", embed=_quoting(there["uri"], there["cid"]))
        theirs = (await posts_by_key(gw, "alice", "skyreply"))[quote.uri.rsplit("/", 1)[1]]
        _, _, own, quoting = await _quote_of_a_held_post(gw, clients, account, words)

        problems: list[str] = []
        async with pages_on(gw, ["bob"]) as pages:
            page = await signed_in(browser, pages, "bob", problems)
            first = page.locator(f'article[data-post="{theirs["id"]}"] .goes-out')
            await expect(first.locator("dt")).to_have_text(["Language", "Quotes", "Quoted words"])
            await expect(first.locator("dd").nth(2)).to_have_text(hostile)
            link = first.get_by_role("link", name=f"@bob.test's post on the platform: https://bsky.app/profile/bob.test/post/{rkey}")
            await expect(link).to_have_attribute("href", f"https://bsky.app/profile/bob.test/post/{rkey}")
            second = page.locator(f'article[data-post="{quoting["id"]}"] .goes-out')
            await expect(second.locator("dd").nth(2)).to_have_text(f"Our launch is on Monday ({words})")
            await expect(second.get_by_role("link", name=f"post {own['id']} of this account, version 1, not out yet")
                         ).to_have_attribute("href", f"/posts/{own['id']}")
            assert await page.locator(".goes-out img").count() == 0
            assert await page.title() != "1"
            await assert_accessible(page)
            await page.locator(f'article[data-post="{theirs["id"]}"]').get_by_role(
                "button", name="Approve version 1").click()
            await expect(page.get_by_role("status").filter(has_text="You approved the post.")).to_be_visible()
        assert problems == []
        assert (await gw.get("alice", theirs["id"]))["state"] == "scheduled"
