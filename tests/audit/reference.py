"""Recursive reference definitions of Merkle proofs, straight from the specifications.

These follow the recursive definitions of RFC 9162 §2.1 (MTH, PATH, PROOF) and of the
Merkle Tree Certificates draft (SUBTREE_PROOF), with proof elements described as the leaf
ranges whose hashes they are. The reference verifiers place the proof hashes at those
ranges and rebuild the roots by the MTH recursion: a completely different route from the
iterative RFC 9162 algorithms in ``gateway.audit.merkle``, so the two can be compared.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.audit.merkle import EMPTY_ROOT, node_hash

Range = tuple[int, int]

# transparency-dev/merkle test leaves behind vector sets 0-4 (see shared/testdata/README.md).
VECTOR_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
VECTOR_ROOTS = [
    bytes.fromhex(h)
    for h in (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]


def split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) by the RFC 9162 recursion."""
    if hi - lo == 1:
        return leaves[lo]
    k = split(hi - lo)
    return node_hash(mth(leaves, lo, lo + k), mth(leaves, lo + k, hi))


def path(m: int, lo: int, hi: int) -> list[Range]:
    """PATH(m, D[lo:hi]) as leaf ranges, bottom-up (RFC 9162 §2.1.3.1)."""
    if hi - lo == 1:
        return []
    k = split(hi - lo)
    if m < lo + k:
        return [*path(m, lo, lo + k), (lo + k, hi)]
    return [*path(m, lo + k, hi), (lo, lo + k)]


def subtree_proof(start: int, end: int, lo: int, hi: int, known: bool) -> list[Range]:
    """SUBTREE_SUBPROOF(start, end, D[lo:hi], known) as leaf ranges (MTC draft)."""
    if start == lo and end == hi:
        return [] if known else [(lo, hi)]
    k = split(hi - lo)
    if end <= lo + k:
        return [*subtree_proof(start, end, lo, lo + k, known), (lo + k, hi)]
    if lo + k <= start:
        return [*subtree_proof(start, end, lo + k, hi, known), (lo, lo + k)]
    return [*subtree_proof(lo + k, end, lo + k, hi, False), (lo, lo + k)]


def consistency_proof(m: int, n: int) -> list[Range]:
    """PROOF(m, D_n) as leaf ranges (RFC 9162 §2.1.4.1), which is SUBTREE_PROOF(0, m, D_n)."""
    return subtree_proof(0, m, 0, n, True)


def is_node(start: int, end: int, lo: int, hi: int) -> bool:
    """Whether [start, end) is one of the nodes of the MTH recursion over [lo, hi)."""
    if (start, end) == (lo, hi):
        return True
    if hi - lo == 1:
        return False
    k = split(hi - lo)
    if end <= lo + k:
        return is_node(start, end, lo, lo + k)
    if lo + k <= start:
        return is_node(start, end, lo + k, hi)
    return False


def rebuild(values: dict[Range, bytes], lo: int, hi: int) -> bytes | None:
    """MTH over [lo, hi) using the given range hashes; None if some part is not covered."""
    if (lo, hi) in values:
        return values[(lo, hi)]
    if hi - lo <= 1:
        return None
    k = split(hi - lo)
    left = rebuild(values, lo, lo + k)
    right = rebuild(values, lo + k, hi)
    if left is None or right is None:
        return None
    return node_hash(left, right)


def is_valid_subtree(start: int, end: int) -> bool:
    """0 <= start < end and start is a multiple of BIT_CEIL(end - start)."""
    if not 0 <= start < end:
        return False
    ceil = 1
    while ceil < end - start:
        ceil *= 2
    return start % ceil == 0


def inclusion_ok(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Reference verdict for an inclusion proof."""
    if not 0 <= index < size or len(leaf) != 32 or any(len(p) != 32 for p in proof):
        return False
    ranges = path(index, 0, size)
    if len(ranges) != len(proof):
        return False
    values = dict(zip(ranges, proof, strict=True))
    values[(index, index + 1)] = leaf
    return rebuild(values, 0, size) == root


def subtree_inclusion_ok(
    leaf: bytes, index: int, start: int, end: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Reference verdict for a subtree inclusion proof."""
    if not is_valid_subtree(start, end) or not start <= index < end or len(leaf) != 32:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    ranges = path(index, start, end)
    if len(ranges) != len(proof):
        return False
    values = dict(zip(ranges, proof, strict=True))
    values[(index, index + 1)] = leaf
    return rebuild(values, start, end) == root


def subtree_consistency_ok(
    start: int, end: int, size: int, sub_root: bytes, root: bytes, proof: Sequence[bytes]
) -> bool:
    """Reference verdict for a subtree consistency proof (empty subtrees as transparency-dev)."""
    if start == end:
        return 0 <= end <= size and not proof and sub_root == EMPTY_ROOT
    if not is_valid_subtree(start, end) or end > size:
        return False
    if any(len(p) != 32 for p in proof):
        return False
    known = is_node(start, end, 0, size)
    ranges = subtree_proof(start, end, 0, size, True)
    if len(ranges) != len(proof):
        return False
    values = dict(zip(ranges, proof, strict=True))
    if known:
        # The subtree is a node of the tree: its hash is used directly.
        values[(start, end)] = sub_root
        return rebuild(values, 0, size) == root
    return rebuild(values, start, end) == sub_root and rebuild(values, 0, size) == root


def consistency_ok(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Reference verdict for a consistency proof (0 < old <= new; equal sizes: equal roots)."""
    if not 0 < old_size <= new_size:
        return False
    if old_size == new_size:
        return not proof and old_root == new_root
    if len(old_root) != 32 or len(new_root) != 32:
        return False
    return subtree_consistency_ok(0, old_size, new_size, old_root, new_root, proof)
