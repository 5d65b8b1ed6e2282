"""The Mastodon streaming API, below ``/api`` (docs.joinmastodon.org/methods/streaming):

- ``GET /api/v1/streaming/health``: ``OK``;
- ``GET /api/v1/streaming`` as a WebSocket: ``{"type": "subscribe", "stream": "user"}`` (or
  ``?stream=user`` when connecting), events as ``{"stream": ["user"], "event": "update",
  "payload": "<the status as JSON>"}``;
- ``GET /api/v1/streaming/user`` (``/user/notification``, ``/public``, ``/hashtag``…): one
  stream as server-sent events, ``event: update`` / ``data: <the status as JSON>``.

The token comes as the REST API's (``Authorization: Bearer``), or as the streaming server also
takes it: the ``access_token`` query parameter, or the ``Sec-WebSocket-Protocol`` header (a
browser cannot set headers on a WebSocket), which is then echoed as the chosen protocol, as
browsers require. Refusals are worded as the streaming server words them: ``{"error": "…"}``
before a stream opens, ``{"error": "…", "status": 400}`` on a WebSocket for a subscription
refused. What is streamed and who may hear it: ``gateway.services.streaming``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from typing import Any, Final

import orjson
import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from gateway.appkeys import STREAMS
from gateway.errors import BylineError, Code, Failure
from gateway.http.common import bearer, gone, waited
from gateway.http.mastodon import entities
from gateway.http.mastodon.answers import base_url, json_answer
from gateway.jsondepth import nests_deeper
from gateway.services.streaming import (
    SUBSCRIPTIONS_PER_SOCKET,
    Ending,
    Feed,
    MastodonStreams,
    StreamEnded,
    StreamEvent,
    Subscription,
    stream_of_path,
)

logger = structlog.get_logger("byline.streaming")

routes = web.RouteTableDef()
"""The streaming API, below ``/api``: added before the client API's passthrough."""

KEEPALIVE_SECONDS: Final = 15.0
"""How often a quiet stream says it is alive (a comment line on an event stream, a ping on a
WebSocket), and checks that its token still reads the account."""
MESSAGE_BYTES: Final = 4096
"""The largest message an app may send on a WebSocket: a subscribe is some sixty bytes."""

_CLOSE_CODES: Final[Mapping[Ending, WSCloseCode]] = {
    Ending.STOPPING: WSCloseCode.GOING_AWAY,  # 1001: the app reconnects, to another replica
    Ending.REVOKED: WSCloseCode.POLICY_VIOLATION,  # 1008: the token no longer reads the account
    Ending.BROKEN: WSCloseCode.INTERNAL_ERROR,  # 1011: the database gone; the app reconnects once it is back
}
"""How a WebSocket is told why its stream ended (RFC 6455, section 7.4.1)."""

_PATHS = r"user|user/notification|public|public/local|public/remote|hashtag|hashtag/local|list|direct"


def _streams(request: web.Request) -> MastodonStreams:
    return request.config_dict[STREAMS]


def _token(request: web.Request) -> tuple[str | None, bool]:
    """The token, and whether it came as the WebSocket protocol (to be echoed as the one chosen)."""
    token = bearer(request) or request.query.get("access_token")
    if token:
        return token, False
    protocol = request.headers.get("Sec-WebSocket-Protocol", "").strip()
    return (protocol, True) if protocol else (None, False)


def _refused(exc: Failure) -> web.Response:
    """A refusal before a stream opens, worded as the streaming server words it (with
    ``Retry-After`` when it says when to try again: the database gone, too many streams)."""
    return waited(json_answer({"error": exc.message}, status=exc.status), exc)


def _payload(event: StreamEvent, base: str) -> str:
    """An event's payload: the Status as the REST API renders it, as JSON text; a deleted
    status's id as it is."""
    if event.payload is not None:
        return event.payload  # the instance's, as its REST reads are relayed: as it sent it
    if event.status is None:
        return event.post_id
    return orjson.dumps(entities.status_entity(event.status, base)).decode()


@routes.get("/v1/streaming/health")
async def health(request: web.Request) -> web.Response:
    """The streaming API is up (an app asks before it connects)."""
    return web.Response(text="OK", content_type="text/plain")


@routes.get("/v1/streaming", allow_head=False)
@routes.get("/v1/streaming/", allow_head=False)
async def websocket(request: web.Request) -> web.StreamResponse:
    """The WebSocket: subscribe and unsubscribe to streams, hear their events."""
    streams = _streams(request)
    token, as_protocol = _token(request)
    try:
        auth = await streams.connect(token)
    except Failure as exc:
        return _refused(exc)
    assert token is not None
    socket = web.WebSocketResponse(protocols=(token,) if as_protocol else (), heartbeat=KEEPALIVE_SECONDS * 2,
                                   max_msg_size=MESSAGE_BYTES)
    if not socket.can_prepare(request).ok:
        return _refused(BylineError(Code.BAD_REQUEST, "Expected a WebSocket connection"))
    try:
        async with streams.open(auth, token) as feed:
            await socket.prepare(request)
            await _Socket(socket, feed, streams, base_url(request)).run(request.query)
    except Failure as exc:
        if socket.prepared:
            raise
        return _refused(exc)
    return socket


