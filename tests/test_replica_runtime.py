"""Several gateways on one database at run time (issue 17): checkpoints signed by one replica at
a time, and wake-ups that cross replicas (PostgreSQL's LISTEN/NOTIFY).

Gateways whose policy directories sit beside each other share the log key, as replicas do
(see tests/conftest.py); a gateway given its own copy of the key stands for a replica on
another host, with its own file beside the key.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import random
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Final

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from gateway.app import WAKEUPS, make_app
from gateway.appkeys import CHECKPOINTS, DB, IDENTITY, LIVE, PEOPLE, POLICIES, REGISTRY
from gateway.audit import merkle
from gateway.audit.nodes import stored_nodes as real_nodes
from gateway.audit.note import open_checkpoint
from gateway.audit.note import sign_note as real_sign
from gateway.clock import ManualClock
from gateway.services.checkpoints import signed_state_path
from tests.conftest import (
    PG_DSN,
    USERS,
    Gateway,
    GatewayTestServer,
    make_policy_dir,
    make_settings,
    started_gateway,
    write_policy,
)
from tests.pages.conftest import Pages, password_of
from tests.pages.test_queue_pages import read_event

DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    writers: [alice, carol]
"""


async def _leaves(gw: Gateway) -> list[bytes]:
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT leaf_hash FROM log_entries ORDER BY idx")
    return [bytes(r["leaf_hash"]) for r in rows]


