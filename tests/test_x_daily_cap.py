"""A post to X that meets the account's 24-hour cap waits for the reset, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.x import DAILY_WINDOW, FakeX
from tests.fakes.x import create_app as x_app

X_TOKEN = "xtok-daily-cap-5f1e2d3c"


@pytest.fixture
async def capped(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, FakeX, TestServer]]:
    """A gateway with one X account (one retry allowed) whose user may post once a day."""
    fake = FakeX()
    fake.add_user("brand", X_TOKEN)
    fake.daily_limits["POST /2/tweets"] = (1, 10_000)
    server = TestServer(x_app(fake))
    await server.start_server()
    monkeypatch.setenv("BRAND_X_TOKEN", X_TOKEN)
    # The adapter reads the time X's resets are compared with from the stand-in's clock.
    monkeypatch.setattr("adapters.x.utc_now", fake.clock.now)
    write_policy(policy_dir, "xacct", f"""
        account: xacct
        platform: x
        api: {str(server.make_url('')).rstrip('/')}
        credentials: env:BRAND_X_TOKEN
        tier: direct
        owner: alice
        retry_attempts: 1
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            yield gw, fake, server
    finally:
        await server.close()


async def test_daily_cap_defers_until_the_reset_without_burning_retries(
    capped: tuple[Gateway, FakeX, TestServer],
) -> None:
    """The day's one tweet was made elsewhere: the post is deferred to X's 24-hour reset (not
    failed, with a retry budget of one), nothing is sent before it, and it goes out after."""
    gw, fake, server = capped
    async with aiohttp.ClientSession() as session, session.post(
        server.make_url("/2/tweets"), json={"text": "From the phone"},
        headers={"Authorization": f"Bearer {X_TOKEN}"},
    ) as resp:
        assert resp.status == 201
    post = await gw.submit("alice", "xacct", "From Byline")
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "scheduled" and "429" in body["last_error"]
    waited = datetime.fromisoformat(body["publish_at"]) - gw.clock.now()
    assert DAILY_WINDOW - timedelta(seconds=5) <= waited <= DAILY_WINDOW
    for hours in (12, 11):  # within the day: not due, and nothing reaches X
        gw.clock.advance(timedelta(hours=hours))
        fake.clock.advance(hours * 3600)
        assert await gw.tick() == 0
    assert fake.faults.count("POST", "/2/tweets") == 2
    gw.clock.advance(timedelta(hours=1, seconds=1))
    fake.clock.advance(3601)
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "published"
    types = [e["type"] for e in body["events"]]
    assert types == ["post.submitted", "post.publishing", "post.deferred", "post.publishing", "post.published"]
    assert [t.text for t in fake.tweets()] == ["From the phone", "From Byline"]
