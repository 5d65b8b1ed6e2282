"""SQL for the last checkpoint signed by any gateway on the database (schema version 11).

One row, moved only forward, under the signing lock (``gateway.services.checkpoints``): the
state a replica checks a new tree against, whichever replica signed last. A copy is also kept
beside the signing key, where a database restored from an older copy cannot take it back.
"""

from __future__ import annotations

from gateway.storage.db import Row, Txn


async def last_signed(txn: Txn) -> Row | None:
    """The last checkpoint signed by a gateway on this database, if any."""
    return await txn.fetchone("SELECT size, root, note, signed_at FROM log_signed WHERE id = 1")


async def save_last_signed(txn: Txn, *, size: int, root: bytes, note: bytes, at: int) -> None:
    """Remember a checkpoint as the last signed; an older one than the one kept is ignored."""
    await txn.execute(
        "INSERT INTO log_signed (id, size, root, note, signed_at) VALUES (1, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO UPDATE SET size = excluded.size, root = excluded.root, note = excluded.note, "
        "signed_at = excluded.signed_at WHERE log_signed.size < excluded.size",
        size, root, note, at,
    )
