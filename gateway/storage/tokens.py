"""SQL for API tokens: only their SHA-256 is stored."""

from __future__ import annotations

from gateway.storage.db import Row, Txn

_EXPIRES_AT = (
    "CASE WHEN p.expires_at IS NULL THEN t.expires_at WHEN t.expires_at IS NULL THEN p.expires_at "
    "WHEN p.expires_at < t.expires_at THEN p.expires_at ELSE t.expires_at END AS expires_at"
)


async def insert_token(
    txn: Txn, *, token_hash: str, user: str, account: str | None, label: str, at: int,
    expires_at: int | None, parent_hash: str | None = None,
) -> None:
    """Store a new token's hash (and the hash of the token that authorised it, if any)."""
    await txn.execute(
        "INSERT INTO tokens (token_hash, user_name, account, label, created_at, expires_at, parent_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        token_hash, user, account, label, at, expires_at, parent_hash,
    )


async def find_token(txn: Txn, token_hash: str) -> Row | None:
    """The token with this hash if it, and the token that authorised it, are not revoked: its
    person and account, the earlier of the two expiries, and its OAuth scopes, app and app name
    (NULL for a token made by an admin, which has no scopes to limit it)."""
    return await txn.fetchone(
        "SELECT t.user_name, t.account, g.scopes, g.client_id, a.name AS app_name, " + _EXPIRES_AT + " "
        "FROM tokens t LEFT JOIN tokens p ON p.token_hash = t.parent_hash "
        "LEFT JOIN oauth_tokens g ON g.token_hash = t.token_hash "
        "LEFT JOIN oauth_apps a ON a.client_id = g.client_id "
        "WHERE t.token_hash = ? AND t.revoked_at IS NULL "
        "AND (t.parent_hash IS NULL OR (p.token_hash IS NOT NULL AND p.revoked_at IS NULL))",
        token_hash,
    )


# A token as it stands, with the token that authorised it (an app's OAuth token ends with its
# person's): the earlier of the two expiries, and revoked when either is.
_AS_IT_STANDS = (
    "SELECT t.token_hash, t.user_name, t.account, t.label, t.created_at, " + _EXPIRES_AT +
    ", COALESCE(t.revoked_at, p.revoked_at) AS revoked_at "
    "FROM tokens t LEFT JOIN tokens p ON p.token_hash = t.parent_hash "
)


async def all_tokens(txn: Txn) -> list[Row]:
    """Every token as it stands, revoked and expired ones too, oldest first."""
    return await txn.fetchall(_AS_IT_STANDS + "ORDER BY t.created_at, t.token_hash")


async def tokens_with_prefix(txn: Txn, prefix: str, *, limit: int = 10) -> list[Row]:
    """Tokens whose hash starts with ``prefix`` (lower-case hex only: no LIKE wildcards), as they
    stand, at most ``limit``, revoked ones too."""
    return await txn.fetchall(
        _AS_IT_STANDS + "WHERE t.token_hash LIKE ? ORDER BY t.created_at, t.token_hash LIMIT ?",
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
