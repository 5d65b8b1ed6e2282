"""The database goes away and comes back (issue 17), on PostgreSQL.

A TCP proxy in the test stands between the gateway and PostgreSQL, so that the database can be
cut off (every connection dropped, new ones refused) and restored without touching the
PostgreSQL the machine shares. While it is cut off, requests get a 503 with a clear JSON
message, ``/readyz`` fails and nothing half-written stays; once it is back, the gateway carries
on by itself: its background loops resume, and a post that fell due meanwhile goes out once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import WAKEUPS, make_app
from gateway.appkeys import CHECKPOINTS, DB, HOUSEKEEPER, IDENTITY, NOTIFIER, POLICIES, PUBLISHER, REGISTRY
from gateway.clock import ManualClock, now_micros
from gateway.storage.db import DatabaseUnavailable, PostgresDatabase, _raise_if_gone, open_database, unavailable
from tests.audit.logtools import byline
from tests.conftest import PG_DSN, USERS, Gateway, GatewayTestServer, make_settings, write_policy

DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
"""
DELAYED = """
    account: later
    platform: sandbox
    handle: "@later"
    tier: delayed
    owner: alice
    delay: 10m
"""
BACK_WITHIN: Final = 15.0
"""How soon after the database is back the gateway must be whole again, by itself."""


class Proxy:
    """A TCP proxy to PostgreSQL that the test can cut (every connection dropped, new ones
    refused: the port is closed) and restore (the same port listens again)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a cut)."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._open):
            writer.transport.abort()
        self._open.clear()
        await self._server.wait_closed()
        self._server = None

    async def close(self) -> None:
        """Stop for good."""
        if self._server is not None:
            await self.cut()
        for task in list(self._pipes):
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._open.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        sink.transport.abort()
        self._open.discard(sink)


@pytest.fixture(params=["postgresql"] if PG_DSN else [])
async def proxied(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, Proxy]]:
    """A fresh PostgreSQL schema, and a URL of it through a proxy the test controls."""
    assert PG_DSN is not None
    parts = urlsplit(PG_DSN)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    await proxy.start()
    schema = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    user = f"{parts.username}@" if parts.username else ""
    netloc = f"{user}127.0.0.1:{proxy.port}"
    query = f"{parts.query}&search_path={schema}" if parts.query else f"search_path={schema}"
    try:
        yield urlunsplit((parts.scheme, netloc, parts.path, query, "")), proxy
    finally:
        await proxy.close()
        conn = await asyncpg.connect(PG_DSN)
        try:
            await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def running(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway with every background part running, each on a short interval."""
    config = make_settings(db_url, policy_dir).model_copy(update={
        "scheduler_interval_seconds": 0.2, "policy_reload_seconds": 0.3, "checkpoint_interval_seconds": 0.3,
        "notify_interval_seconds": 0.3, "housekeeping_interval_seconds": 0.3,
    })
    app = make_app(config, clock=clock, run_publisher=True)
    client: TestClient[Any, Any] = TestClient(GatewayTestServer(app, config))
    await client.start_server()
    try:
        gw = Gateway(client=client, app=app, clock=clock)
        for user in USERS:
            gw.tokens[user] = await app[IDENTITY].create(user=user)
        yield gw
    finally:
        await client.close()


async def _until(check: Callable[[], Any], what: str, seconds: float = BACK_WITHIN) -> None:
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.05)


async def _ready(gw: Gateway) -> bool:
    return (await gw.client.get("/readyz")).status == 200


def _background(gw: Gateway) -> dict[str, bool]:
    """Whether each background loop of the gateway is still running."""
    app = gw.app
    parts: dict[str, Any] = {"publisher": app[PUBLISHER], "policies": app[POLICIES], "checkpoints": app[CHECKPOINTS],
                             "wakeups": app[WAKEUPS], "notify": app[NOTIFIER], "housekeeping": app[HOUSEKEEPER]}
    return {name: part._task is not None and not part._task.done() for name, part in parts.items()}


