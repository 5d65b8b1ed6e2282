"""SQL for the built-in sandbox platform's timeline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.storage.db import Row, Txn


async def find_by_key(txn: Txn, key: str) -> Row | None:
    """The sandbox post made with this idempotency key."""
    return await txn.fetchone("SELECT * FROM sandbox_posts WHERE idempotency_key = ?", key)


async def insert(txn: Txn, *, post_id: str, account: str, text: str, options: str, key: str, at: int) -> None:
    """Publish one post to the sandbox timeline."""
    await txn.execute(
        "INSERT INTO sandbox_posts (id, account, text, options, idempotency_key, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        post_id, account, text, options, key, at,
    )


async def mark_deleted(txn: Txn, post_id: str, *, at: int) -> None:
    """Take a sandbox post off the timeline (kept, marked deleted)."""
    await txn.execute(
        "UPDATE sandbox_posts SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL", at, post_id
    )


async def get(txn: Txn, post_id: str) -> Row | None:
    """One sandbox post."""
    return await txn.fetchone("SELECT * FROM sandbox_posts WHERE id = ?", post_id)


async def timeline(txn: Txn, account: str, *, limit: int = 200) -> list[Row]:
    """An account's live sandbox posts, newest first."""
    return await txn.fetchall(
        "SELECT * FROM sandbox_posts WHERE account = ? AND deleted_at IS NULL "
        "ORDER BY created_at DESC, id DESC LIMIT ?",
        account, limit,
    )


async def insert_many(txn: Txn, rows: Sequence[tuple[str, str, str, str, str, int]]) -> dict[str, Row]:
    """Publish posts to the sandbox timeline, once per idempotency key, on PostgreSQL: rows of
    (id, account, text, options, idempotency_key, created_at), keys distinct. Each key's post:
    the one inserted now, or the one made with that key before (whose row is kept).

    One statement for the batch, where a look-up and an insert a post were two round trips to
    the server each: the sandbox's writes were what held 100,000 posts due in a minute back
    once the log writer's were few (``python -m bench.scheduler``)."""
    columns: list[list[Any]] = [[row[n] for row in rows] for n in range(6)]
    keys = columns[4]
    found = await txn.fetchall(
        "WITH made AS (INSERT INTO sandbox_posts (id, account, text, options, idempotency_key, created_at) "
        "SELECT * FROM unnest(?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[]) "
        "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, account, idempotency_key) "
        "SELECT id, account, idempotency_key FROM made UNION ALL "
        "SELECT id, account, idempotency_key FROM sandbox_posts WHERE idempotency_key = ANY(?::text[])",
        *columns, keys,
    )
    out = {row["idempotency_key"]: row for row in found}
    missing = [key for key in keys if key not in out]
    if missing:  # made meanwhile by another transaction, committed after this statement began
        for row in await txn.fetchall(
            "SELECT id, account, idempotency_key FROM sandbox_posts WHERE idempotency_key = ANY(?::text[])", missing,
        ):
            out[row["idempotency_key"]] = row
    return out
