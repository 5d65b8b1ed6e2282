"""The OAuth sign-in with the pages' own sign-in: a name and password, or a page session
already open (step one skipped), as a browser without scripts and Mastodon.py meet it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from http.cookies import Morsel
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import ClientSession, CookieJar
from mastodon import Mastodon, MastodonAPIError, MastodonUnauthorizedError

from gateway.appkeys import DB, IDENTITY, PEOPLE, SETTINGS
from gateway.services.identity import hash_token
from tests.clients.signin import code_of, form_of, sign_in_with_password
from tests.clients.world import World
from tests.conftest import Gateway, started_gateway

OOB = "urn:ietf:wg:oauth:2.0:oob"
SCOPES = ["read", "write"]
PASSWORDS = {"alice": "alice-long-password", "bob": "bob-long-password", "carol": "carol-long-password"}


@pytest.fixture
async def people(world: World) -> AsyncIterator[World]:
    """The world, with alice, bob and carol able to sign in to the pages."""
    for name, password in PASSWORDS.items():
        await world.gateway.app[PEOPLE].add(name, password)
    yield world


@pytest.fixture
async def browser() -> AsyncIterator[ClientSession]:
    """A browser without scripts: its own cookie jar (kept although the gateway is addressed by IP)."""
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as session:
        yield session


async def _app(world: World, *, scopes: list[str] = SCOPES, name: str = "Poster") -> tuple[Mastodon, str]:
    client_id, client_secret = await world.run(Mastodon.create_app, name, scopes=scopes, redirect_uris=OOB,
                                               api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    url = await world.run(app.auth_request_url, scopes=scopes, redirect_uris=OOB, allow_http=True)
    return app, url


async def _exchange(world: World, app: Mastodon, code: str, scopes: list[str] = SCOPES) -> str:
    token: str = await world.run(app.log_in, code=code, scopes=scopes, redirect_uri=OOB, allow_http=True)
    return token


async def _signed_in(world: World, browser: ClientSession, name: str) -> str:
    """Sign ``name`` in to the pages at /signin; their session cookie."""
    async with browser.post(f"{world.base}/signin", data={"name": name, "password": PASSWORDS[name]},
                            allow_redirects=False) as answer:
        assert answer.status == 303, await answer.text()
        return answer.cookies["byline_session"].value


async def _is_signed_in(world: World, browser: ClientSession) -> bool:
    """Whether the browser's page session is live (the sign-in page sends a signed-in person on)."""
    async with browser.get(f"{world.base}/signin", allow_redirects=False) as answer:
        return answer.status == 303


async def test_mastodon_py_app_signed_in_with_a_password(people: World, browser: ClientSession) -> None:
    """Name and password on the OAuth page: the page session opens (HttpOnly, SameSite=Lax), the
    app's code gives a token that posts as the account, with no parent token (it lives until
    revoked), and revoking it ends it."""
    world = people
    app, url = await _app(world)
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    async with browser.post(f"{world.base}/oauth/authorize",
                            data={**fields, "name": "carol", "password": PASSWORDS["carol"]}) as step:
        assert step.status == 200
        text = await step.text()
        cookie = step.cookies  # the page session, and the device cookie
    assert "Signed in as <strong><bdi>carol</bdi></strong>" in text
    assert PASSWORDS["carol"] not in text
    session = cookie["byline_session"]
    assert (session["httponly"], session["samesite"], session["secure"], session["path"]) == (True, "Lax", "", "/")
    assert await _is_signed_in(world, browser)
    fields, accounts = form_of(text)
    assert (accounts, "ticket" in fields) == (["cosigned", "managed", "masto"], False)
    async with browser.post(f"{world.base}/oauth/authorize",
                            data={**fields, "account": "cosigned", "decision": "allow"}) as done:
        code = code_of(done.status, done.headers.get("Location"), await done.text())

    access_token = await _exchange(world, app, code)
    status = await world.run(app.status_post, "Signed in with a password")
    assert (status.byline.state, status.byline.author, status.application.name) == ("held", "carol", "Poster")
    async with world.gateway.app[DB].read() as txn:
        stored = await txn.fetchall("SELECT account, parent_hash FROM tokens WHERE token_hash = ?",
                                    hash_token(access_token))
    assert [(r["account"], r["parent_hash"]) for r in stored] == [("cosigned", None)]
    await world.run(app.revoke_access_token, allow_http=True)
    with pytest.raises(MastodonUnauthorizedError):
        await world.run(Mastodon(access_token=access_token, api_base_url=world.base).status_post, "After revoking")


