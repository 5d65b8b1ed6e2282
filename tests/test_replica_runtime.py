"""Several gateways on one database at run time (issue 17): checkpoints signed by one replica at
a time, and wake-ups that cross replicas (PostgreSQL's LISTEN/NOTIFY).

Gateways whose policy directories sit beside each other share the log key, as replicas do
(see tests/conftest.py); a gateway given its own copy of the key stands for a replica on
another host, with its own file beside the key.
"""

from __future__ import annotations

import asyncio
import base64
import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from gateway.appkeys import CHECKPOINTS, DB
from gateway.audit import merkle
from gateway.audit.nodes import stored_nodes as real_nodes
from gateway.audit.note import open_checkpoint
from gateway.audit.note import sign_note as real_sign
from gateway.clock import ManualClock
from gateway.services.checkpoints import signed_state_path
from tests.conftest import Gateway, started_gateway, write_policy

DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    writers: [alice, carol]
"""


def _dir(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    """A policy directory beside the others (they share the log key, as replicas do)."""
    directory = tmp_path / name
    directory.mkdir()
    for account, text in files.items():
        write_policy(directory, account, text)
    return directory


async def _leaves(gw: Gateway) -> list[bytes]:
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT leaf_hash FROM log_entries ORDER BY idx")
    return [bytes(r["leaf_hash"]) for r in rows]


async def test_replicas_signing_at_once_never_sign_inconsistent_checkpoints(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two gateways (one with its own copy of the key, as on another host) sign again and again
    while posts come in through both: in the order they were signed, every checkpoint is of a
    tree at least as large as the one before and a prefix of the one log (so every pair is
    consistent), and the database and both key files end on the newest."""
    signed: list[tuple[int, bytes]] = []

    def recording(text: str, signer: Any) -> bytes:
        _origin, size, root = text.split("\n")[:3]
        signed.append((int(size), base64.b64decode(root)))
        return real_sign(text, signer)

    pauses = random.Random(17)

    async def slow_nodes(txn: Any, wanted: Any) -> Any:
        # A replica may pause anywhere (a slow disk, a busy host): here, between reading the tree
        # and signing it, where another replica may sign a larger tree meanwhile.
        await asyncio.sleep(pauses.uniform(0, 0.01))
        return await real_nodes(txn, wanted)

    monkeypatch.setattr("gateway.services.checkpoints.sign_note", recording)
    monkeypatch.setattr("gateway.services.checkpoints.stored_nodes", slow_nodes)
    first = _dir(tmp_path, "policies-a", {"brand": DIRECT})
    elsewhere = tmp_path / "host-b"
    elsewhere.mkdir()
    second = _dir(elsewhere, "policies", {"brand": DIRECT})
    async with started_gateway(db_url, first, clock) as a:
        shutil.copy2(tmp_path / "log.key", elsewhere / "log.key")
        async with started_gateway(db_url, second, clock) as b:
            stop = asyncio.Event()

            async def posting(gw: Gateway, who: str) -> None:
                n = 0
                while not stop.is_set():
                    await gw.submit(who, "brand", f"{who} {n}")
                    n += 1

            async def signing(gw: Gateway) -> None:
                for _ in range(40):
                    await gw.app[CHECKPOINTS].sign_now()
                    await asyncio.sleep(0)

            writers = [asyncio.create_task(posting(a, "alice")), asyncio.create_task(posting(b, "carol"))]
            try:
                await asyncio.gather(signing(a), signing(b), signing(a), signing(b))
            finally:
                stop.set()
                await asyncio.gather(*writers)
            for gw in (a, b):  # nothing new: each finds the last one signed, and keeps it beside its key
                await gw.app[CHECKPOINTS].sign_now()
            leaves = await _leaves(a)
            async with a.app[DB].read() as txn:
                row = await txn.fetchone("SELECT size, root, note FROM log_signed WHERE id = 1")
                latest = await txn.fetchone("SELECT MAX(size) AS size FROM log_checkpoints")
    assert len(signed) > 5, "the replicas signed again and again"
    sizes = [size for size, _ in signed]
    assert sizes == sorted(set(sizes)), f"a tree signed twice, or a smaller one after a larger one: {sizes}"
    for size, root in signed:
        assert root == merkle.root_from_leaves(leaves[:size]), f"the checkpoint of {size} is not of the one log"
    newest = signed[-1]
    assert row is not None and (int(row["size"]), bytes(row["root"])) == newest
    assert latest is not None and int(latest["size"]) == newest[0]
    verifier = a.app[CHECKPOINTS]._verifier
    for key_file in (tmp_path / "log.key", elsewhere / "log.key"):
        note = signed_state_path(key_file).read_bytes()
        checkpoint, _ = open_checkpoint(note, [verifier], origin=a.app[CHECKPOINTS].origin)
        assert (checkpoint.size, checkpoint.root_hash) == newest, key_file
