"""The start page: the accounts whose voice this gateway carries, and the way in."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import REGISTRY
from gateway.http.pages import page, render, session_of

routes = web.RouteTableDef()


@routes.get("/")
@page
async def home(request: web.Request) -> web.StreamResponse:
    """Every account with a policy in force, each linking to its public page."""
    await session_of(request)
    accounts = [{"name": name, "tier": loaded.policy.tier.value}
                for name, loaded in sorted(request.app[REGISTRY].policies.items())]
    return render(request, "home.html", {"title": "Byline", "accounts": accounts})
