"""From a post back to its record, in a real headless Chromium, on both databases: a follower
pastes a post's address into the audit page and the page checks, in their browser against the
signed log, the byline it shows, the policy file the post went out under, and an announcement
of a change of voice; a page whose server altered the policy it names is flagged.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlencode

from playwright.async_api import Browser, ConsoleMessage, Page, Route, expect

from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.browser.axe import assert_accessible
from tests.conftest import Gateway, started_gateway, write_policy

CHECKED = 'html[data-checked="done"]'
DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    announce: {voice_changes: true}
"""
TEAM = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    approvals:
      from: [bob]
      required: 1
    announce: {voice_changes: true}
"""


async def _went_out(gw: Gateway) -> dict[str, str]:
    """The platform address of each post that went out, by its author."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT author, remote_url FROM posts WHERE state = 'published'")
    return {str(r["author"]): str(r["remote_url"]) for r in rows}


async def _open(browser: Browser, url: str, *, alter: str | None = None) -> tuple[Page, list[str]]:
    """The page, checked by its script; with ``alter``, the server's answer has that policy hash
    replaced by another (a lying server). Returns the CSP complaints and script errors too."""
    page = await browser.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    if alter is not None:
        async def lie(route: Route) -> None:
            response = await route.fetch()
            body = (await response.text()).replace(alter, "0" * 64)
            await route.fulfill(response=response, body=body)

        await page.route(re.compile(r".*/audit\?.*"), lie)
    await page.goto(url)
    await page.wait_for_selector(CHECKED, state="attached", timeout=30_000)
    return page, problems


async def test_a_pasted_address_shows_its_byline_checked_in_the_browser(
    db_url: str, tmp_path: Path, clock: ManualClock, browser: Browser,
) -> None:
    """A co-signed post and the announcement of the change that made the account co-signed,
    each found from its address: byline, policy version and policy hash verified, accessible,
    no inline script; the same page from a server that altered the hash fails its check."""
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "brand", DIRECT)
    async with started_gateway(db_url, policies, clock) as gw:
        write_policy(policies, "brand", TEAM)
        await gw.sync_policies()
        post = await gw.submit("carol", "brand", "Checked from its address")
        status, _ = await gw.act("bob", post["id"], "approve")
        assert status == 200
        await gw.tick()
        went_out = await _went_out(gw)
        base = str(gw.client.make_url("")).rstrip("/")

        def lookup(author: str) -> str:
            return f"{base}/audit?{urlencode({'kind': 'url', 'q': went_out[author]})}"

        page, problems = await _open(browser, lookup("carol"))
        card = page.locator(f"#post-{post['id']}")
        await expect(card.locator(".byline")).to_contain_text("Written by carol, approved by bob.")
        await expect(card.locator(".byline")).to_contain_text("Decided under policy version 2 of @brand")
        await expect(card.locator(".status")).to_have_text(re.compile(r"^Verified against checkpoint \d+\.$"))
        assert await card.locator('.mark[data-field="policy_sha256"]').count() == 1
        await assert_accessible(page)
        assert problems == []

        page, problems = await _open(browser, lookup("policy-file"))
        card = page.locator("article.post")
        await expect(card.locator(".byline")).to_contain_text(
            "An announcement of a change of voice, written by Byline from the account's policy file (version 2)")
        await expect(card.locator(".status")).to_have_text(re.compile(r"^Verified against checkpoint \d+\.$"))
        assert problems == []

        sha = await card.locator('.mark[data-field="policy_sha256"]').text_content()
        assert sha is not None and len(sha) == 64
        page, problems = await _open(browser, lookup("carol"), alter=sha)
        await expect(page.locator(f"#post-{post['id']} .status")).to_have_text(
            re.compile(r"^Does not match the signed log: entry \d+ does not say what the page shows\.$"))
