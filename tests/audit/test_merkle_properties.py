"""Property tests: generated proofs verify, the appender agrees with the reference root,
and tampering with any bit of a proof, a root, an entry, an index or a size is caught."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit import merkle
from gateway.audit.merkle import CompactRange, ProofError

from . import reference

MAX_SIZE = 2000
ENTRIES = [f"byline entry {i}".encode() for i in range(MAX_SIZE)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]
# Every perfect subtree of the largest tree: a stand-in for the gateway's node table. A
# proof for a smaller tree only asks for nodes that are complete at that size.
_NEW_NODES = CompactRange().append(LEAVES)[1]
NODES = {(level, index): h for level, index, h in _NEW_NODES}

FAST = settings(max_examples=60, deadline=None)
FLIPS = settings(max_examples=15, deadline=None)


@cache
def root(size: int) -> bytes:
    """Reference root of the first ``size`` leaves."""
    return merkle.root_from_leaves(LEAVES[:size])


def range_hashes(ranges: Sequence[reference.Range]) -> list[bytes]:
    """Hashes of leaf ranges by the RFC 9162 MTH recursion."""
    return [reference.mth(LEAVES, lo, hi) for lo, hi in ranges]


def only(wanted: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """The stored nodes the gateway would fetch for a proof, and nothing else."""
    assert len(set(wanted)) == len(wanted)
    return {n: NODES[n] for n in wanted}


def flipped(value: bytes, bit: int) -> bytes:
    """``value`` with one bit inverted."""
    out = bytearray(value)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def passes(verify: Callable[..., None], *args: object) -> bool:
    """Whether ``verify(*args)`` accepts."""
    try:
        verify(*args)
    except ProofError:
        return False
    return True


sizes = st.integers(min_value=1, max_value=MAX_SIZE)


@st.composite
def size_and_index(draw: st.DrawFn) -> tuple[int, int]:
    """A tree size and a leaf index in it."""
    size = draw(sizes)
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def two_sizes(draw: st.DrawFn, strict: bool = False) -> tuple[int, int]:
    """Tree sizes 0 < old <= new (old < new if strict)."""
    new = draw(st.integers(min_value=2 if strict else 1, max_value=MAX_SIZE))
    return draw(st.integers(min_value=1, max_value=new - 1 if strict else new)), new


@st.composite
def subtree_in_tree(draw: st.DrawFn) -> tuple[int, int, int, int]:
    """A tree size, a valid subtree [start, end) of it, and a leaf index in the subtree."""
    size = draw(sizes)
    end = draw(st.integers(min_value=1, max_value=size))
    starts = [s for s in range(end) if reference.is_valid_subtree(s, end)]
    start = draw(st.sampled_from(starts))
    return size, start, end, draw(st.integers(min_value=start, max_value=end - 1))


def test_stored_nodes_are_perfect_subtree_hashes() -> None:
    """The appender emits every perfect subtree of the tree exactly once, with its hash."""
    level_hashes = list(LEAVES)
    level = 0
    expected: dict[tuple[int, int], bytes] = {}
    while level_hashes:
        expected.update({(level, i): h for i, h in enumerate(level_hashes)})
        level_hashes = [
            merkle.node_hash(level_hashes[i], level_hashes[i + 1])
            for i in range(0, len(level_hashes) - 1, 2)
        ]
        level += 1
    assert len(_NEW_NODES) == len(expected)
    assert expected == NODES


@FAST
@given(size_and_index())
def test_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    """An inclusion proof assembled from stored nodes is RFC 9162 PATH and verifies."""
    size, index = case
    proof = merkle.assemble_inclusion_proof(
        index, size, only(merkle.inclusion_proof_nodes(index, size))
    )
    assert proof == range_hashes(reference.path(index, 0, size))
    merkle.verify_inclusion(LEAVES[index], index, size, proof, root(size))


@FAST
@given(two_sizes())
def test_consistency_proof_verifies(case: tuple[int, int]) -> None:
    """A consistency proof assembled from stored nodes is RFC 9162 PROOF and verifies."""
    old, new = case
    nodes = only(merkle.consistency_proof_nodes(old, new))
    proof = merkle.assemble_consistency_proof(old, new, nodes)
    assert proof == range_hashes(reference.consistency_proof(old, new))
    merkle.verify_consistency(old, new, root(old), root(new), proof)


@FAST
@given(subtree_in_tree())
def test_subtree_proofs_verify(case: tuple[int, int, int, int]) -> None:
    """Subtree inclusion and consistency proofs match the draft's definitions and verify."""
    size, start, end, index = case
    sub_root = reference.mth(LEAVES, start, end)
    assert merkle.subtree_hash_from_nodes(start, end, NODES) == sub_root

    nodes = only(merkle.subtree_inclusion_proof_nodes(index, start, end))
    proof = merkle.assemble_subtree_inclusion_proof(index, start, end, nodes)
    assert proof == range_hashes(reference.path(index, start, end))
    merkle.verify_subtree_inclusion(LEAVES[index], index, start, end, proof, sub_root)

    nodes = only(merkle.subtree_consistency_proof_nodes(start, end, size))
    proof = merkle.assemble_subtree_consistency_proof(start, end, size, nodes)
    assert proof == range_hashes(reference.subtree_proof(start, end, 0, size, True))
    merkle.verify_subtree_consistency(start, end, size, sub_root, root(size), proof)
    if start == 0:
        # With start 0 a subtree consistency proof is an ordinary consistency proof.
        merkle.verify_consistency(end, size, sub_root, root(size), proof)


