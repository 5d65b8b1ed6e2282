"""A Mastodon account's apps hear its instance's own live events through Byline: one connection
per account and stream to the instance's streaming API (the stand-in's, strict as Mastodon's
streaming server), shared by the account's open streams, closed with the last; a post Byline
publishes heard once; the instance dropping and coming back; its token never shown."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from mastodon import CallbackStreamListener
from structlog.testing import capture_logs

from gateway.appkeys import IDENTITY, PLATFORMS, STREAMS
from gateway.clock import ManualClock
from gateway.http.mastodon import streaming as streaming_http
from gateway.services import identity as identity_service
from gateway.services import streaming as streaming_service
from gateway.services.instance_streams import LINKS_PER_ACCOUNT, InstanceStreams
from gateway.services.platforms import CREDENTIAL_REREAD_SECONDS
from gateway.services.streaming import CHECK_STANDS_SECONDS
from tests.clients.test_mastodon_streaming import (
    QUIET,
    _events,
    _message,
    _nothing,
    _oauth_token,
    _policy_dir,
    _socket,
)
from tests.clients.world import READING, UPSTREAM_TOKEN, World, write_masto_policy
from tests.conftest import started_gateway
from tests.fakes.mastodon import create_app as mastodon_app


async def _until(check: Any, seconds: float = 8.0) -> None:
    """Wait until ``check()`` holds (a connection made or closed on the other side)."""
    for _ in range(int(seconds / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("never came to pass")


def _listening(world: World, stream: tuple[str, ...]) -> int:
    """The instance's open streaming sockets subscribed to ``stream``."""
    return sum(1 for s in world.upstream.stream_sockets if stream in s.streams)


async def _mention(world: World, text: str) -> dict[str, Any]:
    """Someone else on the instance mentions the account: the notification the instance tells."""
    other = world.upstream.accounts.get("2") or world.upstream.add_account("someone", "mtok-someone")
    status = world.upstream.seed_status(other, f"@brand {text}", created_at=datetime.now(UTC))
    return world.upstream.render_notification("mention", by=other, status=status)


async def test_a_notification_on_the_instance_reaches_mastodon_py(world: World) -> None:
    """Mastodon.py's ``stream_user`` hears a mention made on the instance as the instance told it;
    the instance saw the account's own credential in a header only, never the app's token."""
    api = await world.client("alice", "masto")
    heard: queue.Queue[Any] = queue.Queue()
    handle = await world.run(api.stream_user, CallbackStreamListener(notification_handler=heard.put),
                             run_async=True, reconnect_async=False)
    try:
        await _until(lambda: _listening(world, ("user",)) == 1)
        notification = await _mention(world, "hello there")
        assert await world.upstream.notify(world.upstream_account, notification) == 1
        got = await asyncio.to_thread(heard.get, True, 8)
        assert (got.id, got.type, got.status.id) == (notification["id"], "mention", notification["status"]["id"])
        assert got.account.acct == "someone"
    finally:
        closing = asyncio.ensure_future(world.run(handle.close))
        await world.gateway.app[STREAMS].close()
        await asyncio.wait_for(closing, 10)
    opened = [r for r in world.upstream.faults.requests if r.path == "/api/v1/streaming"]
    assert len(opened) == 1
    assert opened[0].headers["Authorization"] == f"Bearer {UPSTREAM_TOKEN}"
    assert UPSTREAM_TOKEN not in json.dumps(opened[0].query)
    assert world.tokens[("alice", "masto")] not in json.dumps([opened[0].headers, opened[0].query])


async def test_user_notification_over_a_websocket_hears_notifications_only(world: World) -> None:
    """A WebSocket subscribed to ``user:notification`` hears the instance's notification with its
    stream named as the app asked, and not a home-timeline ``update``."""
    token = await world.token("carol", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token)
        await ws.send_json({"type": "subscribe", "stream": "user:notification"})
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        notification = await _mention(world, "are you there?")
        await world.upstream.notify(world.upstream_account, notification)
        message = await _message(ws)
        assert message == {"stream": ["user:notification"], "event": "notification",
                           "payload": json.dumps(notification)}
        other = world.upstream.accounts["2"]
        status = world.upstream.seed_status(other, "Just a post", created_at=datetime.now(UTC))
        assert await world.upstream.emit(world.upstream_account, ("user",), "update",
                                         json.dumps(world.upstream.render_status(status))) == 0
        await _nothing(ws)
        await ws.close()


