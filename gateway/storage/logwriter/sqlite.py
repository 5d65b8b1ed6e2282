"""The log writer on SQLite: batches one after the other on the one writer connection, each
one's works run while the COMMIT of the one before is on its way to the disk.

SQLite's writer connection runs statements in the order they are given (``WriteChain``), so
the next batch's statements queue up behind the COMMIT before and see what it committed. The
callers of a batch are still answered only once its own COMMIT has succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any, TypeVar

from gateway.storage import log as log_sql
from gateway.storage.db import SQLITE_MAX_VARIABLES, SqliteDatabase, TransactionNotBegun, WriteChain
from gateway.storage.logwriter.base import (
    INSERT_ENTRIES,
    INSERT_NODES,
    INSERT_TEXTS,
    SAVE_STATE,
    BatchQueue,
    BatchSequencer,
    RunAgain,
    Sequenced,
    Tree,
    tree_of,
)

B = TypeVar("B")
_MAX_CHAIN = 64  # batches in one run on the writer before it is let go for a moment


class SqliteLogWriter:
    """Writes the log on SQLite, pipelined: see the module's docstring."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db
        # The tree as this writer last wrote it, or None when unknown.
        self._tree: Tree | None = None

    async def run(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """A run of batches on the writer (see :meth:`_run_chain`), then a turn of the loop."""
        await self._run_chain(queue, sequencer)
        # A turn of the loop between chains, so that other processes on the same file
        # (replicas) find the writer lock free now and then.
        await asyncio.sleep(0)

    async def _run_chain(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """Batches one after the other on the SQLite writer, each one's works run while the
        COMMIT of the one before is on its way to the disk.

        The works' statements queue up behind that COMMIT on the writer connection, so they see
        what it committed. Its callers are answered only once it is known to have succeeded;
        if it failed, the batch run in the meantime is rolled back and run again from the
        start, and so it is if the tree is not at the size this writer left it at.
        """
        async with self._db.write_chain() as chain:
            left = _MAX_CHAIN
            pending: B | None = None  # written, its COMMIT under way
            committed: asyncio.Future[Any] | None = None  # that COMMIT's outcome
            begun: asyncio.Future[list[Any]] | None = None  # [BEGIN, state] queued behind it
            batch: B | None = None  # the batch being run, not yet handed on
            try:
                while True:
                    batch = queue.take()
                    while True:  # until this batch is written
                        if begun is None:
                            await chain.begin()
                            # fetchall: one round trip to the writer thread where fetchone takes three.
                            tree = tree_of(await chain.txn.fetchall(log_sql.STATE))
                        else:
                            assert self._tree is not None
                            tree = self._tree  # what the pending COMMIT leaves
                        again = False  # run the batch again (without any work that failed)
                        try:
                            run = await sequencer.sequence(batch, chain.txn, tree)
                        except (RunAgain, TransactionNotBegun):
                            again = True
                        sound = True  # what the batch was run on still holds
                        if pending is not None:
                            assert committed is not None
                            sound = await self._settle(queue, sequencer, pending, committed)
                            pending = committed = None
                        if begun is not None:
                            begin_outcome, rows = await begun
                            begun = None
                            sound = sound and not isinstance(begin_outcome, BaseException) and not isinstance(
                                rows, BaseException) and int(rows[0]["size"]) == tree.size  # else: another writer
                        if again or not sound:
                            await chain.rollback()
                            if not sound:
                                self._forget(sequencer)
                                sequencer.restart(batch)
                            continue
                        # Asked only now, once the batch before is answered: its callers go on
                        # while the query this takes is with the writer thread.
                        await self._write(chain, sequencer, await run.logged(), tree)
                        break
                    left -= 1
                    if queue.waiting() and left and not chain.contended():
                        marker, committed, begun = chain.commit_and_begin(log_sql.STATE)
                        pending, batch = batch, None
                        await marker
                        continue
                    await chain.commit()
                    done, batch = batch, None
                    queue.answer(done)
                    return
            except BaseException as exc:
                if pending is not None:
                    assert committed is not None
                    try:
                        await self._settle(queue, sequencer, pending, committed)
                    except asyncio.CancelledError:
                        queue.fail(pending, exc)
                if begun is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await begun
                self._forget(sequencer)
                if batch is not None:
                    queue.fail(batch, exc)
                if isinstance(exc, Exception):
                    return
                raise

    async def _settle(
        self, queue: BatchQueue[B], sequencer: BatchSequencer[B], batch: B, committed: asyncio.Future[Any]
    ) -> bool:
        """Wait for a batch's COMMIT; answer its callers, or tell them it failed."""
        try:
            # Shielded: were the appender stopped meanwhile, the outcome is still wanted.
            await asyncio.shield(committed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._forget(sequencer)
            queue.fail(batch, exc)
            return False
        queue.answer(batch)
        return True

    def _forget(self, sequencer: BatchSequencer[B]) -> None:
        sequencer.forget()
        self._tree = None

    async def _write(self, chain: WriteChain, sequencer: BatchSequencer[B], sequenced: Sequenced, tree: Tree) -> None:
        """Write what a batch logged: the statements queued one behind the other and their
        outcomes awaited together, few round trips to the writer thread. Entries and texts go
        in as multi-row INSERTs, which run without the GIL once bound, so the tree is extended
        here while SQLite inserts them. The marker is queued first: once it is answered the
        writer thread has the entries statement in hand and binds it before this coroutine
        takes the GIL back for the tree."""
        entries = sequenced.entries
        if entries:
            marker = chain.send("SELECT 1")
            sent = [chain.send(sql, *args) for sql, args in entries_statements(entries.rows())]
            sent += [chain.send(sql, *args) for sql, args in texts_statements(sequenced.texts.rows())]
            await marker
            growth = sequencer.grow(tree, entries)
            if growth.nodes:
                sent.append(chain.send_many(INSERT_NODES, growth.nodes))
            sent.append(chain.send_many(SAVE_STATE, [(growth.tree.size, growth.root, growth.tree.frontier)]))
            for outcome in await asyncio.gather(*sent, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
            tree = growth.tree
        self._tree = tree


def _rows_per_statement(columns: int) -> int:
    return max(1, min(512, SQLITE_MAX_VARIABLES // columns))


def entries_statements(rows: Sequence[Sequence[Any]]) -> list[tuple[str, list[Any]]]:
    """Rows of ``log_entries`` as multi-row INSERTs: (sql, arguments) to run in order.

    One statement binds its arguments at once and then runs without the GIL, where
    ``executemany`` takes the GIL back for every row: the gateway's event loop goes on with its
    Python while SQLite inserts the batch.
    """
    return _multi_row(INSERT_ENTRIES.split(" VALUES ")[0], "(?, ?, ?, ?, ?, ?, ?, ?)", rows, _rows_per_statement(8))


def texts_statements(rows: Sequence[Sequence[Any]]) -> list[tuple[str, list[Any]]]:
    """Rows of ``log_texts`` as multi-row INSERTs: (sql, arguments) to run in order."""
    return _multi_row(INSERT_TEXTS.split(" VALUES ")[0], "(?, ?, ?, ?)", rows, _rows_per_statement(4))


def _multi_row(head: str, marks: str, rows: Sequence[Sequence[Any]], per: int) -> list[tuple[str, list[Any]]]:
    """INSERTs of ``per`` rows each, then of fewer rows in powers of two: few distinct
    statements, so that SQLite's prepared statements are reused (preparing one of 512 rows
    takes longer than running it)."""
    out = []
    start = 0
    while start < len(rows):
        n = min(per, len(rows) - start)
        if n < per:
            n = 1 << (n.bit_length() - 1)
        args = list(itertools.chain.from_iterable(rows[start : start + n]))
        out.append((f"{head} VALUES {', '.join([marks] * n)}", args))
        start += n
    return out
