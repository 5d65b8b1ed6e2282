"""The people's pages: server-rendered HTML (Jinja2, autoescaped), plain forms and links, and
scripts only where they add to a page (live updates, the in-browser proof check).

Every page answer carries a strict Content-Security-Policy (scripts and styles only from the
gateway's own ``/static/`` files, which carry their hash in their names); every form carries
the session's CSRF value; a page that cannot be shown says why in a page of its own, with the
status a JSON answer would have had.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from http.cookies import Morsel
from importlib import resources
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage

from gateway.appkeys import PEOPLE, SETTINGS
from gateway.errors import BylineError, Code, Failure
from gateway.http.common import REFUSAL_PAGE, check_text, database_gone, waited
from gateway.services.people import Session
from gateway.services.posts import Caller
from gateway.services.reply_targets import web_link
from gateway.storage.db import unavailable

SESSION_COOKIE: Final = "byline_session"
"""The session cookie's name where people reach the gateway over plain http (``behind_tls`` is
false: a gateway on one's own machine, and the tests), where a browser would refuse the Secure
flag a ``__Host-`` name needs (Chromium takes it from localhost alone)."""
TLS_SESSION_COOKIE: Final = "__Host-byline_session"
"""Its name behind TLS. A browser takes a ``__Host-`` cookie only when it is Secure, has Path=/
and names no Domain, so only this host, over TLS, can set it: no page of a sibling subdomain and
no man in the middle of a plain-http request can plant one (a session of their own, which would
have the person act as them) or overwrite the person's. Behind TLS only this name is read."""
DEVICE_COOKIE: Final = "byline_device"
"""The device cookie's name over plain http (``gateway.services.devices``), kept to the two
sign-in forms' paths (``DEVICE_PATHS``)."""
TLS_DEVICE_COOKIE: Final = "__Host-byline_device"
"""Its name behind TLS, as the session cookie's is: only this host, over TLS, can set it, so a
page of a sibling subdomain cannot put a cookie of its own in front of the person's (which would
leave their browser counted by their name again, and lockable by guesses). A ``__Host-`` cookie
must have Path=/; it is sent to every page then, and read only by the sign-in forms."""
DEVICE_PATHS: Final = ("/signin", "/oauth/authorize")
"""The paths of the forms that sign a person in with a password: where the device cookie goes."""
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Nothing loads but the gateway's own files; no inline script or style; no framing."""
MAX_FORM_BYTES: Final = 64 * 1024
"""The largest form a page takes: a post's text and a reason fit many times over."""

PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATIC: Final = web.AppKey("static_files", dict)
_SESSION: Final = web.RequestKey("page_session", object)
TEMPLATES: Final = web.AppKey("templates", jinja2.Environment)
"""The pages' Jinja2 environment, found from sub-applications too (``request.config_dict``)."""


@dataclass(frozen=True)
class StaticFile:
    """One file under ``gateway/http/static``, named by its content's hash."""

    body: bytes
    content_type: str


_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".png": "image/png"}


def _static_files() -> tuple[dict[str, StaticFile], dict[str, str]]:
    """Every static file, by its hashed name, and the hashed name of each plain name."""
    files: dict[str, StaticFile] = {}
    names: dict[str, str] = {}
    for entry in resources.files("gateway.http").joinpath("static").iterdir():
        if not entry.is_file() or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        stem, dot, ext = entry.name.rpartition(".")
        hashed = f"{stem}.{hashlib.sha256(body).hexdigest()[:16]}.{ext}"
        files[hashed] = StaticFile(body=body, content_type=_TYPES.get(f"{dot}{ext}", "application/octet-stream"))
        names[entry.name] = hashed
    return files, names


async def static_file(request: web.Request) -> web.Response:
    """A static file by its hashed name: it never changes, so it is cached for a year."""
    found = request.app[STATIC].get(request.match_info["name"])
    if found is None:
        raise BylineError(Code.NOT_FOUND, "no such file")
    return web.Response(body=found.body, content_type=found.content_type, headers={
        "Cache-Control": "public, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff",
    })


