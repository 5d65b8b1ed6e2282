"""Reads under contention, on both databases: a read begun after a commit sees it, however its
reader connection came to it (on SQLite a reader is handed straight to a waiting read with its
last snapshot still open, which the next read's first statement ends on its own trip); a
read's queries sent together come back in order, from one snapshot; and once nobody waits, no
reader keeps a snapshot open (it would hold SQLite's write-ahead log back). So for quick reads
(on SQLite on the event loop's thread), and for quick and other reads mixed, taking readers
from each other."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import asyncpg
import pytest

from gateway.appkeys import CHECKPOINTS, DB
from gateway.clock import ManualClock
from gateway.storage.db import PostgresDatabase, SqliteDatabase, open_database, together
from tests.conftest import BACKENDS, started_gateway


@pytest.mark.parametrize("kind", ["thread", "quick", "mixed"])
async def test_every_read_sees_what_committed_before_it_began(db_url: str, kind: str) -> None:
    db = await open_database(db_url)
    try:
        async with db.write() as txn:
            await txn.execute("CREATE TABLE counter (n BIGINT NOT NULL)")
            await txn.execute("INSERT INTO counter (n) VALUES (0)")

        async def read(at_least: int, quick: bool) -> tuple[int, int]:
            async with db.read(quick=quick) as txn:
                first, second = await together(
                    txn, txn.fetchone("SELECT n FROM counter"), txn.fetchone("SELECT n + 1 AS n FROM counter"))
            assert first is not None and second is not None
            assert int(second["n"]) == int(first["n"]) + 1, "one snapshot for both"
            return at_least, int(first["n"])

        for n in range(1, 60):
            async with db.write() as txn:
                await txn.execute("UPDATE counter SET n = ?", n)
            # Four times as many reads as SQLite has readers: most wait, and are handed one.
            seen = await asyncio.gather(*(read(n, kind == "quick" or (kind == "mixed" and i % 2 == 1))
                                          for i in range(16)))
            assert all(found >= wanted for wanted, found in seen), seen
        if isinstance(db, SqliteDatabase):
            await asyncio.sleep(0.1)  # the last reads' ends, which nobody waited for
            for conn in db._all[1:]:
                assert not conn._conn.in_transaction, "a reader kept a snapshot open while idle"
    finally:
        await db.close()


async def test_a_single_statement_read_sees_the_last_commit_and_runs_no_second(db_url: str) -> None:
    """``read(single=True)``: one statement, with no BEGIN before it nor anything to end after
    (on SQLite on the event loop's thread), sees every commit before it and leaves no
    transaction open; a second statement is refused."""
    db = await open_database(db_url)
    try:
        async with db.write() as txn:
            await txn.execute("CREATE TABLE counter (n BIGINT NOT NULL)")
            await txn.execute("INSERT INTO counter (n) VALUES (0)")
        for n in range(1, 20):
            async with db.write() as txn:
                await txn.execute("UPDATE counter SET n = ?", n)
            async with db.read(single=True) as txn:
                row = await txn.fetchone("SELECT n FROM counter")
            assert row is not None and int(row["n"]) == n
            if isinstance(db, SqliteDatabase):
                assert not any(conn._conn.in_transaction for conn in db._idle_readers)
        with pytest.raises(RuntimeError, match="second statement"):
            async with db.read(single=True) as txn:
                await txn.fetchone("SELECT n FROM counter")
                await txn.fetchone("SELECT n FROM counter")
        async with db.read() as txn:  # the connection went back clean
            row = await txn.fetchone("SELECT n FROM counter")
        assert row is not None and int(row["n"]) == 19
    finally:
        await db.close()


@pytest.mark.parametrize("quick", [False, True])
async def test_queries_sent_together_after_one_that_fails_are_not_left_unawaited(db_url: str, quick: bool) -> None:
    """When one of a read's queries sent together fails (or the request waiting on them is
    cancelled), those after it were never started: each is closed, not left for the collector
    to warn of ("coroutine was never awaited", which fails a run under pytest's warnings)."""
    db = await open_database(db_url)
    try:
        async with db.write() as txn:
            await txn.execute("CREATE TABLE counter (n BIGINT NOT NULL)")
        with pytest.raises(Exception, match="no_such_table"):
            async with db.read(quick=quick) as txn:
                second = txn.fetchone("SELECT n FROM counter")
                await together(txn, txn.fetchone("SELECT n FROM no_such_table"), second)
        assert inspect.getcoroutinestate(second) == inspect.CORO_CLOSED
    finally:
        await db.close()


@pytest.mark.parametrize("db_url", [b for b in BACKENDS if b == "postgresql"], indirect=True)
async def test_pooled_connections_hold_nothing_past_their_transaction(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A pooled PostgreSQL connection goes back without asyncpg's reset query (a round trip a
    transaction), because nothing of the gateway's outlives its transaction on one: after posts,
    approvals and a checkpoint signed under its advisory lock, none of the gateway's pooled
    connections holds an advisory lock or sits in a transaction."""
    async with started_gateway(db_url, policy_dir, clock) as gw:
        held = await gw.submit("alice", "cosigned", "Launch on Monday")
        for approver in ("bob", "carol"):
            status, body = await gw.act(approver, held["id"], "approve")
            assert status == 200, body
        await gw.submit("alice", "direct", "Hello")
        await gw.tick()
        await gw.app[CHECKPOINTS].sign_now()
        db = gw.app[DB]
        assert isinstance(db, PostgresDatabase) and db.own_backends
        conn = await asyncpg.connect(db.dsn)
        try:
            locks = await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = ANY($1)",
                                        list(db.own_backends))
            states = await conn.fetch("SELECT state FROM pg_stat_activity WHERE pid = ANY($1)", list(db.own_backends))
        finally:
            await conn.close()
    assert locks == 0
    assert {row["state"] for row in states} <= {"idle"}
