"""The whole gateway path to a real Bluesky PDS: policy, publisher, adapter, record on the PDS."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from gateway.clock import ManualClock
from tests.conftest import started_gateway, write_policy
from tests.platforms.bluesky.fixture import BlueskyPds


async def _records(pds: BlueskyPds, did: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(
        f"{pds.pds_url}/xrpc/com.atproto.repo.listRecords",
        params={"repo": did, "collection": "app.bsky.feed.post", "limit": "100"},
    ) as resp:
        assert resp.status == 200
        return list((await resp.json())["records"])


async def test_gateway_publishes_and_deletes_on_a_real_pds(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A co-signed post goes out to the PDS once approved, even across a lost answer; delete removes it."""
    account = bluesky_pds.account("alice.test")
    monkeypatch.setenv("ALICE_BSKY_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "sky", f"""
        account: sky
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:ALICE_BSKY_APP_PASSWORD
        tier: co-signed
        owner: alice
        approvals:
          required: 1
          from: [bob]
    """)
    before = len(await _records(bluesky_pds, account.did))
    async with started_gateway(db_url, policy_dir, clock) as gw:
        post = await gw.submit("alice", "sky", "Hello from Byline, see https://example.com/launch")
        assert post["state"] == "held"
        await gw.tick()
        assert len(await _records(bluesky_pds, account.did)) == before
        status, _ = await gw.act("bob", post["id"], "approve")
        assert status == 200
        await gw.tick()
        published = await gw.get("alice", post["id"])
        assert published["state"] == "published", published
        uri = published["remote"]["id"]
        assert uri.startswith(f"at://{account.did}/app.bsky.feed.post/")
        records = await _records(bluesky_pds, account.did)
        mine = [r for r in records if r["uri"] == uri]
        assert len(records) == before + 1 and len(mine) == 1
        assert mine[0]["value"]["text"] == "Hello from Byline, see https://example.com/launch"
        assert mine[0]["value"]["facets"][0]["features"][0]["uri"] == "https://example.com/launch"

        status, deleted = await gw.call("alice", "DELETE", f"/v1/posts/{post['id']}")
        assert status == 200 and deleted["state"] == "deleted"
        assert [r for r in await _records(bluesky_pds, account.did) if r["uri"] == uri] == []
        assert len(await _records(bluesky_pds, account.did)) == before


async def test_crash_after_the_pds_accepted_is_not_posted_twice(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PDS made the record but the gateway died before recording it: the restart finds it."""
    from datetime import timedelta

    from adapters.base import OutboundPost
    from gateway.appkeys import APPENDER, PLATFORMS, PUBLISHER, REGISTRY

    account = bluesky_pds.account("bob.test")
    monkeypatch.setenv("BOB_BSKY_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "bobsky", f"""
        account: bobsky
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:BOB_BSKY_APP_PASSWORD
        tier: direct
        owner: bob
    """)
    before = len(await _records(bluesky_pds, account.did))
    async with started_gateway(db_url, policy_dir, clock) as first:
        text = f"Only once, please ({secrets.token_hex(4)})"  # the PDS is shared by the whole run
        post = await first.submit("bob", "bobsky", text)
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        adapter = first.app[PLATFORMS].adapter_for(first.app[REGISTRY].policies["bobsky"])
        await adapter.publish(OutboundPost(post_id=post["id"], idempotency_key=claim.key, text=claim.text))
    clock.advance(timedelta(minutes=5))
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert await second.tick() == 1
        assert (await second.get("bob", post["id"]))["state"] == "published"
    records = await _records(bluesky_pds, account.did)
    assert len(records) == before + 1
    assert [r["value"]["text"] for r in records].count(text) == 1
