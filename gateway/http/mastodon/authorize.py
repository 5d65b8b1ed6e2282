"""The OAuth sign-in page, for people, mounted at ``/oauth/authorize``.

A person already signed in to the pages (a live page session) goes straight to step two, the
account the app may act as, with Authorize and Deny; anyone else signs in first, with their
name and password (which opens a page session, as ``/signin`` does) or with their gateway
token; then the code goes to the app. Every answer is a page (templates ``oauth_*.html``) or a
redirect the person chose; a request whose text cannot be read at all is refused by the
gateway's own middleware.

Each form's CSRF value is bound (HMAC) to the request the page was shown for: on step one and a
token's step two, with a random nonce in a cookie of this page; on a signed-in person's step
two, with their page session's own CSRF value.
"""

from __future__ import annotations

import functools
import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.appkeys import OAUTH
from gateway.errors import STATUS, Code, Failure
from gateway.http.common import database_gone, posted_form, waited
from gateway.http.mastodon.errors import oauth_error
from gateway.http.pages import (
    TEMPLATES,
    behind_tls,
    browser_sessions,
    device_cookie_of,
    keep_device,
    keep_session,
    session_of,
)
from gateway.services.oauth import AuthRequest, SignInForm, SignInStep
from gateway.storage.db import DatabaseUnavailable

routes = web.RouteTableDef()
"""The sign-in page, at its mount itself."""

CSRF_COOKIE: Final = "byline_signin"
"""The sign-in form's nonce over plain http, kept to this page's path."""
TLS_CSRF_COOKIE: Final = "__Host-byline_signin"
"""Its name behind TLS, as the page session's is (``TLS_SESSION_COOKIE``): only this host, over
TLS, can set it, so a page of a sibling subdomain cannot plant a nonce of its own beside a form
it made and sign a person in as someone else (login CSRF). A ``__Host-`` cookie must have
Path=/; it is sent to every page then, and read only here. Behind TLS only this name is read."""


def _nonce_cookie(request: web.Request) -> str:
    return TLS_CSRF_COOKIE if behind_tls(request) else CSRF_COOKIE
CSP: Final = "default-src 'none'; style-src 'self'; base-uri 'none'; frame-ancestors 'none'"
"""Nothing loads but the gateway's own stylesheet, no script at all, no framing.

(No ``form-action``: browsers apply it to the redirect after submit, which goes to the app.)"""

_SCOPE_WORDS = {
    "read": "read the account's timelines, notifications and posts",
    "write": "write posts for the account (each goes through the account's policy)",
    "follow": "see and change whom the account follows, mutes and blocks (reading only here)",
    "push": "receive push notifications",
    "profile": "see the account's profile",
}


def _scope_words(request: AuthRequest) -> list[str]:
    """What the app asks for, in words, once each."""
    words: list[str] = []
    for scope in request.scopes:
        family = scope.partition(":")[0]
        text = _SCOPE_WORDS.get(scope) or f"{_SCOPE_WORDS.get(family, scope)} ({scope})"
        if text not in words:
            words.append(text)
    return words


def _destination(request: AuthRequest) -> str | None:
    """Where the app's code goes, as the person should check it: the redirect URI's scheme and
    host (its path and query say nothing a look-alike could not copy, and a user name before
    the host, ``https://known.app@elsewhere.example``, would only mislead); None when it is
    shown on the page instead."""
    if request.shows_code:
        return None
    parts = urlsplit(request.redirect_uri)
    host = _ascii_host(parts.netloc.rpartition("@")[2])
    return f"{parts.scheme}://{host}" if host else f"{parts.scheme}:"


_PORT = re.compile(r"(.*?)(:[0-9]*)?")


def _ascii_host(host: str) -> str:
    """``host`` (with its port, if any) as browsers show a host that is not all ASCII: in its
    IDNA (punycode) form, so letters of another script that only look like the app's cannot
    pass for them; a host IDNA cannot take is shown with its other letters escaped."""
    if host.isascii():
        return host
    found = _PORT.fullmatch(host)
    assert found is not None  # the pattern takes any text
    name, port = found.group(1), found.group(2) or ""
    try:
        return name.encode("idna").decode("ascii") + port
    except UnicodeError:
        return name.encode("ascii", "backslashreplace").decode("ascii") + port


def _fields(request: AuthRequest) -> dict[str, str]:
    """The request's parameters, which every form carries back to be checked again."""
    return {
        "response_type": "code", "client_id": request.client_id, "redirect_uri": request.redirect_uri,
        "scope": " ".join(request.scopes), "state": request.state or "",
        "code_challenge": request.challenge or "", "code_challenge_method": request.challenge_method or "",
    }


