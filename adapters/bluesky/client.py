"""XRPC calls to one account's PDS, under the account's own session, on the shared HTTP client.

Sessions
--------
``com.atproto.server.createSession`` is called on first use; the access and refresh JWTs are
kept in memory only. A call answered with ``ExpiredToken``/``InvalidToken`` (400) or 401 is
retried once after ``com.atproto.server.refreshSession``, or after a new ``createSession`` when
the refresh token is refused too. If the credential still does not work the error has
``auth_failed=True``. No secret or token ever appears in an exception, a log line or ``repr``:
the shared client scrubs the app password and the JWTs held from every text it builds.

Relaying
--------
:meth:`XrpcClient.relay` relays any other XRPC call to the PDS under the account's own session
and returns the PDS's answer as it came; :meth:`XrpcClient.stream` does the same for a read
whose body (a blob) is passed on in chunks. The gateway decides which calls may go.

Errors
------
The shared client's rules (``adapters._http``): connection errors, timeouts, 408 and 5xx are
retryable; 429 is retryable with ``retry_after`` from ``Retry-After`` or, failing that,
``ratelimit-reset`` (epoch seconds), both read against the injected clock; 401, and a token
refused after one refresh, are ``auth_failed``; 400 ``InvalidRequest`` and other 4xx are
final, with the PDS's ``error: message`` in ``detail``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from adapters._http import (
    Clock,
    HttpClient,
    HttpResponse,
    parse_epoch,
    parse_retry_after,
    seconds_until,
)
from adapters.base import AdapterConfig, AdapterError

PLATFORM: Final = "bluesky"

RELAY_CHUNK_BYTES: Final = 64 * 1024
"""The most of a streamed answer held at once while it is passed on."""

_log = logging.getLogger(__name__)

# Error names with which a PDS says the token (not the request) is the problem.
_TOKEN_ERRORS: Final = frozenset(
    {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"}
)
# Errors with which createSession says the account cannot log in until someone acts.
_LOGIN_REFUSED: Final = frozenset(
    {"AuthenticationRequired", "AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired"}
)
# What an XRPC method name looks like; anything else is never put into a PDS URL.
_NSID_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+){2,}$")
# Headers a relayed call carries to the PDS, and back from it. Authorization is never
# relayed: the PDS sees the account's own session, the client sees none of it.
_RELAYED_REQUEST_HEADERS: Final = (
    "Content-Type", "Accept", "Accept-Language", "atproto-accept-labelers", "atproto-proxy",
)
_RELAYED_RESPONSE_HEADERS: Final = (
    "Content-Type", "Content-Language", "atproto-content-labelers", "atproto-repo-rev",
    "Retry-After", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
    "ratelimit-policy",
)


@dataclass(frozen=True)
class Login:
    """One PDS session. The JWTs are bearer credentials: kept out of ``repr``."""

    did: str
    handle: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)


@dataclass(frozen=True)
class XrpcRawResponse:
    """A relayed call's answer, as the PDS gave it (only the relayable headers kept)."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class XrpcStream:
    """A relayed call's answer whose body is passed on as it arrives (a blob), never held whole.
    ``chunks`` raises ``AdapterError`` when the PDS breaks off."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


class XrpcError(Exception):
    """A non-2xx XRPC answer, before it is classified."""

    def __init__(self, method: str, nsid: str, response: HttpResponse, retry_after: float | None):
        body = response.json()
        fields = body if isinstance(body, dict) else {}
        self.method = method
        self.nsid = nsid
        self.response = response
        self.status = response.status
        self.error = str(fields.get("error") or "") or f"HTTP {response.status}"
        self.message = str(fields.get("message") or "")
        if not isinstance(body, dict) and response.body:
            # Cut after it is read whole: the adapter redacts the secret from the message, and
            # a secret cut at byte 200 would not match (``redact`` also takes its cut beginning).
            self.message = response.body.decode("utf-8", "replace")[:200]
        self.retry_after = retry_after
        super().__init__(f"{nsid}: {self.status} {self.error}")

    @property
    def token_refused(self) -> bool:
        """Whether the PDS refused the credential rather than the request."""
        return self.status == 401 or (self.status == 400 and self.error in _TOKEN_ERRORS)


def _xrpc_detail(body: Any, _text: str) -> str | None:
    """An XRPC error body's ``error: message``, for ``detail``."""
    if not isinstance(body, dict):
        return None
    error = str(body.get("error") or "")
    message = str(body.get("message") or "")
    if error and message:
        return f"{error}: {message}"
    return error or message or None


def _refuses_token(answer: XrpcRawResponse) -> bool:
    """Whether a relayed call was refused for its session rather than for what it asked."""
    if answer.status == 401:
        return True
    if answer.status != 400:
        return False
    try:
        error = json.loads(answer.body).get("error")
    except (ValueError, AttributeError):
        return False
    return error in _TOKEN_ERRORS


