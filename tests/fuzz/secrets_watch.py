"""A watch over every response the test gateways send and every log line, for secrets.

For the whole test session (``tests/conftest.py`` starts it), it records:

* the secrets the gateway makes or reads, where it makes or reads them: API tokens and app
  passwords (``Identity.issue``), people's passwords (``check_password``) and page session
  cookies (``People.open_session``), OAuth client secrets, sign-in tickets and authorization codes,
  XRPC session JWTs, platform credentials (``resolve_credential``: ``env:`` and ``file:``),
  a Bluesky PDS's session JWTs held by the adapter, the log signing key and the gateway's own
  keys;
* every response of every gateway ``make_app`` builds (a middleware put first: it sees what the
  client gets, errors included): its route, status, textual body and the headers that can carry
  a secret (``Location``, ``Set-Cookie``), with the secrets issued while it was handled;
* every structlog event, rendered as the JSON a production log line would be (plain
  tracebacks), and every record of the standard library's logging that gets through.

At the end, no secret may appear anywhere, except in the one answer that delivers it on purpose
(``DELIVERIES``): the token an OAuth code is exchanged for, an app's client secret at its
registration, the code (and the sign-in ticket the form carries) on the sign-in page, and an
XRPC session's JWTs when it is made or refreshed; each only in the answer to the request during
which it was issued. Log lines have no exception at all.

Matching is by the secret's longest run of URL-safe characters (``[A-Za-z0-9_-]``, 12 or more):
runs of the same kind are cut from every text, so a whole session's output is checked in one
pass of set lookups. Secrets shorter than that are checked by substring, if they have 8
characters or more; shorter ones (a test's ``"tok"``) are not secrets worth the name.
"""

from __future__ import annotations

import base64
import functools
import importlib
import inspect
import json
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web

RUN_LENGTH = 12
RUN = re.compile(rf"[A-Za-z0-9_\-]{{{RUN_LENGTH},}}")
SHORTEST = 8
TEXTUAL = ("application/json", "text/", "application/xml", "application/x-www-form-urlencoded",
           "application/problem+json")
MAX_BODY = 1 << 20

DELIVERIES: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/oauth/token"): frozenset({"token"}),
    ("POST", "/api/v1/apps"): frozenset({"client secret"}),
    ("POST", "/oauth/authorize"): frozenset({"code", "sign-in ticket", "page session"}),
    ("POST", "/signin"): frozenset({"page session"}),
    ("POST", "/xrpc/com.atproto.server.createSession"): frozenset({"xrpc session jwt"}),
    ("POST", "/xrpc/com.atproto.server.refreshSession"): frozenset({"xrpc session jwt"}),
}
"""(method, path) -> the kinds of secret its answer delivers, once, to the client that asked."""

CARRIED = {("POST", "/oauth/authorize"): frozenset({"sign-in ticket"})}
"""Secrets an answer may carry again after the one that issued them: the sign-in form carries its
ticket from step to step (never the person's token)."""

@dataclass
class Seen:
    """One response, or one log line, reduced to what can be checked."""

    where: str
    runs: frozenset[str]
    text: str
    issued: frozenset[str] = frozenset()
    request: tuple[str, str] | None = None


@dataclass
class Leak:
    """A secret found where it must not be."""

    kind: str
    where: str
    context: str

    def __str__(self) -> str:
        return f"{self.kind} in {self.where}: …{self.context}…"


