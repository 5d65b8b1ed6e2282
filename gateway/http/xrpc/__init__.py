"""The XRPC surface, mounted at ``/xrpc``: what AT Protocol clients (the ``atproto`` SDK, apps)
speak to a PDS, so they can point at Byline with nothing changed but the server address and
the password.

Sessions and post records are answered here (``services/xrpc_sessions.py``,
``services/xrpc_repo.py``); a listed set of reads is relayed to the account's PDS (for an
account with no PDS, the author feed and posts are answered from what Byline published:
``services/xrpc_reads.py``), and every other call is refused (``xrpc_repo.relay_refusal``).
Method names are matched exactly as written: a PDS routes them whatever their case, so
another spelling must never be taken for an unknown method and relayed. Errors come back as
a PDS gives them (``errors``).

``surface()`` builds the sub-application: its table of methods, made then and held by it, one
route that dispatches every call by name, and its error middleware. The handlers are in
``methods``, the procedures' inputs in ``bodies``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web

from gateway.http.common import Handler
from gateway.http.xrpc import methods
from gateway.http.xrpc.errors import invalid, pds_errors
from gateway.services.xrpc_repo import misspelt

_NSID = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+){2,}$")


class Methods:
    """The methods answered here, queries (GET) and procedures (POST), by their exact names;
    any other well-formed name is relayed (``methods.relay``)."""

    def __init__(self, *, queries: Mapping[str, Handler], procedures: Mapping[str, Handler]) -> None:
        self._queries = dict(queries)
        self._procedures = dict(procedures)
        self._own_by_lower = {nsid.lower(): nsid for nsid in (*queries, *procedures)}

    def handler(self, method: str, nsid: str) -> Handler:
        """The handler of one call; a 400 for a name that is none, one of ours in another
        spelling, or one of ours with the other HTTP method."""
        if not _NSID.match(nsid):
            raise invalid(f"{nsid!r} is not an XRPC method name")
        own = self._own_by_lower.get(nsid.lower())
        if own is not None and own != nsid:
            raise misspelt(nsid, own)
        if method == "GET":
            handler = self._queries.get(nsid)
            if handler is None and nsid in self._procedures:
                raise invalid("Incorrect HTTP method (GET) expected POST")
        elif method == "POST":
            handler = self._procedures.get(nsid)
            if handler is None and nsid in self._queries:
                raise invalid("Incorrect HTTP method (POST) expected GET")
        else:
            raise invalid(f"XRPC calls use GET or POST, not {method}")
        return handler or methods.relay


METHODS = web.AppKey("xrpc_methods", Methods)


async def dispatch(request: web.Request) -> web.StreamResponse:
    """Route one XRPC call to its handler, or relay it."""
    handler = request.app[METHODS].handler(request.method, request.match_info["nsid"])
    return await handler(request)


def surface() -> web.Application:
    """The XRPC sub-application, to mount at ``/xrpc``."""
    xrpc = web.Application(middlewares=[pds_errors])
    xrpc[METHODS] = Methods(
        queries={
            "com.atproto.server.describeServer": methods.describe_server,
            "com.atproto.server.getSession": methods.get_session,
            "app.bsky.actor.getProfile": methods.get_profile,
        },
        procedures={
            "com.atproto.server.createSession": methods.create_session,
            "com.atproto.server.refreshSession": methods.refresh_session,
            "com.atproto.server.deleteSession": methods.delete_session,
            "com.atproto.repo.createRecord": methods.create_record,
            "com.atproto.repo.putRecord": methods.put_record,
            "com.atproto.repo.deleteRecord": methods.delete_record,
            "com.atproto.repo.applyWrites": methods.apply_writes,
        },
    )
    xrpc.router.add_route("*", "/{nsid}", dispatch)
    return xrpc
