"""transparency-dev/merkle proof vectors, read in place from the shared test data folder.

The vectors live outside the project, in ``<project root>/../shared/testdata/rfc6962``
(or ``$BYLINE_SHARED_DIR/testdata/rfc6962``). If they are missing the tests fail: a
silently skipped conformance suite proves nothing.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import merkle
from gateway.audit.merkle import NodeHashes, ProofError

from . import reference


def _shared_dir() -> Path:
    override = os.environ.get("BYLINE_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


VECTOR_DIR = _shared_dir() / "testdata" / "rfc6962"
KINDS = ("inclusion", "consistency", "subtreeinclusion", "subtreeconsistency")


def _params(pattern: str) -> list[Any]:
    files = sorted(VECTOR_DIR.glob(pattern))
    if not files:
        # An empty parameter list would make pytest skip; fail loudly instead.
        return [pytest.param(None, id="vectors-missing")]
    return [pytest.param(f, id=f.relative_to(VECTOR_DIR).as_posix()) for f in files]


ALL_VECTORS = _params("*/**/*.json")
# Happy paths of the numbered sets are built from the README's leaves, so they can be
# regenerated; the "additional", "single-entry" and "errors" sets use made-up hashes.
REBUILDABLE = _params("*/[0-9]/happy-path*.json")


def _load(path: Path | None) -> tuple[str, dict[str, Any]]:
    if path is None:
        pytest.fail(f"no test vectors under {VECTOR_DIR}; set BYLINE_SHARED_DIR to the shared dir")
    kind = path.relative_to(VECTOR_DIR).parts[0]
    assert kind in KINDS, f"unexpected vector folder {kind}"
    data = json.loads(path.read_text())
    assert isinstance(data["wantErr"], bool)
    return kind, data


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in data["proof"] or []]


def _verify(kind: str, d: dict[str, Any]) -> None:
    proof = _proof(d)
    if kind == "inclusion":
        merkle.verify_inclusion(
            _b64(d["leafHash"]), d["leafIdx"], d["treeSize"], proof, _b64(d["root"])
        )
    elif kind == "consistency":
        merkle.verify_consistency(d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"]), proof)
    elif kind == "subtreeinclusion":
        merkle.verify_subtree_inclusion(
            _b64(d["leafHash"]), d["leafIdx"], d["start"], d["end"], proof, _b64(d["root"])
        )
    else:
        merkle.verify_subtree_consistency(
            d["start"], d["end"], d["size"], _b64(d["root1"]), _b64(d["root2"]), proof
        )


def _reference_verdict(kind: str, d: dict[str, Any]) -> bool:
    proof = _proof(d)
    if kind == "inclusion":
        return reference.inclusion_ok(
            _b64(d["leafHash"]), d["leafIdx"], d["treeSize"], proof, _b64(d["root"])
        )
    if kind == "consistency":
        return reference.consistency_ok(
            d["size1"], d["size2"], _b64(d["root1"]), _b64(d["root2"]), proof
        )
    if kind == "subtreeinclusion":
        return reference.subtree_inclusion_ok(
            _b64(d["leafHash"]), d["leafIdx"], d["start"], d["end"], proof, _b64(d["root"])
        )
    return reference.subtree_consistency_ok(
        d["start"], d["end"], d["size"], _b64(d["root1"]), _b64(d["root2"]), proof
    )


@pytest.mark.parametrize("path", ALL_VECTORS)
def test_vector_verdict(path: Path | None) -> None:
    """Every vector verifies exactly when it is not marked wantErr."""
    kind, data = _load(path)
    if data["wantErr"]:
        with pytest.raises(ProofError):
            _verify(kind, data)
    else:
        _verify(kind, data)


@pytest.mark.parametrize("path", ALL_VECTORS)
def test_reference_verifier_agrees_with_vector(path: Path | None) -> None:
    """The recursive reference verifier used by the property tests gives the vector's verdict."""
    kind, data = _load(path)
    assert _reference_verdict(kind, data) is not data["wantErr"]


