"""A reply on its approver's queue in a real Chromium: to a post of the account's own that is not
out yet, the card shows the words it answers, as they go out, beside the link to that post; to
a status on the platform, the words the platform gave as the reply was written, as text. An
approver approves a reply knowing what it replies to, without leaving the queue."""

from __future__ import annotations

import json
from pathlib import Path

from playwright.async_api import Browser, expect

from tests.audit.logtools import Attacker
from tests.browser.axe import assert_accessible
from tests.browser.test_queue_browser import signed_in
from tests.clients.test_media_update import _cosigned_on_mastodon
from tests.clients.world import World, world
from tests.pages.conftest import Pages, pages, pages_on

__all__ = ["pages", "world"]  # the fixtures, for these tests too


async def test_a_cosigner_reads_the_words_a_reply_answers(browser: Browser, pages: Pages) -> None:
    """Alice's post (markup in its words) waits for approval; her reply to it too. Bob's card of
    the reply shows what it replies to, linking to it, and that post's words as they go out,
    as text; once alice changes the post, the reply's card still shows the words it answers
    (the publisher holds it to them), says plainly that the post changed and that the reply
    will not go out unless alice edits it, and shows the post's words now, linking to it.
    (Before: "post 1883…" alone, and bob had to leave the queue to read it; then, the new
    words alone, as if the reply answered them.)"""
    gw = pages.gateway
    parent = await gw.submit("alice", "cosigned", "Doors open at <b>nine</b> on Monday")
    reply = await gw.submit("alice", "cosigned", "Bring your badge", reply_to_post=parent["id"])
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    shown = page.locator(f'article[data-post="{reply["id"]}"] .goes-out')
    await expect(shown.locator("dt")).to_have_text(["Replies to", "Words it answers"])
    await expect(shown.get_by_role("link", name=f"post {parent['id']}")).to_have_attribute(
        "href", f"/posts/{parent['id']}")
    await expect(shown.locator("dd").nth(1)).to_have_text("Doors open at <b>nine</b> on Monday")
    assert await shown.locator("b").count() == 0
    await assert_accessible(page)

    status, _ = await gw.call("alice", "PATCH", f"/v1/posts/{parent['id']}", {"text": "Doors open at ten"})
    assert status == 200
    await page.reload()
    await expect(shown.locator("dt")).to_have_text(["Replies to", "Words it answers", "Changed since", "Its words now"])
    await expect(shown.locator("dd").nth(1)).to_have_text("Doors open at <b>nine</b> on Monday")
    await expect(shown.locator("dd").nth(2)).to_have_text(
        "The post it answers has changed since (now version 2): this reply will not go out unless its author edits it.")
    await expect(shown.get_by_role("link", name="Doors open at ten")).to_have_attribute(
        "href", f"/posts/{parent['id']}")
    assert await shown.locator("b").count() == 0
    await assert_accessible(page)
    assert problems == []


async def test_a_cosigner_reads_the_words_of_a_status_on_the_platform_a_reply_answers(
    browser: Browser, world: World, policy_dir: Path,
) -> None:
    """Alice's app (Mastodon.py) answers carl's status on the instance, whose words carry
    markup: bob's card, and the post's page he approves from, show whose status it is, linking
    to it, and its words as text, markup and all, line breaks kept; nothing of the markup runs.
    (Before: whose status and its address only.)"""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    said = '<img src=x onerror="document.title=1">Doors open at <b>nine</b>\nBring a badge'
    theirs = world.upstream.seed_status(carl, said, created_at=world.gateway.clock.now())
    api = await world.client("alice", "mastoco")
    reply = await world.run(api.status_post, "See you there", in_reply_to_id=theirs.id)
    url = f"https://{world.upstream.host}/@carl/{theirs.id}"
    problems: list[str] = []
    async with pages_on(world.gateway) as pages:
        page = await signed_in(browser, pages, "bob", problems)
        for where in ("/queue", f"/posts/{reply.id}"):
            await page.goto(pages.base + where)
            shown = page.locator(f'article[data-post="{reply.id}"] .goes-out')
            await expect(shown.locator("dt")).to_have_text(["Replies to", "Words it answers"])
            await expect(shown.get_by_role("link", name=f"@carl's status on the platform: {url}")).to_have_attribute(
                "href", url)
            answered = shown.locator("dd").nth(1)
            await expect(answered).to_have_text(said)
            assert await answered.inner_text() == said
            assert await shown.locator("img, b").count() == 0
            assert await page.title() != "1"
            await assert_accessible(page)
    assert problems == []


async def test_a_cosigner_reads_a_warning_a_boost_and_words_not_kept_on_the_cards_of_replies(
    browser: Browser, world: World, policy_dir: Path, db_url: str,
) -> None:
    """Alice's app (Mastodon.py) answers carl's status behind a content warning, dave's boost of
    it, and a status of carl's whose reply is then stored as it was before words were kept.
    Bob's cards show the warning before the words, the boost as dave's boost of carl's status
    with carl's words, and for the old reply a note saying the words were not kept, linking to
    where to read them. (Before: the words without their warning, the boost's own words,
    none, and nothing at all for the old reply.)"""
    await _cosigned_on_mastodon(world, policy_dir)
    carl, dave = (world.upstream.add_account(name, f"{name}-token") for name in ("carl", "dave"))
    now = world.gateway.clock.now()
    warned = world.upstream.seed_status(carl, "The butler did it", created_at=now, spoiler_text="Finale")
    boost = world.upstream.seed_reblog(dave, warned, created_at=now)
    older = world.upstream.seed_status(carl, "Something", created_at=now)
    api = await world.client("alice", "mastoco")
    to_boost = await world.run(api.status_post, "Thanks for sharing", in_reply_to_id=boost.id)
    old = await world.run(api.status_post, "Well said", in_reply_to_id=older.id)
    attacker = Attacker(db_url)
    [(stored,)] = await attacker.fetch("SELECT options FROM posts WHERE id = ?", old.id)
    then = {k: v for k, v in json.loads(stored).items() if k != "reply_to_text"}
    await attacker.run(("UPDATE posts SET options = ? WHERE id = ?", (json.dumps(then), old.id)))
    host = world.upstream.host
    problems: list[str] = []
    async with pages_on(world.gateway) as pages:
        page = await signed_in(browser, pages, "bob", problems)
        shown = page.locator(f'article[data-post="{to_boost.id}"] .goes-out')
        await expect(shown.locator("dt")).to_have_text(["Replies to", "Words it answers"])
        url = f"https://{host}/@carl/{warned.id}"
        await expect(shown.get_by_role("link", name=f"@dave's boost of @carl's status on the platform: {url}")
                     ).to_have_attribute("href", url)
        assert await shown.locator("dd").nth(1).inner_text() == "Content warning: Finale\n\nThe butler did it"
        shown = page.locator(f'article[data-post="{old.id}"] .goes-out')
        await expect(shown.locator("dt")).to_have_text(["Replies to", "Words it answers"])
        url = f"https://{host}/@carl/{older.id}"
        note = (f"Words not kept: this reply was written before Byline kept them. "
                f"Read them on the platform before you approve: {url}.")
        await expect(shown.locator("dd").nth(1).get_by_role("link", name=note)).to_have_attribute("href", url)
        await assert_accessible(page)
    assert problems == []
