"""A post's own endpoints (/source, /context, /history) answered from Byline's record for the
posts it made, held ones included, for whoever may see the post; driven with Mastodon.py as
an app edits: /source, then PUT."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from mastodon import MastodonNotFoundError

from adapters.base import OutboundPost, PublishResult
from adapters.mastodon import MastodonAdapter
from gateway.app import WAKEUPS
from gateway.appkeys import DB, REGISTRY
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.mastodon_shapes import check, check_list
from tests.clients.world import World
from tests.conftest import started_gateway

MINUTE = timedelta(minutes=1)


async def test_editing_a_held_post_through_its_source(world: World) -> None:
    """The app reads /source (the words without Byline's disclosure), sends them back edited;
    /history then lists each version with its words, options, editor and time, oldest first."""
    carol = await world.client("carol", "cosigned")
    bob = await world.client("bob", "cosigned")
    clock = world.gateway.clock
    written = clock.now()
    status = await world.run(carol.status_post, "Draft", spoiler_text="news", sensitive=True)
    assert (status.byline.state, status.content) == ("held", "<p>Draft</p><p>—carol</p>")
    source = await world.run(carol.status_source, status.id)
    assert (source.id, source.text, source.spoiler_text) == (status.id, "Draft", "news")
    clock.advance(MINUTE)
    edited = await world.run(carol.status_update, status.id, source.text + ", better",
                             spoiler_text=source.spoiler_text)
    assert (edited.content, edited.spoiler_text, edited.sensitive) == ("<p>Draft, better</p><p>—carol</p>",
                                                                      "news", True)
    clock.advance(MINUTE)
    again = await world.run(bob.status_source, status.id)  # an approver may see it
    assert (again.text, again.spoiler_text) == ("Draft, better", "news")
    await world.run(carol.status_update, status.id, "Draft, best", sensitive=False)  # no spoiler_text clears it
    history = await world.run(carol.status_history, status.id)
    me = await world.run(carol.account_verify_credentials)
    assert [h.content for h in history] == ["<p>Draft</p><p>—carol</p>", "<p>Draft, better</p><p>—carol</p>",
                                            "<p>Draft, best</p><p>—carol</p>"]
    assert [(h.spoiler_text, h.sensitive) for h in history] == [("news", True), ("news", True), ("", False)]
    assert [h.created_at for h in history] == [written, written + MINUTE, written + 2 * MINUTE]
    assert [(h.byline.version, h.byline.editor) for h in history] == [(1, "carol"), (2, "carol"), (3, "carol")]
    assert {h.account.id for h in history} == {me.id}
    assert [(h.poll, h.media_attachments, h.emojis) for h in history] == [(None, [], [])] * 3
    final = await world.run(carol.status_source, status.id)
    assert (final.text, final.spoiler_text) == ("Draft, best", "")
    context = await world.run(carol.status_context, status.id)
    assert (context.ancestors, context.descendants) == ([], [])


async def test_only_those_who_may_see_the_post_read_its_endpoints(world: World) -> None:
    """Another account's app, and anyone once the post is cancelled, hear 404, as for GET
    /api/v1/statuses/:id; a status id Byline never made on a sandbox account is not found."""
    carol = await world.client("carol", "cosigned")
    status = await world.run(carol.status_post, "Held for approval")
    outsider = await world.client("alice", "direct")  # alice writes for cosigned, but this app acts for direct
    for read in (outsider.status_source, outsider.status_history, outsider.status_context, outsider.status):
        with pytest.raises(MastodonNotFoundError):
            await world.run(read, status.id)
    await world.run(carol.status_delete, status.id)
    for read in (carol.status_source, carol.status_history, carol.status_context):
        with pytest.raises(MastodonNotFoundError):
            await world.run(read, status.id)
    with pytest.raises(MastodonNotFoundError):
        await world.run(outsider.status_source, "123456789")


async def test_context_threads_the_replies_byline_made(world: World) -> None:
    """Replies made through Byline to its own published posts form the thread: ancestors oldest
    first, descendants depth first (a held reply included); a post on its own has none."""
    api = await world.client("alice", "direct")
    root = await world.run(api.status_post, "Thread start")
    await world.gateway.tick()
    reply = await world.run(api.status_post, "Thread continued", in_reply_to_id=root.id)
    await world.gateway.tick()
    deeper = await world.run(api.status_post, "And on", in_reply_to_id=reply.id)
    await world.gateway.tick()
    held = await world.run(api.status_post, "Someone was fired", in_reply_to_id=root.id)
    assert held.byline.state == "held"
    alone = await world.run(api.status_post, "Unrelated")
    whole = await world.run(api.status_context, root.id)
    assert whole.ancestors == []
    assert [s.id for s in whole.descendants] == [reply.id, deeper.id, held.id]
    assert [s.byline.state for s in whole.descendants] == ["published", "published", "held"]
    middle = await world.run(api.status_context, reply.id)
    assert ([s.id for s in middle.ancestors], [s.id for s in middle.descendants]) == ([root.id], [deeper.id])
    leaf = await world.run(api.status_context, deeper.id)
    assert ([s.id for s in leaf.ancestors], leaf.descendants) == ([root.id, reply.id], [])
    assert [s.id for s in (await world.run(api.status_context, held.id)).ancestors] == [root.id]
    lonely = await world.run(api.status_context, alone.id)
    assert (lonely.ancestors, lonely.descendants) == ([], [])
    # A reply names its parent by the id the app knows it by: Byline's, not the platform's.
    me = await world.run(api.account_verify_credentials)
    assert [(s.in_reply_to_id, s.in_reply_to_account_id) for s in whole.descendants] == [
        (root.id, me.id), (reply.id, me.id), (root.id, me.id)]
    assert (await world.run(api.status, deeper.id)).in_reply_to_id == reply.id
    auth = {"Authorization": f"Bearer {await world.token('alice', 'direct')}"}
    for what, shape in (("context", "Context"), ("source", "StatusSource"), ("history", "StatusEdit")):
        async with world.gateway.client.get(f"/api/v1/statuses/{reply.id}/{what}", headers=auth) as resp:
            body = await resp.json()
            if isinstance(body, list):
                check_list(shape, body)
            else:
                check(shape, body)


async def test_history_of_a_post_edited_after_it_went_out(world: World) -> None:
    """A published post edited on Mastodon: each version keeps the spoiler it had then; the
    platform is not asked, since Byline made the post."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Thread start")
    await world.gateway.tick()
    world.gateway.clock.advance(MINUTE)
    await world.run(api.status_update, first.id, "Thread start, fixed", spoiler_text="typo")
    asked = len(world.upstream.faults.requests)
    history = await world.run(api.status_history, first.id)
    assert [(h.content, h.spoiler_text) for h in history] == [("<p>Thread start</p>", ""),
                                                              ("<p>Thread start, fixed</p>", "typo")]
    assert history[1].created_at - history[0].created_at == MINUTE
    source = await world.run(api.status_source, first.id)
    assert (source.text, source.spoiler_text) == ("Thread start, fixed", "typo")
    reached = [r.path for r in world.upstream.faults.requests[asked:]]
    assert not [p for p in reached if p.startswith("/api/v1/statuses")], reached


