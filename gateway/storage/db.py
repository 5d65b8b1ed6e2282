"""One database interface over SQLite and PostgreSQL.

SQL is written once with ``?`` placeholders; the PostgreSQL engine rewrites them to ``$n``.
Writes happen in ``write()`` transactions (SQLite: ``BEGIN IMMEDIATE`` on the single writer
connection; PostgreSQL: a pooled connection), reads in ``read()`` snapshots. Rows are
mappings by column name on both.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiosqlite
import asyncpg

Row = Mapping[str, Any]


def _sqlite_variable_limit() -> int:
    with contextlib.closing(sqlite3.connect(":memory:")) as conn:
        return conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)


SQLITE_MAX_VARIABLES = _sqlite_variable_limit()
"""How many ``?`` one SQLite statement may have with the library this process loaded."""


class DatabaseError(Exception):
    """A storage failure that is not the caller's fault (connection lost, disk full)."""


class Txn(Protocol):
    """A transaction (or read snapshot) on one connection."""

    dialect: str

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

    def read(self) -> Any:
        """An async context manager giving a consistent read snapshot."""
        ...

    async def close(self) -> None:
        """Close every connection."""
        ...


class _SqliteTxn:
    dialect = "sqlite"

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        cursor = await self._conn.execute(sql, args)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        async with self._conn.execute(sql, args) as cursor:
            row = await cursor.fetchone()
            return row  # type: ignore[return-value]

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.execute_fetchall(sql, args))  # type: ignore[arg-type]


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


