"""SQL for the gateway's own secret keys: made once by whichever replica starts first."""

from __future__ import annotations

from gateway.storage.db import Txn


async def key_of(txn: Txn, name: str, *, candidate: str, at: int) -> str:
    """The key named ``name``; ``candidate`` becomes it when there is none yet."""
    await txn.execute(
        "INSERT INTO gateway_keys (name, secret, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING",
        name, candidate, at,
    )
    row = await txn.fetchone("SELECT secret FROM gateway_keys WHERE name = ?", name)
    assert row is not None
    return str(row["secret"])
