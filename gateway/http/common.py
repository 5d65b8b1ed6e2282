"""What every HTTP surface shares: the error middleware, request logging, body parsing, auth."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from multidict import MultiDictProxy
from pydantic import BaseModel, ValidationError

from gateway.appkeys import IDENTITY, SETTINGS
from gateway.errors import BylineError, Code, Failure
from gateway.jsondepth import nests_deeper
from gateway.services.posts import Caller
from gateway.storage.db import DatabaseUnavailable, unavailable
from gateway.types import UNSECRET

logger = structlog.get_logger("byline.http")
M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_CODES = {
    400: Code.BAD_REQUEST, 401: Code.UNAUTHENTICATED, 403: Code.FORBIDDEN, 404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED, 409: Code.CONFLICT, 413: Code.PAYLOAD_TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE, 422: Code.VALIDATION,
}

MAX_JSON_DEPTH: Final = 64
"""How deep arrays and objects may nest in a JSON body. Lexicon records, Mastodon parameters and
the native API need fewer than ten levels; Python's parser recurses once a level and crashes
near a thousand, so depth is counted before it runs."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_READ_HEADERS: Final = (
    "Authorization", "If-Match", "Idempotency-Key", "Content-Type", "Accept", "Accept-Language",
    "atproto-accept-labelers",
)
"""The request headers Byline reads, compares, stores or relays."""
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")

RefusalPage = Callable[[web.Request, int], "web.Response | None"]
REFUSAL_PAGE: Final = web.AppKey[RefusalPage]("refusal_page")
"""The page a person's browser is shown, for the status the router refused a request with (an
address no handler answers, a form's address opened as a page), or None when the request is no
browser's (``gateway.http.pages``); kept here, where the refusal is made, as the pages build on
this module."""


def waited(response: web.Response, error: Failure) -> web.Response:
    """``response``, with ``Retry-After`` when ``error`` says when to try again: every surface
    answers a refusal in its own words, and says the wait the same way."""
    if "retry_after" in error.details:
        response.headers["Retry-After"] = str(error.details["retry_after"])
    return response


def database_gone(request: web.Request, exc: BaseException) -> DatabaseUnavailable | None:
    """The database gone, as storage says it, when ``exc`` is the driver's word for that
    (``unavailable``: restarting, cut off), said in one line, as no bug; None for anything else,
    which each surface answers as the crash it is."""
    if not unavailable(exc):
        return None
    logger.warning("request_database_unavailable", method=request.method, path=request.path,
                   error=type(exc).__name__)
    return DatabaseUnavailable()


