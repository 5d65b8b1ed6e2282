"""From outside: the real `byline` command, a temp database and policy dir, tokens from the CLI,
and all four tiers driven over HTTP with the real clock."""

from __future__ import annotations

import asyncio
import json
import textwrap
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.serve import ServeProcess

OUTSIDE_POLICIES = {
    "solo": """
        account: solo
        platform: sandbox
        tier: direct
        owner: alice
        rules:
          - name: breaking-news
            action: hold
            any_words: [scandal]
            reason: Check the full story first
          - name: no-slurs
            action: block
            regex: "(?i)\\\\bexample-slur\\\\b"
            reason: Not okay to post
    """,
    "pencil": """
        account: pencil
        platform: sandbox
        tier: delayed
        owner: bob
        delay: 2s
    """,
    "brand": """
        account: brand
        platform: sandbox
        tier: co-signed
        owner: alice
        writers: [alice]
        approvals:
          required: 2
          from: [bob, carol]
        disclosure: "—{author}"
    """,
    "team": """
        account: team
        platform: sandbox
        tier: managed
        owner: dave
        writers: [carol]
        disclosure: "—{author}"
    """,
}


def _at(stamp: str) -> datetime:
    """A time as the gateway writes it."""
    return datetime.fromisoformat(stamp)


class Outside:
    """A `byline serve` process and an HTTP session to it."""

    def __init__(self, serve: ServeProcess, session: aiohttp.ClientSession) -> None:
        self.serve = serve
        self.base = serve.base
        self.session = session
        self.tokens: dict[str, str] = {}

    def token(self, user: str) -> str:
        """Make a token with the CLI, as an admin would."""
        self.tokens[user] = self.serve.token(user)
        return self.tokens[user]

    async def call(self, user: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One request as ``user``."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        async with self.session.request(method, self.base + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json()

    async def until(self, user: str, post_id: str, state: str) -> dict[str, Any]:
        """Poll a post until it reaches ``state`` (15 s at most)."""
        deadline = time.monotonic() + 15.0
        while True:
            status, body = await self.call(user, "GET", f"/v1/posts/{post_id}")
            assert status == 200, body
            if body["state"] == state:
                return body  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"post {post_id} stuck in {body['state']}"
            await asyncio.sleep(0.1)

    async def timeline(self, account: str) -> list[str]:
        """The sandbox timeline, read like the public would."""
        async with self.session.get(f"{self.base}/sandbox/{account}.json") as resp:
            assert resp.status == 200
            return [p["text"] for p in (await resp.json())["posts"]]


@pytest.fixture
async def outside(tmp_path: Path, db_url: str) -> AsyncIterator[Outside]:
    """`byline serve` in a subprocess with a temp policy dir and database."""
    policies = tmp_path / "outside-policies"
    policies.mkdir()
    for name, text in OUTSIDE_POLICIES.items():
        (policies / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies)
    keygen = serve.cli("log", "keygen", "--out", str(tmp_path / "log.key"), check=False)
    assert keygen.returncode == 0, keygen.stderr
    await serve.start()
    async with aiohttp.ClientSession() as session:
        outside = Outside(serve, session)
        try:
            yield outside
        finally:
            output = serve.stop()
            for token in outside.tokens.values():  # tokens never reach the logs
                assert token not in output
            assert "Traceback" not in output, output


async def test_four_tiers_from_outside(outside: Outside) -> None:
    """All four tiers work against a real `byline serve`, with tokens made by the CLI."""
    for user in ("alice", "bob", "carol", "dave"):
        outside.token(user)

    status, post = await outside.call("alice", "POST", "/v1/posts", {"account": "solo", "text": "Direct hello"})
    assert status == 201, post
    await outside.until("alice", post["id"], "published")
    status, held = await outside.call("alice", "POST", "/v1/posts", {"account": "solo", "text": "A scandal?"})
    assert status == 201 and held["state"] == "held"
    status, blocked = await outside.call("alice", "POST", "/v1/posts", {"account": "solo", "text": "example-slur"})
    assert status == 422 and blocked["rule"] == "no-slurs"
    status, _ = await outside.call("alice", "POST", f"/v1/posts/{held['id']}/approve", {"version": 1})
    assert status == 200
    await outside.until("alice", held["id"], "published")
    assert sorted(await outside.timeline("solo")) == ["A scandal?", "Direct hello"]

    sent = datetime.now(UTC)
    status, keep = await outside.call("bob", "POST", "/v1/posts", {"account": "pencil", "text": "Pen"})
    assert status == 201 and keep["state"] == "scheduled", keep
    # The post taken back asks to go out in an hour: its window cannot close while the test runs.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    status, drop = await outside.call("bob", "POST", "/v1/posts", {"account": "pencil", "text": "Pencil",
                                                                    "publish_at": later})
    assert status == 201 and drop["state"] == "scheduled", drop
    status, cancelled = await outside.call("bob", "POST", f"/v1/posts/{drop['id']}/cancel")
    assert status == 200 and cancelled["state"] == "cancelled", cancelled
    published = await outside.until("bob", keep["id"], "published")
    went_out = next(e["ts"] for e in published["events"] if e["type"] == "post.published")
    # Not before its cooling-off delay of 2 s had passed.
    assert sent + timedelta(seconds=2) <= _at(keep["publish_at"]) <= _at(went_out), (sent, keep, went_out)
    assert await outside.timeline("pencil") == ["Pen"]

    status, cosigned = await outside.call("alice", "POST", "/v1/posts", {"account": "brand", "text": "Launch"})
    assert cosigned["state"] == "held" and cosigned["approvals_needed"] == 2
    assert (await outside.call("alice", "POST", f"/v1/posts/{cosigned['id']}/approve", {"version": 1}))[0] == 403
    assert (await outside.call("bob", "POST", f"/v1/posts/{cosigned['id']}/approve", {"version": 1}))[0] == 200
    assert (await outside.call("carol", "POST", f"/v1/posts/{cosigned['id']}/approve", {"version": 1}))[0] == 200
    await outside.until("alice", cosigned["id"], "published")
    assert await outside.timeline("brand") == ["Launch"]  # the owner wrote it: no disclosure

    status, suggestion = await outside.call("dave", "POST", "/v1/posts", {"account": "team", "text": "Idea"})
    assert suggestion["state"] == "suggested"
    status, adopted = await outside.call("carol", "POST", f"/v1/posts/{suggestion['id']}/adopt", {"version": 1})
    assert status == 201 and adopted["suggested_by"] == "dave"
    await outside.until("carol", adopted["id"], "published")
    assert await outside.timeline("team") == ["Idea\n\n—carol, suggested by dave"]


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_serve_runs_on_the_event_loop_chosen(tmp_path: Path, db_url: str, loop: str) -> None:
    """`byline serve` runs on uvloop unless BYLINE_EVENT_LOOP=asyncio, says which at start, and
    takes a post on either."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "solo.yaml").write_text(textwrap.dedent(OUTSIDE_POLICIES["solo"]).lstrip(), encoding="utf-8")
    settings = {"log_key_autocreate": "true"}
    if loop != "uvloop":  # uvloop is the default
        settings["event_loop"] = loop
    serve = ServeProcess(tmp_path, db_url=db_url, policy_dir=policies, **settings)
    serve.cli("migrate")  # the token is made before the gateway's first start
    token = serve.token("alice")
    await serve.start()
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:
            async with session.post(f"{serve.base}/v1/posts", json={"account": "solo", "text": "On any loop"}) as resp:
                assert resp.status == 201, await resp.text()
                post = await resp.json()
            for _ in range(100):  # the publisher sends it on its next tick
                async with session.get(f"{serve.base}/v1/posts/{post['id']}") as resp:
                    post = await resp.json()
                if post["state"] == "published":
                    break
                await asyncio.sleep(0.1)
            assert post["state"] == "published", post
    finally:
        output = serve.stop()
    started = [json.loads(line) for line in output.splitlines() if '"gateway_started"' in line]
    dialect = "sqlite" if db_url.startswith("sqlite:") else "postgresql"
    assert [(s["event_loop"], s["database"], s["port"]) for s in started] == [(loop, dialect, serve.port)], output
    # Once started, what it built is frozen out of the collector's full walks (gateway.heap).
    frozen = [json.loads(line) for line in output.splitlines() if '"heap_frozen"' in line]
    assert len(frozen) == 1 and frozen[0]["objects"] > 10_000, output


def test_serve_refuses_an_unknown_event_loop(tmp_path: Path) -> None:
    """A bad BYLINE_EVENT_LOOP stops `byline serve` at once with one line naming it."""
    serve = ServeProcess(tmp_path, db_url=f"sqlite:///{tmp_path / 'gateway.db'}", policy_dir=tmp_path,
                         event_loop="tokio")
    result = serve.cli("serve", check=False)
    assert result.returncode == 2, result
    assert "BYLINE_EVENT_LOOP" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "gateway.db").exists()
