"""C2SP signed notes, tlog checkpoints and tlog proof bundles (Ed25519 only).

Pure functions only: no I/O.

- signed-note (c2sp.org/signed-note): text ending in a newline, a blank line, then one
  ``— <name> base64(key ID ‖ signature)`` line per signature. Key text formats follow
  golang.org/x/mod/sumdb/note:

  - verifier key: ``<name>+<hex8 key ID>+base64(0x01 ‖ Ed25519 public key)``
  - signer key: ``PRIVATE+KEY+<name>+<hex8 key ID>+base64(0x01 ‖ Ed25519 seed)``
  - key ID: the first 4 bytes (big-endian) of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key)

- tlog-checkpoint (c2sp.org/tlog-checkpoint): the note text
  ``<origin>\\n<size>\\n<base64 root>\\n`` followed by optional extension lines.
- tlog-proof (c2sp.org/tlog-proof): ``c2sp.org/tlog-proof@v1``, an optional ``extra``
  line, ``index <n>``, the inclusion proof one base64 hash a line, a blank line, and the
  signed checkpoint verbatim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from gateway.audit.merkle import HASH_SIZE, ProofError, verify_inclusion

__all__ = [
    "MAX_SIGNATURES",
    "TLOG_PROOF_HEADER",
    "Checkpoint",
    "InvalidSignatureError",
    "NoteError",
    "Signer",
    "TlogProof",
    "UnverifiedNoteError",
    "Verifier",
    "format_tlog_proof",
    "generate_signer",
    "key_id",
    "open_checkpoint",
    "open_note",
    "parse_tlog_proof",
    "sign_note",
    "verify_tlog_proof",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
"""Notes with more signature lines are rejected (the spec requires accepting at least 16)."""

TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"

_SIG_PREFIX = "— "  # em dash U+2014, then a space
_MAX_UINT64 = (1 << 64) - 1
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_HEX8 = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A signed note, key, checkpoint or tlog proof is malformed or does not verify."""


class InvalidSignatureError(NoteError):
    """A signature from a known key did not verify."""


class UnverifiedNoteError(NoteError):
    """The note carries no signature from any known key."""


