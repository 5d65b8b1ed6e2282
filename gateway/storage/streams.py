"""SQL for the Mastodon streaming API: the log entries an account's open streams turn into events."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.storage.db import Row, Txn
from gateway.storage.queue import log_size

__all__ = ["account_entries", "log_size"]


async def account_entries(
    txn: Txn, *, account: str, start: int, types: Sequence[str], limit: int,
) -> tuple[int, list[Row]]:
    """The entries of ``types`` about ``account`` from index ``start`` on, oldest first, at most
    ``limit``; and the index to read from next time.

    Reads the log's size first and nothing at or past it: an entry appended meanwhile is read
    next time, whichever way the database shows this transaction the rows (entries are
    appended one writer at a time, so every index below the size is committed). The range is
    the primary key's: a stream reads only what was added since it last read."""
    size = await log_size(txn)
    if start >= size:
        return size, []
    marks = ", ".join("?" for _ in types)
    rows = await txn.fetchall(
        f"SELECT idx, type, post_id FROM log_entries WHERE idx >= ? AND idx < ? AND account = ? "
        f"AND type IN ({marks}) ORDER BY idx LIMIT ?",
        start, size, account, *types, limit,
    )
    if len(rows) == limit:
        return int(rows[-1]["idx"]) + 1, rows
    return size, rows
