"""CORS in a real headless Chromium: a web app served from another origin calls Byline's
Mastodon API, token endpoint, NodeInfo and XRPC with a bearer token, and is refused by the
browser for the pages that act with the session cookie.

The app's page is on its own server (origin B, another port); the gateway is origin A. Chromium
comes from Debian (``tests/browser/install.sh``); a missing browser fails these tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page

from gateway.appkeys import PEOPLE
from gateway.http.pages import SESSION_COOKIE
from tests.clients.world import World

FETCH = """async ([url, init]) => {
  try {
    const response = await fetch(url, init);
    return {status: response.status, body: await response.text(),
            requestId: response.headers.get('X-Request-Id')};
  } catch (error) {
    return {blocked: String(error)};
  }
}"""
"""A fetch from the app's page: what the page could read, or that the browser refused it."""


@pytest.fixture
async def other_origin() -> AsyncIterator[str]:
    """Origin B: a server with one empty page, where the web app runs."""
    app = web.Application()

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>A web app</title><h1>A web app</h1>",
                            content_type="text/html")

    app.router.add_get("/", page)
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("/"))
    finally:
        await server.close()


async def _app_page(browser: Browser, origin: str) -> Page:
    page = await browser.new_page()
    await page.goto(origin)
    return page


async def _fetch(page: Page, url: str, **init: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate(FETCH, [url, init])
    return result


async def test_a_web_app_on_another_origin_calls_the_api(world: World, browser: Browser, other_origin: str) -> None:
    """With a bearer token (a preflighted request), from origin B: reads, a post with an
    Idempotency-Key, the token endpoint, NodeInfo and XRPC are all readable by the page."""
    assert other_origin.split(":")[2] != world.base.split(":")[2]  # two ports: two origins
    token = await world.token("alice", "masto")
    page = await _app_page(browser, other_origin)
    auth = {"Authorization": f"Bearer {token}"}

    me = await _fetch(page, f"{world.base}/api/v1/accounts/verify_credentials", headers=auth)
    assert me["status"] == 200, me
    assert '"username":"brand"' in me["body"].replace(" ", "")
    assert me["requestId"]  # an exposed header: a report can name the request

    posted = await _fetch(page, f"{world.base}/api/v1/statuses", method="POST", body='{"status": "From the web"}',
                          headers={**auth, "Content-Type": "application/json", "Idempotency-Key": "web-1"})
    assert posted["status"] == 200, posted
    await world.gateway.tick()
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["From the web"]

    refused = await _fetch(page, f"{world.base}/api/v1/accounts/verify_credentials",
                           headers={"Authorization": "Bearer not-a-token"})
    assert refused["status"] == 401  # the refusal, too, is readable: the app can say why

    grant = await _fetch(page, f"{world.base}/oauth/token", method="POST",
                         body="grant_type=authorization_code&code=nope&client_id=nope",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (grant["status"], '"invalid_client"' in grant["body"]) == (401, True)

    found = await _fetch(page, f"{world.base}/.well-known/nodeinfo")
    assert found["status"] == 200
    described = await _fetch(page, f"{world.base}/xrpc/com.atproto.server.describeServer")
    assert described["status"] == 200


async def test_the_cookie_pages_stay_closed_to_other_origins(
    world: World, browser: Browser, other_origin: str
) -> None:
    """alice is signed in to the pages in this browser (the two origins are the same site, so
    her Lax cookie goes along): her own page reads her queue, but the browser refuses to let
    origin B read it, its live updates, the sign-in pages or the accounts, with or without cookies."""
    await world.gateway.app[PEOPLE].add("alice", "alice-long-password")
    cookie = (await world.gateway.app[PEOPLE].sign_in("alice", "alice-long-password", client="127.0.0.1")).cookie
    context = await browser.new_context()
    await context.add_cookies([{"name": SESSION_COOKIE, "value": cookie, "url": world.base + "/"}])
    own = await context.new_page()
    await own.goto(world.base + "/signin")
    mine = await _fetch(own, world.base + "/queue")
    assert mine["status"] == 200 and "alice" in mine["body"], mine  # the cookie is good where it belongs
    page = await context.new_page()
    await page.goto(other_origin)
    for path in ("/queue", "/queue/events", "/signin", "/oauth/authorize?client_id=x", "/accounts"):
        for credentials in ("omit", "include"):
            result = await _fetch(page, world.base + path, credentials=credentials)
            assert "blocked" in result, (path, credentials, result)


async def test_preflight_answers(world: World) -> None:
    """What a browser asks before a call with a token: the methods, the headers and for how long;
    no wildcard and no preflight answer for a page."""
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
    async with ClientSession() as http:
        async with http.options(f"{world.base}/api/v1/statuses", headers=ask) as answer:
            assert answer.status == 204
            assert answer.headers["Access-Control-Allow-Origin"] == "*"
            assert answer.headers["Access-Control-Allow-Methods"] == "GET, POST, PUT, PATCH, DELETE"
            allowed = {h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")}
            assert {"authorization", "content-type", "idempotency-key"} <= allowed
            assert answer.headers["Access-Control-Max-Age"] == "3600"
            assert "Access-Control-Allow-Credentials" not in answer.headers
        async with http.options(f"{world.base}/oauth/token", headers=ask) as answer:
            assert (answer.status, answer.headers["Access-Control-Allow-Methods"]) == (204, "POST")
        async with http.options(f"{world.base}/xrpc/com.atproto.repo.createRecord", headers=ask) as answer:
            assert (answer.status, answer.headers["Access-Control-Allow-Methods"]) == (204, "GET, POST")
        async with http.get(f"{world.base}/api/v2/instance", headers={"Origin": "https://app.example"}) as answer:
            assert answer.headers["Access-Control-Allow-Origin"] == "*"
            assert "Link" in answer.headers["Access-Control-Expose-Headers"].split(", ")
        for path in ("/queue", "/oauth/authorize", "/signin"):
            async with http.options(world.base + path, headers=ask) as answer:
                assert answer.status == 405, path
                assert "Access-Control-Allow-Origin" not in answer.headers, path
            async with http.get(world.base + path, headers={"Origin": "https://app.example"}) as answer:
                assert "Access-Control-Allow-Origin" not in answer.headers, path


async def _allowed(http: ClientSession, url: str, asked: str) -> tuple[int, set[str], str | None]:
    """A preflight for a POST asking for ``asked``: its status, the header names it allows
    (lower-cased) and its ``Vary``."""
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": asked}
    async with http.options(url, headers=ask) as answer:
        allowed = answer.headers.get("Access-Control-Allow-Headers", "")
        return answer.status, {h.strip().lower() for h in allowed.split(",") if h.strip()}, answer.headers.get("Vary")


async def test_a_preflight_is_allowed_the_header_names_it_asks_for(world: World) -> None:
    """As the reference PDS and Mastodon do, a preflight on XRPC (and the other bearer-token
    surfaces) is allowed the request headers a web client asks for, its own ones included
    (x-bsky-topics); before, only Byline's fixed list was, and the browser refused the call."""
    asked = "atproto-accept-labelers,atproto-proxy,authorization,content-type,x-bsky-topics"
    async with ClientSession() as http:
        for path in ("/xrpc/app.bsky.feed.getFeed", "/xrpc/com.atproto.repo.createRecord", "/api/v1/statuses"):
            status, allowed, vary = await _allowed(http, world.base + path, asked)
            assert status == 204, path
            assert set(asked.split(",")) <= allowed, (path, allowed)
            assert vary == "Access-Control-Request-Headers, Host", path  # no BYLINE_PUBLIC_URL here
        # As browsers send it (lower case, no spaces) or as a hand-written list (spaces, any
        # case, an empty element): the names are the same.
        status, allowed, _ = await _allowed(http, world.base + "/xrpc/app.bsky.feed.getTimeline",
                                            " X-Bsky-Topics ,, X-Client-Version\t")
        assert status == 204 and {"x-bsky-topics", "x-client-version"} <= allowed, allowed


async def test_a_preflight_asking_for_what_is_no_header_name_is_not_broadened(world: World) -> None:
    """A name that is no RFC 9110 token, more than 32 names, or an overlong list: the preflight
    allows Byline's own list and nothing asked for, so the browser refuses the call."""
    async with ClientSession() as http:
        _, fixed, _ = await _allowed(http, world.base + "/xrpc/app.bsky.feed.getFeed", "authorization")
        assert "atproto-accept-labelers" in fixed and "x-bsky-topics" not in fixed
        many = ",".join(f"x-h{n}" for n in range(33))
        for asked in ("x-bsky-topics, bad name", "x-bsky-topics,x-a:b", "x-bsky-topics,x(y)", 'x-bsky-topics,"x"',
                      "x-bsky-topics,x/y", "x-bsky-topics,x@y", many, "x-bsky-topics," + "x" * 2100):
            status, allowed, _ = await _allowed(http, world.base + "/xrpc/app.bsky.feed.getFeed", asked)
            assert (status, allowed) == (204, fixed), asked
        # Exactly 32 names are echoed.
        status, allowed, _ = await _allowed(http, world.base + "/xrpc/app.bsky.feed.getFeed", many.rsplit(",", 1)[0])
        assert {f"x-h{n}" for n in range(32)} <= allowed


async def test_the_cookie_pages_answer_no_preflight_whatever_it_asks(world: World) -> None:
    """The pages that act with the session cookie answer no preflight, however well-formed the
    headers it asks for: no CORS header at all, as before."""
    async with ClientSession() as http:
        for path in ("/queue", "/queue/events", "/signin", "/oauth/authorize", "/accounts"):
            ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                   "Access-Control-Request-Headers": "atproto-accept-labelers,x-bsky-topics"}
            async with http.options(world.base + path, headers=ask) as answer:
                assert answer.status in (404, 405), path  # no OPTIONS route there
                cors = [h for h in answer.headers if h.lower().startswith("access-control-")]
                assert cors == [], (path, cors)
