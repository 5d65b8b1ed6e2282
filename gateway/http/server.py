"""How the gateway listens: aiohttp's server, with bounds on slow and greedy clients, and JSON for
the errors aiohttp's own HTTP parser answers.

aiohttp reads each connection with a ``RequestHandler``; ``GatewayProtocol`` is one that

* answers what the HTTP parser refuses (a header line over 8190 bytes, an unknown method, two
  Content-Lengths) as every other error is answered, ``{"error": "bad_request", "message": …}``,
  with its status (431 for a line too long, 400 otherwise), and never echoes the request back;
* gives a client ``request_read_seconds`` to send a whole request, headers and body, from its
  first byte (the first request: from the connection's opening). One that trickles is answered
  408 and cut off, whatever the handler was waiting for. Once a connection is a WebSocket its
  frames are no request: the clock stops for good (the socket's heartbeat ends a dead one);
* counts the open connections of each client address, and answers the one past
  ``connections_per_address`` with a 429 (and ``Retry-After``) before closing it: its first
  request, if it comes within ``LINGER_SECONDS``, is read (by aiohttp's parser, and never
  handled), so a person's browser is answered with the pages' error page and an API client with
  JSON; a connection that sends nothing in time is answered JSON;
* routes a request to the Mastodon and XRPC surfaces without its path's trailing slashes
  (``gateway.http.cors.unslashed``), as Mastodon's router answers both.

``make_runner`` builds the runner that `byline serve` (``run_app``) and the tests both use.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import socket
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import structlog
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMethod, HttpProcessingError, InvalidURLError, LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_request import BaseRequest

from gateway.errors import Code
from gateway.http.cors import unslashing
from gateway.http.pages import TEMPLATES, error_page, prefers_html
from gateway.settings import Settings

logger = structlog.get_logger("byline.http.server")

ErrorPage = Callable[..., web.Response]
"""The pages' error page, given ``status`` and ``message`` (``gateway.http.pages.error_page``)."""

LINGER_SECONDS = 2.0
"""How long a refused connection is read (and what comes discarded) after its answer, before it
closes; and how long one over its address's count has to send the request it is refused."""
BUSY_RETRY_SECONDS = 5
"""The wait a connection refused for its address's count is told (``Retry-After``): about as long
as a browser or an app takes to be done with one of the others."""


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What one client may take of the server."""

    read_seconds: float
    """To send one whole request, headers and body."""
    per_address: int
    """Open connections from one address; 0 for no limit."""

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits ``settings`` name."""
        return cls(read_seconds=settings.request_read_seconds, per_address=settings.connections_per_address)


def _answer(status: int, error: str, message: str, *, retry_after: int | None = None) -> bytes:
    """A whole HTTP answer, for writing straight to the socket where no request exists to answer."""
    body = json.dumps({"error": error, "message": message}).encode()
    wait = "" if retry_after is None else f"Retry-After: {retry_after}\r\n"
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n{wait}Connection: close\r\n\r\n")
    return head.encode("ascii") + body


_PLAIN_WORDS = re.compile(r"[A-Za-z][A-Za-z ,-]{0,99}")
"""What the parser says of a request in words alone (``Invalid char in url query``), not in
the request's own bytes."""


def _refusal(exc: HttpProcessingError, line_limit: int) -> tuple[int, str]:
    """The status and message for a request aiohttp's parser refused; the request's bytes are
    not repeated (they may be 8 KB of anything, a token among them: the streaming API takes one
    in the query). The parser's own words are kept only when they are words alone: some of its
    refusals quote the request (a target that is no URL is given whole, query and all)."""
    if isinstance(exc, LineTooLong):
        return 431, f"the request line or a header line is longer than {line_limit} bytes"
    if isinstance(exc, BadHttpMethod):
        return 400, "the request's method is not an HTTP method this server knows"
    status = exc.code if 400 <= exc.code < 500 else 400
    what = exc.message.split("\n", 1)[0].strip().rstrip(":")
    if isinstance(exc, InvalidURLError) or not _PLAIN_WORDS.fullmatch(what):
        what = "the request target is not a URL" if isinstance(exc, InvalidURLError) else "it cannot be read"
    return status, f"the request is not valid HTTP/1.1: {what}"


