"""My queue: what waits for the signed-in person, and its live updates (server-sent events).

``setup`` adds the signed-in people's pages (this queue, ``posts`` and ``accounts``) to the
gateway: their routes, the template filters they share, and the lifetimes of the queue service
and of the change watcher behind the live updates.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Final

import aiohttp_jinja2
from aiohttp import web

from gateway.appkeys import CLOCK, DB, LIVE, PEOPLE, PLATFORMS, POSTS, QUEUE, REGISTRY, SETTINGS
from gateway.http.common import gone
from gateway.http.pages import (
    accounts,
    caller_of,
    page,
    page_headers,
    posts,
    render,
    session_cookie_of,
    session_of,
    signed_in,
)
from gateway.http.pages.posts import notice_of
from gateway.services.live import ChangeWatcher
from gateway.services.queue import QueueService
from gateway.services.streaming import StreamEnded, answered
from gateway.types import from_micros, spoken

routes = web.RouteTableDef()

KEEPALIVE_SECONDS: Final = 15.0
"""How often an idle stream says it is alive (and learns whether its reader went away)."""

RETRY_MILLISECONDS: Final = 5000
"""How long a browser waits to reconnect a stream that ended (the stream's ``retry``)."""


@routes.get("/queue")
@page
async def queue_page(request: web.Request) -> web.StreamResponse:
    """Posts to approve, suggestions to take up, the person's own posts in their cooling-off
    window and those waiting on others."""
    session = await signed_in(request)
    queue = await request.app[QUEUE].queue(caller_of(session))
    return render(request, "queue.html", {"title": "My queue", "queue": queue, "notice": notice_of(request)})


@routes.get("/queue/events")
@page
async def queue_events(request: web.Request) -> web.StreamResponse:
    """A ``text/event-stream`` that says ``queue`` whenever the person's queue changed (on any
    replica); ends when the session does, the reader goes, the database stops answering or the
    gateway stops.

    The session is read again at every change and every keepalive, so a stream learns within a
    keepalive that its session ended or that the database is gone. Then it says ``unavailable``
    (the page shows that it is out of date) and ends: the browser's ``EventSource`` reconnects
    after ``retry``, refused 503 with ``Retry-After`` until the database answers, and the page
    reloads its list once a stream opens again."""
    session = await session_of(request)
    if session is None:
        # An EventSource that is refused stops; a page without a session has nothing to hear.
        return web.Response(status=401, text="Sign in first.", content_type="text/plain")
    cookie = session_cookie_of(request)
    caller = caller_of(session)
    service = request.app[QUEUE]
    people = request.app[PEOPLE]
    async with request.app[LIVE].listen(session.person) as listener:
        last = await service.fingerprint(caller)
        response = web.StreamResponse(headers={"X-Accel-Buffering": "no"})
        response.content_type = "text/event-stream"
        page_headers(response)
        await response.prepare(request)
        try:
            await response.write(f"retry: {RETRY_MILLISECONDS}\n: listening\n\n".encode())
            try:
                while not listener.closing:
                    changed = await listener.wait(KEEPALIVE_SECONDS)
                    if listener.closing or gone(request):
                        break
                    if await answered(people.session(cookie), person=session.person) is None:
                        await response.write(b"event: signedout\ndata: \n\n")
                        break
                    if not changed:
                        await response.write(b": still here\n\n")
                        continue
                    now = await answered(service.fingerprint(caller), person=session.person)
                    if now != last:
                        last = now
                        await response.write(b"event: queue\ndata: changed\n\n")
            except StreamEnded as ended:
                await response.write(f"event: unavailable\ndata: {ended}\n\n".encode())
        except (ConnectionError, asyncio.CancelledError):
            if not gone(request):
                raise
    return response


@routes.get("/session")
@page
async def session_check(request: web.Request) -> web.StreamResponse:
    """Whether the browser is still signed in: 204, or 401 once its session ended (503 while the
    database cannot say). For the queue's script: a refused ``EventSource`` cannot tell a
    session that ended from a database away, and only the second is worth reconnecting for."""
    if await session_of(request) is None:
        return web.Response(status=401, text="Sign in first.", content_type="text/plain")
    return web.Response(status=204)


def _when(value: int | None) -> str:
    """Stored microseconds as people read a time: ``4 Dec 2026, 22:40 UTC``."""
    if value is None:
        return ""
    return spoken(from_micros(value))


def _iso(value: int | None) -> str:
    """Stored microseconds for a ``<time datetime>``."""
    return "" if value is None else from_micros(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp(value: str) -> str:
    """A log entry's RFC 3339 time as people read it."""
    date, _, clock = value.partition("T")
    return f"{date} {clock[:5]} UTC" if clock else value


def _duration(seconds: int | None) -> str:
    """A length of time as people say it: ``10 min``, ``1 h 30 min``, ``45 s``, ``2 days``."""
    if seconds is None:
        return ""
    left = timedelta(seconds=max(0, int(seconds)))
    days, rest = left.days, left.seconds
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day{'s' if days != 1 else ''}")
    if hours:
        parts.append(f"{hours} h")
    if minutes:
        parts.append(f"{minutes} min")
    if secs and not days:
        parts.append(f"{secs} s")
    return " ".join(parts) or "0 s"


async def _services(app: web.Application) -> AsyncIterator[None]:
    """The queue service and the change watcher, made once the services they build on exist."""
    settings = app[SETTINGS]
    app[QUEUE] = QueueService(db=app[DB], posts=app[POSTS], policies=app[REGISTRY], platforms=app[PLATFORMS],
                              clock=app[CLOCK], admins=settings.admin_names)
    app[LIVE] = ChangeWatcher(app[DB])
    yield
    await app[LIVE].close()


async def _end_streams(app: web.Application) -> None:
    """Streams end before the server waits for its handlers to finish."""
    if LIVE in app:
        await app[LIVE].close()


def setup(app: web.Application) -> None:
    """The signed-in people's pages on ``app`` (after ``pages.setup``)."""
    env = aiohttp_jinja2.get_env(app)
    env.filters.update(when=_when, iso=_iso, stamp=_stamp, duration=_duration)
    app.cleanup_ctx.append(_services)
    app.on_shutdown.append(_end_streams)
    app.add_routes(routes)
    app.add_routes(posts.routes)
    app.add_routes(accounts.routes)

