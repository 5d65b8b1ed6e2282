"""A picture's focal point decides what a reader sees of it only where the platform has one:
Mastodon crops its previews around it, Bluesky and X have none. A new focal point alone of a
co-signed post for Bluesky (``PUT /api/v1/media/:id``, or an edit's ``media_attributes[]``)
changes nothing it publishes, so it keeps its approvals; on Mastodon it still goes back to its
approvers, and new alt text still does on Bluesky. Driven by Mastodon.py against a real gateway,
the real PDS and the Mastodon stand-in, both databases; the real ``byline audit verify`` reads
the log."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.audit.logtools import Attacker
from tests.clients.test_media_update import (
    PNG,
    _another_on_mastodon,
    _approved_with_an_image,
    _log,
    _media_row,
    _verify,
)
from tests.clients.world import World
from tests.conftest import write_policy
from tests.platforms.bluesky.fixture import BlueskyPds, post_records

FOCUS_MOVED = "What goes out with its words (an upload's alt text or crop, or an option) changed after it was approved"


async def _approved_on_bluesky(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, pds: BlueskyPds,
) -> tuple[str, str, list[str]]:
    """alice's post with a picture described "A cat" (its focal point at the top) on
    ``skyco``, co-signed on carol.test, approved by bob and waiting out its minute: the post's
    id, the upload's, and the PDS's posts of carol.test before it."""
    account = pds.account("carol.test")
    monkeypatch.setenv("SKYCO_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "skyco", f"""
        account: skyco
        platform: bluesky
        handle: {account.handle}
        pds: {pds.pds_url}
        credentials: env:SKYCO_APP_PASSWORD
        tier: co-signed
        owner: alice
        writers: [alice]
        delay: 1m
        approvals: {{required: 1, from: [bob]}}
    """)
    await world.gateway.sync_policies()
    before = [r["uri"] for r in await post_records(pds, account.did)]
    api = await world.client("alice", "skyco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat", focus=(0.0, 1.0))
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    return str(status.id), str(media.id), before


async def _refocus(world: World, account: str, post_id: str, media_id: str, how: str) -> dict[str, Any]:
    """alice moves the picture's focal point alone, as ``how`` says (the media PUT, or an edit
    of the status keeping its words): the focal point as the app is answered it."""
    api = await world.client("alice", account)
    if how == "media":
        return dict((await world.run(api.media_update, media_id, focus=(-0.5, 0.25))).meta.focus)
    change = api.generate_media_edit_attributes(media_id, focus=(-0.5, 0.25))
    edited = await world.run(api.status_update, post_id, "Our mascot", media_attributes=[change])
    [picture] = edited.media_attachments
    return dict(picture.meta.focus)


async def _sent_to_pds(world: World, pds: BlueskyPds, before: list[str]) -> list[tuple[str, list[str]]]:
    """The posts of carol.test on the PDS since ``before``: their words and their pictures' alt text."""
    records = await post_records(pds, pds.account("carol.test").did)
    return [(r["value"]["text"], [i["alt"] for i in r["value"].get("embed", {}).get("images", [])])
            for r in records if r["uri"] not in before]