@FAST
@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=12))
def test_appender_matches_reference_for_random_batches(batches: list[int]) -> None:
    """Appending in random batches gives the reference root and stores each node once."""
    state = CompactRange()
    emitted: list[tuple[int, int, bytes]] = []
    for count in batches:
        count = min(count, MAX_SIZE - state.size)
        before = state
        state, new_nodes, new_root = state.append(LEAVES[state.size : state.size + count])
        assert before.size + count == state.size
        assert new_root == state.root() == root(state.size)
        assert CompactRange.from_bytes(state.size, state.to_bytes()) == state
        assert CompactRange.from_nodes(state.size, NODES) == state
        assert merkle.root_from_nodes(state.size, NODES) == new_root
        emitted.extend(new_nodes)
    keys = [(level, index) for level, index, _ in emitted]
    assert len(keys) == len(set(keys))
    complete = {(lv, i) for (lv, i) in NODES if (i + 1) << lv <= state.size}
    assert set(keys) == complete
    assert all(NODES[(level, index)] == h for level, index, h in emitted)


@FAST
@given(st.lists(st.integers(min_value=0, max_value=600), min_size=1, max_size=8), st.sampled_from([1, 2, 8]))
def test_a_stride_keeps_only_the_levels_asked_for(batches: list[int], stride: int) -> None:
    """With a stride, append gives the same state and root, and of the new nodes exactly those
    of the levels above 0 that are multiples of the stride."""
    plain = strided = CompactRange()
    for count in batches:
        count = min(count, MAX_SIZE - plain.size)
        leaves = LEAVES[plain.size : plain.size + count]
        plain, every, root_a = plain.append(leaves)
        strided, kept, root_b = strided.append(leaves, stride=stride)
        assert (strided, root_b) == (plain, root_a)
        assert kept == [n for n in every if n[0] > 0 and n[0] % stride == 0]


def test_empty_appends_and_empty_tree() -> None:
    """Appending nothing changes nothing; the empty tree has the empty root."""
    state, nodes, empty_root = CompactRange().append([])
    assert (state, nodes, empty_root) == (CompactRange(), [], merkle.EMPTY_ROOT)
    assert state.to_bytes() == b""
    assert CompactRange.from_bytes(0, b"") == state
    assert merkle.root_from_nodes(0, {}) == merkle.root_from_leaves([]) == merkle.EMPTY_ROOT


