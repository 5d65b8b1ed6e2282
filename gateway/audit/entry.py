"""How one event becomes one log entry: RFC 8785 canonical JSON, under 64 KiB.

Post text is not put in the entry itself: the entry commits to SHA-256(salt ‖ text), and the
text and salt are kept beside the log, so a lawful erasure can drop the text while the tree,
and every proof, stays intact.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

import rfc8785

from gateway.types import iso

ENTRY_VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024 - 1
"""The largest entry: under 64 KiB, so a tlog-tiles entry bundle can prefix it with 16 bits."""


class EntryTooLarge(ValueError):
    """An event whose entry would exceed the 64 KiB limit."""


@dataclass(frozen=True, kw_only=True)
class Prev:
    """A link to the previous entry of the same chain."""

    index: int
    leaf: bytes

    def to_json(self) -> dict[str, Any]:
        """The link as it appears in the entry."""
        return {"index": self.index, "leaf": base64.b64encode(self.leaf).decode()}


def encode_entry(
    *,
    type: str,
    ts: int,
    actor: str,
    account: str | None,
    post: str | None,
    data: dict[str, Any],
    prev: Prev | None,
) -> bytes:
    """The canonical bytes of one entry."""
    body = {
        "v": ENTRY_VERSION,
        "type": type,
        "ts": iso(ts),
        "actor": actor,
        "account": account,
        "post": post,
        "data": data,
        "prev": prev.to_json() if prev else None,
    }
    raw: bytes = rfc8785.dumps(body)  # type: ignore[arg-type]  # the JSON value type is recursive
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(f"log entry of {len(raw)} bytes is over {MAX_ENTRY_BYTES}")
    return raw


def text_commitment(text: str, salt: bytes) -> str:
    """The hex SHA-256 of salt ‖ UTF-8 text that an entry carries instead of the text."""
    return hashlib.sha256(salt + text.encode("utf-8")).hexdigest()


def new_salt() -> bytes:
    """A fresh random salt, so equal texts do not give equal commitments."""
    return secrets.token_bytes(16)