async def test_replicas_signing_at_once_never_sign_inconsistent_checkpoints(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two gateways (one with its own copy of the key, as on another host) sign again and again
    while posts come in through both: in the order they were signed, every checkpoint is of a
    tree at least as large as the one before and a prefix of the one log (so every pair is
    consistent), and the database and both key files end on the newest."""
    signed: list[tuple[int, bytes]] = []

    def recording(text: str, signer: Any) -> bytes:
        _origin, size, root = text.split("\n")[:3]
        signed.append((int(size), base64.b64decode(root)))
        return real_sign(text, signer)

    pauses = random.Random(17)

    async def slow_nodes(txn: Any, wanted: Any) -> Any:
        # A replica may pause anywhere (a slow disk, a busy host): here, between reading the tree
        # and signing it, where another replica may sign a larger tree meanwhile.
        await asyncio.sleep(pauses.uniform(0, 0.01))
        return await real_nodes(txn, wanted)

    monkeypatch.setattr("gateway.services.checkpoints.sign_note", recording)
    monkeypatch.setattr("gateway.services.checkpoints.stored_nodes", slow_nodes)
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    elsewhere = tmp_path / "host-b"
    elsewhere.mkdir()
    second = make_policy_dir(elsewhere, {"brand": DIRECT}, "policies")
    async with started_gateway(db_url, first, clock) as a:
        shutil.copy2(tmp_path / "log.key", elsewhere / "log.key")
        async with started_gateway(db_url, second, clock) as b:
            stop = asyncio.Event()

            async def posting(gw: Gateway, who: str) -> None:
                n = 0
                while not stop.is_set():
                    await gw.submit(who, "brand", f"{who} {n}")
                    n += 1

            async def signing(gw: Gateway) -> None:
                for _ in range(40):
                    await gw.app[CHECKPOINTS].sign_now()
                    await asyncio.sleep(0)

            writers = [asyncio.create_task(posting(a, "alice")), asyncio.create_task(posting(b, "carol"))]
            try:
                await asyncio.gather(signing(a), signing(b), signing(a), signing(b))
            finally:
                stop.set()
                await asyncio.gather(*writers)
            for gw in (a, b):  # nothing new: each finds the last one signed, and keeps it beside its key
                await gw.app[CHECKPOINTS].sign_now()
            leaves = await _leaves(a)
            async with a.app[DB].read() as txn:
                row = await txn.fetchone("SELECT size, root, note FROM log_signed WHERE id = 1")
                latest = await txn.fetchone("SELECT MAX(size) AS size FROM log_checkpoints")
    assert len(signed) > 5, "the replicas signed again and again"
    sizes = [size for size, _ in signed]
    assert sizes == sorted(set(sizes)), f"a tree signed twice, or a smaller one after a larger one: {sizes}"
    for size, root in signed:
        assert root == merkle.root_from_leaves(leaves[:size]), f"the checkpoint of {size} is not of the one log"
    newest = signed[-1]
    assert row is not None and (int(row["size"]), bytes(row["root"])) == newest
    assert latest is not None and int(latest["size"]) == newest[0]
    verifier = a.app[CHECKPOINTS]._verifier
    for key_file in (tmp_path / "log.key", elsewhere / "log.key"):
        note = signed_state_path(key_file).read_bytes()
        checkpoint, _ = open_checkpoint(note, [verifier], origin=a.app[CHECKPOINTS].origin)
        assert (checkpoint.size, checkpoint.root_hash) == newest, key_file


# -- wake-ups across replicas (PostgreSQL) --------------------------------------------------------

COSIGNED = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    approvals:
      from: [bob, dave]
      required: 1
"""
POLL: Final = 60.0
"""Every part's own interval in these tests: only a notification explains a prompt wake-up."""
PROMPT: Final = 5.0
"""Well within the interval: how soon the other replica must have acted."""


@pytest.fixture(params=["postgresql"] if PG_DSN else [])
async def pg_url(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema (LISTEN/NOTIFY is PostgreSQL's; on SQLite one process wakes itself)."""
    assert PG_DSN is not None
    schema = "t_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
    finally:
        await conn.close()
    yield f"{PG_DSN}{'&' if '?' in PG_DSN else '?'}search_path={schema}"
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def replica(db_url: str, policy_dir: Path, clock: ManualClock, **settings: Any) -> AsyncIterator[Gateway]:
    """A gateway with its background parts running, each polling only every ``POLL`` seconds."""
    settings = {"scheduler_interval_seconds": POLL, "policy_reload_seconds": POLL, **settings}
    config = make_settings(db_url, policy_dir).model_copy(update=settings)
    app = make_app(config, clock=clock, run_publisher=True)
    client: TestClient[Any, Any] = TestClient(GatewayTestServer(app, config))
    await client.start_server()
    try:
        app[LIVE].interval = POLL
        gw = Gateway(client=client, app=app, clock=clock)
        for user in USERS:
            gw.tokens[user] = await app[IDENTITY].create(user=user)
        await _until(lambda: app[WAKEUPS].listening, "the replica listens")
        yield gw
    finally:
        await client.close()


async def _until(check: Callable[[], bool], what: str, seconds: float = PROMPT) -> float:
    """Wait until ``check()`` holds; how long it took. Fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s: {what}"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def _state(gw: Gateway, post_id: str) -> str:
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state FROM posts WHERE id = ?", post_id)
    assert row is not None
    return str(row["state"])


async def _published_within(gw: Gateway, post_id: str) -> float:
    started = time.monotonic()
    while await _state(gw, post_id) != "published":
        assert time.monotonic() - started < PROMPT, f"not published within {PROMPT} s (the poll is {POLL} s)"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def _cut_listening(gw: Gateway) -> None:
    """Have PostgreSQL end the gateway's listening connection; wait until it listens anew."""
    wakeups = gw.app[WAKEUPS]
    pid = wakeups.backend_pid
    conn = await asyncpg.connect(PG_DSN)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()

    def again() -> bool:
        return wakeups.listening and wakeups.backend_pid != pid

    await _until(again, "the gateway listens again on a new connection")


async def test_an_approval_on_one_replica_wakes_the_publisher_of_another(
    pg_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """A post approved through A (which publishes nothing) goes out through B at once, not at
    B's next poll a minute later; and again after B's listening connection was cut."""
    first = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-b")
    async with started_gateway(pg_url, first, clock) as a, replica(pg_url, second, clock) as b:
        for round_ in range(2):
            post = await a.submit("alice", "brand", f"Approved on A, published by B ({round_})")
            assert post["state"] == "held"
            status, body = await a.act("bob", post["id"], "approve")
            assert status == 200, body
            await _published_within(a, post["id"])
            if round_ == 0:  # the database drops B's listening connection: B listens again
                await _cut_listening(b)
        # Both went out at the same (hand-moved) time: their order on the timeline is not the point.
        assert sorted(p["text"] for p in await b.timeline("brand")) == [
            "Approved on A, published by B (0)", "Approved on A, published by B (1)"]


async def test_a_policy_version_recorded_on_one_replica_is_in_force_on_another_at_once(
    pg_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """An admin's change reaches A, which records it: B puts it in force at once, not at its
    next reload a minute later (B's own file, not yet changed, is then reported as drift)."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(pg_url, first, clock) as a, replica(pg_url, second, clock) as b:
        before = b.app[REGISTRY].get("brand")
        assert before is not None
        write_policy(first, "brand", COSIGNED)
        assert await a.sync_policies() == ["brand"]
        recorded = a.app[REGISTRY].get("brand")
        assert recorded is not None and recorded.sha256 != before.sha256

        def in_force_on_b() -> bool:
            loaded = b.app[REGISTRY].get("brand")
            return loaded is not None and loaded.sha256 == recorded.sha256

        await _until(in_force_on_b, "B enforces the version A recorded")
        assert b.app[POLICIES].drift["brand"].version == 2


async def test_a_live_page_on_one_replica_hears_a_change_made_on_another_at_once(
    pg_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Bob's queue page is open on B; a post held for him is submitted through A: his stream says
    so at once, though B's watcher reads the log only once a minute by itself."""
    first = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-b")
    async with started_gateway(pg_url, first, clock) as a, replica(pg_url, second, clock) as b:
        for name in USERS:
            await b.app[PEOPLE].add(name, password_of(name), email=f"{name}@example.org")
        pages = Pages(gateway=b, base=str(b.client.make_url("")).rstrip("/"))
        try:
            bob = await pages.person("bob")
            async with bob.session.get(pages.base + "/queue/events") as resp:
                assert resp.status == 200
                assert await resp.content.readline() == b"retry: 5000\n"
                await asyncio.sleep(0.2)  # the stream is listening
                started = time.monotonic()
                await a.submit("alice", "brand", "Held for bob, submitted through A")
                assert await read_event(resp, PROMPT) == "queue"
                assert time.monotonic() - started < PROMPT
        finally:
            for session in pages._sessions:
                await session.close()
