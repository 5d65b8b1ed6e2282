"""HTTP plumbing shared by the Mastodon, X and Bluesky adapters.

One place decides how a transport failure or an HTTP status becomes an ``AdapterError``, so
the adapters agree on what is worth retrying: connection errors, timeouts, 408, 5xx and 429
are retryable; 401 means the credential is broken; every other 4xx is final. The secret only
ever travels in the ``Authorization`` header (or, on Bluesky, in the one request that trades
it for session tokens) and is scrubbed, with any token issued for it, from every text that
leaves this module, because platforms and libraries sometimes echo requests back in error
messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import hdrs
from yarl import URL

from adapters.base import AdapterConfig, AdapterError

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware. Injected so tests can move time."""

DetailExtractor = Callable[[Any, str], str | None]
"""Turns a parsed error body (or ``None``) and its raw text into a short message."""

_LOG = logging.getLogger("byline.adapters")

# Long enough for a slow instance under load, short enough that a hung connection does not
# hold a publisher slot for minutes. Overridable per account with the ``timeout`` option.
DEFAULT_TIMEOUT_SECONDS = 30.0

# Error bodies are shown to operators; an HTML error page or a huge body is cut to this.
_MAX_DETAIL_CHARS = 300

MAX_ANSWER_BYTES = 16 * 1024 * 1024
"""The most of a platform's answer read whole into memory (after any decompression): a page of
forty statuses is some hundreds of kilobytes. A hostile or broken server's endless answer would
otherwise fill the gateway's memory within the timeout; blobs are passed on in chunks instead."""


class _TooLarge(Exception):
    """An answer longer than :data:`MAX_ANSWER_BYTES`."""


async def _bounded_body(response: aiohttp.ClientResponse) -> bytes:
    """The whole body of ``response``, refused (``_TooLarge``) past :data:`MAX_ANSWER_BYTES`
    as soon as its length says so or its bytes pass it, never read further."""
    if response.content_length is not None and response.content_length > MAX_ANSWER_BYTES:
        raise _TooLarge
    if response.content_length is not None and hdrs.CONTENT_ENCODING not in response.headers:
        # Its length said, within the bound, and nothing to inflate: read whole, as most are
        # (a post's answer, on every post), without a loop over its pieces.
        return await response.read()
    body = bytearray()
    async for chunk in response.content.iter_chunked(1 << 16):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise _TooLarge
    return bytes(body)


def utc_now() -> datetime:
    """The real wall clock, in UTC."""
    return datetime.now(UTC)


def check_base_url(url: str, *, option: str, platform: str) -> str:
    """Return ``url`` without a trailing slash, refusing anything but https.

    Plain http is allowed only for loopback hosts, so tests can run a local stand-in while a
    misconfigured policy can never send a token in clear text over a network.
    """
    parts = urlsplit(url)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ValueError(f"{platform}: option {option!r} must be an http(s) URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{platform}: option {option!r} must use https (http only for loopback)")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{platform}: option {option!r} must be a bare base URL")
    return url.rstrip("/")


def moved_base(status: int, headers: Mapping[str, str], path: str) -> str | None:
    """The base URL (``https://host``) that an answer redirecting ``path`` to the same path on
    another host names: an instance whose streaming server has a host of its own answers its
    paths on the main host so (Mastodon's ``Api::V1::StreamingController``). Only a host that
    takes the token over TLS (plain only on loopback, as ``check_base_url``); else None."""
    if status not in (301, 302, 307, 308):
        return None
    location = urlsplit(headers.get("Location", ""))
    secure = location.scheme in ("wss", "https")
    if not location.hostname or location.username or location.password or location.path != path:
        return None
    if not secure and not (location.scheme in ("ws", "http") and _is_loopback(location.hostname)):
        return None
    return f"{'https' if secure else 'http'}://{location.netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def float_option(config: AdapterConfig, name: str, default: float, *, platform: str) -> float:
    """Read a positive number from the account's options (they arrive as strings)."""
    raw = config.options.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{platform}: option {name!r} must be a number") from None
    if value <= 0:
        raise ValueError(f"{platform}: option {name!r} must be positive")
    return value


_CUT_SECRET_MIN = 4
"""The shortest beginning of a secret taken for a cut-off copy of it at the end of a text."""


