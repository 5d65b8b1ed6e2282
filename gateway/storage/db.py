"""One database interface over SQLite and PostgreSQL.

SQL is written once with ``?`` placeholders; the PostgreSQL engine rewrites them to ``$n``.
Writes happen in ``write()`` transactions (SQLite: ``BEGIN IMMEDIATE`` on the single writer
connection; PostgreSQL: a pooled connection), reads in ``read()`` snapshots. Rows are
mappings by column name on both.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import functools
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosqlite
import asyncpg
import structlog

from gateway.errors import Code, Failure

Row = Mapping[str, Any]
_log = structlog.get_logger("byline.storage")


def _sqlite_variable_limit() -> int:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


SQLITE_MAX_VARIABLES = _sqlite_variable_limit()
"""How many ``?`` one SQLite statement may have with the library this process loaded."""


class DatabaseError(Exception):
    """A storage failure that is not the caller's fault (connection lost, disk full)."""


class DatabaseMissing(Exception):
    """The database a URL names does not exist, or holds no schema of Byline's, and was not to be
    made (``open_database(url, create=False)``): the URL is probably not the gateway's."""

    def __init__(self, url: str, what: str) -> None:
        super().__init__(f"{describe_url(url)} {what}")
        self.url = url


class CannotOpenDatabase(Exception):
    """The database a URL names could not be opened: it does not answer (``lasting`` False:
    it may later), or it refused (no such PostgreSQL database, role or schema, a wrong
    password, a SQLite file that cannot be opened or is not a database)."""

    def __init__(self, url: str, why: str, *, lasting: bool) -> None:
        verb = "open" if lasting else "reach"
        super().__init__(f"cannot {verb} the database {describe_url(url)} (BYLINE_DATABASE_URL): {why}")
        self.url = url
        self.lasting = lasting


def _open_failure(url: str, exc: Exception, *, opening: bool) -> CannotOpenDatabase | None:
    """What ``exc``, raised while opening the database (``opening``) or bringing its schema up
    to date, says to an admin; None for anything else (a bug, to be shown as one). The driver's
    words never hold the URL, so never its password."""
    cause = exc.__cause__ if isinstance(exc, DatabaseUnavailable) and isinstance(exc.__cause__, Exception) else exc
    why = " ".join(str(cause).split()) or type(cause).__name__
    if isinstance(cause, (asyncpg.InvalidCatalogNameError,  # no such database
                          asyncpg.InvalidAuthorizationSpecificationError,  # no such role, a wrong password
                          asyncpg.InvalidSchemaNameError)):  # a search_path naming no schema
        return CannotOpenDatabase(url, why, lasting=True)
    if url.startswith("sqlite:///"):
        if opening and isinstance(cause, (sqlite3.Error, OSError)):  # cannot be made or read, not a database
            return CannotOpenDatabase(url, why, lasting=True)
        return None
    if _gone(exc):
        return CannotOpenDatabase(url, f"it does not answer ({why})", lasting=False)
    return None


def describe_url(url: str) -> str:
    """The database a BYLINE_DATABASE_URL names, as it may be printed: its kind and place, never
    a password (nor the query, where one can be given too)."""
    if url.startswith("sqlite:///"):
        return f"SQLite {Path(url.removeprefix('sqlite:///')).absolute()}"
    parts = urlsplit(url)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 5432  # settings do not check the DSN's port; the database will say what is wrong
    host = parts.hostname or "localhost"
    host = f"[{host}]" if ":" in host else host
    user = f"{parts.username}@" if parts.username else ""
    return f"PostgreSQL {user}{host}:{port}{parts.path or '/'}"


CONNECT_SECONDS = 5.0
"""How long connecting to PostgreSQL may take before the database counts as unreachable: a
request, ``/readyz`` or a background loop then hears so at once rather than after a minute."""


class DatabaseUnavailable(Failure):
    """The database cannot be reached now (it is restarting, or the network to it is cut). The
    transaction under way, if any, was not committed; whoever asked may try again later.

    Answered 503 with this message; a background loop logs it and tries again at its next turn."""

    def __init__(self) -> None:
        super().__init__(Code.UNAVAILABLE, "the database is not answering; try again in a moment", retry_after=5)


_GONE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable, or a connection that timed out
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, and a connection asyncpg lost
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    asyncpg.AdminShutdownError,  # 57P01: stopped by an administrator (a restart)
    asyncpg.CrashShutdownError,  # 57P02: another backend crashed
    asyncpg.TooManyConnectionsError,
)


