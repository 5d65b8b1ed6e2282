"""Signing in to the pages with a name and password: cookies, CSRF, throttling, redirects."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import VerifyMismatchError

from gateway.appkeys import APPENDER, DB, PEOPLE
from gateway.clock import ManualClock
from gateway.services.people import decoy_hash
from tests.conftest import started_gateway
from tests.pages.conftest import Pages, password_of

SESSION_COOKIE = "byline_session"
"""The session cookie's name over plain http."""
TLS_SESSION_COOKIE = "__Host-byline_session"
"""Its name behind TLS, which a browser takes from this host alone, over TLS."""
TLS_DEVICE_COOKIE = "__Host-byline_device"
"""The device cookie a sign-in gives the browser behind TLS (tests/pages/test_device_cookies.py)."""


async def test_a_person_signs_in_and_out(pages: Pages) -> None:
    """The right password opens a session (an HttpOnly, SameSite cookie); signing out ends it."""
    visitor = await pages.visitor()
    status, _body, resp = await visitor.post("/signin", {"name": "alice", "password": password_of("alice"),
                                                         "next": "/queue"}, csrf=False)
    assert (status, resp.headers["Location"]) == (303, "/queue")
    [cookie] = [line for line in resp.headers.getall("Set-Cookie") if line.startswith("byline_session=")]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    # Over plain http (a gateway on one's own machine, no https public URL) the plain name: a
    # browser would refuse a Secure cookie there, and a __Host- name must be Secure.
    assert cookie.startswith("byline_session=") and "Secure" not in cookie
    status, page = await visitor.get("/")
    assert status == 200 and "Sign out <bdi>alice</bdi>" in page
    status, _, resp = await visitor.post("/signout", {})
    assert (status, resp.headers["Location"]) == (303, "/signin")
    _, page = await visitor.get("/")
    assert "Sign out" not in page


async def test_a_wrong_password_is_refused_alike_for_unknown_names(pages: Pages) -> None:
    """A wrong password and an unknown name get the same 401 page, and no cookie."""
    visitor = await pages.visitor()
    answers = []
    for name, password in (("alice", "not-her-password"), ("nobody", "whatever-it-is")):
        status, body, resp = await visitor.post("/signin", {"name": name, "password": password}, csrf=False)
        answers.append((status, "That name and password do not match." in body, "Set-Cookie" in resp.headers))
    assert answers == [(401, True, False)] * 2


@pytest.mark.parametrize("hasher", [PasswordHasher(), PasswordHasher(time_cost=2, memory_cost=4096, parallelism=2)],
                         ids=["byline", "other"])
def test_the_decoy_costs_what_a_password_costs_and_matches_none(hasher: PasswordHasher) -> None:
    """The hash an unknown name is checked against has the hasher's own parameters (so checking
    it takes as long as checking a person's), and no password matches it."""
    decoy = decoy_hash(hasher)
    assert extract_parameters(decoy) == extract_parameters(hasher.hash("a-password-of-hers"))
    for password in ("", "a-password-of-hers", "x" * 64):
        with pytest.raises(VerifyMismatchError):
            hasher.verify(decoy, password)
    assert decoy_hash(hasher) != decoy


def test_loading_the_sign_in_service_hashes_nothing() -> None:
    """Every `byline` command and each start of `byline serve` loads the sign-in service:
    loading it hashes no password (a decoy hashed at Byline's cost took a fifth to a half of
    a second of each)."""
    code = ("import argon2\n"
            "def refused(*_, **__): raise SystemExit('hashed a password')\n"
            "argon2.PasswordHasher.hash = refused\n"
            "import gateway.services.people")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")


async def test_sign_in_attempts_are_limited(pages: Pages) -> None:
    """After ten failures from one address, even the right password waits (429, Retry-After)."""
    visitor = await pages.visitor()
    for _ in range(10):
        status, _, _ = await visitor.post("/signin", {"name": "bob", "password": "wrong-password"}, csrf=False)
        assert status == 401
    status, body, resp = await visitor.post("/signin", {"name": "bob", "password": password_of("bob")}, csrf=False)
    assert status == 429 and int(resp.headers["Retry-After"]) > 0 and "too many failed" in body


