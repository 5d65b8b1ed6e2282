"""Signing in and out of the pages with a name and password."""

from __future__ import annotations

from urllib.parse import urlsplit

from aiohttp import web

from gateway.appkeys import PEOPLE, SETTINGS
from gateway.errors import BylineError, Code
from gateway.http.common import waited
from gateway.http.pages import (
    browser_sessions,
    device_cookie_of,
    forget_sessions,
    keep_device,
    keep_session,
    page,
    read_form,
    render,
    safe_next,
    see_other,
    session_of,
)

routes = web.RouteTableDef()


def _from_this_site(request: web.Request, message: str) -> None:
    """403 (saying ``message``) for a sign-in or sign-out another site's page sent. A sign-in would
    sign the browser in as the other site's person (login CSRF), and what one then writes or
    approves would be done as them; a sign-out carries no cookie from another site (SameSite),
    so no session whose CSRF value it could be asked for, yet it would have the browser forget
    the person's cookie. Browsers say where a form came from (``Sec-Fetch-Site``, ``Origin``); a
    request that says nothing (a script, an old browser) is let through, as it holds no one
    else's cookie."""
    if request.headers.get("Sec-Fetch-Site", "").lower() == "cross-site":
        raise BylineError(Code.FORBIDDEN, message)
    origin = request.headers.get("Origin")
    if origin is None:
        return
    public = request.config_dict[SETTINGS].public_url
    ours = {request.host.lower(), *([urlsplit(public).netloc.lower()] if public else [])}
    if urlsplit(origin).netloc.lower() not in ours:  # "null" (a sandboxed frame) is no host of ours
        raise BylineError(Code.FORBIDDEN, message)


@routes.get("/signin")
@page
async def signin_page(request: web.Request) -> web.StreamResponse:
    """The sign-in form (a person already signed in goes on)."""
    target = safe_next(request.query.get("next"))
    if await session_of(request) is not None:
        return see_other(target)
    return render(request, "signin.html", {"next": target, "name": "", "error": None})


@routes.post("/signin")
@page
async def signin(request: web.Request) -> web.StreamResponse:
    """Check the name and password; a new session cookie on success."""
    _from_this_site(request, "Sign in from this gateway's own sign-in page.")
    form = await read_form(request, session=None)
    target = safe_next(form.get("next"))
    name = form.get("name", "").strip()
    password = form.get("password", "")
    if not name or not password:
        return render(request, "signin.html", {"next": target, "name": name,
                                               "error": "Enter your name and your password."}, status=422)
    try:
        # The browser's session until now ends as the new one opens (a leftover on a shared
        # computer, a session someone fixed in it), as the OAuth sign-in ends it.
        signed = await request.app[PEOPLE].sign_in(name, password, client=request.remote or "",
                                                   ending=browser_sessions(request),
                                                   device=device_cookie_of(request))
    except BylineError as exc:
        if exc.code is not Code.UNAUTHENTICATED and exc.code is not Code.TOO_MANY_REQUESTS:
            raise
        return waited(render(request, "signin.html", {"next": target, "name": name, "error": exc.message},
                             status=exc.status), exc)
    response = see_other(target)
    keep_session(request, response, signed.cookie)
    if signed.device is not None:
        keep_device(request, response, signed.device)
    return response


@routes.post("/signout")
@page
async def signout(request: web.Request) -> web.StreamResponse:
    """End this browser's session (and any it still holds under the session cookie's other name)."""
    _from_this_site(request, "Sign out from a page of this gateway.")
    session = await session_of(request)
    if session is not None:
        await read_form(request, session=session)
        for cookie in browser_sessions(request):
            await request.app[PEOPLE].sign_out(cookie)
    response = see_other("/signin")
    forget_sessions(request, response)
    return response
