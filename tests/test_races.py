"""Racing approvers and racing replicas: exactly one wins, the others get 409."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway, write_policy

RACE = """
account: race
platform: sandbox
tier: co-signed
owner: alice
approvals:
  required: 1
  from: [bob, carol, dave]
"""


async def test_racing_approvals_one_wins(gateway: Gateway, policy_dir: Path) -> None:
    """Three approvers at once on a 1-of-3 post: one releases it, two get 409, one approval stored."""
    write_policy(policy_dir, "race", RACE)
    await gateway.sync_policies()
    for _ in range(5):
        post = await gateway.submit("alice", "race", "Who gets there first")
        results = await asyncio.gather(*(gateway.act(u, post["id"], "approve") for u in ("bob", "carol", "dave")))
        statuses = sorted(s for s, _ in results)
        assert statuses == [200, 409, 409], results
        final = await gateway.get("alice", post["id"])
        assert final["state"] == "scheduled"
        assert len([a for a in final["approvals"] if a["decision"] == "approve"]) == 1
        assert [e["type"] for e in final["events"]].count("post.approved") == 1


async def test_same_approver_twice_at_once(gateway: Gateway) -> None:
    """One approver clicking twice at once counts once."""
    post = await gateway.submit("alice", "cosigned", "Double click")
    results = await asyncio.gather(*(gateway.act("bob", post["id"], "approve") for _ in range(4)))
    assert sorted(s for s, _ in results) == [200, 409, 409, 409]
    assert (await gateway.get("alice", post["id"]))["approvals_needed"] == 1


async def test_two_replicas_race(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Two gateways on one database: an approve and a cancel racing on one post, one wins."""
    write_policy(policy_dir, "race", RACE)
    async with started_gateway(db_url, policy_dir, clock) as one, started_gateway(db_url, policy_dir, clock) as two:
        scheduled: dict[str, str] = {}  # post id -> text, for the posts that are to go out
        for n in range(5):
            post = await one.submit("alice", "race", f"Replica race {n}")
            results = await asyncio.gather(
                one.act("bob", post["id"], "approve"),
                two.act("carol", post["id"], "approve"),
                two.act("alice", post["id"], "cancel"),
            )
            statuses = sorted(s for s, _ in results)
            final = await one.get("alice", post["id"])
            assert final["state"] in ("scheduled", "cancelled")
            assert statuses.count(200) in (1, 2), results
            approved = [a for a in final["approvals"] if a["decision"] == "approve"]
            assert len(approved) <= 1
            if final["state"] == "cancelled":
                # an approval may have landed before the cancel, but never after it
                assert statuses.count(200) == 1 + len(approved)
            else:
                assert len(approved) == 1 and statuses.count(200) == 1
                scheduled[post["id"]] = final["text"]
        # At least one post for the publishers to race for, whatever the races above did.
        post = await one.submit("alice", "race", "Replica race, unopposed")
        assert (await two.act("bob", post["id"], "approve"))[0] == 200
        scheduled[post["id"]] = post["text"]
        # Both publishers racing for the same due posts: each goes out once, by one of them.
        await asyncio.gather(one.tick(), two.tick())
        assert sorted(p["text"] for p in await one.timeline("race")) == sorted(scheduled.values())
        _, listing = await one.call("alice", "GET", "/v1/posts?account=race&state=published")
        assert sorted(p["id"] for p in listing["posts"]) == sorted(scheduled)
        for post_id in scheduled:
            kinds = [e["type"] for e in (await one.get("alice", post_id))["events"]]
            assert (kinds.count("post.publishing"), kinds.count("post.published")) == (1, 1), kinds