def error_response(error: Failure) -> web.Response:
    """The JSON answer for a ``Failure`` (with ``Retry-After`` when it says when to)."""
    return waited(web.json_response(error.to_json(), status=error.status), error)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Turn every failure into a JSON error; never show a traceback to a client."""
    given = request.headers.get("X-Request-Id", "")
    # A client's id is echoed and logged only when it is a plain token.
    # Only a label to find a request's log lines by, no secret: Python's own generator, not a
    # system call a request (the random module draws a fresh seed in each forked process).
    request_id = given if _REQUEST_ID.fullmatch(given) else f"{UNSECRET.getrandbits(64):016x}"
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    try:
        if not answered_by_surface(request):
            check_request(request)
        response = await handler(request)
    except Failure as exc:
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
        shown = request.config_dict.get(REFUSAL_PAGE)
        page = shown(request, exc.status) if shown is not None else None
        response = page or web.json_response({"error": code.value, "message": message}, status=exc.status)
    except Exception as exc:
        if isinstance(exc, ConnectionError) and gone(request):
            raise  # the client went away, or was cut off (gateway.http.server): nobody to answer
        if (outage := database_gone(request, exc)) is not None:  # no bug, and it comes back
            response = error_response(outage)
            response.headers["X-Request-Id"] = request_id
            return response
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


def gateway_app(request: web.Request) -> web.Application:
    """The gateway's own application, which keeps its services (``make_app``), from a handler
    of any surface mounted in it: the first of the applications that handle the request
    (aiohttp's ``match_info.apps``). ``request.config_dict`` finds what it keeps too, through a
    chain of the applications made anew at each look: a dozen calls, on every post's path."""
    return request.match_info.apps[0]


def base_url(request: web.Request) -> str:
    """Where clients reach this gateway: ``BYLINE_PUBLIC_URL``, or the host they asked. The one
    place the gateway's own absolute addresses come from; answers built on the asked host say
    so (``Vary: Host``, see ``vary_by_host``)."""
    configured = gateway_app(request)[SETTINGS].public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


async def vary_by_host(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare`` without ``BYLINE_PUBLIC_URL``: any answer may carry an address
    made of the ``Host`` asked (nodeinfo, the instance, the OpenAPI servers, a feed), so no
    shared cache may give one host's answer to a request for another: a forged ``Host`` would
    otherwise plant its address in what every reader gets."""
    vary = response.headers.get("Vary")
    if vary is None:
        response.headers["Vary"] = "Host"
    elif "host" not in {field.strip().lower() for field in vary.split(",")}:
        response.headers["Vary"] = f"{vary}, Host"


def gone(request: web.Request) -> bool:
    """Whether the request's connection is closed or closing: an answer can no longer reach it."""
    transport = request.transport
    return transport is None or transport.is_closing()


def answered_by_surface(request: web.Request) -> bool:
    """Whether a surface mounted as a sub-application (``/api``, ``/xrpc``…) answers this request: it
    matched a route there. That surface's own error middleware then checks the request
    (``check_request``) and words its refusals; the router's 404 and 405, even under a
    surface's prefix, are the gateway's own."""
    info = request.match_info
    return len(info.apps) > 1 and info.http_exception is None


@web.middleware
async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The middleware of a surface whose refusals are the gateway's own: the text checks, which
    a surface runs itself (``answered_by_surface``), and nothing else."""
    if answered_by_surface(request):
        check_request(request)
    return await handler(request)


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored or compared as text, or None when it can.

    PostgreSQL refuses NUL in text, and a lone surrogate (from a JSON ``\\ud800`` escape, or an
    undecodable byte in a header) cannot be written as UTF-8 at all. SQLite would take both;
    they are refused on both databases alike, wherever they come in.
    """
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone surrogate, which is not text"


def _unstorable_field(field: str, problem: str) -> BylineError:
    return BylineError(Code.VALIDATION, f"{field} {problem}", field=field,
                       fields=[{"field": field, "message": problem}])


def check_text(value: Any, field: str = "") -> None:
    """Refuse (422 naming the field) a parsed body, form or query in which a string, key or
    value, cannot be stored (``unstorable``); ``field`` is where ``value`` sits."""
    if isinstance(value, str):
        if (problem := unstorable(value)) is not None:
            raise _unstorable_field(field or "body", problem)
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and (problem := unstorable(key)) is not None:
                raise _unstorable_field(f"a field name in {field or 'the body'}", problem)
            check_text(item, f"{field}.{key}" if field else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_text(item, f"{field}.{index}" if field else str(index))


def check_request(request: web.Request) -> None:
    """Refuse what no handler can use: a query parameter, a path segment or a header Byline
    reads (``_READ_HEADERS``) that is not storable text. A bearer token that is not text is a
    401, like any other token that is not one."""
    for name in _READ_HEADERS:
        for value in request.headers.getall(name, ()):
            if (problem := unstorable(value)) is None:
                continue
            if name == "Authorization":
                raise BylineError(Code.UNAUTHENTICATED, f"the Authorization header {problem}",
                                  oauth="invalid_client")
            raise BylineError(Code.BAD_REQUEST, f"the {name} header {problem}", field=name)
    if any(unstorable(value) for value in request.match_info.values()):
        raise BylineError(Code.NOT_FOUND, "nothing at this path: it holds a character that is not text")
    if escapes_not_text(request.rel_url.raw_query_string):
        raise BylineError(Code.BAD_REQUEST, "the query string has a %-escape that is not UTF-8 text", field="query")
    for name, value in request.query.items():
        if (problem := unstorable(name)) is not None:
            raise _unstorable_field("a query parameter name", problem)
        if (problem := unstorable(value)) is not None:
            raise _unstorable_field(name, problem)


def escapes_not_text(encoded: str, charset: str = "utf-8") -> bool:
    """Whether a urlencoded text (a query string, a form's body) has a %-escape that is not text
    in ``charset``. aiohttp and yarl read one as U+FFFD, so ``%FF`` in a status would go out as
    words no one wrote; Rails refuses it (400), as Byline does. Without a ``%`` there is nothing
    to decode (most requests: a query string, when there is one, rarely escapes anything)."""
    if "%" not in encoded:
        return False
    try:
        parse_qsl(encoded, keep_blank_values=True, encoding=charset, errors="strict")
    except UnicodeDecodeError:
        return True
    return False


async def posted_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | web.FileField]:
    """A urlencoded or multipart form as aiohttp reads it, or ``ValueError`` for one that is not
    text: a %-escape that is not text in its charset (``escapes_not_text``), or a charset,
    of the body or of a part, that Python does not know (aiohttp's ``LookupError``, else a
    500). aiohttp's own refusals (``ValueError``, ``BadHttpMessage``…) are the caller's to catch."""
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            charset = request.charset or "utf-8"
            if escapes_not_text((await request.read()).decode(charset), charset):
                raise ValueError("a %-escape of the form is not text")
        return await request.post()
    except LookupError as exc:
        raise ValueError(f"the form names a charset that is not one: {exc}") from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def decode_json(raw: bytes) -> Any:
    """JSON text, parsed with bounds first: its size is bounded already (aiohttp reads no more
    than ``client_max_size``), it is UTF-8 (as RFC 8259 asks of JSON between systems; a leading
    byte-order mark is let go), its nesting is counted before the parser runs (400 past
    ``MAX_JSON_DEPTH``), and then every string in it is checked (``check_text``, 422).

    UTF-8 first, because the count reads bytes: Python's parser also takes UTF-16 and UTF-32,
    where a character such as ``∀`` (``00 22`` in UTF-16-LE) reads as a quote to the count,
    which then skips the brackets after it, and the parser recursed past its limit (a 500)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BylineError(Code.INVALID_JSON, f"body is not UTF-8 JSON: {exc.reason} at byte {exc.start}") from None
    if nests_deeper(raw, MAX_JSON_DEPTH):
        raise BylineError(
            Code.INVALID_JSON, f"body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
            limit=MAX_JSON_DEPTH,
        )
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError as exc:
        raise BylineError(Code.INVALID_JSON, f"body is not valid JSON: {exc}") from None
    except RecursionError:  # the count above keeps it from here; never a 500 if it did not
        raise BylineError(Code.INVALID_JSON, f"body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels",
                          limit=MAX_JSON_DEPTH) from None
    check_text(value)
    return value


async def read_json(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The request's JSON object body (``decode_json``), or a 400/415/422 saying what is wrong with it."""
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
    body = decode_json(raw)
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


async def authenticated(request: web.Request, scope: str | None = None) -> Caller:
    """Who is calling, or 401; 403 when an app's OAuth token lacks ``scope``.

    Without ``scope`` only a person's own token will do: an app's token is limited to what its
    scopes name, and no Mastodon scope names approving, rejecting, adopting or retrying a post.
    """
    caller = await request.app[IDENTITY].authenticate(bearer(request))
    if scope is None and caller.scopes is not None:
        raise BylineError(Code.FORBIDDEN, "an app's token cannot do this: use your own Byline token")
    if scope is not None and not caller.may(scope):
        raise BylineError(Code.FORBIDDEN, f"this app's token was not granted {scope}")
    return caller
