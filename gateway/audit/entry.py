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
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.audit import canonical
from gateway.types import iso

ENTRY_VERSION = 1
MAX_ENTRY_BYTES = 64 * 1024 - 1
"""The largest entry: under 64 KiB, so a tlog-tiles entry bundle can prefix it with 16 bits."""
STAMP = len("2026-01-01T00:00:00.000000Z")
"""The length of an entry's time as Byline writes it (RFC 3339, microseconds, UTC)."""
NO_STAMP = " " * STAMP


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
    return encode_linked(type=type, ts=ts, actor=actor, account=account, post=post, data=data,
                         prev=None if prev is None else (prev.index, prev.leaf))


# In canonical form the top-level keys are sorted: …,"data":{…},"post":…,"prev":…,"ts":"…",…
# Nothing after "data" can hold an unescaped quote but the keys themselves, so the last match of
# this marker is the top-level link, and putting the link's canonical form there gives exactly
# the bytes of encoding the whole entry with it.
_UNLINKED = b',"prev":null,"ts":"'


def encode_unlinked(
    *, type: str, ts: int, actor: str, account: str | None, post: str | None, data: dict[str, Any]
) -> bytes:
    """The canonical bytes of an entry with no ``prev`` link yet (see :func:`link`)."""
    return encode_linked(type=type, ts=ts, actor=actor, account=account, post=post, data=data, prev=None)


def encode_linked(
    *,
    type: str,
    ts: int,
    actor: str,
    account: str | None,
    post: str | None,
    data: dict[str, Any],
    prev: tuple[int, bytes] | None,
) -> bytes:
    """The canonical bytes of an entry linked to ``prev`` (index, leaf hash), in one encoding."""
    return entry_bytes(type, _iso(ts), actor, account, post, data, None if prev is None else link_value(*prev))


_fast = canonical.fast_dumps
_needs_reference = canonical.needs_reference


def entry_bytes(
    type: str, ts: str | None, actor: str, account: str | None, post: str | None, data: dict[str, Any],
    link: dict[str, Any] | None,
) -> bytes:
    """:func:`encode_linked` for the appender: positional, the time already in ISO form
    (:func:`gateway.types.iso`), the link already a value (:func:`link_value`) or None."""
    body = {
        "account": account, "actor": actor, "data": data, "post": post, "prev": link, "ts": ts, "type": type,
        "v": ENTRY_VERSION,
    }
    # The top level is ours: ASCII keys, the time and the link and, when the callers keep to
    # their types, strings. Then only ``data`` can hold what the fast encoder writes differently
    # from RFC 8785; anything else goes to canonical.dumps of the whole.
    try:
        if not (
            type.__class__ is str and actor.__class__ is str
            and (account is None or account.__class__ is str) and (post is None or post.__class__ is str)
        ):
            raise TypeError("not a plain entry")
        raw = _fast(body)
        if _needs_reference(data, not raw.isascii()):
            raise ValueError("data the fast encoder may write differently")
    except (TypeError, ValueError, UnicodeError, RecursionError):
        raw = canonical.dumps(body)  # the rfc8785 reference's bytes, or its error
    if len(raw) > MAX_ENTRY_BYTES:
        raise EntryTooLarge(f"log entry of {len(raw)} bytes is over {MAX_ENTRY_BYTES}")
    return raw


def link_value(index: int, leaf: bytes) -> dict[str, Any]:
    """A ``prev`` link as a value: ``{"index": N, "leaf": "base64"}``."""
    if index.__class__ is not int or not 0 <= index <= 2**53 - 1 or len(leaf) != 32:
        raise ValueError("a prev link needs an index in range and a 32-byte leaf hash")
    return {"index": index, "leaf": binascii.b2a_base64(leaf, newline=False).decode("ascii")}


def link_json(index: int, leaf: bytes) -> bytes:
    """The canonical bytes of a ``prev`` link: ``{"index":N,"leaf":"base64"}``."""
    if index.__class__ is not int or not 0 <= index <= 2**53 - 1 or len(leaf) != 32:
        raise ValueError("a prev link needs an index in range and a 32-byte leaf hash")
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


def relink_raw(linked: bytes, index: int, old_leaf: bytes, new_leaf: bytes) -> bytes:
    """The entry linked to entry ``index`` with ``new_leaf``, from one linked to it with ``old_leaf``.

    As in :func:`link_raw`, the last match of the link is the top-level one; both leaf hashes
    have the same length in base64, so the entry keeps its size.
    """
    if len(new_leaf) != 32:
        raise ValueError("a prev link needs a 32-byte leaf hash")
    old = b',"prev":' + link_json(index, old_leaf) + b',"ts":"'
    at = linked.rfind(old)
    if at < 0:
        raise ValueError("not an entry linked to that leaf")
    return linked[:at] + b',"prev":' + link_json(index, new_leaf) + b',"ts":"' + linked[at + len(old) :]


def text_commitment(text: str, salt: bytes) -> str:
    """The hex SHA-256 of salt ‖ UTF-8 text that an entry carries instead of the text."""
    return hashlib.sha256(salt + text.encode("utf-8")).hexdigest()


class _Salts:
    """Fresh random salts, drawn from the system's CSPRNG a few thousand bytes at a time.

    One ``os.urandom`` call per 256 salts instead of one per salt; each salt is used once. A
    forked child starts with an empty pool, so it never hands out its parent's salts.
    """

    _SIZE = 16
    _BLOCK = 256 * _SIZE

    def __init__(self) -> None:
        self._pool = b""
        self._at = 0

    def take(self) -> bytes:
        at = self._at
        if at >= len(self._pool):
            self._pool, at = os.urandom(self._BLOCK), 0
        self._at = at + self._SIZE
        return self._pool[at : at + self._SIZE]

    def forget(self) -> None:
        self._pool, self._at = b"", 0


_SALTS = _Salts()
os.register_at_fork(after_in_child=_SALTS.forget)

new_salt: Callable[[], bytes] = _SALTS.take
"""A fresh random salt (16 bytes), so equal texts do not give equal commitments."""
