"""The gateway is SIGKILLed while posts are publishing, then restarted: every post ends up on
its platform exactly once, the log says so, and nothing is left stuck."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.typedefs import Handler, Middleware

from tests.conftest import write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.serve import ServeProcess

M_TOKEN = "mtok-crash-51c0ffee"
X_TOKEN = "xtok-crash-8badf00d"


class Gate:
    """Holds a platform's creates until released. A released create is carried out even when
    its client has gone meanwhile, as by a platform that got the request before the gateway died."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._releases: list[asyncio.Event] = []
        self._creates: list[asyncio.Future[web.StreamResponse]] = []
        self._open = False

    @property
    def held(self) -> int:
        """How many creates are held now."""
        return sum(not release.is_set() for release in self._releases)

    def middleware(self) -> Middleware:
        """The middleware to add to the stand-in's application."""

        @web.middleware
        async def gate(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.method != "POST" or request.path != self.path or self._open:
                return await handler(request)
            release = asyncio.Event()
            self._releases.append(release)

            async def create() -> web.StreamResponse:
                await release.wait()
                return await handler(request)

            task = asyncio.ensure_future(create())
            self._creates.append(task)
            return await asyncio.shield(task)  # the server cancels the handler, not the create

        return gate

    async def release(self, *, open: bool = False) -> None:
        """Carry out the creates held now (with ``open``, let every later one straight through
        too) and wait until they have been, 15 s at most."""
        self._open = self._open or open
        for release in self._releases:
            release.set()
        await asyncio.wait_for(asyncio.gather(*self._creates, return_exceptions=True), 15)


async def _posts(session: aiohttp.ClientSession, base: str, token: str, account: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/v1/posts?account={account}&limit=200",
                           headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
        return list((await resp.json())["posts"])


async def _until(condition: Callable[[], Awaitable[tuple[bool, object]]]) -> None:
    """Wait until ``condition`` says yes, 15 s at most; else fail with what it saw last."""
    deadline = time.monotonic() + 15
    while not (outcome := await condition())[0]:
        assert time.monotonic() < deadline, f"not so after 15 s: {outcome[1]}"
        await asyncio.sleep(0.02)


@pytest.mark.slow
async def test_sigkill_mid_publish(tmp_path: Path, db_url: str) -> None:
    """Kill -9 with posts in flight to Mastodon and X; after a restart each post is out exactly once."""
    fake_m, fake_x = FakeMastodon(), FakeX()
    account = fake_m.add_account("brand", M_TOKEN)
    fake_x.add_user("brand", X_TOKEN)
    m_gate, x_gate = Gate("/api/v1/statuses"), Gate("/2/tweets")
    m_app, x_app_ = mastodon_app(fake_m), x_app(fake_x)
    m_app.middlewares.append(m_gate.middleware())
    x_app_.middlewares.append(x_gate.middleware())
    m_server, x_server = TestServer(m_app), TestServer(x_app_)
    await m_server.start_server()
    await x_server.start_server()
    policies = tmp_path / "policies"
    policies.mkdir()
    write_policy(policies, "masto", f"""
        account: masto
        platform: mastodon
        instance: {str(m_server.make_url('')).rstrip('/')}
        credentials: env:CRASH_M_TOKEN
        tier: direct
        owner: alice
    """)
    write_policy(policies, "xacct", f"""
        account: xacct
        platform: x
        api: {str(x_server.make_url('')).rstrip('/')}
        credentials: env:CRASH_X_TOKEN
        tier: direct
        owner: alice
    """)
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies, publish_lease_seconds="2")
    serve.env.update(CRASH_M_TOKEN=M_TOKEN, CRASH_X_TOKEN=X_TOKEN)
    serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"))
    await serve.start()
    token = serve.token("alice")
    texts = {"masto": [f"Toot {n}" for n in range(6)], "xacct": [f"Tweet {n}" for n in range(4)]}
    try:
        async with aiohttp.ClientSession() as session:
            async def submit(acct: str, text: str) -> None:
                async with session.post(f"{serve.base}/v1/posts", json={"account": acct, "text": text},
                                        headers={"Authorization": f"Bearer {token}"}) as resp:
                    assert resp.status == 201, await resp.text()

            async def in_flight() -> tuple[bool, object]:
                states = []
                for acct in texts:
                    states += [p["state"] for p in await _posts(session, serve.base, token, acct)]
                now = (sorted(states), m_gate.held, x_gate.held)
                return now == (["published"] + ["publishing"] * 9, 1, 1), now

            async def first_held() -> tuple[bool, object]:
                return m_gate.held == 1, m_gate.held

            # The first post's create is held, which keeps the publisher on it while every other
            # post comes in. Once it is let through, the publisher claims all the others at once
            # and sends the first of each account (one request at a time per account), which the
            # platforms hold: nine posts claimed, two of them in flight, when the gateway dies.
            await submit("masto", texts["masto"][0])
            await _until(first_held)
            for acct, bodies in texts.items():
                for text in bodies[1 if acct == "masto" else 0:]:
                    await submit(acct, text)
            await m_gate.release()
            await _until(in_flight)
            serve.kill()
            before = {s.id for s in fake_m.statuses(account)} | {t.id for t in fake_x.tweets()}
            await m_gate.release(open=True)
            await x_gate.release(open=True)
            made_while_down = {s.id for s in fake_m.statuses(account)} | {t.id for t in fake_x.tweets()}
            made_while_down -= before
            assert len(made_while_down) == 2, made_while_down

            await serve.start()
            deadline = time.monotonic() + 60
            while True:
                posts = [p for a in texts for p in await _posts(session, serve.base, token, a)]
                if len(posts) == 10 and all(p["state"] == "published" for p in posts):
                    break
                assert time.monotonic() < deadline, [p["state"] for p in posts]
                await asyncio.sleep(0.2)
            for post in posts:
                async with session.get(f"{serve.base}/v1/posts/{post['id']}",
                                       headers={"Authorization": f"Bearer {token}"}) as resp:
                    full = await resp.json()
                kinds = [e["type"] for e in full["events"]]
                assert kinds.count("post.published") == 1, kinds
                assert kinds[0] == "post.submitted" and kinds[-1] == "post.published"
        toots = sorted(s.text for s in fake_m.statuses(account))
        tweets = sorted(t.text for t in fake_x.tweets())
        assert toots == sorted(texts["masto"]), toots
        assert tweets == sorted(texts["xacct"]), tweets
    finally:
        output = serve.stop()
        await m_gate.release(open=True)
        await x_gate.release(open=True)
        await m_server.close()
        await x_server.close()
    assert M_TOKEN not in output and X_TOKEN not in output
    # Each post made while the gateway was down is found on the platform, not made again.
    recovered = [json.loads(line) for line in output.splitlines() if '"publish_recovered"' in line]
    assert sorted(r["remote_id"] for r in recovered) == sorted(made_while_down), output
