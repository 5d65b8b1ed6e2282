"""The counts of a post's gate changes (``gate_turns``) go with the post: pruned as its deletion
is recorded, never made again by a change of before settled after, and never relied upon by a
change read before the deletion. Through Byline, with the real ``atproto`` SDK, to a real PDS,
on both databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from atproto import Client

from adapters.bluesky import BlueskyAdapter
from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_gate_intents import intents, left_unlogged
from tests.clients.test_atproto_gates import _carols_post, clients, clock, gate_entries, gw, threadgate, xrpc_login
from tests.clients.test_atproto_threads import POST, THREADGATE, pds_record, xrpc
from tests.conftest import Gateway, started_gateway
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clients", "clock", "gw"]  # the gate tests' fixtures, for these tests too


async def turns(gw: Gateway) -> list[tuple[str, str, int]]:
    """The counts stored now: post, gate, count."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT post_id, collection, turn FROM gate_turns ORDER BY post_id, collection")
    return [(r["post_id"], r["collection"], int(r["turn"])) for r in rows]


async def test_a_deleted_posts_gate_counts_are_pruned_with_it(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """Carol closes replies to her post twice (its threadgate's count at 2), then deletes the
    post: its count goes with it, in the transaction that records the deletion. (Before: the
    row stayed for good, one for every gate of every post ever changed.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    carol = await xrpc_login(gw, "carol", did)
    for allow in ([], [{"$type": f"{THREADGATE}#mentionRule"}]):
        status, answer = await xrpc(gw, "com.atproto.repo.putRecord", carol, {
            "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=allow)})
        assert status == 200, answer
    assert await turns(gw) == [(post_id, THREADGATE, 2)]
    status, answer = await xrpc(gw, "com.atproto.repo.deleteRecord", carol,
                                {"repo": did, "collection": POST, "rkey": rkey})
    assert status == 200, answer
    assert await turns(gw) == []
    await verified_by_cli(gw)


async def test_a_change_left_on_a_deleted_post_settled_after_counts_nothing(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's change of her threadgate is neither logged nor put back (the database, then the
    PDS, away), and she deletes the post; once the PDS is back, the reconciler settles the
    change: nothing is counted for the post that is gone. (Before: the count was made again.)"""
    post_id, gate_uri, _, _, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    did, rkey = gate_uri.split("/")[2], gate_uri.rsplit("/", 1)[1]
    assert [i.post_id for i in await intents(gw)] == [post_id]
    outage.back()
    carol = await xrpc_login(gw, "carol", did)
    status, answer = await xrpc(gw, "com.atproto.repo.deleteRecord", carol,
                                {"repo": did, "collection": POST, "rkey": rkey})
    assert status == 200, answer
    assert await turns(gw) == []
    clock.advance(timedelta(minutes=5))
    assert await gw.reconcile() == 1
    assert (await intents(gw), await turns(gw)) == ([], [])
    await verified_by_cli(gw)


async def test_a_change_read_before_its_post_was_deleted_is_refused_not_sent(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's change of her threadgate has counted the gate's changes (none yet) and is reading
    the PDS when, through another gateway, alice closes replies (counted: 1) and carol deletes
    the post (the count pruned: none again). Carol's change, written down after, finds the count
    as it read it, but the post deleted: refused, 400 ``InvalidRequest``, and nothing is sent to
    the PDS, which holds no gate for the post that is gone. The log has alice's change and the
    deletion, and verifies. (A count pruned with nothing else, and this change, read before
    alice's, passed for one read after it.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    gate, write_gates = BlueskyAdapter.gate, BlueskyAdapter.write_gates
    meanwhile: list[tuple[int, Any]] = []
    sent: list[Any] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token = await xrpc_login(gw, "carol", did)
        alice, carol = await xrpc_login(second, "alice", did), await xrpc_login(second, "carol", did)

        async def reading(adapter: BlueskyAdapter, remote_id: str, collection: str) -> Any:
            held = await gate(adapter, remote_id, collection)
            if not meanwhile:  # carol's read; alice's own goes through this too
                meanwhile.append((0, None))
                meanwhile[0] = await xrpc(second, "com.atproto.repo.putRecord", alice, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])})
                assert await turns(gw) == [(post_id, THREADGATE, 1)]
                meanwhile.append(await xrpc(second, "com.atproto.repo.deleteRecord", carol, {
                    "repo": did, "collection": POST, "rkey": rkey}))
            return held

        async def writing(adapter: BlueskyAdapter, writes: Any, **kwargs: Any) -> Any:
            sent.append(list(writes))
            return await write_gates(adapter, writes, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(BlueskyAdapter, "gate", reading)
            patched.setattr(BlueskyAdapter, "write_gates", writing)
            status, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, {
                "repo": did, "collection": THREADGATE, "rkey": rkey,
                "record": threadgate(post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])})
        (closed, logged), (deleted, _) = meanwhile
        assert (closed, deleted) == (200, 200), logged
        assert (status, answer.get("error")) == (400, "InvalidRequest"), answer
        assert answer["message"] == f"the post {post_uri} was deleted meanwhile; its gates are not changed"
        assert [[w[0] for w in writes] for writes in sent] == [["putRecord"]], "alice's alone"
        assert await pds_record(bluesky_pds, gate_uri) is None
        assert (await intents(gw), await turns(gw)) == ([], [])
        assert await gate_entries(gw) == [("alice", post_id, THREADGATE, logged["cid"])]
        await verified_by_cli(second)
