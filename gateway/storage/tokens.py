"""SQL for API tokens: only their SHA-256 is stored."""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def insert_token(
    txn: Txn, *, token_hash: str, user: str, account: str | None, label: str, at: int,
    expires_at: int | None,
) -> None:
    """Store a new token's hash."""
    await txn.execute(
        "INSERT INTO tokens (token_hash, user_name, account, label, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        token_hash, user, account, label, at, expires_at,
    )


async def find_token(txn: Txn, token_hash: str) -> Row | None:
    """The live token with this hash, if any."""
    return await txn.fetchone(
        "SELECT user_name, account, expires_at FROM tokens WHERE token_hash = ? AND revoked_at IS NULL",
        token_hash,
    )


async def revoke_token(txn: Txn, token_hash: str, *, at: int) -> bool:
    """Revoke a token; False when there was no live one."""
    return await txn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL", at, token_hash
    ) == 1
