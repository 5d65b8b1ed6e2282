"""The whole gateway path to a real Bluesky PDS: policy, publisher, adapter, record on the PDS."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.clock import ManualClock
from tests.conftest import started_gateway, write_policy
from tests.fakes._faults import drop_connection
from tests.platforms.bluesky.fixture import BlueskyPds, post_records, write_bluesky_policy

_HOP_BY_HOP = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                         "content-encoding", "accept-encoding"})


class AnswerLosingProxy:
    """Passes every request on to the PDS and its answer back, except that it lets the first
    createRecord reach the PDS and then drops the connection instead of answering: the write
    is made, and the gateway never hears so."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""  # where it listens, once started
        self.lost: list[int] = []  # the status of each answer dropped
        self.creates = 0
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with aiohttp.ClientSession() as session, session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read(),
            allow_redirects=False,
        ) as resp:
            body = await resp.read()
            answer = {k: v for k, v in resp.headers.items() if k.lower() not in _HOP_BY_HOP}
        if request.path == "/xrpc/com.atproto.repo.createRecord":
            self.creates += 1
            if not self.lost:
                self.lost.append(resp.status)
                return drop_connection(request)
        return web.Response(status=resp.status, body=body, headers=answer)


@pytest.fixture
async def losing_proxy(bluesky_pds: BlueskyPds) -> AsyncIterator[AnswerLosingProxy]:
    """The answer-losing proxy in front of the test PDS, on a real socket."""
    proxy = AnswerLosingProxy(bluesky_pds.pds_url)
    server = TestServer(proxy.app)
    await server.start_server()
    proxy.url = str(server.make_url("")).rstrip("/")
    try:
        yield proxy
    finally:
        await server.close()


async def test_gateway_publishes_and_deletes_on_a_real_pds(
    bluesky_pds: BlueskyPds, losing_proxy: AnswerLosingProxy, db_url: str, policy_dir: Path,
    clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A co-signed post goes out to the PDS once approved, even across a lost answer; delete removes it."""
    account = bluesky_pds.account("alice.test")
    monkeypatch.setenv("ALICE_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "sky", handle=account.handle, pds=losing_proxy.url,
                         credential_env="ALICE_BSKY_APP_PASSWORD")
    text = f"Hello from Byline ({secrets.token_hex(4)}), see https://example.com/launch"
    before = {r["uri"] for r in await post_records(bluesky_pds, account.did)}
    async with started_gateway(db_url, policy_dir, clock) as gw:
        post = await gw.submit("alice", "sky", text)
        assert post["state"] == "held"
        await gw.tick()
        assert {r["uri"] for r in await post_records(bluesky_pds, account.did)} == before
        status, _ = await gw.act("bob", post["id"], "approve")
        assert status == 200
        await gw.tick()
        assert (losing_proxy.lost, losing_proxy.creates) == ([200], 1)  # the PDS made it; the gateway never heard
        published = await gw.get("alice", post["id"])
        assert published["state"] == "published", published
        uri = published["remote"]["id"]
        assert uri.startswith(f"at://{account.did}/app.bsky.feed.post/")
        new = [r for r in await post_records(bluesky_pds, account.did) if r["uri"] not in before]
        assert [r["uri"] for r in new] == [uri]  # out exactly once, under the record the gateway names
        assert new[0]["value"]["text"] == text
        assert new[0]["value"]["facets"][0]["features"][0]["uri"] == "https://example.com/launch"
        assert [e["type"] for e in published["events"]].count("post.published") == 1

        status, deleted = await gw.call("alice", "DELETE", f"/v1/posts/{post['id']}")
        assert status == 200 and deleted["state"] == "deleted"
        assert {r["uri"] for r in await post_records(bluesky_pds, account.did)} == before


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
    before = {r["uri"] for r in await post_records(bluesky_pds, account.did)}
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
    new = [r for r in await post_records(bluesky_pds, account.did) if r["uri"] not in before]
    assert [r["value"]["text"] for r in new] == [text]
