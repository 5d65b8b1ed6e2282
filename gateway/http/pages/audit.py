"""The audit page (``/audit``): find posts that went out by post id, person, account or platform
URL, and read the latest signed checkpoint with the key to check it against."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import TRANSPARENCY
from gateway.http.pages import page, render, session_of
from gateway.services.transparency import SEARCH_KINDS

routes = web.RouteTableDef()

KIND_LABELS = {"post": "Post id", "person": "Person", "account": "Account", "url": "Platform URL"}


@routes.get("/audit")
@page
async def audit(request: web.Request) -> web.StreamResponse:
    """The search form, its results when asked (or why it cannot be made), the latest checkpoint."""
    await session_of(request)
    found = await request.app[TRANSPARENCY].audit(request.query.get("kind"), request.query.get("q"))
    return render(request, "audit.html", {
        "title": "Audit", "kinds": [(k, KIND_LABELS[k]) for k in SEARCH_KINDS], "page": found,
    }, status=found.problem.status if found.problem is not None else 200)
