"""Chains' last entries a batch's works read themselves (``LogTxn.heads_read``): a new post's
chain, which has none, and the chains of posts whose outcomes a group records, read by the
compare-and-set that records them on PostgreSQL. The log writer then makes no lookup of its own
for them when it seals the batch (a round trip while the batch holds the tree's lock, on
PostgreSQL), and every entry is still linked to its chain's last one: the log verifies. Both
databases, through the real appender and the real storage statements."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.audit.appender import Appender, LogTxn, post_chain
from gateway.clock import ManualClock
from gateway.storage import log as log_sql
from gateway.storage import posts as sql
from gateway.storage.db import Database
from gateway.types import AccountName, Micros, PostId, UserName
from tests.audit.logtools import verified_export
from tests.test_held_inserts import appender_for_acct


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[list[str]]]:
    """The chains the log writer looks up when it seals each batch (the real lookup runs)."""
    seen: list[list[str]] = []
    real = log_sql.chain_heads

    async def chain_heads(txn: Any, chains: Any) -> dict[str, tuple[int, bytes]]:
        seen.append(list(chains))
        return await real(txn, chains)

    monkeypatch.setattr(log_sql, "chain_heads", chain_heads)
    yield seen


def _post(post_id: str) -> sql.PostRecord:
    return sql.PostRecord(id=PostId(post_id), account=AccountName("acct"), author=UserName("alice"),
                          state="publishing", version=1, text=f"words of {post_id}", created_at=Micros(1),
                          updated_at=Micros(1), options={"visibility": "public"}, publish_at=Micros(1))


def _submit(post_id: str) -> Any:
    """A new post stored and logged, as ``PostService`` stores one."""
    async def work(ltx: LogTxn) -> None:
        assert await sql.insert_new_post(ltx.txn, _post(post_id), policy_sha256="p1")
        ltx.heads_read({post_chain(post_id): None})
        await ltx.append("test.submitted", actor="alice", account="acct", post=post_id, data={"version": 1})
    return work


def _published(post_ids: list[str]) -> Any:
    """A group of outcomes recorded, as the publisher records them: one compare-and-set, the
    chains' last entries read with it."""
    async def work(ltx: LogTxn) -> set[str]:
        heads: dict[str, tuple[int, bytes] | None] = {}
        recorded = await sql.compare_and_set_many(ltx.txn, [
            sql.Change(post_id, "publishing", 1, {"state": "published", "remote_id": f"r-{post_id}",
                                                  "updated_at": ltx.now})
            for post_id in post_ids
        ], heads=heads)
        ltx.heads_read({post_chain(post_id): head for post_id, head in heads.items()})
        for post_id in sorted(recorded):
            await ltx.append("test.published", actor="system", account="acct", post=post_id, data={"version": 1})
        return recorded
    return work


def _edit(post_id: str) -> Any:
    """Another entry of an existing post's chain, which reads nothing itself."""
    async def work(ltx: LogTxn) -> None:
        await ltx.append("test.noted", actor="alice", account="acct", post=post_id, data={})
    return work


async def _links(db: Database) -> dict[int, tuple[str, dict[str, Any] | None]]:
    """Each entry's chain and link (``prev``), by index."""
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT idx, chain, entry FROM log_entries ORDER BY idx")
    return {int(r["idx"]): (r["chain"], json.loads(bytes(r["entry"])).get("prev")) for r in rows}


async def _leaf(db: Database, idx: int) -> str:
    import base64
    async with db.read() as txn:
        row = await txn.fetchone("SELECT leaf_hash FROM log_entries WHERE idx = ?", idx)
    assert row is not None
    return base64.b64encode(bytes(row["leaf_hash"])).decode("ascii")


async def test_chains_a_batch_read_are_not_looked_up_and_stay_linked(
    db: Database, tmp_path: Path, lookups: list[list[str]],
) -> None:
    async with appender_for_acct(db) as appender:
        # New posts: their chains have no entry, and none is looked up.
        for post_id in ("101", "102", "103"):
            await appender.submit(_submit(post_id))
        assert lookups == []
        # Another writer moved the tree (a replica): what this sequencer remembers of the
        # chains no longer holds, and the outcomes' chains are read with their compare-and-set
        # on PostgreSQL; SQLite looks them up as before.
        await _another_writer(db)
        assert await appender.submit(_published(["101", "102"])) == {"101", "102"}
        if db.dialect == "postgresql":
            assert lookups == []
        else:
            assert lookups == [[post_chain("101"), post_chain("102")]]
        lookups.clear()
        # A chain nobody read is still looked up, and linked.
        await _another_writer(db)
        await appender.submit(_edit("103"))
        assert lookups == [[post_chain("103")]]

    links = await _links(db)
    by_chain: dict[str, list[int]] = {}
    for idx, (chain, _) in links.items():
        by_chain.setdefault(chain, []).append(idx)
    for post_id in ("101", "102", "103"):
        first, later = by_chain[post_chain(post_id)]
        assert links[first][1] is None
        assert links[later][1] == {"index": first, "leaf": await _leaf(db, first)}
    assert (await verified_export(db, tmp_path)).ok


async def _another_writer(db: Database) -> None:
    """An entry appended by another gateway's appender on the same database."""
    other = Appender(db, ManualClock(), max_batch=64)
    await other.start()
    try:
        await other.submit(lambda ltx: ltx.append("test.elsewhere", actor="admin", account="acct", data={}))
    finally:
        await other.stop()


async def test_an_entry_this_batch_made_is_the_chains_last_whatever_was_read(
    db: Database, tmp_path: Path, lookups: list[list[str]],
) -> None:
    """A post submitted and recorded published in one batch: the compare-and-set reads the chain
    as it stands before the batch (nothing), yet the outcome links to the submission the batch
    appended first."""
    async def both(ltx: LogTxn) -> None:
        await _submit("201")(ltx)
        await _published(["201"])(ltx)

    async with appender_for_acct(db) as appender:
        await appender.submit(both)
    links = await _links(db)
    assert links[1] == (post_chain("201"), {"index": 0, "leaf": await _leaf(db, 0)})
    assert lookups == []
    assert (await verified_export(db, tmp_path)).ok