async def test_next_never_leaves_the_gateway(pages: Pages) -> None:
    """A sign-in link cannot send the person on to another site."""
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        visitor = await pages.visitor()
        status, _, resp = await visitor.post(
            "/signin", {"name": "carol", "password": password_of("carol"), "next": target}, csrf=False
        )
        assert (status, resp.headers["Location"]) == (303, "/queue")


async def test_a_forged_csrf_value_changes_nothing(pages: Pages) -> None:
    """Signing out with another CSRF value is refused (403) and the session stays."""
    visitor = await pages.person("dave")
    status, body, _ = await visitor.post("/signout", {"csrf": "forged"}, csrf=False)
    assert status == 403 and "was not sent from a page of this gateway" in body
    _, page = await visitor.get("/")
    assert "Sign out <bdi>dave</bdi>" in page


async def test_a_new_password_signs_every_session_out(pages: Pages) -> None:
    """Changing a password ends the person's sessions at once."""
    visitor = await pages.person("erin")
    gw = pages.gateway
    assert await gw.app[PEOPLE].set_password("erin", "a-brand-new-password", appender=gw.app[APPENDER]) == (1, 0)
    _, page = await visitor.get("/")
    assert "Sign out" not in page


async def test_every_page_has_a_strict_content_security_policy(pages: Pages) -> None:
    """No inline script can run on a page: scripts and styles come from the gateway's files only."""
    visitor = await pages.visitor()
    async with visitor.session.get(pages.base + "/signin") as resp:
        csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp


async def test_guesses_sent_at_once_are_limited_as_one_after_another(pages: Pages) -> None:
    """Sixty wrong passwords sent together: no more are checked than the ten a minute allows
    (before, all sixty were: each was counted only once its hash had been checked)."""
    visitor = await pages.visitor()

    async def guess(n: int) -> int:
        async with visitor.session.post(visitor.base + "/signin", data={"name": "bob", "password": f"wrong-{n}"},
                                        allow_redirects=False) as answer:
            return answer.status

    statuses = await asyncio.gather(*(guess(n) for n in range(60)))
    assert (statuses.count(401), statuses.count(429)) == (10, 50), statuses


async def test_a_sign_in_sent_from_another_site_is_refused(pages: Pages) -> None:
    """Another site's page posting its own person's name and password to /signin would sign the
    browser in as them (login CSRF): refused (403), whatever the browser says of it, and the
    person signed in stays signed in."""
    visitor = await pages.person("dave")
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        status, _, resp = await visitor.post(
            "/signin", {"name": "erin", "password": password_of("erin"), "next": "/queue"}, csrf=False,
            headers=headers)
        assert status == 403 and "Set-Cookie" not in resp.headers, headers
    _, page = await visitor.get("/")
    assert "Sign out <bdi>dave</bdi>" in page
    own = {"Origin": visitor.base, "Sec-Fetch-Site": "same-origin"}
    status, _, resp = await visitor.post(
        "/signin", {"name": "erin", "password": password_of("erin"), "next": "/queue"}, csrf=False, headers=own)
    assert status == 303


async def test_a_control_character_in_next_goes_to_the_queue(pages: Pages) -> None:
    """DEL (0x7f) cannot go in a Location header: it is refused like the other control characters
    (before, the answer could not be written and the connection was dropped)."""
    visitor = await pages.visitor()
    status, _, resp = await visitor.post(
        "/signin", {"name": "carol", "password": password_of("carol"), "next": "/\x7f"}, csrf=False)
    assert (status, resp.headers["Location"]) == (303, "/queue")
    async with visitor.session.get(visitor.base + "/signin", params={"next": "/\x7f"},
                                   allow_redirects=False) as answer:
        assert (answer.status, answer.headers["Location"]) == (303, "/queue")


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
OOB = "urn:ietf:wg:oauth:2.0:oob"