def _gone(exc: BaseException) -> bool:
    """Whether ``exc``, raised by the database driver, says the database cannot be reached
    (rather than that a statement was wrong)."""
    if isinstance(exc, (DatabaseUnavailable, *_GONE)):
        return True
    # What asyncpg says when asked to use a connection that was closed under it.
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


def unavailable(exc: BaseException) -> bool:
    """Whether ``exc``, wherever it was raised, says the database cannot be reached: storage
    raises :class:`DatabaseUnavailable`, or, from a connection of its own, the driver's word
    for it. A bare ``OSError`` is not counted: out of storage, it is something else's."""
    return isinstance(exc, DatabaseUnavailable) or (_gone(exc) and not isinstance(exc, OSError))


Flush = Callable[["Txn", list[Any]], Awaitable[dict[Any, Exception]]]
"""Makes the items a transaction held for it (:meth:`Txn.defer`) in one statement: the tags of
those it refused, each with the error its caller would have met making it alone."""


class Txn(Protocol):
    """A transaction (or read snapshot) on one connection."""

    dialect: str

    @property
    def refused(self) -> Mapping[Any, Exception]:
        """The items held (:meth:`defer`) and made since, that were refused, by their tag."""
        ...

    def defer(self, flush: Flush, item: Any) -> bool:
        """Hold ``item`` for ``flush``, which makes every item held for it in one statement,
        before the transaction's next statement of any kind or at :meth:`settle`: True; or
        False, holding nothing, where a statement costs no round trip (SQLite, in process) and
        the caller makes it at once."""
        ...

    async def settle(self) -> None:
        """Make what is held (:meth:`defer`); those refused are in :attr:`refused`."""
        ...

    async def execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of arguments."""
        ...

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        """The first row of a query, or None."""
        ...

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        """Every row of a query."""
        ...


class Database(Protocol):
    """A SQLite file or a PostgreSQL database, opened for the gateway."""

    dialect: str

    def write(self) -> Any:
        """An async context manager giving a write transaction, committed on clean exit."""
        ...

    def read(self, *, quick: bool = False, single: bool = False) -> Any:
        """An async context manager giving a consistent read snapshot; ``quick`` for a few rows
        by key (see ``SqliteDatabase.read``), ``single`` for one statement (see
        ``PostgresDatabase.read``)."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...


async def together(txn: Txn, *queries: Coroutine[Any, Any, Any]) -> list[Any]:
    """Queries of one transaction, their answers in order. On SQLite they are sent together
    (its connection's thread runs them in the order given, in one turn of the event loop for
    all, not one each), or run at once in a quick read; on PostgreSQL one after the other (a
    connection runs one at a time)."""
    if txn.dialect == "sqlite" and not getattr(txn, "inline", False):
        return list(await asyncio.gather(*queries))
    try:
        return [await query for query in queries]
    finally:
        # One that failed, or a cancelled request, leaves the rest never started: closed here,
        # not left for the collector to warn of ("coroutine ... was never awaited"); closing
        # one that has run is nothing.
        for query in queries:
            query.close()


