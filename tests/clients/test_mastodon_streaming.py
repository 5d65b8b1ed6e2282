"""The Mastodon streaming API on a real port: health, the WebSocket and the event streams, with
Mastodon.py's own streaming client; events when a post goes out (not when it is sent), and
refusals for a bad token, a stream that is not one and a scope the token lacks."""

from __future__ import annotations

import asyncio
import json
import queue
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from mastodon import CallbackStreamListener

from gateway.appkeys import IDENTITY, SETTINGS, STREAMS
from gateway.clock import ManualClock
from gateway.http.mastodon import streaming as streaming_http
from gateway.services import mastodon as mastodon_service
from gateway.services.identity import hash_token
from gateway.services.mastodon import MastodonService
from gateway.storage import posts as posts_sql
from gateway.storage import streams as streams_sql
from gateway.storage.db import DatabaseUnavailable
from tests.clients.revisions import turned
from tests.clients.signin import sign_in
from tests.clients.world import UPSTREAM_TOKEN, World
from tests.conftest import DATABASE_GONE, finding_the_database_gone, started_gateway, write_policy

OOB = "urn:ietf:wg:oauth:2.0:oob"
QUIET = 1.5
"""Long enough for a stream to have heard of a change it would tell (the watcher reads the log
once a second): nothing arriving within it means nothing was sent."""
_TOGETHER = 6
"""Posts that go out in one tick of the publisher."""


async def _oauth_token(world: World, person: str, *, scope: str, account: str) -> str:
    """An app's token with ``scope``, signed in through the page as a person would."""
    status, app = await world.gateway.call(None, "POST", "/api/v1/apps", data={
        "client_name": "Streamer", "redirect_uris": OOB, "scopes": scope})
    assert status == 200, app
    query = urlencode({"response_type": "code", "client_id": app["client_id"], "redirect_uri": OOB, "scope": scope})
    code = await sign_in(f"{world.base}/oauth/authorize?{query}", token=await world.token(person, None),
                         account=account)
    status, body = await world.gateway.call(None, "POST", "/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": app["client_id"],
        "client_secret": app["client_secret"], "redirect_uri": OOB})
    assert status == 200, body
    return str(body["access_token"])


async def _socket(world: World, session: aiohttp.ClientSession, token: str, *,
                  query: str = "", how: str = "protocol") -> aiohttp.ClientWebSocketResponse:
    """A WebSocket to the streaming API, the token sent as a browser app sends it (the
    protocol), as the query parameter, or as the Authorization header."""
    url = f"{world.base.replace('http', 'ws', 1)}/api/v1/streaming{query}"
    if how == "protocol":
        return await session.ws_connect(url, protocols=(token,))
    if how == "query":
        sep = "&" if "?" in url else "?"
        return await session.ws_connect(f"{url}{sep}access_token={token}")
    return await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})


async def _instance_socket(world: World, session: aiohttp.ClientSession, token: str) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket on ``user`` for the account on the Mastodon stand-in, once the instance's own
    stream is followed (before a post goes out, so that its copy is heard and left out)."""
    ws = await _socket(world, session, token, query="?stream=user")
    for _ in range(100):
        if world.upstream.stream_sockets:
            break
        await asyncio.sleep(0.05)
    return ws


async def _message(ws: aiohttp.ClientWebSocketResponse, seconds: float = 8.0) -> dict[str, Any]:
    """The next message on ``ws``, a JSON text (an instance's event crosses two hops: the wait
    allows for both)."""
    message = await ws.receive(timeout=seconds)
    assert message.type is aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)  # type: ignore[no-any-return]


async def _nothing(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Nothing arrives on ``ws`` within ``QUIET``."""
    with pytest.raises(TimeoutError):
        message = await ws.receive(timeout=QUIET)
        raise AssertionError(f"unexpected {message}")


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """The events of a server-sent-events stream: (event, data); comment lines skipped."""
    event, data = "", ""
    while True:
        line = (await response.content.readline()).decode()
        if not line:
            return
        line = line.rstrip("\n")
        if line.startswith(":"):
            continue
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            yield event, data
            event, data = "", ""


