"""The Mastodon client API and OAuth sign-in: ``/api/v1/…``, ``/api/v2/…``, ``/oauth/…``.

Each handler parses what a Mastodon app sends (form-encoded, multipart or JSON, as Rails takes
them all), makes one service call, and answers with Mastodon's entities and Mastodon's error
bodies: ``{"error": "…"}`` on the API, ``{"error", "error_description"}`` on ``/oauth``.
"""

from __future__ import annotations

import base64
import functools
import hmac
import importlib.metadata
import secrets
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import unquote_plus, urlencode

from aiohttp import BodyPartReader, web

from gateway.appkeys import MASTODON, OAUTH, SETTINGS
from gateway.errors import BylineError, Code
from gateway.http import signin
from gateway.http.common import (
    Handler,
    answers_in_own_format,
    bearer,
    check_request,
    check_text,
    decode_json,
    unstorable,
)
from gateway.services.mastodon import (
    ClientAuth,
    EditForm,
    Limits,
    MastodonService,
    Raw,
    StatusForm,
    StatusView,
    Upload,
    numeric_id,
)
from gateway.services.oauth import AuthRequest, OAuthService, SignInForm
from gateway.services.scopes import SCOPES

routes = web.RouteTableDef()

MASTODON_VERSION = "4.3.0"
"""The Mastodon release whose client API this surface follows (``api_versions.mastodon`` 2)."""

CSRF_COOKIE = "byline_signin"
MEDIA_READ_LIMIT = 17 * 1024 * 1024
"""The most of a media upload read before refusing it (the largest platform limit, plus room)."""

_FALSE = frozenset({"0", "f", "false", "off", ""})
_VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
_LANGUAGE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz")


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


# -- parsing -------------------------------------------------------------------------------


def _merge(params: dict[str, Any], items: Any) -> None:
    """Form keys as Rails reads them: ``a[]`` is a list, ``a[b]`` a nested hash."""
    for key, value in items:
        if not isinstance(value, str):
            continue  # a file in a form where none belongs
        if key.endswith("[]") and "[" not in key[:-2]:
            existing = params.get(key[:-2])
            params[key[:-2]] = ([*existing, value] if isinstance(existing, list) else [value])
        elif "[" in key:
            base = key.split("[", 1)[0]
            nested = params.get(base)
            params[base] = nested if isinstance(nested, dict) else {}
            params[base][key[len(base):]] = value
        else:
            params[key] = value


async def read_params(request: web.Request) -> dict[str, Any]:
    """The request's parameters: the query, then the body (JSON, urlencoded or multipart)."""
    params: dict[str, Any] = {}
    _merge(params, request.query.items())
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        raw = await request.read()
        try:
            body = decode_json(raw) if raw.strip() else {}
        except BylineError as exc:
            if exc.code is not Code.INVALID_JSON:
                raise
            # Rails' words, and why when it is a limit of Byline's own.
            detail = f": {exc.message}" if "limit" in exc.details else ""
            raise BylineError(Code.INVALID_JSON, "Error while parsing request body" + detail) from None
        if not isinstance(body, dict):
            raise BylineError(Code.INVALID_JSON, "Error while parsing request body")
        params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        try:
            form = await request.post()
        except (ValueError, UnicodeDecodeError, AssertionError):
            raise BylineError(Code.BAD_REQUEST, "Error while parsing request body") from None
        _merge(params, form.items())
    # Any other body is not parameters (Rails leaves it unread): what is missing is missing.
    check_text(params)
    return params


