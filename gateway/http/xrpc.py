"""The XRPC surface, ``/xrpc/{nsid}``: what AT Protocol clients (the ``atproto`` SDK, apps)
speak to a PDS, so they can point at Byline with nothing changed but the server address and
the password.

Sessions and post records are answered here (``services/xrpc_sessions.py``,
``services/xrpc_repo.py``); a listed set of reads is relayed to the account's PDS, and every
other call is refused (``xrpc_repo.relay_refusal``). Method names are matched exactly as
written: a PDS routes them whatever their case, so another spelling must never be taken for
an unknown method and relayed. Each handler parses, makes one service call, and answers.
Errors come back as a PDS gives them: the PDS's status and ``{"error": Name, "message": ...}``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.appkeys import XRPC_REPO, XRPC_SESSIONS
from gateway.errors import BylineError, Code
from gateway.http.common import answers_in_own_format, check_request, gone, parse, read_json
from gateway.services.xrpc_repo import STREAMED_QUERIES, misspelt, relayed_headers
from gateway.services.xrpc_sessions import XrpcSession

logger = structlog.get_logger("byline.http.xrpc")
routes = web.RouteTableDef()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Error names a PDS answers with, and their statuses.
_STATUS: dict[str, int] = {
    "InvalidRequest": 400, "ExpiredToken": 400, "InvalidToken": 400, "AccountNotFound": 400,
    "AuthMissing": 401, "AuthenticationRequired": 401, "Forbidden": 403,
    "PayloadTooLarge": 413, "RateLimitExceeded": 429, "InternalServerError": 500,
    "MethodNotImplemented": 501, "UpstreamFailure": 502,
}
_BY_CODE: dict[Code, str] = {
    Code.UNAUTHENTICATED: "AuthenticationRequired", Code.FORBIDDEN: "Forbidden",
    Code.PAYLOAD_TOO_LARGE: "PayloadTooLarge", Code.UNAVAILABLE: "UpstreamFailure",
    Code.TOO_MANY_REQUESTS: "RateLimitExceeded",
    Code.INTERNAL: "InternalServerError",
}
_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+){2,}$")

_QUERIES: dict[str, Handler] = {}
_PROCEDURES: dict[str, Handler] = {}
_OWN_BY_LOWER: dict[str, str] = {}


def _query(nsid: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _QUERIES[nsid] = handler
        _OWN_BY_LOWER[nsid.lower()] = nsid
        return handler
    return register


def _procedure(nsid: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        _PROCEDURES[nsid] = handler
        _OWN_BY_LOWER[nsid.lower()] = nsid
        return handler
    return register


def _answer(status: int, name: str, message: str) -> web.Response:
    return web.json_response({"error": name, "message": message}, status=status)


def error_response(exc: BylineError) -> web.Response:
    """A ``BylineError`` as a PDS would answer it."""
    hint = exc.details.get("xrpc")
    name = hint if isinstance(hint, str) and hint in _STATUS else _BY_CODE.get(exc.code, "InvalidRequest")
    response = _answer(_STATUS[name], name, exc.message)
    if "retry_after" in exc.details:
        response.headers["Retry-After"] = str(exc.details["retry_after"])
    return response


def _invalid(message: str) -> BylineError:
    return BylineError(Code.BAD_REQUEST, message, xrpc="InvalidRequest")


@routes.route("*", "/xrpc/{nsid}")
@answers_in_own_format
async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route one XRPC call to its handler, or relay it; answer every failure as a PDS does."""
    nsid = request.match_info["nsid"]
    try:
        check_request(request)
        if not _NSID.match(nsid):
            raise _invalid(f"{nsid!r} is not an XRPC method name")
        own = _OWN_BY_LOWER.get(nsid.lower())
        if own is not None and own != nsid:
            raise misspelt(nsid, own)
        if request.method == "GET":
            handler = _QUERIES.get(nsid)
            if handler is None and nsid in _PROCEDURES:
                raise _invalid("Incorrect HTTP method (GET) expected POST")
        elif request.method == "POST":
            handler = _PROCEDURES.get(nsid)
            if handler is None and nsid in _QUERIES:
                raise _invalid("Incorrect HTTP method (POST) expected GET")
        else:
            raise _invalid(f"XRPC calls use GET or POST, not {request.method}")
        return await (handler or _relay)(request)
    except BylineError as exc:
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
        logger.exception("xrpc_crashed", nsid=nsid)
        return _answer(500, "InternalServerError", "Internal Server Error")


async def _session(request: web.Request) -> XrpcSession:
    session = await request.app[XRPC_SESSIONS].authenticate(request.headers.get("Authorization"))
    structlog.contextvars.bind_contextvars(user=session.user, account=session.account)
    return session


def _relayed_headers(request: web.Request) -> dict[str, str]:
    return relayed_headers(request.headers)


def _raw(status: int, headers: dict[str, str], body: bytes) -> web.Response:
    return web.Response(status=status, headers=headers, body=body)


# -- bodies ---------------------------------------------------------------------------------


class _Body(BaseModel):
    # Lexicon inputs are open: unknown fields are accepted and ignored, as a PDS does.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True, populate_by_name=True)


class CreateSessionBody(_Body):
    """``com.atproto.server.createSession``."""

    identifier: str = Field(min_length=1, max_length=512)
    password: str = Field(min_length=1, max_length=512)


class CreateRecordBody(_Body):
    """``com.atproto.repo.createRecord``."""

    repo: str = Field(min_length=1, max_length=2048)
    collection: str = Field(min_length=1, max_length=317)
    rkey: str | None = Field(default=None, max_length=512)
    validate_: bool | None = Field(default=None, alias="validate")
    record: dict[str, Any]
    swap_commit: str | None = Field(default=None, alias="swapCommit")