def _page(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    html = request.config_dict[TEMPLATES].get_template(template).render(context)
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers.update({
        "Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
    })
    return response


def _error_page(request: web.Request, title: str, message: str, *, status: int, back: str | None = None,
                app_name: str | None = None) -> web.Response:
    return _page(request, "oauth_error.html", {"title": title, "message": message, "denied": None,
                                               "back": back, "app_name": app_name}, status=status)


def _sign_in_page(request: web.Request, auth_request: AuthRequest, *, csrf: str, error: str | None = None,
                  failed: str | None = None, name: str = "", status: int = 200) -> web.Response:
    """Step one: the name and password, or the token."""
    return _page(request, "oauth_signin.html", {
        "title": "Sign in", "app_name": auth_request.app_name, "scopes": _scope_words(auth_request),
        "destination": _destination(auth_request),
        "fields": _fields(auth_request), "csrf": csrf, "error": error, "failed": failed, "name": name,
    }, status=status)


def _fresh_sign_in_page(request: web.Request, auth_request: AuthRequest) -> web.Response:
    """Step one with a new form: a random nonce in the cookie, bound to this request in the form."""
    nonce = secrets.token_urlsafe(32)
    response = _sign_in_page(request, auth_request, csrf=request.config_dict[OAUTH].form_value(auth_request, nonce))
    tls = behind_tls(request)
    response.set_cookie(_nonce_cookie(request), nonce, path="/" if tls else "/oauth/authorize", httponly=True,
                        samesite="Strict", secure=tls, max_age=3600)
    return response


def _account_page(request: web.Request, auth_request: AuthRequest, step: SignInStep, *, csrf: str,
                  status: int = 200) -> web.Response:
    """Step two: who is signed in, and the accounts the app may act as."""
    oauth = request.config_dict[OAUTH]
    if step.session is not None:  # the form is bound to the page session, not to a nonce
        csrf = oauth.form_value(auth_request, step.session.csrf)
    switch = "/oauth/authorize?" + urlencode({**_fields(auth_request), "force_login": "true"})
    return _page(request, "oauth_authorize.html", {
        "title": "Authorize", "app_name": auth_request.app_name, "scopes": _scope_words(auth_request),
        "destination": _destination(auth_request),
        "fields": _fields(auth_request), "csrf": csrf, "ticket": step.ticket, "user": step.user,
        "accounts": list(step.accounts), "error": step.error, "switch": switch,
    }, status=status)


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return uri + ("&" if "?" in uri else "?") + query


def _redirect(uri: str, params: dict[str, str | None]) -> web.Response:
    return web.Response(status=302, headers={"Location": _with_query(uri, params),
                                             "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def _unavailable(request: web.Request, exc: DatabaseUnavailable) -> web.Response:
    """The database not answering: nothing is wrong with the request, which works sent again."""
    return waited(_error_page(request, "This sign-in cannot go on now", exc.message, status=exc.status), exc)


def _outage_is_a_page(handler: Callable[[web.Request], Awaitable[web.Response]]
                      ) -> Callable[[web.Request], Awaitable[web.Response]]:
    """``handler``, whose meeting the database gone anywhere (the browser's page session read
    too), in storage's word or the driver's, is the page's 503, not the gateway's JSON: a
    person's browser shows it."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            return await handler(request)
        except Exception as exc:
            if (outage := database_gone(request, exc)) is None:
                raise
            return _unavailable(request, outage)

    return wrapped


def _refusal(request: web.Request, exc: Failure, query: Mapping[str, str]) -> web.Response:
    """An authorization request that cannot go on. The page says why; where the app's redirect
    URI is known to be its own, it offers a link back with the error, which the person follows
    or not: the gateway never sends anyone on to an app's address unasked (RFC 9700 §4.11.2),
    so a crafted link to this page cannot use it to bounce people to an app's site."""
    if isinstance(exc, DatabaseUnavailable):  # the app is not known to be unknown: no 400
        return _unavailable(request, exc)
    error = oauth_error(exc)
    # The server's trouble for a while (too many tries) keeps its status and says when to try
    # again; anything else is the request's, a 400.
    status = exc.status if error == "temporarily_unavailable" else 400
    redirect_uri = query.get("redirect_uri") or ""
    back = None
    if exc.details.get("redirect") and redirect_uri and redirect_uri != "urn:ietf:wg:oauth:2.0:oob":
        back = _with_query(redirect_uri, {"error": error, "error_description": exc.message,
                                          "state": query.get("state") or None})
    app_name = exc.details.get("app")
    return waited(_error_page(request, "This sign-in cannot go on", f"{exc.message} ({error})", status=status,
                              back=back, app_name=str(app_name) if app_name else None), exc)


def _forces_login(query: Mapping[str, str]) -> bool:
    """The app (Mastodon's ``force_login``, OpenID's ``prompt=login``) or the person (“Sign in as
    someone else”) asks for step one even though a page session is live."""
    return query.get("force_login", "").lower() in ("1", "true", "yes") or query.get("prompt") == "login"


@routes.get("")
@_outage_is_a_page
async def authorize_page(request: web.Request) -> web.Response:
    """Step two for a person signed in to the pages; step one for anyone else."""
    oauth = request.config_dict[OAUTH]
    try:
        auth_request = await oauth.check_request(dict(request.query))
    except Failure as exc:
        return _refusal(request, exc, request.query)
    session = await session_of(request)
    if session is None or _forces_login(request.query):
        return _fresh_sign_in_page(request, auth_request)
    return _account_page(request, auth_request, oauth.signed_in(session), csrf="")


def _bound(value: str, sent: str) -> bool:
    return hmac.compare_digest(value.encode(), sent.encode())


@routes.post("")
@_outage_is_a_page
async def authorize(request: web.Request) -> web.Response:
    """The sign-in forms: check who it is, let the person pick the account, hand out the code."""
    try:
        form = {k: v for k, v in (await posted_form(request)).items() if isinstance(v, str)}
    except (ValueError, UnicodeDecodeError, AssertionError, BadHttpMessage, web.HTTPRequestEntityTooLarge):
        return _error_page(request, "This sign-in cannot go on", "The form could not be read.", status=400)
    oauth = request.config_dict[OAUTH]
    try:
        auth_request = await oauth.check_request(form)
    except Failure as exc:
        return _refusal(request, exc, form)
    csrf = form.get("csrf", "")
    nonce = request.cookies.get(_nonce_cookie(request), "")
    by_nonce = bool(nonce) and _bound(oauth.form_value(auth_request, nonce), csrf)
    session = await session_of(request)
    by_session = session is not None and _bound(oauth.form_value(auth_request, session.csrf), csrf)
    with_password = "name" in form or "password" in form
    signing_in = with_password or bool(form.get("token")) or bool(form.get("ticket"))
    # A form bound to the page session is step two of that person; a name, password, token or
    # ticket only ever comes from a form bound to this page's nonce.
    if not (by_nonce or (by_session and not signing_in)):
        return _error_page(
            request, "This form has expired",
            "The form was not sent from this sign-in page, or it is too old. Go back to the app and sign in again.",
            status=403)
    failed = "password" if with_password else "token"
    try:
        step = await oauth.step(auth_request, SignInForm(
            csrf=csrf, token=form.get("token", "").strip() or None, ticket=form.get("ticket") or None,
            name=form.get("name") if with_password else None,
            password=form.get("password", "") if with_password else None,
            session=session if by_session else None, previous=browser_sessions(request),
            device=device_cookie_of(request) if with_password else None,
            decision=form.get("decision"), account=form.get("account"),
        ), client=request.remote or "")
    except Failure as exc:  # too many wrong passwords or tokens from this address
        if isinstance(exc, DatabaseUnavailable):
            return _unavailable(request, exc)
        if exc.code is not Code.TOO_MANY_REQUESTS:
            return _error_page(request, "This sign-in cannot go on", exc.message, status=exc.status)
        response = _sign_in_page(request, auth_request, csrf=csrf, error=exc.message, failed=failed,
                                 name=form.get("name", "").strip(), status=exc.status)
        response.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return response
    status = STATUS[step.failure] if step.failure is not None else 200
    if step.kind == "denied":
        return _deny(request, auth_request)
    if step.kind == "token":
        return _sign_in_page(request, auth_request, csrf=csrf, error=step.error, failed=step.failed,
                             name=form.get("name", "").strip(), status=status)
    if step.kind == "account":
        response = _account_page(request, auth_request, step, csrf=csrf, status=status)
        if step.cookie is not None:  # signed in with a password: the pages' session, as /signin opens it
            keep_session(request, response, step.cookie)
        if step.device is not None:
            keep_device(request, response, step.device)
        return response
    assert step.code is not None
    if auth_request.shows_code:
        return _page(request, "oauth_code.html", {"title": "Authorization code", "app_name": auth_request.app_name,
                                                  "code": step.code})
    return _redirect(auth_request.redirect_uri, {"code": step.code, "state": auth_request.state})


def _deny(request: web.Request, auth_request: AuthRequest) -> web.Response:
    if auth_request.shows_code:
        return _page(request, "oauth_error.html", {"title": "Not authorized", "message": None,
                                                   "denied": auth_request.app_name, "back": None, "app_name": None})
    return _redirect(auth_request.redirect_uri, {
        "error": "access_denied", "state": auth_request.state,
        "error_description": "The resource owner or authorization server denied the request.",
    })
