"""How one event becomes one log entry: RFC 8785 canonical JSON, under 64 KiB.

Entries are encoded by :func:`gateway.audit.canonical.dumps`: the ``rfc8785`` reference's bytes,
produced by a fast encoder wherever the two provably agree.

Post text is not put in the entry itself: the entry commits to SHA-256(salt ‖ text), and the
text and salt are kept beside the log, so a lawful erasure can drop the text while the tree,
and every proof, stays intact.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from gateway.audit import canonical
from gateway.types import iso

ENTRY_VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024 - 1
"""The largest entry: under 64 KiB, so a tlog-tiles entry bundle can prefix it with 16 bits."""


@functools.lru_cache(maxsize=16)
def _iso(ts: int) -> str | None:
    # Every entry of a batch has the batch's time: format it once.
    return iso(ts)


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
    return link(encode_unlinked(type=type, ts=ts, actor=actor, account=account, post=post, data=data), prev)


# In canonical form the top-level keys are sorted: …,"data":{…},"post":…,"prev":…,"ts":"…",…
# Nothing after "data" can hold an unescaped quote but the keys themselves, so the last match of
# this marker is the top-level link, and putting the link's canonical form there gives exactly
# the bytes of encoding the whole entry with it.
_UNLINKED = b',"prev":null,"ts":"'


def encode_unlinked(
    *, type: str, ts: int, actor: str, account: str | None, post: str | None, data: dict[str, Any]
) -> bytes:
    """The canonical bytes of an entry with no ``prev`` link yet (see :func:`link`)."""
    body = {
        "v": ENTRY_VERSION,
        "type": type,
        "ts": _iso(ts),
        "actor": actor,
        "account": account,
        "post": post,
        "data": data,
        "prev": None,
    }
    # The top level is ours: ASCII keys and, when the callers keep to their types, strings.
    # Then only ``data`` can hold what the fast encoder writes differently from RFC 8785.
    plain = all(isinstance(v, str) or v is None for v in (type, actor, account, post))
    raw = canonical.dumps(body, suspect=data if plain else body)
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(f"log entry of {len(raw)} bytes is over {MAX_ENTRY_BYTES}")
    return raw


def link_json(index: int, leaf: bytes) -> bytes:
    """The canonical bytes of a ``prev`` link: ``{"index":N,"leaf":"base64"}``."""
    return b'{"index":%d,"leaf":"%s"}' % (index, binascii.b2a_base64(leaf, newline=False))


def linked_size(unlinked: bytes, index: int) -> int:
    """The most an unlinked entry can measure once linked to an entry before ``index``."""
    # null (4 bytes) gives way to {"index":N,"leaf":"<44 base64 characters>"} (64 + digits of N).
    return len(unlinked) - 4 + 64 + len(str(index))


def link(unlinked: bytes, prev: Prev | None) -> bytes:
    """The entry with its ``prev`` link: exactly what encoding it with the link gives."""
    if prev is None:
        return unlinked
    return link_raw(unlinked, prev.index, prev.leaf)


def link_raw(unlinked: bytes, index: int, leaf: bytes) -> bytes:
    """:func:`link` for a link given as its index and leaf hash."""
    if type(index) is not int or not 0 <= index <= 2**53 - 1 or len(leaf) != 32:
        raise ValueError("a prev link needs an index in range and a 32-byte leaf hash")
    at = unlinked.rfind(_UNLINKED)
    if at < 0:
        raise ValueError("not an unlinked entry")
    start = at + 8  # len(',"prev":')
    raw = unlinked[:start] + link_json(index, leaf) + unlinked[start + 4 :]
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(f"log entry of {len(raw)} bytes is over {MAX_ENTRY_BYTES}")
    return raw


def text_commitment(text: str, salt: bytes) -> str:
    """The hex SHA-256 of salt ‖ UTF-8 text that an entry carries instead of the text."""
    return hashlib.sha256(salt + text.encode("utf-8")).hexdigest()


def new_salt() -> bytes:
    """A fresh random salt, so equal texts do not give equal commitments."""
    return secrets.token_bytes(16)
