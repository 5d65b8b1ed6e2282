"""The tree's nodes read back from storage, for proofs and checkpoints.

Storage keeps the hashes of the leaves and of every eighth level above them
(``log_sql.NODE_STRIDE``); any other perfect subtree is folded up here from the stored level
below it (at most 255 hashes). Storage keeps hashes, the audit side computes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.merkle import Node, Range, node_hash
from gateway.storage import log as log_sql
from gateway.storage.db import Txn


async def stored_nodes(txn: Txn, wanted: Sequence[Node]) -> dict[Node, bytes]:
    """Perfect-subtree hashes by (level, index); a node whose parts are not stored is left out."""
    spans: dict[int, list[Range]] = {}
    for level, idx in wanted:
        base = level - level % log_sql.NODE_STRIDE
        spans.setdefault(base, []).append((idx << (level - base), (idx + 1) << (level - base)))
    have = {base: await log_sql.level_hashes(txn, base, ranges) for base, ranges in spans.items()}
    out: dict[Node, bytes] = {}
    for level, idx in wanted:
        base = level - level % log_sql.NODE_STRIDE
        first = idx << (level - base)
        found = have[base]
        layer = [found.get(i) for i in range(first, first + (1 << (level - base)))]
        if any(h is None for h in layer):
            continue
        hashes: list[bytes] = [h for h in layer if h is not None]
        while len(hashes) > 1:
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
        out[(level, idx)] = hashes[0]
    return out
