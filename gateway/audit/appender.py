"""The single writer: group-committed state changes together with their log entries.

Every change of state in the gateway is a *work*: an async function that reads and writes
through a ``LogTxn`` and appends its events. The appender drains a queue of works, runs a
batch of them in one database transaction, sequences their entries, extends the Merkle tree,
commits once, and only then answers each caller. A work that fails (a conflict, a refused
transition) is taken out and the rest of the batch is run again, so one caller's error never
leaks into another's result. Works must therefore touch nothing outside the transaction.

On PostgreSQL the tree state row is locked ``FOR UPDATE`` at the start of each batch, so
several replicas sequence one after the other. On SQLite, whose one writer connection runs
statements in the order they are given, the next batch's works already run while the batch
before is being committed (its statements wait behind that COMMIT), and their callers are
still answered only once their own batch has committed (see ``Appender._run_chain``).

Committed texts are kept by the index of the entry that carries their hash, so they go in
at the end of their table as the entries do.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from gateway.audit import merkle
from gateway.audit.entry import (
    MAX_ENTRY_BYTES,
    EntryTooLarge,
    entry_bytes,
    link_raw,
    linked_size,
    new_salt,
    relink_raw,
    text_commitment,
)
from gateway.audit.queue import Batch, WorkQueue
from gateway.clock import Clock, now_micros
from gateway.storage import log as log_sql
from gateway.storage.db import Database, SqliteDatabase, TransactionNotBegun, Txn, WriteChain
from gateway.tasks import cancel_task
from gateway.types import iso

T = TypeVar("T")
_MAX_HEADS = 100_000
_MAX_CHAIN = 64  # batches in one run on the SQLite writer before it is let go for a moment
_sha256 = hashlib.sha256
_b64 = binascii.b2a_base64


class LooseText(ValueError):
    """A work committed to a text that none of its entries carries."""


@dataclass(slots=True)
class LogTxn:
    """What a work gets: the transaction, the time of this batch, and ``append``."""

    txn: Txn
    now: int
    _next: int
    # The entries as rows of log_entries: (idx, leaf hash, entry, type, chain, post, account, ts).
    _rows: list[tuple[int, bytes, bytes, str, str | None, str | None, str | None, int]] = field(
        default_factory=list
    )
    _texts: list[tuple[int, str, bytes, str]] = field(default_factory=list)  # (idx, hash, salt, text)
    _loose: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # committed, not yet carried
    _chains: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # (index, leaf hash)
    _known: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _unresolved: set[str] = field(default_factory=set)
    _ts: str | None = None  # ``now`` as the entries write it

    def __post_init__(self) -> None:
        self._ts = iso(self.now)

    async def append(
        self,
        type: str,
        *,
        actor: str,
        account: str | None,
        post: str | None = None,
        data: dict[str, Any] | None = None,
        chain: str | None = None,
    ) -> int:
        """Append one event; it commits with the rest of the work or not at all."""
        if chain is None and post:
            chain = f"post:{post}"
        if data is None:
            data = {}
        idx = self._next
        link: dict[str, Any] | None = None
        if chain is not None:
            prev = self._chains.get(chain) or self._known.get(chain)
            if prev is not None:
                # link_value without its checks: the index and leaf hash are this log's own.
                link = {"index": prev[0], "leaf": _b64(prev[1], newline=False).decode("ascii")}
            else:
                # The chain's last entry is not known here (a new post, or one this appender
                # has not written since the tree last moved). It is taken to be new: the entry
                # goes unlinked, and the chain's next entries link to it. Its last entry is
                # looked up for the whole batch in one query when the batch is written, and the
                # few chains that turn out to have one are linked then (see ``_resolve``). The
                # size check is done now, with the longest link possible, so it fails this work
                # only.
                self._unresolved.add(chain)
        raw = entry_bytes(type, self._ts, actor, account, post, data, link)
        if link is None and chain is not None and linked_size(raw, idx) > MAX_ENTRY_BYTES:
            raise EntryTooLarge(f"log entry of {linked_size(raw, idx)} bytes is over {MAX_ENTRY_BYTES}")
        leaf = _sha256(b"\x00" + raw).digest()
        self._rows.append((idx, leaf, raw, type, chain, post, account, self.now))
        if chain is not None:
            self._chains[chain] = (idx, leaf)
        self._next = idx + 1
        if self._loose:
            self._carry(idx, data)
        return idx

    def _carry(self, idx: int, data: dict[str, Any]) -> None:
        digest = data.get("text_hash")
        if digest.__class__ is str:
            committed = self._loose.pop(digest, None)
            if committed is not None:
                self._texts.append((idx, digest, committed[0], committed[1]))

    async def _resolve(self) -> None:
        """Look up the chains ``append`` took to be new, in one query, and link the entries of
        those that are not: the first to the chain's last entry, each next one to the first
        again (its leaf hash changed)."""
        if not self._unresolved:
            return
        heads = await log_sql.chain_heads(self.txn, sorted(self._unresolved))
        self._unresolved.clear()
        if not heads:
            return
        # chain -> (its last entry here, the leaf hash that entry had, the one it has now)
        moved: dict[str, tuple[int, bytes, bytes]] = {}
        for n, row in enumerate(self._rows):
            chain = row[4]
            if chain not in heads:
                continue
            last = moved.get(chain)
            if last is None:
                index, leaf = heads[chain]
                raw = link_raw(row[2], index, leaf)
            else:
                raw = relink_raw(row[2], last[0], last[1], last[2])
            leaf = _sha256(b"\x00" + raw).digest()
            moved[chain] = (row[0], row[1], leaf)
            self._rows[n] = (row[0], leaf, raw, *row[3:])
        for chain, (index, _, leaf) in moved.items():
            self._chains[chain] = (index, leaf)

    def commit_text(self, text: str) -> str:
        """Commit to a text: return its salted hash, for the data of the entry appended next.

        The text (and its fresh salt) is kept beside the log, keyed by the entry whose
        ``data["text_hash"]`` carries the hash; a work that commits to a text none of its
        entries carries fails (:class:`LooseText`).
        """
        salt = new_salt()
        digest = text_commitment(text, salt)
        self._loose[digest] = (salt, text)
        return digest


Work = Callable[[LogTxn], Awaitable[T]]
_Batch = Batch[Work[Any]]


class Appender:
    """Runs works in group-committed batches; the only writer of posts and the log."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 512) -> None:
        self._db = db
        self._clock = clock
        self._queue: WorkQueue[Work[Any]] = WorkQueue(max_batch=max_batch)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # The last entry of each chain this appender wrote, valid while the tree has exactly the
        # size it left it at: any other writer (a replica) moves the size and empties it.
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._heads_at = -1
        # The tree as this appender last wrote it: (size, right edge), or None when unknown.
        self._tree: tuple[int, bytes] | None = None

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
        self._heads.clear()
        self._heads_at = -1
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
                        size = int(state["size"])
                        ltx = await self._fill(txn, batch, size)
                        await self._write_log(txn, ltx, size, bytes(state["frontier"]))
                except _Rerun:
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
                            size, frontier = int(state["size"]), bytes(state["frontier"])
                        else:
                            assert self._tree is not None
                            size, frontier = self._tree  # what the pending COMMIT leaves
                        again = False  # run the batch again (without any work that failed)
                        try:
                            ltx = await self._fill(chain.txn, batch, size)
                        except (_Rerun, TransactionNotBegun):
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
                                rows, BaseException) and int(rows[0]["size"]) == size  # else: another writer
                        if again or not sound:
                            await chain.rollback()
                            if not sound:
                                self._forget()
                                batch.failed.clear()
                            continue
                        await self._write_log(chain.txn, ltx, size, frontier, chain)
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

    async def _fill(self, txn: Txn, batch: _Batch, size: int) -> LogTxn:
        """Run the works of a batch (but those failed before) on a tree of ``size`` entries.

        A work that fails may have written before failing: it is recorded in ``batch.failed``
        and :class:`_Rerun` raised, so that the batch is rolled back and run again without it.
        """
        if size != self._heads_at or len(self._heads) > _MAX_HEADS:
            self._heads.clear()
        ltx = LogTxn(txn=txn, now=now_micros(self._clock), _next=size, _known=self._heads)
        jobs, failed = batch.jobs, batch.failed
        results: list[Any] = [None] * len(jobs)
        for n, (work, _) in enumerate(jobs):
            if n in failed:
                continue
            try:
                results[n] = await work(ltx)
                if ltx._loose:
                    raise LooseText("the work committed to a text that none of its entries carries")
            except TransactionNotBegun:
                raise  # not the work's doing: the batch is run again (see _run_chain)
            except Exception as exc:
                failed[n] = exc
                raise _Rerun from None
        batch.results = results
        return ltx

    async def _write_log(
        self, txn: Txn, ltx: LogTxn, size: int, frontier: bytes, chain: WriteChain | None = None
    ) -> None:
        rows = ltx._rows
        if rows:
            await ltx._resolve()
            if chain is None:
                await log_sql.insert_entries(txn, rows)
                await log_sql.insert_texts(txn, ltx._texts)
                tree = merkle.CompactRange.from_bytes(size, frontier)
                tree, nodes, root = tree.append([row[1] for row in rows], stride=log_sql.NODE_STRIDE)
                frontier = tree.to_bytes()
                await log_sql.insert_nodes(txn, nodes)
                await log_sql.save_state(txn, size=ltx._next, root=root, frontier=frontier)
            else:
                frontier = await self._write_chained(chain, ltx, size, frontier)
        self._heads.update(ltx._chains)
        self._heads_at = ltx._next
        self._tree = (ltx._next, frontier)

    async def _write_chained(self, chain: WriteChain, ltx: LogTxn, size: int, frontier: bytes) -> bytes:
        """:meth:`_write_log` on the SQLite writer: the statements queued one behind the other and
        their outcomes awaited together, few round trips to the writer thread. Entries and texts
        go in as multi-row INSERTs, which run without the GIL once bound, so the tree is extended
        here while SQLite inserts them. The marker is queued first: once it is answered the
        writer thread has the entries statement in hand and binds it before this coroutine takes
        the GIL back for the tree. Returns the tree's new right edge."""
        rows = ltx._rows
        marker = chain.send("SELECT 1")
        sent = [chain.send(sql, *args) for sql, args in log_sql.entries_statements(rows)]
        sent += [chain.send(sql, *args) for sql, args in log_sql.texts_statements(ltx._texts)]
        await marker
        tree = merkle.CompactRange.from_bytes(size, frontier)
        tree, nodes, root = tree.append([row[1] for row in rows], stride=log_sql.NODE_STRIDE)
        if nodes:
            sent.append(chain.send_many(log_sql.INSERT_NODES, nodes))
        sent.append(chain.send_many(log_sql.SAVE_STATE, [(ltx._next, root, tree.to_bytes())]))
        for outcome in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return tree.to_bytes()


class _Rerun(Exception):
    """Internal: roll the batch back and run it again without the failed work."""