def redact(text: str, *secrets: str) -> str:
    """Remove every occurrence of each of ``secrets`` from ``text``, and a secret's beginning
    where the text was cut in the middle of it (a platform's answer echoing the credential,
    cut to a size before anyone redacted it): ``…tok_SUPERS`` at the end, or before an ellipsis."""
    for secret in secrets:
        if not secret:
            continue
        if secret in text:
            text = text.replace(secret, "[redacted]")
        text = _redact_cut(text, secret)
    return text


def _redact_cut(text: str, secret: str) -> str:
    """``text`` without a beginning of ``secret`` (of at least a few characters) at its end or
    just before an ellipsis (``…``), where a cut would leave one."""
    for end in (len(text), *(i for i, ch in enumerate(text) if ch == "…")):
        for size in range(min(len(secret) - 1, end), _CUT_SECRET_MIN - 1, -1):
            if text.startswith(secret[:size], end - size):
                text = text[: end - size] + "[redacted]" + text[end:]
                return _redact_cut(text, secret)
    return text


def truncate(text: str) -> str:
    """Cut an error text to a size fit for a log line or an operator's screen."""
    text = " ".join(text.split())
    if len(text) > _MAX_DETAIL_CHARS:
        return text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


def parse_timestamp(value: str | None) -> datetime | None:
    """Parse an ISO 8601 / RFC 3339 time such as ``2026-01-01T12:00:00.000Z``; ``None`` if bad."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Both platforms speak UTC; a naive time can only mean UTC.
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def parse_epoch(value: str | None) -> datetime | None:
    """Parse whole or fractional epoch seconds, as X sends in ``x-rate-limit-reset``."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value.strip()), UTC)
    except (ValueError, OverflowError, OSError):
        return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return seconds_until(when, now)


def seconds_until(when: datetime, now: datetime) -> float:
    """Non-negative seconds from ``now`` to ``when``."""
    return max(0.0, (when - now).total_seconds())


