"""A change of who may reply to or quote a Bluesky post, on the account's public page in a real
headless Chromium, on both databases: shown with who made it and when, checked by the page's
script against the signed log like the rest of the post's byline, and accessible."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from atproto import Client, models
from playwright.async_api import Browser, Page, Route, expect

from gateway.audit.gates import POSTGATE, gate_words
from gateway.clock import ManualClock
from gateway.services.transparency import GATES_SHOWN
from tests.audit.logtools import verified_by_cli
from tests.browser.axe import assert_accessible
from tests.browser.test_public_browser import CHECKED, _base, _open, _size, _statuses
from tests.browser.test_queue_browser import signed_in
from tests.clients.test_atproto_gates import (
    GATED_WORDS,
    HOSTILE_LIST,
    THREADGATE,
    clients,
    clock,
    gate_bodies,
    gated_post_out,
    gated_thread,
    gw,
    log_bodies,
    login,
    posts_by_key,
    published_post,
    replies_closed,
    run,
    sdk_writes,
    threadgate,
)
from tests.conftest import Gateway
from tests.pages.conftest import pages_on
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clients", "clock", "gw"]  # the Bluesky gateway's fixtures, for this test too


async def test_a_visitor_sees_a_gates_change_checked_against_the_log(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser,
) -> None:
    """Carol closes replies to a post out on skygates: the public page says so, names carol and
    the time as marks of the entry, which the page's script compares with the signed entry, and
    the post verifies against the signed checkpoint; the page passes axe at both widths.
    (Before: the card said nothing of the change.)"""
    post_id, index, entry = await replies_closed(bluesky_pds, gw, clients)

    page, problems = await _open(browser, _base(gw) + "/@skygates")
    card = page.locator(f"#post-{post_id}")
    change = card.locator(".gates li")
    await expect(change).to_have_count(1)
    await expect(change).to_contain_text("Replies: nobody — changed by carol on")
    await expect(change.locator(f'[data-entry="{index}"][data-field="ts"]')).to_have_attribute("datetime", entry["ts"])
    assert (await _statuses(page))[f"post-{post_id}"] == f"Verified against checkpoint {await _size(gw)}."
    assert problems == []
    await assert_accessible(page)


async def test_a_long_run_of_gates_changes_is_collapsed_on_the_card_and_whole_in_the_posts_record(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser, clock: ManualClock,
) -> None:
    """Carol changes who may reply to a post 7 times: the account's page lists the latest 3,
    newest last, with a link to "4 earlier changes", which opens the post's public record
    listing all 7 in order; on both pages each change shown is checked against the signed log
    and the post verifies; both pass axe. (Before: the card listed every change, so a writer
    flipping the settings buried the post under them.)"""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    post_uri = await published_post(gw, carol, account.did)
    rkey = post_uri.rsplit("/", 1)[1]
    post_id = (await posts_by_key(gw, "carol", "skygates"))[rkey]["id"]
    rules: list[list[dict[str, str]]] = [[], [{"$type": f"{THREADGATE}#mentionRule"}]]
    for n in range(7):
        clock.advance(timedelta(minutes=1))
        await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
            repo=account.did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=rules[n % 2])))
    entries = [index for index, _ in await gate_bodies(gw)]
    assert (len(entries), GATES_SHOWN) == (7, 3)
    words = ["Replies: nobody", "Replies: only people mentioned"]

    page, problems = await _open(browser, _base(gw) + "/@skygates")
    card = page.locator(f"#post-{post_id}")
    shown = card.locator(".gates li")
    await expect(shown).to_have_count(3)
    for n, index in enumerate(entries[-3:], start=4):
        await expect(shown.nth(n - 4)).to_contain_text(f"{words[n % 2]} — changed by carol on")
        await expect(shown.nth(n - 4).locator(f'[data-entry="{index}"][data-field="ts"]')).to_have_count(1)
    await expect(card.locator(".gates")).to_contain_text("changed once it was out (7 times, the latest 3 here)")
    size = await _size(gw)
    assert (await _statuses(page))[f"post-{post_id}"] == f"Verified against checkpoint {size}."
    await assert_accessible(page)

    await card.get_by_role("link", name="4 earlier changes").click()
    await page.wait_for_url(f"**/audit?kind=post&q={post_id}")
    await page.wait_for_selector(CHECKED, state="attached", timeout=30_000)
    whole = page.locator(f"#post-{post_id} .gates li")
    await expect(whole).to_have_count(7)
    for n, index in enumerate(entries):
        await expect(whole.nth(n)).to_contain_text(f"{words[n % 2]} — changed by carol on")
        await expect(whole.nth(n).locator(f'[data-entry="{index}"][data-field="actor"]')).to_have_text("carol")
    await expect(page.locator(f"#post-{post_id} .gates")).not_to_contain_text("earlier change")
    assert (await _statuses(page))[f"post-{post_id}"] == f"Verified against checkpoint {size}."
    assert problems == []
    await assert_accessible(page)


async def test_an_approver_reads_a_posts_gates_and_a_visitor_sees_them_once_out(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser,
) -> None:
    """Carol sends a post with a threadgate (people mentioned, followers and a list whose address
    carries a quote and an entity; two replies hidden) and a postgate (quotes off): bob reads
    them in words on his queue, the list's address as text, and approves there; out, the
    account's public page says who might reply or quote as it went out, its card still
    verifying. Both pages pass axe, and nothing on them runs the list's address. (Before: bob
    read the records' JSON; the public card said nothing of them.)"""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    writes = gated_thread(account.did, "Gated from the start")
    await run(carol.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
    post_id = (await posts_by_key(gw, "carol", "skygates"))[writes[0]["rkey"]]["id"]

    problems: list[str] = []
    async with pages_on(gw, ["bob"]) as pages:
        page = await signed_in(browser, pages, "bob", problems)
        held = page.get_by_role("article", name="Post by carol on @skygates")
        said = held.locator(".goes-out dd")
        await expect(said).to_have_text(["en", *GATED_WORDS[:1], HOSTILE_LIST, *GATED_WORDS[1:]])
        await expect(held.locator(".goes-out dt")).to_have_text(
            ["Language", "Who may reply or quote", "List that may reply", "Who may reply or quote"])
        await assert_accessible(page)
        await held.get_by_role("button", name="Approve version 1").click()
        await expect(page.get_by_role("status").filter(has_text="You approved the post.")).to_be_visible()
    await gw.tick()
    assert (await gw.get("carol", post_id))["state"] == "published"

    public, seen = await _open(browser, _base(gw) + "/@skygates")
    card = public.locator(f"#post-{post_id}")
    await expect(card.locator(".gates-sent")).to_have_text(
        f"Who may reply or quote, as it went out: {'. '.join(GATED_WORDS)}.")
    assert (await _statuses(public))[f"post-{post_id}"] == f"Verified against checkpoint {await _size(gw)}."
    await assert_accessible(public)
    assert problems == [] and seen == []


def _settings_cases() -> list[tuple[str, Any]]:
    """Gates and settings to put in words: every threadgate summary of rules, lists and hidden
    replies Byline could write, every postgate's, and settings that are no summary (each said
    as "who may reply changed" or the like)."""
    rules = ["mention", "follower", "following", "list"]
    cases: list[tuple[str, Any]] = []
    for mask in range(16):
        chosen = [r for n, r in enumerate(rules) if mask >> n & 1]
        for hidden in (0, 1, 2):
            replies: Any = chosen or "nobody"
            lists = [0] if "list" not in chosen else [1, 2]
            cases += [(THREADGATE, {"replies": replies, "lists": n, "hidden_replies": hidden}) for n in lists]
    cases += [(THREADGATE, {"replies": "everybody", "lists": 0, "hidden_replies": h}) for h in (0, 1, 300)]
    cases += [(POSTGATE, {"quotes": q, "detached_quotes": d}) for q in ("on", "off") for d in (0, 1, 3)]
    cases += [
        (THREADGATE, None), (POSTGATE, None), ("app.bsky.feed.like", None), (THREADGATE, "Replies: everybody"),
        (THREADGATE, {}), (THREADGATE, {"quotes": "off", "detached_quotes": 0}),
        (THREADGATE, {"replies": ["mention"], "lists": 1, "hidden_replies": 0}),
        (THREADGATE, {"replies": ["mention", "mention"], "lists": 0, "hidden_replies": 0}),
        (THREADGATE, {"replies": ["anyone-who-pays"], "lists": 0, "hidden_replies": 0}),
        (THREADGATE, {"replies": "everybody", "lists": 0, "hidden_replies": 301}),
        (THREADGATE, {"replies": "everybody", "lists": 0, "hidden_replies": True}),
        (THREADGATE, {"replies": "everybody", "lists": 0, "hidden_replies": 1.5}),
        (THREADGATE, {"replies": [], "lists": 0, "hidden_replies": 0}),
        (POSTGATE, {"quotes": "maybe", "detached_quotes": 0}), (POSTGATE, {"quotes": "off"}),
        (POSTGATE, {"quotes": "off", "detached_quotes": -1, "extra": 1}),
    ]
    return cases


async def test_the_page_script_says_every_gates_settings_in_the_words_the_gateway_does(
    gateway: Gateway, browser: Browser,
) -> None:
    """verify.js makes a gate's words from an entry's settings to check the page's: for every
    summary Byline writes and for settings that are none, its words are the gateway's, word for
    word (else a true page would fail, or a page could say what no entry says)."""
    cases = _settings_cases()
    page = await browser.new_page()
    await page.goto(_base(gateway) + "/audit")
    await page.wait_for_function("() => typeof window.BylineVerify === 'object'")
    said = await page.evaluate(
        "(cases) => cases.map(([gate, settings]) => window.BylineVerify.gateWords(gate, settings))", cases)
    expected = [gate_words(gate, settings) for gate, settings in cases]
    assert said == expected
    assert len(set(expected)) > 60  # the cases are worth comparing: many sentences, not one


async def _public_page_altered(browser: Browser, url: str, before: str, after: str) -> Page:
    """The account's public page as a lying gateway would serve it: ``before`` said as ``after``."""
    page = await browser.new_page()

    async def altered(route: Route) -> None:
        response = await route.fetch()
        body = await response.text()
        assert before in body
        await route.fulfill(response=response, body=body.replace(before, after))

    await page.route(url, altered)
    await page.goto(url)
    await page.wait_for_selector(CHECKED, state="attached", timeout=30_000)
    return page


async def test_who_may_reply_or_quote_as_a_post_went_out_is_checked_against_its_claim(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser,
) -> None:
    """Carol's gated post, approved by bob, goes out: the claim that sent it (``post.publishing``)
    records its gates' settings, never the list's address, and the public card's words of them
    are marks of that entry the page's script checks, so the card verifies; served by a lying
    gateway saying quotes were on, the card fails, the rest of the page verifies. (Before: the
    words came from the gateway's record alone and the altered card still said "Verified".)"""
    post_id = await gated_post_out(bluesky_pds, gw, clients, "Gated and checked")
    [claim] = [e for _, e in await log_bodies(gw) if e["type"] == "post.publishing" and e["post"] == post_id]
    assert claim["data"]["gates"] == [
        {"gate": THREADGATE, "settings": {"replies": ["mention", "follower", "list"], "lists": 1, "hidden_replies": 2}},
        {"gate": POSTGATE, "settings": {"quotes": "off", "detached_quotes": 1}},
    ]
    assert "graph.list" not in json.dumps(claim) and "3hid" not in json.dumps(claim)
    await verified_by_cli(gw)

    url = _base(gw) + "/@skygates"
    public, problems = await _open(browser, url)
    card = public.locator(f"#post-{post_id}")
    marks = card.locator('.gates-sent [data-type="post.publishing"][data-words="gate"]')
    await expect(marks).to_have_text(list(GATED_WORDS))
    assert (await _statuses(public))[f"post-{post_id}"] == f"Verified against checkpoint {await _size(gw)}."
    assert problems == []

    lying = await _public_page_altered(browser, url, GATED_WORDS[1], "Quotes: on")
    statuses = await _statuses(lying)
    assert statuses[f"post-{post_id}"].startswith("Does not match the signed log: entry "), statuses
    assert statuses[f"post-{post_id}"].endswith("does not say who may reply or quote as the page does."), statuses
    assert [k for k, v in statuses.items() if not v.startswith("Verified")] == [f"post-{post_id}"]


async def test_a_gates_change_said_otherwise_than_its_entry_fails_the_card(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], browser: Browser,
) -> None:
    """Carol closes replies to a post that is out: served by a lying gateway saying replies were
    opened, the card fails against the change's entry, whose settings say nobody may reply.
    (Before: only who changed it and when were checked; the words were the gateway's.)"""
    post_id, index, _ = await replies_closed(bluesky_pds, gw, clients)

    url = _base(gw) + "/@skygates"
    page, _ = await _open(browser, url)
    said = page.locator(f'#post-{post_id} .gates li [data-entry="{index}"][data-words="gate"]')
    await expect(said).to_have_text("Replies: nobody")
    assert (await _statuses(page))[f"post-{post_id}"] == f"Verified against checkpoint {await _size(gw)}."

    lying = await _public_page_altered(browser, url, 'data-words="gate">Replies: nobody<',
                                       'data-words="gate">Replies: everybody<')
    assert (await _statuses(lying))[f"post-{post_id}"] == (
        f"Does not match the signed log: entry {index} does not say who may reply or quote as the page does.")