async def test_a_page_session_skips_step_one(people: World, browser: ClientSession) -> None:
    """Signed in to the pages already, the person is shown step two at once (no name, password
    or token asked), authorizes, and the app acts as them; "Sign in as someone else" shows step one."""
    world = people
    await _signed_in(world, browser, "bob")
    app, url = await _app(world)
    async with browser.get(url) as page:
        assert page.status == 200
        text = await page.text()
        assert "byline_signin" not in page.cookies  # no nonce: the form is bound to the session
    assert "Signed in as <strong><bdi>bob</bdi></strong>" in text
    assert 'name="password"' not in text and 'name="token"' not in text
    fields, accounts = form_of(text)
    assert accounts == ["delayed", "managed"]
    async with browser.post(f"{world.base}/oauth/authorize",
                            data={**fields, "account": "delayed", "decision": "allow"}) as done:
        code = code_of(done.status, done.headers.get("Location"), await done.text())
    await _exchange(world, app, code)
    assert (await world.run(app.account_verify_credentials)).acct == "bob"
    assert (await world.run(app.status_post, "Through the session")).byline.state == "scheduled"

    switch = urlsplit(text.split('<a href="', 1)[1].split('"', 1)[0].replace("&amp;", "&"))
    assert parse_qs(switch.query)["force_login"] == ["true"]
    async with browser.get(f"{world.base}{switch.path}?{switch.query}") as page:
        again = await page.text()
    assert 'name="password"' in again and 'name="token"' in again and "Signed in as" not in again
    # Signing in as someone else there ends bob's session and opens carol's.
    fields, _ = form_of(again)
    async with browser.post(f"{world.base}/oauth/authorize",
                            data={**fields, "name": "carol", "password": PASSWORDS["carol"]}) as step:
        assert "Signed in as <strong><bdi>carol</bdi></strong>" in await step.text()
    async with browser.get(url) as page:
        assert "Signed in as <strong><bdi>carol</bdi></strong>" in await page.text()


async def test_the_page_says_where_the_code_goes(people: World, browser: ClientSession) -> None:
    """An app's name is whatever its maker registered (anyone may register one named as a known
    app), and a person signed in to the pages authorizes it in one click: every step names where
    its code goes, the host of its redirect URI (or that it is shown here), so a look-alike app
    sending it to another site can be told, a user name before its host left out. (Before,
    the pages named the app alone.)"""
    world = people
    async with browser.post(f"{world.base}/api/v1/apps", json={
            "client_name": "Byline Queue", "redirect_uris": "https://byline.app@evil.example:8443/byline?x=1",
            "scopes": "read write"}) as registered:
        assert registered.status == 200
        client_id = (await registered.json())["client_id"]
    url = (f"{world.base}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "scope": "read write",
        "redirect_uri": "https://byline.app@evil.example:8443/byline?x=1"}))
    destination = "Its code goes to <strong><bdi>https://evil.example:8443</bdi></strong>"
    async with browser.get(url) as page:  # step one
        assert destination in await page.text()
    await _signed_in(world, browser, "bob")
    async with browser.get(url) as page:  # step two, straight away
        assert destination in await page.text()
    _, oob = await _app(world)
    async with browser.get(oob) as page:
        assert "Its code is shown on this page, for you to copy into the app" in await page.text()


async def test_a_look_alike_host_is_named_as_browsers_name_it(people: World, browser: ClientSession) -> None:
    """A redirect URI whose host only looks like a known one (a Cyrillic "о" in "ivоry.app") is
    named in its ASCII form, as browsers show such a host, so it cannot pass for the app's own.
    (Before, the page showed it in the letters that made it look alike.)"""
    world = people
    async with browser.post(f"{world.base}/api/v1/apps", json={
            "client_name": "Ivory", "redirect_uris": "https://iv\u043ery.app:8443/cb", "scopes": "read"}) as registered:
        assert registered.status == 200
        client_id = (await registered.json())["client_id"]
    url = (f"{world.base}/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": client_id, "scope": "read",
        "redirect_uri": "https://iv\u043ery.app:8443/cb"}))
    async with browser.get(url) as page:
        text = await page.text()
    assert "Its code goes to <strong><bdi>https://xn--ivry-65d.app:8443</bdi></strong>" in text
    assert "<bdi>https://iv\u043ery" not in text


async def test_mastodon_force_login_asks_again(people: World, browser: ClientSession) -> None:
    """An app that asks for force_login (Mastodon's parameter) gets step one even with a session."""
    world = people
    await _signed_in(world, browser, "alice")
    app, _ = await _app(world)
    url = await world.run(app.auth_request_url, scopes=SCOPES, redirect_uris=OOB, force_login=True, allow_http=True)
    async with browser.get(url) as page:
        text = await page.text()
    assert 'name="password"' in text and "Signed in as" not in text