def _text(params: dict[str, Any], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be a string")


def _boolean(value: Any) -> bool | None:
    """Rails' boolean cast: "0", "f", "false", "off" and "" are false; absent is None."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE
    raise BylineError(Code.VALIDATION, "Validation failed: sensitive must be a boolean")


def _ids(value: Any, name: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    values = value if isinstance(value, list) else [value]
    out = []
    for item in values:
        if isinstance(item, bool) or not isinstance(item, str | int) or not str(item).strip().isdigit():
            raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be a list of ids")
        out.append(str(item).strip())
    return tuple(out)


def _language(value: str | None) -> str | None:
    # Mastodon drops a language it does not know; so does the gateway.
    if not value:
        return None
    code = value.strip().lower().split("-")[0]
    return code if 2 <= len(code) <= 3 and set(code) <= _LANGUAGE_CHARS else None


def _when(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise BylineError(Code.VALIDATION, "Validation failed: Scheduled at is invalid") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def status_form(params: dict[str, Any]) -> StatusForm:
    """``POST /api/v1/statuses`` parameters."""
    visibility = _text(params, "visibility")
    if visibility is not None and visibility not in _VISIBILITIES:
        raise BylineError(Code.VALIDATION, "Validation failed: Visibility is not included in the list")
    return StatusForm(
        status=_text(params, "status") or "",
        in_reply_to_id=_text(params, "in_reply_to_id") or None,
        spoiler_text=_text(params, "spoiler_text") or None,
        sensitive=bool(_boolean(params.get("sensitive"))),
        visibility=visibility,
        language=_language(_text(params, "language")),
        scheduled_at=_when(_text(params, "scheduled_at")),
        media_ids=_ids(params.get("media_ids"), "media_ids") or (),
        poll=params.get("poll") is not None,
    )


def edit_form(params: dict[str, Any]) -> EditForm:
    """``PUT /api/v1/statuses/:id`` parameters."""
    return EditForm(
        status=_text(params, "status") or "",
        spoiler_text=_text(params, "spoiler_text") or None,
        sensitive=_boolean(params.get("sensitive")),
        language=_language(_text(params, "language")),
        media_ids=_ids(params.get("media_ids"), "media_ids"),
        poll=params.get("poll") is not None,
    )


def _digits(params: dict[str, Any] | Any, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if not str(value).isdigit():
        raise BylineError(Code.VALIDATION, f"Validation failed: {name} must be an id")
    return str(value)


def _limit(query: Any, *, default: int, most: int) -> int:
    raw = query.get("limit")
    try:
        return max(1, min(int(raw), most)) if raw else default
    except ValueError:
        return default


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


def _post_id(request: web.Request) -> str:
    post_id = request.match_info["id"]
    if not post_id.isdigit() or len(post_id) > 24:
        raise BylineError(Code.NOT_FOUND, "Record not found")
    return post_id


def _ms(value: str | None) -> str | None:
    """An RFC 3339 time with milliseconds, as Mastodon writes them."""
    if value is None:
        return None
    return value[:23] + "Z" if len(value) >= 23 else value


def _content(text: str) -> str:
    """Plain text as Mastodon renders it: paragraphs in ``<p>``, line breaks ``<br />``."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + "<br />".join(escape(line) for line in p.split("\n")) + "</p>"
                   for p in paragraphs)


def media_entity(row: dict[str, Any], base: str) -> dict[str, Any]:
    """A MediaAttachment."""
    url = f"{base}/media/{row['id']}/{row['digest']}"
    return {
        "id": row["id"], "type": "image", "url": url, "preview_url": url, "remote_url": None,
        "preview_remote_url": None, "text_url": None, "meta": {}, "description": row["description"],
        "blurhash": None,
    }


def _byline(post: dict[str, Any]) -> dict[str, Any]:
    remote = post.get("remote") or {}
    return {
        "state": post["state"], "publish_at": post["publish_at"],
        "approvals_needed": post["approvals_needed"], "reasons": post["reasons"],
        "author": post["author"], "version": post["version"], "url": remote.get("url"),
        "adopted_into": post.get("adopted_into"),
    }


