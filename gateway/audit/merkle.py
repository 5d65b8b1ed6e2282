"""RFC 6962 / RFC 9162 Merkle tree hashing, proof generation and proof verification.

Pure functions only: no I/O, no database.

Storage model
-------------
The gateway stores the hash of every *perfect* subtree of the log, addressed by
``(level, index)``: level 0 holds leaf hashes, and the level-``L`` node with index ``i``
covers the leaves ``[i * 2**L, (i + 1) * 2**L)``. A node only exists once all of its
leaves have been appended, so stored nodes never change.

Proofs (RFC 9162 §2.1.3 and §2.1.4, and the subtree proofs of the Merkle Tree
Certificates draft) are sequences of hashes of ranges of leaves. A range on the right
edge of the tree is usually not perfect; its hash is rebuilt from the perfect nodes that
cover it. The ``*_proof_nodes`` functions list every perfect node a proof needs, so the
caller can fetch them in one query, and the ``assemble_*`` functions turn those nodes
into the proof.

Appending is done with :class:`CompactRange`, the list of perfect-subtree hashes on the
right edge of the tree (one per set bit of the tree size), small enough to live in one
database row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "Node",
    "NodeHashes",
    "ProofError",
    "assemble_consistency_proof",
    "assemble_inclusion_proof",
    "assemble_subtree_consistency_proof",
    "assemble_subtree_inclusion_proof",
    "consistency_proof_nodes",
    "inclusion_proof_nodes",
    "is_valid_subtree",
    "leaf_hash",
    "node_hash",
    "range_nodes",
    "root_from_leaves",
    "root_from_nodes",
    "subtree_consistency_proof_nodes",
    "subtree_hash_from_nodes",
    "subtree_inclusion_proof_nodes",
    "verify_consistency",
    "verify_inclusion",
    "verify_subtree_consistency",
    "verify_subtree_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The RFC 6962 root of the empty tree: SHA-256 of the empty string."""

Node = tuple[int, int]
"""Address of a perfect subtree: ``(level, index)``."""

NodeHashes = Mapping[Node, bytes]
"""Hashes of perfect subtrees, keyed by their address."""

Range = tuple[int, int]
"""A half-open interval ``[begin, end)`` of leaf indexes."""

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

_sha256 = hashlib.sha256