@pytest.mark.parametrize("how", ["media", "edit"])
async def test_a_new_focal_point_alone_keeps_a_bluesky_posts_approval(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, bluesky_pds: BlueskyPds, how: str,
) -> None:
    """Approved, then only its picture's focal point moved: the app is answered the new focal
    point, the upload keeps it, and the post stays version 1, scheduled, with bob's approval
    (no edit in the log); at its time it goes out as approved, and the log verifies. (Before:
    held again as "changed after it was approved", a second approval asked for a post that
    would have gone out the same.)"""
    post_id, media_id, before = await _approved_on_bluesky(world, policy_dir, monkeypatch, bluesky_pds)
    assert await _refocus(world, "skyco", post_id, media_id, how) == {"x": -0.5, "y": 0.25}
    post = await world.gateway.get("alice", post_id)
    assert (post["state"], post["version"]) == ("scheduled", 1), post
    assert await _media_row(world, media_id) == {"description": "A cat", "focus": "-0.5,0.25", "post_id": post_id}
    assert [kind for kind, _ in await _log(world, post_id)] == ["post.submitted", "post.approved"]
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert (await world.gateway.get("alice", post_id))["state"] == "published"
    assert await _sent_to_pds(world, bluesky_pds, before) == [("Our mascot", ["A cat"])]
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_new_alt_text_still_sends_a_bluesky_post_back_to_its_approvers(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, bluesky_pds: BlueskyPds,
) -> None:
    """Alt text is read on Bluesky as the words are: a new one of an approved post is a new
    version, held again; nothing goes out on the approval of the old one, and the new alt text
    goes out once approved again. The log verifies."""
    post_id, media_id, before = await _approved_on_bluesky(world, policy_dir, monkeypatch, bluesky_pds)
    api = await world.client("alice", "skyco")
    await world.run(api.media_update, media_id, description="A ginger cat")
    post = await world.gateway.get("alice", post_id)
    assert (post["state"], post["version"], [r["reason"] for r in post["reasons"]]) == ("held", 2, [FOCUS_MOVED])
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert await _sent_to_pds(world, bluesky_pds, before) == []
    code, body = await world.gateway.act("bob", post_id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert await _sent_to_pds(world, bluesky_pds, before) == [("Our mascot", ["A ginger cat"])]
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize("how", ["media", "edit"])
async def test_a_new_focal_point_alone_still_sends_a_mastodon_post_back_to_its_approvers(
    world: World, policy_dir: Path, how: str,
) -> None:
    """On Mastodon the focal point is the crop every preview shows: moved alone on an approved
    co-signed post, by the media PUT or by an edit keeping the words, it is a new version held
    again, logged as an edit naming the upload."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    assert await _refocus(world, "mastoco", post_id, media_id, how) == {"x": -0.5, "y": 0.25}
    post = await world.gateway.get("alice", post_id)
    assert (post["state"], post["version"], [r["reason"] for r in post["reasons"]]) == ("held", 2, [FOCUS_MOVED])
    edited = [data for kind, data in await _log(world, post_id) if kind == "post.edited"]
    assert [(d["version"], d.get("refocused")) for d in edited] == [(2, [media_id])]
    result = await _verify(world)
    assert result.code == 0, result.text


async def _moved_to_mastodon_and_sent(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, post_id: str,
) -> Any:
    """``skyco`` moves to Mastodon (``skybrand``), still co-signed, and its approved post's time
    comes: the one status it went out as there. A move to another platform account holds what
    was approved for the first (``approvals.speaks_as``); the claim's reading of what goes out
    with the words is tested where that cannot: approvals kept by a Byline from before it was
    (``speaks_as`` NULL, counted as before) and a reload that passes the post by (a replica
    behind the policy)."""

    async def passed_by(*_: Any, **__: Any) -> list[tuple[str, Any]]:
        return []

    await Attacker(db_url).run(("UPDATE approvals SET speaks_as = NULL WHERE post_id = ?", (post_id,)))
    with monkeypatch.context() as patch:
        patch.setattr("gateway.services.policies.redecide_pending", passed_by)
        await _another_on_mastodon(world, policy_dir, "skyco", "skybrand", """
            tier: co-signed
            owner: alice
            writers: [alice]
            delay: 1m
            approvals: {required: 1, from: [bob]}
        """)
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    [account] = [a for a in world.upstream.accounts.values() if a.username == "skybrand"]
    [sent] = world.upstream.statuses(account)
    return sent


async def test_a_focal_point_its_approvers_never_saw_goes_nowhere(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, bluesky_pds: BlueskyPds, db_url: str,
) -> None:
    """The focal point moved on the approved Bluesky post (kept, no new version), and then
    ``skyco`` moved to Mastodon before the post went out: the post goes out there with the
    picture and alt text approved and no focal point, not the crop nobody approved. (It went
    out on approvals given for the Bluesky account, which the verifier names: the claim's
    reading of the crop is what is tested here.)"""
    post_id, media_id, _ = await _approved_on_bluesky(world, policy_dir, monkeypatch, bluesky_pds)
    await _refocus(world, "skyco", post_id, media_id, "media")
    sent = await _moved_to_mastodon_and_sent(world, policy_dir, monkeypatch, db_url, post_id)
    assert [(world.upstream.media[m].description, world.upstream.media[m].focus) for m in sent.media_ids] == [
        ("A cat", None)]
    result = await _verify(world)
    assert result.code != 0, result.text
    named = [line for line in result.text.splitlines() if line.strip().startswith("- entry")]
    assert len(named) == 1 and "given while it spoke as another platform account" in named[0], result.text


async def test_a_post_made_to_count_focal_points_in_the_database_is_named_by_the_verifier(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, bluesky_pds: BlueskyPds, db_url: str,
) -> None:
    """Someone with the database makes the approved Bluesky post one whose focal points count
    (``content_scheme`` 1) and sets a crop, and the account moves to Mastodon: the gateway cannot
    tell, and the crop goes out; but the claim hashes it, and ``byline audit verify`` names the
    post as sent out other than its approved version."""
    post_id, media_id, _ = await _approved_on_bluesky(world, policy_dir, monkeypatch, bluesky_pds)
    await Attacker(db_url).run(("UPDATE posts SET content_scheme = 1 WHERE id = ?", (post_id,)),
                               ("UPDATE media SET focus = ? WHERE id = ?", ("1.0,-1.0", media_id)))
    sent = await _moved_to_mastodon_and_sent(world, policy_dir, monkeypatch, db_url, post_id)
    assert [world.upstream.media[m].focus for m in sent.media_ids] == [(1.0, -1.0)]
    result = await _verify(world)
    assert result.code != 0, result.text
    assert f"post {post_id} sent out other media or options than its version 1" in result.text
