"""Reads under contention, on both databases: a read begun after a commit sees it, however its
reader connection came to it (on SQLite a reader is handed straight to a waiting read with its
last snapshot still open, which the next read's first statement ends on its own trip); a
read's queries sent together come back in order, from one snapshot; and once nobody waits, no
reader keeps a snapshot open (it would hold SQLite's write-ahead log back). So for quick reads
(on SQLite on the event loop's thread), and for quick and other reads mixed, taking readers
from each other."""

from __future__ import annotations

import asyncio

import pytest

from gateway.storage.db import SqliteDatabase, open_database, together


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
    """``read(single=True)``: one statement (on PostgreSQL without BEGIN and COMMIT, on SQLite
    on the event loop's thread) sees every commit before it; a second statement is refused."""
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
        with pytest.raises(RuntimeError, match="second statement"):
            async with db.read(single=True) as txn:
                await txn.fetchone("SELECT n FROM counter")
                await txn.fetchone("SELECT n FROM counter")
        async with db.read() as txn:  # the connection went back clean
            row = await txn.fetchone("SELECT n FROM counter")
        assert row is not None and int(row["n"]) == 19
    finally:
        await db.close()