async def test_a_new_password_signs_out_the_apps_signed_in_with_the_old_one(pages: Pages) -> None:
    """Someone who learnt alice's password signs an app in with it (the Mastodon OAuth sign-in);
    once alice's password is changed, that app's token stops at once (401) and the log says
    ``client.revoked`` (before, the token lived on until someone thought to revoke it)."""
    gw = pages.gateway
    visitor = await pages.visitor()
    session, base = visitor.session, visitor.base
    async with session.post(base + "/api/v1/apps", json={"client_name": "Leaky", "redirect_uris": OOB,
                                                         "scopes": "read write"}) as answer:
        app = await answer.json()
    fields = {"response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB, "scope": "read write"}
    async with session.get(base + "/oauth/authorize", params=fields) as answer:
        csrf = _CSRF.search(await answer.text())
    assert csrf is not None
    async with session.post(base + "/oauth/authorize", data={**fields, "csrf": csrf.group(1), "name": "alice",
                                                             "password": password_of("alice")}) as answer:
        csrf = _CSRF.search(await answer.text())
    assert csrf is not None
    async with session.post(base + "/oauth/authorize", data={**fields, "csrf": csrf.group(1), "decision": "allow",
                                                             "account": "direct"}) as answer:
        code = re.search(r'<code id="code">([^<]+)</code>', await answer.text())
    assert code is not None
    async with session.post(base + "/oauth/token", data={
            "grant_type": "authorization_code", "code": code.group(1), "client_id": app["client_id"],
            "client_secret": app["client_secret"], "redirect_uri": OOB}) as answer:
        bearer = {"Authorization": f"Bearer {(await answer.json())['access_token']}"}
    async with session.get(base + "/api/v1/accounts/verify_credentials", headers=bearer) as answer:
        assert answer.status == 200

    ended = await gw.app[PEOPLE].set_password("alice", "alice-new-password-after-a-leak", appender=gw.app[APPENDER])
    assert ended == (1, 1)
    async with session.get(base + "/api/v1/accounts/verify_credentials", headers=bearer) as answer:
        assert answer.status == 401
    async with session.post(base + "/api/v1/statuses", json={"status": "after the change"}, headers=bearer) as answer:
        assert answer.status == 401
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries ORDER BY idx")
    revoked = [json.loads(bytes(r["entry"])) for r in rows]
    assert [(e["account"], e["data"]) for e in revoked if e["type"] == "client.revoked"] == [
        ("direct", {"client": "Leaky", "reason": "alice's password changed"})]


async def test_a_sign_out_sent_from_another_site_is_refused(pages: Pages) -> None:
    """Another site's form to /signout comes without the Lax cookie, so with no session to ask a
    CSRF value of: refused (403) with no word to forget the cookie (before, 303 and a Set-Cookie
    that signed the browser out)."""
    visitor = await pages.visitor()
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}, {"Origin": "null"}):
        status, _, resp = await visitor.post("/signout", {}, csrf=False, headers=headers)
        assert (status, "Set-Cookie" in resp.headers) == (403, False), headers
    dave = await pages.person("dave")
    own = {"Origin": dave.base, "Sec-Fetch-Site": "same-origin"}
    status, _, resp = await dave.post("/signout", {}, headers=own)
    assert status == 303
    assert (await dave.get("/queue"))[0] == 303


async def test_signing_in_again_ends_the_browsers_session_before(pages: Pages) -> None:
    """dave leaves his session open on a shared computer and erin signs in there: dave's session
    ends on the server, not only in that browser's cookie jar, so a copy of his cookie (taken
    before, or planted by whoever fixed it) is signed in as no one. Before: it lived on, as dave,
    until it expired (the OAuth sign-in already ended it)."""
    browser = await pages.person("dave")
    [daves] = [c.value for c in browser.session.cookie_jar if c.key == "byline_session"]
    status, _, _ = await browser.post("/signin", {"name": "erin", "password": password_of("erin")}, csrf=False)
    assert status == 303
    _, page = await browser.get("/")
    assert "Sign out <bdi>erin</bdi>" in page
    copy = await pages.visitor()
    async with copy.session.get(pages.base + "/queue", allow_redirects=False,
                                headers={"Cookie": f"byline_session={daves}"}) as answer:
        assert (answer.status, answer.headers.get("Location")) == (303, "/signin?next=/queue")
    assert await pages.gateway.app[PEOPLE].session(daves) is None


async def test_a_wrong_password_leaves_the_session_as_it_was(pages: Pages) -> None:
    """A sign-in that fails ends nothing: the person signed in in that browser stays signed in."""
    browser = await pages.person("dave")
    status, _, _ = await browser.post("/signin", {"name": "erin", "password": "not-erins-password"}, csrf=False)
    assert status == 401
    _, page = await browser.get("/")
    assert "Sign out <bdi>dave</bdi>" in page


