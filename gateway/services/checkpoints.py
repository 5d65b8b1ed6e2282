"""Signed checkpoints: every few seconds, when the tree grew, the gateway signs its size and root.

Before it signs, the gateway checks the tree it is about to vouch for against the last
checkpoint it signed. That checkpoint is kept in a file beside the signing key, not only in the
database: a database restored from an older copy brings its own older checkpoints back with it,
and must be caught rather than signed over. A tree that is not an extension of the last signed
one is refused: nothing is signed, the refusal is logged at error level on every attempt, and
``/readyz`` reports it until an operator looks.

The signing key is a file (``BYLINE_LOG_KEY_FILE``, made and read by :mod:`gateway.audit.keys`)
read once at start; it is never logged or served. Only ``serve --demo`` and tests let the
gateway create a missing key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.audit import merkle
from gateway.audit.keys import LogKeyError as LogKeyError  # re-exported: the app and the CLI
from gateway.audit.keys import load_signer as load_signer  # load the key from here
from gateway.audit.nodes import stored_nodes
from gateway.audit.note import Checkpoint, NoteError, Signer, open_checkpoint, sign_note
from gateway.clock import Clock, now_micros
from gateway.storage import log as log_sql
from gateway.storage import signed as signed_sql
from gateway.storage.db import Database, Row, Txn, unavailable
from gateway.tasks import cancel_task, run_every

logger = structlog.get_logger("byline.checkpoints")


SIGNING_LOCK = "byline-checkpoints:"
"""Named, with the schema, in the advisory lock one replica at a time signs under."""


async def _lock_signing(txn: Txn) -> None:
    """Take the signing lock for the transaction (PostgreSQL; SQLite's writer is one already).
    Gateways on other schemas of the same database sign under other locks."""
    if txn.dialect == "postgresql":
        await txn.fetchone("SELECT pg_advisory_xact_lock(hashtext(? || current_schema())) AS locked", SIGNING_LOCK)


class CheckpointRefused(Exception):
    """The tree is not consistent with the last signed checkpoint; nothing was signed."""


def signed_state_path(key_file: Path) -> Path:
    """Where the last checkpoint signed with ``key_file`` is remembered: beside the key."""
    return key_file.with_name(key_file.name + ".checkpoint")


@dataclass(frozen=True)
class _Anchor:
    """A checkpoint the new tree must extend, and where it was found."""

    size: int
    root: bytes
    where: str


class CheckpointService:
    """Signs a checkpoint whenever the tree grew, after checking it extends the last one signed."""

    def __init__(
        self,
        *,
        db: Database,
        signer: Signer,
        clock: Clock,
        interval: float,
        state_file: Path,
    ) -> None:
        self._db = db
        self._signer = signer
        self._verifier = signer.verifier()
        self._clock = clock
        self._interval = interval
        self._state_file = state_file
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._last_logged: tuple[str, float] | None = None
        self.problem: str | None = None
        self.signed = 0

    @property
    def origin(self) -> str:
        """The log's origin line: the signing key's name."""
        return self._signer.name

    def verifier_key(self) -> str:
        """The public verifier key, as published at ``/log/key``."""
        return self._verifier.to_text()

    async def start(self) -> None:
        """Sign what is there now, then keep signing every interval while the tree grows."""
        await self._tick()
        self._task = run_every(self._interval, self._tick, name="byline-checkpoints", failed="checkpoint_failed")

    async def stop(self) -> None:
        """Stop signing."""
        await cancel_task(self._task)
        self._task = None

    async def _tick(self) -> None:
        try:
            await self.sign_now()
        except CheckpointRefused:
            pass  # already logged and reported by sign_now
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if unavailable(exc):  # no bug: the next tick tries again
                logger.warning("checkpoint_failed", error="database_unavailable")
            else:
                logger.exception("checkpoint_failed")

    async def sign_now(self) -> bytes:
        """Sign the current tree if it grew; return the latest signed note.

        Raises :class:`CheckpointRefused` when the tree does not extend the last checkpoint
        signed (kept beside the key) or the latest one in the database.
        """
        async with self._lock:
            try:
                note = await self._sign()
            except CheckpointRefused as exc:
                self._refused(str(exc))
                raise
            if self.problem is not None:
                logger.warning("checkpoint_consistent_again")
            self.problem = None
            return note

    def _refused(self, message: str) -> None:
        self.problem = message
        now = time.monotonic()
        last = self._last_logged
        # Loud, but not a line every two seconds for the same problem.
        if last is None or last[0] != message or now - last[1] > 60:
            logger.error("checkpoint_refused", problem=message)
            self._last_logged = (message, now)

    def _anchor_from_file(self) -> _Anchor | None:
        try:
            note = self._state_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CheckpointRefused(
                f"cannot read the last signed checkpoint {self._state_file}: {type(exc).__name__}"
            ) from None
        try:
            checkpoint, _ = open_checkpoint(note, [self._verifier], origin=self.origin)
        except NoteError as exc:
            raise CheckpointRefused(
                f"the last signed checkpoint {self._state_file} does not verify: {exc}"
            ) from None
        return _Anchor(checkpoint.size, checkpoint.root_hash, f"signed before ({self._state_file})")

    def _anchor_from_db(self, row: Row | None, where: str) -> _Anchor | None:
        if row is None:
            return None
        note = bytes(row["note"])
        try:
            checkpoint, _ = open_checkpoint(note, [self._verifier], origin=self.origin)
        except NoteError as exc:
            raise CheckpointRefused(
                f"the checkpoint {where} does not verify with this key: {exc}"
            ) from None
        return _Anchor(checkpoint.size, checkpoint.root_hash, where)

    async def _sign(self) -> bytes:
        # One replica signs at a time: the whole check-and-sign runs in one write transaction,
        # under a lock taken in it (PostgreSQL: an advisory lock, released by the transaction's
        # end, a crash included; SQLite: the one writer). The last checkpoint signed by any
        # replica is read under that lock, so none signs a tree that does not extend it.
        async with self._db.write() as txn:
            await _lock_signing(txn)
            file_anchor = self._anchor_from_file()
            state = await log_sql.read_state(txn)
            latest = await log_sql.latest_checkpoint(txn)
            last = await signed_sql.last_signed(txn)
            size = int(state["size"])
            root = bytes(state["root"])
            db_anchor = self._anchor_from_db(latest, "latest in the database")
            signed_anchor = self._anchor_from_db(last, "last signed by a gateway on this database")
            anchors = [a for a in (file_anchor, db_anchor, signed_anchor) if a is not None]
            wanted = set(merkle.range_nodes(0, size))
            for anchor in anchors:
                if 0 < anchor.size < size:
                    wanted.update(merkle.consistency_proof_nodes(anchor.size, size))
            nodes = await stored_nodes(txn, sorted(wanted))
            try:
                from_nodes = merkle.root_from_nodes(size, nodes)
            except KeyError as exc:
                raise CheckpointRefused(f"the tree of size {size} is missing a stored node: {exc}") from None
            if from_nodes != root:
                raise CheckpointRefused(
                    f"the stored tree nodes do not give the recorded root of size {size}"
                )
            for anchor in anchors:
                self._check_extends(anchor, size, root, nodes)
            newest = max((a for a in (db_anchor, signed_anchor) if a is not None), key=lambda a: a.size, default=None)
            if newest is not None and newest.size == size:
                # Signed already, by this gateway or another: the same tree, so the same root.
                kept = last if signed_anchor is newest else latest
                assert kept is not None
                note = bytes(kept["note"])
                if last is None or int(last["size"]) < size:
                    await signed_sql.save_last_signed(txn, size=size, root=root, note=note, at=now_micros(self._clock))
                if file_anchor is None or file_anchor.size < size:
                    self._remember(note)
                return note
            note = sign_note(Checkpoint(self.origin, size, root).to_text(), self._signer)
            at = now_micros(self._clock)
            await log_sql.insert_checkpoint(txn, size=size, root=root, note=note, at=at)
            await signed_sql.save_last_signed(txn, size=size, root=root, note=note, at=at)
            # Beside the key before the commit, still under the lock: a file shared by replicas
            # never goes back to an older checkpoint. Should the commit fail, the file holds a
            # checkpoint of a tree that was committed already, which every later one extends.
            self._remember(note)
        self.signed += 1
        logger.info("checkpoint_signed", size=size)
        return note

    def _check_extends(
        self, anchor: _Anchor, size: int, root: bytes, nodes: merkle.NodeHashes
    ) -> None:
        if anchor.size > size:
            raise CheckpointRefused(
                f"the log has {size} entries but a checkpoint of {anchor.size} entries was "
                f"{anchor.where}: the database was restored from an older copy or truncated"
            )
        if anchor.size == size:
            if anchor.root != root:
                raise CheckpointRefused(
                    f"the tree of {size} entries has a different root from the checkpoint "
                    f"{anchor.where}: the log was rewritten"
                )
            return
        if anchor.size == 0:
            if anchor.root != merkle.EMPTY_ROOT:
                raise CheckpointRefused(f"the empty checkpoint {anchor.where} has a wrong root")
            return
        try:
            proof = merkle.assemble_consistency_proof(anchor.size, size, nodes)
            merkle.verify_consistency(anchor.size, size, anchor.root, root, proof)
        except KeyError as exc:
            raise CheckpointRefused(f"the tree is missing a stored node: {exc}") from None
        except merkle.ProofError as exc:
            raise CheckpointRefused(
                f"the tree of {size} entries does not extend the checkpoint of {anchor.size} "
                f"entries {anchor.where}: {exc}"
            ) from None

    def _remember(self, note: bytes) -> None:
        """Write the latest signed note beside the key, atomically and durably."""
        path = self._state_file
        with contextlib.suppress(CheckpointRefused):
            kept = self._anchor_from_file()
            if kept is not None and kept.size >= open_checkpoint(note, [self._verifier], origin=self.origin)[0].size:
                return  # another gateway sharing the file wrote this one, or a later one
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as out:
                out.write(note)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            logger.error("checkpoint_state_not_saved", path=str(path), error=type(exc).__name__)
