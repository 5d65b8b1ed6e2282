"""SQL for the built-in sandbox platform's timeline."""

from __future__ import annotations

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
