"""NodeInfo discovery, as Mastodon serves it: ``/.well-known/nodeinfo`` links to the NodeInfo
2.0 document at ``/nodeinfo/2.0``, which client libraries read to learn what kind of server they
talk to before they choose how to speak to it.

Byline is not a server people register on (``openRegistrations`` is false) and federates with
nobody itself; what it speaks is Mastodon's client API and AT Protocol's XRPC, which the
``metadata`` says, with the Mastodon release its API follows as its ``upstream`` (the key
client libraries such as megalodon read to take a server they do not know for Mastodon).
The usage figures are left out: the schema requires the ``users`` object, not its counts, and
who uses a gateway is not for anyone without a token to read.
"""

from __future__ import annotations

import importlib.metadata
import json
from typing import Any, Final

from aiohttp import web

from gateway.http.mastodon.answers import base_url
from gateway.http.mastodon.entities import MASTODON_VERSION

SCHEMA_2_0: Final = "http://nodeinfo.diaspora.software/ns/schema/2.0"
"""The link relation (and schema id) of a NodeInfo 2.0 document."""

routes = web.RouteTableDef()


def _version() -> str:
    try:
        return importlib.metadata.version("byline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        return "0"


def document() -> dict[str, Any]:
    """The NodeInfo 2.0 document."""
    return {
        "version": "2.0",
        "software": {"name": "byline", "version": _version()},
        # The schema asks for at least one: what Byline's posts go out over to Mastodon.
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": False,
        "usage": {"users": {}},
        "metadata": {
            "nodeName": "Byline",
            "nodeDescription": "A gateway that posts to social platforms under each account's policy",
            "apis": ["mastodon", "atproto"],
            "upstream": {"name": "mastodon", "version": MASTODON_VERSION},
        },
    }


@routes.get("/.well-known/nodeinfo")
async def discovery(request: web.Request) -> web.Response:
    """The JRD document that links to the NodeInfo versions served here."""
    return web.json_response(
        {"links": [{"rel": SCHEMA_2_0, "href": f"{base_url(request)}/nodeinfo/2.0"}]},
        headers={"Cache-Control": "public, max-age=1800"},
    )


@routes.get("/nodeinfo/2.0")
async def nodeinfo(request: web.Request) -> web.Response:
    """The NodeInfo 2.0 document, with the content type its profile names."""
    return web.Response(body=json.dumps(document()).encode(), headers={
        "Cache-Control": "public, max-age=1800", "Content-Type": f'application/json; profile="{SCHEMA_2_0}#"',
    })