def status_entity(view: StatusView, base: str, *, with_source: bool = False) -> dict[str, Any]:
    """A Status (docs.joinmastodon.org/entities/Status), with the ``byline`` object."""
    post = view.post
    options = post["options"]
    remote_url = (post.get("remote") or {}).get("url")
    entity: dict[str, Any] = {
        "id": post["id"],
        "created_at": _ms(post["created_at"]),
        "in_reply_to_id": options.get("reply_to"),
        "in_reply_to_account_id": None,
        "sensitive": bool(options.get("sensitive", False)),
        "spoiler_text": options.get("spoiler_text") or "",
        "visibility": options.get("visibility") or "public",
        "language": options.get("language"),
        "uri": remote_url or f"{base}/api/v1/statuses/{post['id']}",
        "url": remote_url,
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "quotes_count": 0,
        "edited_at": _ms(post["updated_at"]) if int(post["version"]) > 1 else None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "content": _content(post["display_text"]),
        "filtered": [],
        "reblog": None,
        "application": {"name": view.app_name or "Byline", "website": None},
        "account": view.account,
        "media_attachments": [media_entity(m, base) for m in view.media],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
        "byline": _byline(post),
    }
    if with_source:
        entity["text"] = post["text"]
    return entity


def scheduled_entity(view: StatusView, base: str) -> dict[str, Any]:
    """A ScheduledStatus (docs.joinmastodon.org/entities/ScheduledStatus), with ``byline``."""
    post = view.post
    options = post["options"]
    return {
        "id": post["id"],
        "scheduled_at": _ms(post["publish_at"]),
        "params": {
            "text": post["text"], "poll": None,
            "media_ids": list(options.get("media_ids", ())) or None,
            "sensitive": bool(options.get("sensitive", False)),
            "spoiler_text": options.get("spoiler_text"), "visibility": options.get("visibility") or "public",
            "scheduled_at": None, "application_id": None, "in_reply_to_id": options.get("reply_to"),
            "language": options.get("language"), "idempotency": None, "with_rate_limit": False,
        },
        "media_attachments": [media_entity(m, base) for m in view.media],
        "byline": _byline(post),
    }


def _raw(answer: Raw) -> web.Response:
    response = web.Response(status=answer.status, body=answer.body, content_type=answer.content_type,
                            headers=answer.headers)
    response.headers["Cache-Control"] = "no-store"
    return response


# -- apps and OAuth ----------------------------------------------------------------------------


def _basic(request: web.Request) -> tuple[str, str] | None:
    """Client credentials sent as HTTP Basic (``client_secret_basic``)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        client_id, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    # RFC 6749 §2.3.1: both are form-urlencoded before they are joined.
    pair = (unquote_plus(client_id), unquote_plus(secret))
    if any(unstorable(part) for part in pair):
        raise BylineError(Code.UNAUTHENTICATED, "the client credentials are not text", oauth="invalid_client")
    return pair if sep else None


@routes.post("/api/v1/apps")
@api
async def create_app(request: web.Request) -> web.Response:
    """Register a client app; its secret is shown this once."""
    app = await _oauth(request).register(await read_params(request))
    return _json({
        "id": numeric_id(app.client_id), "name": app.name, "website": app.website,
        "scopes": list(app.scopes), "redirect_uri": "\n".join(app.redirect_uris),
        "redirect_uris": list(app.redirect_uris), "vapid_key": "", "client_id": app.client_id,
        "client_secret": app.client_secret, "client_secret_expires_at": 0,
    })


@routes.get("/api/v1/apps/verify_credentials")
@api
async def verify_app(request: web.Request) -> web.Response:
    """The app a token belongs to."""
    auth = await _auth(request, "read")
    return _json({"name": auth.app_name or "Byline token", "website": None, "vapid_key": ""})


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
        params = await read_params(request)
    except BylineError as exc:
        raise _oauth_input(exc) from None
    return {k: v for k, v in params.items() if isinstance(v, str)}


@routes.post("/oauth/token")
@oauth_api
async def token(request: web.Request) -> web.Response:
    """Exchange an authorization code, once, for an access token."""
    answer = await _oauth(request).exchange(await _oauth_params(request), basic=_basic(request))
    return _json(answer.to_json(), headers={"Pragma": "no-cache"})


@routes.post("/oauth/revoke")
@oauth_api
async def revoke(request: web.Request) -> web.Response:
    """Revoke one of the app's tokens."""
    await _oauth(request).revoke(await _oauth_params(request), basic=_basic(request))
    return _json({})


