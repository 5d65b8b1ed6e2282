"""The OAuth sign-in page in a real headless Chromium: a person signs an app in, with PKCE.

Chromium comes from Debian (``tests/browser/install.sh``); a missing browser fails these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from mastodon import Mastodon
from playwright.async_api import Browser, ConsoleMessage, expect

from gateway.appkeys import PEOPLE
from tests.browser.axe import assert_accessible
from tests.clients.signin import pkce_pair, with_pkce
from tests.clients.world import World

SCOPES = ["read", "write"]


@pytest.fixture
async def callback() -> AsyncIterator[tuple[str, list[dict[str, list[str]]]]]:
    """The app's redirect URI: a real server that records what the sign-in sends back."""
    received: list[dict[str, list[str]]] = []

    async def land(request: web.Request) -> web.Response:
        received.append(parse_qs(request.query_string))
        return web.Response(text="<!doctype html><title>Back in the app</title><h1>Back in the app</h1>",
                            content_type="text/html")

    app = web.Application()
    app.router.add_get("/callback", land)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/callback")), received
    finally:
        await server.close()


async def _start(world: World, redirect: str) -> tuple[Mastodon, str, str]:
    client_id, client_secret = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES,
                                               redirect_uris=redirect, api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    verifier, challenge = pkce_pair()
    url = await world.run(app.auth_request_url, redirect_uris=redirect, scopes=SCOPES, state="st-42",
                          allow_http=True)
    return app, with_pkce(url, challenge), verifier


async def test_person_signs_an_app_in_with_the_browser(
    world: World, browser: Browser, callback: tuple[str, list[dict[str, list[str]]]]
) -> None:
    """Wrong token first, then the right one (keyboard only), pick the account, Authorize: the app posts."""
    redirect, received = callback
    app, url, verifier = await _start(world, redirect)
    page = await browser.new_page()
    problems: list[str] = []

    def console(message: ConsoleMessage) -> None:
        # The page's own style must pass its Content-Security-Policy; nothing else may load.
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    page.on("console", console)
    await page.goto(url)
    await expect(page.get_by_role("heading", level=1)).to_have_text(
        "Sign in to let Poster post through Byline")
    await expect(page.get_by_label("Your name")).to_be_focused()  # the password is the first way in
    token_field = page.get_by_label("Your Byline token")
    await token_field.fill("byl_not-a-real-token")
    await page.get_by_role("button", name="Continue").click()
    await expect(page.get_by_role("alert")).to_have_text("That token was not accepted. Check it and try again.")
    await expect(page.get_by_label("Your Byline token")).to_have_attribute("aria-invalid", "true")
    await page.keyboard.type(world.gateway.tokens["carol"])
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Authorize Poster?")
    group = page.get_by_role("group", name="Account the app acts as")
    choices = group.get_by_role("radio")
    assert [await c.get_attribute("value") for c in await choices.all()] == ["cosigned", "managed", "masto"]
    await group.get_by_role("radio", name="masto").check()
    await group.get_by_role("radio", name="cosigned").check()
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{redirect}?*")
    await expect(page.get_by_role("heading")).to_have_text("Back in the app")
    assert problems == []

    [answer] = received
    assert answer["state"] == ["st-42"]
    status, granted = await world.gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": answer["code"][0], "client_id": app.client_id,
        "client_secret": app.client_secret, "redirect_uri": redirect, "code_verifier": verifier,
    })
    assert status == 200, granted
    api = Mastodon(access_token=granted["access_token"], api_base_url=world.base)
    posted = await world.run(api.status_post, "Signed in with a browser")
    assert (posted.byline.state, posted.byline.author) == ("held", "carol")
    _, post = await world.gateway.call("carol", "GET", f"/v1/posts/{posted.id}")
    assert post["account"] == "cosigned"


async def test_person_denies_the_app(
    world: World, browser: Browser, callback: tuple[str, list[dict[str, list[str]]]]
) -> None:
    """Deny sends the browser back to the app with access_denied, and no code exists."""
    redirect, received = callback
    _, url, _ = await _start(world, redirect)
    page = await browser.new_page()
    await page.goto(url)
    await page.get_by_label("Your Byline token").fill(world.gateway.tokens["bob"])
    await page.get_by_role("button", name="Continue").click()
    await page.get_by_role("button", name="Deny").click()
    await page.wait_for_url(f"{redirect}?*")
    [answer] = received
    assert (answer["error"], answer["state"]) == (["access_denied"], ["st-42"])
    assert "code" not in answer
    assert urlsplit(page.url).path == "/callback"


async def test_person_signs_an_app_in_with_a_password(
    world: World, browser: Browser, callback: tuple[str, list[dict[str, list[str]]]]
) -> None:
    """Name and password on the page (accessible, CSP-clean), Authorize, the app posts; the page
    session stays, so the next app's sign-in starts at step two; both steps pass axe."""
    await world.gateway.app[PEOPLE].add("carol", "carol-long-password")
    redirect, received = callback
    app, url, verifier = await _start(world, redirect)
    page = await browser.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if "Content Security Policy" in message.text else None)
    await page.goto(url)
    await assert_accessible(page)
    await page.get_by_label("Your name").fill("carol")
    await page.get_by_label("Password", exact=True).fill("not-her-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_have_text("That name and password do not match.")
    await expect(page.get_by_label("Password", exact=True)).to_be_focused()
    await page.keyboard.type("carol-long-password")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Authorize Poster?")
    await expect(page.get_by_text("Signed in as carol.")).to_be_visible()
    await assert_accessible(page)
    [cookie] = [c for c in await page.context.cookies() if c["name"] == "byline_session"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
    group = page.get_by_role("group", name="Account the app acts as")
    await group.get_by_role("radio", name="cosigned").check()
    await page.get_by_role("button", name="Authorize").click()
    await page.wait_for_url(f"{redirect}?*")
    [answer] = received
    status, granted = await world.gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": answer["code"][0], "client_id": app.client_id,
        "client_secret": app.client_secret, "redirect_uri": redirect, "code_verifier": verifier,
    })
    assert status == 200, granted
    api = Mastodon(access_token=granted["access_token"], api_base_url=world.base)
    posted = await world.run(api.status_post, "Signed in with a password")
    assert (posted.byline.state, posted.byline.author) == ("held", "carol")

    _, again, _ = await _start(world, redirect)
    await page.goto(again)
    await expect(page.get_by_role("heading", level=1)).to_have_text("Authorize Poster?")
    await expect(page.get_by_label("Your name")).to_have_count(0)
    await page.get_by_role("link", name="Sign in as someone else").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to let Poster post through Byline")
    await page.go_back()
    await page.get_by_role("button", name="Deny").click()
    await page.wait_for_url(f"{redirect}?*")
    assert received[-1]["error"] == ["access_denied"]
    assert problems == []