class DeleteRecordBody(_Body):
    """``com.atproto.repo.deleteRecord``."""

    repo: str = Field(min_length=1, max_length=2048)
    collection: str = Field(min_length=1, max_length=317)
    rkey: str = Field(min_length=1, max_length=512)
    swap_record: str | None = Field(default=None, alias="swapRecord")
    swap_commit: str | None = Field(default=None, alias="swapCommit")


class ApplyWritesBody(_Body):
    """``com.atproto.repo.applyWrites``."""

    repo: str = Field(min_length=1, max_length=2048)
    validate_: bool | None = Field(default=None, alias="validate")
    writes: list[Any]
    swap_commit: str | None = Field(default=None, alias="swapCommit")


# -- sessions -------------------------------------------------------------------------------


@_query("com.atproto.server.describeServer")
async def describe_server(request: web.Request) -> web.Response:
    """What this server is: no sign-ups here; accounts are made by an admin."""
    return web.json_response({
        "did": request.app[XRPC_SESSIONS].service_did, "availableUserDomains": [],
        "inviteCodeRequired": True,
    })


@_procedure("com.atproto.server.createSession")
async def create_session(request: web.Request) -> web.Response:
    """Log in with the account's handle and a Byline app password."""
    body = parse(CreateSessionBody, await read_json(request))
    answer = await request.app[XRPC_SESSIONS].create(
        identifier=body.identifier, password=body.password, client=request.remote or "",
    )
    return web.json_response(answer)


@_procedure("com.atproto.server.refreshSession")
async def refresh_session(request: web.Request) -> web.Response:
    """New tokens for a refresh token."""
    return web.json_response(await request.app[XRPC_SESSIONS].refresh(request.headers.get("Authorization")))


@_query("com.atproto.server.getSession")
async def get_session(request: web.Request) -> web.Response:
    """Who the session is."""
    session = await _session(request)
    return web.json_response(request.app[XRPC_SESSIONS].describe(session))


@_procedure("com.atproto.server.deleteSession")
async def delete_session(request: web.Request) -> web.Response:
    """Log out: the session is revoked."""
    await request.app[XRPC_SESSIONS].delete(request.headers.get("Authorization"))
    return web.Response(status=200)


# -- records --------------------------------------------------------------------------------


@_procedure("com.atproto.repo.createRecord")
async def create_record(request: web.Request) -> web.Response:
    """A post, through the account's policy."""
    session = await _session(request)
    body = parse(CreateRecordBody, await read_json(request))
    answer = await request.app[XRPC_REPO].create_record(
        session, repo=body.repo, collection=body.collection, rkey=body.rkey, record=body.record,
        swap_commit=body.swap_commit,
    )
    return web.json_response(answer)


@_procedure("com.atproto.repo.deleteRecord")
async def delete_record(request: web.Request) -> web.Response:
    """Take a waiting post back, or delete a published one."""
    session = await _session(request)
    body = parse(DeleteRecordBody, await read_json(request))
    if body.swap_record is not None or body.swap_commit is not None:
        raise _invalid("swapRecord and swapCommit are not supported by Byline")
    answer = await request.app[XRPC_REPO].delete_record(
        session, repo=body.repo, collection=body.collection, rkey=body.rkey
    )
    return web.json_response(answer)


@_procedure("com.atproto.repo.applyWrites")
async def apply_writes(request: web.Request) -> web.Response:
    """Post creates and deletes, in order."""
    session = await _session(request)
    body = parse(ApplyWritesBody, await read_json(request))
    if body.swap_commit is not None:
        raise _invalid("swapCommit is not supported by Byline")
    return web.json_response(
        await request.app[XRPC_REPO].apply_writes(session, repo=body.repo, writes=body.writes)
    )


# -- reads ----------------------------------------------------------------------------------


@_query("app.bsky.actor.getProfile")
async def get_profile(request: web.Request) -> web.Response:
    """A profile; the session's own account is always answered."""
    session = await _session(request)
    actor = request.query.get("actor")
    if not actor:
        raise _invalid("Params must have the property \"actor\"")
    answer = await request.app[XRPC_REPO].profile(
        session, actor=actor, query=request.rel_url.raw_query_string,
        headers=_relayed_headers(request),
    )
    return _raw(answer.status, answer.headers, answer.body)


async def _relay(request: web.Request) -> web.StreamResponse:
    """Any other call: a listed read relayed to the account's PDS, or refused."""
    session = await _session(request)
    if request.method == "GET" and request.match_info["nsid"] in STREAMED_QUERIES:
        return await _relay_stream(request, session)
    body = await request.read() if request.method == "POST" else None
    answer = await request.app[XRPC_REPO].relay(
        session, method=request.method, nsid=request.match_info["nsid"],
        query=request.rel_url.raw_query_string, body=body, headers=_relayed_headers(request),
    )
    return _raw(answer.status, answer.headers, answer.body)


async def _relay_stream(request: web.Request, session: XrpcSession) -> web.StreamResponse:
    """A blob, passed on as the PDS sends it: the gateway holds a chunk of it at a time."""
    nsid = request.match_info["nsid"]
    async with request.app[XRPC_REPO].relay_stream(
        session, nsid=nsid, query=request.rel_url.raw_query_string, headers=_relayed_headers(request),
    ) as answer:
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        await response.prepare(request)
        try:
            async for chunk in answer.chunks:
                await response.write(chunk)
        except BylineError as exc:
            # The answer has begun: it can only be cut short, so that the client sees it broken.
            logger.warning("xrpc_stream_broken", nsid=nsid, reason=exc.message)
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("the PDS broke off") from None
        await response.write_eof()
    return response
