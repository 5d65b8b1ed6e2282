"""SQL for the XRPC surface: its sessions, and finding a post by its record key.

A post's record key is the one its client chose, kept in ``post_record_keys`` (one post per key
and account, ever), or else derived from its id (``rkey_for``), which is not stored.

An XRPC session is a token derived from an app password, so it lives in the ``tokens`` table
beside it: same user, same account, its own expiry, revocable on its own. Its key is not a
SHA-256 of anything a client holds (it starts with ``xrpc:``; a token's is 64 hex digits), so
no bearer token of the native API can ever match it. Its ``label`` names the app password it
came from, and a session counts only while that app password is live too.

A refresh does not revoke the session it replaces: it names its ``successor`` and brings its
expiry forward to the end of a grace period (``rotate_session``). Every session of one login
shares a ``family`` (the key of the first), so one ``revoke_family`` ends them all.
"""

from __future__ import annotations

from gateway.storage.db import Row, Txn

SESSION_KEY_PREFIX = "xrpc:"
PARENT_LABEL_PREFIX = "atproto-session:"
# substr() counts from 1 in both SQLite and PostgreSQL.
_PARENT_START = len(PARENT_LABEL_PREFIX) + 1


async def insert_session(
    txn: Txn, *, key: str, user: str, account: str, parent_hash: str, at: int, expires_at: int,
    family: str | None = None,
) -> None:
    """Store a new session made from the app password whose hash is ``parent_hash``: the first
    of a new login (its own ``family``) or the successor of a session of ``family``."""
    await txn.execute(
        "INSERT INTO tokens (token_hash, user_name, account, label, created_at, expires_at, family) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        key, user, account, PARENT_LABEL_PREFIX + parent_hash, at, expires_at, family or key,
    )


async def find_session(txn: Txn, key: str, *, now: int) -> Row | None:
    """The live session with this key whose app password is live too: its person and account,
    that password's hash, its family, its successor (NULL until it is refreshed) and expiry."""
    return await txn.fetchone(
        f"SELECT s.user_name, s.account, p.token_hash AS parent_hash, s.family, s.successor, s.expires_at "
        f"FROM tokens s JOIN tokens p ON p.token_hash = substr(s.label, {_PARENT_START}) "
        "WHERE s.token_hash = ? AND s.revoked_at IS NULL AND p.revoked_at IS NULL "
        "AND (s.expires_at IS NULL OR s.expires_at > ?) AND (p.expires_at IS NULL OR p.expires_at > ?)",
        key, now, now,
    )


async def rotate_session(txn: Txn, key: str, *, successor: str, until: int, now: int) -> bool:
    """Mark a live session as replaced by ``successor``, usable until ``until`` at the latest;
    False when it was not live or was already replaced (compare-and-set: one refresh wins)."""
    return await txn.execute(
        "UPDATE tokens SET successor = ?, "
        "expires_at = CASE WHEN expires_at IS NOT NULL AND expires_at < ? THEN expires_at ELSE ? END "
        "WHERE token_hash = ? AND successor IS NULL AND revoked_at IS NULL "
        "AND (expires_at IS NULL OR expires_at > ?)",
        successor, until, until, key, now,
    ) == 1


async def revoke_family(txn: Txn, family: str, *, at: int) -> int:
    """Revoke every session of one login, those it replaced and those that replaced it; how
    many were not revoked yet."""
    return await txn.execute(
        "UPDATE tokens SET revoked_at = ? WHERE family = ? AND revoked_at IS NULL", at, family
    )


async def post_ids_page(txn: Txn, *, account: str, before: str | None, limit: int) -> list[Row]:
    """Ids and states of an account's posts, newest first, below ``before`` when given."""
    if before is None:
        return await txn.fetchall(
            "SELECT id, state FROM posts WHERE account = ? ORDER BY id DESC LIMIT ?", account, limit
        )
    return await txn.fetchall(
        "SELECT id, state FROM posts WHERE account = ? AND id < ? ORDER BY id DESC LIMIT ?",
        account, before, limit,
    )


async def unpublished_ids(txn: Txn, *, account: str) -> list[str]:
    """Ids of an account's posts that have not gone out and may still: held, scheduled, being
    sent, or suggested (what a reply may be written to before it is out)."""
    rows = await txn.fetchall(
        "SELECT id FROM posts WHERE account = ? AND state IN ('held', 'scheduled', 'publishing', 'suggested') "
        "ORDER BY id DESC",
        account,
    )
    return [str(r["id"]) for r in rows]


async def keep_record_key(txn: Txn, *, account: str, rkey: str, post_id: str) -> bool:
    """Give ``post_id`` the record key its client chose; False when a post of ``account`` has it
    already (the key is then not given)."""
    return await txn.execute(
        "INSERT INTO post_record_keys (account, rkey, post_id) VALUES (?, ?, ?) "
        "ON CONFLICT (account, rkey) DO NOTHING",
        account, rkey, post_id,
    ) == 1


async def post_by_record_key(txn: Txn, *, account: str, rkey: str) -> Row | None:
    """The id and state of the post of ``account`` its client gave the record key ``rkey``."""
    return await txn.fetchone(
        "SELECT p.id, p.state FROM post_record_keys k JOIN posts p ON p.id = k.post_id "
        "WHERE k.account = ? AND k.rkey = ?",
        account, rkey,
    )


async def record_keys_taken(txn: Txn, *, account: str, rkeys: list[str]) -> list[str]:
    """Of ``rkeys``, those a post of ``account`` has already."""
    if not rkeys:
        return []
    marks = ", ".join("?" for _ in rkeys)
    rows = await txn.fetchall(
        f"SELECT rkey FROM post_record_keys WHERE account = ? AND rkey IN ({marks})", account, *rkeys
    )
    return [str(r["rkey"]) for r in rows]