class SqliteDatabase:
    """SQLite in WAL mode with full durability: one writer connection, a few readers."""

    dialect = "sqlite"

    def __init__(self, path: Path, *, readers: int = 4) -> None:
        self.path = path
        self._readers_wanted = readers
        self._writer: aiosqlite.Connection | None = None
        self._readers: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self._all: list[aiosqlite.Connection] = []
        self._write_lock = asyncio.Lock()
        self._waiting_writers = 0

    @property
    def writers_waiting(self) -> int:
        """How many ``write()`` transactions are waiting for the writer: a long run of writes
        (:class:`WriteChain`) should end when there are any."""
        return self._waiting_writers

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=FULL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=10000",
        ):
            await conn.execute(pragma)
        self._all.append(conn)
        return conn

    async def open(self) -> SqliteDatabase:
        """Open the connections (creating the file and its folder when needed)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await self._connect()
        for _ in range(self._readers_wanted):
            self._readers.put_nowait(await self._connect())
        return self

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_SqliteTxn]:
        assert self._writer is not None, "database not open"
        self._waiting_writers += 1
        try:
            await self._write_lock.acquire()
        finally:
            self._waiting_writers -= 1
        conn = self._writer
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
    async def write_chain(self) -> AsyncIterator[WriteChain]:
        """The writer held for a run of write transactions, one after the other (see
        :class:`WriteChain`); released, with no transaction left open, on the way out."""
        assert self._writer is not None, "database not open"
        async with self._write_lock:
            chain = WriteChain(self._writer, self)
            try:
                yield chain
            finally:
                await chain.close()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_SqliteTxn]:
        conn = await self._readers.get()
        try:
            await conn.execute("BEGIN")
            yield _SqliteTxn(conn)
            await conn.execute("COMMIT")
        except BaseException:
            await _end_whatever_began(conn)
            raise
        finally:
            self._readers.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()


class TransactionNotBegun(DatabaseError):
    """A statement of a chained transaction whose BEGIN failed: it was not run."""


class _ChainTxn(_SqliteTxn):
    """The transaction in progress of a :class:`WriteChain`. While its BEGIN, queued behind
    the COMMIT before, is not known to have succeeded, a statement waits for it: run without
    it, the statement would commit on its own."""

    def __init__(self, conn: aiosqlite.Connection, chain: WriteChain) -> None:
        super().__init__(conn)
        self._chain = chain

    async def execute(self, sql: str, *args: Any) -> int:
        await self._chain.begun()
        return await super().execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._chain.begun()
        await super().executemany(sql, rows)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        await self._chain.begun()
        return await super().fetchone(sql, *args)

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        await self._chain.begun()
        return await super().fetchall(sql, *args)


class WriteChain:
    """SQLite write transactions one after the other on the writer, each begun while the one
    before it commits.

    The writer connection's thread runs statements in the order they are queued. So
    :meth:`commit_and_begin` queues the COMMIT, then the next transaction's BEGIN and its first
    query, and returns while the COMMIT is still on its way to the disk: the caller can prepare
    the next transaction in Python in the meantime. Its statements (through :attr:`txn`) queue
    up behind, and see the committed state. Whoever uses this must wait for the COMMIT's
    outcome before telling anyone the first transaction is done, and must not keep the second
    if the first failed.
    """

    def __init__(self, conn: aiosqlite.Connection, db: SqliteDatabase) -> None:
        self._conn = conn
        self._db = db
        self._open = False
        self._begun: asyncio.Future[Any] | None = None  # a queued BEGIN not yet seen to succeed
        self.txn = _ChainTxn(conn, self)

    async def begun(self) -> None:
        """Wait until the transaction in progress is known to have begun, or raise
        :class:`TransactionNotBegun`."""
        if self._begun is None:
            return
        outcome = await asyncio.shield(self._begun)
        if isinstance(outcome[0], BaseException):
            raise TransactionNotBegun(f"the next transaction did not begin: {outcome[0]}") from outcome[0]
        self._begun = None

    def contended(self) -> bool:
        """Whether another writer is waiting for its turn (then the chain should end)."""
        return self._db.writers_waiting > 0

    async def begin(self) -> None:
        """Begin a transaction."""
        self._begun = None
        await self._conn.execute_fetchall("BEGIN IMMEDIATE")
        self._open = True

    async def commit(self) -> None:
        """Commit the transaction in progress and wait until it is on disk."""
        await self._conn.execute_fetchall("COMMIT")
        self._open = False

    async def rollback(self) -> None:
        """Roll back whatever transaction is open (none is fine)."""
        self._open = False
        self._begun = None
        with contextlib.suppress(sqlite3.OperationalError):  # "no transaction is active"
            await self._conn.execute_fetchall("ROLLBACK")

    def send(self, sql: str, *args: Any) -> asyncio.Future[Any]:
        """Queue a statement of the transaction in progress now; its rows, to await."""
        return asyncio.ensure_future(self._conn.execute_fetchall(sql, args))

    def send_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> asyncio.Future[Any]:
        """Queue a statement for each row of arguments now; to await."""
        return asyncio.ensure_future(self._conn.executemany(sql, rows))

    def commit_and_begin(
        self, sql: str, *args: Any
    ) -> tuple[asyncio.Future[Any], asyncio.Future[Any], asyncio.Future[Any]]:
        """Queue COMMIT, BEGIN IMMEDIATE and the query ``sql`` (the next transaction's first).

        Returns three things to await: a marker, done once the writer thread has reached the
        COMMIT; the COMMIT's outcome; and [the BEGIN's outcome, the query's rows], exceptions
        given back rather than raised. The thread runs Python (holding the GIL) between
        statements, so a caller that set off on a long run of Python at once would keep it
        from even starting the COMMIT: awaiting the marker first means the thread is inside
        the COMMIT, which runs without the GIL, when the caller gets back to work.
        """
        conn = self._conn
        marker = asyncio.ensure_future(conn.execute_fetchall("SELECT 1"))
        committed = asyncio.ensure_future(conn.execute_fetchall("COMMIT"))
        begun = asyncio.gather(conn.execute_fetchall("BEGIN IMMEDIATE"), conn.execute_fetchall(sql, args),
                               return_exceptions=True)
        self._open = True
        self._begun = begun
        return marker, committed, begun

    async def close(self) -> None:
        """Leave no transaction open."""
        if self._open:
            await self.rollback()


_PLACEHOLDER = re.compile(r"\?")


def _to_pg(sql: str, cache: dict[str, str] = {}) -> str:  # noqa: B006 - a deliberate memo
    converted = cache.get(sql)
    if converted is None:
        counter = iter(range(1, 10_000))
        converted = _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)
        cache[sql] = converted
    return converted


class _PgTxn:
    dialect = "postgresql"

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self._conn.execute(_to_pg(sql), *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(_to_pg(sql), rows)

    async def fetchone(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._conn.fetchrow(_to_pg(sql), *args)
        return row

    async def fetchall(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._conn.fetch(_to_pg(sql), *args))


class PostgresDatabase:
    """PostgreSQL through an asyncpg pool; several gateways may share one database."""

    dialect = "postgresql"

    def __init__(self, dsn: str, *, max_size: int = 10) -> None:
        self.dsn = dsn
        self._max = max_size
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> PostgresDatabase:
        """Create the connection pool."""
        self._pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=self._max)
        return self

    @asynccontextmanager
    async def write(self) -> AsyncIterator[_PgTxn]:
        assert self._pool is not None, "database not open"
        async with self._pool.acquire() as conn, conn.transaction():
            yield _PgTxn(conn)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_PgTxn]:
        assert self._pool is not None, "database not open"
        async with self._pool.acquire() as conn, conn.transaction(
            isolation="repeatable_read", readonly=True
        ):
            yield _PgTxn(conn)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


async def open_database(url: str) -> SqliteDatabase | PostgresDatabase:
    """Open the database a ``BYLINE_DATABASE_URL`` names and bring its schema up to date."""
    from gateway.storage.schema import migrate

    db: SqliteDatabase | PostgresDatabase
    if url.startswith("sqlite:///"):
        db = await SqliteDatabase(Path(url.removeprefix("sqlite:///"))).open()
    elif urlsplit(url).scheme in ("postgresql", "postgres"):
        db = await PostgresDatabase(url).open()
    else:
        raise ValueError(f"unsupported database URL scheme: {urlsplit(url).scheme}")
    try:
        await migrate(db)
    except BaseException:
        await db.close()
        raise
    return db
