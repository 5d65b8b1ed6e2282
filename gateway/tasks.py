"""Small helpers for the gateway's long-lived background tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.storage.db import unavailable

logger = structlog.get_logger("byline.tasks")


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has really stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run_every(
    interval: float, tick: Callable[[], Awaitable[object]], *, name: str, failed: str, at_once: bool = False,
) -> asyncio.Task[None]:
    """Run ``tick`` every ``interval`` seconds, the first time one interval from now (or at
    once, ``at_once``), until the task is cancelled (:func:`cancel_task`). A tick that fails is
    logged as the event ``failed``, and the next one runs as usual: a database that cannot be
    reached is said in one line (no traceback: it is no bug, and the loop goes on once it is back)."""

    async def loop() -> None:
        first = at_once
        while True:
            if not first:
                await asyncio.sleep(interval)
            first = False
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):
                    logger.warning(failed, error="database_unavailable")
                else:
                    logger.exception(failed)

    return asyncio.create_task(loop(), name=name)
