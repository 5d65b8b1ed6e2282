"""Refusals as Mastodon words them: ``{"error": "…"}`` on the client API, and, on ``/oauth``, as
Doorkeeper (Mastodon's OAuth provider) does: ``{"error", "error_description"}``.

Each surface's middleware checks the request's text first (``check_request``) and words what it
refuses, the database gone too (a 503 with ``Retry-After``, as storage or the driver says it); a
crash is left to the gateway's own middleware (a 500 with a request id), and so are the router's
404 and 405 under the surface's prefix.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from gateway.errors import BylineError, Code, Failure
from gateway.http.common import Handler, answered_by_surface, check_request, database_gone, waited
from gateway.http.mastodon.answers import json_answer
from gateway.storage.db import DatabaseUnavailable


def mastodon_body(exc: Failure) -> dict[str, Any]:
    """The error as Mastodon words it; clients show ``error`` as it is."""
    if exc.code is Code.UNAUTHENTICATED:
        return {"error": "The access token is invalid"}
    if exc.code in (Code.NOT_FOUND, Code.UNKNOWN_ACCOUNT) and not exc.details.get("verbatim"):
        return {"error": "Record not found"}
    if exc.code is Code.TEXT_EMPTY:
        return {"error": "Validation failed: Text can't be blank"}
    if exc.code is Code.TEXT_TOO_LONG:
        return {"error": f"Validation failed: Text character limit of {exc.details.get('limit')} exceeded"}
    if exc.code is Code.RULE_BLOCKED:
        rule, reason = exc.details.get("rule"), exc.details.get("reason")
        return {"error": f"Validation failed: {reason} (rule {rule})",
                "byline": {"rule": rule, "reason": reason}}
    if exc.code is Code.VALIDATION and not exc.message.startswith("Validation failed") and not exc.details.get(
            "verbatim"):
        return {"error": f"Validation failed: {exc.message}"}
    return {"error": exc.message}


def _database_gone(request: web.Request, exc: Exception) -> DatabaseUnavailable:
    """The driver's word for the database gone, as storage says it (``database_gone``); anything
    else is raised again, for the gateway's own middleware to answer as a crash."""
    if (outage := database_gone(request, exc)) is None:
        raise exc
    return outage


@web.middleware
async def mastodon_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check each call and answer its refusals as Mastodon does (the client API, uploads' files,
    the OAuth metadata)."""
    if not answered_by_surface(request):
        return await handler(request)
    try:
        check_request(request)
        return await handler(request)
    except Failure as exc:
        return _mastodon_answer(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_answer({"error": exc.reason}, status=exc.status)
    except Exception as exc:
        return _mastodon_answer(_database_gone(request, exc))


def _mastodon_answer(exc: Failure) -> web.Response:
    return waited(json_answer(mastodon_body(exc), status=exc.status), exc)


def oauth_input(exc: BylineError) -> BylineError:
    """Input that cannot be used is, on ``/oauth``, RFC 6749's invalid_request: a 400, not a 422."""
    if exc.code is Code.VALIDATION:
        return BylineError(Code.BAD_REQUEST, exc.message, oauth="invalid_request")
    return exc


@web.middleware
async def doorkeeper_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check each call and answer its refusals as Doorkeeper does (the token endpoints)."""
    if not answered_by_surface(request):
        return await handler(request)
    try:
        try:
            check_request(request)
        except BylineError as exc:
            raise oauth_input(exc) from None
        return await handler(request)
    except Failure as exc:
        return _doorkeeper_answer(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_answer({"error": "invalid_request", "error_description": exc.reason}, status=exc.status)
    except Exception as exc:
        return _doorkeeper_answer(_database_gone(request, exc))


def oauth_error(exc: Failure) -> str:
    """RFC 6749's error code for a refusal on an OAuth endpoint: the one it names; for the
    server's own trouble for a while (the database gone, a client refused for too many tries),
    ``temporarily_unavailable``; else ``invalid_request``.

    RFC 6749 has no code for too many tries, and none of its token endpoint's codes (§5.2) is
    the server's; ``temporarily_unavailable`` (§4.1.2.1) says what a client should do, try
    again later (its 429 or 503 and ``Retry-After`` say when), where ``invalid_request`` would
    have it mend a request that was right (oauthlib raises ``InvalidClientIdError`` for it).
    Mastodon has neither to word: its rate limits (Rack::Attack) leave ``/oauth`` alone, and
    Doorkeeper never answers 429."""
    named = exc.details.get("oauth")
    if named:
        return str(named)
    if exc.code is Code.UNAVAILABLE or exc.code is Code.TOO_MANY_REQUESTS:
        return "temporarily_unavailable"
    return "invalid_request"


def _doorkeeper_answer(exc: Failure) -> web.Response:
    return waited(json_answer({"error": oauth_error(exc), "error_description": exc.message}, status=exc.status),
                  exc)