@FLIPS
@given(size_and_index())
def test_inclusion_tampering_fails(case: tuple[int, int]) -> None:
    """Every single-bit flip of a proof hash, the root, the entry or the index is rejected;
    a flipped tree size passes only where the reference says the same hashes prove it."""
    size, index = case
    proof = merkle.assemble_inclusion_proof(index, size, NODES)
    leaf, good_root = LEAVES[index], root(size)
    merkle.verify_inclusion(leaf, index, size, proof, good_root)
    for j, element in enumerate(proof):
        for bit in range(256):
            bad = [*proof[:j], flipped(element, bit), *proof[j + 1 :]]
            with pytest.raises(ProofError):
                merkle.verify_inclusion(leaf, index, size, bad, good_root)
    for bit in range(256):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index, size, proof, flipped(good_root, bit))
    for bit in range(8 * len(ENTRIES[index])):
        bad_leaf = merkle.leaf_hash(flipped(ENTRIES[index], bit))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(bad_leaf, index, size, proof, good_root)
    for bit in range(64):
        with pytest.raises(ProofError):
            merkle.verify_inclusion(leaf, index ^ (1 << bit), size, proof, good_root)
        bad_size = size ^ (1 << bit)
        accepted = passes(merkle.verify_inclusion, leaf, index, bad_size, proof, good_root)
        assert accepted == reference.inclusion_ok(leaf, index, bad_size, proof, good_root)


@FLIPS
@given(two_sizes(strict=True))
def test_consistency_tampering_fails(case: tuple[int, int]) -> None:
    """Every single-bit flip of a proof hash or either root is rejected; a flipped size
    passes only where the reference says the same hashes prove it."""
    old, new = case
    proof = merkle.assemble_consistency_proof(old, new, NODES)
    old_root, new_root = root(old), root(new)
    merkle.verify_consistency(old, new, old_root, new_root, proof)
    for j, element in enumerate(proof):
        for bit in range(256):
            bad = [*proof[:j], flipped(element, bit), *proof[j + 1 :]]
            with pytest.raises(ProofError):
                merkle.verify_consistency(old, new, old_root, new_root, bad)
    for bit in range(256):
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, new, flipped(old_root, bit), new_root, proof)
        with pytest.raises(ProofError):
            merkle.verify_consistency(old, new, old_root, flipped(new_root, bit), proof)
    for bit in range(64):
        for bad_old, bad_new in ((old ^ (1 << bit), new), (old, new ^ (1 << bit))):
            accepted = passes(
                merkle.verify_consistency, bad_old, bad_new, old_root, new_root, proof
            )
            assert accepted == reference.consistency_ok(bad_old, bad_new, old_root, new_root, proof)


@FLIPS
@given(subtree_in_tree())
def test_subtree_tampering_fails(case: tuple[int, int, int, int]) -> None:
    """Bit flips in subtree proofs and hashes are rejected; flipped bounds agree with the
    reference verifier."""
    size, start, end, index = case
    sub_root, tree_root = reference.mth(LEAVES, start, end), root(size)
    incl = merkle.assemble_subtree_inclusion_proof(index, start, end, NODES)
    cons = merkle.assemble_subtree_consistency_proof(start, end, size, NODES)
    for bit in range(256):
        with pytest.raises(ProofError):
            merkle.verify_subtree_inclusion(
                LEAVES[index], index, start, end, incl, flipped(sub_root, bit)
            )
        with pytest.raises(ProofError):
            merkle.verify_subtree_consistency(
                start, end, size, flipped(sub_root, bit), tree_root, cons
            )
        with pytest.raises(ProofError):
            merkle.verify_subtree_consistency(
                start, end, size, sub_root, flipped(tree_root, bit), cons
            )
        for j, element in enumerate(incl):
            bad = [*incl[:j], flipped(element, bit), *incl[j + 1 :]]
            with pytest.raises(ProofError):
                merkle.verify_subtree_inclusion(LEAVES[index], index, start, end, bad, sub_root)
        for j, element in enumerate(cons):
            bad = [*cons[:j], flipped(element, bit), *cons[j + 1 :]]
            with pytest.raises(ProofError):
                merkle.verify_subtree_consistency(start, end, size, sub_root, tree_root, bad)
    for bit in range(64):
        for s, e, n in (
            (start ^ (1 << bit), end, size),
            (start, end ^ (1 << bit), size),
            (start, end, size ^ (1 << bit)),
        ):
            accepted = passes(merkle.verify_subtree_consistency, s, e, n, sub_root, tree_root, cons)
            assert accepted == reference.subtree_consistency_ok(s, e, n, sub_root, tree_root, cons)


