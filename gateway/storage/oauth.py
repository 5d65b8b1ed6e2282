"""SQL for OAuth client apps, authorization codes and the scopes of the tokens they issued.

Client secrets and codes are stored as SHA-256 only; the tokens themselves live in ``tokens``
like every other gateway token, and ``oauth_tokens`` only adds which app holds one and with
which scopes. App-only tokens (the client_credentials grant) stand for no person, so they are
not in ``tokens`` at all but in ``oauth_app_tokens``.
"""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def insert_app(
    txn: Txn, *, client_id: str, secret_hash: str, name: str, website: str | None,
    redirect_uris: str, scopes: str, at: int,
) -> None:
    """Register a client app."""
    await txn.execute(
        "INSERT INTO oauth_apps (client_id, secret_hash, name, website, redirect_uris, scopes, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        client_id, secret_hash, name, website, redirect_uris, scopes, at,
    )


async def get_app(txn: Txn, client_id: str) -> Row | None:
    """One registered app."""
    return await txn.fetchone("SELECT * FROM oauth_apps WHERE client_id = ?", client_id)


async def insert_signin(
    txn: Txn, *, ticket_hash: str, token_hash: str, csrf_hash: str, at: int, expires_at: int
) -> None:
    """A sign-in in progress: who proved themselves, on which form."""
    await txn.execute(
        "INSERT INTO oauth_signins (ticket_hash, token_hash, csrf_hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
        ticket_hash, token_hash, csrf_hash, at, expires_at,
    )


async def get_signin(txn: Txn, ticket_hash: str) -> Row | None:
    """A sign-in in progress, used or not."""
    return await txn.fetchone("SELECT * FROM oauth_signins WHERE ticket_hash = ?", ticket_hash)


async def end_signin(txn: Txn, ticket_hash: str, *, at: int) -> bool:
    """End a sign-in (a code was issued, or the person denied); False when it had ended."""
    return await txn.execute(
        "UPDATE oauth_signins SET used_at = ? WHERE ticket_hash = ? AND used_at IS NULL", at, ticket_hash
    ) == 1


async def insert_code(
    txn: Txn, *, code_hash: str, client_id: str, user: str, account: str, redirect_uri: str,
    scopes: str, challenge: str | None, challenge_method: str | None, at: int, expires_at: int,
    parent_hash: str | None,
) -> None:
    """Store a new, unused authorization code, with the hash of the person's token it came from
    (None when the person signed in with a password)."""
    await txn.execute(
        "INSERT INTO oauth_codes (code_hash, client_id, user_name, account, redirect_uri, scopes, "
        "challenge, challenge_method, created_at, expires_at, parent_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        code_hash, client_id, user, account, redirect_uri, scopes, challenge, challenge_method, at,
        expires_at, parent_hash,
    )


async def get_code(txn: Txn, code_hash: str) -> Row | None:
    """An authorization code, used or not."""
    return await txn.fetchone("SELECT * FROM oauth_codes WHERE code_hash = ?", code_hash)


async def use_code(txn: Txn, code_hash: str, *, at: int, token_hash: str) -> bool:
    """Mark a code used by the token it was exchanged for; False when it was used already."""
    return await txn.execute(
        "UPDATE oauth_codes SET used_at = ?, token_hash = ? WHERE code_hash = ? AND used_at IS NULL",
        at, token_hash, code_hash,
    ) == 1


async def insert_token_grant(txn: Txn, *, token_hash: str, client_id: str, scopes: str, at: int) -> None:
    """Record which app holds a token, and its scopes."""
    await txn.execute(
        "INSERT INTO oauth_tokens (token_hash, client_id, scopes, created_at) VALUES (?, ?, ?, ?)",
        token_hash, client_id, scopes, at,
    )


async def get_token_grant(txn: Txn, token_hash: str) -> Row | None:
    """The app and scopes of a token the OAuth sign-in issued; None for other tokens."""
    return await txn.fetchone(
        "SELECT g.client_id, g.scopes, a.name FROM oauth_tokens g "
        "LEFT JOIN oauth_apps a ON a.client_id = g.client_id WHERE g.token_hash = ?",
        token_hash,
    )


async def password_app_tokens(txn: Txn, user: str, *, now: int) -> list[Row]:
    """The live tokens the OAuth sign-in gave apps for ``user`` signed in with a password or a
    page session (no parent token), with their account and app."""
    return await txn.fetchall(
        "SELECT t.token_hash, t.account, g.client_id, a.name FROM tokens t "
        "JOIN oauth_tokens g ON g.token_hash = t.token_hash "
        "LEFT JOIN oauth_apps a ON a.client_id = g.client_id "
        "WHERE t.user_name = ? AND t.parent_hash IS NULL AND t.revoked_at IS NULL "
        "AND (t.expires_at IS NULL OR t.expires_at > ?) ORDER BY t.created_at",
        user, now,
    )


async def insert_app_token(txn: Txn, *, token_hash: str, client_id: str, scopes: str, at: int) -> None:
    """Store an app-only token (the client_credentials grant): an app's, and nobody's else."""
    await txn.execute(
        "INSERT INTO oauth_app_tokens (token_hash, client_id, scopes, created_at) VALUES (?, ?, ?, ?)",
        token_hash, client_id, scopes, at,
    )


async def get_app_token(txn: Txn, token_hash: str) -> Row | None:
    """A live app-only token, with its app's name; None for any other token or a revoked one."""
    return await txn.fetchone(
        "SELECT g.client_id, g.scopes, a.name FROM oauth_app_tokens g "
        "JOIN oauth_apps a ON a.client_id = g.client_id WHERE g.token_hash = ? AND g.revoked_at IS NULL",
        token_hash,
    )


async def revoke_app_token(txn: Txn, token_hash: str, *, client_id: str, at: int) -> bool:
    """Revoke one of an app's own app-only tokens; False when it is not one, or was revoked."""
    return await txn.execute(
        "UPDATE oauth_app_tokens SET revoked_at = ? WHERE token_hash = ? AND client_id = ? AND revoked_at IS NULL",
        at, token_hash, client_id,
    ) == 1