def _stored_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    _, new_nodes, _ = merkle.CompactRange().append(leaves)
    return {(level, index): h for level, index, h in new_nodes}


def _only(nodes: NodeHashes, wanted: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    # Assemble from exactly the listed nodes, as the gateway will after its one query.
    return {n: nodes[n] for n in wanted}


@pytest.mark.parametrize("path", REBUILDABLE)
def test_generated_proof_equals_vector(path: Path | None) -> None:
    """Proofs assembled from stored nodes of the README's leaves equal the vectors' proofs."""
    kind, d = _load(path)
    leaves = [merkle.leaf_hash(x) for x in reference.VECTOR_LEAVES]
    want = _proof(d)
    if kind == "inclusion":
        size = d["treeSize"]
        assert _b64(d["root"]) == merkle.root_from_leaves(leaves[:size])
        nodes = _stored_nodes(leaves[:size])
        needed = merkle.inclusion_proof_nodes(d["leafIdx"], size)
        got = merkle.assemble_inclusion_proof(d["leafIdx"], size, _only(nodes, needed))
    elif kind == "consistency":
        size1, size2 = d["size1"], d["size2"]
        assert _b64(d["root1"]) == merkle.root_from_leaves(leaves[:size1])
        assert _b64(d["root2"]) == merkle.root_from_leaves(leaves[:size2])
        nodes = _stored_nodes(leaves[:size2])
        needed = merkle.consistency_proof_nodes(size1, size2)
        got = merkle.assemble_consistency_proof(size1, size2, _only(nodes, needed))
    elif kind == "subtreeinclusion":
        start, end = d["start"], d["end"]
        # The "-subtree" variants shift the same leaves to an aligned offset.
        shifted = [merkle.leaf_hash(b"filler")] * start + leaves[: end - start]
        assert _b64(d["root"]) == merkle.root_from_leaves(shifted[start:end])
        nodes = _stored_nodes(shifted)
        needed = merkle.subtree_inclusion_proof_nodes(d["leafIdx"], start, end)
        got = merkle.assemble_subtree_inclusion_proof(
            d["leafIdx"], start, end, _only(nodes, needed)
        )
        assert merkle.subtree_hash_from_nodes(start, end, nodes) == _b64(d["root"])
    else:
        start, end, size = d["start"], d["end"], d["size"]
        assert _b64(d["root1"]) == merkle.root_from_leaves(leaves[start:end])
        assert _b64(d["root2"]) == merkle.root_from_leaves(leaves[:size])
        nodes = _stored_nodes(leaves[:size])
        needed = merkle.subtree_consistency_proof_nodes(start, end, size)
        got = merkle.assemble_subtree_consistency_proof(start, end, size, _only(nodes, needed))
    assert got == want


def test_every_vector_kind_is_present() -> None:
    """Each of the four vector folders holds happy paths and failing cases."""
    assert VECTOR_DIR.is_dir(), f"missing {VECTOR_DIR}; set BYLINE_SHARED_DIR"
    for kind in KINDS:
        files = list((VECTOR_DIR / kind).glob("**/*.json"))
        verdicts = [json.loads(f.read_text())["wantErr"] for f in files]
        assert False in verdicts and True in verdicts, kind
    assert list((VECTOR_DIR / "subtreeinclusion" / "errors").glob("*.json"))


def test_readme_leaves_give_readme_roots() -> None:
    """The README's leaves hash to its listed roots, by reference, appender and stored nodes."""
    leaves = [merkle.leaf_hash(x) for x in reference.VECTOR_LEAVES]
    nodes = _stored_nodes(leaves)
    state = merkle.CompactRange()
    assert state.root() == reference.VECTOR_ROOTS[0] == merkle.EMPTY_ROOT
    for size in range(1, len(leaves) + 1):
        state, _, root = state.append([leaves[size - 1]])
        assert root == reference.VECTOR_ROOTS[size]
        assert merkle.root_from_leaves(leaves[:size]) == reference.VECTOR_ROOTS[size]
        assert merkle.root_from_nodes(size, nodes) == reference.VECTOR_ROOTS[size]
