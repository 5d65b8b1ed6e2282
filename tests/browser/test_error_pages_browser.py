"""Addresses no page answers, opened in a real Chromium: a person who follows an old link, mistypes
an address or opens a form's address (``/posts/1/approve``) reads a page saying so, with the
pages' headers and a way back, never the API's raw JSON; an API client there still gets JSON."""

from __future__ import annotations

from urllib.parse import quote

from playwright.async_api import Browser, expect

from tests.browser.axe import assert_accessible
from tests.pages.conftest import Pages, pages

__all__ = ["pages"]  # the fixture, for these tests too

MARKUP = "<img src=x onerror=\"document.title='ran'\">"


async def test_an_address_no_page_answers_is_a_page_in_the_browser(browser: Browser, pages: Pages) -> None:
    """An unknown address, an account page with no account named, one with markup in it, and a form's address
    opened as a page: each is a page with its status, its title as a heading, the reason
    announced (role=alert) and a link back, under the pages' Content-Security-Policy, and runs
    nothing. (Before: the API's JSON, shown as raw text by the browser, with no way back.)"""
    page = await browser.new_page()
    for path, status, title in (
        ("/queue/old-link", 404, "Not found"),
        ("/accounts/", 404, "Not found"),
        ("/" + quote(MARKUP), 404, "Not found"),
        ("/posts/1/approve", 405, "Not a page"),
    ):
        answer = await page.goto(pages.base + path)
        assert answer is not None
        assert (answer.status, answer.headers["content-type"]) == (status, "text/html; charset=utf-8"), path
        assert answer.headers["content-security-policy"].startswith("default-src 'none'"), path
        assert answer.headers["cache-control"] == "no-store", path
        await expect(page.get_by_role("heading", level=1)).to_have_text(title)
        await expect(page.get_by_role("alert")).not_to_be_empty()
        await expect(page.get_by_role("link", name="Back to the start")).to_have_attribute("href", "/")
        assert await page.title() != "ran"
    await assert_accessible(page)
    await page.close()


async def test_an_api_client_at_an_address_no_page_answers_still_gets_json(pages: Pages) -> None:
    """Without a browser's Accept (none, ``*/*``, JSON), the router's refusals stay the API's
    JSON, word for word."""
    visitor = await pages.visitor()
    for accept in (None, "*/*", "application/json"):
        headers = {} if accept is None else {"Accept": accept}
        async with visitor.session.get(pages.base + "/queue/old-link", headers=headers) as answer:
            assert (answer.status, await answer.json()) == (
                404, {"error": "not_found", "message": "nothing at /queue/old-link"}), accept
        async with visitor.session.get(pages.base + "/posts/1/approve", headers=headers) as answer:
            assert (answer.status, await answer.json()) == (
                405, {"error": "method_not_allowed", "message": "GET is not allowed on /posts/1/approve"}), accept
