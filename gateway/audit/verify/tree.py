"""The tree rebuilt from the entries: each run's perfect subtrees, hashed where the run is
checked, joined in log order on the tree's right edge."""

from __future__ import annotations

import hashlib

from gateway.audit import merkle, tiles


def subtree_nodes(start: int, leaves: bytes) -> list[tuple[int, bytes]]:
    """The perfect subtrees exactly covering leaves ``[start, start + n)``, as (level, hash)."""
    out = []
    sha = hashlib.sha256
    for level, index in merkle.range_nodes(start, start + len(leaves) // 32):
        first = (index << level) - start
        layer = leaves[first * 32 : (first + (1 << level)) * 32]  # hashes of one level, 32 bytes each
        while len(layer) > 32:
            layer = b"".join([sha(b"\x01" + layer[i : i + 64]).digest() for i in range(0, len(layer), 64)])
        out.append((level, layer))
    return out


def tile_level_above(layer: bytes) -> bytes:
    """The hashes one tile level (8 tree levels) above ``layer`` (a level's hashes, 32 bytes
    each): one for each whole group of 256, as the next level's tiles hold them."""
    sha = hashlib.sha256
    for _ in range(tiles.HEIGHT):
        whole = len(layer) // 64 * 64  # a hash left without a sibling has no parent yet
        layer = b"".join([sha(b"\x01" + layer[i : i + 64]).digest() for i in range(0, whole, 64)])
    return layer


class Frontier:
    """The right edge of the tree being rebuilt: one hash per set bit of its size.

    Appends leaves, or whole perfect subtrees hashed elsewhere (a worker's run), so the
    in-order part does a few hashes a run instead of one a leaf.
    """

    def __init__(self) -> None:
        self.size = 0
        self._stack: list[bytes] = []

    def add(self, level: int, node: bytes) -> None:
        """Append the perfect subtree of ``2**level`` leaves whose hash is ``node``."""
        assert self.size % (1 << level) == 0, "a subtree must start at a multiple of its size"
        stack = self._stack
        n = self.size >> level
        while n & 1:
            node = merkle.node_hash(stack.pop(), node)
            n >>= 1
        stack.append(node)
        self.size += 1 << level

    def add_leaves(self, leaves: bytes) -> None:
        """Append leaf hashes (32 bytes each, concatenated)."""
        stack = self._stack
        pop, push = stack.pop, stack.append
        sha = hashlib.sha256
        size = self.size
        for i in range(0, len(leaves), 32):
            h = leaves[i : i + 32]
            n = size
            while n & 1:
                h = sha(b"\x01" + pop() + h).digest()
                n >>= 1
            push(h)
            size += 1
        self.size = size

    def root(self) -> bytes:
        """The RFC 6962 root of the tree so far."""
        if not self._stack:
            return merkle.EMPTY_ROOT
        acc = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            acc = merkle.node_hash(h, acc)
        return acc
