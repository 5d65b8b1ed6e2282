"""Restarts: posts due while the gateway was down publish when it returns, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from adapters.base import OutboundPost
from gateway.appkeys import APPENDER, PLATFORMS, PUBLISHER, REGISTRY
from gateway.clock import ManualClock
from tests.conftest import started_gateway


async def test_due_and_overdue_posts_publish_once_after_restart(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """Scheduled posts that came due during downtime go out once when the gateway is back."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        overdue = await first.submit("bob", "delayed", "Written before the outage")
        at = (clock.now() + timedelta(minutes=5)).isoformat()
        due = await first.submit("alice", "direct", "Scheduled for later", publish_at=at)
        future = await first.submit("alice", "direct", "Much later",
                                    publish_at=(clock.now() + timedelta(days=2)).isoformat())
    clock.advance(timedelta(hours=3))
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert await second.tick() == 2
        assert await second.tick() == 0
        assert (await second.get("bob", overdue["id"]))["state"] == "published"
        assert (await second.get("alice", due["id"]))["state"] == "published"
        assert (await second.get("alice", future["id"]))["state"] == "scheduled"
        assert [p["text"] for p in await second.timeline("delayed")] == ["Written before the outage"]
        assert [p["text"] for p in await second.timeline("direct")] == ["Scheduled for later"]
    async with started_gateway(db_url, policy_dir, clock) as third:
        assert await third.tick() == 0
        assert len(await third.timeline("direct")) == 1


async def test_crash_after_platform_accepted_is_recovered_without_a_second_copy(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A publish that reached the platform but died before recording it is found, not redone."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("alice", "direct", "Lost in the crash")
        publisher = first.app[PUBLISHER]
        claim = await first.app[APPENDER].submit(publisher._claim_work(post["id"]))
        assert claim is not None
        adapter = first.app[PLATFORMS].adapter_for(first.app[REGISTRY].policies["direct"])
        await adapter.publish(OutboundPost(post_id=post["id"], idempotency_key=claim.key, text=claim.text))
        # ...and the gateway dies here, before recording the result.
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert (await second.get("alice", post["id"]))["state"] == "publishing"
        assert await second.tick() == 0  # the lease has not run out yet
        clock.advance(timedelta(minutes=3))
        assert await second.tick() == 1
        recovered = await second.get("alice", post["id"])
        assert recovered["state"] == "published"
        assert len(await second.timeline("direct")) == 1
        kinds = [e["type"] for e in recovered["events"]]
        assert kinds == ["post.submitted", "post.publishing", "post.publishing", "post.published"]
        assert recovered["events"][2]["data"]["recovering"] is True


async def test_crash_before_platform_saw_it_publishes_once(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A publish that died before any request left is published by the recovery path, once."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("alice", "direct", "Never left")
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None
    clock.advance(timedelta(minutes=3))
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert await second.tick() == 1
        assert [p["text"] for p in await second.timeline("direct")] == ["Never left"]
        assert (await second.get("alice", post["id"]))["state"] == "published"


def test_manual_clock_is_utc() -> None:
    """The test clock is an aware UTC time, as stored times require."""
    assert ManualClock().now().tzinfo is UTC
    assert ManualClock(datetime(2030, 1, 1, tzinfo=UTC)).now().year == 2030
