"""Who is asking, behind a reverse proxy Byline trusts (``BYLINE_TRUSTED_PROXIES``).

Behind a proxy every request comes from the proxy's address, so the limits kept per client
address (failed sign-ins above all) would be shared by everyone: one person guessing passwords
would lock every other person out. A request whose direct peer is a trusted proxy is taken to
come from the address that proxy names in ``X-Forwarded-For`` (the right-most one that is not
itself a trusted proxy), with the scheme and host it names (``X-Forwarded-Proto``, ``-Host``), as
``aiohttp-remotes`` reads them. From any other peer the headers are ignored: anyone could send
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_remotes import XForwardedFiltered

Network = IPv4Network | IPv6Network


def _within(address: str, networks: Sequence[Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded_for(trusted: Sequence[Network]) -> Middleware:
    """The middleware that reads the forwarded headers of requests from ``trusted`` proxies."""
    filtered = XForwardedFiltered(set(trusted))

    @web.middleware
    async def from_proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.remote is None or not _within(request.remote, trusted):
            return await handler(request)
        return await filtered.middleware(request, handler)

    return from_proxy
