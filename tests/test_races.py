"""Racing approvers and racing replicas: exactly one wins, the others get 409; a reply racing
its parent's end on another replica is refused or cancelled with it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError
from gateway.appkeys import DB, POSTS, SANDBOX
from gateway.clock import ManualClock
from gateway.storage import posts as posts_sql
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, started_gateway, write_policy
from tests.test_restart import BRAND_OF_THREE, _claimed_when_the_gateway_died

RACE = """
account: race
platform: sandbox
tier: co-signed
owner: alice
approvals:
  required: 1
  from: [bob, carol, dave]
"""


async def test_racing_approvals_one_wins(gateway: Gateway, policy_dir: Path) -> None:
    """Three approvers at once on a 1-of-3 post: one releases it, two get 409, one approval stored."""
    write_policy(policy_dir, "race", RACE)
    await gateway.sync_policies()
    for _ in range(5):
        post = await gateway.submit("alice", "race", "Who gets there first")
        results = await asyncio.gather(*(gateway.act(u, post["id"], "approve") for u in ("bob", "carol", "dave")))
        statuses = sorted(s for s, _ in results)
        assert statuses == [200, 409, 409], results
        final = await gateway.get("alice", post["id"])
        assert final["state"] == "scheduled"
        assert len([a for a in final["approvals"] if a["decision"] == "approve"]) == 1
        assert [e["type"] for e in final["events"]].count("post.approved") == 1


async def test_same_approver_twice_at_once(gateway: Gateway) -> None:
    """One approver clicking twice at once counts once."""
    post = await gateway.submit("alice", "cosigned", "Double click")
    results = await asyncio.gather(*(gateway.act("bob", post["id"], "approve") for _ in range(4)))
    assert sorted(s for s, _ in results) == [200, 409, 409, 409]
    assert (await gateway.get("alice", post["id"]))["approvals_needed"] == 1


async def test_two_replicas_race(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """Two gateways on one database: an approve and a cancel racing on one post, one wins."""
    write_policy(policy_dir, "race", RACE)
    async with started_gateway(db_url, policy_dir, clock) as one, started_gateway(db_url, policy_dir, clock) as two:
        scheduled: dict[str, str] = {}  # post id -> text, for the posts that are to go out
        for n in range(5):
            post = await one.submit("alice", "race", f"Replica race {n}")
            results = await asyncio.gather(
                one.act("bob", post["id"], "approve"),
                two.act("carol", post["id"], "approve"),
                two.act("alice", post["id"], "cancel"),
            )
            statuses = sorted(s for s, _ in results)
            final = await one.get("alice", post["id"])
            assert final["state"] in ("scheduled", "cancelled")
            assert statuses.count(200) in (1, 2), results
            approved = [a for a in final["approvals"] if a["decision"] == "approve"]
            assert len(approved) <= 1
            if final["state"] == "cancelled":
                # an approval may have landed before the cancel, but never after it
                assert statuses.count(200) == 1 + len(approved)
            else:
                assert len(approved) == 1 and statuses.count(200) == 1
                scheduled[post["id"]] = final["text"]
        # At least one post for the publishers to race for, whatever the races above did.
        post = await one.submit("alice", "race", "Replica race, unopposed")
        assert (await two.act("bob", post["id"], "approve"))[0] == 200
        scheduled[post["id"]] = post["text"]
        # Both publishers racing for the same due posts: each goes out once, by one of them.
        await asyncio.gather(one.tick(), two.tick())
        assert sorted(p["text"] for p in await one.timeline("race")) == sorted(scheduled.values())
        _, listing = await one.call("alice", "GET", "/v1/posts?account=race&state=published")
        assert sorted(p["id"] for p in listing["posts"]) == sorted(scheduled)
        for post_id in scheduled:
            kinds = [e["type"] for e in (await one.get("alice", post_id))["events"]]
            assert (kinds.count("post.publishing"), kinds.count("post.published")) == (1, 1), kinds



AUTHORS = {"delayed": "bob", "cosigned": "alice"}
"""Who writes the threads of each account in the replica race below."""
ENDS = {"delayed": "cancelled", "cosigned": "rejected"}
"""How their parents end there: the author cancels on the delayed account, an approver
rejects on the co-signed one (held there for its approvals)."""

Reply = Callable[[str, str, str], Awaitable[int]]


async def _end(gw: Gateway, account: str, parent: str) -> None:
    """End ``parent`` on ``gw`` as :data:`ENDS` says."""
    status, body = await gw.act("bob", parent, "cancel" if ENDS[account] == "cancelled" else "reject", {})
    assert status == 200, body


async def _ends_as_read(
    monkeypatch: pytest.MonkeyPatch, one: Gateway, two: Gateway, account: str, reply: Reply,
) -> int:
    """A reply on ``one`` whose parent ends on ``two`` once the reply read it waiting, before
    the reply's transaction begins; what ``one`` answers."""
    parent = (await two.submit(AUTHORS[account], account, f"{account}: ends as its reply is read"))["id"]
    posts = one.app[POSTS]
    read = posts.reply_parent

    async def read_then_end(user: str, on: str, parent_id: str) -> tuple[str | None, str | None] | None:
        found = await read(user, on, parent_id)
        await _end(two, account, parent_id)
        return found

    with monkeypatch.context() as patched:
        patched.setattr(posts, "reply_parent", read_then_end)
        return await reply(account, parent, f"{account}: a reply read before its parent ended")


