"""How far a token reaches: an app's OAuth token holds its scopes, lives no longer than the
person's token that signed it in and ends with it, on every surface; the sign-in refuses to be
guessed at, cannot be replayed for another request, and sends nobody anywhere unasked.
"""

from __future__ import annotations

import base64
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.appkeys import DB, IDENTITY, SETTINGS
from gateway.services.checkpoints import load_signer
from gateway.services.identity import Identity, hash_token, token_id
from gateway.services.oauth import OAuthService
from gateway.services.people import People
from gateway.services.posts import Caller
from gateway.storage import oauth as oauth_sql
from gateway.storage.db import DatabaseUnavailable
from tests.clients.signin import form_of, sign_in
from tests.clients.world import World
from tests.conftest import DATABASE_GONE, TEST_POLICIES, finding_the_database_gone, started_gateway, write_policy

OOB = "urn:ietf:wg:oauth:2.0:oob"


async def _app(world: World, *, scopes: str = "read write", name: str = "Reach") -> tuple[str, str]:
    status, app = await world.gateway.call(None, "POST", "/api/v1/apps", data={
        "client_name": name, "redirect_uris": OOB, "scopes": scopes})
    assert status == 200, app
    return app["client_id"], app["client_secret"]


async def _oauth_token(world: World, person_token: str, *, scope: str, account: str = "direct") -> str:
    """Sign an app in through the page with ``person_token`` and exchange the code."""
    client_id, secret = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": scope})
    code = await sign_in(f"{world.base}/oauth/authorize?{query}", token=person_token, account=account)
    status, body = await world.gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id, "client_secret": secret,
        "redirect_uri": OOB})
    assert status == 200 and body["scope"] == scope, body
    return str(body["access_token"])


async def _as(world: World, token: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
    async with world.gateway.client.request(method, path, headers=headers, **kwargs) as answer:
        body = await answer.json() if answer.content_type == "application/json" else await answer.text()
        return answer.status, body


async def _create_session(world: World, password: str, identifier: str = "direct") -> tuple[int, Any]:
    return await world.gateway.call(None, "POST", "/xrpc/com.atproto.server.createSession",
                                    {"identifier": identifier, "password": password})


async def test_a_read_token_reads_and_never_writes(world: World) -> None:
    """A ``read`` token reads posts, and is refused (403, nothing stored) wherever it would
    write, approve, or stand for the person: native posting, approving, the sign-in page, and as
    an XRPC app password."""
    gw = world.gateway
    read = await _oauth_token(world, gw.tokens["alice"], scope="read")
    before = await gw.snapshot()
    assert (await _as(world, read, "POST", "/v1/posts", json={"account": "direct", "text": "by a reader"}))[0] == 403
    assert (await _as(world, read, "POST", "/api/v1/statuses", data={"status": "by a reader"}))[0] == 403
    assert await gw.snapshot() == before and await gw.timeline("direct") == []
    status, body = await _as(world, read, "GET", "/v1/posts")
    assert status == 200 and body["posts"] == []
    status, body = await _create_session(world, read)
    assert status == 401 and body["error"] == "AuthenticationRequired", body

    # The sign-in page does not take an app's token as a person's: no new token comes of it.
    client_id, _ = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read write"})
    async with gw.client.get(f"/oauth/authorize?{query}") as page:
        fields, _ = form_of(await page.text())
    async with gw.client.post("/oauth/authorize", data={**fields, "token": read}) as step:
        assert step.status == 401 and "not accepted" in await step.text()


async def test_an_app_token_never_decides_for_its_person(world: World) -> None:
    """Even with ``write``, an app's token writes posts but cannot approve, reject, adopt or retry
    one: no Mastodon scope names those, and the person never granted them."""
    gw = world.gateway
    post = await gw.submit("alice", "cosigned", "needs two")
    write = await _oauth_token(world, gw.tokens["carol"], scope="read write", account="cosigned")
    for action in ("approve", "reject"):
        status, body = await _as(world, write, "POST", f"/v1/posts/{post['id']}/{action}", json={"version": 1})
        assert status == 403 and "app's token" in body["message"], body
    assert (await gw.get("alice", post["id"]))["state"] == "held"
    status, body = await _as(world, write, "POST", "/v1/posts", json={"account": "cosigned", "text": "carol's words"})
    assert status == 201, body


async def test_an_app_token_ends_with_its_person_token(world: World) -> None:
    """Signed in with a token made to last 8 seconds, the app's token stops at 8 seconds too; and
    revoking the person's token ends the app's at once."""
    gw = world.gateway
    short = await gw.app[IDENTITY].create(user="alice", expires_in=timedelta(seconds=8))
    app_token = await _oauth_token(world, short, scope="read write")
    assert (await _as(world, app_token, "POST", "/api/v1/statuses", data={"status": "in time"}))[0] == 200
    gw.clock.advance(timedelta(seconds=9))
    for method, path in (("GET", "/api/v1/accounts/verify_credentials"), ("GET", "/v1/posts")):
        assert (await _as(world, app_token, method, path))[0] == 401, path
    assert (await _as(world, app_token, "POST", "/api/v1/statuses", data={"status": "too late"}))[0] == 401

    person = await gw.app[IDENTITY].create(user="alice")
    second = await _oauth_token(world, person, scope="read write")
    assert (await _as(world, second, "GET", "/api/v1/accounts/verify_credentials"))[0] == 200
    assert await gw.app[IDENTITY].revoke(person)
    assert (await _as(world, second, "GET", "/api/v1/accounts/verify_credentials"))[0] == 401
    # The operator's list says so too: the app's token stands revoked with its person's.
    listed = {info.id: info for info in await gw.app[IDENTITY].listing()}
    assert listed[token_id(hash_token(second))].revoked_at is not None


async def test_a_code_from_a_person_token_that_ended_is_refused(world: World) -> None:
    """A code whose person's token was revoked before the exchange gives no token."""
    gw = world.gateway
    person = await gw.app[IDENTITY].create(user="alice")
    client_id, secret = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"})
    code = await sign_in(f"{world.base}/oauth/authorize?{query}", token=person, account="direct")
    assert await gw.app[IDENTITY].revoke(person)
    status, body = await gw.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id, "client_secret": secret,
        "redirect_uri": OOB})
    assert status == 400 and body["error"] == "invalid_grant", body


