"""A post due the moment it is stored (the direct tier's) is claimed in the transaction that
stores it and goes to its platform once that commits, without waiting for the publisher's
next look; anything the publisher's page would not send at once (a held post, one scheduled
later, a reply waiting for its own account's post, a rate-limited account's) is left to the
page. Both databases, over HTTP, with the publisher running and never woken."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from gateway.app import make_app
from gateway.appkeys import DB, IDENTITY, POSTS, PUBLISHER
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.conftest import (
    TEST_POLICIES,
    USERS,
    Gateway,
    GatewayTestServer,
    make_policy_dir,
    make_settings,
    write_policy,
)

_SOON = 10.0
"""How long a post claimed at once may take to reach the sandbox (it takes milliseconds)."""

_LIMITED = """
    account: limited
    platform: sandbox
    handle: "@erin"
    tier: direct
    owner: erin
    rate_limit: 5/h
"""


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    return make_policy_dir(tmp_path, {**TEST_POLICIES, "limited": _LIMITED})


@contextlib.asynccontextmanager
async def _never_woken(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway whose publisher runs but looks for due posts only once an hour, and is never
    woken by a new post: what goes out does so because it was claimed as it was stored."""
    config = make_settings(db_url, policy_dir)
    app = make_app(config, clock=clock, run_publisher=True)
    client: TestClient[Any, Any] = TestClient(GatewayTestServer(app, config))
    await client.start_server()
    try:
        app[POSTS].wake_publisher = lambda: None
        gw = Gateway(client=client, app=app, clock=clock)
        for user in USERS:
            gw.tokens[user] = await app[IDENTITY].create(user=user)
        await asyncio.sleep(0.2)  # the publisher's first look, at start, is over
        yield gw
    finally:
        await client.close()


async def _entries(gw: Gateway, post_id: str) -> list[tuple[int, str]]:
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT idx, type FROM log_entries WHERE post_id = ? ORDER BY idx", post_id)
    return [(int(r["idx"]), str(r["type"])) for r in rows]


async def _published(gw: Gateway, post_id: str) -> list[tuple[int, str]]:
    deadline = time.monotonic() + _SOON
    while True:
        entries = await _entries(gw, post_id)
        if entries and entries[-1][1] == "post.published":
            return entries
        assert time.monotonic() < deadline, f"not published within {_SOON} s: {entries}"
        await asyncio.sleep(0.02)


async def test_a_direct_post_goes_out_as_it_is_stored(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Submitted over the native API and the Mastodon API: each reaches the sandbox with no
    look of the publisher's, its claim the entry right after its submission; the log verifies."""
    async with _never_woken(db_url, policy_dir, clock) as gw:
        native = await gw.submit("alice", "direct", "Out as it is stored")
        gw.tokens["alice-direct"] = await gw.app[IDENTITY].create(user="alice", account="direct")
        status, body = await gw.call("alice-direct", "POST", "/api/v1/statuses",
                                     {"status": "Out through the Mastodon API"})
        assert status == 200, body
        for post_id in (native["id"], body["id"]):
            entries = await _published(gw, post_id)
            assert [t for _, t in entries] == ["post.submitted", "post.publishing", "post.published"]
            assert entries[1][0] == entries[0][0] + 1  # claimed in the transaction that stored it
        texts = sorted(p["text"] for p in await gw.timeline("direct"))
        assert texts == ["Out as it is stored", "Out through the Mastodon API"]
        await verified_by_cli(gw)


async def test_what_is_not_due_at_once_is_left_to_the_publishers_page(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """Held by a rule, waiting for co-signers, in a cooling-off window, a reply to the
    account's own post not out yet, and a post of an account with a rate limit: none is
    claimed as it is stored, and nothing reaches the platform without the publisher's page."""
    async with _never_woken(db_url, policy_dir, clock) as gw:
        held = await gw.submit("alice", "direct", "The minister was fired today")
        cosigned = await gw.submit("alice", "cosigned", "Needs two co-signers")
        delayed = await gw.submit("bob", "delayed", "In the pencil stage")
        waiting = await gw.submit("alice", "direct", "Waiting for its parent", reply_to_post=held["id"])
        limited = await gw.submit("erin", "limited", "Counted against the hour's allowance")
        assert (held["state"], cosigned["state"], delayed["state"]) == ("held", "held", "scheduled")
        await asyncio.sleep(0.3)
        for post in (held, cosigned, delayed, waiting, limited):
            assert [t for _, t in await _entries(gw, post["id"])] == ["post.submitted"], post
        for account in ("direct", "cosigned", "delayed", "limited"):
            assert await gw.timeline(account) == []
        # The page still sends what it is given: the rate-limited account's post goes out.
        gw.app[PUBLISHER].wake()
        assert [t for _, t in await _published(gw, limited["id"])][-1] == "post.published"
        await verified_by_cli(gw)


_TURNED_COSIGNED = """
    account: direct
    platform: sandbox
    handle: "@alice"
    tier: co-signed
    owner: alice
    approvals:
      required: 1
      from: [bob]
"""


async def test_a_post_decided_as_its_account_turns_co_signed_is_held_under_the_new_policy(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A direct post decided a moment before its account turns co-signed (the change recorded
    and in force here before the post is stored) is decided again under the new policy, as
    any post is whose policy moved meanwhile: held for bob, nothing sent. Before, its claim,
    planned before it was stored, met the co-signed policy first and tried to hold a post not
    stored yet: the request was refused with a 409 and nothing of it was kept."""
    async with _never_woken(db_url, policy_dir, clock) as gw:
        posts = gw.app[POSTS]
        decide = posts._decide_submission
        changed: list[str] = []

        async def decided_as_the_policy_changes(*args: Any, **kwargs: Any) -> Any:
            decided = await decide(*args, **kwargs)
            if not changed:
                write_policy(policy_dir, "direct", _TURNED_COSIGNED)
                changed.extend(await gw.sync_policies())
            return decided

        monkeypatch.setattr(posts, "_decide_submission", decided_as_the_policy_changes)
        post = await gw.submit("alice", "direct", "Decided as the account turned co-signed")
        assert changed == ["direct"]
        assert (post["state"], post["approvers"], post["approvals_needed"]) == ("held", ["bob"], 1), post
        await asyncio.sleep(0.3)
        assert [t for _, t in await _entries(gw, post["id"])] == ["post.submitted"]
        assert await gw.timeline("direct") == []
        await verified_by_cli(gw)
