"""A PostgreSQL database of a benchmark's own, made for one run and dropped after."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator

import asyncpg

POSTGRES_ADMIN = os.environ.get("BYLINE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
"""Where the PostgreSQL runs make their own databases (and drop them after)."""


@contextlib.asynccontextmanager
async def scratch_database(prefix: str) -> AsyncIterator[str | None]:
    """The URL of a fresh database named ``prefix`` and this process's id (dropped after), or
    None when no PostgreSQL answers at ``POSTGRES_ADMIN``."""
    name = f"{prefix}_{os.getpid()}"
    try:
        admin = await asyncpg.connect(POSTGRES_ADMIN, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        yield None
        return
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name}")
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"{POSTGRES_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with contextlib.suppress(asyncpg.PostgresError):
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()