def _relayed(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Of a caller's headers, those a relayed call carries to the PDS."""
    given = {name.lower(): value for name, value in (headers or {}).items()}
    sent = {name: given[name.lower()] for name in _RELAYED_REQUEST_HEADERS if name.lower() in given}
    # The shared client asks for JSON by default; a relayed call asks for what its caller's own
    # HTTP library would have (aiohttp's default), so a blob is not refused for its type.
    sent.setdefault("Accept", "*/*")
    return sent


def _kept(headers: Mapping[str, str]) -> dict[str, str]:
    """Of the PDS's answer headers, those relayed back."""
    return {
        name: value for name in _RELAYED_RESPONSE_HEADERS if (value := headers.get(name)) is not None
    }


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class XrpcClient:
    """The XRPC client of one account: its session, its calls and its relays."""

    def __init__(self, config: AdapterConfig, *, pds: str, clock: Clock) -> None:
        self._config = config
        self._login: Login | None = None
        self._login_lock = asyncio.Lock()
        self._http = HttpClient.for_account(
            config, platform=PLATFORM, base_url=pds, clock=clock, detail=_xrpc_detail,
            secret_is_bearer=False, issued_tokens=self._tokens,
        )

    def __repr__(self) -> str:
        return f"XrpcClient(account={self._config.account!r}, pds={self._http.base_url!r})"

    @property
    def login(self) -> Login | None:
        """The session in use, if one was made."""
        return self._login

    def _tokens(self) -> tuple[str, ...]:
        login = self._login
        return () if login is None else (login.access_jwt, login.refresh_jwt)

    # ---- calls -------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """An XRPC call with the access token; one refresh and retry if the token is refused.
        A refused call raises its classified ``AdapterError``."""
        login = await self.ensure_login()
        for attempt in range(2):
            try:
                return await self.xrpc(
                    method, nsid, params=params, json_body=json_body, data=data,
                    content_type=content_type, token=login.access_jwt,
                )
            except XrpcError as exc:
                if not exc.token_refused:
                    raise self.classify(exc) from None
                if attempt == 1:
                    raise self._http.error(
                        f"{nsid} refused the session of {self._config.handle} "
                        "even after logging in again",
                        retryable=False, auth_failed=True, status=exc.status, detail=self.detail(exc),
                    ) from None
                login = await self._refresh(login)
        raise AssertionError("unreachable")  # pragma: no cover

    async def xrpc(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """One XRPC request: the decoded JSON answer, or ``XrpcError`` for a non-2xx status,
        for the caller to read (a missing record, say) or to ``classify``."""
        headers: dict[str, str] = {}
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = data
            headers["Content-Type"] = content_type or "application/octet-stream"
        response = await self._http.request(
            method, f"/xrpc/{nsid}", params=params, data=body, headers=headers, bearer=token
        )
        if not 200 <= response.status < 300:
            raise XrpcError(method, nsid, response, self._retry_after(response.headers))
        answer = response.json() if response.body else {}
        if not isinstance(answer, dict):
            raise self._http.error(
                f"{nsid} answered {response.status} with a body that is not JSON",
                retryable=False, status=response.status,
            )
        return answer

    def _retry_after(self, headers: Mapping[str, str]) -> float | None:
        now = self._http.clock()
        seconds = parse_retry_after(headers.get("Retry-After"), now)
        if seconds is None:
            # The PDS's own rate limiter sends the end of its window, in epoch seconds.
            reset = parse_epoch(headers.get("ratelimit-reset"))
            if reset is not None:
                seconds = seconds_until(reset, now)
        return seconds

    def classify(self, exc: XrpcError) -> AdapterError:
        """The ``AdapterError`` of a refused call: the shared client's rules, and the PDS's
        own words for a refused token (a 400) and a text too long."""
        where = f"{exc.method} /xrpc/{exc.nsid} answered {exc.status}"
        if exc.token_refused and exc.status != 401:
            return self._http.error(
                f"{where}: the credential of {self._config.handle} was refused",
                retryable=False, auth_failed=True, status=exc.status, detail=self.detail(exc),
            )
        if exc.status < 500 and exc.status not in (401, 408, 429) and (
            "grapheme too big" in exc.message or "string too big" in exc.message
        ):
            return self._http.error(
                f"{where}: the text is too long for Bluesky ({exc.error})",
                retryable=False, status=exc.status, detail=self.detail(exc),
            )
        return self._http.classify(exc.method, f"/xrpc/{exc.nsid}", exc.response, retry_after=exc.retry_after)

    def detail(self, exc: XrpcError) -> str:
        """The PDS's ``error: message`` about a refused call, without any secret."""
        return self._http.scrub(f"{exc.error}: {exc.message}" if exc.message else exc.error)

    # ---- sessions ----------------------------------------------------------------------------

    async def ensure_login(self) -> Login:
        """The session, made on first use."""
        login = self._login
        if login is not None:
            return login
        async with self._login_lock:
            if self._login is None:
                self._login = await self._create_session()
            return self._login

    async def _create_session(self) -> Login:
        try:
            answer = await self.xrpc(
                "POST",
                "com.atproto.server.createSession",
                json_body={
                    "identifier": self._config.handle.removeprefix("@"),
                    "password": self._config.secret,
                },
            )
        except XrpcError as exc:
            if exc.status == 401 or (exc.status == 400 and exc.error in _LOGIN_REFUSED):
                raise self._http.error(
                    f"the PDS refused the app password for {self._config.handle}",
                    retryable=False, auth_failed=True, status=exc.status, detail=self.detail(exc),
                ) from None
            raise self.classify(exc) from None
        return self._login_from(answer)

    async def _refresh(self, stale: Login) -> Login:
        """A working session after ``stale`` was refused: refreshed, or else made anew."""
        async with self._login_lock:
            if self._login is not None and self._login is not stale:
                return self._login  # another task already replaced it
            try:
                answer = await self.xrpc(
                    "POST", "com.atproto.server.refreshSession", token=stale.refresh_jwt
                )
                login = self._login_from(answer)
                _log.debug("bluesky: refreshed the session of %s", self._config.handle)
            except XrpcError as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise self.classify(exc) from None
                login = await self._create_session()
                _log.debug("bluesky: made a new session for %s", self._config.handle)
            self._login = login
            return login

    def _login_from(self, answer: dict[str, Any]) -> Login:
        try:
            return Login(
                did=str(answer["did"]),
                handle=str(answer.get("handle") or self._config.handle),
                access_jwt=str(answer["accessJwt"]),
                refresh_jwt=str(answer["refreshJwt"]),
            )
        except KeyError as exc:
            raise self._http.error(
                f"the PDS's session answer lacks {exc.args[0]}", retryable=True
            ) from None

    # ---- relaying ----------------------------------------------------------------------------

    async def relay(
        self,
        method: str,
        nsid: str,
        *,
        query: str = "",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> XrpcRawResponse:
        """Relay one XRPC call to the PDS under the account's own session.

        ``query`` is the already-encoded query string; of ``headers`` only content negotiation
        and the AT Protocol's own headers are sent on. The PDS's answer comes back whatever
        its status; a refused session is refreshed once and the call sent again. Raises
        ``AdapterError`` only when no answer came (or the account cannot log in).
        """
        if method not in ("GET", "POST") or not _NSID_RE.match(nsid):
            raise self._http.error(f"cannot relay {method} {nsid!r}", retryable=False)
        sent = _relayed(headers)
        login = await self.ensure_login()
        for attempt in range(2):
            response = await self._http.request(
                method, f"/xrpc/{nsid}", query=query, data=body, headers=sent, bearer=login.access_jwt,
            )
            answer = XrpcRawResponse(status=response.status, headers=_kept(response.headers), body=response.body)
            if attempt == 0 and _refuses_token(answer):
                login = await self._refresh(login)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def stream(
        self, nsid: str, *, query: str = "", headers: Mapping[str, str] | None = None,
    ) -> AsyncIterator[XrpcStream]:
        """Relay one GET as ``relay`` does, with its body passed on in chunks of at most
        ``RELAY_CHUNK_BYTES`` while the caller reads them inside the context: a blob (an image,
        a video) is never held whole. An error answer is small and read whole, so that a
        refused session is refreshed and the call sent again."""
        if not _NSID_RE.match(nsid):
            raise self._http.error(f"cannot relay GET {nsid!r}", retryable=False)
        sent = _relayed(headers)
        login = await self.ensure_login()
        for attempt in range(2):
            async with self._http.stream(
                "GET", f"/xrpc/{nsid}", query=query, headers=sent, bearer=login.access_jwt,
            ) as answer:
                kept = _kept(answer.headers)
                if answer.status < 300:
                    yield XrpcStream(status=answer.status, headers=kept, chunks=answer.chunks(RELAY_CHUNK_BYTES))
                    return
                refused = XrpcRawResponse(status=answer.status, headers=kept, body=await answer.read())
            if attempt == 0 and _refuses_token(refused):
                login = await self._refresh(login)
                continue
            yield XrpcStream(status=refused.status, headers=refused.headers, chunks=_once(refused.body))
            return
        raise AssertionError("unreachable")  # pragma: no cover
