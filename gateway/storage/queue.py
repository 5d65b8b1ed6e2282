"""SQL for the people's pages, and the counts apps are shown: what the queue and account pages
read that no other service does, and how many of an account's posts are in each state."""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def log_size(txn: Txn) -> int:
    """How many entries the log holds: one cheap row, read by every replica to learn of changes."""
    row = await txn.fetchone("SELECT size FROM log_state WHERE id = 1")
    return int(row["size"]) if row is not None else 0


async def posts_by_state(txn: Txn, account: str) -> dict[str, int]:
    """How many of an account's posts are in each state."""
    rows = await txn.fetchall(
        "SELECT state, COUNT(*) AS n FROM posts WHERE account = ? GROUP BY state", account
    )
    return {str(r["state"]): int(r["n"]) for r in rows}


async def published_count(txn: Txn, account: str) -> int:
    """How many of an account's posts are published (and not deleted since): one range of the
    index on (account, state), not a count of every state."""
    row = await txn.fetchone("SELECT COUNT(*) AS n FROM posts WHERE account = ? AND state = 'published'", account)
    return 0 if row is None else int(row["n"])


async def policy_entries(txn: Txn, account: str, *, limit: int) -> list[Row]:
    """The newest entries of an account's policy chain (loaded, changed, removed), newest first."""
    return await txn.fetchall(
        "SELECT idx, entry FROM log_entries WHERE chain = ? ORDER BY idx DESC LIMIT ?",
        f"policy:{account}", limit,
    )