def setup(app: web.Application) -> None:
    """Templates and static files on ``app``."""
    files, names = _static_files()
    app[STATIC] = files
    env = aiohttp_jinja2.setup(
        app, loader=jinja2.PackageLoader("gateway.http", "templates"),
        autoescape=jinja2.select_autoescape(("html", "xml"), default_for_string=True, default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.globals["static"] = lambda name: f"/static/{names[name]}"
    env.globals["web_link"] = web_link  # one rule for every platform-given address a page links
    app[TEMPLATES] = env
    app[REFUSAL_PAGE] = refusal_page
    app.router.add_get("/static/{name}", static_file)


def behind_tls(request: web.Request) -> bool:
    """Whether people reach the gateway over TLS: directly, or through a proxy at an https URL."""
    public = request.config_dict[SETTINGS].public_url or ""
    return request.secure or public.startswith("https://")


def page_headers(response: web.StreamResponse) -> None:
    """The headers every page carries."""
    response.headers.update({
        "Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    })
    response.headers.setdefault("Cache-Control", "no-store")


def session_cookie(request: web.Request) -> str:
    """The name of the session cookie people reaching the gateway as ``request`` did have."""
    return TLS_SESSION_COOKIE if behind_tls(request) else SESSION_COOKIE


def session_cookie_of(request: web.Request) -> str | None:
    """The session cookie the request carries under its name (``session_cookie``); one under the
    other name is no session: behind TLS, a plainly named one may have been planted."""
    return request.cookies.get(session_cookie(request))


async def session_of(request: web.Request) -> Session | None:
    """The signed-in person's session, if the request carries a live one (looked up once)."""
    if _SESSION not in request:
        request[_SESSION] = await request.config_dict[PEOPLE].session(session_cookie_of(request))
    found = request[_SESSION]
    assert found is None or isinstance(found, Session)
    return found


def browser_sessions(request: web.Request) -> tuple[str, ...]:
    """The session cookies the browser sent, under either name: to end when it signs in afresh
    or out, never to sign in with. A plainly named one behind TLS is a leftover of the time
    before the gateway had an https address, or was planted: either way it ends."""
    return tuple(cookie for name in (TLS_SESSION_COOKIE, SESSION_COOKIE) if (cookie := request.cookies.get(name)))


def keep_session(request: web.Request, response: web.StreamResponse, cookie: str) -> None:
    """Have the browser keep ``cookie``, the session just opened, under the name it is read by
    (HttpOnly, SameSite=Lax, Path=/, Secure behind TLS, for as long as the session lasts), and
    forget any under the other name."""
    name = session_cookie(request)
    response.set_cookie(name, cookie, path="/", httponly=True, samesite="Lax", secure=behind_tls(request),
                        max_age=int(request.config_dict[PEOPLE].session_lifetime.total_seconds()))
    forget_sessions(request, response, keep=name)


def forget_sessions(request: web.Request, response: web.StreamResponse, *, keep: str | None = None) -> None:
    """Have the browser forget the session cookies it sent (but ``keep``). A ``__Host-`` cookie
    is forgotten only by a Set-Cookie that is Secure and has Path=/, as it was set."""
    for name in (TLS_SESSION_COOKIE, SESSION_COOKIE):
        if name != keep and name in request.cookies:
            response.del_cookie(name, path="/", secure=True if name == TLS_SESSION_COOKIE else None)


def device_cookie_of(request: web.Request) -> str | None:
    """The device cookie the request carries under the name it is read by there."""
    return request.cookies.get(TLS_DEVICE_COOKIE if behind_tls(request) else DEVICE_COOKIE)


def keep_device(request: web.Request, response: web.StreamResponse, value: str) -> None:
    """Have the browser keep ``value``, a new device cookie, for as long as one is taken:
    HttpOnly, SameSite=Strict (only the gateway's own forms send it), behind TLS a ``__Host-``
    cookie, over plain http one for each sign-in form's path."""
    max_age = int(request.config_dict[PEOPLE].device_lifetime.total_seconds())
    if behind_tls(request):
        response.set_cookie(TLS_DEVICE_COOKIE, value, path="/", httponly=True, samesite="Strict", secure=True,
                            max_age=max_age)
        return
    # One name, two paths: a response's cookies are kept by name, so these are written as they are.
    for path in DEVICE_PATHS:
        morsel: Morsel[str] = Morsel()
        morsel.set(DEVICE_COOKIE, value, value)
        morsel["path"], morsel["httponly"], morsel["samesite"], morsel["max-age"] = path, True, "Strict", max_age
        response.headers.add("Set-Cookie", morsel.OutputString())


async def signed_in(request: web.Request) -> Session:
    """The signed-in person's session; a person who is not signed in goes to the sign-in page."""
    session = await session_of(request)
    if session is None:
        target = request.rel_url.path_qs if request.method == "GET" else "/"
        raise web.HTTPSeeOther(location="/signin?" + _next_query(target))
    return session


def see_other(location: str) -> web.Response:
    """Go on to ``location`` (after a form, a GET: the browser's back button repeats nothing)."""
    return web.Response(status=303, headers={"Location": location})


def caller_of(session: Session) -> Caller:
    """The person of a session, as the services know callers: a person's own, with no scopes."""
    return Caller(user=session.person)


def _next_query(target: str) -> str:
    return urlencode({"next": target})


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path on this gateway, never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/queue"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):  # no control character goes in a header
        return "/queue"
    return value


async def _read_at_most(request: web.Request, limit: int) -> bytes:
    """The body, whole, or its first ``limit`` bytes: one ``read`` gives what has arrived so far,
    and a form sent in pieces (a slow link) would be cut short, its last field with it."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        part = await request.content.read(limit - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


async def read_form(request: web.Request, *, session: Session | None) -> dict[str, str]:
    """A form's fields, bounded and checked: 413 past ``MAX_FORM_BYTES``, 400 when it cannot be
    read, 422 for text that cannot be stored, 403 when its CSRF value is not the session's."""
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise BylineError(Code.PAYLOAD_TOO_LARGE, "This form is too large.")
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise BylineError(Code.UNSUPPORTED_MEDIA_TYPE, "Send the page's form as it is.")
    try:
        raw = await _read_at_most(request, MAX_FORM_BYTES + 1)
    except (BadHttpMessage, ValueError):
        raise BylineError(Code.BAD_REQUEST, "The form could not be read.") from None
    if len(raw) > MAX_FORM_BYTES:
        raise BylineError(Code.PAYLOAD_TOO_LARGE, "This form is too large.")
    if request.content_type != "application/x-www-form-urlencoded":
        raise BylineError(Code.UNSUPPORTED_MEDIA_TYPE, "Send the page's form as it is.")
    try:
        # Strict: a %-escape that is not UTF-8 would be read as U+FFFD, in words an approver saves.
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=64,
                          errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BylineError(Code.BAD_REQUEST, "The form could not be read.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    check_text(form)
    if session is not None and not session.csrf_matches(form.get("csrf")):
        raise BylineError(
            Code.FORBIDDEN,
            "This form was not sent from a page of this gateway, or your session changed. "
            "Reload the page and try again.",
        )
    return form


def render(request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200) -> web.Response:
    """A page from its template, with the signed-in person (if any) and their CSRF value."""
    session = request.get(_SESSION)
    assert session is None or isinstance(session, Session)
    full = {"person": session.person if session else None, "csrf": session.csrf if session else "", **context}
    html = request.config_dict[TEMPLATES].get_template(template).render(full)
    response = web.Response(text=html, content_type="text/html", status=status)
    page_headers(response)
    return response


def page(handler: PageHandler) -> PageHandler:
    """A page handler whose refusals are pages: the message, and the status it carries."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response = await handler(request)
        except Failure as exc:
            response = await _refused(request, exc)
        except Exception as exc:
            # The driver's word for the database gone (a connection of its own, not through
            # storage) is storage's outage too, and a person's browser is shown a page of it.
            if (outage := database_gone(request, exc)) is None:
                raise
            response = await _refused(request, outage)
        page_headers(response)
        return response

    return wrapped


async def _refused(request: web.Request, exc: Failure) -> web.Response:
    """The page that says why ``exc`` stopped the request, with its status (and when to try again)."""
    # With the database gone the page still says so, as a page: without the person, whose
    # session cannot be read (when that is what failed, in storage's word or the driver's).
    try:
        await session_of(request)
    except Exception as gone:
        if not unavailable(gone):
            raise
    return waited(render(request, "error.html", {"title": _TITLES.get(exc.status, "This cannot go on"),
                                                 "message": exc.message}, status=exc.status), exc)


def error_page(env: jinja2.Environment, *, status: int, message: str, title: str | None = None) -> web.Response:
    """The pages' error page, for a browser answered before any page's handler could run (a
    connection refused for its address's count): no session is read, so no one is shown signed in."""
    html = env.get_template("error.html").render({"person": None, "csrf": "", "message": message,
                                                   "title": title or _TITLES.get(status, "This cannot go on")})
    response = web.Response(text=html, content_type="text/html", status=status)
    page_headers(response)
    return response


_REFUSALS: Final = {
    404: "There is no page at this address. The link may be old, or the address mistyped.",
    405: "This address takes a form sent from one of the gateway's pages; it is not a page to open.",
}
"""What a person's browser is told of the router's refusals, by status."""


def refusal_page(request: web.Request, status: int) -> web.Response | None:
    """The error page for the router's refusal of a request a person's browser made (its
    ``Accept`` ranks HTML first): a person who follows an old link reads a page with a way back,
    not the API's JSON. None for anything else, which the API's JSON answers."""
    if status not in _REFUSALS or not prefers_html(request.headers.get("Accept")):
        return None
    return error_page(request.config_dict[TEMPLATES], status=status, message=_REFUSALS[status])


_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
"""A weight as RFC 9110 writes one (``q=0.8``); anything else weighs nothing."""


def prefers_html(accept: str | None) -> bool:
    """Whether an ``Accept`` header (RFC 9110, section 12.5.1) ranks an HTML page above JSON, as a
    browser's does when a person opens an address (``text/html,…,*/*;q=0.8``). ``*/*`` alone, or
    no header, as API clients send, is a tie, which JSON takes."""
    if not accept:
        return False
    ranks: dict[str, float] = {}
    for item in accept.split(",")[:64]:
        kind, *params = (part.strip() for part in item.split(";"))
        weight = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                weight = float(value) if _QVALUE.fullmatch(value.strip()) else 0.0
        ranks[kind.lower()] = max(weight, ranks.get(kind.lower(), 0.0))

    def rank(kind: str) -> float:
        for said in (kind, kind.split("/")[0] + "/*", "*/*"):
            if said in ranks:
                return ranks[said]
        return 0.0

    return max(rank("text/html"), rank("application/xhtml+xml")) > rank("application/json")


_TITLES = {
    400: "This request cannot be read", 401: "Sign in first", 403: "Not yours to do",
    404: "Not found", 405: "Not a page", 409: "This has changed", 413: "Too large", 415: "Not a form",
    422: "Something is not right", 429: "Too many attempts",
}
