"""Reading the audit log for outsiders: entries, committed texts, proofs, tiles, checkpoints.

Everything here is read-only and public except :meth:`LogReader.post_proofs`, which is asked
for by a caller and shows only posts that caller may see.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gateway.audit import merkle
from gateway.audit.nodes import stored_nodes
from gateway.audit.note import NoteError, format_tlog_proof
from gateway.errors import BylineError, Code
from gateway.services.checkpoints import CheckpointRefused, CheckpointService
from gateway.services.posts import Caller, PostService
from gateway.storage import log as log_sql
from gateway.storage.db import Database

PAGE = 1000
"""The most entries one ``/log/entries`` page holds."""

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT


@dataclass(frozen=True)
class Tile:
    """A c2sp.org/tlog-tiles tile: its bytes, and whether it can never change."""

    data: bytes
    full: bool


def _missing() -> BylineError:
    return BylineError(
        Code.UNAVAILABLE, "the log is missing a stored tree node: it cannot give this proof"
    )


def _range(start: int, end: int) -> None:
    if start < 0:
        raise BylineError(Code.VALIDATION, "start must not be negative", field="start")
    if end <= start:
        raise BylineError(Code.VALIDATION, "end must be greater than start", field="end")


def went_out(entries: Iterable[tuple[int, str, dict[str, Any]]]) -> set[int]:
    """Of posts' entries that commit to words (index, post, body, with their ``post.published``
    entries: ``log_sql.TEXT_FATES``), those whose words went out.

    Decided per version, not per post: a version went out when the post was published with it
    (its ``post.published`` names it), and the entries committing to that version's words went
    out with it; those of a version edited away before the post went out did not. Words sent as
    an edit of the published post (``post.revising``, ``post.revised``) went out: they were sent
    to be shown, and may have been, even when the edit is then said to have failed.
    """
    published: set[tuple[str, Any]] = set()
    committed: list[tuple[int, str, Any]] = []
    out: set[int] = set()
    for index, post, body in entries:
        kind, version = body.get("type"), body.get("data", {}).get("version")
        if kind == "post.published":
            published.add((post, version))
        elif kind in ("post.revising", "post.revised"):
            out.add(index)
        elif kind in ("post.submitted", "post.edited", "post.publishing"):
            committed.append((index, post, version))
    out.update(index for index, post, version in committed if (post, version) in published)
    return out


class LogReader:
    """The public view of the log."""

    def __init__(self, *, db: Database, checkpoints: CheckpointService, posts: PostService) -> None:
        self._db = db
        self._checkpoints = checkpoints
        self._posts = posts

    def verifier_key(self) -> str:
        """The verifier key: ``name+hex(key id)+base64(0x01 ‖ public key)``."""
        return self._checkpoints.verifier_key()

    async def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""
        async with self._db.read() as txn:
            row = await log_sql.latest_checkpoint(txn)
        if row is None:
            raise BylineError(Code.UNAVAILABLE, "no checkpoint has been signed yet")
        return bytes(row["note"])

    async def _size(self) -> int:
        async with self._db.read() as txn:
            return int((await log_sql.read_state(txn))["size"])

    async def entries(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """Entries ``start <= index < end`` (at most :data:`PAGE`), as stored."""
        _range(start, end)
        end = min(end, start + PAGE)
        async with self._db.read() as txn:
            rows = await log_sql.entries(txn, start, end)
        return [(int(r["idx"]), bytes(r["entry"])) for r in rows]

    async def texts(
        self, start: int, end: int, *, member_of: frozenset[str] = frozenset(), auditor: bool = False
    ) -> list[dict[str, Any]]:
        """The texts (with salts) that the entries ``start <= index < end`` commit to.

        The public sees the words (and salts) of the versions of posts that went out: published
        (and perhaps deleted since), or sent as an edit of a published post (:func:`went_out`).
        Every other version is withheld (``text`` and ``salt`` null, ``withheld`` true) from anyone
        who has no role on the account (``member_of``) unless they are an ``auditor``: drafts
        waiting for approval, rejected or cancelled posts, refused attempts, and the drafts of a
        published post that were edited away before it went out. A brand's unannounced launch
        must not leak through its own transparency log, nor its first draft through the post
        that went out instead.
        """
        _range(start, end)
        end = min(end, start + PAGE)
        async with self._db.read() as txn:
            found = await log_sql.texts(txn, start, end)
            posts = {r["post_id"] for r in found if r["post_id"] is not None}
            fates = await log_sql.text_fates(txn, sorted(posts))
        out_there = went_out((int(r["idx"]), str(r["post_id"]), json.loads(bytes(r["entry"]))) for r in fates)
        result = []
        for r in found:
            shown = auditor or r["account"] in member_of or int(r["idx"]) in out_there
            # A withheld text's salt is withheld too: with it, anyone could confirm a guess of the
            # words against the hash in the public entry.
            result.append({
                "hash": r["text_hash"], "salt": bytes(r["salt"]).hex() if shown else None,
                "text": r["text"] if shown else None, "withheld": not shown and r["text"] is not None,
            })
        return result

    async def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size`` entries."""
        if not 0 <= index < size:
            raise BylineError(Code.VALIDATION, "need 0 <= index < size", field="index")
        async with self._db.read() as txn:
            current = int((await log_sql.read_state(txn))["size"])
            if size > current:
                raise BylineError(
                    Code.VALIDATION, f"the log has {current} entries, fewer than {size}", field="size"
                )
            nodes = await stored_nodes(txn, merkle.inclusion_proof_nodes(index, size))
        try:
            return merkle.assemble_inclusion_proof(index, size, nodes)
        except KeyError:
            raise _missing() from None

    async def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """The RFC 9162 consistency proof between the trees of ``old`` and ``new`` entries."""
        if not 0 < old <= new:
            raise BylineError(Code.VALIDATION, "need 0 < old <= new", field="old")
        async with self._db.read() as txn:
            current = int((await log_sql.read_state(txn))["size"])
            if new > current:
                raise BylineError(
                    Code.VALIDATION, f"the log has {current} entries, fewer than {new}", field="new"
                )
            nodes = await stored_nodes(txn, merkle.consistency_proof_nodes(old, new))
        try:
            return merkle.assemble_consistency_proof(old, new, nodes)
        except KeyError:
            raise _missing() from None

    async def hash_tile(self, level: int, index: int, width: int | None) -> Tile:
        """Tile ``level``/``index``: the hashes of tree level ``8 * level`` it spans."""
        tree_level = level * TILE_HEIGHT
        want = TILE_WIDTH if width is None else width
        first = index * TILE_WIDTH
        async with self._db.read() as txn:
            current = int((await log_sql.read_state(txn))["size"])
            if (first + want) << tree_level > current:
                raise BylineError(Code.NOT_FOUND, "no such tile yet")
            rows = await log_sql.level_nodes(txn, tree_level, first, first + want)
        if len(rows) != want:
            raise BylineError(Code.NOT_FOUND, "no such tile yet")
        return Tile(b"".join(bytes(r["hash"]) for r in rows), full=width is None)

    async def entry_tile(self, index: int, width: int | None) -> Tile:
        """Entry bundle ``index``: each entry as a 16-bit big-endian length and its bytes."""
        want = TILE_WIDTH if width is None else width
        first = index * TILE_WIDTH
        async with self._db.read() as txn:
            # Checked before the query: a tile past the log can name an index no SQL integer holds.
            if first + want > int((await log_sql.read_state(txn))["size"]):
                raise BylineError(Code.NOT_FOUND, "no such tile yet")
            rows = await log_sql.entries(txn, first, first + want)
        if len(rows) != want:
            raise BylineError(Code.NOT_FOUND, "no such tile yet")
        parts = []
        for row in rows:
            entry = bytes(row["entry"])
            parts.append(len(entry).to_bytes(2, "big") + entry)
        return Tile(b"".join(parts), full=width is None)

    async def post_proofs(self, caller: Caller, post_id: str) -> dict[str, Any]:
        """A c2sp.org/tlog-proof bundle for each logged event of a post the caller may see."""
        await self._posts.view(caller, post_id)  # 404 or 403 exactly as reading the post
        async with self._db.read() as txn:
            rows = await log_sql.post_entries(txn, post_id)
            latest = await log_sql.latest_checkpoint(txn)
        if rows and (latest is None or int(latest["size"]) <= int(rows[-1]["idx"])):
            try:
                note: bytes | None = await self._checkpoints.sign_now()
            except CheckpointRefused:
                note = bytes(latest["note"]) if latest is not None else None
        else:
            note = bytes(latest["note"]) if latest is not None else None
        size = 0
        if note is not None:
            size = int(note.split(b"\n", 2)[1])
        wanted: set[merkle.Node] = set()
        for row in rows:
            if int(row["idx"]) < size:
                wanted.update(merkle.inclusion_proof_nodes(int(row["idx"]), size))
        async with self._db.read() as txn:
            nodes = await stored_nodes(txn, sorted(wanted))
        events = []
        for row in rows:
            index = int(row["idx"])
            entry = bytes(row["entry"])
            bundle: str | None = None
            problem: str | None = None if index < size else "not yet in a signed checkpoint"
            if note is not None and index < size:
                try:
                    proof = merkle.assemble_inclusion_proof(index, size, nodes)
                    bundle = format_tlog_proof(
                        index, proof, note, leaf_hash=merkle.leaf_hash(entry)
                    ).decode()
                except KeyError:
                    problem = "the log is missing a stored tree node"
                except NoteError:
                    problem = "the stored entry does not match the signed tree"
            try:
                kind = json.loads(entry).get("type")
            except (ValueError, AttributeError):
                kind = None
            events.append({
                "index": index,
                "type": kind,
                "leaf": _b64(entry),
                "proof": bundle,
                "problem": problem,
            })
        return {
            "post": post_id,
            "checkpoint": note.decode() if note is not None else None,
            "events": events,
        }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
