"""X's 24-hour write caps: the stand-in enforces them as X documents, and the adapter waits them out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.base import AdapterConfig, AdapterError
from adapters.x import XAdapter
from tests.adapters.helpers import post
from tests.fakes.x import DAILY_WINDOW, FakeX, create_app

TOKEN = "xtok-DAILY-6e2a9c41"
OTHER_TOKEN = "xtok-DAILY-OTHER-0b7d"
DAY = DAILY_WINDOW.total_seconds()


@dataclass
class Env:
    """One stand-in with two users of the app, its server and a client session."""

    fake: FakeX
    server: TestServer
    session: aiohttp.ClientSession

    def adapter(self) -> XAdapter:
        """An adapter for the first user, on the stand-in's clock."""
        config = AdapterConfig(account="brand-x", handle="brand", secret=TOKEN, session=self.session,
                               options={"api": str(self.server.make_url("")).rstrip("/")})
        return XAdapter(config, clock=self.fake.clock.now)

    async def create(self, text: str, token: str = TOKEN) -> tuple[int, Any]:
        """``POST /2/tweets`` as the token's user: the status and the headers."""
        async with self.session.post(self.server.make_url("/2/tweets"), json={"text": text},
                                     headers={"Authorization": f"Bearer {token}"}) as resp:
            await resp.read()
            return resp.status, resp.headers

    def creates(self) -> int:
        """How many create requests reached the stand-in."""
        return self.fake.faults.count("POST", "/2/tweets")


@pytest.fixture
async def env(aiohttp_server: Any) -> AsyncIterator[Env]:
    """A running stand-in whose app lets each user post 2 tweets a day and all of them 3."""
    fake = FakeX()
    fake.add_user("brand", TOKEN)
    fake.add_user("other", OTHER_TOKEN)
    fake.daily_limits["POST /2/tweets"] = (2, 3)
    server = await aiohttp_server(create_app(fake))
    async with aiohttp.ClientSession() as session:
        yield Env(fake=fake, server=server, session=session)


async def test_stand_in_caps_creates_per_user_and_per_app_per_day(env: Env) -> None:
    """Creates carry the 24-hour headers; past a day's cap they are 429 until its reset, though
    the 15-minute window has room."""
    start = int(env.fake.clock.now().timestamp())
    status, headers = await env.create("one")
    assert status == 201
    assert (headers["x-user-limit-24hour-limit"], headers["x-user-limit-24hour-remaining"]) == ("2", "1")
    assert (headers["x-app-limit-24hour-limit"], headers["x-app-limit-24hour-remaining"]) == ("3", "2")
    assert int(headers["x-user-limit-24hour-reset"]) - start in (DAY, DAY + 1)
    assert (await env.create("two"))[0] == 201
    status, headers = await env.create("three")
    assert (status, headers["x-user-limit-24hour-remaining"], headers["x-rate-limit-remaining"]) == (429, "0", "97")
    assert (await env.create("the other user's", OTHER_TOKEN))[0] == 201  # the app's third
    status, headers = await env.create("the other user's second", OTHER_TOKEN)
    assert (status, headers["x-app-limit-24hour-remaining"], headers["x-user-limit-24hour-remaining"]) == (
        429, "0", "0")
    env.fake.clock.advance(DAY)
    assert (await env.create("a new day"))[0] == 201
    assert [t.text for t in env.fake.tweets()] == ["one", "two", "the other user's", "a new day"]


async def test_adapter_waits_for_the_daily_reset_then_posts(env: Env) -> None:
    """At the user's daily cap the adapter defers until the 24-hour reset (a 429 with that
    wait, not the 15-minute one), sends nothing before it, and posts after it."""
    adapter = env.adapter()
    for n in range(2):
        await adapter.publish(post(f"Post {n}", key=f"post-{n}:v1"))
    env.fake.clock.advance(3600)
    with pytest.raises(AdapterError) as capped:
        await adapter.publish(post("Post 2", key="post-2:v1"))
    error = capped.value
    assert (error.retryable, error.status, error.auth_failed) == (True, 429, False)
    assert error.retry_after is not None and DAY - 3600 - 2 <= error.retry_after <= DAY - 3600 + 1
    sent = env.creates()
    env.fake.clock.advance(DAY - 3600 - 60)
    with pytest.raises(AdapterError) as still:
        await adapter.publish(post("Post 2", key="post-2:v1"))
    assert still.value.status == 429 and still.value.retry_after is not None and still.value.retry_after <= 61
    assert env.creates() == sent
    env.fake.clock.advance(61)
    result = await adapter.publish(post("Post 2", key="post-2:v1"))
    assert [t.id for t in env.fake.tweets()][-1] == result.remote_id
    assert len(env.fake.tweets()) == 3


async def test_adapter_rests_once_a_success_says_the_day_is_used_up(env: Env) -> None:
    """A create answered with ``x-app-limit-24hour-remaining: 0`` stops the next one being sent
    until that window resets."""
    env.fake.daily_limits["POST /2/tweets"] = (5, 3)
    assert (await env.create("the other user's", OTHER_TOKEN))[0] == 201
    adapter = env.adapter()
    await adapter.publish(post("Post 0", key="post-0:v1"))
    await adapter.publish(post("Post 1", key="post-1:v1"))  # the app's third: remaining 0
    sent = env.creates()
    with pytest.raises(AdapterError) as capped:
        await adapter.publish(post("Post 2", key="post-2:v1"))
    assert capped.value.status == 429 and capped.value.retry_after is not None
    assert capped.value.retry_after > DAY - 60
    assert env.creates() == sent
