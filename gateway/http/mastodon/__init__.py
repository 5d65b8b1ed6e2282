"""The Mastodon surfaces: what an unmodified Mastodon app speaks, each mounted as its own
sub-application with its own way of refusing.

- ``/api``: the client API (``api``), refusals as Mastodon words them, and its streaming API
  (``streaming``), refusals as Mastodon's streaming server words them;
- ``/media``: the files of uploads (``api``), refusals as Mastodon's;
- ``/oauth``: the token endpoints (``oauth``), refusals as Doorkeeper words them;
- ``/oauth/authorize``: the sign-in page, for people (``authorize``), answering with HTML pages;
- ``/.well-known/oauth-authorization-server``: the OAuth metadata (``oauth``), refusals as Mastodon's;
- ``/avatars/original/missing.png``, ``/headers/original/missing.png``: the picture of an account
  that has none (``api``), where Mastodon serves it.

Requests are read by ``params`` (Rails' way), entities rendered by ``entities``, refusals worded
by ``errors``. What the sign-in page cannot show as a page (text that is not text) the gateway's
own middleware refuses, as it does the router's 404 and 405 under every mount.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.http.common import checked
from gateway.http.mastodon import api, authorize, oauth, streaming
from gateway.http.mastodon.errors import doorkeeper_errors, mastodon_errors


def _surface(routes: web.RouteTableDef, middleware: Middleware) -> web.Application:
    surface = web.Application(middlewares=[middleware])
    surface.add_routes(routes)
    return surface


def client_api() -> web.Application:
    """The client API, to mount at ``/api``: the streaming API's routes first, before the
    passthrough's catch-all would take ``/v1/streaming/…``."""
    surface = web.Application(middlewares=[mastodon_errors])
    surface.add_routes(streaming.routes)
    surface.add_routes(api.routes)
    return surface


def media_files() -> web.Application:
    """The uploads' files, to mount at ``/media``."""
    return _surface(api.files, mastodon_errors)


def oauth_endpoints() -> web.Application:
    """The token endpoints, to mount at ``/oauth``."""
    return _surface(oauth.routes, doorkeeper_errors)


def sign_in() -> web.Application:
    """The sign-in page, to mount at ``/oauth/authorize`` (beside ``/oauth``, whose refusals are
    an app's, not a person's)."""
    return _surface(authorize.routes, checked)


def pictures() -> web.RouteTableDef:
    """The pictures of accounts that have none, to add at the root (``/avatars/…``, ``/headers/…``)."""
    return api.pictures


def oauth_metadata() -> web.Application:
    """The OAuth server's metadata, to mount at ``/.well-known/oauth-authorization-server``."""
    return _surface(oauth.metadata, mastodon_errors)
