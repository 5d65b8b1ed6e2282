"""Device cookies (OWASP): wrong passwords sent against a person's name from elsewhere do not
keep that person's own browser from signing in; without the cookie a name is limited as before;
a cookie of someone else's, altered or expired is no cookie; a cookie's own wrong passwords
lock it. Over HTTP, on both databases, each client at an address of its own (through a trusted
proxy's ``X-Forwarded-For``)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

from gateway.appkeys import APPENDER, DB, PEOPLE
from gateway.clock import ManualClock
from gateway.services.devices import DeviceCookies
from gateway.services.keys import SIGNIN_FORMS, gateway_key
from tests.clients.signin import form_of
from tests.conftest import Gateway, started_gateway
from tests.pages.conftest import password_of

DEVICE = "byline_device"
TLS_DEVICE = "__Host-byline_device"
ATTACKER = "198.51.100.66"
HOME = "203.0.113.10"
"""The address of the person's own browser."""


@asynccontextmanager
async def _gateway(db_url: str, policy_dir: Path, clock: ManualClock, **extra: str
                   ) -> AsyncIterator[tuple[Gateway, aiohttp.ClientSession, str]]:
    """A gateway behind a trusted proxy (so each test client names its address) whose people
    dave and erin can sign in, a client that sends only the cookies a test names, and the base."""
    async with started_gateway(db_url, policy_dir, clock, trusted_proxies="127.0.0.1/32, ::1", **extra) as gw:
        for name in ("dave", "erin"):
            await gw.app[PEOPLE].add(name, password_of(name))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as client:
            yield gw, client, str(gw.client.make_url("")).rstrip("/")


async def _sign_in(client: aiohttp.ClientSession, base: str, name: str, password: str, *, address: str,
                   device: str | None = None, cookie: str = DEVICE) -> tuple[int, str | None]:
    """A sign-in on the page from ``address``, with ``device`` as the device cookie: the status,
    and the device cookie the answer gives (None for none)."""
    headers = {"X-Forwarded-For": address}
    if device is not None:
        headers["Cookie"] = f"{cookie}={device}"
    async with client.post(base + "/signin", data={"name": name, "password": password}, headers=headers,
                           allow_redirects=False) as answer:
        await answer.read()
        given = answer.cookies.get(cookie)
        return answer.status, given.value if given is not None else None


async def _lock(client: aiohttp.ClientSession, base: str, name: str) -> None:
    """Ten wrong passwords for ``name`` from the attacker's address: the eleventh try, the right
    password, is refused there."""
    statuses = [(await _sign_in(client, base, name, f"wrong-guess-{n}", address=ATTACKER))[0] for n in range(10)]
    statuses.append((await _sign_in(client, base, name, password_of(name), address=ATTACKER))[0])
    assert statuses == [401] * 10 + [429]


async def _device_of(client: aiohttp.ClientSession, base: str, name: str, *, address: str = HOME) -> str:
    """``name`` signs in from ``address``: the device cookie their browser is given ("" for none,
    which the tests then see fail to let them in)."""
    status, device = await _sign_in(client, base, name, password_of(name), address=address)
    assert status == 303
    return device or ""


async def test_guesses_from_elsewhere_do_not_keep_the_persons_own_browser_out(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """dave signed in from his browser before; someone sends ten wrong passwords for "dave" from
    another address, which locks the name; dave's browser, sending its device cookie, signs in
    with his password (303, and a fresh device cookie). Before: 429, minute after minute, for as
    long as anyone kept guessing."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        device = await _device_of(client, base, "dave")
        await _lock(client, base, "dave")
        status, fresh = await _sign_in(client, base, "dave", password_of("dave"), address=HOME, device=device)
        assert (status, fresh is not None and fresh != device) == (303, True)


async def test_the_device_cookie_is_httponly_strict_and_kept_to_the_sign_in_forms(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """Over plain http the device cookie is ``byline_device``: HttpOnly, SameSite=Strict, not
    Secure (a browser would refuse it over http), 180 days, set for each of the two sign-in
    forms' paths and no other; the OAuth form's password sign-in sets it as the page's does."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        async with client.post(base + "/signin", data={"name": "dave", "password": password_of("dave")},
                               headers={"X-Forwarded-For": HOME}, allow_redirects=False) as answer:
            assert answer.status == 303
            set_cookies = [line for line in answer.headers.getall("Set-Cookie") if line.startswith(DEVICE + "=")]
        assert len(set_cookies) == 2, set_cookies
        paths = set()
        for line in set_cookies:
            attributes = {part.strip().partition("=")[0].lower(): part.strip().partition("=")[2]
                          for part in line.split(";")[1:]}
            assert attributes["samesite"] == "Strict" and "httponly" in attributes and "secure" not in attributes
            assert int(attributes["max-age"]) == 180 * 24 * 3600 and "domain" not in attributes
            paths.add(attributes["path"])
        assert paths == {"/signin", "/oauth/authorize"}


