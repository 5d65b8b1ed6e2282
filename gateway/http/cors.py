"""Where the machine surfaces meet clients that are not Byline's own pages: trailing slashes, and
cross-origin requests from browser apps.

**Trailing slashes.** Mastodon's router (Rails) answers every route with or without a trailing
slash, and clients rely on it (a sign-in URL ``/oauth/authorize/?response_type=code…``). On the
surfaces apps speak (``SLASH_FREE``: the Mastodon API, its media files, OAuth and its sign-in,
the well-known documents, NodeInfo, XRPC) a path's trailing slashes are dropped before routing
(``unslashed``), so ``POST /api/v1/statuses/`` is ``POST /api/v1/statuses`` with its body, not a
redirect that a client might follow with a GET. Byline's own pages keep one address each: a page
at ``/queue/`` would resolve its relative links against the wrong folder.

**CORS.** Mastodon answers ``Access-Control-Allow-Origin: *`` on its API, its token endpoints
and its well-known documents (its ``config/initializers/cors.rb``): they take bearer tokens and
never a cookie, so a page of any origin gains nothing by calling them that it could not do from
a server. Byline does the same on those surfaces and on XRPC (``open_methods``), answers their
preflight ``OPTIONS`` (``preflight``) and adds the headers to every answer there (``headers``),
errors included, so a browser app can read why it was refused. A preflight is allowed the
request headers it asks for (``allowed_headers``), as Mastodon's ``headers: :any`` and the
reference PDS's express ``cors()`` allow them: Byline's own list is no guard there, since a
browser never sends a cookie with a wildcard origin and these routes read none, and a web
client's own header (a labeler choice, an app's feature flag) should not need a change here.
Only names that are header names (RFC 9110 tokens), and no more than ``MAX_REQUESTED_HEADERS``
of them, are echoed; a request for anything else gets Byline's list alone.

Never on the pages, the sign-in page or the queue's live updates: they act with the person's
session cookie, and a wildcard there would let any site read them in the person's name
(browsers refuse credentials with a wildcard, but a page that answered to one origin by mistake
would not be so lucky). They answer no preflight at all, whatever it asks for.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from yarl import URL

from gateway.http.common import Handler

SLASH_FREE: Final = ("/api/", "/media/", "/oauth/", "/.well-known/", "/nodeinfo/", "/xrpc/")
"""The surfaces whose routes answer with or without a trailing slash."""

ALLOW_HEADERS: Final = (
    "Authorization", "Content-Type", "Idempotency-Key", "Accept", "Accept-Language", "X-Request-Id",
    "atproto-accept-labelers", "atproto-proxy",
)
"""The request headers a browser app may always send: those Byline reads, and the two the
atproto SDK sends. A preflight that asks for others is allowed them too (``allowed_headers``)."""

MAX_REQUESTED_HEADERS: Final = 32
"""The most header names a preflight may ask for and have echoed (browsers ask for a handful)."""

MAX_REQUESTED_LENGTH: Final = 2048
"""The longest ``Access-Control-Request-Headers`` that is read at all."""

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
"""A header name: an RFC 9110 token (one or more ``tchar``)."""

EXPOSE_HEADERS: Final = (
    "Link", "Retry-After", "X-Request-Id", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
    "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy",
    "atproto-content-labelers", "atproto-repo-rev",
)
"""The answer headers a browser app may read beyond the CORS-safelisted ones: pagination
(``Link``), when to retry (Mastodon's ``X-RateLimit-*``, a PDS's ``RateLimit-*``), the
request's id for a report, and the PDS's own."""

MAX_AGE: Final = 3600
"""How long (seconds) a browser may keep a preflight's answer."""

_EVERY: Final = ("GET", "POST", "PUT", "PATCH", "DELETE")


def open_methods(path: str) -> tuple[str, ...] | None:
    """The methods a page of any origin may call at ``path`` (as routed, without its trailing
    slash), or None where cross-origin calls stay refused."""
    if path.startswith("/api/"):
        return _EVERY
    if path in ("/oauth/token", "/oauth/revoke"):
        return ("POST",)
    if path.startswith(("/.well-known/", "/nodeinfo/")):
        return ("GET",)
    if path.startswith("/xrpc/"):
        return ("GET", "POST")
    return None


def allowed_headers(requested: str | None) -> str:
    """The ``Access-Control-Allow-Headers`` of a preflight that asked for ``requested`` (its
    ``Access-Control-Request-Headers``): Byline's list, with every name asked for when the value
    is a list of at most ``MAX_REQUESTED_HEADERS`` header names (empty elements are skipped, as
    RFC 9110 lists allow); anything else (a name that is no token, too many, too long) is not
    echoed at all, and the browser refuses the call that asked for it."""
    names = list(ALLOW_HEADERS)
    if not requested or len(requested) > MAX_REQUESTED_LENGTH:
        return ", ".join(names)
    asked = [name for name in (part.strip(" \t") for part in requested.split(",")) if name]
    if len(asked) > MAX_REQUESTED_HEADERS or not all(_TOKEN.fullmatch(name) for name in asked):
        return ", ".join(names)
    known = {name.lower() for name in names}
    for name in asked:
        if name.lower() not in known:
            known.add(name.lower())
            names.append(name.lower())
    return ", ".join(names)


def unslashed(request: web.BaseRequest) -> web.BaseRequest:
    """The request as routed: on the ``SLASH_FREE`` surfaces, its path without trailing slashes
    (the same request, body and all, under another URL); elsewhere, itself."""
    raw = request.rel_url.raw_path
    if not raw.endswith("/") or not raw.startswith(SLASH_FREE):
        return request
    path = raw.rstrip("/")
    if not path.startswith(SLASH_FREE):  # "/api/" itself: nothing is there either way
        return request
    return request.clone(rel_url=URL.build(path=path, query_string=request.rel_url.raw_query_string, encoded=True))


def unslashing(
    handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    """The server's request handler, routing each request as ``unslashed`` has it."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        return await handler(unslashed(request))

    return handle


@web.middleware
async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a CORS preflight (``OPTIONS`` with ``Access-Control-Request-Method``) on the open
    surfaces; any other request, and a preflight elsewhere, goes on as it came."""
    methods = open_methods(request.path) if request.method == "OPTIONS" else None
    if methods is None or "Access-Control-Request-Method" not in request.headers:
        return await handler(request)
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": "*",
        "Access-Control-Allow-Methods": ", ".join(methods),
        "Access-Control-Allow-Headers": allowed_headers(request.headers.get("Access-Control-Request-Headers")),
        "Access-Control-Max-Age": str(MAX_AGE),
        # The answer depends on what was asked: a cache must not give it to another preflight.
        "Vary": "Access-Control-Request-Headers",
    })


async def headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of every answer on the open surfaces, whoever
    made it (a handler, a surface's refusal, the router's 404)."""
    if open_methods(request.path) is not None:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)
