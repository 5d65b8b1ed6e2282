"""SQL for the Idempotency-Keys client apps send with a new status.

A key is remembered in the transaction that stores the post it made, so a request that died
before its post was stored leaves no trace of its key, and two requests with one key cannot
both make a post (the second's transaction finds the first's use and stores nothing).
"""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def get(txn: Txn, *, token_hash: str, key_hash: str) -> Row | None:
    """The remembered use of a key by a token, if any."""
    return await txn.fetchone(
        "SELECT post_id, kind, created_at FROM client_idempotency WHERE token_hash = ? AND key_hash = ?",
        token_hash, key_hash,
    )


async def remember(
    txn: Txn, *, token_hash: str, key_hash: str, kind: str, post_id: str, at: int, stale_before: int,
) -> bool:
    """Remember that a key made ``post_id``; False when a live use of it exists.

    A use older than ``stale_before`` (past its hour), or a claim left by an earlier version of
    the gateway whose request made no post, is taken over.
    """
    taken = await txn.execute(
        "UPDATE client_idempotency SET post_id = ?, kind = ?, created_at = ? "
        "WHERE token_hash = ? AND key_hash = ? AND (created_at < ? OR post_id IS NULL)",
        post_id, kind, at, token_hash, key_hash, stale_before,
    )
    if taken == 1:
        return True
    return await txn.execute(
        "INSERT INTO client_idempotency (token_hash, key_hash, post_id, kind, created_at) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (token_hash, key_hash) DO NOTHING",
        token_hash, key_hash, post_id, kind, at,
    ) == 1