async def test_without_a_device_cookie_the_name_stays_locked(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """A browser that holds no device cookie for dave (a new one, at a new address) is still
    refused, the right password included, once the name has had its ten failures: the guard
    against guesses spread over many addresses is as strong as before."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        await _lock(client, base, "dave")
        assert await _sign_in(client, base, "dave", password_of("dave"), address="203.0.113.77") == (429, None)
        assert await _sign_in(client, base, "dave", password_of("dave"), address="203.0.113.78",
                              device="") == (429, None)


def _altered(device: str, part: int, value: str) -> str:
    parts = device.split(":")
    parts[part] = value
    return ":".join(parts)


async def _none_lets_erin_past(client: aiohttp.ClientSession, base: str, forged: dict[str, str], erins: str, *,
                               first: int) -> None:
    """With erin's name locked, each ``forged`` device cookie, sent with her right password from
    an address of its own (from 203.0.113.``first`` on), is refused (429); her own still signs
    her in (303), from the address after them."""
    for n, (what, device) in enumerate(forged.items()):
        status, _ = await _sign_in(client, base, "erin", password_of("erin"), address=f"203.0.113.{first + n}",
                                   device=device)
        assert status == 429, what
    assert (await _sign_in(client, base, "erin", password_of("erin"), address=f"203.0.113.{first + 10}",
                           device=erins))[0] == 303


async def test_another_persons_altered_or_expired_device_cookie_gives_no_exemption(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """With erin's name locked, none of these lets a browser past it: dave's own device cookie,
    dave's with "erin" written in, erin's with its MAC changed, its nonce changed or its time
    moved on, nor erin's own once 180 days have gone by. erin's own, unaltered, does."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        daves = await _device_of(client, base, "dave", address="203.0.113.20")
        erins = await _device_of(client, base, "erin", address="203.0.113.21")
        await _lock(client, base, "erin")
        mac, nonce = erins.split(":")[3], erins.split(":")[2]
        forged = {
            "dave's": daves,
            "dave's, renamed": _altered(daves, 0, "erin"),
            "erin's, another MAC": _altered(erins, 3, ("A" if mac[0] != "A" else "B") + mac[1:]),
            "erin's, another nonce": _altered(erins, 2, ("x" if nonce[0] != "x" else "y") + nonce[1:]),
            "erin's, a later time": _altered(erins, 1, str(int(erins.split(":")[1]) + 1)),
            "erin's, cut short": erins[:-1],
            "erin's, with more": erins + ":more",
        }
        await _none_lets_erin_past(client, base, forged, erins, first=30)
        clock.advance(timedelta(days=180))
        assert (await _sign_in(client, base, "erin", password_of("erin"), address="203.0.113.41",
                               device=erins))[0] == 429


async def test_a_device_cookie_under_another_key_or_from_the_future_gives_no_exemption(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """With erin's name locked, a cookie for erin well formed and MACed, but under another
    gateway's key, under this gateway's key for its sign-in forms (a key a purpose), or under
    this gateway's device key and dated more than a minute ahead of its clock, lets no browser
    past it: each is refused (429) as no cookie is. erin's own does (303)."""
    async with _gateway(db_url, policy_dir, clock) as (gw, client, base):
        erins = await _device_of(client, base, "erin", address="203.0.113.21")
        await _lock(client, base, "erin")
        devices = gw.app[PEOPLE].devices
        assert devices is not None
        forged = {
            "another gateway's key": DeviceCookies(key=secrets.token_bytes(32), clock=clock).issue("erin"),
            "the sign-in form's key": DeviceCookies(key=await gateway_key(gw.app[DB], SIGNIN_FORMS),
                                                    clock=clock).issue("erin"),
            "dated ahead": DeviceCookies(key=devices.key, clock=ManualClock(clock.now() + timedelta(minutes=2))
                                         ).issue("erin"),
        }
        await _none_lets_erin_past(client, base, forged, erins, first=70)


async def test_wrong_passwords_with_a_device_cookie_lock_that_cookie(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """A stolen device cookie guesses no faster: after ten wrong passwords with it, it is refused
    (429) from any address, the right password included. Its failures counted against it, not
    against the name: a browser without it signs in as dave meanwhile (before: the name was
    locked by them, 429)."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        device = await _device_of(client, base, "dave")
        statuses = [(await _sign_in(client, base, "dave", f"wrong-guess-{n}", address=ATTACKER, device=device))[0]
                    for n in range(10)]
        assert statuses == [401] * 10
        assert (await _sign_in(client, base, "dave", password_of("dave"), address="203.0.113.50",
                               device=device))[0] == 429
        assert (await _sign_in(client, base, "dave", password_of("dave"), address="203.0.113.51"))[0] == 303


async def test_the_device_cookie_holds_no_secret_and_outlives_signing_out_and_a_new_password(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """The device cookie is dave's name, a time, a nonce and a MAC: not his password, nor his
    session's cookie. It names the browser, not a session: after dave signs out, and after his
    password is changed (``byline user set-password``), it still lets his browser past a
    locked name, with the new password."""
    async with _gateway(db_url, policy_dir, clock) as (gw, client, base):
        async with client.post(base + "/signin", data={"name": "dave", "password": password_of("dave")},
                               headers={"X-Forwarded-For": HOME}, allow_redirects=False) as answer:
            assert answer.status == 303
            device, session = answer.cookies[DEVICE].value, answer.cookies["byline_session"].value
        name, issued, nonce, mac = device.split(":")
        assert (name, int(issued)) == ("dave", int(clock.now().timestamp()))
        assert len(nonce) >= 22 and len(mac) == 43
        assert password_of("dave") not in device and session not in device
        headers = {"X-Forwarded-For": HOME, "Cookie": f"byline_session={session}; {DEVICE}={device}"}
        async with client.get(base + "/queue", headers=headers) as page:
            csrf = form_of(await page.text())[0]["csrf"]
        async with client.post(base + "/signout", data={"csrf": csrf}, headers=headers,
                               allow_redirects=False) as answer:
            assert answer.status == 303 and DEVICE not in answer.cookies
        await gw.app[PEOPLE].set_password("dave", "daves-brand-new-password", appender=gw.app[APPENDER])
        await _lock(client, base, "dave")
        assert (await _sign_in(client, base, "dave", "daves-brand-new-password", address=HOME,
                               device=device))[0] == 303


async def test_behind_tls_the_device_cookie_is_a_host_cookie(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """Behind TLS the device cookie is ``__Host-byline_device`` (Secure, Path=/, no Domain: a
    sibling subdomain cannot set one in front of the person's) and only that name is read."""
    async with _gateway(db_url, policy_dir, clock, public_url="https://byline.example") as (_gw, client, base):
        async with client.post(base + "/signin", data={"name": "dave", "password": password_of("dave")},
                               headers={"X-Forwarded-For": HOME}, allow_redirects=False) as answer:
            assert answer.status == 303
            cookie = answer.cookies[TLS_DEVICE]
        assert DEVICE not in answer.cookies
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"], cookie["domain"]) == (
            True, True, "Strict", "/", "")
        await _lock(client, base, "dave")
        assert (await _sign_in(client, base, "dave", password_of("dave"), address=HOME, device=cookie.value,
                               cookie=DEVICE))[0] == 429
        assert (await _sign_in(client, base, "dave", password_of("dave"), address=HOME, device=cookie.value,
                               cookie=TLS_DEVICE))[0] == 303


async def test_the_oauth_sign_in_form_gives_and_takes_the_device_cookie(
    db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """An app's sign-in form (``/oauth/authorize``), signed in with a name and password, gives the
    browser its device cookie; with the name locked by guesses from elsewhere, that browser signs
    in there again (step two, 200), and one without it is refused (429)."""
    async with _gateway(db_url, policy_dir, clock) as (_gw, client, base):
        async with client.post(base + "/api/v1/apps", json={
                "client_name": "Poster", "redirect_uris": "urn:ietf:wg:oauth:2.0:oob", "scopes": "read"}) as answer:
            client_id = (await answer.json())["client_id"]
        query = urlencode({"client_id": client_id, "redirect_uri": "urn:ietf:wg:oauth:2.0:oob",
                           "response_type": "code", "scope": "read"})

        async def sign_in(address: str, device: str | None) -> tuple[int, str | None]:
            headers = {"X-Forwarded-For": address}
            async with client.get(f"{base}/oauth/authorize?{query}", headers=headers) as page:
                fields, _ = form_of(await page.text())
                nonce = page.cookies["byline_signin"].value
            cookies = f"byline_signin={nonce}" + (f"; {DEVICE}={device}" if device else "")
            async with client.post(f"{base}/oauth/authorize", headers={**headers, "Cookie": cookies},
                                   data={**fields, "name": "dave", "password": password_of("dave")}) as step:
                await step.read()
                given = step.cookies.get(DEVICE)
                return step.status, given.value if given is not None else None

        status, device = await sign_in(HOME, None)
        assert status == 200 and device is not None
        await _lock(client, base, "dave")
        assert (await sign_in("203.0.113.60", None))[0] == 429
        status, fresh = await sign_in(HOME, device)
        assert (status, fresh is not None) == (200, True)
