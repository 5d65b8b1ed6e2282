"""The single writer: group-committed state changes together with their log entries.

Every change of state in the gateway is a *work*: an async function that reads and writes
through a ``LogTxn`` and appends its events. The appender drains a queue of works, runs a
batch of them in one database transaction, sequences their entries, extends the Merkle tree,
commits once, and only then answers each caller. A work that fails (a conflict, a refused
transition) is taken out and the rest of the batch is run again, so one caller's error never
leaks into another's result. Works must therefore touch nothing outside the transaction.

On PostgreSQL the tree state row is locked ``FOR UPDATE`` at the start of each batch, so
several replicas sequence one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from gateway.audit import merkle
from gateway.audit.entry import (
    MAX_ENTRY_BYTES,
    EntryTooLarge,
    encode_unlinked,
    link_raw,
    linked_size,
    new_salt,
    text_commitment,
)
from gateway.clock import Clock, now_micros
from gateway.storage import log as log_sql
from gateway.storage.db import Database, Txn

T = TypeVar("T")
_MAX_HEADS = 100_000
logger = structlog.get_logger("byline.appender")


@dataclass(slots=True)
class _Pending:
    idx: int
    leaf: bytes | None  # None until its chain's previous entry is known (see LogTxn.append)
    entry: bytes  # without its prev link until ``linked``
    type: str
    chain: str | None
    post: str | None
    account: str | None
    ts: int
    linked: bool


@dataclass
class LogTxn:
    """What a work gets: the transaction, the time of this batch, and ``append``."""

    txn: Txn
    now: int
    _next: int
    _pending: list[_Pending] = field(default_factory=list)
    _texts: list[tuple[str, bytes, str]] = field(default_factory=list)
    _chains: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # (index, leaf hash)
    _known: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    _unresolved: set[str] = field(default_factory=set)

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
        chain = chain or (f"post:{post}" if post else None)
        idx = self._next
        raw = encode_unlinked(type=type, ts=self.now, actor=actor, account=account, post=post,
                              data=data or {})
        prev: tuple[int, bytes] | None = None
        if chain is not None:
            prev = self._chains.get(chain) or self._known.get(chain)
            if prev is None:
                # The chain's last entry is not known here (a new post, or one this appender
                # has not written since the tree last moved): it is looked up for the whole
                # batch in one query when the batch is written, and linked then. The size
                # check is done now, with the longest link possible, so it fails this work only.
                if linked_size(raw, idx) > MAX_ENTRY_BYTES:
                    raise EntryTooLarge(f"log entry of {linked_size(raw, idx)} bytes is over {MAX_ENTRY_BYTES}")
                self._unresolved.add(chain)
                self._pending.append(_Pending(idx, None, raw, type, chain, post, account, self.now, False))
                self._next += 1
                return idx
        if prev is not None:
            raw = link_raw(raw, prev[0], prev[1])
        self._next += 1
        leaf = hashlib.sha256(b"\x00" + raw).digest()
        self._pending.append(_Pending(idx, leaf, raw, type, chain, post, account, self.now, True))
        if chain is not None:
            self._chains[chain] = (idx, leaf)
        return idx

    async def _resolve(self) -> None:
        """Look up the chains left open by ``append`` in one query and link their entries."""
        if not self._unresolved:
            return
        heads = await log_sql.chain_heads(self.txn, sorted(self._unresolved))
        for p in self._pending:
            if p.linked:
                continue
            assert p.chain is not None
            prev = self._chains.get(p.chain) or heads.get(p.chain)
            if prev is not None:
                p.entry = link_raw(p.entry, prev[0], prev[1])
            p.leaf = hashlib.sha256(b"\x00" + p.entry).digest()
            p.linked = True
            self._chains[p.chain] = (p.idx, p.leaf)
        self._unresolved.clear()

    def commit_text(self, text: str) -> str:
        """Commit to a text: keep it (and its salt) beside the log, return its hash."""
        salt = new_salt()
        digest = text_commitment(text, salt)
        self._texts.append((digest, salt, text))
        return digest


Work = Callable[[LogTxn], Awaitable[T]]


@dataclass
class _Job(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]


class Appender:
    """Runs works in group-committed batches; the only writer of posts and the log."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 512) -> None:
        self._db = db
        self._clock = clock
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Job[Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        # The last entry of each chain this appender wrote, valid while the tree has exactly the
        # size it left it at: any other writer (a replica) moves the size and empties it.
        self._heads: dict[str, tuple[int, bytes]] = {}
        self._heads_at = -1

    async def start(self) -> None:
        """Start draining the queue."""
        self._task = asyncio.create_task(self._run(), name="byline-appender")

    async def stop(self) -> None:
        """Finish the batch in flight, fail what is still queued, and stop."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.set_exception(RuntimeError("the gateway is shutting down"))

    async def submit(self, work: Work[T]) -> T:
        """Run ``work`` in the next batch; return its result once the batch has committed."""
        if self._task is None or self._task.done():
            raise RuntimeError("the appender is not running")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(work, future))
        return await future

    async def _run(self) -> None:
        while True:
            jobs = [await self._queue.get()]
            while len(jobs) < self._max_batch and not self._queue.empty():
                jobs.append(self._queue.get_nowait())
            live = [j for j in jobs if not j.future.cancelled()]
            try:
                await self._commit(live)
            except asyncio.CancelledError:
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(RuntimeError("the gateway is shutting down"))
                raise
            except Exception as exc:  # the whole batch failed to commit: tell every caller
                logger.error("log_batch_failed", error=str(exc), size=len(live), exc_info=True)
                for job in live:
                    if not job.future.done():
                        job.future.set_exception(exc)

    async def _commit(self, jobs: list[_Job[Any]]) -> None:
        failed: dict[int, BaseException] = {}
        while True:
            results: dict[int, Any] = {}
            try:
                async with self._db.write() as txn:
                    state = await log_sql.lock_state(txn)
                    if int(state["size"]) != self._heads_at or len(self._heads) > _MAX_HEADS:
                        self._heads.clear()
                    ltx = LogTxn(txn=txn, now=now_micros(self._clock), _next=int(state["size"]),
                                 _known=self._heads)
                    for n, job in enumerate(jobs):
                        if n in failed:
                            continue
                        try:
                            results[n] = await job.work(ltx)
                        except Exception as exc:
                            # The work may have written before failing: roll the batch back
                            # and run it again without this work.
                            failed[n] = exc
                            raise _Rerun from None
                    await self._write_log(txn, ltx, state)
            except _Rerun:
                continue
            break
        self._heads.update(ltx._chains)
        self._heads_at = ltx._next
        for n, job in enumerate(jobs):
            if job.future.done():
                continue
            if n in failed:
                job.future.set_exception(failed[n])
            else:
                job.future.set_result(results.get(n))
        self.batches += 1

    async def _write_log(self, txn: Txn, ltx: LogTxn, state: Any) -> None:
        if not ltx._pending:
            return
        await ltx._resolve()
        await log_sql.insert_entries(
            txn,
            [(p.idx, p.leaf, p.entry, p.type, p.chain, p.post, p.account, p.ts) for p in ltx._pending],
        )
        await log_sql.insert_texts(txn, ltx._texts)
        tree = merkle.CompactRange.from_bytes(int(state["size"]), bytes(state["frontier"]))
        tree, nodes, root = tree.append([p.leaf for p in ltx._pending if p.leaf is not None])
        await log_sql.insert_nodes(txn, [n for n in nodes if log_sql.is_stored_level(n[0])])
        await log_sql.save_state(txn, size=ltx._next, root=root, frontier=tree.to_bytes())


class _Rerun(Exception):
    """Internal: roll the batch back and run it again without the failed work."""