@dataclass
class Watch:
    """The secrets issued and everything sent or logged, for one session (or one test's block)."""

    secrets: dict[str, str] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def secret(self, value: object, kind: str) -> None:
        """Remember a secret, in the order secrets were issued."""
        for piece in _pieces(value):
            if piece not in self.secrets:
                self.secrets[piece] = kind
                self.order.append(piece)

    def response(self, request: web.Request, response: web.StreamResponse, issued: list[str]) -> None:
        """Record an answer a client got."""
        texts = [response.headers.get("Location", ""), *response.headers.getall("Set-Cookie", [])]
        body = getattr(response, "body", None)
        if isinstance(body, bytes | bytearray) and (response.content_type or "").startswith(TEXTUAL):
            texts.append(bytes(body[:MAX_BODY]).decode("utf-8", "replace"))
        text = "\n".join(t for t in texts if t)
        self.seen.append(Seen(
            where=f"the answer {response.status} to {request.method} {request.path}",
            runs=frozenset(RUN.findall(text)), text=text, issued=frozenset(issued),
            request=(request.method, request.path),
        ))

    def line(self, text: str, where: str = "a log line") -> None:
        """Record a log line."""
        self.seen.append(Seen(where=where, runs=frozenset(RUN.findall(text)), text=text))

    def leaks(self) -> list[Leak]:
        """Every secret found where it must not be."""
        needles: dict[str, str] = {}
        short: list[str] = []
        for secret in self.secrets:
            needle = _needle(secret)
            # A secret with no URL-safe run as long as a run is found by its whole self, in the
            # text: among the runs of a text it would never be (its '+' and '/' end them).
            if len(needle) >= RUN_LENGTH and RUN.fullmatch(needle):
                needles[needle] = secret
            else:
                short.append(secret)
        found: list[Leak] = []
        for seen in self.seen:
            hits = [needles[run] for run in seen.runs if run in needles]
            hits += [s for s in short if s in seen.text]
            for secret in hits:
                kind = self.secrets[secret]
                if seen.request is not None and _delivered(seen, secret, kind):
                    continue
                found.append(Leak(kind=kind, where=seen.where, context=_redacted(seen.text, _needle(secret))))
        return found


def _delivered(seen: Seen, secret: str, kind: str) -> bool:
    assert seen.request is not None
    if kind in CARRIED.get(seen.request, frozenset()):
        return True
    return kind in DELIVERIES.get(seen.request, frozenset()) and secret in seen.issued


def _needle(secret: str) -> str:
    """What a secret is found by: its longest URL-safe run, or itself when it has none."""
    runs = RUN.findall(secret)
    return max(runs, key=len) if runs else secret


def _redacted(text: str, needle: str) -> str:
    """The text around a found secret, the secret itself cut short so the report does not show it."""
    at = text.find(needle)
    shown = text[max(0, at - 40):at + len(needle) + 40].replace(needle, needle[:6] + "…")
    return shown.replace("\n", " ")


def _pieces(value: object) -> Iterator[str]:
    """The secret strings in a value: a string itself, and the string values of a JSON object
    or of ``a:b`` pairs a credential may hold."""
    if isinstance(value, bytes):
        yield value.hex()
        yield base64.b64encode(value).decode()
        yield base64.urlsafe_b64encode(value).decode().rstrip("=")
        return
    if not isinstance(value, str) or len(value) < SHORTEST:
        return
    yield value
    try:
        loaded = json.loads(value)
    except ValueError:
        loaded = None
    if isinstance(loaded, dict):
        for inner in loaded.values():
            yield from _pieces(inner)
    elif ":" in value:
        for part in value.split(":"):
            if len(part) >= SHORTEST and part != value:
                yield part


