"""The single writer: group-committed state changes together with their log entries.

Every change of state in the gateway is a *work*: an async function that reads and writes
through a ``LogTxn`` and appends its events (see ``gateway.audit.sequencer``). The appender
drains a queue of works (``gateway.audit.queue``), runs a batch of them in one database
transaction, sequences their entries, extends the Merkle tree, commits once, and only then
answers each caller. A work that fails (a conflict, a refused transition) is taken out and the
rest of the batch is run again, so one caller's error never leaks into another's result.

On PostgreSQL the tree state row is locked ``FOR UPDATE`` at the start of each batch, so
several replicas sequence one after the other. On SQLite, whose one writer connection runs
statements in the order they are given, the next batch's works already run while the batch
before is being committed (its statements wait behind that COMMIT), and their callers are
still answered only once their own batch has committed (see ``Appender._run_chain``).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, TypeVar

from gateway.audit.queue import Batch, WorkQueue
from gateway.audit.sequencer import LogTxn, LooseText, Sequencer, Work
from gateway.clock import Clock
from gateway.storage import log as log_sql
from gateway.storage.db import Database, SqliteDatabase, TransactionNotBegun, Txn, WriteChain
from gateway.storage.logwriter.base import RunAgain, Sequenced, Tree
from gateway.tasks import cancel_task

__all__ = ["Appender", "LogTxn", "LooseText", "Work"]

T = TypeVar("T")
_MAX_CHAIN = 64  # batches in one run on the SQLite writer before it is let go for a moment
_Batch = Batch[Work[Any]]


class Appender:
    """Runs works in group-committed batches; the only writer of posts and the log."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 512) -> None:
        self._db = db
        self._queue: WorkQueue[Work[Any]] = WorkQueue(max_batch=max_batch)
        self._sequencer = Sequencer(clock)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The tree as this appender last wrote it, or None when unknown.
        self._tree: Tree | None = None

    @property
    def batches(self) -> int:
        """Batches committed and answered since the appender was made."""
        return self._queue.batches

    async def start(self) -> None:
        """Start draining the queue."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="byline-appender")

    async def stop(self) -> None:
        """Stop: a batch that is committing is still answered; the rest fail."""
        await cancel_task(self._task)
        self._task = None
        self._queue.shut()

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        """Run ``work`` in the next batch; await the result, given once the batch has committed."""
        task, loop = self._task, self._loop
        if task is None or loop is None or task.done():
            raise RuntimeError("the appender is not running")
        future: asyncio.Future[T] = asyncio.Future(loop=loop)
        self._queue.put(work, future)
        return future

    def _forget(self) -> None:
        self._sequencer.forget()
        self._tree = None

    async def _run(self) -> None:
        while True:
            await self._queue.ready()
            if isinstance(self._db, SqliteDatabase):
                await self._run_chain(self._db)
                # A turn of the loop between chains, so that other processes on the same file
                # (replicas) find the writer lock free now and then.
                await asyncio.sleep(0)
            else:
                await self._run_one(self._queue.take())

    async def _run_one(self, batch: _Batch) -> None:
        """One batch in one transaction, committed before the next begins."""
        try:
            while True:
                try:
                    async with self._db.write() as txn:
                        state = await log_sql.lock_state(txn)
                        tree = Tree(int(state["size"]), bytes(state["frontier"]))
                        sequenced = await self._sequencer.sequence(batch, txn, tree)
                        await self._write_log(txn, sequenced, tree)
                except RunAgain:
                    continue
                break
        except BaseException as exc:
            self._forget()
            self._queue.fail(batch, exc)
            if isinstance(exc, Exception):
                return
            raise
        self._queue.answer(batch)

    async def _run_chain(self, db: SqliteDatabase) -> None:
        """Batches one after the other on the SQLite writer, each one's works run while the
        COMMIT of the one before is on its way to the disk.

        The works' statements queue up behind that COMMIT on the writer connection, so they see
        what it committed. Its callers are answered only once it is known to have succeeded;
        if it failed, the batch run in the meantime is rolled back and run again from the
        start, and so it is if the tree is not at the size this appender left it at.
        """
        async with db.write_chain() as chain:
            left = _MAX_CHAIN
            pending: _Batch | None = None  # written, its COMMIT under way
            committed: asyncio.Future[Any] | None = None  # that COMMIT's outcome
            begun: asyncio.Future[list[Any]] | None = None  # [BEGIN, state] queued behind it
            batch: _Batch | None = None  # the batch being run, not yet handed on
            try:
                while True:
                    batch = self._queue.take()
                    while True:  # until this batch is written
                        if begun is None:
                            await chain.begin()
                            state = await log_sql.lock_state(chain.txn)
                            tree = Tree(int(state["size"]), bytes(state["frontier"]))
                        else:
                            assert self._tree is not None
                            tree = self._tree  # what the pending COMMIT leaves
                        again = False  # run the batch again (without any work that failed)
                        try:
                            sequenced = await self._sequencer.sequence(batch, chain.txn, tree)
                        except (RunAgain, TransactionNotBegun):
                            again = True
                        sound = True  # what the batch was run on still holds
                        if pending is not None:
                            assert committed is not None
                            sound = await self._settle(pending, committed)
                            pending = committed = None
                        if begun is not None:
                            begin_outcome, rows = await begun
                            begun = None
                            sound = sound and not isinstance(begin_outcome, BaseException) and not isinstance(
                                rows, BaseException) and int(rows[0]["size"]) == tree.size  # else: another writer
                        if again or not sound:
                            await chain.rollback()
                            if not sound:
                                self._forget()
                                self._sequencer.restart(batch)
                            continue
                        await self._write_log(chain.txn, sequenced, tree, chain)
                        break
                    left -= 1
                    if self._queue.waiting() and left and not chain.contended():
                        marker, committed, begun = chain.commit_and_begin(log_sql.STATE)
                        pending, batch = batch, None
                        await marker
                        continue
                    await chain.commit()
                    done, batch = batch, None
                    self._queue.answer(done)
                    return
            except BaseException as exc:
                if pending is not None:
                    assert committed is not None
                    try:
                        await self._settle(pending, committed)
                    except asyncio.CancelledError:
                        self._queue.fail(pending, exc)
                if begun is not None:
                    with contextlib.suppress(asyncio.CancelledError):
                        await begun
                self._forget()
                if batch is not None:
                    self._queue.fail(batch, exc)
                if isinstance(exc, Exception):
                    return
                raise

    async def _settle(self, batch: _Batch, committed: asyncio.Future[Any]) -> bool:
        """Wait for a batch's COMMIT; answer its callers, or tell them it failed."""
        try:
            # Shielded: were the appender stopped meanwhile, the outcome is still wanted.
            await asyncio.shield(committed)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._forget()
            self._queue.fail(batch, exc)
            return False
        self._queue.answer(batch)
        return True

    async def _write_log(self, txn: Txn, sequenced: Sequenced, tree: Tree, chain: WriteChain | None = None) -> None:
        entries = sequenced.entries
        if entries:
            if chain is None:
                await log_sql.insert_entries(txn, entries)
                await log_sql.insert_texts(txn, sequenced.texts)
                growth = self._sequencer.grow(tree, entries)
                await log_sql.insert_nodes(txn, growth.nodes)
                await log_sql.save_state(txn, size=growth.tree.size, root=growth.root, frontier=growth.tree.frontier)
                tree = growth.tree
            else:
                tree = await self._write_chained(chain, sequenced, tree)
        self._tree = tree

    async def _write_chained(self, chain: WriteChain, sequenced: Sequenced, tree: Tree) -> Tree:
        """:meth:`_write_log` on the SQLite writer: the statements queued one behind the other and
        their outcomes awaited together, few round trips to the writer thread. Entries and texts
        go in as multi-row INSERTs, which run without the GIL once bound, so the tree is extended
        here while SQLite inserts them. The marker is queued first: once it is answered the
        writer thread has the entries statement in hand and binds it before this coroutine takes
        the GIL back for the tree. Returns the tree after."""
        entries = sequenced.entries
        marker = chain.send("SELECT 1")
        sent = [chain.send(sql, *args) for sql, args in log_sql.entries_statements(entries)]
        sent += [chain.send(sql, *args) for sql, args in log_sql.texts_statements(sequenced.texts)]
        await marker
        growth = self._sequencer.grow(tree, entries)
        if growth.nodes:
            sent.append(chain.send_many(log_sql.INSERT_NODES, growth.nodes))
        sent.append(chain.send_many(log_sql.SAVE_STATE, [(growth.tree.size, growth.root, growth.tree.frontier)]))
        for outcome in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return growth.tree
