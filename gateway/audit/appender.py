"""The single writer: group-committed state changes together with their log entries.

Every change of state in the gateway is a *work*: an async function that reads and writes
through a ``LogTxn`` and appends its events. The appender runs works in batches, one database
transaction each, and answers each caller only once its batch has committed. It is split as
Tessera splits its log:

- the queue (``gateway.audit.queue``) holds the works waiting, hands them out in batches and
  answers their callers;
- the sequencer (``gateway.audit.sequencer``) runs a batch's works in the transaction, numbers
  and links their entries, hashes them and the tree's new nodes; a work that fails is taken
  out and the rest of the batch run again, so one caller's error never leaks into another's
  result;
- the log writer (``gateway.storage.logwriter``) owns the transactions and every statement:
  on SQLite, a batch's transaction on the event loop's thread and its COMMIT on the writer
  connection's; on PostgreSQL, one batch at a time with the tree state locked ``FOR UPDATE``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from gateway.audit.queue import WorkQueue
from gateway.audit.sequencer import LogTxn, LooseText, Sequencer, Work, post_chain
from gateway.clock import Clock
from gateway.storage.db import Database
from gateway.storage.logwriter import log_writer
from gateway.tasks import cancel_task

__all__ = ["Appender", "LogTxn", "LooseText", "Work", "post_chain"]

T = TypeVar("T")


class Appender:
    """Runs works in group-committed batches; the only writer of posts and the log."""

    def __init__(self, db: Database, clock: Clock, *, max_batch: int = 512) -> None:
        self._queue: WorkQueue[Work[Any]] = WorkQueue(max_batch=max_batch)
        self._sequencer = Sequencer(clock)
        self._writer = log_writer(db)
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def batches(self) -> int:
        """Batches committed and answered since the appender was made."""
        return self._queue.batches

    @classmethod
    @asynccontextmanager
    async def running(cls, db: Database, clock: Clock) -> AsyncIterator[Appender]:
        """An appender started for a command's work, and stopped after it: a command that writes
        to the log does so as one more replica would, through the log's one way in."""
        appender = cls(db, clock)
        await appender.start()
        try:
            yield appender
        finally:
            await appender.stop()

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

    async def _run(self) -> None:
        while True:
            await self._queue.ready()
            await self._writer.run(self._queue, self._sequencer)