class Recorder:
    """Installs the watch's hooks into the gateway, structlog and logging, and takes them out."""

    def __init__(self) -> None:
        self.watch = Watch()
        self.missing: list[str] = []
        """Hooks whose target the code no longer has (a test reports them)."""
        self._undo: list[Callable[[], None]] = []

    @contextmanager
    def isolated(self) -> Iterator[Watch]:
        """A watch of its own for a block (a test that leaks on purpose), kept out of the session's."""
        saved, self.watch = self.watch, Watch()
        try:
            yield self.watch
        finally:
            self.watch = saved

    # -- installing ------------------------------------------------------------------------

    def install(self) -> None:
        """Hook everything; ``uninstall`` takes it all out again. A hook whose target the code no
        longer has is listed in ``missing`` (a test fails on it) instead of failing every test."""
        recorder = self

        def kind_of(result: Any, kind: str) -> Any:
            recorder.watch.secret(result, kind)
            return result

        def jwts(answer: Any) -> None:
            for name in ("accessJwt", "refreshJwt"):
                kind_of(answer.get(name), "xrpc session jwt")

        def signer(result: Any) -> None:
            text = result.to_text()
            kind_of(text, "log signing key")
            kind_of(text.split("+", 4)[-1], "log signing key")
            kind_of(result.private_key.private_bytes_raw(), "log signing key")

        def pds_login(login: Any) -> None:
            kind_of(login.access_jwt, "platform session jwt")
            kind_of(login.refresh_jwt, "platform session jwt")

        self._method("gateway.services.identity.Identity.issue", lambda r: kind_of(r, "token"))
        self._method("gateway.services.oauth.OAuthService.register",
                     lambda app: kind_of(app.client_secret, "client secret"))
        self._method("gateway.services.oauth.OAuthService.authorize", lambda code: kind_of(code, "code"))
        self._method("gateway.services.oauth.OAuthService.sign_in", lambda pair: kind_of(pair[1], "sign-in ticket"))
        self._method("gateway.services.xrpc_sessions.XrpcSessions._answer", jwts)
        self._method("gateway.services.people.People.open_session", lambda pair: kind_of(pair[0], "page session"))
        self._function("gateway.services.people.check_password", lambda v: kind_of(v, "password"))
        self._function("gateway.services.platforms.resolve_credential", lambda v: kind_of(v, "platform credential"))
        self._function("gateway.services.checkpoints.load_signer", signer, also=("gateway.app",))
        self._function("gateway.services.keys.gateway_key", lambda raw: kind_of(raw, "gateway key"),
                       also=("gateway.app",))
        self._constructor("adapters.bluesky.client.Login", pds_login)
        self._guarded("the application factory gateway.app.make_app", self._install_make_app)
        self._install_structlog()
        self._guarded("gateway.logs.configure", self._install_configure)
        handler = _LineHandler(self)
        logging.getLogger().addHandler(handler)
        self._undo.append(lambda: logging.getLogger().removeHandler(handler))

    def _install_make_app(self) -> None:
        import sys

        import gateway.app

        original = gateway.app.make_app
        recorder = self

        @functools.wraps(original)
        def make_app(*args: Any, **kwargs: Any) -> web.Application:
            app = original(*args, **kwargs)
            app.middlewares.insert(0, recorder.middleware)  # first: it sees what the client gets
            return app

        for module in list(sys.modules.values()):
            if getattr(module, "make_app", None) is original:
                self._patch(module, "make_app", make_app)

    def _install_configure(self) -> None:
        import gateway.logs

        configure = gateway.logs.configure
        recorder = self

        @functools.wraps(configure)
        def reconfigure(*args: Any, **kwargs: Any) -> None:
            configure(*args, **kwargs)
            recorder._install_structlog()

        self._patch(gateway.logs, "configure", reconfigure)

    def uninstall(self) -> None:
        """Take every hook out, last first."""
        while self._undo:
            self._undo.pop()()

    def ensure_structlog(self) -> None:
        """Put the log hook back if something configured structlog anew since."""
        if _structlog_hook not in structlog.get_config()["processors"]:
            self._install_structlog()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Callable[[web.Request], Any]) -> web.StreamResponse:
        """Record each answer with the secrets issued while it was made (by the order of issue: the
        work of a request may run in the log appender's task, out of reach of a context variable)."""
        watch = self.watch
        mark = len(watch.order)
        try:
            response: web.StreamResponse = await handler(request)
        except web.HTTPException as exc:  # a redirect or error raised, not returned
            watch.response(request, exc, watch.order[mark:])
            raise
        watch.response(request, response, watch.order[mark:])
        return response

    # -- helpers ---------------------------------------------------------------------------

    def _install_structlog(self) -> None:
        global _CURRENT
        _CURRENT = self
        processors = [p for p in structlog.get_config()["processors"] if p is not _structlog_hook]
        structlog.configure(processors=[*processors[:-1], _structlog_hook, *processors[-1:]])

    def _patch(self, owner: Any, name: str, value: Any) -> None:
        original = getattr(owner, name)
        setattr(owner, name, value)
        self._undo.append(lambda: setattr(owner, name, original))

    def _guarded(self, what: str, install: Callable[[], None]) -> None:
        try:
            install()
        except (ImportError, AttributeError) as exc:
            self.missing.append(f"{what} ({type(exc).__name__}: {exc})")

    def _method(self, dotted: str, after: Callable[[Any], Any]) -> None:
        """Wrap ``module.Class.method`` (sync or async): ``after`` sees what it returns."""
        def install() -> None:
            module, cls_name, name = _split(dotted, 3)
            cls = getattr(importlib.import_module(module), cls_name)
            self._patch(cls, name, _wrapper(getattr(cls, name), after))
        self._guarded(dotted, install)

    def _function(self, dotted: str, after: Callable[[Any], Any], *, also: tuple[str, ...] = ()) -> None:
        """Wrap ``module.function``, and the same name in ``also`` modules that imported it."""
        def install() -> None:
            module_name, name = _split(dotted, 2)
            module = importlib.import_module(module_name)
            original = getattr(module, name)
            wrapped = _wrapper(original, after)
            self._patch(module, name, wrapped)
            for other in map(importlib.import_module, also):
                if getattr(other, name, None) is original:
                    self._patch(other, name, wrapped)
        self._guarded(dotted, install)

    def _constructor(self, dotted: str, after: Callable[[Any], Any]) -> None:
        """Wrap a class's ``__init__``: ``after`` sees each object made (isinstance keeps working)."""
        def install() -> None:
            module, name = _split(dotted, 2)
            cls = getattr(importlib.import_module(module), name)
            made = cls.__init__

            @functools.wraps(made)
            def init(this: Any, *args: Any, **kwargs: Any) -> None:
                made(this, *args, **kwargs)
                after(this)

            self._patch(cls, "__init__", init)
        self._guarded(dotted, install)


