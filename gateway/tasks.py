"""Small helpers for the gateway's long-lived background tasks."""

from __future__ import annotations

import asyncio
import contextlib


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has really stopped."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
