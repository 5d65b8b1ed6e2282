"""A gateway on a real port with a Mastodon stand-in behind one account, for real client apps.

``Mastodon.py`` is synchronous: the tests run each call in a thread (``World.run``) while the
gateway serves in the test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp.test_utils import TestServer
from mastodon import Mastodon

from gateway.appkeys import IDENTITY
from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import DEFAULT_SCOPES, Account, FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app

UPSTREAM_TOKEN = "mtok-upstream-5e1d0b7c"
READING = DEFAULT_SCOPES | {"read"}
"""A token's scopes with ``read`` besides, as the README asks of one whose apps read timelines
and notifications through Byline (the instance's streams need it)."""
"""The managed Mastodon account's real token: it must never reach a client app."""

T = TypeVar("T")


@dataclass
class World:
    """The running gateway, its base URL, and the Mastodon instance behind ``masto``."""

    gateway: Gateway
    base: str
    upstream: FakeMastodon
    upstream_account: Account
    upstream_url: str = ""
    """The stand-in instance's base URL."""
    tokens: dict[tuple[str, str | None], str] = field(default_factory=dict)

    async def token(self, user: str, account: str | None) -> str:
        """A gateway token for ``user`` bound to ``account``, as ``byline token create`` makes."""
        key = (user, account)
        if key not in self.tokens:
            self.tokens[key] = await self.gateway.app[IDENTITY].create(user=user, account=account)
        return self.tokens[key]

    async def client(self, user: str, account: str | None, *, fresh: bool = False) -> Mastodon:
        """An unmodified Mastodon.py client pointed at the gateway (``fresh``: with a new token)."""
        if fresh:
            token = await self.gateway.app[IDENTITY].create(user=user, account=account)
        else:
            token = await self.token(user, account)
        return Mastodon(access_token=token, api_base_url=self.base)

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one blocking client call in a thread while the gateway serves."""
        return await asyncio.to_thread(call, *args, **kwargs)


def write_masto_policy(policy_dir: Path, instance: str, *, handle: str = "@brand@mastodon.example",
                       credentials: str = "env:BRAND_MASTODON_TOKEN", writers: str = "[alice, carol]") -> None:
    """The Mastodon account's policy as the world writes it; a test rewrites it with another
    handle, credential or writers, as an admin's edit does."""
    write_policy(policy_dir, "masto", f"""
        account: masto
        platform: mastodon
        handle: "{handle}"
        instance: {instance}
        credentials: {credentials}
        tier: direct
        owner: alice
        writers: {writers}
    """)


@pytest.fixture
async def world(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """The four tier accounts, ``solo`` (erin's only account) and ``masto`` on a Mastodon stand-in."""
    upstream = FakeMastodon()
    account = upstream.add_account("brand", UPSTREAM_TOKEN, scopes=READING)
    server = TestServer(mastodon_app(upstream))
    await server.start_server()
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", UPSTREAM_TOKEN)
    write_masto_policy(policy_dir, str(server.make_url("")).rstrip("/"))
    write_policy(policy_dir, "solo", """
        account: solo
        platform: sandbox
        handle: "@erin"
        tier: direct
        owner: erin
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            base = str(gw.client.make_url("")).rstrip("/")
            yield World(gateway=gw, base=base, upstream=upstream, upstream_account=account,
                        upstream_url=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()