def _split(dotted: str, parts: int) -> list[str]:
    """``a.b.Class.method`` split into the module and the last ``parts - 1`` names."""
    pieces = dotted.rsplit(".", parts - 1)
    if len(pieces) != parts:
        raise AttributeError(f"{dotted} names no attribute")
    return pieces


def _wrapper(function: Callable[..., Any], after: Callable[[Any], Any]) -> Callable[..., Any]:
    """``function`` (sync or async), with ``after`` called on each result."""
    if inspect.iscoroutinefunction(function):
        @functools.wraps(function)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = await function(*args, **kwargs)
            after(result)
            return result
        return wrapper

    @functools.wraps(function)
    def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
        result = function(*args, **kwargs)
        after(result)
        return result
    return sync_wrapper


_CURRENT: Recorder | None = None


def _structlog_hook(logger: Any, method: str, event_dict: Any) -> Any:
    """Record the event as a production JSON line would hold it; pass it on untouched."""
    if _CURRENT is not None:
        try:
            rendered = structlog.processors.format_exc_info(logger, method, dict(event_dict))
            _CURRENT.watch.line(json.dumps(rendered, default=repr, ensure_ascii=False))
        except Exception:  # the watch must never break a test's logging
            _CURRENT.watch.line(repr(event_dict))
    return event_dict


class _LineHandler(logging.Handler):
    """Records what reaches the standard library's root logger."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__(level=logging.NOTSET)
        self._recorder = recorder
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._recorder.watch.line(self.format(record), where="a logging record")
        except Exception:  # the watch must never break a test's logging
            self.handleError(record)