class ProofError(ValueError):
    """A Merkle proof did not verify, or its parameters are invalid."""


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 6962 leaf hash SHA-256(0x00 ‖ entry)."""
    return _sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash SHA-256(0x01 ‖ left ‖ right)."""
    return _sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaves(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH(D_n) for the given leaf hashes, following the RFC 9162 §2.1.1 definition.

    A deliberately simple reference implementation (recursive split at the largest power
    of two smaller than n), used by verifiers and tests; the gateway uses
    :class:`CompactRange` instead.
    """

    def mth(begin: int, end: int) -> bytes:
        n = end - begin
        if n == 1:
            return leaf_hashes[begin]
        k = _split_point(n)
        return node_hash(mth(begin, begin + k), mth(begin + k, end))

    if not leaf_hashes:
        return EMPTY_ROOT
    return mth(0, len(leaf_hashes))


# ---------------------------------------------------------------------------
# Tree geometry


def _split_point(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _bit_ceil(n: int) -> int:
    """Smallest power of two greater than or equal to n."""
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _trailing_zeros(n: int) -> int:
    return (n & -n).bit_length() - 1


def is_valid_subtree(start: int, end: int) -> bool:
    """Whether ``[start, end)`` is a subtree in the sense of the Merkle Tree Certificates draft.

    That is ``0 <= start < end`` and ``start`` is a multiple of BIT_CEIL(end - start), so
    that the range is one (possibly partial) node of any tree of size >= end.
    """
    return 0 <= start < end and start % _bit_ceil(end - start) == 0


def range_nodes(begin: int, end: int) -> list[Node]:
    """The perfect nodes that exactly cover the leaves ``[begin, end)``, left to right.

    This is the canonical (minimal) decomposition, the "compact range" of the interval.
    """
    if not 0 <= begin <= end:
        raise ValueError(f"invalid range [{begin}, {end})")
    nodes: list[Node] = []
    while begin < end:
        # The biggest aligned block that starts at `begin` and does not pass `end`.
        level = (end - begin).bit_length() - 1
        if begin:
            level = min(level, _trailing_zeros(begin))
        nodes.append((level, begin >> level))
        begin += 1 << level
    return nodes


def _hash_range(begin: int, end: int, nodes: NodeHashes) -> bytes:
    """Hash of the subtree ``[begin, end)`` (a valid subtree) from its perfect parts."""
    parts = range_nodes(begin, end)
    try:
        acc = nodes[parts[-1]]
        # The parts shrink from left to right, so folding from the right rebuilds
        # exactly the RFC 6962 split at the largest power of two.
        for part in reversed(parts[:-1]):
            acc = node_hash(nodes[part], acc)
    except KeyError as exc:
        raise KeyError(f"missing node {exc.args[0]} needed for range [{begin}, {end})") from None
    return acc


def _path_ranges(level: int, index: int, size: int) -> list[Range]:
    """Leaf ranges of the siblings on the path from node ``(level, index)`` to the root.

    Bottom-up, as RFC 9162 orders proofs. A sibling that would lie entirely beyond the
    tree does not exist (its parent is the node itself, promoted); a sibling that is cut
    by the right edge covers only the leaves up to ``size``.
    """
    ranges: list[Range] = []
    while (size - 1) >> level:  # the node at this level is not yet the root
        lo = (index ^ 1) << level
        if lo < size:
            ranges.append((lo, min(lo + (1 << level), size)))
        index >>= 1
        level += 1
    return ranges


def _inclusion_ranges(index: int, size: int) -> list[Range]:
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} out of range for tree size {size}")
    return _path_ranges(0, index, size)


def _subtree_inclusion_ranges(index: int, start: int, end: int) -> list[Range]:
    if not is_valid_subtree(start, end):
        raise ValueError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ValueError(f"leaf index {index} out of range for subtree [{start}, {end})")
    # A subtree is a Merkle tree of its own leaves; shifting back by `start` keeps every
    # range aligned because `start` is a multiple of the subtree's bit ceiling.
    return [(start + a, start + b) for a, b in _path_ranges(0, index - start, end - start)]


def _subtree_consistency_ranges(start: int, end: int, size: int) -> list[Range]:
    """Ranges of SUBTREE_PROOF(start, end, D_size), of which PROOF(m, D_n) is start=0."""
    if start == end or (start == 0 and end == size):
        return []
    if end == size:
        # The subtree is itself a node on the right edge: prove its inclusion. Its level
        # is the height where the paths to `start` and `end - 1` meet.
        level = ((end - 1) ^ start).bit_length()
        return _path_ranges(level, (end - 1) >> level, size)
    # Otherwise start from the largest perfect node that ends at `end`. The verifier
    # already knows it when it is the whole subtree; if not, it is sent first.
    level = _trailing_zeros(end - start)
    index = (end - 1) >> level
    first: list[Range] = []
    if end - start != 1 << level:
        first.append((end - (1 << level), end))
    return first + _path_ranges(level, index, size)


def _nodes_for(ranges: Iterable[Range]) -> list[Node]:
    out: list[Node] = []
    for begin, end in ranges:
        out.extend(range_nodes(begin, end))
    return out


def _assemble(ranges: Iterable[Range], nodes: NodeHashes) -> list[bytes]:
    return [_hash_range(begin, end, nodes) for begin, end in ranges]


# ---------------------------------------------------------------------------
# Proof generation from stored nodes


def inclusion_proof_nodes(index: int, size: int) -> list[Node]:
    """The perfect nodes needed to build the inclusion proof of leaf ``index`` in ``size``."""
    return _nodes_for(_inclusion_ranges(index, size))


def assemble_inclusion_proof(index: int, size: int, nodes: NodeHashes) -> list[bytes]:
    """Build the RFC 9162 inclusion proof of leaf ``index`` in a tree of ``size`` leaves.

    ``nodes`` must contain (at least) the nodes listed by :func:`inclusion_proof_nodes`;
    a missing node raises ``KeyError``.
    """
    return _assemble(_inclusion_ranges(index, size), nodes)


def _check_consistency_sizes(old_size: int, new_size: int) -> None:
    if not 0 < old_size <= new_size:
        raise ValueError(
            f"consistency proof needs 0 < old size <= new size, got {old_size}, {new_size}"
        )


def consistency_proof_nodes(old_size: int, new_size: int) -> list[Node]:
    """The perfect nodes needed to build the consistency proof between two tree sizes."""
    _check_consistency_sizes(old_size, new_size)
    return _nodes_for(_subtree_consistency_ranges(0, old_size, new_size))


def assemble_consistency_proof(old_size: int, new_size: int, nodes: NodeHashes) -> list[bytes]:
    """Build the RFC 9162 consistency proof between trees of ``old_size`` and ``new_size``."""
    _check_consistency_sizes(old_size, new_size)
    return _assemble(_subtree_consistency_ranges(0, old_size, new_size), nodes)


def subtree_inclusion_proof_nodes(index: int, start: int, end: int) -> list[Node]:
    """The perfect nodes needed for the inclusion proof of leaf ``index`` in [start, end)."""
    return _nodes_for(_subtree_inclusion_ranges(index, start, end))


def assemble_subtree_inclusion_proof(
    index: int, start: int, end: int, nodes: NodeHashes
) -> list[bytes]:
    """Build the subtree inclusion proof of leaf ``index`` in the subtree ``[start, end)``."""
    return _assemble(_subtree_inclusion_ranges(index, start, end), nodes)


def _check_subtree_consistency_args(start: int, end: int, size: int) -> None:
    if not is_valid_subtree(start, end):
        raise ValueError(f"[{start}, {end}) is not a valid subtree")
    if end > size:
        raise ValueError(f"subtree end {end} is beyond tree size {size}")


def subtree_consistency_proof_nodes(start: int, end: int, size: int) -> list[Node]:
    """The perfect nodes needed for the consistency proof of subtree [start, end) in ``size``."""
    _check_subtree_consistency_args(start, end, size)
    return _nodes_for(_subtree_consistency_ranges(start, end, size))


def assemble_subtree_consistency_proof(
    start: int, end: int, size: int, nodes: NodeHashes
) -> list[bytes]:
    """Build SUBTREE_PROOF(start, end, D_size) from the Merkle Tree Certificates draft."""
    _check_subtree_consistency_args(start, end, size)
    return _assemble(_subtree_consistency_ranges(start, end, size), nodes)


def root_from_nodes(size: int, nodes: NodeHashes) -> bytes:
    """The RFC 6962 root of the tree of ``size`` leaves, from its perfect parts.

    The parts are ``range_nodes(0, size)``; ``EMPTY_ROOT`` for size 0.
    """
    if size < 0:
        raise ValueError(f"negative tree size {size}")
    return EMPTY_ROOT if size == 0 else _hash_range(0, size, nodes)


def subtree_hash_from_nodes(start: int, end: int, nodes: NodeHashes) -> bytes:
    """MTH(D[start:end]) of a valid subtree, from its perfect parts ``range_nodes(start, end)``."""
    if not is_valid_subtree(start, end):
        raise ValueError(f"[{start}, {end}) is not a valid subtree")
    return _hash_range(start, end, nodes)


# ---------------------------------------------------------------------------
# Incremental appends


NewNode = tuple[int, int, bytes]
"""A newly completed perfect subtree: ``(level, index, hash)``."""


@dataclass(frozen=True, slots=True)
class CompactRange:
    """Appender state: the perfect-subtree hashes on the right edge of a tree of ``size``.

    ``hashes`` holds one hash per set bit of ``size``, highest level (leftmost) first;
    together they cover ``[0, size)``. Immutable: :meth:`append` returns a new state.
    """

    size: int = 0
    hashes: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"negative tree size {self.size}")
        if len(self.hashes) != self.size.bit_count():
            raise ValueError(
                f"a tree of size {self.size} needs {self.size.bit_count()} frontier hashes, "
                f"got {len(self.hashes)}"
            )
        if any(len(h) != HASH_SIZE for h in self.hashes):
            raise ValueError("frontier hashes must be 32 bytes")

    def nodes(self) -> list[Node]:
        """Addresses of the frontier hashes, in the same order as :attr:`hashes`."""
        return range_nodes(0, self.size)

    def root(self) -> bytes:
        """The RFC 6962 root of the tree of :attr:`size` leaves."""
        if not self.hashes:
            return EMPTY_ROOT
        acc = self.hashes[-1]
        for h in reversed(self.hashes[:-1]):
            acc = node_hash(h, acc)
        return acc

    def append(
        self, leaf_hashes: Iterable[bytes], *, stride: int | None = None
    ) -> tuple[CompactRange, list[NewNode], bytes]:
        """Append leaf hashes; return the new state, the newly completed nodes, and the new root.

        The new nodes are exactly the perfect subtrees completed by this batch (leaves,
        level 0, included), in order of completion, each as ``(level, index, hash)``; with a
        ``stride``, only those of the levels above 0 that are multiples of it (the levels a
        caller stores), which saves listing one node per leaf.
        """
        stack = list(self.hashes)
        size = self.size
        new_nodes: list[NewNode] = []
        emit = new_nodes.append
        push = stack.append
        pop = stack.pop
        sha = _sha256
        prefix = _NODE_PREFIX
        every = stride or 1
        leaves = stride is None
        # Hot loop: kept free of function calls beyond hashlib so batches of ~100k leaves
        # stay cheap.
        for h in leaf_hashes:
            if len(h) != HASH_SIZE:
                raise ValueError(f"leaf hash {size} is {len(h)} bytes, expected {HASH_SIZE}")
            if leaves:
                emit((0, size, h))
            level = 0
            index = size
            # Each trailing one bit of the old size is a perfect left sibling now completed.
            while index & 1:
                h = sha(prefix + pop() + h).digest()
                level += 1
                index >>= 1
                if not level % every:
                    emit((level, index, h))
            push(h)
            size += 1
        state = CompactRange(size, tuple(stack))
        return state, new_nodes, state.root()

    def to_bytes(self) -> bytes:
        """Serialise the frontier: its hashes concatenated, highest level first.

        The size is not included (the gateway keeps it in its own column of the same
        row); :meth:`from_bytes` needs it back. An empty tree gives ``b""``.
        """
        return b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> CompactRange:
        """Rebuild the state of a tree of ``size`` leaves from :meth:`to_bytes`, strictly."""
        if size < 0:
            raise ValueError(f"negative tree size {size}")
        if len(data) != HASH_SIZE * size.bit_count():
            raise ValueError(
                f"frontier of a tree of size {size} must be {HASH_SIZE * size.bit_count()} "
                f"bytes, got {len(data)}"
            )
        return cls(size, tuple(data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)))

    @classmethod
    def from_nodes(cls, size: int, nodes: NodeHashes) -> CompactRange:
        """Rebuild the state of a tree of ``size`` from stored nodes (``range_nodes(0, size)``)."""
        return cls(size, tuple(nodes[n] for n in range_nodes(0, size)))


# ---------------------------------------------------------------------------
# Verification


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what} is {len(value)} bytes, expected {HASH_SIZE}")


def _check_proof(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        _check_hash(p, f"proof element {i}")


def _check_int(value: int, what: str) -> None:
    if value < 0:
        raise ProofError(f"{what} must not be negative, got {value}")


def _evaluate_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes]) -> bytes:
    """RFC 9162 §2.1.3.2 steps 1-5: compute the root implied by an inclusion proof."""
    _check_int(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index} is not below tree size {size}")
    _check_hash(leaf, "leaf hash")
    _check_proof(proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof too long for leaf {index} of {size}")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no right sibling (promoted nodes).
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short for leaf {index} of {size}")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an RFC 9162 §2.1.3.2 inclusion proof; raise :class:`ProofError` on failure."""
    if _evaluate_inclusion(leaf_hash, index, size, proof) != root:
        raise ProofError(f"inclusion proof for leaf {index} does not match the root of size {size}")


def verify_subtree_inclusion(
    leaf_hash: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify that leaf ``index`` is in the subtree ``[start, end)`` whose hash is ``root``.

    Merkle Tree Certificates draft, "Verifying a Subtree Inclusion Proof": an RFC 9162
    inclusion proof of leaf ``index - start`` in the tree ``D[start:end]``.
    """
    _check_int(start, "subtree start")
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if not start <= index < end:
        raise ProofError(f"leaf index {index} is outside the subtree [{start}, {end})")
    if _evaluate_inclusion(leaf_hash, index - start, end - start, proof) != root:
        raise ProofError(
            f"inclusion proof for leaf {index} does not match subtree [{start}, {end})"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Verify an RFC 9162 §2.1.4.2 consistency proof; raise :class:`ProofError` on failure.

    Requires ``0 < old_size <= new_size``: a proof from the empty tree proves nothing and
    is rejected. When the sizes are equal the proof must be empty and the roots equal
    (compared as given, as transparency-dev/merkle does).
    """
    _check_int(old_size, "old size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size} is greater than new size {new_size}")
    if old_size == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if old_size == new_size:
        if proof:
            raise ProofError("sizes are equal but the consistency proof is not empty")
        if old_root != new_root:
            raise ProofError(f"sizes are equal ({old_size}) but the roots differ")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    _check_proof(proof)

    path = list(proof)
    if old_size & (old_size - 1) == 0:
        # The old tree is a perfect node of the new one; its root is the starting point.
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long for sizes {old_size} -> {new_size}")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short for sizes {old_size} -> {new_size}")
    if fr != old_root:
        raise ProofError(f"consistency proof does not match the old root (size {old_size})")
    if sr != new_root:
        raise ProofError(f"consistency proof does not match the new root (size {new_size})")


def verify_subtree_consistency(
    start: int,
    end: int,
    size: int,
    subtree_root: bytes,
    root: bytes,
    proof: Sequence[bytes],
) -> None:
    """Verify that subtree ``[start, end)`` with hash ``subtree_root`` is part of the tree
    of ``size`` leaves with root ``root``; raise :class:`ProofError` on failure.

    Merkle Tree Certificates draft, "Verifying a Subtree Consistency Proof". As in
    transparency-dev/merkle, an empty subtree (``start == end <= size``) is accepted with
    an empty proof iff its hash is ``EMPTY_ROOT``: it is trivially part of any tree.
    """
    _check_int(start, "subtree start")
    if start == end:
        if end > size:
            raise ProofError(f"empty subtree at {end} is beyond tree size {size}")
        if proof:
            raise ProofError("subtree is empty but the consistency proof is not")
        if subtree_root != EMPTY_ROOT:
            raise ProofError("subtree is empty but its hash is not the empty root")
        return
    if not is_valid_subtree(start, end):
        raise ProofError(f"[{start}, {end}) is not a valid subtree")
    if end > size:
        raise ProofError(f"subtree end {end} is beyond tree size {size}")
    _check_proof(proof)

    fn, sn, tn = start, end - 1, size - 1
    if sn == tn:
        # The subtree is a node on the right edge: climb to it.
        while fn != sn:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    else:
        # Climb to the largest perfect node ending at `end`.
        while fn != sn and sn & 1:
            fn >>= 1
            sn >>= 1
            tn >>= 1
    rest: Sequence[bytes]
    if fn == sn:
        fr = sr = subtree_root
        rest = proof
    else:
        if not proof:
            raise ProofError("empty subtree consistency proof")
        fr = sr = proof[0]
        rest = proof[1:]
    for c in rest:
        if tn == 0:
            raise ProofError(f"subtree consistency proof too long for [{start}, {end}) in {size}")
        if sn & 1 or sn == tn:
            if fn < sn:
                fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not sn & 1 and sn:
                fn >>= 1
                sn >>= 1
                tn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
        tn >>= 1
    if tn != 0:
        raise ProofError(f"subtree consistency proof too short for [{start}, {end}) in {size}")
    if fr != subtree_root:
        raise ProofError(f"subtree consistency proof does not match the hash of [{start}, {end})")
    if sr != root:
        raise ProofError(f"subtree consistency proof does not match the root of size {size}")