async def test_one_connection_per_account_and_stream_closed_with_the_last(world: World) -> None:
    """Three app streams of the account on ``user`` share one connection to the instance; it
    stays while any is open, and closes when the last goes; the others' post reaches them all."""
    async with aiohttp.ClientSession() as session:
        sockets = [await _socket(world, session, await world.token(user, "masto"), query="?stream=user")
                   for user in ("alice", "carol", "alice")]
        await _until(lambda: _listening(world, ("user",)) == 1)
        other = world.upstream.add_account("someone", "mtok-someone")
        status = world.upstream.seed_status(other, "Hello, followers", created_at=datetime.now(UTC))
        payload = json.dumps(world.upstream.render_status(status))
        assert await world.upstream.emit(world.upstream_account, ("user",), "update", payload) == 1
        for ws in sockets:
            assert await _message(ws) == {"stream": ["user"], "event": "update", "payload": payload}
        await sockets[0].close()
        await sockets[1].close()
        await asyncio.sleep(QUIET)
        assert _listening(world, ("user",)) == 1
        await sockets[2].close()
        await _until(lambda: not world.upstream.stream_sockets)
    assert world.gateway.app[STREAMS].instance.open_links() == []
    assert len(world.upstream.stream_connections) == 1


async def test_a_post_byline_publishes_is_heard_once(world: World) -> None:
    """The instance tells its own ``update``, ``status.update`` and ``delete`` of the post Byline
    published: the app hears each once, from Byline's record, by Byline's id."""
    token = await world.token("alice", "masto")
    auth = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": "Once only"},
                                                headers=auth)
        assert status == 200, sent
        await world.gateway.tick()
        update = await _message(ws)
        assert (update["event"], json.loads(update["payload"])["id"]) == ("update", sent["id"])
        await _nothing(ws)
        status, edited = await world.gateway.call(None, "PUT", f"/api/v1/statuses/{sent['id']}",
                                                  data={"status": "Once only, edited"}, headers=auth)
        assert status == 200, edited
        changed = await _message(ws)
        assert (changed["event"], json.loads(changed["payload"])["id"]) == ("status.update", sent["id"])
        await _nothing(ws)
        status, _ = await world.gateway.call(None, "DELETE", f"/api/v1/statuses/{sent['id']}", headers=auth)
        assert status == 200
        assert await _message(ws) == {"stream": ["user"], "event": "delete", "payload": sent["id"]}
        await _nothing(ws)
        await ws.close()
    # The instance did tell all three: Byline chose not to pass them on.
    assert len(world.upstream.statuses(world.upstream_account, include_deleted=True)) == 1


async def test_the_instance_dropping_and_coming_back(world: World) -> None:
    """The instance's streaming server goes away and refuses for a while: the app's stream stays
    open and hears Byline's own post meanwhile; once the instance answers, its events flow again."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1  # the pauses of a test, not of a day
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        world.upstream.faults.fail_next(3, 502, path="/api/v1/streaming")
        await world.upstream.drop_streams()
        status, sent = await world.gateway.call(None, "POST", "/api/v1/statuses", data={"status": "Still here"},
                                                headers={"Authorization": f"Bearer {token}"})
        assert status == 200, sent
        await world.gateway.tick()
        update = await _message(ws)
        assert json.loads(update["payload"])["id"] == sent["id"]
        await _until(lambda: _listening(world, ("user",)) == 1)
        notification = await _mention(world, "welcome back")
        await world.upstream.notify(world.upstream_account, notification)
        assert await _message(ws) == {"stream": ["user"], "event": "notification",
                                      "payload": json.dumps(notification)}
        assert not ws.closed
        await ws.close()
    tried = [r for r in world.upstream.faults.requests if r.path == "/api/v1/streaming"]
    assert len(tried) == 1 + 3 + 1


async def test_a_credential_unreadable_for_a_while_is_tried_again(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The instance drops the connection while the account's credential cannot be read (its
    secret being replaced): Byline tries again after its pauses, and once the credential reads
    the connection is made and the app, its stream open all along, hears the instance again.
    Before: the first failure to build the connection stopped it for good."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        monkeypatch.delenv("BRAND_MASTODON_TOKEN")
        await world.upstream.drop_streams()
        await asyncio.sleep(QUIET)  # a few attempts, each failing before it reaches the instance
        assert not world.upstream.stream_sockets
        monkeypatch.setenv("BRAND_MASTODON_TOKEN", UPSTREAM_TOKEN)
        await _until(lambda: _listening(world, ("user",)) == 1)
        notification = await _mention(world, "back again")
        await world.upstream.notify(world.upstream_account, notification)
        assert await _message(ws) == {"stream": ["user"], "event": "notification",
                                      "payload": json.dumps(notification)}
        await ws.close()


async def test_a_refused_credential_keeps_the_app_stream_and_stays_out_of_logs(world: World) -> None:
    """The instance revokes the account's token: its socket closes and each retry is refused
    401, yet the app's stream stays open and hears Byline's own events; no log line, and
    nothing the app hears, carries the instance's token."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1
    token = await world.token("alice", "masto")
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as session:
            ws = await _socket(world, session, token, query="?stream=user")
            await _until(lambda: _listening(world, ("user",)) == 1)
            world.upstream.revoke_token(UPSTREAM_TOKEN)
            await _until(lambda: not world.upstream.stream_sockets)
            await _until(lambda: len([r for r in world.upstream.faults.requests
                                      if r.path == "/api/v1/streaming"]) >= 3)
            assert not ws.closed
            await ws.send_json({"type": "subscribe", "stream": "user:notification"})
            await _nothing(ws)
            await ws.close()
    failed = [e for e in logs if e["event"] == "instance_stream_failed"]
    assert failed and all(e["auth_failed"] for e in failed), logs
    assert "HTTP 401" in failed[0]["error"]
    assert UPSTREAM_TOKEN not in repr(logs)
    assert world.gateway.app[PLATFORMS].unhealthy["masto"] == "the platform refused the account's credential"