def _jar_less() -> aiohttp.ClientSession:
    """A client that sends only the cookies a test names: Secure ones included, over the plain
    http a TLS-ending proxy would speak to the gateway."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())


async def _queue_as(client: aiohttp.ClientSession, base: str, cookies: str) -> tuple[int, str]:
    """The queue page asked for with ``cookies``: its status, and the page or where it sends one."""
    async with client.get(base + "/queue", headers={"Cookie": cookies}, allow_redirects=False) as answer:
        return answer.status, answer.headers.get("Location") or await answer.text()


async def test_behind_tls_the_session_cookie_is_a_host_cookie(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """Behind TLS (an https public URL), the session cookie is ``__Host-byline_session``: Secure,
    Path=/ and no Domain, which a browser takes only from this very host over TLS. A plainly named
    cookie, which a page on a sibling subdomain or a man in the middle of plain http can plant, is
    not read, even holding a live session of someone else's. Before: the plain name, read whoever
    had set it."""
    async with started_gateway(db_url, policy_dir, clock, public_url="https://byline.example") as gw:
        for name in ("dave", "erin"):
            await gw.app[PEOPLE].add(name, password_of(name))
        base = str(gw.client.make_url("")).rstrip("/")
        async with _jar_less() as client:
            async with client.post(base + "/signin", data={"name": "dave", "password": password_of("dave")},
                                   allow_redirects=False) as answer:
                assert answer.status == 303
                cookies = answer.cookies
            assert sorted(cookies) == [TLS_DEVICE_COOKIE, TLS_SESSION_COOKIE]  # no plainly named one
            daves = cookies[TLS_SESSION_COOKIE]
            assert (daves["secure"], daves["path"], daves["domain"], daves["httponly"], daves["samesite"]) == (
                True, "/", "", True, "Lax")
            status, page = await _queue_as(client, base, f"{TLS_SESSION_COOKIE}={daves.value}")
            assert status == 200 and "Sign out <bdi>dave</bdi>" in page
            erins = (await gw.app[PEOPLE].sign_in("erin", password_of("erin"), client="203.0.113.9")).cookie
            assert await _queue_as(client, base, f"{SESSION_COOKIE}={erins}") == (303, "/signin?next=/queue")


async def test_behind_tls_a_plainly_named_session_cookie_ends_at_sign_in_and_sign_out(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """A browser that holds a plainly named session cookie behind TLS (from before the gateway
    had an https address, or planted there) never signs in with it; signing in, and signing out,
    end that session on the server and have the browser forget the cookie, and signing out forgets
    the ``__Host-`` one with the Secure flag a browser needs to take the word."""
    async with started_gateway(db_url, policy_dir, clock, public_url="https://byline.example") as gw:
        people = gw.app[PEOPLE]
        await people.add("dave", password_of("dave"))
        base = str(gw.client.make_url("")).rstrip("/")
        before = (await people.sign_in("dave", password_of("dave"), client="203.0.113.9")).cookie
        async with _jar_less() as client:
            async with client.post(base + "/signin", data={"name": "dave", "password": password_of("dave")},
                                   headers={"Cookie": f"{SESSION_COOKIE}={before}"}, allow_redirects=False) as answer:
                assert answer.status == 303
                cookies = answer.cookies
            assert (cookies[SESSION_COOKIE].value, cookies[SESSION_COOKIE]["max-age"]) == ("", "0")
            assert await people.session(before) is None
            now = cookies[TLS_SESSION_COOKIE].value
            leftover = (await people.sign_in("dave", password_of("dave"), client="203.0.113.9")).cookie
            both = f"{TLS_SESSION_COOKIE}={now}; {SESSION_COOKIE}={leftover}"
            status, page = await _queue_as(client, base, both)
            csrf = _CSRF.search(page)
            assert status == 200 and csrf is not None
            async with client.post(base + "/signout", data={"csrf": csrf.group(1)}, headers={"Cookie": both},
                                   allow_redirects=False) as answer:
                assert answer.status == 303
                cookies = answer.cookies
            assert {name: (cookies[name].value, cookies[name]["max-age"]) for name in cookies} == {
                TLS_SESSION_COOKIE: ("", "0"), SESSION_COOKIE: ("", "0")}
            assert (cookies[TLS_SESSION_COOKIE]["secure"], cookies[TLS_SESSION_COOKIE]["path"]) == (True, "/")
            assert (await people.session(now), await people.session(leftover)) == (None, None)
