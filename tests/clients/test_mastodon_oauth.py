"""The OAuth sign-in as Mastodon.py does it (create_app, auth_request_url, log_in), and PKCE."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonIllegalArgumentError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)
from oauthlib.oauth2 import WebApplicationClient
from oauthlib.oauth2.rfc6749.errors import TemporarilyUnavailableError

from gateway.appkeys import DB
from gateway.services.identity import hash_token
from gateway.services.oauth import OAuthService
from gateway.services.throttle import Throttle
from gateway.storage.db import DatabaseUnavailable
from tests.clients.signin import pkce_pair, sign_in, with_pkce
from tests.clients.world import World
from tests.conftest import DATABASE_GONE, finding_the_database_gone

OOB = "urn:ietf:wg:oauth:2.0:oob"
SCOPES = ["read", "write"]


async def test_mastodon_py_signs_in_and_posts(world: World) -> None:
    """create_app, auth_request_url, the sign-in page, log_in(code=…): the app then posts as the account."""
    client_id, client_secret = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES,
                                               api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    url = await world.run(app.auth_request_url, scopes=SCOPES, redirect_uris=OOB, allow_http=True)
    assert url.startswith(f"{world.base}/oauth/authorize?")
    code = await sign_in(url, token=world.gateway.tokens["carol"], account="cosigned")
    access_token = await world.run(app.log_in, code=code, scopes=SCOPES, redirect_uri=OOB, allow_http=True)
    assert access_token.startswith("byl_")
    status = await world.run(app.status_post, "Signed in through OAuth")
    assert status.byline.state == "held"
    assert status.application.name == "Poster"
    _, post = await world.gateway.call("carol", "GET", f"/v1/posts/{status.id}")
    assert (post["account"], post["author"]) == ("cosigned", "carol")
    async with world.gateway.app[DB].read() as txn:
        kinds = [r["type"] for r in await txn.fetchall("SELECT type FROM log_entries ORDER BY idx")]
        stored = await txn.fetchall("SELECT token_hash FROM tokens WHERE label = ?", "oauth: Poster")
    assert "client.authorized" in kinds
    assert [r["token_hash"] for r in stored] == [hash_token(access_token)]  # only its hash is kept
    await world.run(app.revoke_access_token, allow_http=True)
    with pytest.raises(MastodonUnauthorizedError):
        await world.run(Mastodon(access_token=access_token, api_base_url=world.base).status_post, "After revoking")


async def test_pkce_code_exchange(world: World) -> None:
    """A public client (no secret) signs in with S256 PKCE and gets a token bound to the account."""
    client_id, _ = await world.run(Mastodon.create_app, "Phone app", scopes=SCOPES, redirect_uris=OOB,
                                   api_base_url=world.base)
    verifier, challenge = pkce_pair()
    url = (f"{world.base}/oauth/authorize?response_type=code&client_id={client_id}"
           f"&redirect_uri={OOB}&scope=read+write")
    code = await sign_in(with_pkce(url, challenge), token=world.gateway.tokens["bob"], account="delayed")
    status, body = await world.gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": client_id, "redirect_uri": OOB,
        "code_verifier": verifier,
    })
    assert status == 200, body
    assert (body["token_type"], body["scope"]) == ("Bearer", "read write")
    api = Mastodon(access_token=body["access_token"], api_base_url=world.base)
    assert (await world.run(api.account_verify_credentials)).acct == "bob"


async def test_read_scope_cannot_post(world: World) -> None:
    """A token granted only read is refused a status with Mastodon's scope error; nothing is posted."""
    client_id, client_secret = await world.run(Mastodon.create_app, "Reader", scopes=["read"],
                                               api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    url = await world.run(app.auth_request_url, scopes=["read"], allow_http=True)
    code = await sign_in(url, token=world.gateway.tokens["alice"], account="direct")
    await world.run(app.log_in, code=code, scopes=["read"], allow_http=True)
    assert (await world.run(app.account_verify_credentials)).acct == "alice"
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(app.status_post, "Not allowed")
    assert caught.value.args[1:4:2] == (403, "This action is outside the authorized scopes")
    assert (await world.gateway.call("alice", "GET", "/v1/posts?account=direct"))[1]["posts"] == []


async def test_the_token_endpoint_with_the_database_gone_is_temporarily_unavailable(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as a code is exchanged, as storage says it and as the driver
    does: 503 with Retry-After and RFC 6749's ``temporarily_unavailable``, which oauthlib raises
    as ``TemporarilyUnavailableError``. Before: ``invalid_request`` (the client's own mistake to
    mend, oauthlib's ``InvalidRequestError``) and no Retry-After, and the driver's word not
    Doorkeeper's shape at all."""
    client_id, client_secret = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES,
                                               api_base_url=world.base)
    for cause in DATABASE_GONE:
        gone = finding_the_database_gone(cause)
        with monkeypatch.context() as patched:
            patched.setattr(OAuthService, "exchange", gone)
            async with world.gateway.client.post("/oauth/token", data={
                    "grant_type": "authorization_code", "code": "a-code", "client_id": client_id,
                    "client_secret": client_secret, "redirect_uri": OOB}) as resp:
                status, wait, text = resp.status, resp.headers.get("Retry-After"), await resp.text()
        assert (status, wait) == (503, "5"), (cause, text)
        with pytest.raises(TemporarilyUnavailableError) as refused:
            WebApplicationClient(client_id).parse_request_body_response(text)
        assert refused.value.description == DatabaseUnavailable().message, cause


def _too_many_tries() -> Callable[..., Awaitable[Any]]:
    """A stand-in for a call that the sign-in throttle refuses: its own 429, a try too many."""
    throttle = Throttle("1/minute", what="sign-in")
    throttle.failed("address:203.0.113.9")

    async def refused(*_: object, **__: object) -> Any:
        throttle.check("address:203.0.113.9")
        raise AssertionError("the throttle let a try too many through")

    return refused


async def test_too_many_tries_at_the_token_endpoint_are_temporarily_unavailable(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A code exchange refused for too many tries (the sign-in throttle's 429; nothing throttles
    /oauth/token today, as nothing does in Mastodon): 429 with Retry-After, and RFC 6749's
    ``temporarily_unavailable`` (RFC 6749 has no word for too many; this one says it is the
    server's, for a while), which oauthlib raises as ``TemporarilyUnavailableError``, while
    Mastodon.py's log_in, reading the 429, says it hit a rate limit. Before: ``invalid_request``,
    the client's own request to mend (oauthlib took it for a bad client id)."""
    client_id, client_secret = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES,
                                               api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    with monkeypatch.context() as patched:
        patched.setattr(OAuthService, "exchange", _too_many_tries())
        with pytest.raises(MastodonIllegalArgumentError) as caught:
            await world.run(app.log_in, code="a-code", scopes=SCOPES, redirect_uri=OOB, allow_http=True)
        async with world.gateway.client.post("/oauth/token", data={
                "grant_type": "authorization_code", "code": "a-code", "client_id": client_id,
                "client_secret": client_secret, "redirect_uri": OOB}) as resp:
            status, wait, text = resp.status, resp.headers.get("Retry-After"), await resp.text()
    assert isinstance(caught.value.__context__, MastodonRatelimitError)
    assert status == 429 and wait is not None and int(wait) > 0, text
    with pytest.raises(TemporarilyUnavailableError) as refused:
        WebApplicationClient(client_id).parse_request_body_response(text)
    assert (refused.value.description or "").startswith("too many failed sign-in attempts")


async def test_too_many_tries_on_the_sign_in_page_say_when_to_try_again(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An authorization request refused for too many tries, before anyone signs in: the page
    says so with the 429 and its Retry-After, and names RFC 6749's ``temporarily_unavailable``
    (§4.1.2.1: the server's own trouble, for a while). Before: a 400 naming ``invalid_request``
    (the app's request at fault) and no word of when to try again."""
    client_id, _ = await world.run(Mastodon.create_app, "Poster", scopes=SCOPES, api_base_url=world.base)
    with monkeypatch.context() as patched:
        patched.setattr(OAuthService, "check_request", _too_many_tries())
        async with world.gateway.client.get("/oauth/authorize", params={
                "response_type": "code", "client_id": client_id, "redirect_uri": OOB, "scope": "read"}) as page:
            status, wait, text = page.status, page.headers.get("Retry-After"), await page.text()
    assert status == 429 and wait is not None and int(wait) > 0, text
    assert "too many failed sign-in attempts" in text and "(temporarily_unavailable)" in text
