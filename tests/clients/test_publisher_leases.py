"""Leases and the retry budget (found by the crash harness with the platform failing): a claim
waiting its turn behind its account's earlier posts keeps its lease, so no other publisher takes
it for one whose publisher died; and a lease that ran out uses up no retry, so a post claimed
again and again after crashes is not failed by the first refusal that follows. Both databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from gateway.appkeys import APPENDER, DB, PUBLISHER
from tests.clients.world import World


async def _lease_and_attempts(world: World, post_id: str) -> tuple[int | None, int, str]:
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT lease_until, attempts, state FROM posts WHERE id = ?", post_id)
    assert row is not None
    return row["lease_until"], int(row["attempts"]), str(row["state"])


async def test_a_waiting_claim_keeps_its_lease(world: World) -> None:
    gw = world.gateway
    publisher = gw.app[PUBLISHER]
    held = await gw.submit("alice", "direct", "Waiting its turn")
    lost = await gw.submit("alice", "direct", "Its publisher died")
    for post in (held, lost):
        assert await gw.app[APPENDER].submit(publisher._claim_work(post["id"])) is not None
    publisher._inflight.add(held["id"])  # claimed here, waiting its turn; the other one's holder is gone
    first, _, _ = await _lease_and_attempts(world, held["id"])
    gw.clock.advance(timedelta(minutes=1))
    assert await publisher.keep_leases() == 1
    kept, _, _ = await _lease_and_attempts(world, held["id"])
    assert first is not None and kept is not None and kept > first
    gw.clock.advance(timedelta(minutes=1, seconds=30))  # past the lease it had at first, not the kept one
    assert await publisher.keep_leases() == 1
    publisher._inflight.add(lost["id"])
    publisher._inflight.discard(held["id"])
    assert await publisher.keep_leases() == 0, "a lease that ran out is never extended: it may be another's now"


async def test_a_lease_that_ran_out_uses_up_no_retry(world: World, policy_dir: Path) -> None:
    gw = world.gateway
    policy = policy_dir / "masto.yaml"
    policy.write_text(policy.read_text() + "retry_attempts: 2\n")
    await gw.sync_policies()
    publisher = gw.app[PUBLISHER]
    post = await gw.submit("alice", "masto", "Claimed after every crash")
    for _ in range(3):  # claimed, and its publisher dies each time before it settles
        claim = await gw.app[APPENDER].submit(publisher._claim_work(post["id"]))
        assert claim is not None
        gw.clock.advance(timedelta(minutes=3))
    _, attempts, _ = await _lease_and_attempts(world, post["id"])
    assert attempts == 1, "three claims, one attempt: the two leases that ran out were none"
    claim = await gw.app[APPENDER].submit(publisher._claim_work(post["id"]))
    assert claim is not None and claim.recovering
    world.upstream.faults.fail_next(3, 503, method="POST", path="/api/v1/statuses")
    await publisher._send(claim)
    _, attempts, state = await _lease_and_attempts(world, post["id"])
    assert (state, attempts) == ("scheduled", 1), "one refusal of two allowed: tried again later, not failed"
    gw.clock.advance(timedelta(hours=1))
    await gw.tick()
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Claimed after every crash"]