async def test_a_status_byline_did_not_make_is_asked_of_the_platform(world: World) -> None:
    """On a Mastodon account, /source, /context and /history of another status are relayed."""
    token = await world.token("alice", "masto")
    auth = {"Authorization": f"Bearer {token}"}
    for what in ("source", "context", "history"):
        async with world.gateway.client.get(f"/api/v1/statuses/4242/{what}", headers=auth):
            pass
        assert world.upstream.faults.requests[-1].path == f"/api/v1/statuses/4242/{what}"


async def test_an_edit_the_platform_took_while_the_account_turned_co_signed_is_recorded_as_such(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's edit of a published post on a direct account is decided, and while Mastodon takes
    it the account turns co-signed. The platform has the new words, so the record has them too:
    the revision names the direct policy it was decided under and says the policy in force at
    the time of recording, which would not have sent them at once; the log verifies, the
    revision judged by the policy it was decided under, a moment before the change."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Launch day")
    await world.gateway.tick()
    decided_under = world.gateway.app[REGISTRY].get("masto")
    assert decided_under is not None
    original = MastodonAdapter.edit

    async def turning_co_signed(adapter: MastodonAdapter, remote_id: str, post: OutboundPost) -> PublishResult:
        policy = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
        (policy_dir / "masto.yaml").write_text(
            policy.replace("tier: direct", "tier: co-signed\napprovals:\n  required: 1\n  from: [bob]\n"),
            encoding="utf-8")
        await world.gateway.sync_policies()
        return await original(adapter, remote_id, post)

    monkeypatch.setattr(MastodonAdapter, "edit", turning_co_signed)
    edited = await world.run(api.status_update, first.id, "Launch day, fixed")
    in_force = world.gateway.app[REGISTRY].get("masto")
    assert in_force is not None and in_force.policy.tier.value == "co-signed"
    assert edited.content == "<p>Launch day, fixed</p>"
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day, fixed"]
    async with world.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE post_id = ? ORDER BY idx", first.id)
    [revised] = [e["data"] for e in (json.loads(bytes(r["entry"])) for r in rows) if e["type"] == "post.revised"]
    assert (revised["policy_sha256"], revised["policy_changed"]) == (decided_under.sha256, in_force.sha256)
    await verified_by_cli(world.gateway)


async def test_an_edit_through_a_replica_behind_the_policy_in_force_is_decided_under_it(
    world: World, db_url: str, policy_dir: Path, clock: ManualClock, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another replica records the account turning co-signed; alice edits a post of hers
    already out through a replica that has not reread its files yet. Before: that replica
    decided the edit under the direct policy it still held and Mastodon took the new words,
    approved by nobody; every other action is decided under the version in force, so this one
    is too: held as the post's pending revision, and the platform keeps the words it had."""
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Launch day")
    await world.gateway.tick()
    # On PostgreSQL the other replica's change is heard at once; a notification can be lost
    # (the listening connection dropped), and several workers on one SQLite file hear none.
    monkeypatch.setitem(world.gateway.app[WAKEUPS]._handlers, "policy", lambda: None)
    ahead = tmp_path / "policies-ahead"
    await asyncio.to_thread(shutil.copytree, policy_dir, ahead)
    policy = (ahead / "masto.yaml").read_text(encoding="utf-8")
    (ahead / "masto.yaml").write_text(
        policy.replace("tier: direct", "tier: co-signed\napprovals:\n  required: 1\n  from: [bob]\n"),
        encoding="utf-8")
    async with started_gateway(db_url, ahead, clock) as other:
        in_force = other.app[REGISTRY].get("masto")
        assert in_force is not None and in_force.policy.tier.value == "co-signed"
    behind = world.gateway.app[REGISTRY].get("masto")
    assert behind is not None and behind.policy.tier.value == "direct", "this replica has not reread yet"
    answered = await world.run(api.status_update, first.id, "Launch day, and buy our coin")
    assert (answered.id, answered.byline.state) == (first.id, "published")
    held = answered.byline.pending_revision
    assert held.state == "held"
    assert (await world.gateway.get("alice", held.id))["revises"] == first.id
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day"]
    async with world.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT type FROM log_entries WHERE post_id = ? ORDER BY idx", first.id)
    assert "post.revised" not in [r["type"] for r in rows]
    await verified_by_cli(world.gateway)
