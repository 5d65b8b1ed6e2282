"""SQL for the audit log: entries, tree nodes, tree state, checkpoints and committed texts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.storage.db import Row, Txn


async def lock_state(txn: Txn) -> Row:
    """The tree state, locked for this transaction: the one row that serializes sequencing."""
    suffix = " FOR UPDATE" if txn.dialect == "postgresql" else ""
    row = await txn.fetchone("SELECT size, root, frontier FROM log_state WHERE id = 1" + suffix)
    assert row is not None, "log_state row missing: migrations did not run"
    return row


async def read_state(txn: Txn) -> Row:
    """The tree state, unlocked."""
    row = await txn.fetchone("SELECT size, root, frontier FROM log_state WHERE id = 1")
    assert row is not None, "log_state row missing: migrations did not run"
    return row


async def save_state(txn: Txn, *, size: int, root: bytes, frontier: bytes) -> None:
    """Record the tree's new size, root and right edge."""
    await txn.execute(
        "UPDATE log_state SET size = ?, root = ?, frontier = ? WHERE id = 1", size, root, frontier
    )


async def last_in_chain(txn: Txn, chain: str) -> Row | None:
    """The newest entry of a chain (one post's events, or one account's policy events)."""
    return await txn.fetchone(
        "SELECT idx, leaf_hash FROM log_entries WHERE chain = ? ORDER BY idx DESC LIMIT 1", chain
    )


async def insert_entries(txn: Txn, rows: Sequence[Sequence[Any]]) -> None:
    """Append entries: (idx, leaf_hash, entry, type, chain, post_id, account, ts)."""
    await txn.executemany(
        "INSERT INTO log_entries (idx, leaf_hash, entry, type, chain, post_id, account, ts) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


async def insert_nodes(txn: Txn, rows: Sequence[Sequence[Any]]) -> None:
    """Store newly completed perfect subtrees: (level, idx, hash)."""
    if rows:
        await txn.executemany("INSERT INTO log_nodes (level, idx, hash) VALUES (?, ?, ?)", rows)


async def insert_texts(txn: Txn, rows: Sequence[Sequence[Any]]) -> None:
    """Keep committed texts beside the log: (text_hash, salt, text)."""
    if rows:
        await txn.executemany(
            "INSERT INTO log_texts (text_hash, salt, text) VALUES (?, ?, ?)", rows
        )


async def entries(txn: Txn, start: int, end: int) -> list[Row]:
    """Entries with start <= idx < end, in order."""
    return await txn.fetchall(
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
        start, end,
    )


async def post_entries(txn: Txn, post_id: str) -> list[Row]:
    """Every entry about one post, in order."""
    return await txn.fetchall(
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE post_id = ? ORDER BY idx", post_id
    )


async def texts(txn: Txn, hashes: Sequence[str]) -> list[Row]:
    """Committed texts (and their salts) by hash."""
    if not hashes:
        return []
    return await txn.fetchall(
        f"SELECT text_hash, salt, text FROM log_texts WHERE text_hash IN ({', '.join('?' for _ in hashes)})",
        *hashes,
    )


async def nodes(txn: Txn, wanted: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """Stored perfect-subtree hashes by (level, index)."""
    out: dict[tuple[int, int], bytes] = {}
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        cond = " OR ".join("(level = ? AND idx = ?)" for _ in chunk)
        args = [v for pair in chunk for v in pair]
        for row in await txn.fetchall(f"SELECT level, idx, hash FROM log_nodes WHERE {cond}", *args):
            out[(int(row["level"]), int(row["idx"]))] = bytes(row["hash"])
    return out


async def policy_head(txn: Txn, account: str) -> Row | None:
    """The last recorded policy of an account."""
    return await txn.fetchone("SELECT sha256, summary FROM policy_heads WHERE account = ?", account)


async def all_policy_heads(txn: Txn) -> list[Row]:
    """Every account's last recorded policy."""
    return await txn.fetchall("SELECT account, sha256, summary FROM policy_heads")


async def set_policy_head(txn: Txn, *, account: str, sha256: str, summary: str, at: int) -> None:
    """Remember the policy just recorded for an account."""
    await txn.execute("DELETE FROM policy_heads WHERE account = ?", account)
    await txn.execute(
        "INSERT INTO policy_heads (account, sha256, summary, updated_at) VALUES (?, ?, ?, ?)",
        account, sha256, summary, at,
    )


async def delete_policy_head(txn: Txn, account: str) -> None:
    """Forget an account whose policy file was removed."""
    await txn.execute("DELETE FROM policy_heads WHERE account = ?", account)


async def latest_checkpoint(txn: Txn) -> Row | None:
    """The signed checkpoint of the largest tree size, if any."""
    return await txn.fetchone(
        "SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1"
    )


async def all_checkpoints(txn: Txn) -> list[Row]:
    """Every signed checkpoint, smallest tree first."""
    return await txn.fetchall("SELECT size, root, note, created_at FROM log_checkpoints ORDER BY size")


async def insert_checkpoint(txn: Txn, *, size: int, root: bytes, note: bytes, at: int) -> bool:
    """Keep a signed checkpoint; False when one for that size exists already (another replica)."""
    changed = await txn.execute(
        "INSERT INTO log_checkpoints (size, root, note, created_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (size) DO NOTHING",
        size, root, note, at,
    )
    return changed == 1


async def level_nodes(txn: Txn, level: int, start: int, end: int) -> list[Row]:
    """Stored hashes of one tree level with start <= idx < end, in order (for tiles)."""
    return await txn.fetchall(
        "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
        level, start, end,
    )


async def all_texts(txn: Txn) -> list[Row]:
    """Every committed text with its salt (text is NULL once erased)."""
    return await txn.fetchall("SELECT text_hash, salt, text FROM log_texts ORDER BY text_hash")