async def test_wrong_passwords_are_401_and_throttled(people: World, browser: ClientSession) -> None:
    """A wrong password is 401 (said in the page, no session opened); wrong passwords and wrong
    tokens count together, and after ten the right password gets 429 with Retry-After."""
    world = people
    _, url = await _app(world)
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    statuses = []
    for n in range(5):
        async with browser.post(f"{world.base}/oauth/authorize",
                                data={**fields, "name": "alice", "password": f"wrong-password-{n}"}) as step:
            statuses.append(step.status)
            text = await step.text()
            assert "byline_session" not in step.cookies
    assert 'role="alert" id="error">That name and password do not match.' in text
    assert 'value="alice"' in text and 'aria-invalid="true"' in text
    for n in range(5):
        async with browser.post(f"{world.base}/oauth/authorize", data={**fields, "token": f"byl_guess{n}"}) as step:
            statuses.append(step.status)
    assert statuses == [401] * 10
    async with browser.post(f"{world.base}/oauth/authorize",
                            data={**fields, "name": "alice", "password": PASSWORDS["alice"]}) as step:
        assert step.status == 429 and int(step.headers["Retry-After"]) > 0
        assert "too many failed sign-in attempts" in await step.text()
        assert "byline_session" not in step.cookies
    assert not await _is_signed_in(world, browser)


async def test_empty_fields_are_asked_again(people: World, browser: ClientSession) -> None:
    """A name without a password is 422, asked again, and counts as no attempt."""
    world = people
    _, url = await _app(world)
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    async with browser.post(f"{world.base}/oauth/authorize", data={**fields, "name": "alice", "password": ""}) as step:
        assert step.status == 422
        assert "Enter your name and your password." in await step.text()


async def test_forged_forms_are_refused(people: World, browser: ClientSession) -> None:
    """403 and nothing opened for: a password with a forged CSRF value; step two bound to one
    request posted for another; step two bound to one person's session posted with another's;
    and a session's form that tries to carry a token."""
    world = people
    _, url = await _app(world)
    other, _ = await _app(world, name="Other")
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    async with browser.post(f"{world.base}/oauth/authorize", data={
            **fields, "csrf": "forged", "name": "alice", "password": PASSWORDS["alice"]}) as forged:
        assert forged.status == 403 and "This form has expired" in await forged.text()
        assert "byline_session" not in forged.cookies
    assert not await _is_signed_in(world, browser)

    await _signed_in(world, browser, "alice")
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    for change in ({"client_id": other.client_id}, {"scope": "read"}, {"state": "other"}):
        async with browser.post(f"{world.base}/oauth/authorize", data={
                **fields, **change, "account": "direct", "decision": "allow"}, allow_redirects=False) as moved:
            assert moved.status == 403, change
    async with browser.post(f"{world.base}/oauth/authorize", data={
            **fields, "token": world.gateway.tokens["alice"], "account": "direct", "decision": "allow"}) as carried:
        assert carried.status == 403

    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as bobs:
        await _signed_in(world, bobs, "bob")
        async with bobs.post(f"{world.base}/oauth/authorize", data={
                **fields, "account": "direct", "decision": "allow"}, allow_redirects=False) as stolen:
            assert stolen.status == 403
    async with world.gateway.app[DB].read() as txn:
        assert await txn.fetchall("SELECT code_hash FROM oauth_codes") == []


async def test_a_session_cannot_authorize_an_account_not_its_own(people: World, browser: ClientSession) -> None:
    """Step two of a session for an account the person has no role on: 403, no code."""
    world = people
    await _signed_in(world, browser, "alice")
    _, url = await _app(world)
    async with browser.get(url) as page:
        fields, _ = form_of(await page.text())
    async with browser.post(f"{world.base}/oauth/authorize", data={
            **fields, "account": "managed", "decision": "allow"}, allow_redirects=False) as refused:
        assert refused.status == 403
        assert 'role="alert"' in await refused.text()
    async with world.gateway.app[DB].read() as txn:
        assert await txn.fetchall("SELECT code_hash FROM oauth_codes") == []


async def test_a_session_denies_the_app(people: World, browser: ClientSession) -> None:
    """Deny from a session's step two goes back to the app with access_denied and its state."""
    world = people
    await _signed_in(world, browser, "alice")
    client_id, _ = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES,
                                   redirect_uris="https://app.example/cb", api_base_url=world.base)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": "https://app.example/cb",
                       "scope": "read", "state": "s9"})
    async with browser.get(f"{world.base}/oauth/authorize?{query}") as page:
        fields, _ = form_of(await page.text())
    async with browser.post(f"{world.base}/oauth/authorize", data={**fields, "decision": "deny"},
                            allow_redirects=False) as denied:
        assert denied.status == 302
        answer = parse_qs(urlsplit(denied.headers["Location"]).query)
    assert (answer["error"], answer["state"], "code" in answer) == (["access_denied"], ["s9"], False)


