"""One database interface over SQLite and PostgreSQL.

SQL is written once with ``?`` placeholders; the PostgreSQL engine rewrites them to ``$n``.
Writes happen in ``write()`` transactions (SQLite: ``BEGIN IMMEDIATE`` on the single writer
connection; PostgreSQL: a pooled connection), reads in ``read()`` snapshots. Rows are
mappings by column name on both.
"""

from __future__ import annotations

import asyncio
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
        async with self._conn.execute(sql, args) as cursor:
            return list(await cursor.fetchall())  # type: ignore[arg-type]


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
        async with self._write_lock:
            conn = self._writer
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteTxn(conn)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    @asynccontextmanager
    async def read(self) -> AsyncIterator[_SqliteTxn]:
        conn = await self._readers.get()
        try:
            await conn.execute("BEGIN")
            try:
                yield _SqliteTxn(conn)
            finally:
                await conn.execute("COMMIT")
        finally:
            self._readers.put_nowait(conn)

    async def close(self) -> None:
        for conn in self._all:
            await conn.close()
        self._all.clear()


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
