"""Signed notes, checkpoints and tlog-proof bundles (gateway.audit.note)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from gateway.audit import merkle
from gateway.audit.note import (
    MAX_SIGNATURES,
    Checkpoint,
    InvalidSignatureError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    format_tlog_proof,
    generate_signer,
    key_id,
    open_checkpoint,
    open_note,
    parse_tlog_proof,
    sign_note,
    verify_tlog_proof,
)


def _shared_dir() -> Path:
    override = os.environ.get("BYLINE_SHARED_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2].parent / "shared"


VECTOR_PATH = _shared_dir() / "testdata" / "signed-note" / "vector.json"


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    """The Go sumdb/note signed-note vector (fails, not skips, when missing)."""
    if not VECTOR_PATH.is_file():
        pytest.fail(f"missing {VECTOR_PATH}; set BYLINE_SHARED_DIR to the shared dir")
    data: dict[str, Any] = json.loads(VECTOR_PATH.read_text())
    return data


@pytest.fixture(scope="module")
def signer() -> Signer:
    """A fresh log key."""
    return Signer.generate("log.example/byline")


# --- the byte-exact vector ---------------------------------------------------------------


def test_vector_sign_is_byte_exact(vector: dict[str, Any]) -> None:
    """Signing the vector's text with its signer key reproduces the signed note byte for byte."""
    signer = Signer.from_text(vector["signer_key"])
    assert sign_note(vector["text"], signer) == vector["signed_note"].encode()


def test_vector_open_verifies(vector: dict[str, Any]) -> None:
    """The vector's verifier key opens the vector's signed note."""
    verifier = Verifier.from_text(vector["verifier_key"])
    text, names = open_note(vector["signed_note"].encode(), [verifier])
    assert text == vector["text"]
    assert names == ["PeterNeumann"]


def test_vector_keys_round_trip(vector: dict[str, Any]) -> None:
    """Both key texts parse and re-encode unchanged, and the signer derives the verifier."""
    signer = Signer.from_text(vector["signer_key"])
    verifier = Verifier.from_text(vector["verifier_key"])
    assert signer.to_text() == vector["signer_key"]
    assert verifier.to_text() == vector["verifier_key"]
    assert signer.verifier() == verifier


@pytest.mark.parametrize("index", [0, 1])
def test_vector_bad_verifier_keys_are_rejected(vector: dict[str, Any], index: int) -> None:
    """Each of the vector's bad verifier keys fails to parse."""
    with pytest.raises(NoteError):
        Verifier.from_text(vector["bad_verifier_keys"][index])


def test_key_id_derivation(vector: dict[str, Any]) -> None:
    """The key ID is SHA-256(name ‖ 0x0A ‖ 0x01 ‖ pub)[:4], as the vector's key shows."""
    verifier = Verifier.from_text(vector["verifier_key"])
    expected = hashlib.sha256(b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert key_id("PeterNeumann", verifier.public_key) == int.from_bytes(expected, "big")
    assert verifier.key_id == 0xC74F20A3


# --- keys ---------------------------------------------------------------------------------


def test_generate_signer_round_trip() -> None:
    """Generated key texts parse back, and a note they sign opens with the verifier."""
    skey, vkey = generate_signer("witness.example/w1")
    signer, verifier = Signer.from_text(skey), Verifier.from_text(vkey)
    assert skey.startswith("PRIVATE+KEY+witness.example/w1+")
    assert signer.verifier() == verifier
    assert open_note(sign_note("hello\n", signer), [verifier]) == (
        "hello\n",
        ["witness.example/w1"],
    )


def test_signer_repr_hides_the_private_key(signer: Signer) -> None:
    """A signer's repr never shows its secret seed."""
    seed = signer.to_text().split("+", 4)[4]  # the base64 may itself contain "+"
    assert len(seed) == 44
    assert seed not in repr(signer)


@pytest.mark.parametrize(
    "text",
    [
        "PRIVATE+KEY+name+c74f20a3",
        "PRIVATE+KEX+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a4+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+C74F20A3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDF",
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AoEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
        "PRIVATE+KEY+Peter Neumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz",
    ],
    ids=[
        "too-few-fields",
        "not-private-key",
        "wrong-key-id",
        "upper-hex",
        "bad-base64",
        "wrong-algorithm",
        "space-in-name",
    ],
)
def test_bad_signer_keys_are_rejected(text: str) -> None:
    """Malformed signer key texts, or ones whose key ID does not match, fail to parse."""
    with pytest.raises(NoteError):
        Signer.from_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+",
    ],
    ids=["too-few-fields", "empty-name", "short-key-id", "bad-base64", "empty-key"],
)
def test_bad_verifier_keys_are_rejected(text: str) -> None:
    """Malformed verifier key texts fail to parse."""
    with pytest.raises(NoteError):
        Verifier.from_text(text)


