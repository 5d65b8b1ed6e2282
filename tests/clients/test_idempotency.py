"""Idempotency-Key, as a Mastodon app relies on it, both databases: a request that died before
its post was stored (its gateway or database gone mid-way) leaves the key free, so the app's
retry makes the post, once; requests with one key at once make one post, and each gets it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from mastodon import MastodonAPIError

from gateway.appkeys import POSTS
from tests.clients.world import World


async def _posts(world: World, account: str) -> list[dict[str, Any]]:
    _, listing = await world.gateway.call("alice", "GET", f"/v1/posts?account={account}")
    return list(listing["posts"])


async def test_a_submission_that_died_leaves_the_key_for_its_retry(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = await world.client("alice", "direct")
    posts = world.gateway.app[POSTS]
    real_submit = posts.appender.submit

    def dies(work: Any) -> Any:
        async def died(ltx: Any) -> Any:
            await work(ltx)  # all of it written, in the transaction…
            raise RuntimeError("the gateway went away")  # …which never commits

        return real_submit(died)

    monkeypatch.setattr(posts.appender, "submit", dies)
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "Only once", idempotency_key="k-died")
    assert caught.value.args[1] == 500
    monkeypatch.undo()
    assert await _posts(world, "direct") == []
    retried = await world.run(api.status_post, "Only once", idempotency_key="k-died")
    again = await world.run(api.status_post, "Only once", idempotency_key="k-died")
    assert again.id == retried.id
    assert [p["id"] for p in await _posts(world, "direct")] == [retried.id]


async def test_requests_with_one_key_at_once_make_one_post(world: World) -> None:
    apps = [await world.client("alice", "direct") for _ in range(6)]
    for round_ in range(3):
        answers = await asyncio.gather(*(world.run(app.status_post, f"Round {round_}", idempotency_key=f"k-{round_}")
                                         for app in apps))
        assert len({a.id for a in answers}) == 1, [a.id for a in answers]
    assert len(await _posts(world, "direct")) == 3
