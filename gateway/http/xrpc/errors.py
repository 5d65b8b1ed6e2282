"""Errors as a PDS gives them: the PDS's status and ``{"error": Name, "message": ...}``."""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.errors import BylineError, Code, Failure
from gateway.http.common import Handler, answered_by_surface, check_request, database_gone, gone, waited
from gateway.storage.db import DatabaseUnavailable

logger = structlog.get_logger("byline.http.xrpc")

# Error names a PDS answers with, and their statuses.
_STATUS: dict[str, int] = {
    "InvalidRequest": 400, "InvalidSwap": 400, "ExpiredToken": 400, "InvalidToken": 400, "AccountNotFound": 400,
    "RecordNotFound": 400,
    "AuthMissing": 401, "AuthenticationRequired": 401, "Forbidden": 403,
    "PayloadTooLarge": 413, "RateLimitExceeded": 429, "InternalServerError": 500,
    "MethodNotImplemented": 501, "UpstreamFailure": 502, "NotEnoughResources": 503,
}
_BY_CODE: dict[Code, str] = {
    Code.UNAUTHENTICATED: "AuthenticationRequired", Code.FORBIDDEN: "Forbidden",
    Code.PAYLOAD_TOO_LARGE: "PayloadTooLarge", Code.UNAVAILABLE: "UpstreamFailure",
    Code.TOO_MANY_REQUESTS: "RateLimitExceeded",
    Code.INTERNAL: "InternalServerError",
}


def _answer(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"error": name, "message": message}, status=status)


def error_response(exc: Failure) -> web.Response:
    """A ``Failure`` as a PDS would answer it (its ``xrpc`` detail names the error, if any)."""
    hint = exc.details.get("xrpc")
    if isinstance(exc, DatabaseUnavailable):
        # Byline's own database, not the PDS behind it: a 503, the name the atproto libraries
        # give one (a 502 UpstreamFailure tells a client the PDS's upstream failed).
        name = "NotEnoughResources"
    elif isinstance(hint, str) and hint in _STATUS:
        name = hint
    else:
        name = _BY_CODE.get(exc.code, "InvalidRequest")
    response = waited(_answer(_STATUS[name], name, exc.message), exc)
    limit = exc.details.get("rate_limit")
    if isinstance(limit, dict):
        # As a PDS says its limits (IETF draft RateLimit headers; the reset in epoch seconds).
        response.headers["RateLimit-Limit"] = str(limit["limit"])
        response.headers["RateLimit-Remaining"] = "0"
        response.headers["RateLimit-Reset"] = str(limit["reset"])
        response.headers["RateLimit-Policy"] = f"{limit['limit']};w={limit['window']}"
    return response


def invalid(message: str) -> BylineError:
    """The call cannot be made as sent: ``InvalidRequest``, 400."""
    return BylineError(Code.BAD_REQUEST, message, xrpc="InvalidRequest")


@web.middleware
async def pds_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check every call (``check_request``) and answer every failure of one as a PDS does, a crash
    too. A path the router has nothing for is the gateway's 404, answered by its own middleware."""
    if not answered_by_surface(request):
        return await handler(request)
    try:
        check_request(request)
        return await handler(request)
    except Failure as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return _answer(413, "PayloadTooLarge", "request entity too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _answer(exc.status, "InvalidRequest", exc.reason)
    except Exception as exc:
        if isinstance(exc, ConnectionError) and gone(request):
            raise  # nobody to answer (see common.error_middleware)
        if (outage := database_gone(request, exc)) is not None:
            return error_response(outage)
        logger.exception("xrpc_crashed", nsid=request.match_info.get("nsid"))
        return _answer(500, "InternalServerError", "Internal Server Error")
