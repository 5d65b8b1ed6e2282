"""Telling open pages that something changed, on every replica.

Every change of state is a log entry, so the log's size in the shared database says whether
anything changed, whichever replica made the change. One watcher per process reads that one
row about once a second, and only while some page listens; each listener then asks for its
own view and sends an event only when that view changed. On PostgreSQL the database also says
when the log grew (``gateway.services.wakeups``): the watcher then reads at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import structlog

from gateway.errors import BylineError, Code
from gateway.storage import queue as sql
from gateway.storage.db import Database, unavailable
from gateway.tasks import cancel_task

logger = structlog.get_logger("byline.live")

STREAMS_PER_PERSON: Final = 4
"""Open live pages one person may have at once: a phone, a laptop and a tab or two."""
STREAMS_IN_ALL: Final = 1000
"""Open live pages one process serves at once."""
POKED_GAP: Final = 0.05
"""How long the watcher lets changes gather once told the log grew: under a stream of posts, at
most twenty reads a second, each about as prompt as a person can see."""


@dataclass(eq=False)
class Listener:
    """One open stream: woken when the log grows, or when the process stops."""

    person: str
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    closing: bool = False

    async def wait(self, seconds: float) -> bool:
        """True when the log grew since the last wait; False after ``seconds`` with no change
        (or when the process stops: see ``closing``)."""
        try:
            # wait_for cancels only the wait it made: a timeout that fires as the event is set
            # cannot leave a cancellation pending on the stream's own task.
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return False
        self._changed.clear()
        return not self.closing

    def wake(self, *, closing: bool = False) -> None:
        """Tell the listener the log grew (or that it must end)."""
        self.closing = self.closing or closing
        self._changed.set()


class ChangeWatcher:
    """Reads the log's size while someone listens, and wakes every listener when it grows."""

    def __init__(
        self, db: Database, *, interval: float = 1.0, per_person: int = STREAMS_PER_PERSON,
        in_all: int = STREAMS_IN_ALL, busy: str = "too many live pages are open; close one and reload",
    ) -> None:
        self._db = db
        self.interval = interval
        self._per_person_limit = per_person
        self._in_all = in_all
        self._busy = busy
        self._listeners: set[Listener] = set()
        self._per_person: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._poked = asyncio.Event()
        self.size: int | None = None

    def poke(self) -> None:
        """The log grew, says the database (``gateway.services.wakeups``, whichever replica made
        the change): read its size now rather than at the next interval."""
        if self._listeners:
            self._poked.set()

    @contextlib.asynccontextmanager
    async def listen(self, person: str) -> AsyncIterator[Listener]:
        """A listener for one stream of ``person``'s (any key that bounds streams: a person, a
        token), for as long as the stream is open; 429 past ``per_person`` of theirs or
        ``in_all`` in the process, 503 once the process is stopping."""
        if self._closed:
            raise BylineError(Code.UNAVAILABLE, "the gateway is stopping; the page will reconnect")
        if self._per_person[person] >= self._per_person_limit or len(self._listeners) >= self._in_all:
            raise BylineError(Code.TOO_MANY_REQUESTS, self._busy, retry_after=30)
        listener = Listener(person=person)
        self._listeners.add(listener)
        self._per_person[person] += 1
        try:
            if self._task is None or self._task.done():
                self.size = await self._read()
                self._task = asyncio.create_task(self._watch(), name="byline-live-watch")
            yield listener
        finally:
            self._listeners.discard(listener)
            self._per_person[person] -= 1
            if self._per_person[person] <= 0:
                del self._per_person[person]

    def streams_of(self, person: str) -> int:
        """How many streams ``person`` has open."""
        return self._per_person.get(person, 0)

    async def _read(self) -> int:
        # Shielded: a watcher stopped mid-read still ends its transaction and hands its
        # connection back clean.
        return await asyncio.shield(self._read_size())

    async def _read_size(self) -> int:
        async with self._db.read() as txn:
            return await sql.log_size(txn)

    async def _watch(self) -> None:
        """Poll while anyone listens; stop when the last listener leaves."""
        while self._listeners:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), self.interval)
            if self._poked.is_set():
                await asyncio.sleep(POKED_GAP)  # a burst of changes, read once
            self._poked.clear()
            try:
                size = await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):  # no bug: the next read tries again
                    logger.warning("live_watch_failed", error="database_unavailable")
                else:
                    logger.exception("live_watch_failed")
                continue
            if size != self.size:
                self.size = size
                for listener in list(self._listeners):
                    listener.wake()

    async def close(self) -> None:
        """End every stream (the server is shutting down) and stop watching."""
        self._closed = True
        for listener in list(self._listeners):
            listener.wake(closing=True)
        await cancel_task(self._task)
        self._task = None
