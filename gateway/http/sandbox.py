"""The sandbox platform's public timeline pages."""

from __future__ import annotations

import html

from aiohttp import web

from gateway.appkeys import REGISTRY, SANDBOX
from gateway.errors import BylineError, Code
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
    """An account's sandbox timeline as a page."""
    account = _account(request)
    posts = await request.app[SANDBOX].timeline(account)
    items = "\n".join(
        f'<article id="post-{html.escape(str(p["id"]))}">'
        f'<p dir="auto">{html.escape(str(p["text"])).replace(chr(10), "<br>")}</p>'
        f'<time>{iso(int(str(p["created_at"])))}</time></article>'
        for p in posts
    ) or "<p class=empty>Nothing published yet.</p>"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(account)} · Byline sandbox</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}}
article{{border-bottom:1px solid #ddd;padding:.5rem 0}}time{{color:#666;font-size:.85rem}}</style>
</head><body><h1><bdi>{html.escape(account)}</bdi></h1><p>Sandbox timeline: what Byline published for this account.</p>
{items}</body></html>"""
    return web.Response(text=page, content_type="text/html")