async def test_the_database_goes_away_and_comes_back(
    proxied: tuple[str, Proxy], tmp_path: Path, clock: ManualClock,
) -> None:
    """Cut off: every request that needs the database is a 503 with a clear JSON message (never a
    500), ``/readyz`` fails, a refused post leaves nothing behind. Back: ``/readyz`` passes, every
    background loop is still running and does its work again (a policy change is recorded, a
    checkpoint signed, the wake-ups listen), the post that fell due meanwhile is published once,
    and the log verifies."""
    db_url, proxy = proxied
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "brand", DIRECT)
    write_policy(policies, "later", DELAYED)
    async with running(db_url, policies, clock) as gw:
        waiting = await gw.submit("alice", "later", "Falls due while the database is away")
        assert waiting["state"] == "scheduled"
        await gw.submit("alice", "brand", "Before the cut")
        await _until(lambda: _published_count(gw, "brand", 1), "the first post is out")

        await proxy.cut()
        clock.advance(timedelta(minutes=11))  # the delayed post falls due meanwhile
        status, body = await gw.call("alice", "POST", "/v1/posts", {"account": "brand", "text": "During the cut"})
        assert status == 503, body
        assert body == {"error": "unavailable", "message": "the database is not answering; try again in a moment",
                        "retry_after": 5}
        for path in (f"/v1/posts/{waiting['id']}", "/v1/posts", "/log/checkpoint"):
            status, body = await gw.call("alice", "GET", path)
            assert (status, body["error"]) == (503, "unavailable"), (path, body)
        resp = await gw.client.get("/readyz")
        ready = await resp.json()
        assert resp.status == 503 and ready["problems"]["database"].startswith("the database is not answering")
        assert (await gw.client.get("/healthz")).status == 200, "the process itself is up"
        await asyncio.sleep(1.5)  # every loop meets the missing database a few times
        write_policy(policies, "brand", DIRECT.replace("owner: alice", "owner: alice\n    writers: [alice, carol]"))
        assert _background(gw) == dict.fromkeys(_background(gw), True)

        await proxy.start()
        await _until(lambda: _ready(gw), "/readyz passes again")
        assert _background(gw) == dict.fromkeys(_background(gw), True)
        await _until(lambda: _published_count(gw, "later", 1), "the post that fell due meanwhile is out")

        async def recorded() -> bool:
            loaded = gw.app[REGISTRY].get("brand")
            return loaded is not None and "carol" in loaded.policy.writers

        await _until(recorded, "the policy reload records the change made during the cut")

        async def signed_all() -> bool:
            note = await (await gw.client.get("/log/checkpoint")).read()
            return int(note.split(b"\n")[1]) == await gw.log_size()

        await _until(signed_all, "a checkpoint of the whole log is signed")

        async def listening() -> bool:
            return bool(gw.app[WAKEUPS].listening)

        await _until(listening, "the wake-ups listen again")
        status, body = await gw.call("alice", "POST", "/v1/posts", {"account": "brand", "text": "After the cut"})
        assert status == 201, body
        await _until(lambda: _published_count(gw, "brand", 2), "a new post goes out")
        await asyncio.sleep(0.5)  # time for a second copy, were one to go out
        assert [p["text"] for p in await gw.timeline("later")] == ["Falls due while the database is away"]
        texts = [p["text"] for p in await gw.timeline("brand")]
        assert texts == ["After the cut", "Before the cut"], "the post refused during the cut left nothing"
        async with gw.app[DB].read() as txn:
            refused = await txn.fetchall("SELECT id FROM posts WHERE text = ?", "During the cut")
        assert refused == [], "nothing of the post refused during the cut was kept"
        await gw.app[CHECKPOINTS].sign_now()
        key = gw.app[CHECKPOINTS].verifier_key()
        url = str(gw.client.make_url("")).rstrip("/")
        result = await byline("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress")
        assert result.code == 0, result.text


async def _published_count(gw: Gateway, account: str, count: int) -> bool:
    return len(await gw.timeline(account)) >= count