# --- signed notes -------------------------------------------------------------------------


def test_multiple_signers_and_unknown_keys(signer: Signer) -> None:
    """Several signatures are written in order; unknown keys are ignored, known ones listed."""
    witness = Signer.generate("witness.example/w1")
    note = sign_note("body\n", [signer, witness])
    lines = note.decode().split("\n")
    assert lines[:2] == ["body", ""]
    assert lines[2].startswith("— log.example/byline ")
    assert lines[3].startswith("— witness.example/w1 ")
    assert open_note(note, [signer.verifier()]) == ("body\n", ["log.example/byline"])
    assert open_note(note, [witness.verifier(), signer.verifier()])[1] == [
        "log.example/byline",
        "witness.example/w1",
    ]


def test_same_name_different_key_is_unknown(signer: Signer) -> None:
    """A key sharing the signer's name but not its ID is treated as unknown, not as bad."""
    impostor = Signer.generate(signer.name)
    note = sign_note("body\n", [impostor, signer])
    assert open_note(note, [signer.verifier()])[1] == [signer.name]


def test_note_text_may_contain_blank_lines(signer: Signer) -> None:
    """The text is split from the signatures at the last blank line, so it may hold blank lines."""
    text = "first\n\nsecond\n\n"
    assert open_note(sign_note(text, signer), [signer.verifier()])[0] == text


def _sig_line(signer: Signer, text: str = "body\n") -> str:
    return sign_note(text, signer).decode().split("\n\n", 1)[1]


def _bad_notes(signer: Signer) -> dict[str, tuple[bytes, type[NoteError], str]]:
    """Broken notes: case name -> (note, expected error class, expected message fragment)."""
    good = sign_note("body\n", signer)
    line = _sig_line(signer)
    sig = line.split(" ")[2].strip()
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    bad_sig = base64.b64encode(bytes(raw)).decode()
    other = Signer.generate("other.example")
    name = signer.name
    return {
        "missing-blank-line": (b"body\n" + line.encode(), NoteError, "no blank line"),
        "no-signature-lines": (b"body\n\n", NoteError, "no signature lines"),
        "not-ending-in-newline": (good[:-1], NoteError, "does not end with a newline"),
        "hyphen-not-em-dash": (b"body\n\n- " + line[2:].encode(), NoteError, "em dash"),
        "no-space-after-dash": (
            b"body\n\n\xe2\x80\x94" + line[2:].encode(),
            NoteError,
            "em dash and a space",
        ),
        "missing-signature": (f"body\n\n— {name}\n".encode(), NoteError, "bad signature line"),
        "empty-signature": (f"body\n\n— {name} \n".encode(), NoteError, "bad signature line"),
        "signature-not-base64": (f"body\n\n— {name} ***\n".encode(), NoteError, "invalid base64"),
        "signature-too-short": (
            f"body\n\n— {name} AAAAAA==\n".encode(),
            NoteError,
            "signature too short",
        ),
        "unknown-key": (sign_note("body\n", other), UnverifiedNoteError, "unknown key"),
        "bad-signature": (
            f"body\n\n— {name} {bad_sig}\n".encode(),
            InvalidSignatureError,
            "bad signature for key",
        ),
        "text-changed": (b"bodY\n\n" + line.encode(), InvalidSignatureError, "bad signature"),
        # A blank line among the signatures moves the text/signature split: the signature
        # then covers the wrong text.
        "blank-line-in-signatures": (
            good + b"\n" + line.encode(),
            InvalidSignatureError,
            "bad signature",
        ),
        "too-many-signatures": (
            b"body\n\n" + line.encode() * (MAX_SIGNATURES + 1),
            NoteError,
            "too many signatures",
        ),
        "not-utf8": (b"b\xffody\n\n" + line.encode(), NoteError, "not valid UTF-8"),
        "control-character": (b"bo\tdy\n\n" + line.encode(), NoteError, "control character"),
        "carriage-return": (b"body\r\n\n" + line.encode(), NoteError, "control character"),
    }


