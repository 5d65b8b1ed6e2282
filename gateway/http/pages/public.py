"""The public transparency page of an account (``/@{account}``) and the Atom feed of its voice
changes (``/@{account}/voice.atom``): no sign-in, only what went out.

The page lists each post with the log entries its byline comes from; ``static/verify.js`` checks
them in the reader's browser against the signed checkpoint. Without scripts the page shows the
same, and says how to check it with ``byline audit verify``.
"""

from __future__ import annotations

import aiohttp_jinja2
from aiohttp import web

from gateway.appkeys import TRANSPARENCY
from gateway.http.common import base_url
from gateway.http.pages import page, page_headers, render, session_of

routes = web.RouteTableDef()


@routes.get("/@{account}")
@page
async def account_page(request: web.Request) -> web.StreamResponse:
    """An account's voice history and its posts, each with what the browser checks."""
    await session_of(request)
    found = await request.app[TRANSPARENCY].account(
        request.match_info["account"], before=request.query.get("before")
    )
    return render(request, "public.html", {"title": f"@{found.account}", "page": found})


@routes.get("/@{account}/voice.atom")
@page
async def voice_feed(request: web.Request) -> web.StreamResponse:
    """The account's voice changes as an Atom 1.0 feed, newest first."""
    account = request.match_info["account"]
    voice = await request.app[TRANSPARENCY].voice(account)
    xml = aiohttp_jinja2.get_env(request.app).get_template("voice.atom").render(
        account=account, voice=list(reversed(voice)), base=base_url(request)
    )
    response = web.Response(text=xml, content_type="application/atom+xml")
    page_headers(response)
    response.headers["Cache-Control"] = "no-cache"
    return response
