"""A task cancelled in the middle of a transaction leaves no transaction open behind it: the
connection it held is clean for the next task (a reader of a live page that goes away, a
request cut off by its client). On both databases."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.storage.db import Database, open_database


async def _cancel_inside(db: Database, *, write: bool, after: int, quick: bool = False) -> None:
    """Start a transaction and cancel its task after ``after`` turns of the event loop."""

    async def work() -> None:
        transaction = db.write() if write else db.read(quick=quick)
        async with transaction as txn:
            await txn.fetchone("SELECT 1 AS one")
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    for _ in range(after):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def test_cancelled_transactions_leave_every_connection_clean(db_url: str) -> None:
    """Cancelled at every point of a read and of a write, the next transactions all begin."""
    db = await open_database(db_url)
    try:
        for write, quick in ((False, False), (False, True), (True, False)):
            for after in range(12):
                await _cancel_inside(db, write=write, after=after, quick=quick)
        # Every reader connection at once (SQLite keeps four), then the writer: each one begins.
        async def read(quick: bool) -> int:
            async with db.read(quick=quick) as txn:
                row = await txn.fetchone("SELECT 1 AS one")
                await asyncio.sleep(0.01)
                return int(row["one"]) if row else 0

        assert await asyncio.gather(*(read(n % 2 == 0) for n in range(8))) == [1] * 8
        async with db.write() as txn:
            row = await txn.fetchone("SELECT 2 AS two")
        assert row is not None and row["two"] == 2
    finally:
        await db.close()