BAD_NOTE_CASES = [
    "missing-blank-line",
    "no-signature-lines",
    "not-ending-in-newline",
    "hyphen-not-em-dash",
    "no-space-after-dash",
    "missing-signature",
    "empty-signature",
    "signature-not-base64",
    "signature-too-short",
    "blank-line-in-signatures",
    "unknown-key",
    "bad-signature",
    "text-changed",
    "too-many-signatures",
    "not-utf8",
    "control-character",
    "carriage-return",
]


@pytest.mark.parametrize("case", BAD_NOTE_CASES)
def test_open_note_strict_errors(signer: Signer, case: str) -> None:
    """Each malformed or wrongly signed note is rejected with the right NoteError."""
    note, error, message = _bad_notes(signer)[case]
    with pytest.raises(error, match=message):
        open_note(note, [signer.verifier()])


def test_bad_note_cases_are_all_listed(signer: Signer) -> None:
    """The parametrized list of bad notes covers every constructed case."""
    assert sorted(_bad_notes(signer)) == sorted(BAD_NOTE_CASES)


def test_signature_limit_is_inclusive(signer: Signer) -> None:
    """A note with exactly MAX_SIGNATURES signatures (duplicates included) still opens."""
    note = b"body\n\n" + _sig_line(signer).encode() * MAX_SIGNATURES
    assert open_note(note, [signer.verifier()]) == ("body\n", [signer.name])


@pytest.mark.parametrize(
    "text", ["no newline", "tab\there\n", ""], ids=["no-final-newline", "control", "empty"]
)
def test_sign_note_rejects_bad_text(signer: Signer, text: str) -> None:
    """Text without a final newline, or with control characters, cannot be signed."""
    with pytest.raises(NoteError):
        sign_note(text, signer)


def test_sign_note_needs_a_signer() -> None:
    """Signing with an empty list of signers is an error."""
    with pytest.raises(NoteError):
        sign_note("body\n", [])


# --- checkpoints --------------------------------------------------------------------------