@pytest.mark.parametrize("how", ["header", "query", "protocol"])
async def test_the_standin_streaming_server_takes_the_token_three_ways(world: World, how: str) -> None:
    """The stand-in's streaming server, as Mastodon's: the token as a header, a query parameter
    or the protocol (echoed); an unknown stream is an error message on a socket that stays open."""
    url = f"{world.upstream_url.replace('http', 'ws', 1)}/api/v1/streaming"
    async with aiohttp.ClientSession() as session:
        if how == "header":
            ws = await session.ws_connect(url, headers={"Authorization": f"Bearer {UPSTREAM_TOKEN}"})
        elif how == "query":
            ws = await session.ws_connect(f"{url}?access_token={UPSTREAM_TOKEN}")
        else:
            ws = await session.ws_connect(url, protocols=(UPSTREAM_TOKEN,))
            assert ws.protocol == UPSTREAM_TOKEN
        await ws.send_json({"type": "subscribe", "stream": "user:everything"})
        assert await _message(ws) == {"error": "Unknown stream type", "status": 400}
        await ws.send_json({"type": "subscribe", "stream": "hashtag"})
        assert await _message(ws) == {"error": "Missing tag name parameter", "status": 400}
        await ws.send_json({"type": "subscribe", "stream": "user:notification"})
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        await ws.close()


async def test_the_standin_streaming_server_checks_each_streams_scope_as_mastodon_does(world: World) -> None:
    """As ``checkScopes`` in Mastodon's streaming server: ``read`` covers every stream,
    ``read:statuses`` every stream but ``user:notification``, which needs ``read:notifications``;
    a stream the token's scopes do not cover is a 401 message on a socket that stays open, and
    nothing of it is heard."""
    url = f"{world.upstream_url.replace('http', 'ws', 1)}/api/v1/streaming"
    refused = {"error": "Access token does not have the required scopes", "status": 401}
    async with aiohttp.ClientSession() as session:
        world.upstream.scope_token(UPSTREAM_TOKEN, "read:accounts", "write:statuses")  # the old README's
        ws = await session.ws_connect(f"{url}?stream=user", headers={"Authorization": f"Bearer {UPSTREAM_TOKEN}"})
        assert await _message(ws) == refused
        for stream in ("public", "user:notification"):
            await ws.send_json({"type": "subscribe", "stream": stream})
            assert await _message(ws) == refused
        world.upstream.scope_token(UPSTREAM_TOKEN, "read:notifications")
        await ws.send_json({"type": "subscribe", "stream": "public:local"})
        assert await _message(ws) == refused
        await ws.send_json({"type": "subscribe", "stream": "user:notification"})
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        assert _listening(world, ("user",)) == _listening(world, ("public",)) == 0
        world.upstream.scope_token(UPSTREAM_TOKEN, "read:statuses")
        await ws.send_json({"type": "subscribe", "stream": "hashtag", "tag": "cats"})
        await _until(lambda: _listening(world, ("hashtag", "cats")) == 1)
        await ws.close()


