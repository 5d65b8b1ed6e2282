"""The database each test starts from is the one migrating an empty database makes (tests/databases.py)."""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

import asyncpg
import pytest

from gateway.storage.db import open_database
from tests.conftest import PG_DSN
from tests.databases import dump, nothing_written, schema_url


def _sqlite_contents(path: Path) -> tuple[list[tuple[object, ...]], dict[str, list[tuple[object, ...]]]]:
    """Every table, index and trigger as SQLite keeps it, and every table's rows but when each
    migration was applied."""
    conn = sqlite3.connect(path)
    try:
        made = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()
        rows = {}
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            picked = "version" if table == "schema_migrations" else "*"
            rows[table] = sorted(conn.execute(f"SELECT {picked} FROM \"{table}\"").fetchall(), key=repr)
        return made, rows
    finally:
        conn.close()


async def test_a_tests_database_is_what_migrating_an_empty_one_makes(db_url: str, tmp_path: Path) -> None:
    """The copy of the template a test gets holds the same tables, columns, indexes, triggers and
    rows as an empty database migrated there and then (but for when each migration was applied)."""
    await (await open_database(db_url)).close()  # as the test's gateway would open it
    if db_url.startswith("sqlite:///"):
        fresh = tmp_path / "fresh.db"
        await (await open_database(f"sqlite:///{fresh}")).close()
        assert _sqlite_contents(Path(db_url.removeprefix("sqlite:///"))) == _sqlite_contents(fresh)
        return
    assert PG_DSN is not None
    given = db_url.rsplit("search_path=", 1)[1]
    fresh_schema = "fresh_" + secrets.token_hex(6)
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f"CREATE SCHEMA {fresh_schema}")
        await (await open_database(schema_url(PG_DSN, fresh_schema))).close()
        ours, theirs = await dump(PG_DSN, given), await dump(PG_DSN, fresh_schema)

        def applied(schema: str) -> str:
            return f"SELECT version FROM {schema}.schema_migrations ORDER BY version"

        assert [r["version"] for r in await conn.fetch(applied(given))] == [
            r["version"] for r in await conn.fetch(applied(fresh_schema))
        ]
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {fresh_schema} CASCADE")
        await conn.close()

    def without_times(dump: str, schema: str) -> list[str]:
        return [line.replace(schema, "S") for line in dump.splitlines()
                if not line.startswith(f"INSERT INTO {schema}.schema_migrations ")]

    assert without_times(ours, given) == without_times(theirs, fresh_schema)
    assert "CREATE TRIGGER" in ours and "CREATE TABLE" in ours  # the comparison compares something


@pytest.mark.empty_database
async def test_a_test_marked_empty_database_starts_from_nothing(db_url: str) -> None:
    """``empty_database``: no SQLite file yet, or a PostgreSQL schema without a table."""
    assert await nothing_written(db_url)