async def test_a_password_token_is_scoped_and_outlives_the_session(people: World, browser: ClientSession) -> None:
    """A read-only app signed in with a password reads but cannot post (Mastodon's scope error);
    signing out of the pages leaves the app's token working; revoking it as an operator does ends it."""
    world = people
    app, url = await _app(world, scopes=["read"], name="Reader")
    code = await sign_in_with_password(url, name="alice", password=PASSWORDS["alice"], account="direct",
                                       session=browser)
    token = await _exchange(world, app, code, scopes=["read"])
    assert (await world.run(app.account_verify_credentials)).acct == "alice"
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(app.status_post, "Not allowed")
    assert caught.value.args[1:4:2] == (403, "This action is outside the authorized scopes")
    assert (await world.gateway.call("alice", "GET", "/v1/posts?account=direct"))[1]["posts"] == []

    async with browser.get(f"{world.base}/") as signed:  # every page carries the sign-out form
        csrf = form_of(await signed.text())[0]["csrf"]
    async with browser.post(f"{world.base}/signout", data={"csrf": csrf}, allow_redirects=False) as out:
        assert out.status == 303
    assert not await _is_signed_in(world, browser)
    assert (await world.run(app.account_verify_credentials)).acct == "alice"
    assert await world.gateway.app[IDENTITY].revoke(token)
    with pytest.raises(MastodonUnauthorizedError):
        await world.run(app.account_verify_credentials)


@contextlib.asynccontextmanager
async def _sign_in_behind_tls(world: World, db_url: str) -> AsyncIterator[tuple[Gateway, dict[str, str], Morsel[str]]]:
    """A gateway behind TLS (an https public URL) with alice, and an app's sign-in page opened on
    it: the gateway, the page's form fields and its nonce cookie."""
    settings = world.gateway.app[SETTINGS]
    async with started_gateway(db_url, settings.policy_dir, world.gateway.clock,
                               public_url="https://byline.example") as gw:
        await gw.app[PEOPLE].add("alice", PASSWORDS["alice"])
        status, app = await gw.call(None, "POST", "/api/v1/apps", data={
            "client_name": "Reach", "redirect_uris": OOB, "scopes": "read"})
        assert status == 200
        async with gw.client.get("/oauth/authorize", params={
                "response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB}) as page:
            fields, _ = form_of(await page.text())
            yield gw, fields, page.cookies["__Host-byline_signin"]  # Secure: the plain-http client keeps it back


async def test_the_page_session_cookie_is_secure_behind_tls(world: World, db_url: str) -> None:
    """Behind TLS (an https public URL), the page session a password sign-in opens is the pages'
    own: a ``__Host-`` cookie, Secure, for this host alone."""
    signing_in = {"name": "alice", "password": PASSWORDS["alice"]}
    async with _sign_in_behind_tls(world, db_url) as (gw, fields, nonce), gw.client.post(
            "/oauth/authorize", data={**fields, **signing_in},
            headers={"Cookie": f"__Host-byline_signin={nonce.value}"}) as step:
        assert step.status == 200
        session = step.cookies["__Host-byline_session"]
    assert (session["secure"], session["httponly"], session["samesite"], session["path"], session["domain"]) == (
        True, True, "Lax", "/", "")


async def test_a_sign_in_nonce_planted_under_the_plain_name_is_no_nonce_behind_tls(world: World, db_url: str) -> None:
    """Login CSRF from a sibling subdomain: the attacker opens the sign-in page, keeps its form,
    plants its nonce in the person's browser under the plain cookie name (a sibling can set a
    cookie for the parent domain; none for a ``__Host-`` name) and has the browser send the form
    with the attacker's name and password, signing the person in as the attacker. Behind TLS the
    nonce is a ``__Host-`` cookie, Path=/, Secure, and only that name is read: the planted one
    binds no form."""
    async with _sign_in_behind_tls(world, db_url) as (gw, fields, cookie):
        assert (cookie["secure"], cookie["httponly"], cookie["samesite"], cookie["path"], cookie["domain"]) == (
            True, True, "Strict", "/", "")
        signing_in = {**fields, "name": "alice", "password": PASSWORDS["alice"]}
        async with gw.client.post("/oauth/authorize", data=signing_in,
                                  headers={"Cookie": f"byline_signin={cookie.value}"}) as planted:
            assert planted.status == 403 and "This form has expired" in await planted.text()
            assert "__Host-byline_session" not in planted.cookies
        async with gw.client.post("/oauth/authorize", data=signing_in,
                                  headers={"Cookie": f"__Host-byline_signin={cookie.value}"}) as own:
            assert own.status == 200 and "__Host-byline_session" in own.cookies
