"""The XRPC methods Byline answers itself, and the relay for every other: each parses, makes one
service call, and answers. Which name goes to which handler is the table in ``surface()``."""

from __future__ import annotations

import structlog
from aiohttp import web

from gateway.appkeys import XRPC_REPO, XRPC_SESSIONS
from gateway.errors import Failure
from gateway.http.common import parse, read_json
from gateway.http.xrpc.bodies import (
    ApplyWritesBody,
    CreateRecordBody,
    CreateSessionBody,
    DeleteRecordBody,
    PutRecordBody,
)
from gateway.http.xrpc.errors import invalid
from gateway.services.xrpc_repo import STREAMED_QUERIES, relayed_headers
from gateway.services.xrpc_sessions import XrpcSession

logger = structlog.get_logger("byline.http.xrpc")


async def _session(request: web.Request) -> XrpcSession:
    session = await request.config_dict[XRPC_SESSIONS].authenticate(request.headers.get("Authorization"))
    structlog.contextvars.bind_contextvars(user=session.user, account=session.account)
    return session


def _relayed_headers(request: web.Request) -> dict[str, str]:
    return relayed_headers(request.headers)


# What a PDS sends with every answer it relays (its own getBlob does the same): a blob is any
# bytes under the type its uploader declared (an SVG with a script, an HTML page), and under
# Byline's origin, beside its sign-in and approval pages, nothing of it may load or run.
_SANDBOXED = {"Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox",
              "X-Content-Type-Options": "nosniff"}


def _raw(status: int, headers: dict[str, str], body: bytes) -> web.Response:
    return web.Response(status=status, headers={**headers, **_SANDBOXED}, body=body)


# -- sessions -------------------------------------------------------------------------------


async def describe_server(request: web.Request) -> web.Response:
    """``com.atproto.server.describeServer``: no sign-ups here; accounts are made by an admin."""
    return web.json_response({
        "did": request.config_dict[XRPC_SESSIONS].service_did, "availableUserDomains": [],
        "inviteCodeRequired": True,
    })


async def create_session(request: web.Request) -> web.Response:
    """``com.atproto.server.createSession``: log in with the account's handle and a Byline app password."""
    body = parse(CreateSessionBody, await read_json(request))
    answer = await request.config_dict[XRPC_SESSIONS].create(
        identifier=body.identifier, password=body.password, client=request.remote or "",
    )
    return web.json_response(answer)


async def refresh_session(request: web.Request) -> web.Response:
    """``com.atproto.server.refreshSession``: new tokens for a refresh token."""
    return web.json_response(
        await request.config_dict[XRPC_SESSIONS].refresh(request.headers.get("Authorization"))
    )


async def get_session(request: web.Request) -> web.Response:
    """``com.atproto.server.getSession``: who the session is."""
    session = await _session(request)
    return web.json_response(request.config_dict[XRPC_SESSIONS].describe(session))


async def delete_session(request: web.Request) -> web.Response:
    """``com.atproto.server.deleteSession``: log out, and the session is revoked."""
    await request.config_dict[XRPC_SESSIONS].delete(request.headers.get("Authorization"))
    return web.Response(status=200)


# -- records --------------------------------------------------------------------------------


async def create_record(request: web.Request) -> web.Response:
    """``com.atproto.repo.createRecord``: a post, through the account's policy."""
    session = await _session(request)
    body = parse(CreateRecordBody, await read_json(request))
    answer = await request.config_dict[XRPC_REPO].create_record(
        session, repo=body.repo, collection=body.collection, rkey=body.rkey, record=body.record,
        swap_commit=body.swap_commit,
    )
    return web.json_response(answer)


async def put_record(request: web.Request) -> web.Response:
    """``com.atproto.repo.putRecord``: a published post's threadgate or postgate, written now."""
    session = await _session(request)
    body = parse(PutRecordBody, await read_json(request))
    if body.swap_commit is not None:
        raise invalid("swapCommit is not supported by Byline")
    answer = await request.config_dict[XRPC_REPO].put_record(
        session, repo=body.repo, collection=body.collection, rkey=body.rkey, record=body.record,
        swap_record=body.swap_record,
    )
    return web.json_response(answer)


async def delete_record(request: web.Request) -> web.Response:
    """``com.atproto.repo.deleteRecord``: take a waiting post back, or delete a published one (or
    its threadgate or postgate)."""
    session = await _session(request)
    body = parse(DeleteRecordBody, await read_json(request))
    if body.swap_commit is not None:
        raise invalid("swapCommit is not supported by Byline")
    answer = await request.config_dict[XRPC_REPO].delete_record(
        session, repo=body.repo, collection=body.collection, rkey=body.rkey, swap_record=body.swap_record
    )
    return web.json_response(answer)


async def apply_writes(request: web.Request) -> web.Response:
    """``com.atproto.repo.applyWrites``: post creates and deletes, in order; or changes of
    published posts' threadgates and postgates."""
    session = await _session(request)
    body = parse(ApplyWritesBody, await read_json(request))
    if body.swap_commit is not None:
        raise invalid("swapCommit is not supported by Byline")
    return web.json_response(
        await request.config_dict[XRPC_REPO].apply_writes(session, repo=body.repo, writes=body.writes)
    )


# -- reads ----------------------------------------------------------------------------------


async def get_profile(request: web.Request) -> web.Response:
    """``app.bsky.actor.getProfile``: a profile; the session's own account is always answered."""
    session = await _session(request)
    actor = request.query.get("actor")
    if not actor:
        raise invalid("Params must have the property \"actor\"")
    answer = await request.config_dict[XRPC_REPO].profile(
        session, actor=actor, query=request.rel_url.raw_query_string,
        headers=_relayed_headers(request),
    )
    return _raw(answer.status, answer.headers, answer.body)


async def relay(request: web.Request) -> web.StreamResponse:
    """Any other call: a listed read relayed to the account's PDS, or refused."""
    session = await _session(request)
    if request.method == "GET" and request.match_info["nsid"] in STREAMED_QUERIES:
        return await _relay_stream(request, session)
    body = await request.read() if request.method == "POST" else None
    answer = await request.config_dict[XRPC_REPO].relay(
        session, method=request.method, nsid=request.match_info["nsid"],
        query=request.rel_url.raw_query_string, body=body, headers=_relayed_headers(request),
    )
    return _raw(answer.status, answer.headers, answer.body)


async def _relay_stream(request: web.Request, session: XrpcSession) -> web.StreamResponse:
    """A blob, passed on as the PDS sends it: the gateway holds a chunk of it at a time."""
    nsid = request.match_info["nsid"]
    async with request.config_dict[XRPC_REPO].relay_stream(
        session, nsid=nsid, query=request.rel_url.raw_query_string, headers=_relayed_headers(request),
    ) as answer:
        response = web.StreamResponse(status=answer.status, headers={**answer.headers, **_SANDBOXED})
        await response.prepare(request)
        try:
            async for chunk in answer.chunks:
                await response.write(chunk)
        except Failure as exc:
            # The answer has begun: it can only be cut short, so that the client sees it broken.
            logger.warning("xrpc_stream_broken", nsid=nsid, reason=exc.message)
            if request.transport is not None:
                request.transport.close()
            raise ConnectionResetError("the PDS broke off") from None
        await response.write_eof()
    return response