@dataclass(frozen=True)
class HttpResponse:
    """What came back: status, headers and the raw body, read in full."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def text(self) -> str:
        """The body as text, undecodable bytes replaced."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON, or ``None`` when it is not JSON."""
        if not self.body:
            return None
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class HttpStream:
    """An answer whose body is still arriving: read it whole (an error answer, small) or pass
    it on in chunks (a blob), inside ``HttpClient.stream``'s context. A body that breaks off
    raises a retryable ``AdapterError``."""

    def __init__(self, client: HttpClient, where: str, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        # A case-insensitive copy: servers spell "Retry-After" as they like.
        self.headers: Mapping[str, str] = response.headers.copy()
        self._client = client
        self._where = where
        self._response = response

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        try:
            return await _bounded_body(self._response)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._broke_off(exc) from None
        except _TooLarge:
            raise self._client.too_large(self._where) from None

    async def chunks(self, size: int) -> AsyncIterator[bytes]:
        """The body in pieces of at most ``size`` bytes, as they arrive."""
        try:
            async for chunk in self._response.content.iter_chunked(size):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._broke_off(exc) from None

    def _broke_off(self, exc: BaseException) -> AdapterError:
        return self._client.error(f"{self._where} broke off: {type(exc).__name__}", retryable=True)


class HttpClient:
    """Sends requests for one account and turns failures into ``AdapterError``.

    It never follows redirects: a redirect would carry the bearer token to wherever the
    ``Location`` points, and the APIs used here do not redirect.
    """

    def __init__(
        self,
        *,
        platform: str,
        session: aiohttp.ClientSession,
        base_url: str,
        secret: str,
        timeout: float,
        clock: Clock,
        detail: DetailExtractor,
        secret_is_bearer: bool = True,
        issued_tokens: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        """``secret_is_bearer=False`` is for a secret that is only traded for session tokens
        (Bluesky's app password): then a request carries the ``bearer`` it is given, or none.
        ``issued_tokens`` gives the tokens held at the moment, scrubbed like the secret."""
        self.platform = platform
        self.base_url = base_url
        self.clock = clock
        self._session = session
        self._secret = secret
        self._secret_is_bearer = secret_is_bearer
        self._issued_tokens = issued_tokens
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._timeout_seconds = timeout
        self._detail = detail

    @classmethod
    def for_account(
        cls,
        config: AdapterConfig,
        *,
        platform: str,
        base_url: str,
        clock: Clock,
        detail: DetailExtractor,
        secret_is_bearer: bool = True,
        issued_tokens: Callable[[], Iterable[str]] = tuple,
    ) -> HttpClient:
        """The client of one account's adapter: the gateway's shared session, the account's
        resolved secret, and the ``timeout`` option of its policy."""
        if config.session is None:
            raise ValueError(f"{platform}: the adapter needs the gateway's shared session")
        if not config.secret:
            raise ValueError(f"{platform}: no access token was resolved for this account")
        return cls(
            platform=platform, session=config.session, base_url=base_url, secret=config.secret,
            timeout=float_option(config, "timeout", DEFAULT_TIMEOUT_SECONDS, platform=platform),
            clock=clock, detail=detail, secret_is_bearer=secret_is_bearer, issued_tokens=issued_tokens,
        )

    def __repr__(self) -> str:
        return f"HttpClient(platform={self.platform!r}, base_url={self.base_url!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        data: aiohttp.FormData | bytes | None = None,
        params: Mapping[str, str] | None = None,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
        anonymous: bool = False,
    ) -> HttpResponse:
        """Send one request; raise a retryable ``AdapterError`` if no answer arrived.

        ``query`` is a query string already percent-encoded, sent exactly as it is (a relayed
        call's); ``params`` are encoded here. ``bearer`` is the token to send when the secret
        is not itself the bearer token; ``anonymous``: send none, to see what anyone is shown.
        """
        url = self._url(path, query)
        sent_headers = self._headers(headers, bearer)
        if anonymous:
            sent_headers.pop("Authorization", None)
        if json_body is not None:
            assert data is None, "a request has one body: json_body or data"
            # Encoded by orjson, straight to UTF-8 bytes: aiohttp's json= takes the standard
            # library's encoder, seven times as slow for a status, and every publish sends one.
            data = orjson.dumps(json_body, option=orjson.OPT_NON_STR_KEYS)
            sent_headers.setdefault("Content-Type", "application/json")
        try:
            async with self._session.request(
                method, url, headers=sent_headers, data=data,
                params=params, timeout=self._timeout, allow_redirects=False,
            ) as resp:
                body = await _bounded_body(resp)
                # A case-insensitive copy: servers spell "Retry-After" as they like.
                response = HttpResponse(resp.status, resp.headers.copy(), body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unanswered(method, path, exc) from None
        except _TooLarge:
            raise self.too_large(f"{method} {path}") from None
        _LOG.debug("%s %s %s -> %s", self.platform, method, path, response.status)
        return response

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        bearer: str | None = None,
    ) -> AsyncIterator[HttpStream]:
        """Send one request as ``request`` does, and hand over its answer before the body is
        read: the body is only ever held a chunk at a time while the context is open."""
        async with AsyncExitStack() as opened:
            try:
                resp = await opened.enter_async_context(self._session.request(
                    method, self._url(path, query), headers=self._headers(headers, bearer),
                    timeout=self._timeout, allow_redirects=False,
                ))
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._unanswered(method, path, exc) from None
            _LOG.debug("%s %s %s -> %s (streamed)", self.platform, method, path, resp.status)
            # Only the opening is guarded: whatever the caller's block raises passes unchanged.
            yield HttpStream(self, f"{method} {path}", resp)

    @asynccontextmanager
    async def websocket(
        self, path: str, *, query: str = "", base: str | None = None, heartbeat: float = 30.0,
        max_msg_size: int = 1 << 20,
    ) -> AsyncIterator[aiohttp.ClientWebSocketResponse]:
        """Open one WebSocket as the account (the token in the ``Authorization`` header, never in
        the URL, where logs would keep it), at ``base`` (a host of its own, from ``moved_base``)
        or the platform's; a refused or failed opening is an ``AdapterError`` with no secret in
        it (401: ``auth_failed``)."""
        url = self._url(path, query) if base is None else URL(f"{base}{path}?{query}" if query else f"{base}{path}",
                                                               encoded=True)
        async with AsyncExitStack() as opened:
            try:
                # aiohttp follows a redirect of a WebSocket itself, and drops the Authorization
                # header when it leaves the origin: a moved streaming server is found with
                # moved_base first, and named here as ``base``.
                socket = await opened.enter_async_context(self._session.ws_connect(
                    url, headers=self._headers(None, None), heartbeat=heartbeat,
                    max_msg_size=max_msg_size, autoclose=True, autoping=True,
                ))
            except aiohttp.WSServerHandshakeError as exc:
                raise self.error(f"GET {path} (WebSocket) was refused: HTTP {exc.status}",
                                 retryable=exc.status != 401, auth_failed=exc.status == 401,
                                 status=exc.status) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise self._unanswered("GET", path, exc) from None
            _LOG.debug("%s WebSocket %s opened", self.platform, path)
            yield socket

    def _url(self, path: str, query: str) -> str | URL:
        if not query:
            return self.base_url + path
        # encoded=True: the query goes out byte for byte, never re-quoted.
        return URL(f"{self.base_url}{path}?{query}", encoded=True)

    def _headers(self, headers: Mapping[str, str] | None, bearer: str | None) -> dict[str, str]:
        token = self._secret if self._secret_is_bearer else bearer
        all_headers = {"Accept": "application/json"}
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        if headers:
            all_headers.update(headers)
        return all_headers

    def _unanswered(self, method: str, path: str, exc: BaseException) -> AdapterError:
        if isinstance(exc, TimeoutError):
            # Checked before ClientError: aiohttp's timeout errors are both. The request may
            # have been carried out, so this is "outcome unknown", which callers must handle.
            return self.error(
                f"{method} {path} got no answer within {self._timeout_seconds:g} s", retryable=True,
            )
        if isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError):
            return self.error(
                f"{method} {path} failed: {type(exc).__name__}", retryable=True, detail=str(exc),
            )
        return self.error(
            f"{method} {path} could not be sent: {type(exc).__name__}", retryable=False,
            detail=str(exc),
        )

    def too_large(self, where: str) -> AdapterError:
        """An answer too long to read (:data:`MAX_ANSWER_BYTES`): whether the request was carried
        out is unknown, as for a broken-off answer, so it may be retried (idempotently)."""
        return self.error(f"{where} answered more than {MAX_ANSWER_BYTES} bytes; not read", retryable=True)

    def scrub(self, text: str) -> str:
        """``text`` without the secret or any token issued for it."""
        return redact(text, self._secret, *self._issued_tokens())

    def error(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        auth_failed: bool = False,
        status: int | None = None,
        detail: str | None = None,
    ) -> AdapterError:
        """Build an ``AdapterError`` whose texts cannot contain the secret."""
        return AdapterError(
            self.scrub(f"{self.platform}: {message}"),
            retryable=retryable,
            retry_after=retry_after,
            auth_failed=auth_failed,
            status=status,
            detail=None if detail is None else truncate(self.scrub(detail)),
        )

    def detail_of(self, response: HttpResponse) -> str:
        """The platform's own words about a failed response."""
        text = response.text
        found = self._detail(response.json(), text)
        if found:
            return found
        return text if text.strip() else f"HTTP {response.status}"

    def classify(
        self,
        method: str,
        path: str,
        response: HttpResponse,
        *,
        retry_after: float | None = None,
    ) -> AdapterError:
        """Turn a non-success response into the matching ``AdapterError``."""
        status = response.status
        # Redacted before anything cuts it: a credential the platform echoes, cut in two by
        # ``truncate``, would no longer match the secret.
        detail = self.scrub(self.detail_of(response))
        where = f"{method} {path} answered {status}"
        if status == 401:
            return self.error(
                f"{where}: the credential was refused", retryable=False, auth_failed=True,
                status=status, detail=detail,
            )
        if status == 429:
            return self.error(
                f"{where}: rate limited", retryable=True, retry_after=retry_after,
                status=status, detail=detail,
            )
        if status == 408 or status >= 500:
            return self.error(
                f"{where}: platform-side failure", retryable=True, retry_after=retry_after,
                status=status, detail=detail,
            )
        return self.error(f"{where}: {truncate(detail)}", retryable=False, status=status,
                          detail=detail)


async def sleep(seconds: float) -> None:
    """``asyncio.sleep``, named so adapters can take a replaceable sleeper."""
    await asyncio.sleep(seconds)
