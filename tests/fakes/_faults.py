"""What the platform stand-ins share: a movable clock, request recording and fault injection.

Faults are rules consulted, in the order they were added, by a middleware that runs before
any handler: ``delay`` rules sleep (and the request is still carried out if the client gives
up meanwhile, as a real server would), then the first matching ``error`` or ``rate_limit`` rule
answers in the platform's own error format. A rule matches an optional method and path
prefix and is used up after ``n`` requests (``None``: never). Accept-then-drop is different:
the create handler stores the post first and then asks ``take_drop()`` whether to close the
connection instead of answering, which is the case a lost response produces in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web
from aiohttp.typedefs import Middleware

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorRenderer = Callable[[int], web.Response]
RateLimitRenderer = Callable[[float, bool], web.Response]


class FakeClock:
    """Wall-clock UTC time plus an offset that tests move forward (e.g. past a 1 h expiry).

    Hand ``clock.now`` to an adapter too, so both sides agree on what time it is.
    """

    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        """The stand-in's current time."""
        return datetime.now(UTC) + self._offset

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self._offset += timedelta(seconds=seconds)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the stand-in received it (``body`` empty for multipart uploads)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Rule:
    kind: Literal["error", "rate_limit", "delay", "answer"]
    remaining: int | None
    method: str | None
    path: str | None
    status: int = 503
    seconds: float = 0.0
    send_retry_after: bool = True
    body: bytes = b""
    content_type: str = ""

    def matches(self, request: web.Request) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and request.method != self.method:
            return False
        return self.path is None or request.path.startswith(self.path)

    def use(self) -> None:
        if self.remaining is not None:
            self.remaining -= 1


@dataclass
class Faults:
    """Fault controls and the log of received requests, for one stand-in."""

    requests: list[RecordedRequest] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _drops: int = 0
    _background: set[asyncio.Future[web.StreamResponse]] = field(default_factory=set)

    def fail_next(
        self, n: int = 1, status: int = 503, *, method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``status`` (500, 502, 503, …)."""
        self._rules.append(_Rule("error", n, method, path, status=status))

    def rate_limit_next(
        self, n: int = 1, retry_after: float = 30.0, *, send_retry_after: bool = True,
        method: str | None = None, path: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with 429 and rate-limit headers.

        The reset header says ``retry_after`` seconds from now; ``Retry-After`` is sent too
        unless ``send_retry_after`` is false.
        """
        self._rules.append(
            _Rule("rate_limit", n, method, path, seconds=retry_after,
                  send_retry_after=send_retry_after)
        )

    def delay_next(
        self, seconds: float, n: int | None = 1, *, method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Hold the next ``n`` matching requests (all, with ``n=None``) for ``seconds``.

        The request is then carried out as usual, even if the client gave up meanwhile.
        """
        self._rules.append(_Rule("delay", n, method, path, seconds=seconds))

    def answer_next(
        self, body: bytes, content_type: str, n: int = 1, status: int = 200, *, method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with ``body`` under ``content_type``, as a
        hostile or misconfigured server might (an HTML page, a script)."""
        self._rules.append(_Rule("answer", n, method, path, status=status, body=body, content_type=content_type))

    def drop_next_create(self, n: int = 1) -> None:
        """Create the next ``n`` posts, then close the connection without an answer."""
        self._drops += n

    def take_drop(self) -> bool:
        """Called by create handlers after storing the post: drop this answer?"""
        if self._drops > 0:
            self._drops -= 1
            return True
        return False

    def clear(self) -> None:
        """Remove every pending fault."""
        self._rules.clear()
        self._drops = 0

    async def settle(self) -> None:
        """Wait until delayed requests whose clients gave up have been carried out."""
        while self._background:
            await asyncio.wait(set(self._background))

    def count(self, method: str, path: str) -> int:
        """How many requests with this method had exactly this path."""
        return sum(1 for r in self.requests if r.method == method and r.path == path)

    def middleware(
        self, render_error: ErrorRenderer, render_rate_limit: RateLimitRenderer
    ) -> Middleware:
        """The aiohttp middleware that records requests and applies the rules."""

        @web.middleware
        async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
            # A multipart body is read as a stream by the handler (request.post() does not use
            # the cached body), so it is not recorded.
            body = b"" if request.content_type.startswith("multipart/") else await request.read()
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    query=dict(request.query),
                    headers=dict(request.headers),
                    body=body,
                )
            )
            delay = 0.0
            for rule in self._rules:
                if rule.kind == "delay" and rule.matches(request):
                    rule.use()
                    delay += rule.seconds

            async def proceed() -> web.StreamResponse:
                if delay:
                    await asyncio.sleep(delay)
                for rule in self._rules:
                    if rule.kind != "delay" and rule.matches(request):
                        rule.use()
                        if rule.kind == "error":
                            return render_error(rule.status)
                        if rule.kind == "answer":
                            return web.Response(status=rule.status, body=rule.body,
                                                headers={"Content-Type": rule.content_type})
                        return render_rate_limit(rule.seconds, rule.send_retry_after)
                return await handler(request)

            if not delay:
                return await proceed()
            # A real server finishes the work even when the client has given up waiting
            # (the test server would cancel the handler), so the slow part runs shielded.
            task = asyncio.ensure_future(proceed())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return await asyncio.shield(task)

        return faults_middleware


def drop_connection(request: web.Request) -> web.Response:
    """Close the client's connection at once; the response returned is never sent."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)
