"""What every HTTP surface shares: the error middleware, request logging, body parsing, auth."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.appkeys import IDENTITY
from gateway.errors import BylineError, Code
from gateway.services.posts import Caller

logger = structlog.get_logger("byline.http")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: Code.BAD_REQUEST, 401: Code.UNAUTHENTICATED, 403: Code.FORBIDDEN, 404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED, 409: Code.CONFLICT, 413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE, 422: Code.VALIDATION,
}


def error_response(error: BylineError) -> web.Response:
    """The JSON answer for a ``BylineError``."""
    return web.json_response(error.to_json(), status=error.status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; never show a traceback to a client."""
    request_id = request.headers.get("X-Request-Id") or secrets.token_hex(8)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        response = await handler(request)
    except BylineError as exc:
        response = error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, Code.BAD_REQUEST)
        message = {
            404: f"nothing at {request.path}",
            405: f"{request.method} is not allowed on {request.path}",
            413: "request body too large",
        }.get(exc.status, exc.reason)
        response = web.json_response({"error": code.value, "message": message}, status=exc.status)
    except Exception:
        logger.exception("request_crashed", method=request.method, path=request.path)
        response = web.json_response(
            {"error": Code.INTERNAL.value, "message": "internal error; it has been logged",
             "request_id": request_id},
            status=500,
        )
    response.headers["X-Request-Id"] = request_id
    logger.info(
        "request_done", method=request.method, path=request.path, status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 2),
    )
    return response


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body, or a 400/415 saying what is wrong with it."""
    if not request.can_read_body:
        if required:
            raise BylineError(Code.INVALID_JSON, "a JSON object body is required")
        return {}
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise BylineError(
            Code.UNSUPPORTED_MEDIA_TYPE, f"send Content-Type: application/json, not {request.content_type}"
        )
    raw = await request.read()
    if not raw.strip() and not required:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BylineError(Code.INVALID_JSON, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BylineError(Code.INVALID_JSON, "body must be a JSON object")
    return body


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate a body against a model; 422 naming each bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = ".".join(str(p) for p in err["loc"]) or "body"
            msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append({"field": name, "message": msg})
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise BylineError(Code.VALIDATION, f"invalid request: {summary}", fields=problems) from None


def bearer(request: web.Request) -> str | None:
    """The bearer token of a request, if it sent one."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticated(request: web.Request) -> Caller:
    """Who is calling, or 401."""
    return await request.app[IDENTITY].authenticate(bearer(request))
