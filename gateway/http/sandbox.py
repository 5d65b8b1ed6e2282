"""The sandbox platform's public timeline pages."""

from __future__ import annotations

from aiohttp import web

from gateway.appkeys import REGISTRY, SANDBOX
from gateway.errors import BylineError, Code
from gateway.http.pages import TEMPLATES, page_headers
from gateway.types import iso

routes = web.RouteTableDef()


def _account(request: web.Request) -> str:
    account = request.match_info["account"]
    loaded = request.app[REGISTRY].get(account)
    if loaded is None or loaded.policy.platform != "sandbox":
        raise BylineError(Code.NOT_FOUND, f"no sandbox account {account!r}")
    return account


@routes.get("/sandbox/{account}.json")
async def timeline_json(request: web.Request) -> web.Response:
    """An account's sandbox timeline as JSON."""
    account = _account(request)
    posts = await request.app[SANDBOX].timeline(account)
    for post in posts:
        post["created_at"] = iso(int(str(post["created_at"])))
    return web.json_response({"account": account, "posts": posts})


@routes.get("/sandbox/{account}")
async def timeline_html(request: web.Request) -> web.Response:
    """An account's sandbox timeline as a page: from its template, with the pages' headers (it is
    on the gateway's own origin, beside the people's pages, so it takes their Content-Security-
    Policy and is never framed)."""
    account = _account(request)
    posts = await request.app[SANDBOX].timeline(account)
    shown = [{"id": str(p["id"]), "lines": str(p["text"]).split("\n"), "at": iso(int(str(p["created_at"])))}
             for p in posts]
    html = request.config_dict[TEMPLATES].get_template("sandbox.html").render(account=account, posts=shown)
    response = web.Response(text=html, content_type="text/html")
    page_headers(response)
    return response
