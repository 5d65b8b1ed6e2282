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


async def all_tokens(txn: Txn) -> list[Row]:
    """Every token, revoked and expired ones too, oldest first."""
    return await txn.fetchall(
        "SELECT token_hash, user_name, account, label, created_at, expires_at, revoked_at "
        "FROM tokens ORDER BY created_at, token_hash"
    )


async def tokens_with_prefix(txn: Txn, prefix: str, *, limit: int = 10) -> list[Row]:
    """Tokens whose hash starts with ``prefix`` (lower-case hex only: no LIKE wildcards), at
    most ``limit``, revoked ones too."""
    return await txn.fetchall(
        "SELECT token_hash, user_name, account, label, created_at, expires_at, revoked_at "
        "FROM tokens WHERE token_hash LIKE ? ORDER BY created_at, token_hash LIMIT ?",
        prefix + "%", limit,
    )


async def revoke_labelled(txn: Txn, label: str, *, at: int) -> int:
    """Revoke every live token with this label; how many there were."""
    return await txn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE label = ? AND revoked_at IS NULL", at, label
    )


async def revoke_token(txn: Txn, token_hash: str, *, at: int) -> bool:
    """Revoke a token; False when there was no live one."""
    return await txn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL", at, token_hash
    ) == 1
