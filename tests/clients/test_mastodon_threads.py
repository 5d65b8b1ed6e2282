"""Threads posted as thread tools post them, with an unmodified Mastodon.py: 2/2 is sent as soon
as 1/2 is answered, before 1/2 has gone out. The reply is taken at once, goes out after its
parent as a reply to where the parent went, and never goes out alone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from mastodon import MastodonNotFoundError

from gateway.appkeys import DB, PUBLISHER, REGISTRY
from tests.audit.logtools import byline, cli_env, verified_by_cli
from tests.clients.world import World
from tests.conftest import write_policy
from tests.fakes.mastodon import Account

SECOND = timedelta(seconds=1)
SLOW_TOKEN = "mtok-slow-3c9e71d0"


async def _slow_masto(world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Account:
    """A delayed account (ten minutes) of its own on the Mastodon stand-in, alice writing for it:
    the instance's account it speaks as (one platform account has one policy file, so not the
    brand's, which ``masto`` speaks as)."""
    slow = world.upstream.add_account("slow", SLOW_TOKEN)
    monkeypatch.setenv("SLOW_MASTODON_TOKEN", SLOW_TOKEN)
    masto = world.gateway.app[REGISTRY].get("masto")
    assert masto is not None
    instance = masto.policy.instance
    write_policy(policy_dir, "slow", f"""
        account: slow
        platform: mastodon
        handle: "@slow@mastodon.example"
        instance: {instance}
        credentials: env:SLOW_MASTODON_TOKEN
        tier: delayed
        delay: 10m
        owner: alice
    """)
    assert "slow" in await world.gateway.sync_policies()
    return slow


