"""The appender's queue: works waiting for their batch, and the answers to their callers.

Callers put works in and get a future each; the log writer takes them out in batches of at
most ``max_batch`` and, once a batch's transaction has committed (or failed), has the queue
answer every caller of it (:meth:`WorkQueue.answer`, :meth:`WorkQueue.fail`). A caller is never
answered before its batch is known to be on disk.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog

from gateway.storage.db import unavailable

W = TypeVar("W")
logger = structlog.get_logger("byline.appender")


@dataclass(slots=True)
class Batch(Generic[W]):
    """Works taken off the queue together, with their futures; the sequencer fills in what each
    work gave back, or the error it raised (such a work is left out when the batch runs again)."""

    jobs: list[tuple[W, asyncio.Future[Any]]]
    results: list[Any] = field(default_factory=list)
    failed: dict[int, BaseException] = field(default_factory=dict)


class WorkQueue(Generic[W]):
    """Works in the order they came, taken out in batches; answers their futures."""

    def __init__(self, *, max_batch: int) -> None:
        self._max_batch = max_batch
        self._jobs: deque[tuple[W, asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Future[None] | None = None  # set while the queue is empty
        self.batches = 0
        """Batches answered since the queue was made."""

    def put(self, work: W, future: asyncio.Future[Any]) -> None:
        """Queue a work; ``future`` gets its result once its batch has committed."""
        self._jobs.append((work, future))
        wake = self._wake
        if wake is not None:
            self._wake = None
            if not wake.done():
                wake.set_result(None)

    async def ready(self) -> None:
        """Wait until a work is waiting."""
        while not self._jobs:
            self._wake = asyncio.get_running_loop().create_future()
            await self._wake

    def waiting(self) -> bool:
        """Whether any work is waiting."""
        return bool(self._jobs)

    def take(self) -> Batch[W]:
        """The next batch: up to ``max_batch`` works, those whose callers gave up left out."""
        jobs = self._jobs
        taken = [jobs.popleft() for _ in range(min(len(jobs), self._max_batch))]
        return Batch([job for job in taken if not job[1].cancelled()])  # job: (work, future)

    def answer(self, batch: Batch[W]) -> None:
        """The batch has committed: give each caller its result, or its work's own error."""
        results, failed = batch.results, batch.failed
        for n, (_, future) in enumerate(batch.jobs):
            if future.done():
                continue
            if n in failed:
                future.set_exception(failed[n])
            else:
                future.set_result(results[n])
        self.batches += 1

    def fail(self, batch: Batch[W], exc: BaseException) -> None:
        """The whole batch failed to commit (or the gateway is stopping): tell every caller."""
        if isinstance(exc, asyncio.CancelledError):
            exc = RuntimeError("the gateway is shutting down")
        else:
            # The database gone is no bug: said in one line, without a traceback.
            logger.error("log_batch_failed", error=str(exc), size=len(batch.jobs),
                         exc_info=None if unavailable(exc) else exc)
        for _, future in batch.jobs:
            if not future.done():
                future.set_exception(exc)

    def shut(self) -> None:
        """Fail every work still waiting: the gateway is shutting down."""
        while self._jobs:
            _, future = self._jobs.popleft()
            if not future.done():
                future.set_exception(RuntimeError("the gateway is shutting down"))
