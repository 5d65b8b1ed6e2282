"""SQL for the audit log: entries, tree nodes, tree state, checkpoints and committed texts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from gateway.storage.db import Row, Txn

STATE = "SELECT size, root, frontier FROM log_state WHERE id = 1"
"""The tree state (on SQLite, a write transaction holds the only writer lock already). The
log writers (``gateway.storage.logwriter``) hold every statement that adds to the log."""


async def read_state(txn: Txn) -> Row:
    """The tree state, unlocked."""
    row = await txn.fetchone(STATE)
    assert row is not None, "log_state row missing: migrations did not run"
    return row


async def last_in_chain(txn: Txn, chain: str) -> Row | None:
    """The newest entry of a chain (one post's events, or one account's policy events)."""
    return await txn.fetchone(
        "SELECT idx, leaf_hash FROM log_entries WHERE chain = ? ORDER BY idx DESC LIMIT 1", chain
    )


async def erase_text(txn: Txn, idx: int) -> bool:
    """Erase the text entry ``idx`` commits to (a lawful erasure): the words go, the salt and
    hash stay, and so does every entry and proof. False if that entry commits to no text."""
    return await txn.execute("UPDATE log_texts SET text = NULL WHERE idx = ?", idx) == 1


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


async def last_claim(txn: Txn, post_id: str) -> dict[str, Any] | None:
    """The data of the post's last claim (``post.publishing``): the version it named and what
    it carried besides its words (``content_sha256``), among the rest; None when it has none."""
    row = await txn.fetchone(
        "SELECT entry FROM log_entries WHERE post_id = ? AND type = 'post.publishing' ORDER BY idx DESC LIMIT 1",
        post_id,
    )
    return None if row is None else _data(json.loads(bytes(row["entry"])))


async def last_claims(txn: Txn, post_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
    """:func:`last_claim` of each of ``post_ids`` in one read (a page of posts), by post id:
    each one asked is there, None where it has no claim."""
    found: dict[str, dict[str, Any] | None] = dict.fromkeys(post_ids)
    if not post_ids:
        return found
    rows = await txn.fetchall(
        "SELECT post_id, entry FROM log_entries WHERE idx IN (SELECT MAX(idx) FROM log_entries "
        f"WHERE post_id IN ({', '.join('?' for _ in post_ids)}) AND type = 'post.publishing' GROUP BY post_id)",
        *post_ids,
    )
    for row in rows:
        found[row["post_id"]] = _data(json.loads(bytes(row["entry"])))
    return found


def last_claim_among(entries: Sequence[Row]) -> dict[str, Any] | None:
    """:func:`last_claim` of a post whose entries (:func:`post_entries`) are read already."""
    for row in reversed(entries):
        entry = json.loads(bytes(row["entry"]))
        if entry.get("type") == "post.publishing":
            return _data(entry)
    return None


def _data(entry: Any) -> dict[str, Any] | None:
    data = entry.get("data") if isinstance(entry, dict) else None
    return data if isinstance(data, dict) else None


async def post_entry_times(txn: Txn, post_id: str, type: str, *, since: int) -> list[int]:
    """The times (stored microseconds) of a post's entries of one type after ``since``, oldest
    first: a range of the (post, index) index, as few as the post has entries."""
    rows = await txn.fetchall(
        "SELECT ts FROM log_entries WHERE post_id = ? AND type = ? AND ts > ? ORDER BY idx", post_id, type, since
    )
    return [int(row["ts"]) for row in rows]


async def texts(txn: Txn, start: int, end: int) -> list[Row]:
    """The committed texts (and their salts) of the entries with start <= idx < end, in order,
    with the account and post of the entry."""
    return await txn.fetchall(
        "SELECT t.idx, t.text_hash, t.salt, t.text, e.account, e.post_id FROM log_texts t "
        "LEFT JOIN log_entries e ON e.idx = t.idx WHERE t.idx >= ? AND t.idx < ? ORDER BY t.idx",
        start, end,
    )


NODE_STRIDE = 8
"""``log_nodes`` keeps the tree levels that are multiples of 8 above the leaves (whose hashes are
``log_entries.leaf_hash``): one row per 256 entries instead of one per entry, and exactly the rows
of c2sp.org/tlog-tiles. Any other node is folded up from the stored level below it (at most 255
hashes)."""


def is_stored_level(level: int) -> bool:
    """Whether ``log_nodes`` keeps the nodes of this tree level."""
    return level > 0 and level % NODE_STRIDE == 0


async def level_hashes(txn: Txn, level: int, ranges: Sequence[tuple[int, int]]) -> dict[int, bytes]:
    """The stored hashes of one tree level (0: the leaves, or a stored level) whose index lies in
    any of ``ranges`` (half-open), by index; one that is not stored is left out. The nodes in
    between are folded up from these by the audit side (``gateway.audit.nodes``): storage keeps
    hashes, it does not compute them."""
    spans = _merged(ranges)
    out: dict[int, bytes] = {}
    for start in range(0, len(spans), 100):
        chunk = spans[start : start + 100]
        cond = " OR ".join("(idx >= ? AND idx < ?)" for _ in chunk)
        args: list[Any] = [v for pair in chunk for v in pair]
        if level == 0:
            sql = f"SELECT idx, leaf_hash AS hash FROM log_entries WHERE {cond}"
        else:
            sql = f"SELECT idx, hash FROM log_nodes WHERE level = ? AND ({cond})"
            args.insert(0, level)
        for row in await txn.fetchall(sql, *args):
            out[int(row["idx"])] = bytes(row["hash"])
    return out


def _merged(ranges: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for begin, end in sorted(ranges):
        if out and begin <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((begin, end))
    return out


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
    """Stored hashes of a stored tree level (0 or a multiple of 8), start <= idx < end, in order."""
    if level == 0:
        return await txn.fetchall(
            "SELECT idx, leaf_hash AS hash FROM log_entries WHERE idx >= ? AND idx < ? ORDER BY idx",
            start, end,
        )
    return await txn.fetchall(
        "SELECT idx, hash FROM log_nodes WHERE level = ? AND idx >= ? AND idx < ? ORDER BY idx",
        level, start, end,
    )


async def all_texts(txn: Txn) -> list[Row]:
    """Every committed text with its salt (text is NULL once erased), by entry."""
    return await txn.fetchall("SELECT idx, text_hash, salt, text FROM log_texts ORDER BY idx")


async def entries_of_type(txn: Txn, type: str) -> list[Row]:
    """Every entry of one event type, in order."""
    return await txn.fetchall(
        "SELECT idx, entry, leaf_hash FROM log_entries WHERE type = ? ORDER BY idx", type
    )


async def chain_heads(txn: Txn, chains: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """The newest entry (index, leaf hash) of each of several chains that has any."""
    out: dict[str, tuple[int, bytes]] = {}
    if txn.dialect == "postgresql":
        # Each chain's newest entry read from the (chain, idx) index. PostgreSQL planned the
        # IN list below as a scan of the whole table (its guess of the rows a chain has is
        # stale while the log grows fast): 15 ms at 60,000 entries, growing with the log,
        # where this takes 1 ms, and it runs for every batch of claims.
        rows = await txn.fetchall(
            "SELECT c.chain, e.idx, e.leaf_hash FROM unnest(?::text[]) AS c(chain) CROSS JOIN LATERAL "
            "(SELECT idx, leaf_hash FROM log_entries WHERE chain = c.chain ORDER BY idx DESC LIMIT 1) e",
            list(chains),
        )
        return {row["chain"]: (int(row["idx"]), bytes(row["leaf_hash"])) for row in rows}
    for start in range(0, len(chains), 500):
        chunk = chains[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        rows = await txn.fetchall(
            "SELECT e.chain, e.idx, e.leaf_hash FROM log_entries e JOIN "
            f"(SELECT chain, MAX(idx) AS last FROM log_entries WHERE chain IN ({marks}) GROUP BY chain) h "
            "ON e.chain = h.chain AND e.idx = h.last",
            *chunk,
        )
        for row in rows:
            out[row["chain"]] = (int(row["idx"]), bytes(row["leaf_hash"]))
    return out


TEXT_FATES = ("post.submitted", "post.edited", "post.publishing", "post.published", "post.revising", "post.revised")
"""The entries of a post that commit to its words, and the one that says which version went out."""


async def text_fates(txn: Txn, post_ids: Sequence[str]) -> list[Row]:
    """The entries of these posts (idx, post_id, entry) of the types in :data:`TEXT_FATES`, in
    log order: which of the words they commit to went out is the service's to decide."""
    if not post_ids:
        return []
    return await txn.fetchall(
        f"SELECT idx, post_id, entry FROM log_entries WHERE post_id IN ({', '.join('?' for _ in post_ids)}) "
        f"AND type IN ({', '.join('?' for _ in TEXT_FATES)}) ORDER BY idx",
        *post_ids, *TEXT_FATES,
    )
