"""An account's page, for its people and the gateway's admins: the policy in force, readably,
its history of changes, the account's health, and its posts by state."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import QUEUE
from gateway.http.pages import caller_of, page, render, signed_in

routes = web.RouteTableDef()


@routes.get("/accounts/{account}")
@page
async def account_page(request: web.Request) -> web.StreamResponse:
    """One account's policy, history, health and posts by state."""
    session = await signed_in(request)
    found = await request.app[QUEUE].account_page(caller_of(session), request.match_info["account"])
    return render(request, "account.html", {"title": f"@{found.name}", "account": found})
