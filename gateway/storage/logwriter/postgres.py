"""The log writer on PostgreSQL: one batch in one transaction, committed before the next begins.

The tree state row is locked ``FOR UPDATE`` at the start of each batch, so several gateways
(replicas) sharing the database sequence one after the other.
"""

from __future__ import annotations

from typing import TypeVar

from gateway.storage import log as log_sql
from gateway.storage.db import Database, Txn
from gateway.storage.logwriter.base import (
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

WRITE = (
    "WITH entries AS (INSERT INTO log_entries (idx, leaf_hash, entry, type, chain, post_id, account, actor, ts) "
    "SELECT idx, leaf_hash, entry, type, chain, post_id, account, actor, ?::bigint FROM unnest("
    "?::bigint[], ?::bytea[], ?::bytea[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[]) "
    "AS e(idx, leaf_hash, entry, type, chain, post_id, account, actor)), "
    "texts AS (INSERT INTO log_texts (idx, text_hash, salt, text) "
    "SELECT * FROM unnest(?::bigint[], ?::text[], ?::bytea[], ?::text[])), "
    "nodes AS (INSERT INTO log_nodes (level, idx, hash) SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::bytea[])) "
    "UPDATE log_state SET size = ?, root = ?, frontier = ? WHERE id = 1"
)
"""What a batch logged, in one statement: its entries, its committed texts and the tree's new
nodes, each as arrays, and the tree's new state. These were four statements (the INSERTs run
once a row by the server), and the log writer waits for each round trip in turn while its
callers wait for it: 10.7 ms a batch on average in benchmark 2 (``bench.scheduler``), 2.5 ms
now."""


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
        """Write what a batch logged, and the tree grown by its entries: one statement, one
        round trip to the server (see :data:`WRITE`)."""
        entries = sequenced.entries
        if not entries:
            return
        growth = sequencer.grow(tree, entries)
        texts = sequenced.texts
        nodes = growth.nodes
        n = len(entries)
        await txn.execute(
            WRITE, entries.ts,
            list(range(entries.first, entries.first + n)), entries.leaf_hashes, entries.entries, entries.types,
            entries.chains, entries.post_ids, entries.accounts, entries.actors,
            *texts.columns(),
            [node[0] for node in nodes], [node[1] for node in nodes], [node[2] for node in nodes],
            growth.tree.size, growth.root, growth.tree.frontier,
        )