def test_inclusion_proof_alone_does_not_bind_tree_size() -> None:
    """Documented limit: leaf 0's proof in a 5-leaf tree also 'verifies' for sizes 6 and 7,
    because the proof hashes are the same; the signed checkpoint is what binds the size."""
    proof = merkle.assemble_inclusion_proof(0, 5, NODES)
    for claimed in (6, 7):
        merkle.verify_inclusion(LEAVES[0], 0, claimed, proof, root(5))
        assert reference.inclusion_ok(LEAVES[0], 0, claimed, proof, root(5))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(LEAVES[0], 0, 4, proof, root(5))


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: merkle.inclusion_proof_nodes(5, 5), ValueError),
        (lambda: merkle.inclusion_proof_nodes(-1, 5), ValueError),
        (lambda: merkle.consistency_proof_nodes(0, 5), ValueError),
        (lambda: merkle.consistency_proof_nodes(6, 5), ValueError),
        (lambda: merkle.subtree_inclusion_proof_nodes(3, 3, 5), ValueError),
        (lambda: merkle.subtree_consistency_proof_nodes(2, 6, 8), ValueError),
        (lambda: merkle.subtree_consistency_proof_nodes(0, 9, 8), ValueError),
        (lambda: merkle.assemble_inclusion_proof(0, 8, {}), KeyError),
        (lambda: merkle.root_from_nodes(3, {(1, 0): LEAVES[0]}), KeyError),
        (lambda: CompactRange.from_bytes(3, b"\x00" * 32), ValueError),
        (lambda: CompactRange(2, ()), ValueError),
        (lambda: CompactRange().append([b"short"]), ValueError),
        (lambda: merkle.range_nodes(5, 4), ValueError),
    ],
)
def test_bad_arguments_are_rejected(call: Callable[[], object], error: type[Exception]) -> None:
    """Impossible proof requests, missing nodes and malformed state raise clear errors."""
    with pytest.raises(error):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: merkle.verify_inclusion(b"\x00" * 31, 0, 1, [], b"\x00" * 31),
        lambda: merkle.verify_inclusion(LEAVES[0], 0, 2, [b"\x00" * 33], root(2)),
        lambda: merkle.verify_inclusion(LEAVES[0], -1, 2, [LEAVES[1]], root(2)),
        lambda: merkle.verify_consistency(-1, 2, root(1), root(2), []),
        lambda: merkle.verify_consistency(1, 2, root(1)[:31], root(2), [LEAVES[1]]),
        lambda: merkle.verify_subtree_inclusion(LEAVES[0], 0, -2, 2, [LEAVES[1]], root(2)),
        lambda: merkle.verify_subtree_consistency(-1, 1, 2, root(1), root(2), [LEAVES[1]]),
    ],
)
def test_malformed_verification_inputs_raise_proof_error(call: Callable[[], None]) -> None:
    """Wrong-length hashes and negative indexes or sizes fail as ProofError, not crashes."""
    with pytest.raises(ProofError):
        call()


def test_range_nodes_is_the_minimal_cover() -> None:
    """range_nodes covers [begin, end) exactly with the fewest aligned perfect nodes."""
    assert merkle.range_nodes(0, 13) == [(3, 0), (2, 2), (0, 12)]
    assert merkle.range_nodes(3, 13) == [(0, 3), (2, 1), (2, 2), (0, 12)]
    assert merkle.range_nodes(8, 8) == []
    for begin in range(0, 40):
        for end in range(begin, 40):
            covered = [
                leaf
                for level, index in merkle.range_nodes(begin, end)
                for leaf in range(index << level, (index + 1) << level)
            ]
            assert covered == list(range(begin, end))