async def _ends_as_stored(
    monkeypatch: pytest.MonkeyPatch, two: Gateway, account: str, reply: Reply,
) -> int:
    """A reply on one gateway whose parent ends on ``two`` while the reply's transaction is
    storing it; what the first answers."""
    parent = (await two.submit(AUTHORS[account], account, f"{account}: ends as its reply is stored"))["id"]
    insert = posts_sql.insert_new_post
    ending: list[asyncio.Task[None]] = []

    async def insert_then_end(txn: Any, post: Any, **kwargs: Any) -> bool:
        if post.options.get("reply_to_post") == parent and not ending:
            ending.append(asyncio.create_task(_end(two, account, parent)))
            await asyncio.sleep(0.2)  # the end on the other gateway is under way meanwhile
        return bool(await insert(txn, post, **kwargs))

    with monkeypatch.context() as patched:
        patched.setattr(posts_sql, "insert_new_post", insert_then_end)
        status = await reply(account, parent, f"{account}: a reply stored as its parent ended")
        await ending[0]
    return status


async def test_a_reply_stored_on_one_replica_as_its_parent_ends_on_another(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two gateways on one database: a reply written on one to a post not yet out, in the very
    moment the other cancels (or rejects) that post, is refused (404) when the end committed
    first, even after the reply had read its parent waiting, and is cancelled with its parent
    when the reply committed first; at once, it is one or the other. None is left waiting, none
    goes out, and ``byline audit verify`` passes the log."""
    async with started_gateway(db_url, policy_dir, clock) as one, started_gateway(db_url, policy_dir, clock) as two:
        stored: dict[str, tuple[str, str]] = {}  # reply -> its parent and account, for every reply stored
        answers: list[int] = []

        async def reply(account: str, parent: str, text: str) -> int:
            status, body = await one.call(AUTHORS[account], "POST", "/v1/posts",
                                          {"account": account, "text": text, "reply_to_post": parent})
            assert status in (201, 404), body
            if status == 201:
                stored[body["id"]] = parent, account
            answers.append(status)
            return status

        for account in AUTHORS:
            assert await _ends_as_read(monkeypatch, one, two, account, reply) == 404
            assert await _ends_as_stored(monkeypatch, two, account, reply) == 201
            for n in range(6):  # at once, again and again: whichever commits first
                parent = (await two.submit(AUTHORS[account], account, f"{account}: race {n}"))["id"]
                await asyncio.gather(reply(account, parent, f"{account}: a reply in race {n}"),
                                     _end(two, account, parent))

        assert answers.count(404) >= 2 and answers.count(201) >= 2, answers
        for post_id, (parent, account) in stored.items():
            final = await two.get(AUTHORS[account], post_id)
            why = f"the post it replies to, {parent}, was {ENDS[account]}: this reply does not go out without it"
            assert ("cancelled", why) == (final["state"], final["last_error"]), final
            cancels = [e for e in final["events"] if e["type"] == "post.cancelled"]
            assert [(e["actor"], e["data"]["reply_to_post"]) for e in cancels] == [("system", parent)]

        # Whatever their time, nothing of these threads goes out, on either gateway.
        clock.advance(timedelta(days=2))
        for _ in range(2):
            await asyncio.gather(one.tick(), two.tick())
        assert [p["text"] for account in AUTHORS for p in await one.timeline(account)] == []
        async with one.app[DB].read() as txn:
            left = await txn.fetchall("SELECT id, state FROM posts WHERE state NOT IN ('cancelled', 'rejected')")
        assert [dict(r) for r in left] == []
        await verified_by_cli(one)


async def deferred_while_the_policy_changed(
    gw: Gateway, post_id: str, monkeypatch: pytest.MonkeyPatch,
    *, policy_dir: Path, policy: str, recorded_by: Gateway,
) -> None:
    """``gw``'s publisher sends the due post, and while the sandbox platform has it, brand's file
    in ``policy_dir`` becomes ``policy`` and ``recorded_by`` records it (so the change leaves the
    post be); then the platform answers "later". The post is deferred, still at version 1."""
    async def changed_meanwhile(*, account: str, post: object) -> object:
        write_policy(policy_dir, "brand", policy)
        assert await recorded_by.sync_policies() == ["brand"]
        raise AdapterError("the platform asked to come back later", retryable=True, status=503,
                           retry_after=60)

    with monkeypatch.context() as patch:
        patch.setattr(gw.app[SANDBOX], "create", changed_meanwhile)
        await gw.tick()
    deferred = await gw.get("alice", post_id)
    assert (deferred["state"], deferred["version"]) == ("scheduled", 1), deferred


async def test_two_replicas_at_a_deferred_post_the_policy_passed_by_hold_it_once(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The brand policy asks for a second approval while carol's post, approved by bob, is with
    its platform (so the change leaves it be), and the platform answers "later": the post is
    deferred. When it is due again both replicas' publishers reach for it at once: it is held
    once, at version 2, by one of them (one ``post.redecided``, not one each at versions 2 and
    3), nothing goes out, bob and dave's approvals then send it once, and the log verifies."""
    write_policy(policy_dir, "brand", BRAND_OF_THREE)
    async with started_gateway(db_url, policy_dir, clock) as one, started_gateway(db_url, policy_dir, clock) as two:
        post = await one.submit("carol", "brand", "Launch day")
        assert (await one.act("bob", post["id"], "approve"))[1]["state"] == "scheduled"
        clock.advance(timedelta(minutes=2))
        await deferred_while_the_policy_changed(
            one, post["id"], monkeypatch, policy_dir=policy_dir,
            policy=BRAND_OF_THREE.replace("required: 1", "required: 2"), recorded_by=two)
        assert await one.sync_policies() == []  # the change in force on both replicas
        clock.advance(timedelta(minutes=2))
        await asyncio.gather(one.tick(), two.tick())
        held = await two.get("alice", post["id"])
        assert (held["state"], held["version"], held["approvals_required"]) == ("held", 2, 2), held
        kinds = [e["type"] for e in held["events"]]
        assert kinds.count("post.redecided") == 1, kinds
        assert [r["rule"] for r in held["reasons"]].count("policy_changed") == 1, held["reasons"]
        assert await one.timeline("brand") == []
        for approver in ("bob", "dave"):
            status, body = await two.act(approver, post["id"], "approve")
            assert status == 200, body
        clock.advance(timedelta(minutes=2))
        await asyncio.gather(one.tick(), two.tick())
        assert [p["text"] for p in await one.timeline("brand")] == ["Launch day\n\n—carol"]
        assert (await one.get("alice", post["id"]))["state"] == "published"
        await verified_by_cli(one)


async def test_two_replicas_recovering_one_stranded_claim_at_once_hold_it_once(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """carol's post lies claimed by a publisher that died, and the policy now asks for a second
    approval: when its lease has run out both replicas' publishers reach for it at once. One of
    them claims it again, only to look for it, and holds it at version 2; the other leaves it
    (one recovering ``post.publishing`` and one ``post.redecided``, not two), nothing goes out,
    and the log verifies."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2"))
    async with started_gateway(db_url, policy_dir, clock) as one, started_gateway(db_url, policy_dir, clock) as two:
        clock.advance(timedelta(minutes=3))
        await asyncio.gather(one.tick(), two.tick())
        held = await two.get("alice", post_id)
        assert (held["state"], held["version"], held["approvals_required"]) == ("held", 2, 2), held
        kinds = [e["type"] for e in held["events"]]
        assert (kinds.count("post.publishing"), kinds.count("post.redecided")) == (2, 1), kinds
        assert [e["data"].get("recovering") for e in held["events"] if e["type"] == "post.publishing"] == [
            False, True]
        assert await one.timeline("brand") == []
        await verified_by_cli(one)