def key_id(name: str, public_key: bytes) -> int:
    """The note key ID: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public_key)[:4] as a big-endian uint32."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _is_valid_name(name: str) -> bool:
    # Non-empty, no Unicode whitespace, no "+" (it separates key text fields).
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise NoteError(f"{what}: invalid base64") from None


def _raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key: name, key ID and public key."""

    name: str
    key_id: int
    public_key: bytes

    def __post_init__(self) -> None:
        if not _is_valid_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}")
        if len(self.public_key) != 32:
            raise NoteError("Ed25519 public key must be 32 bytes")
        if self.key_id != key_id(self.name, self.public_key):
            raise NoteError(f"key ID {self.key_id:08x} does not match key {self.name}")

    @classmethod
    def from_text(cls, text: str) -> Verifier:
        """Parse ``name+hex8(keyid)+base64(0x01 ‖ pub)``; raise :class:`NoteError` if malformed."""
        parts = text.split("+", 2)
        if len(parts) != 3:
            raise NoteError("verifier key must have the form name+keyid+key")
        name, hex_id, key_b64 = parts
        if not _is_valid_name(name) or not _HEX8.fullmatch(hex_id):
            raise NoteError("verifier key has an invalid name or key ID")
        raw = _b64decode(key_b64, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 (0x01) 32-byte public key")
        return cls(name, int(hex_id, 16), raw[1:])

    def to_text(self) -> str:
        """Encode as ``name+hex8(keyid)+base64(0x01 ‖ pub)``."""
        key = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{key}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is a valid Ed25519 signature of ``message`` by this key."""
        if len(signature) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True)
class Signer:
    """An Ed25519 note signer key: name, key ID and private key."""

    name: str
    key_id: int
    private_key: Ed25519PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not _is_valid_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}")
        public = _raw_public_key(self.private_key.public_key())
        if self.key_id != key_id(self.name, public):
            raise NoteError(f"key ID {self.key_id:08x} does not match key {self.name}")

    @classmethod
    def from_text(cls, text: str) -> Signer:
        """Parse ``PRIVATE+KEY+name+hex8(keyid)+base64(0x01 ‖ seed)``; raise :class:`NoteError`."""
        parts = text.split("+", 4)
        if len(parts) != 5 or parts[0] != "PRIVATE" or parts[1] != "KEY":
            raise NoteError("signer key must have the form PRIVATE+KEY+name+keyid+key")
        _, _, name, hex_id, key_b64 = parts
        if not _is_valid_name(name) or not _HEX8.fullmatch(hex_id):
            raise NoteError("signer key has an invalid name or key ID")
        raw = _b64decode(key_b64, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 (0x01) 32-byte seed")
        return cls(name, int(hex_id, 16), Ed25519PrivateKey.from_private_bytes(raw[1:]))

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random Ed25519 signer for ``name``."""
        private = Ed25519PrivateKey.generate()
        return cls(name, key_id(name, _raw_public_key(private.public_key())), private)

    def to_text(self) -> str:
        """Encode as ``PRIVATE+KEY+name+hex8(keyid)+base64(0x01 ‖ seed)``. Secret!"""
        seed = self.private_key.private_bytes_raw()
        key = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{key}"

    def verifier(self) -> Verifier:
        """The matching public verifier key."""
        return Verifier(self.name, self.key_id, _raw_public_key(self.private_key.public_key()))

    def sign(self, message: bytes) -> bytes:
        """The raw 64-byte Ed25519 signature of ``message``."""
        return self.private_key.sign(message)


def generate_signer(name: str) -> tuple[str, str]:
    """Generate a new Ed25519 key pair for ``name``: ``(signer_key_text, verifier_key_text)``."""
    signer = Signer.generate(name)
    return signer.to_text(), signer.verifier().to_text()


def _check_note_chars(text: str) -> None:
    # The spec forbids every ASCII control character except newline.
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError(f"note contains control character U+{ord(ch):04X}")


def sign_note(text: str, signer: Signer | Sequence[Signer]) -> bytes:
    """Sign ``text`` (which must end in a newline) with one or more signers.

    Returns ``text ‖ "\\n" ‖ one "— name base64(keyid ‖ sig)\\n" line per signer``.
    """
    signers = [signer] if isinstance(signer, Signer) else list(signer)
    if not signers:
        raise NoteError("at least one signer is required")
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_note_chars(text)
    body = text.encode()
    lines = []
    for s in signers:
        sig = s.key_id.to_bytes(4, "big") + s.sign(body)
        lines.append(f"{_SIG_PREFIX}{s.name} {base64.b64encode(sig).decode()}\n")
    return body + b"\n" + "".join(lines).encode()


@dataclass(frozen=True)
class _SignatureLine:
    name: str
    key_id: int
    signature: bytes


def _split_note(note: bytes, max_signatures: int) -> tuple[str, list[_SignatureLine]]:
    """Parse a signed note's structure without checking any signature."""
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("note is not valid UTF-8") from None
    _check_note_chars(decoded)
    # The text is separated from the signatures by the *last* blank line.
    split = decoded.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = decoded[: split + 1], decoded[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines")
    if not block.endswith("\n"):
        raise NoteError("note does not end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > max_signatures:
        raise NoteError(f"note has too many signatures ({len(lines)} > {max_signatures})")
    parsed = []
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"bad signature line {line!r}: must start with an em dash and a space")
        name, sep, sig_b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep or not sig_b64 or not _is_valid_name(name):
            raise NoteError(f"bad signature line {line!r}")
        raw = _b64decode(sig_b64, f"bad signature line for {name}")
        if len(raw) < 5:
            raise NoteError(f"bad signature line for {name}: signature too short")
        parsed.append(_SignatureLine(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, parsed


def _verify_note(
    note: bytes, verifiers: Iterable[Verifier], max_signatures: int
) -> tuple[str, list[tuple[str, int]]]:
    """Open a note; return its text and the (name, key ID) of each verified known key."""
    text, lines = _split_note(note, max_signatures)
    known = {(v.name, v.key_id): v for v in verifiers}
    body = text.encode()
    verified: list[tuple[str, int]] = []
    for line in lines:
        ident = (line.name, line.key_id)
        verifier = known.get(ident)
        if verifier is None:
            continue
        if not verifier.verify(body, line.signature):
            raise InvalidSignatureError(f"bad signature for key {line.name}+{line.key_id:08x}")
        if ident not in verified:
            verified.append(ident)
    if not verified:
        raise UnverifiedNoteError("note has no signature from a known key (unknown key)")
    return text, verified


def open_note(
    note: bytes, verifiers: Iterable[Verifier], *, max_signatures: int = MAX_SIGNATURES
) -> tuple[str, list[str]]:
    """Parse a signed note and verify its signatures against the known ``verifiers``.

    Returns ``(text, names)``: the note text (with its final newline) and the names of the
    known keys whose signatures verified, in note order. As c2sp.org/signed-note
    requires, signatures from unknown keys (name and key ID not both matching a known
    key) are ignored; a note with no verified signature from a known key raises
    :class:`UnverifiedNoteError`, and a failing signature from a known key raises
    :class:`InvalidSignatureError`. Structural problems raise :class:`NoteError`.
    """
    text, verified = _verify_note(note, verifiers, max_signatures)
    return text, [name for name, _ in verified]


# ---------------------------------------------------------------------------
# Checkpoints


def _parse_uint(text: str, what: str) -> int:
    if not _DECIMAL.fullmatch(text):
        raise NoteError(f"{what} {text!r} is not a decimal number without leading zeros")
    value = int(text)
    if value > _MAX_UINT64:
        raise NoteError(f"{what} {text} does not fit in 64 bits")
    return value


def _parse_hash(text: str, what: str) -> bytes:
    raw = _b64decode(text, what)
    if len(raw) != HASH_SIZE or base64.b64encode(raw).decode() != text:
        raise NoteError(f"{what} must be the base64 of {HASH_SIZE} bytes")
    return raw


@dataclass(frozen=True)
class Checkpoint:
    """A c2sp.org/tlog-checkpoint body: origin, tree size, root hash, extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be a non-empty single line")
        if not 0 <= self.size <= _MAX_UINT64:
            raise NoteError(f"checkpoint size {self.size} out of range")
        if len(self.root_hash) != HASH_SIZE:
            raise NoteError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not ext or "\n" in ext:
                raise NoteError("checkpoint extension lines must be non-empty single lines")
        _check_note_chars(self.to_text())

    def to_text(self) -> str:
        """The note text: ``origin\\nsize\\nbase64(root)\\n`` then extension lines."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        lines.extend(self.extensions)
        return "\n".join(lines) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint note text strictly; raise :class:`NoteError` if malformed."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("checkpoint needs origin, size and root hash lines")
        origin, size_text, root_text, *extensions = lines
        if not origin:
            raise NoteError("checkpoint origin is empty")
        if any(not ext for ext in extensions):
            raise NoteError("checkpoint extension lines must not be empty")
        return cls(
            origin,
            _parse_uint(size_text, "checkpoint size"),
            _parse_hash(root_text, "checkpoint root hash"),
            tuple(extensions),
        )


def _open_checkpoint(
    note: bytes, verifiers: Iterable[Verifier], origin: str | None
) -> tuple[Checkpoint, list[tuple[str, int]]]:
    text, verified = _verify_note(note, verifiers, MAX_SIGNATURES)
    checkpoint = Checkpoint.parse(text)
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    return checkpoint, verified


def open_checkpoint(
    note: bytes, verifiers: Iterable[Verifier], *, origin: str | None = None
) -> tuple[Checkpoint, list[str]]:
    """Open a signed checkpoint: verify the note and parse its body.

    Returns the checkpoint and the names of known keys whose signatures verified. If
    ``origin`` is given the checkpoint must carry exactly that origin.
    """
    checkpoint, verified = _open_checkpoint(note, verifiers, origin)
    return checkpoint, [name for name, _ in verified]


# ---------------------------------------------------------------------------
# tlog proofs


@dataclass(frozen=True)
class TlogProof:
    """A parsed c2sp.org/tlog-proof bundle (``checkpoint`` is parsed but not yet verified)."""

    index: int
    inclusion_proof: tuple[bytes, ...]
    signed_checkpoint: bytes
    checkpoint: Checkpoint
    extra: bytes | None = None


def format_tlog_proof(
    index: int,
    inclusion_proof: Sequence[bytes],
    signed_checkpoint: bytes,
    *,
    extra: bytes | None = None,
    leaf_hash: bytes | None = None,
) -> bytes:
    """Build the c2sp.org/tlog-proof@v1 text for the entry at ``index``.

    ``signed_checkpoint`` is embedded verbatim and must be a well-formed signed
    checkpoint. If ``leaf_hash`` is given, the inclusion proof is checked against the
    checkpoint first, so a bad bundle is never produced.
    """
    if not 0 <= index <= _MAX_UINT64:
        raise NoteError(f"index {index} out of range")
    if extra is not None and not extra:
        raise NoteError("extra data, when present, must not be empty")
    text, _ = _split_note(signed_checkpoint, MAX_SIGNATURES)
    checkpoint = Checkpoint.parse(text)
    if index >= checkpoint.size:
        raise NoteError(f"index {index} is not below checkpoint size {checkpoint.size}")
    if any(len(h) != HASH_SIZE for h in inclusion_proof):
        raise NoteError(f"inclusion proof hashes must be {HASH_SIZE} bytes")
    if leaf_hash is not None:
        try:
            verify_inclusion(
                leaf_hash, index, checkpoint.size, inclusion_proof, checkpoint.root_hash
            )
        except ProofError as exc:
            raise NoteError(f"inclusion proof does not match the checkpoint: {exc}") from None
    lines = [TLOG_PROOF_HEADER]
    if extra is not None:
        lines.append("extra " + base64.b64encode(extra).decode())
    lines.append(f"index {index}")
    lines.extend(base64.b64encode(h).decode() for h in inclusion_proof)
    return ("\n".join(lines) + "\n\n").encode() + signed_checkpoint


def parse_tlog_proof(bundle: bytes) -> TlogProof:
    """Parse a tlog-proof bundle strictly, without verifying any signature or proof."""
    split = bundle.find(b"\n\n")
    if split < 0:
        raise NoteError("tlog proof has no blank line before the checkpoint")
    try:
        header = bundle[:split].decode("ascii")
    except UnicodeDecodeError:
        raise NoteError("tlog proof header is not ASCII") from None
    signed_checkpoint = bundle[split + 2 :]
    lines = header.split("\n")
    if lines[0] != TLOG_PROOF_HEADER:
        raise NoteError(f"tlog proof must start with {TLOG_PROOF_HEADER!r}")
    pos = 1
    extra = None
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _b64decode(lines[pos][len("extra ") :], "tlog proof extra line")
        if not extra:
            raise NoteError("tlog proof extra line is empty")
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise NoteError("tlog proof is missing its index line")
    index = _parse_uint(lines[pos][len("index ") :], "tlog proof index")
    proof = tuple(_parse_hash(line, "tlog proof hash") for line in lines[pos + 1 :])
    text, _ = _split_note(signed_checkpoint, MAX_SIGNATURES)
    return TlogProof(index, proof, signed_checkpoint, Checkpoint.parse(text), extra)


def verify_tlog_proof(
    bundle: bytes,
    leaf_hash: bytes,
    log_verifier: Verifier,
    *,
    origin: str | None = None,
    witnesses: Iterable[Verifier] = (),
    min_witnesses: int = 0,
) -> TlogProof:
    """Verify a tlog-proof bundle for the entry whose RFC 6962 leaf hash is ``leaf_hash``.

    Checks, as c2sp.org/tlog-proof prescribes: the checkpoint origin is ``origin``
    (default: the log key's name) and the checkpoint is signed by ``log_verifier``; at
    least ``min_witnesses`` of ``witnesses`` cosigned it (Ed25519 note signatures); and
    the inclusion proof binds ``leaf_hash`` at the bundle's index to the checkpoint
    root. Returns the parsed bundle; raises :class:`NoteError` on any failure.
    """
    parsed = parse_tlog_proof(bundle)
    log_id = (log_verifier.name, log_verifier.key_id)
    witness_list = [w for w in witnesses if (w.name, w.key_id) != log_id]
    witness_ids = {(w.name, w.key_id) for w in witness_list}
    _, verified = _open_checkpoint(
        parsed.signed_checkpoint,
        [log_verifier, *witness_list],
        log_verifier.name if origin is None else origin,
    )
    if log_id not in verified:
        raise UnverifiedNoteError(f"checkpoint is not signed by the log key {log_verifier.name}")
    cosigned = sum(1 for ident in verified if ident in witness_ids)
    if cosigned < min_witnesses:
        raise NoteError(f"checkpoint has {cosigned} witness cosignatures, need {min_witnesses}")
    try:
        verify_inclusion(
            leaf_hash,
            parsed.index,
            parsed.checkpoint.size,
            parsed.inclusion_proof,
            parsed.checkpoint.root_hash,
        )
    except ProofError as exc:
        raise NoteError(f"tlog proof inclusion check failed: {exc}") from None
    return parsed