async def test_wrong_tokens_are_throttled_on_the_sign_in_page(world: World) -> None:
    """Ten wrong tokens from one address in a minute, then 429 with Retry-After, even for the
    right token, until the window moves on."""
    gw = world.gateway
    client_id, _ = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"})
    async with gw.client.get(f"/oauth/authorize?{query}") as page:
        fields, _ = form_of(await page.text())
    statuses = []
    for n in range(11):
        async with gw.client.post("/oauth/authorize", data={**fields, "token": f"byl_guess{n}"}) as step:
            statuses.append(step.status)
    assert statuses == [401] * 10 + [429], statuses
    async with gw.client.post("/oauth/authorize", data={**fields, "token": gw.tokens["alice"]}) as step:
        assert step.status == 429 and int(step.headers["Retry-After"]) > 0
        assert "too many failed sign-in attempts" in await step.text()


async def test_wrong_app_passwords_are_throttled_on_create_session(world: World) -> None:
    """createSession counts failures per address: 429 RateLimitExceeded, even for the right one."""
    gw = world.gateway
    password = await gw.app[IDENTITY].create(user="alice", account="direct")
    for n in range(10):
        status, body = await _create_session(world, f"byl_guess{n}")
        assert status == 401, body
    status, body = await _create_session(world, password)
    assert status == 429 and body["error"] == "RateLimitExceeded", body