async def _get(world: World, path: str, token: str | None = None, **headers: str) -> tuple[int, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with world.gateway.client.get(path, headers=headers) as answer:
        body = await answer.json() if answer.content_type == "application/json" else await answer.text()
        return answer.status, body


async def test_health_answers_ok(world: World) -> None:
    """/api/v1/streaming/health: 200 "OK" as plain text, without a token, as an app checks it."""
    async with world.gateway.client.get("/api/v1/streaming/health") as answer:
        assert (answer.status, await answer.text()) == (200, "OK")
        assert answer.content_type == "text/plain"


async def test_websocket_hears_a_delayed_post_when_it_goes_out(world: World) -> None:
    """A WebSocket subscribed to ``user`` hears nothing when a delayed post is sent, and its
    ``update`` (the status as the REST API shows it) when it goes out; then ``delete``."""
    token = await world.token("bob", "delayed")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token)
        assert ws.protocol == token  # echoed, as a browser requires of the protocol it offered
        await ws.send_json({"type": "subscribe", "stream": "user"})
        status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": "Later, please"},
                                                headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and sent["byline"]["state"] == "scheduled", sent
        await _nothing(ws)
        world.gateway.clock.advance(timedelta(minutes=11))
        assert await world.gateway.tick() == 1
        message = await _message(ws)
        assert (message["stream"], message["event"]) == (["user"], "update")
        status, shown = await _get(world, f"/api/v1/statuses/{sent['id']}", token)
        assert status == 200
        assert json.loads(message["payload"]) == shown
        assert shown["byline"]["state"] == "published"
        status, _ = await world.gateway.call(None, "DELETE", f"/api/v1/statuses/{sent['id']}",
                                             headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        assert await _message(ws) == {"stream": ["user"], "event": "delete", "payload": sent["id"]}
        await ws.close()


async def test_a_stream_reads_the_accounts_count_once_for_the_posts_it_tells_together(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Posts that go out together reach a WebSocket as one read of the log, and their statuses
    share one account entity, whose statuses_count (a sandbox account's, Byline's own) is one
    count of the account's posts: not one a post, which let an app with a few streams open have
    each burst of its posts counted over and over; the edits waiting on them are read once too.
    Each status still shows the count."""
    token = await world.token("bob", "delayed")
    counted: list[str] = []
    published_count = mastodon_service.queue_sql.published_count

    async def counting(txn: Any, account: str) -> int:
        counted.append(account)
        return await published_count(txn, account)

    monkeypatch.setattr(mastodon_service.queue_sql, "published_count", counting)
    looked: list[int] = []
    open_revisions = posts_sql.open_revisions

    async def looking(txn: Any, post_ids: Sequence[str]) -> Any:
        looked.append(len(post_ids))
        return await open_revisions(txn, post_ids)

    monkeypatch.setattr(posts_sql, "open_revisions", looking)
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        for n in range(_TOGETHER):
            status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": f"Later {n}"},
                                                    headers={"Authorization": f"Bearer {token}"})
            assert status == 200 and sent["byline"]["state"] == "scheduled", sent
        await _nothing(ws)
        counted.clear()
        world.gateway.clock.advance(timedelta(minutes=11))
        assert await world.gateway.tick() == _TOGETHER
        told = [await _message(ws) for _ in range(_TOGETHER)]
        assert [m["event"] for m in told] == ["update"] * _TOGETHER
        # Each status shows the count as the read that told it found it: all of them, or (the
        # publisher's groups committing while the stream read) those out by then, never fewer
        # than the statuses told up to it, and all of them by the last.
        shown = [json.loads(m["payload"])["account"]["statuses_count"] for m in told]
        assert all(n <= count <= _TOGETHER for n, count in enumerate(shown, 1)), shown
        assert shown == sorted(shown) and shown[-1] == _TOGETHER, shown
        assert 1 <= len(counted) < _TOGETHER, counted  # once a read of the log, however many it tells
        # So are the edits waiting on them (``byline.pending_revision``), as a page of statuses reads them.
        assert len(looked) == len(counted) and sum(looked) == _TOGETHER, looked
        await ws.close()


async def test_websocket_takes_the_token_and_stream_in_the_query(world: World) -> None:
    """``?access_token=…&stream=user`` subscribes as it connects (megalodon's way); the
    Authorization header is taken too."""
    token = await world.token("erin", "solo")
    async with aiohttp.ClientSession() as session:
        by_query = await _socket(world, session, token, query="?stream=user", how="query")
        by_header = await _socket(world, session, token, query="?stream=user", how="header")
        post = await world.gateway.submit("erin", "solo", "Straight out")
        assert await world.gateway.tick() == 1
        for ws in (by_query, by_header):
            message = await _message(ws)
            assert message["event"] == "update" and json.loads(message["payload"])["id"] == post["id"]
            await ws.close()


async def test_websocket_refuses_streams_it_cannot_serve_as_mastodon_does(world: World) -> None:
    """On the socket: a stream that is not one is 400, a scope the token lacks 401, a list of an
    account with no lists 401, a hashtag without its tag 400; each as a message, the socket stays."""
    token = await _oauth_token(world, "erin", scope="read:statuses", account="solo")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token)
        for ask, error, status in [
            ({"stream": "firehose"}, "Unknown stream type", 400),
            ({"stream": ["user"]}, "Unknown stream type", 400),
            ({"stream": "user:notification"}, "Access token does not have the required scopes", 401),
            ({"stream": "list", "list": "1"}, "Not authorized to stream this list", 401),
            ({"stream": "hashtag"}, "Missing tag name parameter", 400),
        ]:
            await ws.send_json({"type": "subscribe", **ask})
            assert await _message(ws) == {"error": error, "status": status}, ask
        await ws.send_str("not json")
        assert (await _message(ws))["status"] == 400
        await ws.send_str("[" * 100 + "]" * 100)
        assert (await _message(ws))["status"] == 400
        # Public and hashtag streams are taken and stay quiet: Byline carries no one else's posts.
        await ws.send_json({"type": "subscribe", "stream": "public"})
        await ws.send_json({"type": "subscribe", "stream": "hashtag", "tag": "cats"})
        await world.gateway.submit("erin", "solo", "Not on the public stream")
        assert await world.gateway.tick() == 1
        await _nothing(ws)
        await ws.close()


@pytest.mark.parametrize("how", ["protocol", "query", "header"])
async def test_websocket_refuses_a_bad_token_before_it_opens(world: World, how: str) -> None:
    """A token not known (or none) is a 401 at the handshake, whichever way it comes, and the
    answer names no token."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _socket(world, session, "not-a-token-4f1c", how=how)
        assert refused.value.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as missing:
            await session.ws_connect(f"{world.base.replace('http', 'ws', 1)}/api/v1/streaming")
        assert missing.value.status == 401
    status, body = await _get(world, "/api/v1/streaming?access_token=not-a-token-4f1c")
    assert (status, body) == (401, {"error": "Invalid access token"})
    status, body = await _get(world, "/api/v1/streaming", await world.token("erin", "solo"))
    assert (status, body) == (400, {"error": "Expected a WebSocket connection"})


async def test_event_stream_refusals(world: World) -> None:
    """The event streams: 401 without a token or with one not known, 401 for a scope the token
    lacks, 400 for a stream that is not one, 403 for a token of a person with no role left;
    each answer is the streaming server's words, with no token in it."""
    good = await world.token("erin", "solo")
    writes = await _oauth_token(world, "erin", scope="write", account="solo")
    statuses = await _oauth_token(world, "erin", scope="read:statuses", account="solo")
    cases = [
        ("/api/v1/streaming/user", None, 401, "Missing access token"),
        ("/api/v1/streaming/user", "not-a-token-4f1c", 401, "Invalid access token"),
        ("/api/v1/streaming/user?access_token=not-a-token-4f1c", None, 401, "Invalid access token"),
        ("/api/v1/streaming/user", writes, 401, "Access token does not have the required scopes"),
        ("/api/v1/streaming/user/notification", statuses, 401, "Access token does not have the required scopes"),
        ("/api/v1/streaming/firehose", good, 400, "Unknown stream type"),
        ("/api/v1/streaming/user/everything", good, 400, "Unknown stream type"),
        ("/api/v1/streaming/firehose", None, 401, "Missing access token"),
        ("/api/v1/streaming/hashtag", good, 400, "Missing tag name parameter"),
        ("/api/v1/streaming/list?list=12", good, 401, "Not authorized to stream this list"),
    ]
    answers = []
    for path, token, status, error in cases:
        answer = await _get(world, path, token)
        assert answer == (status, {"error": error}), path
        answers.append(answer)
    for token in (good, writes, statuses):
        assert token not in json.dumps(answers)
    write_policy(_policy_dir(world), "solo", """
        account: solo
        platform: sandbox
        handle: "@erin"
        tier: direct
        owner: frank
    """)
    await world.gateway.sync_policies()
    status, body = await _get(world, "/api/v1/streaming/user", good)
    assert status == 403 and body == {"error": "erin no longer has a role on solo"}


async def test_a_stream_asked_for_with_the_database_gone_is_a_503_with_retry_after(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as the token is read: the WebSocket's handshake and an event
    stream are refused 503 with the database's message and Retry-After, as the REST API is.
    Before: 503 with no Retry-After (the refusal is answered by the handler, not the middleware)."""
    token = await world.token("erin", "solo")

    gone = finding_the_database_gone()

    monkeypatch.setattr(MastodonService, "authenticate", gone)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _socket(world, session, token)
    assert refused.value.headers is not None
    assert (refused.value.status, refused.value.headers.get("Retry-After")) == (503, "5")
    async with world.gateway.client.get("/api/v1/streaming/user",
                                        headers={"Authorization": f"Bearer {token}"}) as answer:
        assert (answer.status, answer.headers.get("Retry-After")) == (503, "5")
        assert await answer.json() == {"error": DatabaseUnavailable().message}


def _policy_dir(world: World) -> Path:
    return world.gateway.app[SETTINGS].policy_dir


async def test_mastodon_py_stream_user_hears_the_post_go_out(world: World) -> None:
    """Mastodon.py's own ``stream_user`` (server-sent events, the streaming URL taken from the
    instance entity) hears the ``update`` when the delayed post goes out, and not before."""
    api = await world.client("bob", "delayed")
    assert await world.run(api.stream_healthy)
    heard: queue.Queue[tuple[str, Any]] = queue.Queue()
    listener = CallbackStreamListener(update_handler=lambda s: heard.put(("update", s)),
                                      delete_handler=lambda i: heard.put(("delete", i)))
    handle = await world.run(api.stream_user, listener, run_async=True, reconnect_async=False)
    try:
        for _ in range(50):  # connected once the gateway counts its stream
            if world.gateway.app[STREAMS].watcher.streams_of(_token_key(world, "bob", "delayed")):
                break
            await asyncio.sleep(0.1)
        status = await world.run(api.status_post, "Out in ten minutes")
        await asyncio.sleep(QUIET)
        assert heard.empty()
        world.gateway.clock.advance(timedelta(minutes=11))
        assert await world.gateway.tick() == 1
        kind, shown = await asyncio.to_thread(heard.get, True, 5)
        assert kind == "update"
        assert shown.id == status.id and shown.content == "<p>Out in ten minutes</p>"
    finally:
        # Mastodon.py's close waits for its reader thread's read to return: the gateway stopping
        # its streams ends that read at once (else the next keepalive, or the client's timeout).
        closing = asyncio.ensure_future(world.run(handle.close))
        await world.gateway.app[STREAMS].close()
        await asyncio.wait_for(closing, 10)
    for _ in range(50):
        if not handle.is_alive():
            break
        await asyncio.sleep(0.1)
    assert not handle.is_alive()


def _token_key(world: World, user: str, account: str) -> str:
    return f"token:{hash_token(world.tokens[(user, account)])}"


async def test_a_revoked_token_ends_its_streams(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its token is revoked, an open event stream ends and an open WebSocket closes, at
    the next keepalive at the latest; a reconnection is refused."""
    monkeypatch.setattr(streaming_http, "KEEPALIVE_SECONDS", 0.2)
    token = await world.gateway.app[IDENTITY].create(user="erin", account="solo")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        async with session.get(f"{world.base}/api/v1/streaming/user",
                               headers={"Authorization": f"Bearer {token}"}) as stream:
            assert stream.status == 200 and stream.content_type == "text/event-stream"
            assert await world.gateway.app[IDENTITY].revoke(token)
            ended = await asyncio.wait_for(stream.content.read(), 5)
            assert b"event:" not in ended
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.POLICY_VIOLATION)
    status, _ = await _get(world, "/api/v1/streaming/user", token)
    assert status == 401


@pytest.mark.parametrize("cause", DATABASE_GONE, ids=["storage", "driver"])
@pytest.mark.parametrize("read", ["token_check", "events"])
async def test_a_stream_that_meets_the_database_gone_ends_so_the_app_reconnects(
    world: World, monkeypatch: pytest.MonkeyPatch, read: str, cause: BaseException,
) -> None:
    """The database gone under open streams, met by the token's check at a keepalive or by the
    read of a post that went out: the event stream ends and the WebSocket closes with 1011 and
    the reason, so the app reconnects; once the database is back, a new stream hears the next
    post. Before: both carried on, sending keepalives, and the app was told nothing."""
    token = await world.token("erin", "solo")
    async with aiohttp.ClientSession() as session:
        with monkeypatch.context() as patched:
            if read == "token_check":  # checked at each keepalive: soon
                patched.setattr(streaming_http, "KEEPALIVE_SECONDS", 0.2)
            ws = await _socket(world, session, token, query="?stream=user")
            closing = asyncio.create_task(ws.receive(timeout=10))  # read at once: it answers the heartbeat
            async with session.get(f"{world.base}/api/v1/streaming/user",
                                   headers={"Authorization": f"Bearer {token}"}) as stream:
                assert stream.status == 200 and stream.content_type == "text/event-stream"
                if read == "token_check":
                    patched.setattr(MastodonService, "authenticate", finding_the_database_gone(cause))
                else:
                    patched.setattr(streams_sql, "account_entries", finding_the_database_gone(cause))
                    await world.gateway.submit("erin", "solo", "Out while the database goes")
                    await world.gateway.tick()
                ended = await asyncio.wait_for(stream.content.read(), 5)
                closed = await closing
        assert b"event:" not in ended
        assert (closed.type, closed.data, closed.extra) == (
            aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.INTERNAL_ERROR,
            "the database is not answering; reconnect in a moment")
        again = await _socket(world, session, token, query="?stream=user")
        await world.gateway.submit("erin", "solo", "Out once it is back")
        assert await world.gateway.tick() == 1
        heard = await _message(again)
        assert (heard["event"], json.loads(heard["payload"])["content"]) == ("update", "<p>Out once it is back</p>")
        await again.close()


async def test_an_event_stream_that_stops_reading_is_cut_off(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """An app that stops reading its event stream (its connection open, its window shut) holds
    no stream for ever: once what is written to it does not go out within a keepalive, the
    stream ends and its connection closes, so its revoked token stops counting (and the gateway
    need not wait for it to stop). A WebSocket's heartbeat cuts such a socket off already."""
    monkeypatch.setattr(streaming_http, "KEEPALIVE_SECONDS", 0.2)
    token = await world.gateway.app[IDENTITY].create(user="erin", account="solo")
    key = f"token:{hash_token(token)}"
    loop = asyncio.get_running_loop()
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    stalled.setblocking(False)
    try:
        await loop.sock_connect(stalled, ("127.0.0.1", world.gateway.client.port))
        await loop.sock_sendall(stalled, f"GET /api/v1/streaming/user HTTP/1.1\r\nHost: x\r\n"
                                         f"Authorization: Bearer {token}\r\n\r\n".encode())
        for _ in range(50):
            if world.gateway.app[STREAMS].watcher.streams_of(key):
                break
            await asyncio.sleep(0.05)
        assert world.gateway.app[STREAMS].watcher.streams_of(key) == 1
        # The loopback's buffers hold megabytes: the gateway's side of each connection is made
        # small, so that some sixty posts fill it rather than thousands.
        server = world.gateway.client.server.runner.server  # type: ignore[union-attr]
        for handler in server.connections:  # type: ignore[union-attr]
            if handler.transport is not None:
                handler.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
                handler.transport.set_write_buffer_limits(high=4096)
        for n in range(60):
            await world.gateway.submit("erin", "solo", f"{n} " + "x" * 480)
        while await world.gateway.tick():
            pass
        for _ in range(100):  # the stream has heard of the posts, and the app takes no more of them
            if any(h.transport is not None and h.transport.get_write_buffer_size() for h in server.connections):
                break
            await asyncio.sleep(0.05)
        assert await world.gateway.app[IDENTITY].revoke(token)
        for _ in range(100):
            if not world.gateway.app[STREAMS].watcher.streams_of(key):
                break
            await asyncio.sleep(0.05)
        assert world.gateway.app[STREAMS].watcher.streams_of(key) == 0
    finally:
        stalled.close()



async def test_streams_per_token_are_bounded(world: World) -> None:
    """Past eight open streams of one token, the next is refused with 429; one closing lets
    another open."""
    token = await world.gateway.app[IDENTITY].create(user="erin", account="solo")
    async with aiohttp.ClientSession() as session:
        sockets = [await _socket(world, session, token) for _ in range(8)]
        status, body = await _get(world, "/api/v1/streaming/user", token)
        assert status == 429, body
        await sockets.pop().close()
        for _ in range(50):
            if world.gateway.app[STREAMS].watcher.streams_of(f"token:{hash_token(token)}") < 8:
                break
            await asyncio.sleep(0.05)
        sockets.append(await _socket(world, session, token))
        for ws in sockets:
            await ws.close()


async def test_a_websocket_outlives_the_request_read_clock(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """The clock that cuts off a client slow to send its request does not run on an open
    WebSocket: one that has subscribed (and answered pings) still hears its posts go out after
    BYLINE_REQUEST_READ_SECONDS, as it would for hours."""
    write_policy(policy_dir, "solo", """
        account: solo
        platform: sandbox
        handle: "@erin"
        tier: direct
        owner: erin
    """)
    async with started_gateway(db_url, policy_dir, clock, request_read_seconds=1) as gw, \
            aiohttp.ClientSession() as session:
        token = await gw.app[IDENTITY].create(user="erin", account="solo")
        base = str(gw.client.make_url("")).rstrip("/").replace("http", "ws", 1)
        ws = await session.ws_connect(f"{base}/api/v1/streaming", protocols=(token,))
        await ws.send_json({"type": "subscribe", "stream": "user"})
        await ws.ping()
        await asyncio.sleep(2.5)  # the read clock runs on the event loop's time, not the gateway's clock
        post = await gw.submit("erin", "solo", "Still listening")
        assert await gw.tick() == 1
        message = await _message(ws)
        assert message["event"] == "update" and json.loads(message["payload"])["id"] == post["id"]
        await ws.close()


async def test_a_post_made_through_another_replica_reaches_the_stream(
    world: World, db_url: str, clock: ManualClock,
) -> None:
    """A post published by another gateway on the same database (another worker or replica)
    reaches a WebSocket open on this one."""
    token = await world.token("erin", "solo")
    async with started_gateway(db_url, _policy_dir(world), clock) as other, aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        post = await other.submit("erin", "solo", "Through the other one")
        assert await other.tick() == 1
        message = await _message(ws, 10)
        assert message["event"] == "update" and json.loads(message["payload"])["id"] == post["id"]
        await ws.close()


async def test_streams_close_when_the_gateway_stops(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Stopping the gateway closes its WebSockets as going away (1001) and ends its event
    streams, without waiting for them."""
    write_policy(policy_dir, "solo", """
        account: solo
        platform: sandbox
        handle: "@erin"
        tier: direct
        owner: erin
    """)
    gateway = started_gateway(db_url, policy_dir, clock)
    gw = await gateway.__aenter__()
    token = await gw.app[IDENTITY].create(user="erin", account="solo")
    base = str(gw.client.make_url("")).rstrip("/")
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(f"{base.replace('http', 'ws', 1)}/api/v1/streaming?stream=user",
                                      protocols=(token,))
        stream = await session.get(f"{base}/api/v1/streaming/user", headers={"Authorization": f"Bearer {token}"})
        assert stream.status == 200
        await asyncio.wait_for(gateway.__aexit__(None, None, None), 10)
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.GOING_AWAY)
        assert b"event:" not in await asyncio.wait_for(stream.content.read(), 5)
        stream.release()


async def test_a_mastodon_account_hears_its_own_post_and_its_edit(world: World) -> None:
    """For an account on a Mastodon instance, the post going out through Byline is an
    ``update`` with Byline's id, its edit a ``status.update`` (the instance's own copies of
    both not passed on); the instance's token appears in no event."""
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _instance_socket(world, session, token)
        auth = {"Authorization": f"Bearer {token}"}
        status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": "On the instance"},
                                                headers=auth)
        assert status == 200, sent
        await world.gateway.tick()
        update = await _message(ws)
        assert update["event"] == "update" and json.loads(update["payload"])["id"] == sent["id"]
        status, edited = await world.gateway.call(None, "PUT", f"/api/v1/statuses/{sent['id']}",
                                                  data={"status": "On the instance, edited"}, headers=auth)
        assert status == 200, edited
        changed = await _message(ws)
        assert changed["event"] == "status.update"
        assert json.loads(changed["payload"])["content"] == "<p>On the instance, edited</p>"
        assert UPSTREAM_TOKEN not in json.dumps([update, changed])
        await _nothing(ws)
        await ws.close()
    # The instance's own events are followed on one connection, as the account (its token in
    # the header only), never with the app's token.
    followed = [r for r in world.upstream.faults.requests if r.path == "/api/v1/streaming"]
    assert [(r.path, r.query) for r in followed] == [("/api/v1/streaming", {"stream": "user"})]
    assert token not in json.dumps([followed[0].headers, followed[0].query])


async def test_head_on_an_event_stream_opens_none(world: World) -> None:
    """aiohttp answers HEAD on every GET route: a HEAD of an event stream opened one, which sent
    nothing and held one of the token's eight slots for as long as the app kept it. It is
    refused (403, as any method the surface does not serve) and holds nothing: the token's
    eight streams still open after it."""
    token = await world.token("erin", "solo")
    async with world.gateway.client.head("/api/v1/streaming/user",
                                         headers={"Authorization": f"Bearer {token}"}) as answer:
        assert answer.status == 403  # as any method the Mastodon surface does not serve
    async with aiohttp.ClientSession() as session:
        opened = [await session.get(f"{world.base}/api/v1/streaming/user",
                                    headers={"Authorization": f"Bearer {token}"}) for _ in range(8)]
        try:
            assert [a.status for a in opened] == [200] * 8
        finally:
            for answer in opened:
                answer.close()


async def test_a_streamed_status_names_the_edit_waiting_as_get_does(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ``status.update`` (and an ``update``) told while an edit of the status waits names it
    (``byline.pending_revision``) exactly as ``GET /api/v1/statuses/:id`` does at that moment:
    the payload is the GET's answer, for the people of the account who may see the edit."""
    token = await world.token("alice", "masto")
    streams = world.gateway.app[STREAMS]
    reading, events_for = asyncio.Event(), streams.events_for

    async def held_back(feed: Any) -> Any:
        await reading.wait()  # the stream reads the log only once both edits are in
        return await events_for(feed)

    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        ws = await _instance_socket(world, session, token)
        status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": "Meet at noon"},
                                                headers=auth)
        assert status == 200, sent
        await world.gateway.tick()
        assert (await _message(ws))["event"] == "update"
        monkeypatch.setattr(streams, "events_for", held_back)
        await turned(world, policy_dir, "delayed")
        for words in ("Meet at one", "Meet at two"):  # the first goes out, the second waits
            status, edited = await world.gateway.call(None, "PUT", f"/api/v1/statuses/{sent['id']}",
                                                      data={"status": words}, headers=auth)
            assert status == 200 and edited["byline"]["pending_revision"]["state"] == "scheduled", edited
            if words == "Meet at one":
                world.gateway.clock.advance(timedelta(minutes=10, seconds=1))
                await world.gateway.tick()
        status, shown = await _get(world, f"/api/v1/statuses/{sent['id']}", token)
        assert status == 200 and shown["content"] == "<p>Meet at one</p>", shown
        assert shown["byline"]["pending_revision"]["id"] == edited["byline"]["pending_revision"]["id"], shown
        reading.set()
        changed = await _message(ws)
        assert changed["event"] == "status.update"
        assert json.loads(changed["payload"]) == shown
        await ws.close()
