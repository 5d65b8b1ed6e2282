"""The log writer on SQLite: a batch a transaction on the one writer connection, run on the
event loop's thread and committed on the connection's (see ``WriterTurn``).

Its BEGIN, its works' statements, its entries, texts and tree nodes all run on the event loop's
thread, with no trip to the connection's thread and back (each waits for a turn of the busy
loop, with the writer held); the COMMIT, which waits for the disk, runs on the connection's
thread, which lets the other workers have the writer the moment it returns. The callers of a
batch are answered only once its COMMIT has succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Sequence
from typing import Any, TypeVar

from gateway.storage import log as log_sql
from gateway.storage.db import SQLITE_MAX_VARIABLES, SqliteDatabase, Txn
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


class SqliteLogWriter:
    """Writes the log on SQLite: see the module's docstring."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def run(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """One batch in one transaction, then a turn of the loop (the works the batch's callers
        and the rest of the gateway add meanwhile make the next batch)."""
        await self._run_batch(queue, sequencer)
        await asyncio.sleep(0)

    async def _run_batch(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """Run a batch's works and write what they logged (run again without a work that
        failed), commit, and answer its callers; or tell them it failed."""
        async with self._db.writer_turn() as turn:
            batch = queue.take()
            committing: asyncio.Future[None] | None = None
            try:
                while True:
                    await turn.begin()
                    tree = tree_of(await turn.txn.fetchall(log_sql.STATE))
                    try:
                        run = await sequencer.sequence(batch, turn.txn, tree)
                    except RunAgain:
                        turn.rollback()
                        continue
                    await self._write(turn.txn, sequencer, await run.logged(), tree)
                    break
                committing = turn.commit()
                # Shielded: were the appender stopped meanwhile, the outcome is still wanted.
                await asyncio.shield(committing)
            except BaseException as exc:
                if committing is None:
                    turn.rollback()
                elif not committing.done():  # stopped while the COMMIT is under way
                    with contextlib.suppress(BaseException):
                        await asyncio.shield(committing)
                if committing is not None and committing.done() and not committing.cancelled() \
                        and committing.exception() is None:
                    queue.answer(batch)  # it committed: its callers are told so, stopping or not
                else:
                    sequencer.forget()
                    queue.fail(batch, exc)
                if isinstance(exc, Exception):
                    return
                raise
            queue.answer(batch)

    @staticmethod
    async def _write(txn: Txn, sequencer: BatchSequencer[B], sequenced: Sequenced, tree: Tree) -> None:
        """Write what a batch logged: its entries and texts as multi-row INSERTs, the tree's new
        nodes and its state."""
        entries = sequenced.entries
        if not entries:
            return
        for sql, args in entries_statements(entries.rows()):
            await txn.execute(sql, *args)
        for sql, args in texts_statements(sequenced.texts.rows()):
            await txn.execute(sql, *args)
        growth = sequencer.grow(tree, entries)
        if growth.nodes:
            await txn.executemany(INSERT_NODES, growth.nodes)
        await txn.execute(SAVE_STATE, growth.tree.size, growth.root, growth.tree.frontier)


def _rows_per_statement(columns: int) -> int:
    return max(1, min(512, SQLITE_MAX_VARIABLES // columns))


def entries_statements(rows: Sequence[Sequence[Any]]) -> list[tuple[str, list[Any]]]:
    """Rows of ``log_entries`` as multi-row INSERTs: (sql, arguments) to run in order.

    One statement binds its arguments at once and inserts every row in SQLite, where
    ``executemany`` comes back to Python for each.
    """
    return _multi_row(INSERT_ENTRIES.split(" VALUES ")[0], "(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows, _rows_per_statement(9))


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
