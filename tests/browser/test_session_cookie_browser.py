"""The pages' session cookie in a real headless Chromium, with the gateway served over TLS, on
both databases: a page on a sibling subdomain cannot plant a session of its own in the
browser, nor overwrite the person's, because the cookie is a ``__Host-`` one.

Chromium finds every ``*.localhost`` name on this machine by itself, so the gateway is
``byline.localhost`` and the attacker's page ``evil.byline.localhost``, both over TLS with
certificates from a CA of the test's own (which Chromium is told to accept without trusting it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.appkeys import PEOPLE
from gateway.clock import ManualClock
from tests.conftest import Gateway, Tls, started_gateway, tls_for
from tests.pages.conftest import password_of

SITE = "byline.localhost"
SESSION_COOKIE = "byline_session"
TLS_SESSION_COOKIE = "__Host-byline_session"


@asynccontextmanager
async def _planting(tls: Tls, cookie: str) -> AsyncIterator[str]:
    """The attacker's page, on a sibling subdomain over TLS: it sets ``cookie`` (a session of the
    attacker's own) for the whole of the gateway's domain, under the session cookie's every name."""

    async def plant(request: web.Request) -> web.Response:
        response = web.Response(text="Nothing to see here.")
        for name in (SESSION_COOKIE, TLS_SESSION_COOKIE):
            response.set_cookie(name, cookie, domain=SITE, path="/", secure=True, httponly=True, samesite="Lax")
        return response

    app = web.Application()
    app.router.add_get("/", plant)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=tls.server)
    try:
        yield f"https://evil.{SITE}:{server.port}/"
    finally:
        await _drained(server)
        await server.close()


async def _drained(server: BaseTestServer, seconds: float = 5.0) -> None:
    """Wait (a few seconds at most) for the browser to end its connections to ``server``. A TLS
    server closed under a connection still open waits for the peer's close_notify, and a test
    that ends first leaves that connection's socket for a later test to meet as its error."""
    assert server.runner is not None and server.runner.server is not None
    for _ in range(round(seconds / 0.05)):
        if not server.runner.server.connections:
            return
        await asyncio.sleep(0.05)


@asynccontextmanager
async def _context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A browser context of its own (a self-signed certificate taken), closed on the way out."""
    context = await browser.new_context(ignore_https_errors=True)
    try:
        yield context
    finally:
        await context.close()


async def _signed_in_elsewhere(gateway: Gateway, name: str) -> str:
    """``name`` signs in with a client of their own (the attacker, on their own machine): the cookie."""
    async with gateway.client.post("/signin", data={"name": name, "password": password_of(name)},
                                   allow_redirects=False) as answer:
        assert answer.status == 303
        return answer.cookies[TLS_SESSION_COOKIE].value


async def _who(context: BrowserContext, base: str) -> str:
    """Who the browser is signed in as on the gateway's pages ("" for no one)."""
    page = await context.new_page()
    try:
        await page.goto(base + "/queue")
        signed = page.locator("form[action='/signout'] bdi")
        return await signed.text_content() or "" if await signed.count() else ""
    finally:
        await page.close()


async def test_a_sibling_subdomain_cannot_plant_or_overwrite_the_session(
    browser: Browser, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """erin's page on evil.byline.localhost sets her own session cookie for byline.localhost;
    bob's browser, having visited it, is signed in as no one on the gateway (not as erin, whose
    approvals bob would then make); bob signs in, gets a __Host- cookie (Secure, Path=/, this host
    only), and erin's page visited again cannot replace it. Before: the cookie had a plain name,
    bob's browser took erin's and was signed in as her."""
    tls = tls_for(SITE, f"*.{SITE}", "127.0.0.1")
    async with started_gateway(db_url, policy_dir, clock, tls=tls) as gateway:
        for name in ("bob", "erin"):
            await gateway.app[PEOPLE].add(name, password_of(name))
        base = f"https://{SITE}:{gateway.client.port}"
        erins = await _signed_in_elsewhere(gateway, "erin")
        # The browser's connections end before the servers they went to: a TLS server closing
        # under a connection the browser keeps open waits for the browser's close_notify, and
        # a test that ended first left that connection's socket for a later test to meet.
        async with _planting(tls, erins) as evil, _context(browser) as context:
            page = await context.new_page()
            await page.goto(evil)
            await expect(page.get_by_text("Nothing to see here.")).to_be_visible()
            assert await _who(context, base) == ""

            await page.goto(base + "/signin")
            await page.get_by_label("Your name").fill("bob")
            await page.get_by_label("Password").fill(password_of("bob"))
            await page.get_by_role("button", name="Sign in").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
            [cookie] = [c for c in await context.cookies(base) if c["name"] == TLS_SESSION_COOKIE]
            assert (cookie["domain"], cookie["path"], cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (
                SITE, "/", True, True, "Lax")

            await page.goto(evil)
            assert await _who(context, base) == "bob"
        await _drained(gateway.client.server)
        assert await gateway.app[PEOPLE].session(erins) is None  # the planted one ended as bob signed in


async def _signs_in(page: Page, base: str, name: str) -> None:
    """The sign-in form, filled in and sent as a person does."""
    await page.goto(base + "/signin")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Password").fill(password_of(name))
    await page.get_by_role("button", name="Sign in").click()


async def test_the_persons_browser_signs_in_past_guesses_against_their_name(
    browser: Browser, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """bob signs in and out in Chromium, which keeps his device cookie (``__Host-byline_device``:
    Secure, HttpOnly, SameSite=Strict, this host only). Someone elsewhere then sends ten wrong
    passwords for "bob": a fresh browser is refused with bob's right password ("too many
    failed"), but bob's own browser signs him in. Before: his browser was refused too."""
    tls = tls_for(SITE, "127.0.0.1")
    async with started_gateway(db_url, policy_dir, clock, tls=tls, trusted_proxies="127.0.0.1/32, ::1") as gateway:
        await gateway.app[PEOPLE].add("bob", password_of("bob"))
        base = f"https://{SITE}:{gateway.client.port}"
        async with _context(browser) as own, _context(browser) as fresh:
            page = await own.new_page()
            await _signs_in(page, base, "bob")
            await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
            [device] = [c for c in await own.cookies(base) if c["name"] == "__Host-byline_device"]
            assert (device["domain"], device["path"], device["secure"], device["httpOnly"], device["sameSite"]) == (
                SITE, "/", True, True, "Strict")
            await page.get_by_role("button", name="Sign out bob").click()
            await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to Byline")

            for n in range(10):  # through the trusted proxy, from another address
                async with gateway.client.post("/signin", data={"name": "bob", "password": f"wrong-guess-{n}"},
                                               headers={"X-Forwarded-For": "198.51.100.66"},
                                               allow_redirects=False) as answer:
                    assert answer.status == 401

            other = await fresh.new_page()
            await _signs_in(other, base, "bob")
            await expect(other.get_by_role("alert")).to_contain_text("too many failed sign-in attempts")
            await _signs_in(page, base, "bob")
            await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
            await page.close()
            await other.close()
        await _drained(gateway.client.server)