async def test_an_instance_stream_refused_for_scope_is_named_and_holds_no_post(world: World) -> None:
    """The account's token has only the old README's scopes: the instance's streaming server
    refuses Byline's ``user`` stream (401 on the socket). Byline's log names the scope and what
    to do, never the token; the app's stream stays open; and the account is not marked
    unhealthy (a read the stream needs is no reason to hold its posts)."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1
    world.upstream.scope_token(UPSTREAM_TOKEN, "read:accounts", "write:statuses")
    token = await world.token("alice", "masto")
    with capture_logs() as logs:
        async with aiohttp.ClientSession() as session:
            ws = await _socket(world, session, token, query="?stream=user")
            await _until(lambda: len([e for e in logs if e["event"] == "instance_stream_failed"]) >= 2)
            assert not ws.closed
            await ws.close()
    failed = [e for e in logs if e["event"] == "instance_stream_failed"]
    assert not any(e["auth_failed"] for e in failed), failed
    assert ("mastodon: the streaming server refused the user stream: the token lacks the scope read:statuses; "
            "give the application read:statuses on the instance") in failed[0]["error"]
    assert UPSTREAM_TOKEN not in repr(logs)
    assert "masto" not in world.gateway.app[PLATFORMS].unhealthy


@pytest.mark.parametrize(("headers", "query", "expected"), [
    ({}, "", "Missing access token"),
    ({"Authorization": "Bearer not-a-token"}, "", "Invalid access token"),
    ({}, "?access_token=not-a-token", "Invalid access token"),
    ({"Sec-WebSocket-Protocol": "not-a-token"}, "", "Invalid access token"),
])
async def test_the_standin_streaming_server_refuses_a_bad_token_before_the_upgrade(
    world: World, headers: dict[str, str], query: str, expected: str,
) -> None:
    """Missing or unknown token: 401 with the streaming server's words, and no socket opened."""
    url = f"{world.upstream_url.replace('http', 'ws', 1)}/api/v1/streaming{query}"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers=headers)
        assert refused.value.status == 401
        async with session.get(url.replace("ws", "http", 1), headers=headers) as answer:
            assert (answer.status, await answer.json()) == (401, {"error": expected})
    assert world.upstream.stream_connections == []


async def test_an_instance_payload_cannot_add_events_to_an_event_stream(world: World) -> None:
    """A payload with line breaks from the instance stays one event on a server-sent-events
    stream: each of its lines is a ``data:`` line, so no ``event:`` line of its own gets through."""
    token = await world.token("alice", "masto")
    async with world.gateway.client.get("/api/v1/streaming/user/notification",
                                        headers={"Authorization": f"Bearer {token}"}) as answer:
        assert answer.status == 200
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        forged = '{"id": "1"}\n\nevent: delete\ndata: 42'
        assert await world.upstream.emit(world.upstream_account, ("user:notification",), "notification", forged) == 1
        lines: list[str] = []
        while True:
            line = (await asyncio.wait_for(answer.content.readline(), 8)).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line and lines:
                break
            lines.append(line)
    assert lines == ["event: notification", 'data: {"id": "1"}', "data: ", "data: event: delete", "data: data: 42"]


async def test_the_instances_events_cost_no_read_of_the_log(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of the instance's events reaches the app without a read of Byline's log for each,
    nor a check of its token for each: the log has not grown, the policies have not changed, the
    token was checked within the second, and a busy public stream must not turn into a database
    read an event. Before: each event's round read the token again."""
    token = await world.token("alice", "masto")
    reads: list[int] = []
    checks: list[str] = []
    account_entries, find_token = streaming_service.sql.account_entries, identity_service.sql.find_token

    async def counting(txn: Any, **kwargs: Any) -> Any:
        reads.append(kwargs["start"])
        return await account_entries(txn, **kwargs)

    async def checking(txn: Any, token_hash: str) -> Any:
        checks.append(token_hash)
        return await find_token(txn, token_hash)

    monkeypatch.setattr(streaming_service.sql, "account_entries", counting)
    monkeypatch.setattr(identity_service.sql, "find_token", checking)
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user:notification")
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        reads.clear()
        checks.clear()
        for n in range(10):
            await world.upstream.notify(world.upstream_account, await _mention(world, f"ping {n}"))
            assert (await _message(ws))["event"] == "notification"
        assert reads == []
        assert len(checks) <= 1, checks
        await ws.close()


async def test_an_account_opens_a_bounded_number_of_connections_to_its_instance(world: World) -> None:
    """An app subscribing to more hashtags than the bound opens no more connections to the
    instance than the bound; its socket stays open, and closing it closes them all."""
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token)
        for n in range(LINKS_PER_ACCOUNT + 4):
            await ws.send_json({"type": "subscribe", "stream": "hashtag", "tag": f"tag{n}"})
        await _until(lambda: len(world.upstream.stream_sockets) == LINKS_PER_ACCOUNT)
        await asyncio.sleep(QUIET)
        assert len(world.upstream.stream_sockets) == LINKS_PER_ACCOUNT
        assert len(world.gateway.app[STREAMS].instance.open_links()) == LINKS_PER_ACCOUNT
        assert not ws.closed
        await ws.close()
        await _until(lambda: not world.upstream.stream_sockets)


