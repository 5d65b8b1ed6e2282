"""OAuth for Mastodon apps: the token endpoints, mounted at ``/oauth`` (``/oauth/token``,
``/oauth/revoke``; refusals as Doorkeeper words them, ``errors.doorkeeper_errors``), and the
server's metadata, mounted at ``/.well-known/oauth-authorization-server``. The sign-in page, for
people, is ``authorize``."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import OAUTH
from gateway.errors import BylineError
from gateway.http.mastodon import params
from gateway.http.mastodon.answers import base_url, json_answer
from gateway.http.mastodon.errors import oauth_input
from gateway.services.scopes import SCOPES

routes = web.RouteTableDef()
"""The token endpoints, below ``/oauth``."""

metadata = web.RouteTableDef()
"""The metadata document, at its mount itself."""


async def _oauth_params(request: web.Request) -> dict[str, str]:
    try:
        given = await params.read_params(request)
    except BylineError as exc:
        raise oauth_input(exc) from None
    return {k: v for k, v in given.items() if isinstance(v, str)}


@routes.post("/token")
async def token(request: web.Request) -> web.Response:
    """Exchange an authorization code, once, for an access token; or, with the client_credentials
    grant, give an app a token of its own."""
    answer = await request.config_dict[OAUTH].exchange(
        await _oauth_params(request), basic=params.client_credentials(request)
    )
    return json_answer(answer.to_json(), headers={"Pragma": "no-cache"})


@routes.post("/revoke")
async def revoke(request: web.Request) -> web.Response:
    """Revoke one of the app's tokens."""
    await request.config_dict[OAUTH].revoke(await _oauth_params(request), basic=params.client_credentials(request))
    return json_answer({})


@metadata.get("")
async def oauth_metadata(request: web.Request) -> web.Response:
    """RFC 8414 metadata, as Mastodon 4.3 serves it (with Mastodon's app registration)."""
    base = base_url(request)
    return json_answer({
        "issuer": base + "/", "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}/oauth/authorize", "token_endpoint": f"{base}/oauth/token",
        "app_registration_endpoint": f"{base}/api/v1/apps", "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": sorted(SCOPES), "response_types_supported": ["code"],
        "response_modes_supported": ["query"], "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    })