async def test_the_sign_in_page_with_the_database_gone_refuses_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as the page looks up the app, or the token typed in, says
    nothing of either: 503 with the database's message and Retry-After, and no failure counted.
    Before: the page was a 400 (the app taken for unknown, "invalid_request"), and a right token
    a 401 (not accepted) counted as a guess: ten of them in an outage and the right token was
    refused 429 once the database was back."""
    gw = world.gateway
    client_id, _ = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"})

    gone = finding_the_database_gone()

    with monkeypatch.context() as patched:
        patched.setattr(oauth_sql, "get_app", gone)
        async with gw.client.get(f"/oauth/authorize?{query}") as page:
            assert (page.status, page.headers.get("Retry-After")) == (503, "5")
            assert DatabaseUnavailable().message in await page.text()
    async with gw.client.get(f"/oauth/authorize?{query}") as page:
        fields, _ = form_of(await page.text())
    with monkeypatch.context() as patched:
        patched.setattr(Identity, "person", gone)
        for _ in range(10):
            async with gw.client.post("/oauth/authorize", data={**fields, "token": gw.tokens["alice"]}) as step:
                assert (step.status, step.headers.get("Retry-After")) == (503, "5")
                assert DatabaseUnavailable().message in await step.text()
    async with gw.client.post("/oauth/authorize", data={**fields, "token": gw.tokens["alice"]}) as step:
        assert step.status == 200
        assert "direct" in form_of(await step.text())[1]


async def test_the_sign_in_page_with_the_driver_saying_the_database_is_gone_is_a_page(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database gone as the page looks up the app, or reads the browser's page session, as
    storage says it and as the driver does (a server shutting down): the page's 503 (HTML, the
    database's message, Retry-After), as a person's browser shows it. Before: the gateway's own
    JSON 503, for the driver's word everywhere, and for the session read for both."""
    gw = world.gateway
    client_id, _ = await _app(world)
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"})
    for cause in DATABASE_GONE:
        for where, name in ((OAuthService, "check_request"), (People, "session")):
            with monkeypatch.context() as patched:
                patched.setattr(where, name, finding_the_database_gone(cause))
                async with gw.client.get(f"/oauth/authorize?{query}") as page:
                    answer = (page.status, page.headers.get("Retry-After"), page.content_type)
                    text = await page.text()
            assert answer == (503, "5", "text/html"), (cause, name, text)
            assert DatabaseUnavailable().message in text, (cause, name)
    async with gw.client.get(f"/oauth/authorize?{query}") as page:
        assert page.status == 200


async def test_token_answers_are_never_cached(world: World) -> None:
    """Sessions, token lists and posts carry Cache-Control: no-store on every surface."""
    gw = world.gateway
    password = await gw.app[IDENTITY].create(user="alice", account="direct")
    async with gw.client.post("/xrpc/com.atproto.server.createSession",
                              json={"identifier": "direct", "password": password}) as answer:
        assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    for path in ("/v1/posts", "/v1/accounts"):
        async with gw.client.get(path, headers={"Authorization": f"Bearer {gw.tokens['alice']}"}) as answer:
            assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store", path


async def test_no_answer_is_sniffed_for_another_type(world: World) -> None:
    """JSON answers that quote a post's words, errors that echo what was sent, the log's tiles
    and the pages all say nosniff: a browser takes none of them for a page or a script."""
    gw = world.gateway
    auth = {"Authorization": f"Bearer {gw.tokens['alice']}"}
    status, post = await gw.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "<script>x()</script>"})
    assert status == 201, post
    for method, path, headers in [("GET", f"/v1/posts/{post['id']}", auth), ("GET", "/v1/posts", auth),
                                  ("GET", "/v1/nothing-here<script>", {}), ("POST", "/v1/posts", {}),
                                  ("GET", "/healthz", {}), ("GET", "/openapi.json", {}),
                                  ("GET", "/log/checkpoint", {}), ("GET", "/", {})]:
        async with gw.client.request(method, path, headers=headers) as answer:
            assert answer.headers.get("X-Content-Type-Options") == "nosniff", (method, path, answer.status)