ROOT = merkle.root_from_leaves([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
ROOT_B64 = base64.b64encode(ROOT).decode()


@pytest.mark.parametrize("extensions", [(), ("ext one", "ext two")])
def test_checkpoint_round_trip(signer: Signer, extensions: tuple[str, ...]) -> None:
    """A checkpoint renders to the C2SP body, parses back, and survives signing and opening."""
    cp = Checkpoint("log.example/byline", 2, ROOT, extensions)
    text = cp.to_text()
    assert text == "\n".join(["log.example/byline", "2", ROOT_B64, *extensions]) + "\n"
    assert Checkpoint.parse(text) == cp
    opened, names = open_checkpoint(sign_note(text, signer), [signer.verifier()], origin=cp.origin)
    assert (opened, names) == (cp, [signer.name])


def test_checkpoint_origin_must_match(signer: Signer) -> None:
    """Opening a checkpoint for another origin fails."""
    note = sign_note(Checkpoint("log.example/other", 2, ROOT).to_text(), signer)
    with pytest.raises(NoteError):
        open_checkpoint(note, [signer.verifier()], origin="log.example/byline")


@pytest.mark.parametrize(
    "text",
    [
        f"o\n2\n{ROOT_B64}",
        "o\n2\n",
        f"\n2\n{ROOT_B64}\n",
        f"o\n02\n{ROOT_B64}\n",
        f"o\n+2\n{ROOT_B64}\n",
        f"o\n 2\n{ROOT_B64}\n",
        f"o\n２\n{ROOT_B64}\n",
        f"o\n18446744073709551616\n{ROOT_B64}\n",
        f"o\n2\n{ROOT_B64[:-4]}\n",
        f"o\n2\n{base64.b64encode(ROOT + b'x').decode()}\n",
        f"o\n2\n{ROOT_B64[:-2]}B=\n",
        f"o\n2\n{ROOT_B64}\n\n",
        f"o\n2\n{ROOT_B64}\next\n\nmore\n",
        f"o\n2\n{ROOT_B64}\nbad\tline\n",
    ],
    ids=[
        "no-final-newline",
        "too-few-lines",
        "empty-origin",
        "leading-zero",
        "plus-sign",
        "space",
        "non-ascii-digit",
        "over-uint64",
        "short-root",
        "long-root",
        "non-canonical-base64",
        "empty-trailing-extension",
        "empty-extension",
        "control-char",
    ],
)
def test_checkpoint_parse_strict_errors(text: str) -> None:
    """Malformed checkpoint bodies are rejected."""
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


def test_checkpoint_rejects_bad_fields() -> None:
    """A Checkpoint cannot be built with fields that would not render to a valid body."""
    for args in [("", 1, ROOT), ("a\nb", 1, ROOT), ("o", -1, ROOT), ("o", 1, ROOT[:31])]:
        with pytest.raises(NoteError):
            Checkpoint(*args)
    with pytest.raises(NoteError):
        Checkpoint("o", 1, ROOT, ("",))
    assert Checkpoint.parse(f"o\n0\n{ROOT_B64}\n").size == 0


# --- tlog proofs --------------------------------------------------------------------------

ORIGIN = "log.example/byline"
ENTRIES = [f"entry {i}".encode() for i in range(13)]
LEAVES = [merkle.leaf_hash(e) for e in ENTRIES]
STATE, NEW_NODES, TREE_ROOT = merkle.CompactRange().append(LEAVES)
NODES = {(level, index): h for level, index, h in NEW_NODES}


@pytest.fixture(scope="module")
def log_signer() -> Signer:
    """The log's signing key, named after its origin."""
    return Signer.generate(ORIGIN)


@pytest.fixture(scope="module")
def witness() -> Signer:
    """A witness key that cosigns checkpoints with an Ed25519 note signature."""
    return Signer.generate("witness.example/w1")


@pytest.fixture(scope="module")
def signed_checkpoint(log_signer: Signer, witness: Signer) -> bytes:
    """The checkpoint of the 13-entry tree, signed by the log and the witness."""
    return sign_note(Checkpoint(ORIGIN, len(LEAVES), TREE_ROOT).to_text(), [log_signer, witness])


def _bundle(signed_checkpoint: bytes, index: int = 9, extra: bytes | None = None) -> bytes:
    proof = merkle.assemble_inclusion_proof(index, len(LEAVES), NODES)
    return format_tlog_proof(index, proof, signed_checkpoint, extra=extra, leaf_hash=LEAVES[index])


def test_tlog_proof_format(signed_checkpoint: bytes) -> None:
    """The bundle is header, optional extra, index, proof lines, blank line, checkpoint."""
    proof = merkle.assemble_inclusion_proof(9, len(LEAVES), NODES)
    bundle = _bundle(signed_checkpoint, extra=b"ctx")
    expected = "\n".join(
        [
            "c2sp.org/tlog-proof@v1",
            "extra " + base64.b64encode(b"ctx").decode(),
            "index 9",
            *(base64.b64encode(h).decode() for h in proof),
        ]
    )
    assert bundle == (expected + "\n\n").encode() + signed_checkpoint


@pytest.mark.parametrize("index", range(len(LEAVES)))
def test_tlog_proof_round_trip(
    signed_checkpoint: bytes, log_signer: Signer, witness: Signer, index: int
) -> None:
    """A bundle for each entry parses back and verifies with the log key and the witness."""
    extra = b"extra data" if index % 2 else None
    bundle = _bundle(signed_checkpoint, index, extra)
    parsed = verify_tlog_proof(
        bundle,
        LEAVES[index],
        log_signer.verifier(),
        witnesses=[witness.verifier()],
        min_witnesses=1,
    )
    assert parsed == parse_tlog_proof(bundle)
    assert (parsed.index, parsed.extra, parsed.signed_checkpoint) == (
        index,
        extra,
        signed_checkpoint,
    )
    assert parsed.checkpoint == Checkpoint(ORIGIN, len(LEAVES), TREE_ROOT)


def test_tlog_proof_for_single_entry_tree(log_signer: Signer) -> None:
    """In a one-entry tree the proof has no hash lines and still verifies."""
    note = sign_note(Checkpoint(ORIGIN, 1, LEAVES[0]).to_text(), log_signer)
    bundle = format_tlog_proof(0, [], note, leaf_hash=LEAVES[0])
    assert bundle.startswith(b"c2sp.org/tlog-proof@v1\nindex 0\n\n")
    verify_tlog_proof(bundle, LEAVES[0], log_signer.verifier())


def _replace_line(bundle: bytes, number: int, new: str) -> bytes:
    lines = bundle.decode().split("\n")
    lines[number] = new
    return "\n".join(lines).encode()


def _tampered(bundle: bytes) -> dict[str, bytes]:
    text = bundle.decode()
    proof_line = text.split("\n")[3]
    flipped = bytearray(base64.b64decode(proof_line))
    flipped[0] ^= 1
    return {
        "wrong-header": _replace_line(bundle, 0, "c2sp.org/tlog-proof@v2"),
        "index-changed": _replace_line(bundle, 2, "index 8"),
        "index-leading-zero": _replace_line(bundle, 2, "index 09"),
        "index-missing": _replace_line(bundle, 2, "9"),
        "proof-hash-flipped": _replace_line(bundle, 3, base64.b64encode(flipped).decode()),
        "proof-hash-short": _replace_line(bundle, 3, proof_line[:-4]),
        "proof-hash-removed": text.replace(proof_line + "\n", "", 1).encode(),
        "proof-hash-duplicated": text.replace(
            proof_line, proof_line + "\n" + proof_line, 1
        ).encode(),
        "extra-not-base64": _replace_line(bundle, 1, "extra ***"),
        "extra-empty": _replace_line(bundle, 1, "extra "),
        "no-blank-line": text.replace("\n\n", "\n", 1).encode(),
        "checkpoint-size-changed": text.replace(f"\n{len(LEAVES)}\n", "\n14\n", 1).encode(),
        # Well inside the base64: its last character also carries padding bits, which a
        # decoder may ignore, so changing that one does not always change the signature.
        "checkpoint-signature-flipped": bundle[:-10]
        + (b"A" if bundle[-10:-9] != b"A" else b"B")
        + bundle[-9:],
        "checkpoint-unsigned-by-log": bundle[: bundle.index("— ".encode())]
        + bundle.split(b"\n")[-2]
        + b"\n",
        "not-ascii-header": _replace_line(bundle, 0, "c2sp.org/tlog-proof@v1é"),
    }


TAMPER_CASES = [
    "wrong-header",
    "index-changed",
    "index-leading-zero",
    "index-missing",
    "proof-hash-flipped",
    "proof-hash-short",
    "proof-hash-removed",
    "proof-hash-duplicated",
    "extra-not-base64",
    "extra-empty",
    "no-blank-line",
    "checkpoint-size-changed",
    "checkpoint-signature-flipped",
    "checkpoint-unsigned-by-log",
    "not-ascii-header",
]


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_tlog_proof_tampering_fails(
    signed_checkpoint: bytes, log_signer: Signer, witness: Signer, case: str
) -> None:
    """Any tampering with the bundle (header, index, proof, extra, checkpoint) is rejected."""
    bundle = _tampered(_bundle(signed_checkpoint, extra=b"ctx"))[case]
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], log_signer.verifier(), witnesses=[witness.verifier()])


