"""The Mastodon client API and OAuth sign-in: ``/api/v1/…``, ``/api/v2/…``, ``/oauth/…``.

Each handler parses what a Mastodon app sends (form-encoded, multipart or JSON, as Rails takes
them all), makes one service call, and answers with Mastodon's entities and Mastodon's error
bodies: ``{"error": "…"}`` on the API, ``{"error", "error_description"}`` on ``/oauth``.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.appkeys import MASTODON, OAUTH, SETTINGS
from gateway.errors import BylineError, Code
from gateway.http import signin
from gateway.http.common import Handler, answers_in_own_format, bearer, check_request
from gateway.http.mastodon import entities, params
from gateway.services.mastodon import ClientAuth, MastodonService, Raw
from gateway.services.oauth import AuthRequest, OAuthService, SignInForm
from gateway.services.scopes import SCOPES

routes = web.RouteTableDef()

CSRF_COOKIE = "byline_signin"


# -- errors --------------------------------------------------------------------------------


def _mastodon_body(exc: BylineError) -> dict[str, Any]:
    """The error as Mastodon words it; clients show ``error`` as it is."""
    if exc.code is Code.UNAUTHENTICATED:
        return {"error": "The access token is invalid"}
    if exc.code in (Code.NOT_FOUND, Code.UNKNOWN_ACCOUNT):
        return {"error": "Record not found"}
    if exc.code is Code.TEXT_EMPTY:
        return {"error": "Validation failed: Text can't be blank"}
    if exc.code is Code.TEXT_TOO_LONG:
        return {"error": f"Validation failed: Text character limit of {exc.details.get('limit')} exceeded"}
    if exc.code is Code.RULE_BLOCKED:
        rule, reason = exc.details.get("rule"), exc.details.get("reason")
        return {"error": f"Validation failed: {reason} (rule {rule})",
                "byline": {"rule": rule, "reason": reason}}
    if exc.code is Code.VALIDATION and not exc.message.startswith("Validation failed"):
        return {"error": f"Validation failed: {exc.message}"}
    return {"error": exc.message}


def _json(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response(data, status=status, headers=headers)
    response.headers["Cache-Control"] = "no-store"
    return response


def api(handler: Handler) -> Handler:
    """Answer a client-API handler's failures as Mastodon does."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            check_request(request)
            return await handler(request)
        except BylineError as exc:
            return _json(_mastodon_body(exc), status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _json({"error": exc.reason}, status=exc.status)

    return answers_in_own_format(wrapper)


def oauth_api(handler: Handler) -> Handler:
    """Answer an ``/oauth`` endpoint's failures as Doorkeeper does."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        try:
            try:
                check_request(request)
            except BylineError as exc:
                raise _oauth_input(exc) from None
            return await handler(request)
        except BylineError as exc:
            error = exc.details.get("oauth") or "invalid_request"
            return _json({"error": error, "error_description": exc.message}, status=exc.status)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _json({"error": "invalid_request", "error_description": exc.reason}, status=exc.status)

    return answers_in_own_format(wrapper)


def _oauth_input(exc: BylineError) -> BylineError:
    """Input that cannot be used is, on ``/oauth``, RFC 6749's invalid_request: a 400, not a 422."""
    if exc.code is Code.VALIDATION:
        return BylineError(Code.BAD_REQUEST, exc.message, oauth="invalid_request")
    return exc


# -- shared bits -----------------------------------------------------------------------------


def base_url(request: web.Request) -> str:
    """Where apps reach this gateway: ``BYLINE_PUBLIC_URL``, or the host they asked."""
    configured = request.app[SETTINGS].public_url
    return configured.rstrip("/") if configured else f"{request.scheme}://{request.host}"


def _service(request: web.Request) -> MastodonService:
    return request.app[MASTODON]


def _oauth(request: web.Request) -> OAuthService:
    return request.app[OAUTH]


async def _auth(request: web.Request, scope: str) -> ClientAuth:
    return await _service(request).authenticate(bearer(request), scope=scope)


def _raw(answer: Raw) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body, content_type=answer.content_type,
                            headers=answer.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- apps and OAuth ----------------------------------------------------------------------------


@routes.post("/api/v1/apps")
@api
async def create_app(request: web.Request) -> web.Response:
    """Register a client app; its secret is shown this once."""
    app = await _oauth(request).register(await params.read_params(request))
    return _json(entities.registered_app(app))


@routes.get("/api/v1/apps/verify_credentials")
@api
async def verify_app(request: web.Request) -> web.Response:
    """The app a token belongs to."""
    auth = await _auth(request, "read")
    return _json(entities.token_app(auth.app_name))


@routes.get("/.well-known/oauth-authorization-server")
@api
async def oauth_metadata(request: web.Request) -> web.Response:
    """RFC 8414 metadata, as Mastodon 4.3 serves it (with Mastodon's app registration)."""
    base = base_url(request)
    return _json({
        "issuer": base + "/", "service_documentation": "https://docs.joinmastodon.org/",
        "authorization_endpoint": f"{base}/oauth/authorize", "token_endpoint": f"{base}/oauth/token",
        "app_registration_endpoint": f"{base}/api/v1/apps", "revocation_endpoint": f"{base}/oauth/revoke",
        "scopes_supported": sorted(SCOPES), "response_types_supported": ["code"],
        "response_modes_supported": ["query"], "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
    })


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
    public = request.app[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def _form_page(request: web.Request, auth_request: AuthRequest, *, error: str | None = None,
               status: int = 200) -> web.Response:
    """Step one with a new form: a random nonce in the cookie, bound to this request in the form."""
    nonce = secrets.token_urlsafe(32)
    csrf = _oauth(request).form_value(auth_request, nonce)
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


@routes.get("/oauth/authorize")
async def authorize_page(request: web.Request) -> web.Response:
    """The sign-in page: step one, the person's gateway token."""
    try:
        auth_request = await _oauth(request).check_request(dict(request.query))
    except BylineError as exc:
        return _refusal(exc, request.query)
    return _form_page(request, auth_request)


@routes.post("/oauth/authorize")
async def authorize(request: web.Request) -> web.Response:
    """The sign-in form: check the token, let the person pick the account, hand out the code."""
    try:
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    except (ValueError, UnicodeDecodeError, AssertionError, web.HTTPRequestEntityTooLarge):
        return _page(signin.error_page("This sign-in cannot go on", "The form could not be read."), status=400)
    oauth = _oauth(request)
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


async def _oauth_params(request: web.Request) -> dict[str, str]:
    try:
        given = await params.read_params(request)
    except BylineError as exc:
        raise _oauth_input(exc) from None
    return {k: v for k, v in given.items() if isinstance(v, str)}


@routes.post("/oauth/token")
@oauth_api
async def token(request: web.Request) -> web.Response:
    """Exchange an authorization code, once, for an access token."""
    answer = await _oauth(request).exchange(await _oauth_params(request), basic=params.client_credentials(request))
    return _json(answer.to_json(), headers={"Pragma": "no-cache"})


@routes.post("/oauth/revoke")
@oauth_api
async def revoke(request: web.Request) -> web.Response:
    """Revoke one of the app's tokens."""
    await _oauth(request).revoke(await _oauth_params(request), basic=params.client_credentials(request))
    return _json({})


# -- instance and account ----------------------------------------------------------------------


@routes.get("/api/v1/instance")
@routes.get("/api/v1/instance/")
@api
async def instance_v1(request: web.Request) -> web.Response:
    """The Instance entity (v1); limits are those of the caller's account when it sends a token."""
    base = base_url(request)
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    return _json(entities.instance_v1(base, limits))


@routes.get("/api/v2/instance")
@routes.get("/api/v2/instance/")
@api
async def instance_v2(request: web.Request) -> web.Response:
    """The Instance entity (v2), with ``api_versions``."""
    base = base_url(request)
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    return _json(entities.instance_v2(base, limits))


@routes.get("/api/v1/accounts/verify_credentials")
@api
async def verify_credentials(request: web.Request) -> web.Response:
    """The managed account this app acts as, as its platform shows it."""
    auth = await _auth(request, "read:accounts")
    return _json(await _service(request).account(auth, with_source=True))


# -- statuses ------------------------------------------------------------------------------------


@routes.post("/api/v1/statuses")
@api
async def post_status(request: web.Request) -> web.Response:
    """A new status: a gateway post under the account's policy (a ScheduledStatus if asked)."""
    auth = await _auth(request, "write:statuses")
    form = params.status_form(await params.read_params(request))
    view = await _service(request).post(auth, form, idempotency_key=request.headers.get("Idempotency-Key"))
    base = base_url(request)
    return _json(entities.scheduled_entity(view, base) if view.scheduled else entities.status_entity(view, base))


@routes.get("/api/v1/statuses/{id}")
@api
async def get_status(request: web.Request) -> web.StreamResponse:
    """A status made here, as it stands; any other passes through to the platform."""
    auth = await _auth(request, "read:statuses")
    found = await _service(request).status(auth, params.path_id(request), base=base_url(request))
    if isinstance(found, Raw):
        return _raw(found)
    return _json(entities.status_entity(found, base_url(request)))


@routes.put("/api/v1/statuses/{id}")
@api
async def edit_status(request: web.Request) -> web.Response:
    """A new version while the post is held, scheduled or suggested."""
    auth = await _auth(request, "write:statuses")
    form = params.edit_form(await params.read_params(request))
    view = await _service(request).edit(auth, params.path_id(request), form)
    return _json(entities.status_entity(view, base_url(request)))


@routes.delete("/api/v1/statuses/{id}")
@api
async def delete_status(request: web.Request) -> web.Response:
    """Cancel a post not out yet (the pencil stage), or delete it on its platform."""
    auth = await _auth(request, "write:statuses")
    view = await _service(request).delete(auth, params.path_id(request))
    return _json(entities.status_entity(view, base_url(request), with_source=True))


@routes.get("/api/v1/scheduled_statuses")
@api
async def scheduled_statuses(request: web.Request) -> web.Response:
    """The caller's posts for this account that are not out yet, newest first."""
    auth = await _auth(request, "read:statuses")
    views = await _service(request).pending(
        auth, limit=params.limit(request.query, default=20, most=40),
        max_id=params.digits(request.query, "max_id"), since_id=params.digits(request.query, "since_id"),
        min_id=params.digits(request.query, "min_id"),
    )
    base = base_url(request)
    return _json([entities.scheduled_entity(v, base) for v in views])


@routes.get("/api/v1/scheduled_statuses/{id}")
@api
async def scheduled_status(request: web.Request) -> web.Response:
    """One of the caller's posts not out yet."""
    auth = await _auth(request, "read:statuses")
    view = await _service(request).pending_one(auth, params.path_id(request))
    return _json(entities.scheduled_entity(view, base_url(request)))


@routes.delete("/api/v1/scheduled_statuses/{id}")
@api
async def cancel_scheduled(request: web.Request) -> web.Response:
    """Cancel one of the caller's posts not out yet."""
    auth = await _auth(request, "write:statuses")
    await _service(request).cancel_pending(auth, params.path_id(request))
    return _json({})


@routes.put("/api/v1/scheduled_statuses/{id}")
@api
async def reschedule(request: web.Request) -> web.Response:
    """Moving a post's time is not offered: its policy decides when it goes out."""
    auth = await _auth(request, "write:statuses")
    await _service(request).pending_one(auth, params.path_id(request))
    raise BylineError(Code.VALIDATION, "Validation failed: Byline cannot move a scheduled post; "
                                       "delete it and post it again with the new time")


# -- media ---------------------------------------------------------------------------------------


@routes.post("/api/v2/media")
@routes.post("/api/v1/media")
@api
async def upload_media(request: web.Request) -> web.Response:
    """Keep a file for a coming post, where the account's platform takes media."""
    auth = await _auth(request, "write:media")
    row = await _service(request).upload(auth, await params.read_upload(request))
    return _json(entities.media_entity(row, base_url(request)))


@routes.get("/api/v1/media/{id}")
@api
async def get_media(request: web.Request) -> web.Response:
    """One of the caller's uploads."""
    auth = await _auth(request, "write:media")
    row = await _service(request).media_info(auth, params.path_id(request))
    return _json(entities.media_entity(row, base_url(request)))


@routes.get("/media/{id}/{digest}")
@api
async def media_file(request: web.Request) -> web.Response:
    """An upload's bytes, for the app's preview; the URL names its content."""
    mime_type, data = await _service(request).media_file(params.path_id(request), request.match_info["digest"])
    return web.Response(body=data, content_type=mime_type, headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    })


# -- every other call ----------------------------------------------------------------------------


@routes.route("*", "/api/{version:v[12]}/{path:.*}")
@api
async def passthrough(request: web.Request) -> web.Response:
    """Timelines, notifications, accounts…: listed reads from the account's instance, with its
    real token; any other call (a follow, a favourite, administration…) is refused."""
    auth = await _auth(request, "read")
    path = request.rel_url.raw_path
    answer = await _service(request).passthrough(auth, path, request.rel_url.raw_query_string,
                                                 base=base_url(request), method=request.method)
    return _raw(answer)