async def _a_thread_that_failed(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> tuple[Any, Any, Account]:
    """alice's 1/2 and 2/2 on the delayed account: the instance refuses 1/2 when it comes due
    (422), so 1/2 fails, and 2/2 fails for it. The two statuses, and the instance's account."""
    slow = await _slow_masto(world, policy_dir, monkeypatch)
    api = await world.client("alice", "slow")
    first = await world.run(api.status_post, "Thread 1/2")
    second = await world.run(api.status_post, "Thread 2/2", in_reply_to_id=first.id)
    world.upstream.faults.fail_next(status=422, method="POST", path="/api/v1/statuses")
    world.gateway.clock.advance(timedelta(minutes=10))
    await world.gateway.tick()
    world.gateway.clock.advance(2 * SECOND)
    await world.gateway.tick()
    return first, second, slow


async def test_a_thread_on_a_delayed_account_goes_out_in_order(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a delayed account 2/2 replies to 1/2 while both wait out the cooling-off (before: 404,
    as 1/2 was not out): it is taken at once, names 1/2 by the id the app knows, shows in 1/2's
    context, and goes out after 1/2 as a reply to 1/2's id on the instance."""
    slow = await _slow_masto(world, policy_dir, monkeypatch)
    api = await world.client("alice", "slow")
    first = await world.run(api.status_post, "Thread 1/2")
    second = await world.run(api.status_post, "Thread 2/2", in_reply_to_id=first.id)
    me = await world.run(api.account_verify_credentials)
    assert (second.byline.state, str(second.in_reply_to_id), second.in_reply_to_account_id) == (
        "scheduled", str(first.id), me.id)
    context = await world.run(api.status_context, first.id)
    assert [s.id for s in context.descendants] == [second.id]
    assert [s.id for s in (await world.run(api.status_context, second.id)).ancestors] == [first.id]
    assert await world.gateway.tick() == 0
    assert world.upstream.statuses(slow) == []

    world.gateway.clock.advance(timedelta(minutes=10))
    await world.gateway.tick()
    world.gateway.clock.advance(2 * SECOND)
    await world.gateway.tick()
    start, continued = world.upstream.statuses(slow)
    assert (start.text, start.in_reply_to_id) == ("Thread 1/2", None)
    assert (continued.text, continued.in_reply_to_id) == ("Thread 2/2", start.id)
    out = await world.run(api.status, second.id)
    assert (out.byline.state, str(out.in_reply_to_id), out.in_reply_to_account_id) == (
        "published", str(first.id), me.id)
    context = await world.run(api.status_context, first.id)
    assert [s.id for s in context.descendants] == [second.id]  # once, though found both ways
    await verified_by_cli(world.gateway)


async def test_a_reply_sent_before_its_parent_is_out_waits_for_it(world: World) -> None:
    """On a direct account the reply races its parent (before: 404 unless the publisher had
    sent the parent already): it goes out only after the parent, to the parent's id on the
    instance; a scheduled reply to the waiting parent names it by Byline's id in its params."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Thread 1/3")
    second = await world.run(api.status_post, "Thread 2/3", in_reply_to_id=first.id)
    later = world.gateway.clock.now() + timedelta(hours=2)
    third = await world.run(api.status_post, "Thread 3/3", in_reply_to_id=first.id, scheduled_at=later)
    assert str(third.params.in_reply_to_id) == str(first.id)
    assert str(second.in_reply_to_id) == str(first.id)

    await world.gateway.tick()
    start, continued = world.upstream.statuses(world.upstream_account)
    assert (start.text, start.in_reply_to_id) == ("Thread 1/3", None)
    assert (continued.text, continued.in_reply_to_id) == ("Thread 2/3", start.id)
    # Claimed only once its parent was recorded published, though both were due at once.
    _, parent_post = await world.gateway.call("alice", "GET", f"/v1/posts/{first.id}")
    _, reply_post = await world.gateway.call("alice", "GET", f"/v1/posts/{second.id}")
    published = next(e["index"] for e in parent_post["events"] if e["type"] == "post.published")
    claimed = next(e for e in reply_post["events"] if e["type"] == "post.publishing")
    assert claimed["index"] > published and claimed["data"]["reply_to"] == start.id
    [listed] = await world.run(api.scheduled_statuses)
    assert str(listed.params.in_reply_to_id) == str(first.id)
    await verified_by_cli(world.gateway)


async def _cancelled_with(world: World, user: str, reply: str, parent: str, how: str = "cancelled") -> None:
    """That ``reply`` was cancelled by the gateway at once, with its parent, saying why."""
    _, post = await world.gateway.call(user, "GET", f"/v1/posts/{reply}")
    reason = f"the post it replies to, {parent}, was {how}: this reply does not go out without it"
    assert (post["state"], post["last_error"]) == ("cancelled", reason), post
    last = post["events"][-1]
    assert (last["type"], last["actor"], last["data"]["reply_to_post"], last["data"]["reason"]) == (
        "post.cancelled", "system", parent, reason)


async def test_a_thread_taken_back_at_its_head_is_cancelled_whole_and_never_goes_out(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1/3 cancelled in its cooling-off (the status deleted): 2/3, which replies to it, and 3/3,
    which replies to 2/3, are cancelled at once with it, each saying why and logged as the
    gateway's cancel naming its parent (before: they stayed scheduled, and failed only when
    due); nothing reaches the instance, a reply to the cancelled post is not found, as on
    Mastodon, and the log verifies."""
    slow = await _slow_masto(world, policy_dir, monkeypatch)
    api = await world.client("alice", "slow")
    first = await world.run(api.status_post, "Thread 1/3")
    second = await world.run(api.status_post, "Thread 2/3", in_reply_to_id=first.id)
    third = await world.run(api.status_post, "Thread 3/3", in_reply_to_id=second.id)
    assert len(await world.run(api.scheduled_statuses)) == 3
    await world.run(api.status_delete, first.id)

    await _cancelled_with(world, "alice", str(second.id), str(first.id))
    await _cancelled_with(world, "alice", str(third.id), str(second.id))
    assert await world.run(api.scheduled_statuses) == []
    for gone in (second.id, third.id):
        with pytest.raises(MastodonNotFoundError):
            await world.run(api.status_post, "Thread 4/3", in_reply_to_id=gone)
    world.gateway.clock.advance(timedelta(minutes=11))
    await world.gateway.tick()
    world.gateway.clock.advance(timedelta(hours=1))
    await world.gateway.tick()
    assert world.upstream.statuses(slow) == []
    await verified_by_cli(world.gateway)


async def test_a_held_reply_is_cancelled_with_its_parent_and_leaves_the_approvers(world: World) -> None:
    """Co-signed: 1/2 and 2/2 both held for approval; carol deletes 1/2 (before: 2/2 stayed
    held, asking the approvers to approve a reply to nothing). 2/2 is cancelled at once, leaves
    the approvers' queue, and an approval of it is refused; 1/2 rejected instead has the same
    effect on its own reply. Nothing goes out, and the log verifies."""
    carol = await world.client("carol", "cosigned")
    first = await world.run(carol.status_post, "Launch 1/2")
    second = await world.run(carol.status_post, "Launch 2/2", in_reply_to_id=first.id)
    code, body = await world.gateway.act("bob", str(second.id), "approve")
    assert code == 200, body
    await world.run(carol.status_delete, first.id)

    await _cancelled_with(world, "bob", str(second.id), str(first.id))
    code, body = await world.gateway.call("bob", "GET", "/v1/posts?account=cosigned&state=held")
    assert code == 200 and body["posts"] == [], body
    code, body = await world.gateway.act("dave", str(second.id), "approve")
    assert code == 409, body

    again = await world.run(carol.status_post, "Relaunch 1/2")
    reply = await world.run(carol.status_post, "Relaunch 2/2", in_reply_to_id=again.id)
    code, body = await world.gateway.act("bob", str(again.id), "reject", {"reason": "not today"})
    assert code == 200, body
    await _cancelled_with(world, "bob", str(reply.id), str(again.id), how="rejected")
    world.gateway.clock.advance(timedelta(days=2))
    await world.gateway.tick()
    assert await world.gateway.timeline("cosigned") == []
    await verified_by_cli(world.gateway)


async def test_a_reply_is_cancelled_when_its_parent_expires_or_is_deleted_once_out(world: World) -> None:
    """Co-signed: 2/2 approved, 1/2 left undecided until it expires: 2/2, scheduled, is cancelled
    as 1/2 expires. Direct: 2/2 written before 1/2 went out and held by a rule ("fired"); 1/2
    goes out, then is deleted from the platform: 2/2 is cancelled, where it would have waited
    for a decision and then failed."""
    carol = await world.client("carol", "cosigned")
    first = await world.run(carol.status_post, "Launch 1/2")
    second = await world.run(carol.status_post, "Launch 2/2", in_reply_to_id=first.id)
    for approver in ("bob", "dave"):
        code, body = await world.gateway.act(approver, str(second.id), "approve")
        assert code == 200, body
    world.gateway.clock.advance(timedelta(hours=25))
    await world.gateway.tick()
    await _cancelled_with(world, "carol", str(second.id), str(first.id), how="expired")

    alice = await world.client("alice", "direct")
    out = await world.run(alice.status_post, "News 1/2")
    held = await world.run(alice.status_post, "News 2/2: the coach was fired", in_reply_to_id=out.id)
    assert held.byline.state == "held"
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("direct")] == ["News 1/2"]
    await world.run(alice.status_delete, out.id)
    await _cancelled_with(world, "alice", str(held.id), str(out.id), how="deleted")
    await world.gateway.tick()
    assert [p["text"] for p in await world.gateway.timeline("cosigned") + await world.gateway.timeline("direct")] == []
    await verified_by_cli(world.gateway)


async def test_a_reply_failed_for_its_parent_is_retried_with_it_and_follows_it_out(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, db_url: str,
) -> None:
    """The instance refuses 1/2 when it comes due (422): 1/2 fails, and 2/2 fails where it waits,
    saying to retry 1/2 first. alice retries 1/2 (before: 2/2 stayed failed, and had to be
    retried by hand): 2/2 is retried with it, the gateway's retry naming its parent (as
    ``byline audit who`` tells it), and goes out after 1/2 as a reply to it. The log verifies."""
    first, second, slow = await _a_thread_that_failed(world, policy_dir, monkeypatch)
    _, parent = await world.gateway.call("alice", "GET", f"/v1/posts/{first.id}")
    _, reply = await world.gateway.call("alice", "GET", f"/v1/posts/{second.id}")
    assert (parent["state"], reply["state"]) == ("failed", "failed")
    assert reply["last_error"].startswith(f"the post it replies to, {first.id}, failed to go out"), reply
    assert world.upstream.statuses(slow) == []

    code, body = await world.gateway.act("alice", str(first.id), "retry")
    assert code == 200, body
    _, reply = await world.gateway.call("alice", "GET", f"/v1/posts/{second.id}")
    assert (reply["state"], reply["last_error"]) == ("scheduled", None), reply
    last = reply["events"][-1]
    assert (last["type"], last["actor"], last["data"]["reply_to_post"]) == ("post.retried", "system", str(first.id))
    told = await byline("audit", "who", "--post", str(second.id), env=cli_env(BYLINE_DATABASE_URL=db_url))
    assert f"retried with the post it replies to, {first.id}" in told.out, told.text
    await world.gateway.tick()
    start, continued = world.upstream.statuses(slow)
    assert (start.text, start.in_reply_to_id) == ("Thread 1/2", None)
    assert (continued.text, continued.in_reply_to_id) == ("Thread 2/2", start.id)
    await verified_by_cli(world.gateway)


async def test_a_reply_retried_with_its_parent_is_held_where_the_policy_now_asks_approvals(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1/2 and 2/2 fail on the delayed account (1/2 refused, 2/2 for it); the account turns
    co-signed; alice retries 1/2. Both are held for bob, 2/2 too though alice did not retry it
    herself: the gateway's retry is decided as any retry is, and nothing goes out until bob
    approves, then 1/2 and 2/2 go out in order. The log verifies."""
    first, second, slow = await _a_thread_that_failed(world, policy_dir, monkeypatch)
    masto = world.gateway.app[REGISTRY].get("masto")
    assert masto is not None
    write_policy(policy_dir, "slow", f"""
        account: slow
        platform: mastodon
        handle: "@slow@mastodon.example"
        instance: {masto.policy.instance}
        credentials: env:SLOW_MASTODON_TOKEN
        tier: co-signed
        owner: alice
        approvals:
          required: 1
          from: [bob]
    """)
    assert "slow" in await world.gateway.sync_policies()

    code, body = await world.gateway.act("alice", str(first.id), "retry")
    assert (code, body["state"]) == (200, "held"), body
    _, reply = await world.gateway.call("alice", "GET", f"/v1/posts/{second.id}")
    assert reply["state"] == "held", reply
    assert [e["type"] for e in reply["events"][-2:]] == ["post.retried", "post.redecided"]
    world.gateway.clock.advance(timedelta(hours=1))
    await world.gateway.tick()
    assert world.upstream.statuses(slow) == []

    for post in (second.id, first.id):
        code, body = await world.gateway.act("bob", str(post), "approve")
        assert code == 200, body
    await world.gateway.tick()
    world.gateway.clock.advance(2 * SECOND)
    await world.gateway.tick()
    start, continued = world.upstream.statuses(slow)
    assert (continued.text, continued.in_reply_to_id) == ("Thread 2/2", start.id)
    await verified_by_cli(world.gateway)


async def test_a_reply_approved_first_waits_for_its_held_parent(world: World) -> None:
    """Co-signed: the reply is approved before its parent and comes due first; it waits while
    the parent is held (looking again a minute later), then until a second after the parent's
    time, and goes out after it, replying to the parent's id on the sandbox. Its wait is kept
    in the database: here the publisher is made to forget it, as when another replica sends
    the parent, and the reply still goes out on its own look."""
    carol = await world.client("carol", "cosigned")
    first = await world.run(carol.status_post, "Launch 1/2")
    second = await world.run(carol.status_post, "Launch 2/2", in_reply_to_id=first.id)
    assert (first.byline.state, second.byline.state) == ("held", "held")
    for approver in ("bob", "dave"):
        code, body = await world.gateway.act(approver, second.id, "approve")
        assert code == 200, body
    clock = world.gateway.clock
    clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert await world.gateway.timeline("cosigned") == []
    clock.advance(10 * SECOND)
    for approver in ("bob", "dave"):
        code, body = await world.gateway.act(approver, first.id, "approve")
        assert code == 200, body  # the parent is due a minute from now, the reply looks before
    clock.advance(50 * SECOND)
    await world.gateway.tick()
    assert await world.gateway.timeline("cosigned") == []
    world.gateway.app[PUBLISHER]._awaiting.clear()  # as if another replica were to send the parent
    clock.advance(10 * SECOND)
    await world.gateway.tick()
    [start] = await world.gateway.timeline("cosigned")
    assert start["text"] == "Launch 1/2\n\n—carol"
    clock.advance(SECOND)
    await world.gateway.tick()
    continued, start = await world.gateway.timeline("cosigned")
    assert (continued["text"], continued["options"]["reply_to"]) == ("Launch 2/2\n\n—carol", start["id"])
    async with world.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT id, state FROM posts WHERE id IN (?, ?)", first.id, second.id)
    assert {r["state"] for r in rows} == {"published"}
    await verified_by_cli(world.gateway)


async def test_a_reply_to_a_status_the_platform_does_not_have_is_not_found(world: World) -> None:
    """An ``in_reply_to_id`` Byline did not give is a status on the platform: taken when the
    instance shows it to the account (someone else's, seen in a timeline), and 404 with
    Mastodon's words when the instance does not have it, as Mastodon answers (before: taken, to
    fail when it went out). On the sandbox, whose statuses are Byline's record, likewise."""
    someone = world.upstream.add_account("someone", "mtok-someone")
    theirs = world.upstream.seed_status(someone, "A question", created_at=world.gateway.clock.now())
    api = await world.client("alice", "masto")
    before = await world.gateway.snapshot()
    for account, client in (("masto", api), ("direct", await world.client("alice", "direct"))):
        with pytest.raises(MastodonNotFoundError) as missing:
            await world.run(client.status_post, "An answer", in_reply_to_id="9" * 18)
        assert missing.value.args[3] == "The post you are trying to reply to does not appear to exist.", account
    assert await world.gateway.snapshot() == before
    answer = await world.run(api.status_post, "An answer", in_reply_to_id=theirs.id)
    assert (str(answer.in_reply_to_id), answer.in_reply_to_account_id) == (theirs.id, None)
    await world.gateway.tick()
    [sent] = world.upstream.statuses(world.upstream_account)
    assert (sent.text, sent.in_reply_to_id) == ("An answer", theirs.id)
