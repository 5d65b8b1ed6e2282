"""The OAuth sign-in page, for people, mounted at ``/oauth/authorize``: step one asks for the
person's gateway token, step two for the account the app may act as; then the code goes to the
app. Every answer is an HTML page (``gateway.http.signin``) or a redirect the person chose; a
request whose text cannot be read at all is refused by the gateway's own middleware."""

from __future__ import annotations

import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.appkeys import OAUTH, SETTINGS
from gateway.errors import BylineError
from gateway.http import signin
from gateway.services.oauth import AuthRequest, SignInForm

routes = web.RouteTableDef()
"""The sign-in page, at its mount itself."""

CSRF_COOKIE = "byline_signin"


def _page(html: str, *, status: int = 200) -> web.Response:
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers.update({
        "Content-Security-Policy": signin.CSP, "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    })
    return response


def _behind_tls(request: web.Request) -> bool:
    """Whether people reach this page over TLS: directly, or through a proxy at an https URL."""
    public = request.config_dict[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def _form_page(request: web.Request, auth_request: AuthRequest, *, error: str | None = None,
               status: int = 200) -> web.Response:
    """Step one with a new form: a random nonce in the cookie, bound to this request in the form."""
    nonce = secrets.token_urlsafe(32)
    csrf = request.config_dict[OAUTH].form_value(auth_request, nonce)
    response = _page(signin.token_step(auth_request, csrf=csrf, error=error), status=status)
    response.set_cookie(CSRF_COOKIE, nonce, path="/oauth/authorize", httponly=True, samesite="Strict",
                        secure=_behind_tls(request), max_age=3600)
    return response


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query


def _redirect(uri: str, params: dict[str, str | None]) -> web.Response:
    return web.Response(status=302, headers={"Location": _with_query(uri, params),
                                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _refusal(exc: BylineError, query: Any) -> web.Response:
    """An authorization request that cannot go on. The page says why; where the app's redirect
    URI is known to be its own, it offers a link back with the error, which the person follows
    or not: the gateway never sends anyone on to an app's address unasked (RFC 9700 §4.11.2),
    so a crafted link to this page cannot use it to bounce people to an app's site."""
    error = str(exc.details.get("oauth", "invalid_request"))
    redirect_uri = query.get("redirect_uri") or ""
    back = None
    if exc.details.get("redirect") and redirect_uri and redirect_uri != "urn:ietf:wg:oauth:2.0:oob":
        back = _with_query(redirect_uri, {"error": error, "error_description": exc.message,
                                          "state": query.get("state") or None})
    page = signin.error_page("This sign-in cannot go on", f"{exc.message} ({error})",
                             back=back, app_name=exc.details.get("app"))
    return _page(page, status=400)


@routes.get("")
async def authorize_page(request: web.Request) -> web.Response:
    """The sign-in page: step one, the person's gateway token."""
    try:
        auth_request = await request.config_dict[OAUTH].check_request(dict(request.query))
    except BylineError as exc:
        return _refusal(exc, request.query)
    return _form_page(request, auth_request)


@routes.post("")
async def authorize(request: web.Request) -> web.Response:
    """The sign-in form: check the token, let the person pick the account, hand out the code."""
    try:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    except (ValueError, UnicodeDecodeError, AssertionError, BadHttpMessage, web.HTTPRequestEntityTooLarge):
        return _page(signin.error_page("This sign-in cannot go on", "The form could not be read."), status=400)
    oauth = request.config_dict[OAUTH]
    try:
        auth_request = await oauth.check_request(form)
    except BylineError as exc:
        return _refusal(exc, form)
    nonce = request.cookies.get(CSRF_COOKIE, "")
    csrf = form.get("csrf", "")
    if not nonce or not hmac.compare_digest(oauth.form_value(auth_request, nonce).encode(), csrf.encode()):
        return _page(signin.error_page(
            "This form has expired",
            "The form was not sent from this sign-in page, or it is too old. Go back to the app and sign in again.",
        ), status=403)
    try:
        step = await oauth.step(auth_request, SignInForm(
            csrf=csrf, token=form.get("token", "").strip() or None, ticket=form.get("ticket") or None,
            decision=form.get("decision"), account=form.get("account"),
        ), client=request.remote or "")
    except BylineError as exc:  # too many wrong tokens from this address
        response = _page(signin.token_step(auth_request, csrf=csrf, error=exc.message), status=exc.status)
        response.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return response
    if step.kind == "denied":
        return _deny(auth_request)
    if step.kind == "token":
        return _page(signin.token_step(auth_request, csrf=csrf, error=step.error),
                     status=401 if step.error else 200)
    if step.kind == "account":
        assert step.ticket is not None and step.user is not None
        return _page(signin.account_step(auth_request, csrf=csrf, ticket=step.ticket, user=step.user,
                                         accounts=list(step.accounts), error=step.error),
                     status=403 if step.error else 200)
    assert step.code is not None
    if auth_request.shows_code:
        return _page(signin.code_page(auth_request, step.code))
    return _redirect(auth_request.redirect_uri, {"code": step.code, "state": auth_request.state})


def _deny(auth_request: AuthRequest) -> web.Response:
    if auth_request.shows_code:
        return _page(signin.error_page("Not authorized", f"\u2068{auth_request.app_name}\u2069 was not authorized."))
    return _redirect(auth_request.redirect_uri, {
        "error": "access_denied", "state": auth_request.state,
        "error_description": "The resource owner or authorization server denied the request.",
    })
