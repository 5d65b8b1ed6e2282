"""Wake-ups across replicas: what one gateway changed, the others hear at once (PostgreSQL).

The database itself says what changed, at commit, with ``NOTIFY`` on a channel named after
the schema (triggers of schema version 11): ``due`` when a post becomes due, or due sooner (an
approval, a new direct post, a retry); ``log`` when the log grew; ``policy`` when a policy
version was recorded. Each gateway listens on a connection of its own (``LISTEN`` holds a
connection: it is not one of the pool's) and wakes the part that acts on it: the publisher,
the live pages' watcher, the policy service. So a post approved through replica A goes out
through B without waiting for B's poll interval, a person's live page on B hears of a change
made on A, and B enforces a policy version A recorded before its next reload.

A notification is only a hint: every part still polls on its own interval, and reads the
database for what to do. When the listening connection drops (the database restarting, a
network cut), the gateway connects again with a growing pause, and once listening again wakes
every part once, for what it may have missed meanwhile. On SQLite (one process) nothing
listens: the parts are woken in the process, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Final

import structlog

from gateway.storage.db import Database, PostgresDatabase, unavailable
from gateway.tasks import cancel_task

logger = structlog.get_logger("byline.wakeups")

CHANNEL_SQL: Final = (
    "SELECT 'byline_' || left(md5(n.nspname), 16) AS channel FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('log_state')"
)
"""The channel the triggers notify on: named after the schema holding the gateway's tables, so
gateways on other schemas of the same database do not wake each other."""
PING_SECONDS: Final = 15.0
"""How often a quiet listening connection is asked whether it still works: a connection cut
without a word (a half-open TCP connection) is found within this."""
RETRY_MAX_SECONDS: Final = 5.0
"""The longest pause between attempts to listen again once the connection dropped."""


class Coalesced:
    """An async action run at most once at a time; asked again while it runs, it runs once more
    after (asked ten times meanwhile, still once)."""

    def __init__(self, action: Callable[[], Awaitable[object]], *, name: str) -> None:
        self._action = action
        self._name = name
        self._again = False
        self._task: asyncio.Task[None] | None = None

    def __call__(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self._action()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):  # no bug: the action's own interval tries again
                    logger.warning("wakeup_action_failed", action=self._name, error="database_unavailable")
                else:
                    logger.exception("wakeup_action_failed", action=self._name)
            if not self._again:
                return

    async def stop(self) -> None:
        """Stop a run under way."""
        await cancel_task(self._task)
        self._task = None


class Wakeups:
    """Listens for other replicas' changes and wakes the parts of this gateway that act on them."""

    def __init__(
        self, *, db: Database, due: Callable[[], None], log: Callable[[], None],
        policy: Callable[[], Awaitable[object]],
    ) -> None:
        self._db = db
        self._handlers: dict[str, Callable[[], None]] = {"due": due, "log": log}
        self._policy = Coalesced(policy, name="byline-policy-wakeup")
        self._handlers["policy"] = self._policy
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        """Whether the listening connection is up (always False on SQLite)."""
        self.heard = 0
        """Notifications heard since start."""
        self._lost = False  # listened before, or tried to: what changed meanwhile went unheard
        self.backend_pid: int | None = None
        """The PostgreSQL backend of the listening connection, for an operator looking at
        ``pg_stat_activity``."""

    async def start(self) -> None:
        """Start listening (PostgreSQL only); a database not answering now is retried in the background."""
        if isinstance(self._db, PostgresDatabase):
            self._task = asyncio.create_task(self._listen_for_ever(self._db), name="byline-wakeups")

    async def stop(self) -> None:
        """Stop listening."""
        await cancel_task(self._task)
        self._task = None
        await self._policy.stop()

    def _heard(self, _conn: Any, pid: int, _channel: str, payload: str) -> None:
        handler = self._handlers.get(payload)
        if handler is None:
            return
        if payload != "log" and isinstance(self._db, PostgresDatabase) and pid in self._db.own_backends:
            # Made through this gateway, which woke its publisher or recorded the policy itself
            # already; a policy reload of its own at that moment would read its files early. Its
            # own live pages are woken by its own changes too: they are told of every change.
            return
        self.heard += 1
        handler()

    def _wake_all(self) -> None:
        for handler in self._handlers.values():
            handler()

    async def _listen_for_ever(self, db: PostgresDatabase) -> None:
        pause = 0.1
        while True:
            try:
                await self._listen(db)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: listen again once it is back
                self._lost = True
                if self.listening:
                    logger.warning("wakeups_lost", error=type(exc).__name__,
                                   meaning="changes made on other replicas are picked up at each part's "
                                           "own interval until the gateway listens again")
                    pause = 0.1
                self.listening = False
            await asyncio.sleep(pause)
            pause = min(pause * 2, RETRY_MAX_SECONDS)

    async def _listen(self, db: PostgresDatabase) -> None:
        """Listen on one connection until it drops (raises) or the task is cancelled."""
        conn = await db.connect_apart()
        try:
            ended = asyncio.Event()
            conn.add_termination_listener(lambda _conn: ended.set())
            row = await conn.fetchrow(CHANNEL_SQL)
            if row is None or row["channel"] is None:
                raise RuntimeError("the gateway's tables are not on this database")
            await conn.add_listener(str(row["channel"]), self._heard)
            self.backend_pid = conn.get_server_pid()
            if not self.listening:
                logger.info("wakeups_listening")
            self.listening = True
            if self._lost:
                self._wake_all()  # for whatever was missed while not listening
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ended.wait(), PING_SECONDS)
                if ended.is_set() or conn.is_closed():
                    raise ConnectionResetError("the listening connection was closed")
                await asyncio.wait_for(conn.fetchval("SELECT 1"), PING_SECONDS)
        finally:
            conn.terminate()
