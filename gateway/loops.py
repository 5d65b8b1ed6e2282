"""The event loop the gateway runs on.

uvloop by default: the gateway's hot path is Python on one event loop (HTTP handlers, the
appender's batches, waking callers), and uvloop's loop, written in C, takes a tenth to a fifth off
the loop's CPU (measured with ``python -m bench``). ``BYLINE_EVENT_LOOP=asyncio`` chooses the
standard library's loop, as does a platform uvloop does not support.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

LOOPS = ("uvloop", "asyncio")


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory of new event loops of ``kind`` (one of :data:`LOOPS`)."""
    if kind not in LOOPS:
        raise ValueError(f"unknown event loop {kind!r}: choose one of {', '.join(LOOPS)}")
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:  # pragma: no cover - uvloop is a dependency where it runs
            return asyncio.new_event_loop
        return uvloop.new_event_loop
    return asyncio.new_event_loop


def loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """Which kind a running loop is, as :data:`LOOPS` names it."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"
