"""The OAuth client_credentials grant, as Mastodon has it: an app proves itself with its secret
and gets a token of its own, good for calls about the app and for nothing an account does.

Mastodon.py asks for one itself before it registers a person (``create_account``); the other
calls are Mastodon.py's too, with the app's token, and the token endpoint is called over HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientSession
from mastodon import Mastodon, MastodonAPIError, MastodonIllegalArgumentError, MastodonUnauthorizedError

from gateway.appkeys import DB
from tests.clients.world import World
from tests.images import PNG

OOB = "urn:ietf:wg:oauth:2.0:oob"
USER_REQUIRED = "This method requires an authenticated user"


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    """A plain HTTP client for the token endpoint."""
    async with ClientSession() as session:
        yield session


async def _register(world: World, scopes: list[str]) -> tuple[str, str]:
    client_id, client_secret = await world.run(Mastodon.create_app, "Registrar", scopes=scopes,
                                               redirect_uris=OOB, api_base_url=world.base)
    return client_id, client_secret


async def _token(world: World, http: ClientSession, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with http.post(f"{world.base}/oauth/token", data=form) as response:
        return response.status, await response.json()


async def _stored_posts(world: World) -> int:
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT count(*) AS n FROM posts")
    assert row is not None
    return int(row["n"])


async def test_an_app_token_answers_for_the_app_and_for_no_account(world: World, http: ClientSession) -> None:
    """The app's own token verifies as the app; posting, reading the account and its timelines
    are refused with Mastodon's words, and nothing reaches the platform."""
    client_id, client_secret = await _register(world, ["read", "write"])
    status, answer = await _token(world, http, {"grant_type": "client_credentials", "client_id": client_id,
                                               "client_secret": client_secret})
    assert status == 200
    assert (answer["token_type"], answer["scope"]) == ("Bearer", "read")  # Mastodon's default scope
    token = answer["access_token"]

    app = Mastodon(access_token=token, api_base_url=world.base)
    verified = await world.run(app.app_verify_credentials)
    assert verified["name"] == "Registrar"

    status, answer = await _token(world, http, {"grant_type": "client_credentials", "client_id": client_id,
                                               "client_secret": client_secret, "scope": "read write"})
    assert (status, answer["scope"]) == (200, "read write")
    writer = Mastodon(access_token=answer["access_token"], api_base_url=world.base)
    before = await _stored_posts(world)
    for call, args in ((writer.status_post, ("From nobody",)), (writer.account_verify_credentials, ()),
                       (writer.timeline_home, ()), (writer.scheduled_statuses, ()),
                       (writer.media_post, (PNG, "image/png"))):
        with pytest.raises(MastodonAPIError) as refused:
            await world.run(call, *args)
        assert refused.value.args[1] == 422, call
    assert await _stored_posts(world) == before
    auth = {"Authorization": f"Bearer {answer['access_token']}"}
    for path in ("/api/v1/statuses", "/api/v1/timelines/home", "/api/v1/accounts/verify_credentials",
                 "/api/v1/notifications"):
        method = "POST" if path == "/api/v1/statuses" else "GET"
        async with http.request(method, world.base + path, headers=auth, data={"status": "x"}) as response:
            assert (response.status, await response.json()) == (422, {"error": USER_REQUIRED}), path
    await world.gateway.tick()
    assert world.upstream.statuses(world.upstream_account) == []


async def test_an_app_token_is_no_gateway_token(world: World, http: ClientSession) -> None:
    """Byline's own API and XRPC take the app's token for no one (401), as the pages do."""
    client_id, client_secret = await _register(world, ["read", "write"])
    _, answer = await _token(world, http, {"grant_type": "client_credentials", "client_id": client_id,
                                          "client_secret": client_secret, "scope": "read write"})
    auth = {"Authorization": f"Bearer {answer['access_token']}"}
    async with http.get(f"{world.base}/v1/posts", headers=auth) as response:
        assert response.status == 401
    async with http.post(f"{world.base}/xrpc/com.atproto.server.createSession",
                         json={"identifier": "alice", "password": answer["access_token"]}) as response:
        assert response.status == 401
    async with http.post(f"{world.base}/signin", data={"token": answer["access_token"]},
                         allow_redirects=False) as response:
        assert response.status != 303  # no session opened for nobody


async def test_what_the_grant_refuses(world: World, http: ClientSession) -> None:
    """No secret, a wrong one, an unknown app, or a scope the app was not registered with: the
    Doorkeeper error for each, and no token."""
    client_id, client_secret = await _register(world, ["read"])
    cases = [
        ({"client_id": client_id}, 401, "invalid_client"),
        ({"client_id": client_id, "client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "nobody", "client_secret": client_secret}, 401, "invalid_client"),
        ({"client_id": client_id, "client_secret": client_secret, "scope": "read write"}, 400, "invalid_scope"),
        ({"client_id": client_id, "client_secret": client_secret, "scope": "admin:read"}, 400, "invalid_scope"),
    ]
    for form, status, error in cases:
        got_status, answer = await _token(world, http, {"grant_type": "client_credentials", **form})
        assert (got_status, answer["error"]) == (status, error), form
        assert "access_token" not in answer
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT count(*) AS n FROM oauth_app_tokens")
    assert row is not None and row["n"] == 0


async def test_the_app_revokes_its_token(world: World) -> None:
    """``/oauth/revoke`` with the app's credentials ends its own token (Mastodon.py's revoke)."""
    client_id, client_secret = await _register(world, ["read"])
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    async with ClientSession() as http:
        _, answer = await _token(world, http, {"grant_type": "client_credentials", "client_id": client_id,
                                              "client_secret": client_secret})
    app.access_token = answer["access_token"]
    assert (await world.run(app.app_verify_credentials))["name"] == "Registrar"
    await world.run(app.revoke_access_token, allow_http=True)
    with pytest.raises(MastodonUnauthorizedError) as ended:
        await world.run(app.app_verify_credentials)
    assert ended.value.args[3] == "The access token is invalid"


async def test_mastodon_py_registration_stops_at_the_account(world: World) -> None:
    """Mastodon.py's ``create_account`` gets its app token, then is refused the account: Byline
    registers nobody."""
    client_id, client_secret = await _register(world, ["read", "write"])
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    with pytest.raises(MastodonIllegalArgumentError) as refused:
        await world.run(app.create_account, "newcomer", "a-long-password", "new@example.org", agreement=True,
                        scopes=["read", "write"])
    assert str(refused.value) == f"Invalid request: {USER_REQUIRED}"


async def test_the_metadata_names_the_grant(world: World, http: ClientSession) -> None:
    """RFC 8414 metadata lists both grants Byline answers."""
    async with http.get(f"{world.base}/.well-known/oauth-authorization-server") as response:
        metadata = await response.json()
    assert metadata["grant_types_supported"] == ["authorization_code", "client_credentials"]