# -- instance and account ----------------------------------------------------------------------


def _configuration(limits: Limits) -> dict[str, Any]:
    return {
        "statuses": {"max_characters": limits.max_characters,
                     "max_media_attachments": limits.max_media, "characters_reserved_per_url": 23},
        "media_attachments": {
            "supported_mime_types": list(limits.media_types), "image_size_limit": limits.media_bytes,
            "image_matrix_limit": 33_177_600, "video_size_limit": 0, "video_frame_rate_limit": 0,
            "video_matrix_limit": 0, "description_limit": 1500,
        },
        "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 300,
                  "max_expiration": 300},
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0},
    }


@functools.cache
def _version() -> str:
    try:
        byline = importlib.metadata.version("byline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        byline = "0"
    return f"{MASTODON_VERSION} (compatible; Byline {byline})"


@routes.get("/api/v1/instance")
@routes.get("/api/v1/instance/")
@api
async def instance_v1(request: web.Request) -> web.Response:
    """The Instance entity (v1); limits are those of the caller's account when it sends a token."""
    base = base_url(request)
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    host = base.split("://", 1)[-1]
    return _json({
        "uri": host, "title": "Byline", "short_description": "A posting gateway",
        "description": "Posts written here go through each account's policy before they are published.",
        "email": "", "version": _version(), "urls": {"streaming_api": base.replace("http", "ws", 1)},
        "stats": {"user_count": 0, "status_count": 0, "domain_count": 0}, "thumbnail": None,
        "languages": ["en"], "registrations": False, "approval_required": True, "invites_enabled": False,
        "configuration": _configuration(limits), "contact_account": None, "rules": [],
    })


@routes.get("/api/v2/instance")
@routes.get("/api/v2/instance/")
@api
async def instance_v2(request: web.Request) -> web.Response:
    """The Instance entity (v2), with ``api_versions``."""
    base = base_url(request)
    limits = _service(request).limits(await _service(request).maybe_authenticate(bearer(request)))
    configuration = _configuration(limits)
    configuration["urls"] = {"streaming": base.replace("http", "ws", 1), "status": None}
    configuration["translation"] = {"enabled": False}
    configuration["vapid"] = {"public_key": ""}
    return _json({
        "domain": base.split("://", 1)[-1], "title": "Byline", "version": _version(),
        "source_url": "https://github.com/", "description": "A posting gateway",
        "usage": {"users": {"active_month": 0}},
        "thumbnail": {"url": "", "blurhash": None, "versions": {}}, "icon": [],
        "languages": ["en"], "configuration": configuration,
        "registrations": {"enabled": False, "approval_required": True, "message": None, "url": None},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": None}, "rules": [],
    })


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
    form = status_form(await read_params(request))
    view = await _service(request).post(auth, form, idempotency_key=request.headers.get("Idempotency-Key"))
    base = base_url(request)
    return _json(scheduled_entity(view, base) if view.scheduled else status_entity(view, base))


@routes.get("/api/v1/statuses/{id}")
@api
async def get_status(request: web.Request) -> web.StreamResponse:
    """A status made here, as it stands; any other passes through to the platform."""
    auth = await _auth(request, "read:statuses")
    found = await _service(request).status(auth, _post_id(request), base=base_url(request))
    if isinstance(found, Raw):
        return _raw(found)
    return _json(status_entity(found, base_url(request)))


@routes.put("/api/v1/statuses/{id}")
@api
async def edit_status(request: web.Request) -> web.Response:
    """A new version while the post is held, scheduled or suggested."""
    auth = await _auth(request, "write:statuses")
    form = edit_form(await read_params(request))
    view = await _service(request).edit(auth, _post_id(request), form)
    return _json(status_entity(view, base_url(request)))


@routes.delete("/api/v1/statuses/{id}")
@api
async def delete_status(request: web.Request) -> web.Response:
    """Cancel a post not out yet (the pencil stage), or delete it on its platform."""
    auth = await _auth(request, "write:statuses")
    view = await _service(request).delete(auth, _post_id(request))
    return _json(status_entity(view, base_url(request), with_source=True))


@routes.get("/api/v1/scheduled_statuses")
@api
async def scheduled_statuses(request: web.Request) -> web.Response:
    """The caller's posts for this account that are not out yet, newest first."""
    auth = await _auth(request, "read:statuses")
    views = await _service(request).pending(
        auth, limit=_limit(request.query, default=20, most=40),
        max_id=_digits(request.query, "max_id"), since_id=_digits(request.query, "since_id"),
        min_id=_digits(request.query, "min_id"),
    )
    base = base_url(request)
    return _json([scheduled_entity(v, base) for v in views])


@routes.get("/api/v1/scheduled_statuses/{id}")
@api
async def scheduled_status(request: web.Request) -> web.Response:
    """One of the caller's posts not out yet."""
    auth = await _auth(request, "read:statuses")
    view = await _service(request).pending_one(auth, _post_id(request))
    return _json(scheduled_entity(view, base_url(request)))


@routes.delete("/api/v1/scheduled_statuses/{id}")
@api
async def cancel_scheduled(request: web.Request) -> web.Response:
    """Cancel one of the caller's posts not out yet."""
    auth = await _auth(request, "write:statuses")
    await _service(request).cancel_pending(auth, _post_id(request))
    return _json({})


@routes.put("/api/v1/scheduled_statuses/{id}")
@api
async def reschedule(request: web.Request) -> web.Response:
    """Moving a post's time is not offered: its policy decides when it goes out."""
    auth = await _auth(request, "write:statuses")
    await _service(request).pending_one(auth, _post_id(request))
    raise BylineError(Code.VALIDATION, "Validation failed: Byline cannot move a scheduled post; "
                                       "delete it and post it again with the new time")


# -- media ---------------------------------------------------------------------------------------


async def _upload(request: web.Request) -> Upload:
    """The ``file`` and ``description`` of a multipart upload, read up to a limit."""
    if request.content_type != "multipart/form-data":
        raise BylineError(Code.VALIDATION, "Validation failed: File content type is invalid, File is invalid")
    data: bytes | None = None
    mime_type = ""
    description: str | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "file":
                mime_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
                chunks = bytearray()
                while chunk := await part.read_chunk(65536):
                    chunks += chunk
                    if len(chunks) > MEDIA_READ_LIMIT:
                        raise web.HTTPRequestEntityTooLarge(max_size=MEDIA_READ_LIMIT, actual_size=len(chunks))
                data = bytes(chunks)
            elif part.name == "description":
                description = (await part.text())[:1500] or None
                check_text(description, "description")
            else:
                await part.release()
    except (ValueError, AssertionError):
        raise BylineError(Code.BAD_REQUEST, "Error while parsing request body") from None
    if data is None:
        raise BylineError(Code.VALIDATION, "Validation failed: File content type is invalid, File is invalid")
    return Upload(data=data, mime_type=mime_type, description=description)


@routes.post("/api/v2/media")
@routes.post("/api/v1/media")
@api
async def upload_media(request: web.Request) -> web.Response:
    """Keep a file for a coming post, where the account's platform takes media."""
    auth = await _auth(request, "write:media")
    row = await _service(request).upload(auth, await _upload(request))
    return _json(media_entity(row, base_url(request)))


@routes.get("/api/v1/media/{id}")
@api
async def get_media(request: web.Request) -> web.Response:
    """One of the caller's uploads."""
    auth = await _auth(request, "write:media")
    row = await _service(request).media_info(auth, _post_id(request))
    return _json(media_entity(row, base_url(request)))


@routes.get("/media/{id}/{digest}")
@api
async def media_file(request: web.Request) -> web.Response:
    """An upload's bytes, for the app's preview; the URL names its content."""
    mime_type, data = await _service(request).media_file(_post_id(request), request.match_info["digest"])
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
