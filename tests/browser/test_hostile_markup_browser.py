"""Markup where people's words, a policy's words and an address's query go, in a real Chromium:
nothing of it runs. Each page shows it as text (autoescaping), and each page's Content-Security-
Policy refuses inline script even where markup did get in (a script element or an event handler
put in the page)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from playwright.async_api import Browser, Dialog, Page

from tests.conftest import write_policy
from tests.pages.conftest import Pages, pages, password_of

__all__ = ["pages"]  # the fixture, for these tests too

EVIL = """
    account: evil
    platform: sandbox
    handle: "<img src=x onerror=alert('handle')>@handle"
    tier: direct
    owner: alice
    writers: [alice, carol]
    disclosure: "by {author}<script>alert('disclosure')</script>"
    rules:
      - name: shout
        action: hold
        any_words: [loud]
        reason: "<img src=x onerror=alert('reason')> Check it"
"""
WORDS = "loud <script>alert('text')</script><img src=x onerror=alert('text-img')>"
WARNING = "<svg onload=alert('warning')>"
OUT = "Out now <script>alert('published')</script><img src=x onerror=alert('published-img')>"


async def _as(browser: Browser, pages: Pages, name: str | None, dialogs: list[str]) -> Page:
    """A page of ``name``'s, signed in through the form (or a visitor's), that notes every dialog."""
    page = await browser.new_page()

    async def noted(dialog: Dialog) -> None:
        dialogs.append(f"{page.url}: {dialog.message}")
        await dialog.dismiss()

    page.on("dialog", noted)
    if name is not None:
        await page.goto(pages.base + "/signin")
        await page.get_by_label("Your name").fill(name)
        await page.get_by_label("Password").fill(password_of(name))
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url("**/queue")
    return page


async def test_markup_people_and_policies_wrote_never_runs(browser: Browser, pages: Pages, policy_dir: Path) -> None:
    """Script in a post's words and content warning, a rule's reason, the disclosure and the
    handle, and in a search, a ``next`` and an account in the address, on every page that shows
    them: no dialog opens, and the words show as written."""
    gw = pages.gateway
    write_policy(policy_dir, "evil", EVIL)
    assert await gw.sync_policies() == ["evil"]
    held = await gw.submit("carol", "evil", WORDS, spoiler_text=WARNING)
    assert held["state"] == "held"
    out = await gw.submit("carol", "evil", OUT)
    await gw.tick()
    assert (await gw.get("carol", out["id"]))["state"] == "published"

    dialogs: list[str] = []
    alice = await _as(browser, pages, "alice", dialogs)
    visitor = await _as(browser, pages, None, dialogs)
    for page, path in (
        (alice, "/queue"), (alice, f"/posts/{held['id']}"), (alice, f"/posts/{out['id']}"), (alice, "/accounts/evil"),
        (visitor, "/@evil"), (visitor, "/sandbox/evil"), (visitor, f"/audit?kind=post&q={out['id']}"),
        (visitor, "/audit?kind=person&q=" + quote("<script>alert('search')</script>")),
        (visitor, "/signin?next=" + quote("/queue\"><script>alert('next')</script>")),
        (alice, "/accounts/" + quote("<script>alert('account')</script>")),
    ):
        await page.goto(pages.base + path)
        await page.wait_for_load_state("load")
    assert dialogs == []
    await alice.goto(pages.base + "/queue")
    assert await alice.get_by_text("<script>alert('text')</script>", exact=False).count() > 0
    await visitor.goto(pages.base + "/@evil")
    assert await visitor.get_by_text("<script>alert('published')</script>", exact=False).count() > 0


INJECT = """() => new Promise((done) => {
    window.__ran = [];
    const script = document.createElement("script");
    script.textContent = "window.__ran.push('script')";
    document.body.append(script);
    const holder = document.createElement("div");
    holder.innerHTML = '<img src="data:," onerror="window.__ran.push(\\'handler\\')">';
    document.body.append(holder);
    setTimeout(() => done(window.__ran), 300);
})"""
"""Put an inline script and an inline event handler in the page, as markup that got past the
escaping would, and say which of them ran."""


async def test_no_page_runs_inline_script_that_got_in(browser: Browser, pages: Pages) -> None:
    """On every page, signed in or not, the sandbox timeline too: an inline script element and an
    inline event handler put in the page do not run (each page's policy refuses them)."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch")
    await gw.submit("alice", "direct", "Hello")
    await gw.tick()
    dialogs: list[str] = []
    bob = await _as(browser, pages, "bob", dialogs)
    visitor = await _as(browser, pages, None, dialogs)
    ran = {}
    for page, path in (
        (bob, "/"), (bob, "/queue"), (bob, f"/posts/{held['id']}"), (bob, "/accounts/cosigned"), (bob, "/@direct"),
        (visitor, "/signin"), (visitor, "/audit"), (visitor, "/oauth/authorize"), (visitor, "/sandbox/direct"),
    ):
        await page.goto(pages.base + path)
        ran[path] = await page.evaluate(INJECT)
    assert ran == {path: [] for path in ran}