def _changed(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    """Run a statement; the rows it changed (on the connection's thread)."""
    cursor = conn.execute(sql, args)
    try:
        return cursor.rowcount
    finally:
        cursor.close()


def _first(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
    """The first row of a query, or None (on the connection's thread)."""
    cursor = conn.execute(sql, args)
    try:
        return cursor.fetchone()
    finally:
        cursor.close()


def _every(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> list[Any]:
    """Every row of a query (on the connection's thread)."""
    cursor = conn.execute(sql, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()


def _many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """A statement for each row of arguments (on the connection's thread)."""
    conn.executemany(sql, rows).close()


def _end_snapshot(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int:
    """End a reader's snapshot, if it has one open (on the connection's thread)."""
    if conn.in_transaction:
        return _changed(conn, sql, args)
    return 0


def _begun(fn: Any) -> Any:
    """``fn``, after a BEGIN on the same trip: a read snapshot's first statement. A snapshot
    the connection's last reader left open (handed on while others waited) ends first, on the
    same trip, so the new one sees every commit before it."""
    def begin_then(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> Any:
        if conn.in_transaction:
            conn.execute("ROLLBACK").close()
        conn.execute("BEGIN").close()
        return fn(conn, sql, args)
    return begin_then


async def _on_thread(conn: aiosqlite.Connection, fn: Any, sql: str, args: Sequence[Any]) -> Any:
    """``fn(connection, sql, args)`` on the connection's thread, in one trip there and back.

    aiosqlite's cursor API takes a trip for each step (execute, fetch, close: three for one
    row), and each trip waits for a turn of the event loop to be picked up, which under load is
    the time every ready request takes to run a step. The appender runs its works one after
    the other, so those trips add up in series for every post: one trip a statement instead.
    """
    # aiosqlite's own way onto its thread, which all its methods use; it is not annotated.
    return await conn._execute(fn, conn._conn, sql, args)  # type: ignore[no-untyped-call]


def _one_statement_more(left: int | None) -> int | None:
    """The statements a transaction may still run once it runs one more: ``left`` is None for
    no limit; a single-statement read asked for a second is refused."""
    if left is None:
        return None
    if left <= 0:
        raise RuntimeError("a single-statement read was asked for a second statement")
    return left - 1


_NOTHING_REFUSED: Mapping[Any, Exception] = MappingProxyType({})


class _SqliteTxn:
    dialect = "sqlite"
    refused = _NOTHING_REFUSED  # nothing is held: SQLite's statements cost no round trip

    def defer(self, flush: Flush, item: Any) -> bool:
        return False

    async def settle(self) -> None:
        return None

    def __init__(self, conn: aiosqlite.Connection, *, begin: bool = False, inline: bool = False,
                 statements: int | None = None) -> None:
        self._conn = conn
        self._begin = begin  # the BEGIN is still to go, with the first statement
        self.inline = inline
        """Whether its statements run on the event loop's thread (``read(quick=True)``)."""
        self._left = statements  # how many statements it may still run, if limited

    @property
    def begun(self) -> bool:
        """Whether its BEGIN has gone (with its first statement)."""
        return not self._begin

    async def _run(self, fn: Any, sql: str, args: Sequence[Any]) -> Any:
        self._left = _one_statement_more(self._left)
        if self._begin:
            self._begin = False
            fn = _begun(fn)
        if self.inline:
            return fn(self._conn._conn, sql, args)
        return await _on_thread(self._conn, fn, sql, args)

    async def execute(self, sql: str, *args: Any) -> int:
        count: int = await self._run(_changed, sql, args)
        return count

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._run(_many, sql, rows)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._run(_first, sql, args)
        return row

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        rows: list[Row] = await self._run(_every, sql, args)
        return rows


async def _end_whatever_began(conn: aiosqlite.Connection) -> None:
    """Roll back whatever transaction a failed or cancelled task left on ``conn``, before the
    connection goes back for another task.

    A statement aiosqlite was given runs in its thread even when the task awaiting it is
    cancelled: a ``BEGIN`` (or ``COMMIT``) cut off that way still happens, after the task has
    moved on. A ``ROLLBACK`` queued now runs after it, whatever it was; it is awaited to its end
    through further cancellations (they are the caller's to re-raise), and one that finds no
    transaction open has nothing to do.
    """
    rollback = asyncio.ensure_future(conn.execute("ROLLBACK"))
    while not rollback.done():
        # The ROLLBACK's own error (no transaction open: the cut-off COMMIT went through) is
        # read below; raised here it would stand in for the caller's cancellation, and a
        # background loop that catches errors would never stop.
        with contextlib.suppress(asyncio.CancelledError, sqlite3.OperationalError):
            await asyncio.shield(rollback)
    with contextlib.suppress(sqlite3.OperationalError):
        rollback.result()


_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite statement waits for another connection's lock before it fails."""


class WriterTurns:
    """Turns at the writer lock for the processes that share one SQLite file (workers, replicas).

    SQLite's own wait for its writer lock sleeps (up to 100 ms a try) and is unfair: a process
    that runs write after write finds the lock free in the microseconds between two of them,
    another one polling with sleeps almost never does, and waits for seconds. An advisory
    lock on a file beside the database (``flock``), taken around each write transaction, makes
    the others wait in the kernel and wake the moment it is let go. It only
    orders the turns: SQLite's locking still keeps the file safe, with or without it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        """The database's path: the lock file is beside it, ``-writer``."""
        self._fd: int | None = None
        self._unusable = False
        self.held_here = False
        """Whether this process holds the lock now (taken by :meth:`held`, not yet let go)."""

    def _file(self) -> int | None:
        """The lock file, open; None when it cannot be opened (made by another user, say): the
        turns are then left to SQLite's own wait, slower when several processes write, as safe."""
        if self._fd is None and not self._unusable:
            try:
                self._fd = os.open(f"{self.path}-writer", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                self._unusable = True
                _log.warning("sqlite_writer_turns_unavailable", path=f"{self.path}-writer", error=str(exc))
                return None
        return self._fd

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """The lock, held until the block ends (waited for off the event loop's thread)."""
        lock = self._file()
        if lock is None:
            yield
            return
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_EX))
            try:
                await asyncio.shield(waiting)
            except asyncio.CancelledError:
                # Given up on while waiting: the lock, if the thread still gets it, is let go.
                def let_go(got: asyncio.Future[None]) -> None:
                    if not got.cancelled() and got.exception() is None:
                        with contextlib.suppress(OSError):  # closed meanwhile, with the database
                            fcntl.flock(lock, fcntl.LOCK_UN)

                waiting.add_done_callback(let_go)
                raise
        self.held_here = True
        try:
            yield
        finally:
            self.let_go()

    def let_go(self) -> None:
        """Let go of the lock, if this process holds it (from any thread: the log writer's
        COMMIT lets go of it on the connection's thread, the moment it returns)."""
        if self.held_here and self._fd is not None:
            self.held_here = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


PRIVATE_MODE = 0o600
"""The mode of a SQLite database's files: they hold unpublished posts, people's addresses and
password hashes, and the gateway's keys, for the gateway's user alone."""


def _make_private(path: Path) -> None:
    """Make the database file, empty and readable by its owner alone, if it is not there yet.
    SQLite would make it with the umask's mode (world-readable under the usual 022); it gives
    the ``-wal`` and ``-shm`` files it makes beside it the database file's mode."""
    with contextlib.suppress(FileExistsError):  # another worker made it first: it is private too
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE))


def _keep_private(path: Path) -> None:
    """Take the group's and others' access away from a database file made before it was made
    private (or opened up since), with a warning; the ``-wal`` and ``-shm`` files SQLite has
    beside it too, as it would keep their mode. A file this user cannot change (another
    user's) is left as it is, with a warning."""
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            mode = os.stat(name).st_mode & 0o777
        except OSError:  # not there (or not to be seen): SQLite says what it finds
            continue
        if not mode & 0o077:
            continue
        try:
            os.chmod(name, mode & 0o700)
        except OSError as exc:
            _log.warning("sqlite_file_readable_by_others", path=name, mode=f"{mode:04o}", error=exc.strerror)
        else:
            _log.warning("sqlite_file_mode_tightened", path=name, mode=f"{mode:04o}", now=f"{mode & 0o700:04o}")


def _holds_schema(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds Byline's schema, read without changing it: no
    journal mode set, no file made (``mode=rw`` opens only a file that is there), nothing left
    beside it (a WAL file's -wal and -shm go as the connection closes, as SQLite's last one)."""
    from gateway.storage.schema import SQLITE_SCHEMA_FOUND

    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000)
    try:
        return conn.execute(SQLITE_SCHEMA_FOUND).fetchone() is not None
    finally:
        conn.close()


class SqliteDatabase:
    """SQLite in WAL mode with full durability: one writer connection, a few readers."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, readers: int = 4, create: bool = True) -> None:
        self.path = path
        self._create = create
        self._readers_wanted = readers
        self._writer: aiosqlite.Connection | None = None
        self._idle_readers: list[aiosqlite.Connection] = []
        self._reader_waiters: collections.deque[asyncio.Future[aiosqlite.Connection]] = collections.deque()
        self._handed_open: set[aiosqlite.Connection] = set()  # handed on with the last snapshot open
        self._all: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()
        self.turns = WriterTurns(path)
        self._ending: set[asyncio.Future[Any]] = set()  # read snapshots whose end is under way

    async def _connect(self) -> aiosqlite.Connection:
        # Not only on its own thread: the log writer's statements run on the event loop's (see
        # _WriterTxn), never while the thread runs anything of the connection's.
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        self._all.append(conn)
        for pragma in (
            f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}",
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
        ):
            await conn.execute(pragma)
        return conn

    async def open(self) -> SqliteDatabase:
        """Open the connections (creating the file and its folder when needed, unless made with
        ``create=False``: then a file that is not there is refused with
        :class:`DatabaseMissing`); none is left open when one cannot be."""
        if not self._create and not self.path.is_file():
            # Checked before anything is opened: SQLite, and the writer's lock file, would make
            # the file (and an empty database in it) at the wrong place.
            raise DatabaseMissing(f"sqlite:///{self.path}", "does not exist")
        if not self._create and not await asyncio.to_thread(_holds_schema, self.path):
            # Checked before anything is changed too: opening it as the gateway does leaves the
            # writer's lock file beside it, turns it to WAL and makes it private; another
            # program's database (or an empty file) is to be left as it was.
            raise DatabaseMissing(f"sqlite:///{self.path}", "holds no Byline schema")
        if self._create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _make_private(self.path)
        _keep_private(self.path)
        try:
            # The first connection turns a new file to WAL, which takes SQLite's exclusive lock
            # over a shared one: two processes doing it at once deadlock, and SQLite refuses one
            # of them at once, without waiting ("database is locked"). Workers started together
            # would, so the switch takes a writer's turn; the file is WAL for whoever comes next.
            async with self.turns.held():
                self._writer = await self._connect()
            for _ in range(self._readers_wanted):
                self._idle_readers.append(await self._connect())
        except BaseException:
            await self.close()
            raise
        return self

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_SqliteTxn]:
        assert self._writer is not None, "database not open"
        await self._write_lock.acquire()
        conn = self._writer
        try:
            async with self.turns.held():
                try:
                    await conn.execute("BEGIN IMMEDIATE")
                    yield _SqliteTxn(conn)
                    await conn.execute("COMMIT")
                except BaseException:
                    await _end_whatever_began(conn)
                    raise
        finally:
            self._write_lock.release()

    @asynccontextmanager
    async def writer_turn(self) -> AsyncIterator[WriterTurn]:
        """The writer held for one of the log writer's transactions (see :class:`WriterTurn`);
        released, with no transaction left open, on the way out."""
        assert self._writer is not None, "database not open"
        async with self._write_lock, self.turns.held():
            turn = WriterTurn(self._writer, self)
            try:
                yield turn
            finally:
                turn.close()

    @asynccontextmanager
    async def read(self, *, quick: bool = False, single: bool = False) -> AsyncIterator[_SqliteTxn]:
        """A read snapshot on one of the reader connections.

        ``quick``: a few rows by key (a token, a post and its approvals), run on the event loop's
        thread rather than the connection's. Such a statement takes microseconds in SQLite's
        page cache (a WAL reader never waits for the writer), where a trip to the thread and
        back waits for a turn of the busy event loop and hands the interpreter's lock back and
        forth; a read that may scan many rows goes to the thread, where SQLite runs without
        that lock, beside the loop. The connection is the read's alone meanwhile: nothing of
        it is on its thread while a read holds it. ``single`` (one statement) is a quick read
        here.
        """
        # Neither the BEGIN nor the end of the snapshot costs the reader a trip of its own to
        # the connection's thread, each waiting for a turn of the event loop: the BEGIN goes
        # with the first statement, and the end (read only: nothing to keep) is not waited
        # for; the connection goes back to the others once it is done.
        conn = await self._take_reader()
        handed_open = conn in self._handed_open
        self._handed_open.discard(conn)
        quick = quick or single
        if single and conn._conn.in_transaction:  # a snapshot handed on open ends first
            conn._conn.execute("ROLLBACK").close()
        # One statement is a snapshot by itself (SQLite runs it in a transaction of its own):
        # no BEGIN before it, nothing to end after it.
        txn = _SqliteTxn(conn, begin=not single, inline=quick, statements=1 if single else None)
        if quick:
            try:
                yield txn
            finally:
                # Ended here and now (a ROLLBACK of a read touches nothing), whatever happened.
                if conn._conn.in_transaction:
                    conn._conn.execute("ROLLBACK").close()
                self._give_reader(conn, snapshot_open=False)
            return
        try:
            yield txn
        except BaseException:
            await _end_whatever_began(conn)
            self._give_reader(conn, snapshot_open=False)
            raise
        self._give_reader(conn, snapshot_open=txn.begun or handed_open)

    async def _take_reader(self) -> aiosqlite.Connection:
        """A reader connection: an idle one, or the next one a read gives back."""
        if self._idle_readers:
            return self._idle_readers.pop()
        wanted: asyncio.Future[aiosqlite.Connection] = asyncio.get_running_loop().create_future()
        self._reader_waiters.append(wanted)
        try:
            return await wanted
        except asyncio.CancelledError:
            if wanted.done() and not wanted.cancelled():  # handed one, then cancelled: pass it on
                self._give_reader(wanted.result(), snapshot_open=True)
            raise

    def _give_reader(self, conn: aiosqlite.Connection, *, snapshot_open: bool) -> None:
        """A read is done with ``conn``. A read waiting for one gets it at once, its last snapshot
        perhaps still open: the waiting read's first statement ends it on its own trip
        (``_begun``), a trip saved where every trip waits for a turn of the busy event loop.
        With none waiting, an open snapshot is ended first (not left to hold SQLite's
        write-ahead log back while the connection is idle)."""
        while self._reader_waiters:
            waiter = self._reader_waiters.popleft()
            if not waiter.done():
                if snapshot_open:
                    self._handed_open.add(conn)
                waiter.set_result(conn)
                return
        if not snapshot_open:
            self._idle_readers.append(conn)
            return
        ended = asyncio.ensure_future(_on_thread(conn, _end_snapshot, "ROLLBACK", ()))
        self._ending.add(ended)
        ended.add_done_callback(functools.partial(self._reader_ended, conn))

    def _reader_ended(self, conn: aiosqlite.Connection, ended: asyncio.Future[Any]) -> None:
        """A read snapshot has ended: its connection goes back. Ending one cannot fail but by
        a bug (logged), and then the next BEGIN on it fails rather than read a stale snapshot."""
        self._ending.discard(ended)
        if not ended.cancelled() and (exc := ended.exception()) is not None:
            _log.error("sqlite_read_end_failed", error=str(exc))
        self._give_reader(conn, snapshot_open=False)

    async def close(self) -> None:
        if self._ending:  # the last reads' ends, before their connections close
            await asyncio.wait(list(self._ending))
        for conn in self._all:
            await conn.close()
        self._all.clear()
        self.turns.close()


class _WriterTxn(_SqliteTxn):
    """The log writer's transaction (:class:`WriterTurn`): its statements run here on the event
    loop's thread, not on the connection's. That thread has nothing of the connection's to run
    meanwhile (only the turn's BEGIN, awaited, and its COMMIT, after the works, go there), and
    nothing else may use the writer while the turn holds it. A statement inside a transaction
    touches pages in memory (only the COMMIT waits for the disk), so it takes microseconds where
    a trip to the thread and back waits for a turn of a busy event loop; and a batch's works wait
    for each other's trips in series. The rows, changes and errors are the same as on the thread.
    """

    async def execute(self, sql: str, *args: Any) -> int:
        return _changed(self._conn._conn, sql, args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn._conn.executemany(sql, rows).close()

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = _first(self._conn._conn, sql, args)
        return row

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return _every(self._conn._conn, sql, args)


class WriterTurn:
    """The writer held for one of the log writer's transactions, run on the event loop's thread
    and committed on the connection's.

    Its BEGIN runs here too while this process holds the turns' lock (no other gateway can be
    writing then), on the connection's thread when it has to wait; its statements run
    here (:attr:`txn`, see :class:`_WriterTxn`); its COMMIT goes to the connection's thread,
    which waits for the disk there and lets go of the turns' lock the moment the COMMIT has
    returned, without waiting for this process's busy event loop to come round: while one worker
    waits for its COMMIT, another can already be writing. Before, a run of such transactions
    was pipelined on the thread (the next one's works run while the last one's COMMIT was on its
    way), and each took five or six trips to the thread with the lock held: other workers waited
    for this loop's other work between the trips (two workers under load held the lock 35 to 45%
    of the time each, waiting a quarter of it).
    """

    def __init__(self, conn: aiosqlite.Connection, db: SqliteDatabase) -> None:
        self._conn = conn
        self._db = db
        self._open = False
        self.txn = _WriterTxn(conn)

    async def begin(self) -> None:
        """Begin the transaction (BEGIN IMMEDIATE)."""
        raw = self._conn._conn
        if self._db.turns.held_here:
            # No other gateway writes now, but something else might (a tool on the file, a
            # gateway that could not open the turns' files): SQLite's wait for it then goes to
            # the connection's thread, not on the event loop.
            raw.execute("PRAGMA busy_timeout=0").close()
            try:
                raw.execute("BEGIN IMMEDIATE").close()
                self._open = True
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            finally:
                raw.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}").close()
        await self._conn.execute_fetchall("BEGIN IMMEDIATE")
        self._open = True

    def rollback(self) -> None:
        """Roll back whatever transaction is open (none is fine)."""
        self._open = False
        with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
            self._conn._conn.execute("ROLLBACK").close()

    def commit(self) -> asyncio.Future[None]:
        """Send the COMMIT to the connection's thread, which then lets go of the turns' lock
        (the transaction rolled back first if the COMMIT failed); its outcome, to await: done
        once it is on disk."""
        raw, turns = self._conn._conn, self._db.turns
        self._open = False

        def commit_and_let_go() -> None:
            try:
                raw.execute("COMMIT").close()
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    raw.execute("ROLLBACK").close()
                raise
            finally:
                turns.let_go()

        return asyncio.ensure_future(self._conn._execute(commit_and_let_go))  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Leave no transaction open."""
        if self._open:
            self.rollback()


_PLACEHOLDER = re.compile(r"\?")


def _to_pg(sql: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    converted = cache.get(sql)
    if converted is None:
        counter = iter(range(1, 10_000))
        converted = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
        cache[sql] = converted
    return converted


class _PgTxn:
    """A transaction on one pooled connection. A statement that finds the database gone raises
    :class:`DatabaseUnavailable` (the appender hands a work's error to its caller as it is).

    Items may be held (:meth:`defer`) and made together before the next statement: each
    statement is a round trip the log writer's batch waits for in turn, and a batch's works
    write alike rows one after another (a new post each)."""

    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection, *, statements: int | None = None) -> None:
        self._conn = conn
        self._left = statements  # how many statements it may still run, if limited
        self._held: dict[Flush, list[Any]] = {}
        self.refused: dict[Any, Exception] = {}

    def defer(self, flush: Flush, item: Any) -> bool:
        self._held.setdefault(flush, []).append(item)
        return True

    async def settle(self) -> None:
        while self._held:
            held, self._held = self._held, {}
            for flush, items in held.items():
                self.refused.update(await flush(self, items))

    def _one_more(self) -> None:
        self._left = _one_statement_more(self._left)

    async def execute(self, sql: str, *args: Any) -> int:
        if self._held:
            await self.settle()
        self._one_more()
        try:
            status: str = await self._conn.execute(_to_pg(sql), *args)
        except Exception as exc:
            _raise_if_gone(exc, self._conn)
            raise
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self._held:
            await self.settle()
        self._one_more()
        try:
            await self._conn.executemany(_to_pg(sql), rows)
        except Exception as exc:
            _raise_if_gone(exc, self._conn)
            raise

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        if self._held:
            await self.settle()
        self._one_more()
        try:
            row: Row | None = await self._conn.fetchrow(_to_pg(sql), *args)
        except Exception as exc:
            _raise_if_gone(exc, self._conn)
            raise
        return row

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        if self._held:
            await self.settle()
        self._one_more()
        try:
            return list(await self._conn.fetch(_to_pg(sql), *args))
        except Exception as exc:
            _raise_if_gone(exc, self._conn)
            raise


def _raise_if_gone(exc: Exception, conn: asyncpg.Connection | None = None) -> None:
    """Raise :class:`DatabaseUnavailable` (from ``exc``) when ``exc`` says the database is gone,
    or is asyncpg's confusion on ``conn`` when it broke in the middle of an operation (a server
    restarting: an ``InternalClientError`` or ``InterfaceError`` on a connection now closed)."""
    broke = conn is not None and isinstance(exc, (asyncpg.InternalClientError, asyncpg.InterfaceError)) \
        and _is_closed(conn)
    if (broke or _gone(exc)) and not isinstance(exc, DatabaseUnavailable):
        raise DatabaseUnavailable() from exc


def _is_closed(conn: asyncpg.Connection) -> bool:
    """Whether ``conn`` is closed. One already handed back to the pool (the transaction's block
    has ended) can no longer be asked, and asyncpg's client-side errors that bring us here come
    from a connection broken under it: it counts as closed, rather than answering a 500."""
    try:
        return bool(conn.is_closed())
    except asyncpg.InterfaceError:  # "connection has been released back to the pool"
        return True


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a pooled connection is reset with when handed back, beyond the rollback of a
    transaction left open (asyncpg does that first): nothing. By default asyncpg sends a query
    to unlock advisory locks, close cursors, unlisten and reset settings, a round trip every
    transaction pays; a connection of the pool never holds any of those past its transaction
    (locks are taken for the transaction, cursors end with it, settings are never changed, and
    LISTEN has a connection of its own, ``connect_apart``)."""


class PostgresDatabase:
    """PostgreSQL through an asyncpg pool; several gateways may share one database."""

    dialect = "postgresql"

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self._max = max_size
        self._pool: asyncpg.Pool | None = None
        self.own_backends: set[int] = set()
        """The server processes of this gateway's pooled connections: what the database says
        was changed through one of them (``gateway.services.wakeups``) this gateway knows already."""

    async def open(self) -> PostgresDatabase:
        """Create the connection pool. A connection the database dropped (a restart, a network
        cut) is found closed when next taken from the pool, and replaced by a new one."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self._max, timeout=CONNECT_SECONDS,
                                               init=self._opened, reset=_keep_session)
        return self

    async def _opened(self, conn: asyncpg.Connection) -> None:
        pid = conn.get_server_pid()
        self.own_backends.add(pid)
        conn.add_termination_listener(lambda _conn: self.own_backends.discard(pid))

    async def connect_apart(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool (to ``LISTEN`` on: it stays taken)."""
        try:
            conn: asyncpg.Connection = await asyncpg.connect(self.dsn, timeout=CONNECT_SECONDS)
        except Exception as exc:
            _raise_if_gone(exc)
            raise
        return conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_PgTxn]:
        assert self._pool is not None, "database not open"
        taken: list[asyncpg.Connection] = []
        try:
            async with self._pool.acquire() as conn:
                taken.append(conn)  # before BEGIN: a connection broken under the pool fails there
                async with conn.transaction():
                    yield _PgTxn(conn)
        except Exception as exc:
            # Unreachable, or lost before the commit was known to succeed: nothing of the
            # transaction is kept (or, lost during the COMMIT itself, all of it).
            _raise_if_gone(exc, taken[0] if taken else None)
            raise

    @asynccontextmanager
    async def read(self, *, quick: bool = False, single: bool = False) -> AsyncIterator[_PgTxn]:
        """A read-only snapshot (repeatable read) on a pooled connection. ``single``: the read is
        one statement, which is a snapshot by itself: it goes without BEGIN and COMMIT, a round
        trip each (a second statement is refused). ``quick`` changes nothing here."""
        assert self._pool is not None, "database not open"
        taken: list[asyncpg.Connection] = []
        try:
            async with self._pool.acquire() as conn:
                taken.append(conn)  # before BEGIN, as in write()
                if single:
                    yield _PgTxn(conn, statements=1)
                    return
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    yield _PgTxn(conn)
        except Exception as exc:
            _raise_if_gone(exc, taken[0] if taken else None)
            raise

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def open_database(url: str, *, create: bool = True) -> SqliteDatabase | PostgresDatabase:
    """Open the database a ``BYLINE_DATABASE_URL`` names and bring its schema up to date.

    ``create=False`` (every command but ``byline serve`` and ``byline migrate``): a database
    that does not exist, or has no schema of Byline's yet, is refused with
    :class:`DatabaseMissing` and left as it was. A URL pointing at the wrong place (a relative
    SQLite path from another directory) would otherwise get a new, empty database that the
    running gateway never reads."""
    from gateway.storage.schema import has_schema, migrate

    db: SqliteDatabase | PostgresDatabase
    try:
        if url.startswith("sqlite:///"):
            db = await SqliteDatabase(Path(url.removeprefix("sqlite:///")), create=create).open()
        elif urlsplit(url).scheme in ("postgresql", "postgres"):
            db = await PostgresDatabase(url).open()
        else:
            raise ValueError(f"unsupported database URL scheme: {urlsplit(url).scheme}")
    except Exception as exc:
        if (failure := _open_failure(url, exc, opening=True)) is not None:
            raise failure from exc
        raise
    try:
        if not create and not await has_schema(db):
            raise DatabaseMissing(url, "holds no Byline schema")
        await migrate(db)
    except BaseException as exc:
        await db.close()
        if isinstance(exc, Exception) and (failure := _open_failure(url, exc, opening=False)) is not None:
            raise failure from exc
        raise
    return db