async def test_a_cut_under_load_leaves_nothing_half_written_and_publishes_each_post_once(
    proxied: tuple[str, Proxy], tmp_path: Path, clock: ManualClock,
) -> None:
    """Posts come in and go out while the database is cut off and restored: every answer is a
    201 or a 503, never a 500; each post kept has its entries in the log and each entry its post;
    every post answered 201 is kept; every post kept goes out exactly once (a publish cut off
    mid-way is recovered when its lease runs out, and found on the platform, not sent again); the
    log verifies."""
    db_url, proxy = proxied
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "brand", DIRECT)
    statuses: dict[str, int] = {}
    async with running(db_url, policies, clock) as gw:

        async def post(text: str) -> None:
            status, body = await gw.call("alice", "POST", "/v1/posts", {"account": "brand", "text": text})
            statuses[text] = status
            assert status in (201, 503), body

        async def wave(n: int) -> None:
            await asyncio.gather(*(post(f"Wave {n} post {i}") for i in range(20)))

        waves = [asyncio.create_task(wave(n)) for n in range(3)]
        await asyncio.sleep(0.05)
        await proxy.cut()
        waves += [asyncio.create_task(wave(n)) for n in range(3, 5)]
        await asyncio.gather(*waves)
        await proxy.start()
        await _until(lambda: _ready(gw), "/readyz passes again")
        waves = [asyncio.create_task(wave(n)) for n in range(5, 7)]
        await asyncio.gather(*waves)
        clock.advance(timedelta(seconds=gw.app[PUBLISHER]._lease / 1_000_000 + 1))  # leases cut off run out

        async def settled() -> bool:
            # Time passes while we wait, as it would: a publish the cut made fail is deferred a
            # few seconds by the gateway's clock, and, written after the advance above (under
            # load it can be), would otherwise never come due on this test's manual clock.
            clock.advance(timedelta(seconds=0.25))
            async with gw.app[DB].read() as txn:
                row = await txn.fetchone("SELECT COUNT(*) AS n FROM posts WHERE state IN ('scheduled', 'publishing')")
            return row is not None and int(row["n"]) == 0

        try:
            await _until(settled, "every post kept has gone out")
        except AssertionError as failed:  # what was left, and where the publisher stands, to say why
            async with gw.app[DB].read() as txn:
                left = await txn.fetchall(
                    "SELECT id, state, attempts, publish_at, lease_until, last_error FROM posts"
                    " WHERE state IN ('scheduled', 'publishing')")
            publisher = gw.app[PUBLISHER]
            raise AssertionError(f"{failed}; left: {[dict(r) for r in left]}; now {now_micros(clock)};"
                                 f" in flight here {sorted(publisher._inflight)}, claimed {publisher._claimed},"
                                 f" sending {len(publisher._sending)},"
                                 f" unhealthy {publisher._platforms.unhealthy}") from failed
        async with gw.app[DB].read() as txn:
            kept = {str(r["text"]): str(r["id"]) for r in await txn.fetchall("SELECT id, text FROM posts")}
            states = {str(r["state"]) for r in await txn.fetchall("SELECT DISTINCT state FROM posts")}
            logged = {str(r["post_id"]) for r in await txn.fetchall(
                "SELECT DISTINCT post_id FROM log_entries WHERE post_id IS NOT NULL")}
            submitted = {str(r["post_id"]) for r in await txn.fetchall(
                "SELECT post_id FROM log_entries WHERE type = 'post.submitted'")}
        assert 503 in statuses.values() and 201 in statuses.values()
        assert {t for t, s in statuses.items() if s == 201} <= set(kept), "a post answered 201 was lost"
        assert set(kept.values()) == logged == submitted, "a post without its entries, or entries without their post"
        assert states == {"published"}
        out = [p["text"] for p in await gw.timeline("brand")]
        assert sorted(out) == sorted(kept), "each post kept is on the platform exactly once"
        await gw.app[CHECKPOINTS].sign_now()
        key = gw.app[CHECKPOINTS].verifier_key()
        url = str(gw.client.make_url("")).rstrip("/")
        result = await byline("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress")
        assert result.code == 0, result.text


async def test_a_wrong_statement_is_not_taken_for_a_database_gone(proxied: tuple[str, Proxy]) -> None:
    """A statement PostgreSQL refuses raises its own error, unchanged, and is not "unavailable";
    a database cut off raises :class:`DatabaseUnavailable` from reads, writes and new connections;
    an ``OSError`` from elsewhere (a file, a platform) is not taken for the database's."""
    db_url, proxy = proxied
    db = await open_database(db_url)
    assert isinstance(db, PostgresDatabase)
    try:
        with pytest.raises(asyncpg.UndefinedColumnError) as wrong:
            async with db.write() as txn:
                await txn.execute("UPDATE log_state SET no_such_column = 1")
        assert not unavailable(wrong.value)
        await proxy.cut()
        for opening in (db.read, db.write):
            with pytest.raises(DatabaseUnavailable):
                async with opening() as txn:
                    await txn.fetchone("SELECT 1 AS one")
        with pytest.raises(DatabaseUnavailable):
            await db.connect_apart()
        assert not unavailable(FileNotFoundError("media/1.png"))
        await proxy.start()
        async with db.read() as txn:
            row = await txn.fetchone("SELECT 1 AS one")
        assert row is not None and row["one"] == 1
    finally:
        await db.close()


async def test_asyncpgs_confusion_on_a_connection_that_broke_is_the_database_gone(
    proxied: tuple[str, Proxy],
) -> None:
    """A server restarting can break a connection in the middle of an operation, and asyncpg
    then says so as an ``InternalClientError`` or ``InterfaceError``: on a connection now closed
    that is the database gone (503, not a 500); on a live one it is left as it is."""
    db_url, proxy = proxied
    conn = await asyncpg.connect(db_url)
    confusion = asyncpg.InternalClientError("cannot switch to state 15; another operation (16) is in progress")
    try:
        _raise_if_gone(confusion, conn)  # a live connection: not the database's absence
        await proxy.cut()
        with contextlib.suppress(Exception):
            await conn.fetchval("SELECT 1")
        assert conn.is_closed()
        for exc in (confusion, asyncpg.InterfaceError("cannot perform operation")):
            with pytest.raises(DatabaseUnavailable):
                _raise_if_gone(exc, conn)
    finally:
        await proxy.start()
        await conn.close()