def test_tamper_cases_are_all_listed(signed_checkpoint: bytes) -> None:
    """The parametrized tamper list covers every constructed case."""
    assert sorted(_tampered(_bundle(signed_checkpoint, extra=b"ctx"))) == sorted(TAMPER_CASES)


def test_tlog_proof_wrong_inputs_fail(
    signed_checkpoint: bytes, log_signer: Signer, witness: Signer
) -> None:
    """A wrong entry, log key, origin or too few witnesses makes verification fail."""
    bundle = _bundle(signed_checkpoint)
    log = log_signer.verifier()
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[8], log)
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, merkle.leaf_hash(b"entry 9 "), log)
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], Signer.generate(ORIGIN).verifier())
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], witness.verifier(), witnesses=[log])
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], log, origin="log.example/other")
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], log, min_witnesses=1)
    other_witness = Signer.generate("witness.example/w2").verifier()
    with pytest.raises(NoteError):
        verify_tlog_proof(
            bundle, LEAVES[9], log, witnesses=[witness.verifier(), other_witness], min_witnesses=2
        )
    # The log key counted as its own witness does not satisfy a witness policy.
    with pytest.raises(NoteError):
        verify_tlog_proof(bundle, LEAVES[9], log, witnesses=[log], min_witnesses=1)
    verify_tlog_proof(bundle, LEAVES[9], log, witnesses=[witness.verifier()], min_witnesses=1)


def test_format_tlog_proof_refuses_bad_bundles(signed_checkpoint: bytes) -> None:
    """format_tlog_proof refuses a proof that does not match the checkpoint or bad arguments."""
    proof = merkle.assemble_inclusion_proof(9, len(LEAVES), NODES)
    with pytest.raises(NoteError):
        format_tlog_proof(9, proof, signed_checkpoint, leaf_hash=LEAVES[8])
    with pytest.raises(NoteError):
        format_tlog_proof(len(LEAVES), proof, signed_checkpoint)
    with pytest.raises(NoteError):
        format_tlog_proof(9, [*proof[:-1], b"short"], signed_checkpoint)
    with pytest.raises(NoteError):
        format_tlog_proof(9, proof, signed_checkpoint, extra=b"")
    with pytest.raises(NoteError):
        format_tlog_proof(9, proof, b"not a signed checkpoint\n")
