"""The log's signing key as a file: made once by ``byline log keygen``, read by the gateway at start.

It lives with the log, beside :class:`~gateway.audit.note.Signer`, because both sides need it:
the checkpoint service signs with it, and the ``byline log`` commands make it and print its
verifier key, without starting anything of the gateway's (no database, no services).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from gateway.audit.note import NoteError, Signer


class LogKeyError(Exception):
    """The signing key file is missing, unreadable, or for another log: the gateway cannot start."""


def write_new_key(path: Path, origin: str) -> Signer:
    """Create a new Ed25519 signing key file for ``origin`` (mode 0600); never overwrite one."""
    signer = Signer.generate(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(signer.to_text() + "\n")
        out.flush()
        os.fsync(out.fileno())
    return signer


def load_signer(path: Path, *, origin: str, create: bool = False) -> Signer:
    """Read the signing key for ``origin`` from ``path``; create it only when ``create``."""
    if not path.exists():
        if not create:
            raise LogKeyError(
                f"BYLINE_LOG_KEY_FILE: no log signing key at {path}; create one with "
                f"`byline log keygen --out {path}` and publish the verifier key it prints"
            )
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            write_new_key(path, origin)
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise LogKeyError(f"BYLINE_LOG_KEY_FILE: cannot read {path}: {type(exc).__name__}") from None
    try:
        signer = Signer.from_text(text)
    except NoteError:
        # The message never quotes the file: it holds a secret.
        raise LogKeyError(
            f"BYLINE_LOG_KEY_FILE: {path} is not a signer key (PRIVATE+KEY+name+id+key)"
        ) from None
    if signer.name != origin:
        raise LogKeyError(
            f"BYLINE_LOG_KEY_FILE: the key in {path} signs for {signer.name!r} but "
            f"BYLINE_LOG_ORIGIN is {origin!r}; the checkpoint origin must be the key's name"
        )
    return signer
