"""The gateway is SIGKILLed while posts are publishing, then restarted: every post ends up on
its platform exactly once, the log says so, and nothing is left stuck."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from tests.conftest import write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.serve import ServeProcess

M_TOKEN = "mtok-crash-51c0ffee"
X_TOKEN = "xtok-crash-8badf00d"


async def _posts(session: aiohttp.ClientSession, base: str, token: str, account: str) -> list[dict[str, Any]]:
    async with session.get(f"{base}/v1/posts?account={account}&limit=200",
                           headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 200
        return list((await resp.json())["posts"])


async def test_sigkill_mid_publish(tmp_path: Path, db_url: str) -> None:
    """Kill -9 with posts in flight to Mastodon and X; after a restart each post is out exactly once."""
    fake_m, fake_x = FakeMastodon(), FakeX()
    account = fake_m.add_account("brand", M_TOKEN)
    fake_x.add_user("brand", X_TOKEN)
    m_server, x_server = TestServer(mastodon_app(fake_m)), TestServer(x_app(fake_x))
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
    # Every create takes a while: the platform still makes the post after the gateway is gone.
    fake_m.faults.delay_next(0.6, n=100)
    fake_x.faults.delay_next(0.6, n=100)
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies, publish_lease_seconds="2")
    serve.env.update(CRASH_M_TOKEN=M_TOKEN, CRASH_X_TOKEN=X_TOKEN)
    serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"), check=False)
    await serve.start()
    token = serve.token("alice")
    texts = {"masto": [f"Toot {n}" for n in range(6)], "xacct": [f"Tweet {n}" for n in range(4)]}
    try:
        async with aiohttp.ClientSession() as session:
            for acct, bodies in texts.items():
                for text in bodies:
                    async with session.post(f"{serve.base}/v1/posts", json={"account": acct, "text": text},
                                            headers={"Authorization": f"Bearer {token}"}) as resp:
                        assert resp.status == 201, await resp.text()
            deadline = time.monotonic() + 15
            while True:  # wait until some are out and some are in flight
                states = [p["state"] for a in texts for p in await _posts(session, serve.base, token, a)]
                if "publishing" in states and "published" in states:
                    break
                assert time.monotonic() < deadline, states
                await asyncio.sleep(0.05)
            serve.kill()
            in_flight = states.count("publishing")
            assert in_flight >= 1

            await serve.start()
            deadline = time.monotonic() + 60
            while True:
                posts = [p for a in texts for p in await _posts(session, serve.base, token, a)]
                if all(p["state"] == "published" for p in posts):
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
        await m_server.close()
        await x_server.close()
    assert M_TOKEN not in output and X_TOKEN not in output
    recovered = [json.loads(line) for line in output.splitlines() if '"publish_recovered"' in line]
    assert all("remote_id" in r for r in recovered)
