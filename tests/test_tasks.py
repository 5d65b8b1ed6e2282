"""The background-task helpers every periodic service of the gateway runs on."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from gateway.tasks import cancel_task, run_every


async def test_run_every_keeps_going_after_a_failed_tick_and_stops_when_cancelled() -> None:
    """A tick that raises is logged under the event given and the next tick still runs; once
    cancelled, no tick runs again."""
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(len(ticks))
        if len(ticks) == 2:
            raise RuntimeError("the disk is gone")

    with capture_logs() as logs:
        task = run_every(0.01, tick, name="test-ticker", failed="test_tick_failed")
        assert task.get_name() == "test-ticker"
        for _ in range(300):
            if len(ticks) >= 4:
                break
            await asyncio.sleep(0.01)
        await cancel_task(task)
    assert len(ticks) >= 4
    assert [entry["event"] for entry in logs] == ["test_tick_failed"]
    assert task.cancelled()
    stopped_at = len(ticks)
    await asyncio.sleep(0.05)
    assert len(ticks) == stopped_at


async def test_run_every_at_once_ticks_first_without_waiting_an_interval() -> None:
    """With ``at_once`` the first tick runs as the task starts (a reconciler at a gateway's
    start), not one interval later; the next waits its interval."""
    ticks: list[int] = []

    async def tick() -> None:
        ticks.append(len(ticks))

    task = run_every(3600, tick, name="test-at-once", failed="test_tick_failed", at_once=True)
    for _ in range(100):
        if ticks:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)
    await cancel_task(task)
    assert ticks == [0]