async def test_a_streaming_server_on_a_host_of_its_own_is_followed_there(world: World) -> None:
    """Where the instance's streaming server has its own host, the main host redirects its paths
    there (301, as Mastodon does): Byline learns it from the health path, connects there with
    the account's token, and the app hears the instance."""
    streaming = TestServer(mastodon_app(world.upstream))
    await streaming.start_server()
    try:
        world.upstream.streaming_url = f"ws://127.0.0.1:{streaming.port}"
        token = await world.token("alice", "masto")
        async with aiohttp.ClientSession() as session:
            ws = await _socket(world, session, token, query="?stream=user:notification")
            await _until(lambda: _listening(world, ("user:notification",)) == 1)
            notification = await _mention(world, "from the other host")
            await world.upstream.notify(world.upstream_account, notification)
            assert (await _message(ws))["payload"] == json.dumps(notification)
            await ws.close()
        asked = [(r.path, r.headers["Host"]) for r in world.upstream.faults.requests if "streaming" in r.path]
        assert asked == [("/api/v1/streaming/health", world.upstream_url.partition("://")[2]),
                         ("/api/v1/streaming", f"127.0.0.1:{streaming.port}")]
    finally:
        await streaming.close()


async def test_a_token_without_read_notifications_hears_no_notification_on_user(world: World) -> None:
    """The instance's ``user`` stream carries notifications too: an app whose token may read
    statuses but not notifications hears the others' posts on ``user``, not the mention."""
    token = await _oauth_token(world, "alice", scope="read:statuses", account="masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        await world.upstream.notify(world.upstream_account, await _mention(world, "psst"))
        status = world.upstream.seed_status(world.upstream.accounts["2"], "A post", created_at=datetime.now(UTC))
        payload = json.dumps(world.upstream.render_status(status))
        await world.upstream.emit(world.upstream_account, ("user",), "update", payload)
        assert await _message(ws) == {"stream": ["user"], "event": "update", "payload": payload}
        await _nothing(ws)
        await ws.close()


@pytest.mark.parametrize("how", ["revoked", "role_lost"])
async def test_a_stream_whose_token_no_longer_reads_hears_nothing_more_of_the_instance(
    world: World, how: str,
) -> None:
    """Two apps share the account's connection to its instance; one's token is revoked (a
    second ago: a check of the token stands that long for the instance's events), or its
    person loses their role in a reload: the instance's next post reaches the other app only,
    and the first one's WebSocket closes with 1008, the event not sent to it first (each
    delivery checks the token, not only the keepalive)."""
    losing = await world.gateway.app[IDENTITY].create(user="carol", account="masto")
    staying = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        lost = await _socket(world, session, losing, query="?stream=user")
        kept = await _socket(world, session, staying, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        someone = world.upstream.add_account("someone", "mtok-someone")
        before, after = (json.dumps(world.upstream.render_status(world.upstream.seed_status(
            someone, text, created_at=datetime.now(UTC)))) for text in ("For both", "For readers"))
        assert await world.upstream.emit(world.upstream_account, ("user",), "update", before) == 1
        for ws in (lost, kept):  # both hear the instance through the one connection
            assert await _message(ws) == {"stream": ["user"], "event": "update", "payload": before}
        if how == "revoked":
            assert await world.gateway.app[IDENTITY].revoke(losing)
            world.gateway.clock.advance(timedelta(seconds=CHECK_STANDS_SECONDS))
        else:
            write_masto_policy(_policy_dir(world), world.upstream_url, writers="[alice]")
            assert await world.gateway.sync_policies() == ["masto"]
        assert await world.upstream.emit(world.upstream_account, ("user",), "update", after) == 1
        assert await _message(kept) == {"stream": ["user"], "event": "update", "payload": after}
        closing = await lost.receive(timeout=8)
        assert (closing.type, closing.data, closing.extra) == (
            aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.POLICY_VIOLATION, "the token no longer reads this account")
        assert _listening(world, ("user",)) == 1  # the other app's stream keeps the connection
        await kept.close()
    assert len(world.upstream.stream_connections) == 1  # a reload with the same credential keeps it too


async def _only_the_new_account_is_heard(world: World, ws: Any, mention: Any, moved_to: Any) -> None:
    """The old platform account's ``mention`` reaches nobody; a follow of ``moved_to``, the
    account the credential is for now, reaches the app on ``ws``."""
    assert await world.upstream.notify(world.upstream_account, mention) == 0
    fresh = world.upstream.render_notification("follow", by=world.upstream.accounts["2"])
    assert await world.upstream.notify(moved_to, fresh) == 1
    assert await _message(ws) == {"stream": ["user:notification"], "event": "notification",
                                  "payload": json.dumps(fresh)}


async def test_an_account_given_another_credential_is_followed_with_it(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The account's policy now names another of the instance's accounts (its credential): at
    the reload the connection made with the old credential closes and one is made with the new,
    and the app still streaming hears the new account's notification, nothing more of the old's.
    Before: the old connection stayed open for as long as an app streamed, relaying an account
    Byline no longer speaks as, with a credential it no longer uses."""
    mention = await _mention(world, "for the old account")
    moved_to = world.upstream.add_account("newbrand", "mtok-newbrand-41d7", scopes=READING)
    monkeypatch.setenv("NEWBRAND_MASTODON_TOKEN", "mtok-newbrand-41d7")
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user:notification")
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        write_masto_policy(_policy_dir(world), world.upstream_url, handle="@newbrand@mastodon.example",
                           credentials="env:NEWBRAND_MASTODON_TOKEN")
        assert await world.gateway.sync_policies() == ["masto"]
        await _until(lambda: [s.token for s in world.upstream.stream_sockets] == ["mtok-newbrand-41d7"])
        await _only_the_new_account_is_heard(world, ws, mention, moved_to)
        await ws.close()
    assert [a for a, _ in world.upstream.stream_connections] == [world.upstream_account.id, moved_to.id]


async def test_an_account_removed_through_a_replica_closes_its_instance_connection_for_good(
    world: World, db_url: str, clock: ManualClock,
) -> None:
    """The account's policy file is deleted and another gateway on the database records the
    removal (this one's streams look again as the log grows, before this gateway reloads): once
    this gateway puts the removal in force, the connection to the instance closes at once, the
    app's WebSocket closes with 1008, and nothing connects to the instance again for the
    account. Before: the connection stayed, with the account's credential, until the stream's
    next keepalive or event."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1  # a reconnection, were there one, within the test
    token = await world.token("alice", "masto")
    async with started_gateway(db_url, _policy_dir(world), clock) as other, aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user")
        await _until(lambda: _listening(world, ("user",)) == 1)
        (_policy_dir(world) / "masto.yaml").unlink()
        assert await other.sync_policies() == ["masto"]
        await asyncio.sleep(QUIET)  # the log grew: this gateway's stream has looked again, as it stood
        assert not ws.closed
        await world.gateway.sync_policies()
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.POLICY_VIOLATION)
        await _until(lambda: not world.upstream.stream_sockets, seconds=2)
        await asyncio.sleep(QUIET)  # several of the pauses before a reconnection
    assert instance.open_links() == []
    assert len([r for r in world.upstream.faults.requests if r.path == "/api/v1/streaming"]) == 1


async def test_a_subscription_after_the_account_is_removed_ends_the_stream_with_1008(world: World) -> None:
    """An app subscribes on its open WebSocket just after the account's removal is put in force,
    before its stream has looked at its token again (the log's growth not yet read): the stream
    ends with 1008, as a token that no longer reads the account. Before: the subscription raised
    out of the socket's handler, which closed it with 1000, as if the stream were done."""
    world.gateway.app[STREAMS].watcher.interval = 3600  # the log's growth read only when the database says so
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token)
        (_policy_dir(world) / "masto.yaml").unlink()
        assert await world.gateway.sync_policies() == ["masto"]
        await ws.send_json({"type": "subscribe", "stream": "user"})
        closing = await ws.receive(timeout=5)
        assert (closing.type, closing.data, closing.extra) == (
            aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.POLICY_VIOLATION, "the token no longer reads this account")
    assert world.upstream.stream_connections == []


NOTICED = CREDENTIAL_REREAD_SECONDS + 2
"""How soon a credential rewritten in place is followed with: noticed within a re-read, and a
connection made to the stand-in on this machine."""


async def _rewritable_credential(world: World, monkeypatch: pytest.MonkeyPatch, how: str) -> Callable[[str], None]:
    """A way to rewrite the account's credential where its policy points, the policy unchanged:
    its environment variable, or its secret file (the policy moved to one first, with the same
    token: the connection is kept)."""
    if how == "env":
        return lambda value: monkeypatch.setenv("BRAND_MASTODON_TOKEN", value)
    secret = _policy_dir(world) / "secrets" / "masto.token"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(UPSTREAM_TOKEN + "\n")
    write_masto_policy(_policy_dir(world), world.upstream_url, credentials="file:secrets/masto.token")
    assert await world.gateway.sync_policies() == ["masto"]

    def rewrite(value: str) -> None:
        secret.write_text(value + "\n")

    return rewrite


@pytest.mark.parametrize("how", ["file", "env"])
async def test_a_credential_rewritten_in_place_is_followed_with_within_a_second_or_so(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """The account's secret file, or its environment variable, is rewritten with another of the
    instance's accounts' tokens, no policy edited: within about a second the connection made
    with the old credential closes and one is made with the new, and the app still streaming
    hears the new account's notification, nothing more of the old's. Before: the old connection
    stayed until it next reconnected, telling the account's apps the old platform account's
    notifications under the account's name."""
    mention = await _mention(world, "for the old account")
    moved_to = world.upstream.add_account("newbrand", "mtok-newbrand-41d7", scopes=READING)
    rewrite = await _rewritable_credential(world, monkeypatch, how)
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user:notification")
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        assert [s.token for s in world.upstream.stream_sockets] == [UPSTREAM_TOKEN]
        rewrite("mtok-newbrand-41d7")
        await _until(lambda: [s.token for s in world.upstream.stream_sockets] == ["mtok-newbrand-41d7"],
                     seconds=NOTICED)
        await _only_the_new_account_is_heard(world, ws, mention, moved_to)
        await ws.close()
    assert [a for a, _ in world.upstream.stream_connections] == [world.upstream_account.id, moved_to.id]


@pytest.mark.parametrize("how", ["file", "env"])
async def test_a_credential_removed_in_place_closes_the_connection_made_with_it(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """The account's secret file is deleted, or its environment variable unset, no policy edited:
    within about a second the connection made with that credential closes, the instance's
    events reach the app no more, and its stream stays open; put back, the credential is
    followed again. Before: the connection went on with a credential Byline can no longer read,
    nor vouch for."""
    instance: InstanceStreams = world.gateway.app[STREAMS].instance
    instance._backoff_first = 0.1
    rewrite = await _rewritable_credential(world, monkeypatch, how)
    secret = _policy_dir(world) / "secrets" / "masto.token"
    token = await world.token("alice", "masto")
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user:notification")
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        if how == "env":
            monkeypatch.delenv("BRAND_MASTODON_TOKEN")
        else:
            secret.unlink()
        await _until(lambda: not world.upstream.stream_sockets, seconds=NOTICED)
        assert await world.upstream.notify(world.upstream_account, await _mention(world, "not heard")) == 0
        await _nothing(ws)
        rewrite(UPSTREAM_TOKEN)
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        notification = await _mention(world, "heard again")
        assert await world.upstream.notify(world.upstream_account, notification) == 1
        assert await _message(ws) == {"stream": ["user:notification"], "event": "notification",
                                      "payload": json.dumps(notification)}
        await ws.close()


@pytest.mark.parametrize("waits_on", ["token_check", "log_read"])
async def test_an_event_heard_with_the_old_credential_is_not_told_after_the_change(
    world: World, monkeypatch: pytest.MonkeyPatch, waits_on: str,
) -> None:
    """The old credential's connection hears a mention while the app's stream is still checking
    its token, or reading Byline's log (a post Byline published meanwhile); then the credential
    is rewritten and the change noticed: that mention, heard as the old platform account, is
    dropped with its connection, and the next thing the app hears is the new account's
    notification. Before: it waited in the stream and was told after the change, under the
    account's name."""
    mention = await _mention(world, "for the old account only")
    moved_to = world.upstream.add_account("newbrand", "mtok-newbrand-41d7", scopes=READING)
    token = await world.token("alice", "masto")
    checking, check_on, reading, read_on = asyncio.Event(), asyncio.Event(), asyncio.Event(), asyncio.Event()
    gated = False
    find_token, account_entries = identity_service.sql.find_token, streaming_service.sql.account_entries

    async def held_check(txn: Any, token_hash: str) -> Any:
        if gated and token_hash == identity_service.hash_token(token):  # the stream's, not the poster's
            checking.set()
            await check_on.wait()
        return await find_token(txn, token_hash)

    async def held_read(txn: Any, **kwargs: Any) -> Any:
        if gated:
            reading.set()
            await read_on.wait()
        return await account_entries(txn, **kwargs)

    monkeypatch.setattr(identity_service.sql, "find_token", held_check)
    monkeypatch.setattr(streaming_service.sql, "account_entries", held_read)
    watcher = world.gateway.app[STREAMS].watcher
    async with aiohttp.ClientSession() as session:
        ws = await _socket(world, session, token, query="?stream=user:notification")
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        gated = True
        world.gateway.clock.advance(timedelta(seconds=CHECK_STANDS_SECONDS))  # the next event checks the token
        try:
            assert await world.upstream.notify(world.upstream_account, mention) == 1
            await asyncio.wait_for(checking.wait(), 8)
            if waits_on == "log_read":
                grown = watcher.size
                status, sent = await world.gateway.call(
                    None, "POST", "/api/v1/statuses", data={"status": "Meanwhile"},
                    headers={"Authorization": f"Bearer {await world.token('carol', 'masto')}"})
                assert status == 200, sent
                await world.gateway.tick()
                await _until(lambda: watcher.size != grown)
                check_on.set()
                await asyncio.wait_for(reading.wait(), 8)
            monkeypatch.setenv("BRAND_MASTODON_TOKEN", "mtok-newbrand-41d7")
            await _until(lambda: [s.token for s in world.upstream.stream_sockets] == ["mtok-newbrand-41d7"],
                         seconds=NOTICED)
        finally:
            check_on.set()  # the stream goes on (and the gateway can stop), whatever came to pass
            read_on.set()
        fresh = world.upstream.render_notification("follow", by=world.upstream.accounts["2"])
        assert await world.upstream.notify(moved_to, fresh) == 1
        assert await _message(ws) == {"stream": ["user:notification"], "event": "notification",
                                      "payload": json.dumps(fresh)}
        await ws.close()



@pytest.mark.parametrize("how", ["event_stream", "websocket"])
async def test_events_of_the_old_account_queued_for_a_slow_app_are_not_told_after_the_change(
    world: World, monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """An app's stream (server-sent events, or a WebSocket) that does not read: a batch of the
    old platform account's notifications (large ones) is taken for it at once, and its writes
    stall on the full socket with most of the batch still to write. The credential is
    rewritten, and the change noticed. When the app reads again, it hears the old account's
    notifications that were handed to its socket before the change was noticed (they were on
    their way) and none of the rest, then the new account's. Before: the whole batch was
    written after the change, under the account's name."""
    moved_to = world.upstream.add_account("newbrand", "mtok-newbrand-41d7", scopes=READING)
    token = await world.token("alice", "masto")
    sent = 450  # of 48 KiB each: more than the buffers between Byline and the app hold
    handed: list[str] = []  # the old account's notifications handed to the app's socket, in order
    at_change: list[list[str]] = []
    heard = [0]
    write, send = streaming_http._write, streaming_http._Socket._send
    forget, hear = streaming_service.Feed.forget, streaming_service.Feed.heard
    checking, check_on = asyncio.Event(), asyncio.Event()
    gated = False
    find_token = identity_service.sql.find_token

    async def written(request: Any, response: Any, data: bytes) -> None:
        handed.extend(re.findall(r'"id": "(old-[0-9]+)"', data.decode()))
        await write(request, response, data)

    async def sent_on(self: Any, message: dict[str, Any]) -> None:
        handed.extend(re.findall(r'"id": "(old-[0-9]+)"', message.get("payload", "")))
        await send(self, message)

    def noticed(self: streaming_service.Feed, stream: tuple[str, ...]) -> None:
        at_change.append(list(handed))
        forget(self, stream)

    def counted(self: streaming_service.Feed, item: Any) -> None:
        heard[0] += 1
        hear(self, item)

    async def held_check(txn: Any, token_hash: str) -> Any:
        if gated and token_hash == identity_service.hash_token(token):
            checking.set()
            await check_on.wait()
        return await find_token(txn, token_hash)

    monkeypatch.setattr(streaming_http, "_write", written)
    monkeypatch.setattr(streaming_http._Socket, "_send", sent_on)
    monkeypatch.setattr(streaming_service.Feed, "forget", noticed)
    monkeypatch.setattr(streaming_service.Feed, "heard", counted)
    monkeypatch.setattr(identity_service.sql, "find_token", held_check)
    pad = "x" * 48 * 1024
    async with contextlib.AsyncExitStack() as stack:
        if how == "websocket":
            session = await stack.enter_async_context(aiohttp.ClientSession())
            ws = await _socket(world, session, token, query="?stream=user:notification")
            stack.push_async_callback(ws.close)
        else:
            answer = await stack.enter_async_context(world.gateway.client.get(
                "/api/v1/streaming/user/notification", headers={"Authorization": f"Bearer {token}"}))
            assert answer.status == 200
        await _until(lambda: _listening(world, ("user:notification",)) == 1)
        gated = True
        world.gateway.clock.advance(timedelta(seconds=CHECK_STANDS_SECONDS))  # the next event checks the token
        try:
            for n in range(sent):  # heard while the stream checks its token: one batch, taken at once
                payload = json.dumps({"id": f"old-{n}", "type": "mention", "pad": pad})
                assert await world.upstream.emit(world.upstream_account, ("user:notification",), "notification",
                                                 payload) == 1
            await asyncio.wait_for(checking.wait(), 8)
            await _until(lambda: heard[0] == sent)
        finally:
            check_on.set()
        stalled = [-1]

        def still() -> bool:
            was, stalled[0] = stalled[0], len(handed)
            return was == len(handed)

        await _until(still)  # the app reads nothing: the writes stall on its full socket
        monkeypatch.setenv("BRAND_MASTODON_TOKEN", "mtok-newbrand-41d7")
        await _until(lambda: [s.token for s in world.upstream.stream_sockets] == ["mtok-newbrand-41d7"],
                     seconds=NOTICED)
        fresh = world.upstream.render_notification("follow", by=world.upstream.add_account("fan", "mtok-fan"))
        assert await world.upstream.notify(moved_to, fresh) == 1
        [on_their_way] = at_change
        assert 0 < len(on_their_way) < sent, len(on_their_way)  # some of the batch still to write
        told: list[str] = []
        async with asyncio.timeout(30):
            if how == "websocket":
                while (message := await _message(ws))["payload"] != json.dumps(fresh):
                    told.append(json.loads(message["payload"])["id"])
            else:
                async for event, data in _events(answer):
                    if (event, data) == ("notification", json.dumps(fresh)):
                        break
                    told.append(json.loads(data)["id"])
    assert told == on_their_way == [f"old-{n}" for n in range(len(on_their_way))]