class _Socket:
    """One WebSocket's subscriptions; its messages read while its events are sent."""

    def __init__(self, socket: web.WebSocketResponse, feed: Feed, streams: MastodonStreams, base: str) -> None:
        self._socket = socket
        self._feed = feed
        self._streams = streams
        self._base = base
        self._subscribed: dict[tuple[str, ...], Subscription] = {}
        self._sending = asyncio.Lock()

    async def run(self, query: Any) -> None:
        if "stream" in query:  # ?stream=user&tag=…: subscribed as it connects
            await self._subscribe({"stream": query.get("stream"), "tag": query.get("tag"), "list": query.get("list")})
        events = asyncio.create_task(self._events(), name="byline-stream-events")
        try:
            async for message in self._socket:
                if message.type is WSMsgType.TEXT:
                    await self._heard(message.data)
                elif message.type is WSMsgType.BINARY:
                    await self._send({"error": "Messages are JSON text", "status": 400})
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._sending:
            if not self._socket.closed:
                await self._socket.send_str(orjson.dumps(message).decode())

    async def _heard(self, text: str) -> None:
        """One message from the app; what is not JSON, or not a subscription, is let go."""
        if nests_deeper(text.encode(), 4):
            await self._send({"error": "Messages are flat JSON objects", "status": 400})
            return
        try:
            message = json.loads(text)
        except ValueError:
            await self._send({"error": "Messages are JSON", "status": 400})
            return
        if not isinstance(message, dict):
            return
        if message.get("type") == "subscribe":
            await self._subscribe(message)
        elif message.get("type") == "unsubscribe":
            try:
                sub = self._streams.subscription(self._feed.auth, message.get("stream"), tag=message.get("tag"),
                                                 list_id=message.get("list"))
            except BylineError:
                return
            if self._subscribed.pop(sub.key, None) is not None:
                self._streams.unfollow(self._feed, sub.key)

    async def _subscribe(self, message: dict[str, Any]) -> None:
        try:
            sub = self._streams.subscription(self._feed.auth, message.get("stream"), tag=message.get("tag"),
                                             list_id=message.get("list"))
            if sub.key not in self._subscribed and len(self._subscribed) >= SUBSCRIPTIONS_PER_SOCKET:
                raise BylineError(Code.BAD_REQUEST, "Too many subscriptions on this connection")
        except BylineError as exc:
            await self._send({"error": exc.message, "status": exc.status})
            return
        self._subscribed[sub.key] = sub
        self._streams.follow(self._feed, sub)

    async def _events(self) -> None:
        """Send the account's events to the streams that carry them, until the stream ends."""
        try:
            while not self._socket.closed:
                for event in await self._feed.next(KEEPALIVE_SECONDS):
                    sub = self._subscribed.get(event.stream or ("user",))
                    # Asked at each: sends before it may have waited on a slow app's socket.
                    if sub is not None and self._feed.still_told(event):
                        message: dict[str, Any] = {"stream": sub.stream, "event": event.event}
                        if event.payload != "":  # filters_changed says nothing more
                            message["payload"] = _payload(event, self._base)
                        await self._send(message)
        except StreamEnded as ended:
            await self._socket.close(code=_CLOSE_CODES[ended.why], message=str(ended).encode())
        finally:
            if not self._socket.closed:
                await self._socket.close()


# No HEAD (aiohttp adds one to every GET route): a HEAD of a stream would hold a slot, sending nothing.
@routes.get(rf"/v1/streaming/{{path:{_PATHS}}}", allow_head=False)
async def event_stream(request: web.Request) -> web.StreamResponse:
    """One stream as server-sent events, until the app goes, its token no longer reads the
    account, the database stops answering, or the gateway stops: the response then ends, and
    the app (an ``EventSource``, Mastodon.py) reconnects."""
    streams = _streams(request)
    token, _ = _token(request)
    try:
        auth = await streams.connect(token)
        sub = streams.subscription(auth, stream_of_path(request.match_info["path"], request.query),
                                   tag=request.query.get("tag"), list_id=request.query.get("list"))
        async with streams.open(auth, token or "") as feed:
            streams.follow(feed, sub)
            return await _serve_events(request, feed, sub)
    except Failure as exc:
        return _refused(exc)


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Write to an event stream, or cut it off: an app that has taken nothing for a keepalive
    (its connection open, its window shut) would otherwise hold its stream for ever, its token
    revoked or not, since a stream checks its token only between writes."""
    try:
        async with asyncio.timeout(KEEPALIVE_SECONDS):
            await response.write(data)
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()  # close() would wait for the buffer the app does not read
        raise ConnectionResetError("the app stopped reading its stream") from None


async def _serve_events(request: web.Request, feed: Feed, sub: Subscription) -> web.StreamResponse:
    response = web.StreamResponse(headers={"X-Accel-Buffering": "no", "Cache-Control": "no-store"})
    response.content_type = "text/event-stream"
    await response.prepare(request)
    base = base_url(request)
    try:
        await _write(request, response, b":)\n")
        while True:
            try:
                events = await feed.next(KEEPALIVE_SECONDS)
            except StreamEnded:
                break
            if gone(request):
                break
            if not events:
                await _write(request, response, b":thump\n")
                continue
            for event in events:
                # Asked at each: writes before it may have waited up to a keepalive on a slow app,
                # while the account's credential changed (its old account's events not told).
                if (event.stream or ("user",)) != sub.key or not feed.still_told(event):
                    continue
                # One data line per line of the payload: an instance's payload cannot add an event.
                data = "".join(f"data: {line}\n" for line in _payload(event, base).splitlines() or [""])
                await _write(request, response, f"event: {event.event}\n{data}\n".encode())
    except (ConnectionError, asyncio.CancelledError):
        if not gone(request):
            raise
    return response


@routes.get("/v1/streaming/{path:.*}", allow_head=False)
async def unknown_stream(request: web.Request) -> web.Response:
    """Any other path below ``/api/v1/streaming/``: the caller is checked first, as the
    streaming server checks it, then the stream is unknown (400)."""
    try:
        await _streams(request).connect(_token(request)[0])
    except Failure as exc:
        return _refused(exc)
    return _refused(BylineError(Code.BAD_REQUEST, "Unknown stream type"))

