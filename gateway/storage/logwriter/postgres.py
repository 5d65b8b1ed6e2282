"""The log writer on PostgreSQL: one batch in one transaction, committed before the next begins.

The tree state row is locked ``FOR UPDATE`` at the start of each batch, so several gateways
(replicas) sharing the database sequence one after the other.
"""

from __future__ import annotations

from typing import TypeVar

from gateway.storage import log as log_sql
from gateway.storage.db import Database, Txn
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
LOCK_STATE = log_sql.STATE + " FOR UPDATE"
"""The tree state, locked for the transaction: the one row that serializes sequencing."""


class PostgresLogWriter:
    """Writes the log on PostgreSQL, a batch a transaction: see the module's docstring."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(self, queue: BatchQueue[B], sequencer: BatchSequencer[B]) -> None:
        """One batch in one transaction, committed before the next begins."""
        batch = queue.take()
        try:
            while True:
                try:
                    async with self._db.write() as txn:
                        tree = tree_of(await txn.fetchall(LOCK_STATE))
                        run = await sequencer.sequence(batch, txn, tree)
                        await self._write(txn, sequencer, await run.logged(), tree)
                except RunAgain:
                    continue
                break
        except BaseException as exc:
            sequencer.forget()
            queue.fail(batch, exc)
            if isinstance(exc, Exception):
                return
            raise
        queue.answer(batch)

    async def _write(self, txn: Txn, sequencer: BatchSequencer[B], sequenced: Sequenced, tree: Tree) -> None:
        """Write what a batch logged, and the tree grown by its entries."""
        entries = sequenced.entries
        if not entries:
            return
        await txn.executemany(INSERT_ENTRIES, entries.rows())
        if sequenced.texts:
            await txn.executemany(INSERT_TEXTS, sequenced.texts.rows())
        growth = sequencer.grow(tree, entries)
        if growth.nodes:
            await txn.executemany(INSERT_NODES, growth.nodes)
        # executemany of one row: no row count wanted.
        await txn.executemany(SAVE_STATE, [(growth.tree.size, growth.root, growth.tree.frontier)])
