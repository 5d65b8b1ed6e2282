"""A change of who may reply to or quote a Bluesky post, on the account's public page in a real
headless Chromium, on both databases: shown with who made it and when, checked by the page's
script against the signed log like the rest of the post's byline, and accessible."""

from __future__ import annotations

from atproto import Client, models
from playwright.async_api import Browser, expect

from tests.browser.axe import assert_accessible
from tests.browser.test_public_browser import _base, _open, _size, _statuses
from tests.clients.test_atproto_gates import (
    THREADGATE,
    clients,
    clock,
    gate_bodies,
    gw,
    login,
    posts_by_key,
    published_post,
    run,
    threadgate,
)
from tests.conftest import Gateway
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clients", "clock", "gw"]  # the Bluesky gateway's fixtures, for this test too


async def test_a_visitor_sees_a_gates_change_checked_against_the_log(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser,
) -> None:
    """Carol closes replies to a post out on skygates: the public page says so, names carol and
    the time as marks of the entry, which the page's script compares with the signed entry, and
    the post verifies against the signed checkpoint; the page passes axe at both widths.
    (Before: the card said nothing of the change.)"""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    post_uri = await published_post(gw, carol, account.did)
    rkey = post_uri.rsplit("/", 1)[1]
    post_id = (await posts_by_key(gw, "carol", "skygates"))[rkey]["id"]
    await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
        repo=account.did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=[])))
    [(index, entry)] = await gate_bodies(gw)

    page, problems = await _open(browser, _base(gw) + "/@skygates")
    card = page.locator(f"#post-{post_id}")
    change = card.locator(".gates li")
    await expect(change).to_have_count(1)
    await expect(change).to_contain_text("Replies: nobody — changed by carol on")
    await expect(change.locator(f'[data-entry="{index}"][data-field="ts"]')).to_have_attribute("datetime", entry["ts"])
    assert (await _statuses(page))[f"post-{post_id}"] == f"Verified against checkpoint {await _size(gw)}."
    assert problems == []
    await assert_accessible(page)
