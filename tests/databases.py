"""Fresh databases for the tests, each holding Byline's schema at its latest version from the start.

Migrating an empty database takes a few tenths of a second on PostgreSQL (every migration in a
transaction of its own, under the migration lock that both test processes share) and a tenth
on SQLite, and more than a thousand tests of each kind began with it. So each test process
migrates one template of each kind, once, with Byline's own ``open_database``, and each test
gets a copy of it: on SQLite a copy of the file; on PostgreSQL a schema of its own, made by
the template's ``pg_dump`` (schema and rows) in one batch. Every test still has a database
of its own that no other test touches, as before.

Tests of the migrations themselves, and of what Byline does with a database holding nothing,
ask for an empty one: ``@pytest.mark.empty_database``.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from pathlib import Path

import asyncpg

from gateway.storage.db import open_database


def _with_param(dsn: str, key: str, value: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}{key}={value}"


def schema_url(dsn: str, schema: str) -> str:
    """The URL of ``dsn``'s database with ``schema`` the only one its connections look in."""
    return _with_param(dsn, "search_path", schema)


async def dump(dsn: str, schema: str) -> str:
    """``schema``, its tables and rows, as ``pg_dump`` writes them, without psql's own
    commands (``\\restrict``): SQL that makes it again, all of it in one batch."""
    proc = await asyncio.create_subprocess_exec(
        "pg_dump", "--schema", schema, "--no-owner", "--no-privileges", "--inserts", "--dbname", dsn,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"pg_dump of the tests' template schema failed: {err.decode(errors='replace')}")
    return "\n".join(line for line in out.decode().splitlines() if not line.startswith("\\"))


def _exists(path: Path) -> bool:
    return path.exists()


async def nothing_written(db_url: str) -> bool:
    """Whether the database was never opened: no SQLite file, no table in the PostgreSQL schema."""
    if db_url.startswith("sqlite:///"):
        return not _exists(Path(db_url.removeprefix("sqlite:///")))
    conn = await asyncpg.connect(db_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()")
    finally:
        await conn.close()
    return bool(count == 0)


class Templates:
    """This test process's two migrated templates, made when first needed."""

    def __init__(self, workdir: Path, pg_dsn: str | None) -> None:
        self.workdir = workdir
        self.pg_dsn = pg_dsn
        self._sqlite: Path | None = None
        self._pg_name = "byline_template_" + secrets.token_hex(6)
        self._pg_sql: str | None = None

    async def sqlite_copy(self, path: Path) -> None:
        """A SQLite file at ``path`` (not there yet) holding the migrated template."""
        if self._sqlite is None:
            made = self.workdir / "template.db"
            await (await open_database(f"sqlite:///{made}")).close()
            # Closed by its last connection, the file holds everything: no write-ahead log is left.
            leftovers = [p.name for p in made.parent.iterdir() if p.name.startswith("template.db-")
                         and p.name != "template.db-writer"]
            assert not leftovers, leftovers
            self._sqlite = made
        shutil.copyfile(self._sqlite, path)
        os.chmod(path, 0o600)  # as Byline makes its database file

    async def postgres_schema(self, schema: str) -> None:
        """A schema ``schema`` (not there yet) holding the migrated template."""
        assert self.pg_dsn is not None
        if self._pg_sql is None:
            self._pg_sql = await self._made_once()
        await self._run(self._pg_sql.replace(self._pg_name, schema))

    async def _made_once(self) -> str:
        """The template migrated by Byline, and its dump, checked to make it again exactly."""
        assert self.pg_dsn is not None
        await self._run(f"CREATE SCHEMA {self._pg_name}")
        await (await open_database(schema_url(self.pg_dsn, self._pg_name))).close()
        sql = await dump(self.pg_dsn, self._pg_name)
        again = self._pg_name + "_again"
        await self._run(sql.replace(self._pg_name, again))
        try:
            remade = await dump(self.pg_dsn, again)
        finally:
            await self._run(f"DROP SCHEMA {again} CASCADE")
        if remade.replace(again, self._pg_name) != sql:
            raise RuntimeError("the template schema's dump does not make it again as it was")
        return sql

    async def _run(self, sql: str) -> None:
        # One batch of statements sent at once runs as one transaction: all of it or nothing.
        assert self.pg_dsn is not None
        conn = await asyncpg.connect(self.pg_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def drop(self) -> None:
        """Drop the PostgreSQL template, if one was made (at the end of the session)."""
        if self._pg_sql is not None:
            asyncio.run(self._run(f"DROP SCHEMA IF EXISTS {self._pg_name} CASCADE"))
