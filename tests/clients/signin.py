"""Driving the OAuth sign-in page over plain HTTP, as a browser without scripts would.

(The page in a real browser is ``tests/browser``; these helpers let the OAuth tests reach a code
quickly and then poke at everything around it.)
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

from aiohttp import ClientSession, CookieJar


class _Form(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.radios: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag != "input" or not found.get("name"):
            return
        name, value = str(found["name"]), found.get("value") or ""
        if found.get("type") == "radio":
            self.radios.append(value)
        elif found.get("type") == "hidden":
            self.fields[name] = value


def form_of(html: str) -> tuple[dict[str, str], list[str]]:
    """The hidden fields of the page's form, and the radio choices (accounts) it offers."""
    parser = _Form()
    parser.feed(html)
    return parser.fields, parser.radios


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def with_pkce(url: str, challenge: str) -> str:
    """An authorization URL (as Mastodon.py makes it) with a PKCE challenge added."""
    return url + "&" + urlencode({"code_challenge": challenge, "code_challenge_method": "S256"})


async def sign_in(url: str, *, token: str, account: str) -> str:
    """Go through the sign-in as a person would; return the code (from the redirect or the page)."""
    # unsafe=True: keep the sign-in cookie although the test server is addressed by IP
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
        async with session.get(url) as page:
            assert page.status == 200, await page.text()
            fields, _ = form_of(await page.text())
        action = url.split("/oauth/authorize")[0] + "/oauth/authorize"
        async with session.post(action, data={**fields, "token": token}) as step:
            assert step.status == 200, await step.text()
            fields, accounts = form_of(await step.text())
        assert account in accounts, accounts
        async with session.post(action, data={**fields, "account": account, "decision": "allow"},
                                allow_redirects=False) as done:
            if done.status == 302:
                query = parse_qs(urlsplit(done.headers["Location"]).query)
                return query["code"][0]
            assert done.status == 200, await done.text()
            found = re.search(r'<code id="code">([^<]+)</code>', await done.text())
            assert found is not None
            return found.group(1)


def code_of(status: int, location: str | None, html: str) -> str:
    """The code the last step of the sign-in handed out: in the redirect, or shown on the page."""
    if status == 302:
        assert location is not None
        return parse_qs(urlsplit(location).query)["code"][0]
    assert status == 200, html
    found = re.search(r'<code id="code">([^<]+)</code>', html)
    assert found is not None, html
    return found.group(1)


async def sign_in_with_password(url: str, *, name: str, password: str, account: str,
                                session: ClientSession | None = None) -> str:
    """Go through the sign-in with a name and password (in ``session``'s browser, or a new one);
    return the code. The browser keeps the page session the sign-in opened."""
    own = session is None
    browser = session or ClientSession(cookie_jar=CookieJar(unsafe=True))
    try:
        action = url.split("/oauth/authorize")[0] + "/oauth/authorize"
        async with browser.get(url) as page:
            assert page.status == 200, await page.text()
            fields, _ = form_of(await page.text())
        async with browser.post(action, data={**fields, "name": name, "password": password}) as step:
            assert step.status == 200, await step.text()
            fields, accounts = form_of(await step.text())
        assert account in accounts, accounts
        async with browser.post(action, data={**fields, "account": account, "decision": "allow"},
                                allow_redirects=False) as done:
            return code_of(done.status, done.headers.get("Location"), await done.text())
    finally:
        if own:
            await browser.close()
