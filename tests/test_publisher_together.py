"""Claims and outcomes written together: a page of due posts is claimed with one compare-and-set
for all (one statement on PostgreSQL) and the posts a platform took are recorded published by
one work; still each post goes out once with its entries in order, and a post changed meanwhile
is left out alone. Also what the PostgreSQL log writer now writes in one statement (entries,
texts, tree nodes and state) and the chain heads it reads. Both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.base import PublishResult
from gateway.appkeys import APPENDER, DB, PUBLISHER
from gateway.audit.appender import Appender, LogTxn
from gateway.clock import ManualClock
from gateway.errors import BylineError, Code
from gateway.storage import log as log_sql
from gateway.storage import policies as policy_sql
from gateway.storage import posts as sql
from gateway.storage.db import Database
from gateway.types import AccountName, Micros, PostId, UserName
from tests.audit.logtools import verified_by_cli, verified_export
from tests.audit.reference import mth
from tests.conftest import Gateway


async def _types(db: Database, post_id: str) -> list[str]:
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT type FROM log_entries WHERE post_id = ? ORDER BY idx", post_id)
    return [r["type"] for r in rows]


async def _due(gw: Gateway, n: int) -> list[str]:
    """``n`` posts on the delayed account (10 minutes), due once the clock has moved past them."""
    ids = [(await gw.submit("bob", "delayed", f"Post {k} of the page"))["id"] for k in range(n)]
    gw.clock.advance(timedelta(minutes=11))
    return ids


async def test_a_page_of_due_posts_goes_out_once_each(gateway: Gateway) -> None:
    """Thirty due posts of one account (at most 32 are held unsettled) claimed in one page: each
    on the platform once, its entries submitted, publishing, published; the claims' entries side
    by side (one work), and ``byline audit verify`` passes."""
    ids = await _due(gateway, 30)
    assert await gateway.tick() == 30
    timeline = await gateway.timeline("delayed")
    assert sorted(p["text"] for p in timeline) == sorted(f"Post {k} of the page" for k in range(30))
    db = gateway.app[DB]
    for post_id in ids:
        assert await _types(db, post_id) == ["post.submitted", "post.publishing", "post.published"]
    async with db.read() as txn:
        claimed = await txn.fetchall("SELECT idx FROM log_entries WHERE type = 'post.publishing' ORDER BY idx")
        states = await txn.fetchall("SELECT DISTINCT state, attempts FROM posts")
    first = int(claimed[0]["idx"])
    assert [int(r["idx"]) for r in claimed] == list(range(first, first + 30))
    assert [(r["state"], int(r["attempts"])) for r in states] == [("published", 1)]
    await verified_by_cli(gateway)


async def test_a_post_changed_while_publishing_is_left_out_of_its_group(gateway: Gateway) -> None:
    """Three posts the platform took, recorded by one work: the one edited meanwhile (its
    version moved) is refused to its own caller and gets no entry; the two others are published."""
    ids = await _due(gateway, 3)
    publisher, appender, db = gateway.app[PUBLISHER], gateway.app[APPENDER], gateway.app[DB]
    claims = [await appender.submit(publisher._claim_work(post_id)) for post_id in ids]
    assert all(c is not None for c in claims)
    async with db.write() as txn:
        assert await txn.execute("UPDATE posts SET version = version + 1 WHERE id = ?", ids[1]) == 1
    before = appender.batches
    outcomes = await asyncio.gather(
        *(publisher._record_published(c, PublishResult(remote_id=f"r{n}", url=f"https://example.test/{n}"))
          for n, c in enumerate(claims) if c is not None),
        return_exceptions=True,
    )
    assert appender.batches == before + 1, "the three recorded by one work, in one batch"
    assert outcomes[0] is None and outcomes[2] is None
    refused = outcomes[1]
    assert isinstance(refused, BylineError) and refused.code is Code.CONFLICT
    async with db.read() as txn:
        rows = {r["id"]: r for r in await txn.fetchall("SELECT id, state, remote_id, lease_until FROM posts")}
    assert [(rows[i]["state"], rows[i]["remote_id"]) for i in ids] == [
        ("published", "r0"), ("publishing", None), ("published", "r2")]
    assert rows[ids[0]]["lease_until"] is None and rows[ids[1]]["lease_until"] is not None
    assert await _types(db, ids[1]) == ["post.submitted", "post.publishing"]
    for n in (0, 2):
        async with db.read() as txn:
            last = await txn.fetchone(
                "SELECT entry FROM log_entries WHERE post_id = ? ORDER BY idx DESC LIMIT 1", ids[n])
        assert last is not None
        entry = json.loads(bytes(last["entry"]))
        assert (entry["type"], entry["data"]["remote_id"]) == ("post.published", f"r{n}")
    await verified_by_cli(gateway)


async def test_compare_and_set_many_changes_only_posts_as_they_were_read(gateway: Gateway) -> None:
    """Several compare-and-sets at once, of two shapes: only the posts still in the state and
    version given change, each as its own change says; a column not to be changed is refused."""
    ids = [(await gateway.submit("bob", "delayed", f"Post {k}"))["id"] for k in range(4)]
    db = gateway.app[DB]
    async with db.write() as txn:
        done = await sql.compare_and_set_many(txn, [
            sql.Change(ids[0], "scheduled", 1, {"state": "publishing", "attempts": 1, "idempotency_key": "k0"}),
            sql.Change(ids[1], "scheduled", 2, {"state": "publishing", "attempts": 1, "idempotency_key": "k1"}),
            sql.Change(ids[2], "held", 1, {"state": "publishing", "attempts": 1, "idempotency_key": "k2"}),
            sql.Change(ids[3], "scheduled", 1, {"publish_at": 5, "last_error": None}),
        ])
    assert done == {ids[0], ids[3]}
    async with db.read() as txn:
        rows = {r["id"]: r for r in await txn.fetchall(
            "SELECT id, state, attempts, idempotency_key, publish_at FROM posts")}
    assert [(rows[i]["state"], rows[i]["attempts"], rows[i]["idempotency_key"]) for i in ids] == [
        ("publishing", 1, "k0"), ("scheduled", 0, None), ("scheduled", 0, None), ("scheduled", 0, None)]
    assert rows[ids[3]]["publish_at"] == 5 and rows[ids[2]]["publish_at"] != 5
    async with db.write() as txn:
        with pytest.raises(ValueError, match="not updatable"):
            await sql.compare_and_set_many(txn, [sql.Change(ids[1], "scheduled", 1, {"id": "x"})])


async def test_a_new_post_goes_in_only_under_the_policy_in_force(gateway: Gateway) -> None:
    """A new post and its first version are stored, and their record given back as a read would
    give it, only while the policy named is the account's version in force; under another,
    nothing of the post is stored."""
    db = gateway.app[DB]
    async with db.read() as txn:
        head = await policy_sql.head_sha256(txn, "direct")
    assert head is not None
    post = sql.PostRecord(
        id=PostId("9001"), account=AccountName("direct"), author=UserName("bob"), state="held", version=1,
        text="Hello", options={"visibility": "unlisted"}, reasons=({"rule": "r", "reason": "why"},),
        approvers=(UserName("carol"), UserName("dave")), required=2, editors=(UserName("erin"),),
        requested_at=Micros(3), publish_at=Micros(4), expires_at=Micros(5), suggested_by=UserName("fay"),
        adopted_from=PostId("8999"), created_at=Micros(7), updated_at=Micros(8),
    )
    async with db.write() as txn:
        assert not await sql.insert_new_post(txn, replace(post, id=PostId("9002")), policy_sha256="0" * 64)
        assert await sql.insert_new_post(txn, post, policy_sha256=head)
    async with db.read() as txn:
        assert await sql.get_post(txn, "9002") is None
        assert await txn.fetchall("SELECT post_id FROM post_versions WHERE post_id = ?", "9002") == []
        assert await sql.get_post(txn, "9001") == post
        versions = [dict(r) for r in await sql.versions(txn, "9001")]
    assert [(v["version"], v["text"], v["editor"], v["created_at"]) for v in versions] == [(1, "Hello", "bob", 7)]


async def test_batches_store_entries_texts_nodes_and_state(db: Database, tmp_path: Path) -> None:
    """600 entries in batches, a third with a text: the stored nodes are the Merkle tree's
    (RFC 9162) on every level kept, the state's root is the tree's, and the log verifies."""
    appender = Appender(db, ManualClock(), max_batch=64)
    await appender.start()

    def work(n: int) -> Callable[[LogTxn], Awaitable[int]]:
        async def append(ltx: LogTxn) -> int:
            data = {"n": n, "text_hash": ltx.commit_text(f"text {n}")} if n % 3 == 0 else {"n": n}
            return await ltx.append("test.event", actor="alice", account="acct", post=f"p{n % 7}", data=data)
        return append

    try:
        indexes = await asyncio.gather(*(appender.submit(work(n)) for n in range(600)))
    finally:
        await appender.stop()
    assert sorted(indexes) == list(range(600))
    async with db.read() as txn:
        leaves = [bytes(r["leaf_hash"]) for r in await txn.fetchall("SELECT leaf_hash FROM log_entries ORDER BY idx")]
        nodes = {(int(r["level"]), int(r["idx"])): bytes(r["hash"]) for r in await txn.fetchall(
            "SELECT level, idx, hash FROM log_nodes")}
        state = await log_sql.read_state(txn)
        texts = await txn.fetchall("SELECT idx, text FROM log_texts ORDER BY idx")
    assert nodes == {(8, 0): mth(leaves, 0, 256), (8, 1): mth(leaves, 256, 512)}
    assert (int(state["size"]), bytes(state["root"])) == (600, mth(leaves, 0, 600))
    assert len(texts) == 200 and all(r["text"].startswith("text ") for r in texts)
    report = await verified_export(db, tmp_path)
    assert report.ok and report.texts_checked == 200, report.summary()


async def test_chain_heads_are_each_chains_newest_entry(db: Database) -> None:
    """The newest entry of each chain asked for that has one (index and leaf hash), and
    nothing for a chain with none."""
    appender = Appender(db, ManualClock(), max_batch=8)
    await appender.start()

    def work(n: int) -> Callable[[LogTxn], Awaitable[int]]:
        async def append(ltx: LogTxn) -> int:
            return await ltx.append("test.event", actor="alice", account="acct", post=f"p{n % 5}", data={"n": n})
        return append

    try:
        for n in range(40):
            await appender.submit(work(n))
    finally:
        await appender.stop()
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT chain, idx, leaf_hash FROM log_entries ORDER BY idx")
        heads = await log_sql.chain_heads(txn, ["post:p1", "post:p4", "post:nowhere"])
    newest = {r["chain"]: (int(r["idx"]), bytes(r["leaf_hash"])) for r in rows}
    assert heads == {"post:p1": newest["post:p1"], "post:p4": newest["post:p4"]}
    assert heads["post:p1"][0] == 36 and heads["post:p4"][0] == 39


async def test_extending_leases_never_waits_holding_rows_the_log_writer_wants(gateway: Gateway) -> None:
    """Leases are extended while another transaction (the log writer recording a post published)
    holds one of the posts: on PostgreSQL that one is left for the next round and the rest are
    extended at once, where waiting for it deadlocked with the log writer; on SQLite, one writer,
    the extension waits its turn and then extends both."""
    ids = await _due(gateway, 2)
    publisher, appender, db = gateway.app[PUBLISHER], gateway.app[APPENDER], gateway.app[DB]
    for post_id in ids:
        assert await appender.submit(publisher._claim_work(post_id)) is not None
    publisher._inflight.update(ids)
    gateway.clock.advance(timedelta(minutes=1))
    async with db.write() as txn:
        await txn.execute("UPDATE posts SET updated_at = updated_at + 1 WHERE id = ?", ids[0])
        extending = asyncio.ensure_future(publisher.keep_leases())
        if db.dialect == "postgresql":
            assert await asyncio.wait_for(extending, 10) == 1
        else:
            await asyncio.sleep(0.2)
            assert not extending.done()
    assert await extending == (1 if db.dialect == "postgresql" else 2)
    async with db.read() as txn:
        leases = [int((await txn.fetchone("SELECT lease_until FROM posts WHERE id = ?", i))["lease_until"])
                  for i in ids]
    extended = leases[1]
    assert leases == ([extended - 60_000_000, extended] if db.dialect == "postgresql" else [extended, extended])
