"""Trailing slashes: every route of the Mastodon and XRPC surfaces answers with or without one,
as Mastodon's router does, by routing the same request (its body too), never by a redirect."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from aiohttp import ClientSession
from mastodon import Mastodon

from tests.clients.signin import sign_in
from tests.clients.world import World
from tests.images import PNG

OOB = "urn:ietf:wg:oauth:2.0:oob"


@pytest.fixture
async def http() -> AsyncIterator[ClientSession]:
    """A plain HTTP client that never follows a redirect."""
    async with ClientSession() as session:
        yield session


async def _call(http: ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any, bytes]:
    """The status, the JSON body (None for another type) and the bytes of one request."""
    async with http.request(method, url, allow_redirects=False, **kwargs) as response:
        raw = await response.read()
        body = await response.json(content_type=None) if "json" in response.content_type else None
        return response.status, body, raw


def _slashed(url: str) -> str:
    """The URL with a slash after its path, its query kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path + "/"))


async def test_sign_in_url_with_a_trailing_slash(world: World, http: ClientSession) -> None:
    """The sign-in page a client opens at ``/oauth/authorize/?…`` is the page, not a 404, and
    signing in there gives the app its code."""
    client_id, client_secret = await world.run(Mastodon.create_app, "Slashy", scopes=["read"],
                                               redirect_uris=OOB, api_base_url=world.base)
    app = Mastodon(client_id=client_id, client_secret=client_secret, api_base_url=world.base)
    url = await world.run(app.auth_request_url, scopes=["read"], redirect_uris=OOB, allow_http=True)
    assert urlsplit(url).path == "/oauth/authorize"
    status, _, page = await _call(http, "GET", _slashed(url))
    assert status == 200
    assert b"Sign in to let" in page
    assert b"Slashy" in page
    code = await sign_in(_slashed(url), token=world.gateway.tokens["carol"], account="masto")
    await world.run(app.log_in, code=code, scopes=["read"], redirect_uri=OOB, allow_http=True)
    me = await world.run(app.account_verify_credentials)
    assert me["username"] == world.upstream_account.username


async def test_posts_with_a_trailing_slash_keep_their_body(world: World, http: ClientSession) -> None:
    """``POST /api/v1/apps/``, ``/api/v1/statuses/`` and ``/oauth/token/`` are answered where they
    were sent, with what was sent: an app registered, a status on the platform, a token refusal."""
    status, app, _ = await _call(http, "POST", f"{world.base}/api/v1/apps/",
                                 json={"client_name": "Slashy", "redirect_uris": OOB, "scopes": "read write"})
    assert status == 200
    assert (app["name"], app["redirect_uri"]) == ("Slashy", OOB)

    token = await world.token("alice", "masto")
    status, posted, _ = await _call(http, "POST", f"{world.base}/api/v1/statuses/",
                                    headers={"Authorization": f"Bearer {token}"}, data={"status": "Slash and post"})
    assert status == 200
    assert posted["content"] == "<p>Slash and post</p>"
    await world.gateway.tick()
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Slash and post"]

    status, refused, _ = await _call(http, "POST", f"{world.base}/oauth/token/", data={
        "grant_type": "authorization_code", "code": "not-a-code", "redirect_uri": OOB,
        "client_id": app["client_id"], "client_secret": app["client_secret"],
    })
    assert (status, refused["error"]) == (400, "invalid_grant")


async def test_every_mastodon_route_answers_with_a_trailing_slash(world: World, http: ClientSession) -> None:
    """Reads, the media files, the well-known documents: the same answer with a slash as without."""
    token = await world.token("alice", "masto")
    auth = {"Authorization": f"Bearer {token}"}
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png")
    for path in ("/api/v1/accounts/verify_credentials", f"/api/v1/media/{media.id}",
                 "/.well-known/oauth-authorization-server", "/api/v2/instance"):
        plain = await _call(http, "GET", world.base + path, headers=auth)
        slashed = await _call(http, "GET", world.base + path + "/", headers=auth)
        assert plain[0] == 200, path
        assert slashed[:2] == plain[:2], path
    file_url = media.url
    plain_file = await _call(http, "GET", file_url)
    assert plain_file[0] == 200
    assert await _call(http, "GET", file_url + "/") == plain_file
    status, _, _ = await _call(http, "DELETE", f"{world.base}/api/v1/statuses/999999999/", headers=auth)
    assert status == 404  # the status's own route: a relay of DELETE would have been a 403 refusal


async def test_xrpc_methods_answer_with_a_trailing_slash(world: World, http: ClientSession) -> None:
    """A query and a procedure of XRPC, each with a slash after the method's name."""
    plain = await _call(http, "GET", f"{world.base}/xrpc/com.atproto.server.describeServer")
    slashed = await _call(http, "GET", f"{world.base}/xrpc/com.atproto.server.describeServer/")
    assert plain[0] == 200
    assert slashed == plain
    status, refused, _ = await _call(http, "POST", f"{world.base}/xrpc/com.atproto.server.createSession/",
                                     json={"identifier": "alice", "password": "not-her-token"})
    assert (status, refused["error"]) == (401, "AuthenticationRequired")


async def test_pages_keep_one_address(world: World, http: ClientSession) -> None:
    """Byline's own pages are not the surfaces apps speak: ``/queue/`` is not ``/queue``."""
    status, _, _ = await _call(http, "GET", f"{world.base}/signin/")
    assert status == 404
    status, _, _ = await _call(http, "GET", f"{world.base}/signin")
    assert status == 200