async def test_the_sign_in_form_is_bound_to_its_request(world: World) -> None:
    """A form shown for one app and redirect URI cannot be posted for another (403)."""
    gw = world.gateway
    first, _ = await _app(world)
    second, _ = await _app(world)
    query = {"response_type": "code", "client_id": first, "redirect_uri": OOB, "scope": "read"}
    async with gw.client.get("/oauth/authorize", params=query) as page:
        nonce = page.cookies["byline_signin"].value
        fields, _ = form_of(await page.text())
        assert page.cookies["byline_signin"]["secure"] == ""  # plain http in tests
    headers = {"Cookie": f"byline_signin={nonce}"}
    for change in ({"client_id": second}, {"scope": "read write"}, {"state": "other"},
                   {"code_challenge": "a" * 43, "code_challenge_method": "S256"}):
        async with gw.client.post("/oauth/authorize", data={**fields, **change, "token": gw.tokens["alice"]},
                                  headers=headers) as step:
            assert step.status == 403 and "This form has expired" in await step.text(), change
    async with gw.client.post("/oauth/authorize", data={**fields, "token": gw.tokens["alice"]},
                              headers=headers) as step:
        assert step.status == 200


async def test_the_sign_in_cookie_is_secure_behind_tls(world: World, db_url: str) -> None:
    """Behind TLS (an https public URL), the sign-in cookie is Secure."""
    settings = world.gateway.app[SETTINGS]
    async with started_gateway(db_url, settings.policy_dir, world.gateway.clock,
                               public_url="https://byline.example") as gw:
        status, app = await gw.call(None, "POST", "/api/v1/apps", data={
            "client_name": "Reach", "redirect_uris": OOB, "scopes": "read"})
        assert status == 200
        async with gw.client.get("/oauth/authorize", params={
                "response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB}) as page:
            assert page.status == 200
            assert "Secure" in page.headers["Set-Cookie"]


async def test_redirect_uri_limits(world: World) -> None:
    """At most 20 redirect URIs, and none that opens something in the person's own browser."""
    many = "\n".join(f"https://app.example/cb{n}" for n in range(21))
    for uris, error in ((many, "at most 20"), ("file:///etc/passwd", "forbidden"),
                        ("blob:https://app.example/1", "forbidden")):
        status, body = await world.gateway.call(None, "POST", "/api/v1/apps", data={
            "client_name": "x", "redirect_uris": uris})
        assert status == 422 and error in body["error"], body


async def test_names_are_isolated_on_the_sign_in_page(world: World) -> None:
    """A right-to-left override in an app's name cannot turn the page's sentence around."""
    client_id, _ = await _app(world, name="\u202eByline app")
    async with world.gateway.client.get("/oauth/authorize", params={
            "response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"}) as page:
        text = await page.text()
    assert "Sign in to let <bdi>\u202eByline app</bdi> post through Byline" in text
    assert not re.search("[^>]\u202e", text)


async def test_a_bound_token_reads_only_its_own_account_policy(world: World) -> None:
    """A token bound to one account does not read another account's policy, even one its person
    has a role on."""
    gw = world.gateway
    bound = await gw.app[IDENTITY].create(user="alice", account="direct")
    assert (await _as(world, bound, "GET", "/v1/accounts/direct/policy"))[0] == 200
    status, body = await _as(world, bound, "GET", "/v1/accounts/cosigned/policy")
    assert status == 403, body
    assert (await gw.call("alice", "GET", "/v1/accounts/cosigned/policy"))[0] == 200


def _forged_with_log_key(world: World, did: str) -> str:
    """An access JWT keyed the old way: derived from the log signing key's seed."""
    settings = world.gateway.app[SETTINGS]
    seed = load_signer(settings.log_key_file, origin=settings.log_origin).private_key.private_bytes_raw()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"byline/xrpc-session-jwt/v1").derive(seed)
    now = int(world.gateway.clock.now().timestamp())
    return jwt.encode({"sub": did, "aud": "did:web:byline.local", "iat": now, "exp": now + 3600,
                       "scope": "com.atproto.appPass", "sid": "x", "jti": "y"}, key, algorithm="HS256")


async def test_xrpc_sessions_have_a_key_of_their_own(world: World) -> None:
    """The session key is random and kept in the database: one derived from the log signing key
    opens nothing, and a real session's JWT does not verify under such a key."""
    gw = world.gateway
    password = await gw.app[IDENTITY].create(user="alice", account="direct")
    status, session = await _create_session(world, password)
    assert status == 200
    forged = _forged_with_log_key(world, session["did"])
    async with gw.client.get("/xrpc/com.atproto.server.getSession",
                             headers={"Authorization": f"Bearer {forged}"}) as answer:
        assert answer.status in (400, 401), await answer.text()
    header = base64.urlsafe_b64decode(session["accessJwt"].split(".")[0] + "==")
    assert b"HS256" in header
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT secret FROM gateway_keys WHERE name = ?", "xrpc-session-jwt")
    assert row is not None and len(bytes.fromhex(row["secret"])) == 32
    assert jwt.decode(session["accessJwt"], bytes.fromhex(row["secret"]), algorithms=["HS256"],
                      audience="did:web:byline.local", options={"verify_exp": False})["sub"] == session["did"]


async def test_a_token_and_a_session_end_with_their_persons_role(world: World, policy_dir: Path) -> None:
    """carol's token bound to masto, and alice's XRPC session on direct, stop at once when the
    policy names their person no more: the Mastodon API relays nothing under the account's own
    credential for them (its timelines, notifications), and the session reads and writes nothing.
    Before, both went on working until they expired."""
    gw = world.gateway
    token = await world.token("carol", "masto")
    assert (await _as(world, token, "GET", "/api/v1/accounts/verify_credentials"))[0] == 200
    password = await gw.app[IDENTITY].create(user="alice", account="direct")
    status, session = await _create_session(world, password)
    assert status == 200, session
    access = {"Authorization": f"Bearer {session['accessJwt']}"}
    async with gw.client.get("/xrpc/com.atproto.server.getSession", headers=access) as answer:
        assert answer.status == 200

    masto = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
    (policy_dir / "masto.yaml").write_text(masto.replace("writers: [alice, carol]", "writers: [alice]"),
                                           encoding="utf-8")
    write_policy(policy_dir, "direct", TEST_POLICIES["direct"].replace("owner: alice", "owner: bob"))
    await gw.sync_policies()

    for method, path in (("GET", "/api/v1/accounts/verify_credentials"), ("GET", "/api/v1/timelines/home"),
                         ("GET", "/api/v1/notifications")):
        status, body = await _as(world, token, method, path)
        assert status == 403 and "carol no longer has a role on masto" in str(body), (path, body)
    status, body = await _as(world, token, "POST", "/api/v1/statuses", data={"status": "still here"})
    assert status == 403, body
    assert world.upstream.statuses(world.upstream_account) == []
    for path in ("com.atproto.server.getSession", "app.bsky.feed.getTimeline"):
        async with gw.client.get(f"/xrpc/{path}", headers=access) as answer:
            assert answer.status == 401, (path, await answer.text())
            assert (await answer.json())["error"] == "AuthenticationRequired"
    status, body = await gw.call(None, "POST", "/xrpc/com.atproto.repo.createRecord", {
        "repo": session["did"], "collection": "app.bsky.feed.post",
        "record": {"$type": "app.bsky.feed.post", "text": "still here", "createdAt": "2026-12-05T00:00:00Z"},
    }, headers=access)
    assert status == 401, body


async def test_create_session_with_the_database_gone_is_no_wrong_password(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as an app password is looked up says nothing of the password:
    each try is answered with the database's message (a 5xx, Retry-After), never 401, and none
    is counted as a failure. Before: 401 "login refused", and after ten of them the right
    password was refused 429 once the database was back."""
    gw = world.gateway
    password = await gw.app[IDENTITY].create(user="alice", account="direct")
    async def gone(self: Identity, token: str | None) -> Caller:
        raise DatabaseUnavailable()

    with monkeypatch.context() as patched:
        patched.setattr(Identity, "person", gone)
        for _ in range(10):
            async with gw.client.post("/xrpc/com.atproto.server.createSession",
                                      json={"identifier": "direct", "password": password}) as answer:
                body = await answer.json()
                assert answer.status >= 500 and body["message"] == DatabaseUnavailable().message, body
                assert answer.headers["Retry-After"] == "5"
    status, body = await _create_session(world, password)
    assert status == 200, body
