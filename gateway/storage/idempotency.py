"""SQL for the Idempotency-Keys client apps send with a new status.

A key is claimed before the post is submitted (``post_id`` still empty) and filled in after,
so two requests racing with one key cannot both make a post.
"""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def get(txn: Txn, *, token_hash: str, key_hash: str) -> Row | None:
    """The remembered use of a key by a token, if any."""
    return await txn.fetchone(
        "SELECT post_id, kind, created_at FROM client_idempotency WHERE token_hash = ? AND key_hash = ?",
        token_hash, key_hash,
    )


async def claim(txn: Txn, *, token_hash: str, key_hash: str, kind: str, at: int, stale_before: int) -> bool:
    """Claim a key for a new post; False when a live claim or use of it exists.

    A claim older than ``stale_before`` (a remembered use past its hour, or a claim whose request
    died before it made a post) is taken over.
    """
    taken = await txn.execute(
        "UPDATE client_idempotency SET post_id = NULL, kind = ?, created_at = ? "
        "WHERE token_hash = ? AND key_hash = ? AND created_at < ?",
        kind, at, token_hash, key_hash, stale_before,
    )
    if taken == 1:
        return True
    return await txn.execute(
        "INSERT INTO client_idempotency (token_hash, key_hash, post_id, kind, created_at) "
        "VALUES (?, ?, NULL, ?, ?) ON CONFLICT (token_hash, key_hash) DO NOTHING",
        token_hash, key_hash, kind, at,
    ) == 1


async def fill(txn: Txn, *, token_hash: str, key_hash: str, post_id: str) -> None:
    """Record the post a claimed key made."""
    await txn.execute(
        "UPDATE client_idempotency SET post_id = ? WHERE token_hash = ? AND key_hash = ?",
        post_id, token_hash, key_hash,
    )


async def release(txn: Txn, *, token_hash: str, key_hash: str) -> None:
    """Drop a claim whose request made no post (refused), so a corrected retry can go ahead."""
    await txn.execute(
        "DELETE FROM client_idempotency WHERE token_hash = ? AND key_hash = ? AND post_id IS NULL",
        token_hash, key_hash,
    )