class GatewayProtocol(web.RequestHandler):
    """One client connection: aiohttp's, within ``Limits``, answering its parser's refusals in JSON."""

    def __init__(self, manager: GatewayServer, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._gateway = manager
        self._limits = limits
        self._address: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._reading: StreamReader | None = None
        """The body of the request being received, until it is whole."""
        self._busy: str | None = None
        """Why the connection is refused, when its address has too many open: its request is
        read only to be answered that, as the one sending it asks."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the connection against its address, or refuse it; start the first request's clock."""
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None  # None: a Unix socket
        limit = self._limits.per_address
        if address is not None and limit:
            if self._gateway.open_by_address[address] >= limit:
                logger.warning("connection_refused", address=address, open=limit)
                # Not counted, and not served: its request, if it comes within the linger, is
                # read only to be refused in the words its sender reads (a page, or JSON).
                self._busy = f"this address already has {limit} connections open; close one, or reuse it"
                self._request_handler = self._refuse_busy
                self._start_clock()
                return
            self._gateway.open_by_address[address] += 1
            self._address = address
        self._start_clock()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Stop the clock and give the address its connection back."""
        self._stop_clock()
        if self._address is not None:
            counts = self._gateway.open_by_address
            counts[self._address] -= 1
            if counts[self._address] <= 0:
                del counts[self._address]
            self._address = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does; a request's first byte starts its clock, its last stops it.
        An open WebSocket's frames are no request: its own heartbeat says whether it lives."""
        if data and self._deadline is None and not (self._force_close or self._close or self._websocket()):
            self._start_clock()
        seen = self._request_count
        super().data_received(data)
        if self._request_count != seen and self._messages:
            self._reading = self._messages[-1][1]
        if self._reading is not None and self._reading.is_eof():
            self._reading = None
            self._stop_clock()

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A JSON answer for what never reached the gateway's handlers: a request the parser
        refused, or a failure outside them; the connection closes after it."""
        if request.writer.output_size > 0:
            raise ConnectionError("an answer has begun: there is no sending an error instead")
        if isinstance(exc, ConnectionError) and self.transport is None:
            # The client went away, or was cut off for being slow: nobody to answer, nothing to log.
            gone = web.Response(status=status)
            gone.force_close()
            return gone
        if isinstance(exc, HttpProcessingError):
            status, text = _refusal(exc, self.max_line_size)
            code = Code.BAD_REQUEST
            logger.info("request_unreadable", status=status, reason=text, address=self._address)
        else:
            code = Code.UNAVAILABLE if status == 504 else Code.INTERNAL if status >= 500 else Code.BAD_REQUEST
            text = "internal error; it has been logged" if status >= 500 else HTTPStatus(status).phrase
            if status >= 500:
                self.log_exception("Error handling request", exc_info=exc)
        response = web.json_response({"error": code.value, "message": text}, status=status)
        response.force_close()
        return response

    async def _refuse_busy(self, request: BaseRequest) -> web.StreamResponse:
        """The answer to the request of a connection over its address's count, instead of its
        handler: the pages' error page for a browser (its ``Accept`` ranks HTML first), JSON for
        anything else, 429 with ``Retry-After`` either way; the connection closes after it."""
        assert self._busy is not None
        # The clock keeps running: a body still coming is not waited for. Stopped here, aiohttp
        # would linger over it unread (10 s) with the connection uncounted; it is cut off where
        # its linger ends, the request whole by then or not.
        page = self._gateway.error_page
        if page is not None and prefers_html(request.headers.get("Accept")):
            response = page(status=429, message=self._busy, title="Too many connections")
        else:
            response = web.json_response({"error": Code.TOO_MANY_REQUESTS.value, "message": self._busy}, status=429)
        response.headers["Retry-After"] = str(BUSY_RETRY_SECONDS)
        response.force_close()
        return response

    # -- the read clock -------------------------------------------------------------------

    def _start_clock(self) -> None:
        self._stop_clock()
        seconds = LINGER_SECONDS if self._busy is not None else self._limits.read_seconds
        self._deadline = self._loop.call_later(seconds, self._too_slow)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _websocket(self) -> bool:
        """Whether the connection is an open WebSocket (its frames go to its reader)."""
        return self._payload_parser is not None

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport is None or self._force_close or self._websocket():
            # A WebSocket opened while its clock ran (frames sent before the handshake's answer).
            return
        if self._busy is not None:  # no request in time to say it as asked: said in JSON
            if self._unanswered():
                self._refuse(429, Code.TOO_MANY_REQUESTS.value, self._busy, retry_after=BUSY_RETRY_SECONDS)
            else:
                self.force_close()
            return
        seconds = self._limits.read_seconds
        logger.info("request_too_slow", seconds=seconds, address=self._address)
        if self._unanswered():
            self._refuse(408, Code.REQUEST_TIMEOUT.value,
                         f"the request did not arrive within {seconds:g} s; send it whole, headers and body")
        else:
            self.force_close()

    def _unanswered(self) -> bool:
        """Whether nothing has been sent for the request being received, so a 408 may answer it."""
        if self._request_in_progress:
            current = self._current_request
            return current is not None and current.content is self._reading and current.writer.output_size == 0
        # No handler runs: the request is still in its headers, or parsed and waiting its turn
        # (and not one whose answer went out while its body was still coming).
        return self._reading is None or any(payload is self._reading for _, payload in self._messages)

    def _refuse(self, status: int, error: str, message: str, *, retry_after: int | None = None) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.force_close()
            return
        transport.write(_answer(status, error, message, retry_after=retry_after))
        # Half-close, and discard what still comes for a moment before closing: a socket closed
        # while the client's bytes arrive is reset, and a reset can lose the answer unread.
        self.close()
        if transport.can_write_eof():
            transport.write_eof()
        self._loop.call_later(LINGER_SECONDS, self.force_close)


class GatewayServer(web.Server):
    """aiohttp's low-level server, making ``GatewayProtocol`` connections and counting them by
    client address."""

    def __init__(self, plain: web.Server, limits: Limits, *, error_page: ErrorPage | None = None) -> None:
        # Routed without the trailing slash on the surfaces apps speak (gateway.http.cors), before
        # the application's router sees the request: the same request, body and all.
        super().__init__(
            unslashing(plain.request_handler), request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation, loop=plain._loop, **plain._kwargs,
        )
        self.limits = limits
        self.open_by_address: Counter[str] = Counter()
        self.error_page = error_page
        """The pages' error page, for a browser refused before the application sees its request."""

    def __call__(self) -> GatewayProtocol:
        return GatewayProtocol(self, loop=self._loop, limits=self.limits, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """aiohttp's application runner, serving with ``GatewayServer``."""

    def __init__(self, app: web.Application, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._limits = limits

    async def _make_server(self) -> web.Server:
        # The application starts (its cleanup_ctx opens) here, once; only the server is swapped.
        plain = await super()._make_server()
        templates = self._app.get(TEMPLATES)
        page = None if templates is None else functools.partial(error_page, templates)
        return GatewayServer(plain, self._limits, error_page=page)


def make_runner(app: web.Application, settings: Settings, **kwargs: Any) -> GatewayRunner:
    """The runner that serves ``app`` within the limits ``settings`` name."""
    kwargs.setdefault("keepalive_timeout", 75.0)  # aiohttp's run_app default
    kwargs.setdefault("access_log", None)  # every request is logged by the error middleware
    return GatewayRunner(app, limits=Limits.of(settings), **kwargs)


def run_app(
    app: web.Application, settings: Settings, *, loop: asyncio.AbstractEventLoop,
    sock: socket.socket | Iterable[socket.socket] | None = None, host: str | None = None,
    port: int | None = None, announce: Callable[[str], None] | None = None,
) -> None:
    """Serve ``app`` as ``aiohttp.web.run_app`` does, with the gateway's runner, until SIGINT or
    SIGTERM; then close the application and the loop. Without ``sock``, listen on ``host`` and
    ``port`` (by default those ``settings`` name)."""

    async def serve() -> None:
        runner = make_runner(app, settings, handle_signals=True)
        await runner.setup()
        try:
            socks = [sock] if isinstance(sock, socket.socket) else list(sock or ())
            sites: list[web.BaseSite] = [web.SockSite(runner, s) for s in socks] or [
                web.TCPSite(runner, host or settings.host, settings.port if port is None else port)
            ]
            for site in sites:
                await site.start()
            if announce is not None:
                names = ", ".join(sorted(site.name for site in sites))
                announce(f"======== Running on {names} ========\n(Press CTRL+C to quit)")
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    main = loop.create_task(serve())
    try:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        try:
            if not main.done():
                main.cancel()
                with suppress(asyncio.CancelledError):
                    loop.run_until_complete(main)
        finally:
            left = asyncio.all_tasks(loop)
            for task in left:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
