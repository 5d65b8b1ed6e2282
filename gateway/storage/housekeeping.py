"""SQL for dropping what has outlived its use (see :mod:`gateway.services.housekeeping`).

Nothing here touches posts, the log or anything the log commits to: only short-lived
credentials and remembered requests that can no longer be used, and uploads no post took.
"""

from __future__ import annotations

from gateway.storage.db import Txn
from gateway.storage.notify import DELIVERED, FAILED
from gateway.storage.xrpc import SESSION_KEY_PREFIX


async def expired_signins(txn: Txn, *, now: int) -> int:
    """Sign-in tickets past their expiry (they can no longer be resumed)."""
    return await txn.execute("DELETE FROM oauth_signins WHERE expires_at < ?", now)


async def expired_codes(txn: Txn, *, now: int) -> int:
    """Authorization codes past their expiry (they can no longer be exchanged)."""
    return await txn.execute("DELETE FROM oauth_codes WHERE expires_at < ?", now)


async def stale_idempotency_keys(txn: Txn, *, before: int) -> int:
    """Idempotency-Keys remembered since before ``before`` (past their hour: a new request
    with the same key would make a new post anyway)."""
    return await txn.execute("DELETE FROM client_idempotency WHERE created_at < ?", before)


async def unattached_media(txn: Txn, *, before: int) -> int:
    """Uploads made before ``before`` that no post took."""
    return await txn.execute("DELETE FROM media WHERE post_id IS NULL AND created_at < ?", before)


async def dead_xrpc_sessions(txn: Txn, *, before: int) -> int:
    """XRPC sessions that expired or were revoked before ``before``. Only sessions: a token made
    with the CLI, or an app password, stays (revoked) so that its history can be shown."""
    return await txn.execute(
        "DELETE FROM tokens WHERE substr(token_hash, 1, ?) = ? "
        "AND ((expires_at IS NOT NULL AND expires_at < ?) OR (revoked_at IS NOT NULL AND revoked_at < ?))",
        len(SESSION_KEY_PREFIX), SESSION_KEY_PREFIX, before, before,
    )


async def dead_page_sessions(txn: Txn, *, before: int) -> int:
    """Drop people's page sessions that expired or were signed out before ``before``."""
    return await txn.execute("DELETE FROM web_sessions WHERE expires_at < ? OR revoked_at < ?", before, before)


async def finished_deliveries(txn: Txn, *, before: int) -> int:
    """Drop notifications delivered or given up before ``before``: their payloads hold the words
    of posts, which should not outlive their use (an erased text must not live on here)."""
    return await txn.execute(
        "DELETE FROM notify_deliveries WHERE state IN (?, ?) AND created_at < ?", DELIVERED, FAILED, before
    )
