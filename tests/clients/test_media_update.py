"""``PUT /api/v1/media/:id`` as Mastodon documents it (``description``, ``focus``), driven by
Mastodon.py against a real gateway and the Mastodon stand-in, both databases: before the upload
is attached, and while the post it is attached to has not gone out, where a new alt text is an
edit of the post (a new version, logged, and approvals of the old one no longer count), so the
alt text that reaches the platform is the last one written, and approved."""

from __future__ import annotations

import asyncio
import json
import textwrap
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from mastodon import MastodonAPIError

from gateway.appkeys import CHECKPOINTS, DB
from gateway.services import publisher as publisher_module
from gateway.services.content import content_sha256
from gateway.services.posts import PostService
from gateway.storage.posts import PostRecord
from tests.audit.logtools import Attacker, byline
from tests.clients.world import World
from tests.conftest import write_policy
from tests.images import PNG, png_of

FOCUS_REFUSED = "Validation failed: Focus must be two numbers from -1.0 to 1.0, written x,y"


async def _another_on_mastodon(world: World, policy_dir: Path, account: str, username: str, roles: str) -> None:
    """``account``: another account on the stand-in, ``username`` there (one platform account
    has one policy), its token in a file of the secrets directory; ``roles``, the rest of its
    policy (tier, people, delay)."""
    instance = yaml.safe_load((policy_dir / "masto.yaml").read_text(encoding="utf-8"))["instance"]
    world.upstream.add_account(username, f"mtok-{username}")
    (policy_dir / "secrets").mkdir(exist_ok=True)
    (policy_dir / "secrets" / f"{username}.token").write_text(f"mtok-{username}\n")
    write_policy(policy_dir, account, f"""
        account: {account}
        platform: mastodon
        handle: "@{username}@mastodon.example"
        instance: {instance}
        credentials: file:secrets/{username}.token
    """ + textwrap.indent(textwrap.dedent(roles), " " * 8))
    await world.gateway.sync_policies()


async def _cosigned_on_mastodon(world: World, policy_dir: Path) -> None:
    """``mastoco`` (``brandco`` on the stand-in): co-signed, one approval, from bob or dave."""
    await _another_on_mastodon(world, policy_dir, "mastoco", "brandco", """
        tier: co-signed
        owner: alice
        writers: [alice, carol]
        delay: 1m
        approvals:
          required: 1
          from: [bob, dave]
          expire_after: 24h
    """)


async def _media_row(world: World, media_id: str) -> dict[str, Any]:
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT description, focus, post_id FROM media WHERE id = ?", media_id)
    assert row is not None
    return dict(row)


async def _log(world: World, post_id: str) -> list[tuple[str, dict[str, Any]]]:
    async with world.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries ORDER BY idx")
    entries = [json.loads(bytes(r["entry"])) for r in rows]
    return [(e["type"], e["data"]) for e in entries if e.get("post") == post_id]


def _published_alt_texts(world: World, username: str = "brand") -> list[list[str | None]]:
    """The alt texts of what reached the stand-in account ``username`` (masto's by default)."""
    [account] = [a for a in world.upstream.accounts.values() if a.username == username]
    return [[world.upstream.media[m].description for m in s.media_ids] for s in world.upstream.statuses(account)]


async def _verify(world: World) -> Any:
    """``byline audit verify`` of the gateway's log, read over HTTP, as an auditor runs it."""
    await world.gateway.app[CHECKPOINTS].sign_now()
    key = world.gateway.app[CHECKPOINTS].verifier_key()
    url = str(world.gateway.client.make_url("")).rstrip("/")
    return await byline("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress")


async def _out_once_dave_approves(world: World, post_id: str) -> None:
    """Nothing reaches brandco's platform at the post's time while it waits for approval; Dave
    approves it, and at its time again it goes out."""
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandco") == []
    code, body = await world.gateway.act("dave", post_id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()


async def test_alt_text_and_focus_before_the_upload_is_attached(world: World) -> None:
    """Changed before any status takes it: the entity, GET /media/:id and the platform all have
    the new alt text; the focal point is shown in ``meta.focus``."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A sqare")
    updated = await world.run(api.media_update, media, description="A red square", focus=(0.5, -0.25))
    assert (updated.id, updated.description, updated.meta.focus) == (media.id, "A red square",
                                                                      {"x": 0.5, "y": -0.25})
    again = await world.run(api.media, media)
    assert (again.description, again.meta.focus) == ("A red square", {"x": 0.5, "y": -0.25})
    await world.run(api.status_post, "A picture", media_ids=[media])
    await world.gateway.tick()
    assert _published_alt_texts(world) == [["A red square"]]


async def test_new_alt_text_of_a_held_post_is_an_edit_and_is_what_goes_out(
    world: World, policy_dir: Path,
) -> None:
    """A post approved and scheduled, then its upload's alt text changed: a new version, logged
    as an edit naming the upload; the approval was for the old words and no longer counts, so it
    is held again; approved again, it goes out with the new alt text."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    assert status.byline.state == "held"
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    updated = await world.run(api.media_update, media, description="Our mascot, a ginger cat, asleep")
    assert updated.description == "Our mascot, a ginger cat, asleep"
    post = await world.gateway.get("alice", status.id)
    assert (post["state"], post["version"], post["text"]) == ("held", 2, "Our mascot")
    edited = [data for kind, data in await _log(world, status.id) if kind == "post.edited"]
    assert [(d["version"], d["described"], d["state"]) for d in edited] == [(2, [media.id], "held")]
    [pending] = await world.run(api.scheduled_statuses)
    assert [m["description"] for m in pending["media_attachments"]] == ["Our mascot, a ginger cat, asleep"]
    await _out_once_dave_approves(world, status.id)
    assert _published_alt_texts(world, "brandco") == [["Our mascot, a ginger cat, asleep"]]
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_update, media, description="Too late")
    assert caught.value.args[1:4:2] == (404, "Record not found")
    assert (await _media_row(world, media.id))["description"] == "Our mascot, a ginger cat, asleep"


async def test_a_new_focal_point_of_an_approved_post_goes_back_to_its_approvers(
    world: World, policy_dir: Path,
) -> None:
    """A writer's post approved and scheduled, then only its picture's focal point moved (the
    crop every preview shows): a new version, logged as an edit naming the upload, held again
    for approval; nothing goes out on the approval of the old crop, and once approved again the
    new crop is what reaches the platform. Before, the focal point was set under the approval
    and went out with the crop nobody approved."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat", focus=(0.0, 0.5))
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    updated = await world.run(api.media_update, media, focus=(-1, 1))
    assert (updated.description, updated.meta.focus) == ("A cat", {"x": -1.0, "y": 1.0})
    post = await world.gateway.get("alice", status.id)
    assert (post["state"], post["version"], post["approvals_needed"]) == ("held", 2, 1)
    assert [r["reason"] for r in post["reasons"]] == [
        "What goes out with its words (an upload's alt text or crop, or an option) changed after it was approved"]
    edited = [data for kind, data in await _log(world, status.id) if kind == "post.edited"]
    assert [(d["version"], d.get("refocused"), d.get("described"), d["state"]) for d in edited] == [
        (2, [media.id], None, "held")]
    await _out_once_dave_approves(world, status.id)
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    [sent] = world.upstream.statuses(account)
    assert [world.upstream.media[m].focus for m in sent.media_ids] == [(-1.0, 1.0)]


async def test_a_new_focal_point_of_a_held_post_voids_the_approvals_given(
    world: World, policy_dir: Path,
) -> None:
    """Held for two approvals, one given, then the focal point moved: the one given was for the
    old crop and no longer counts, so the second approver alone cannot send it out."""
    await _cosigned_on_mastodon(world, policy_dir)
    path = policy_dir / "mastoco.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("required: 1", "required: 2"), encoding="utf-8")
    await world.gateway.sync_policies()
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["state"], body["approvals_needed"]) == (200, "held", 1), body
    await world.run(api.media_update, media, focus=(0.9, -0.9))
    code, body = await world.gateway.act("dave", status.id, "approve")
    assert (code, body["state"], body["approvals_needed"]) == (200, "held", 1), body


@pytest.mark.parametrize(("fields", "error"), [
    ({"focus": "2,0"}, FOCUS_REFUSED),
    ({"focus": "0.5"}, FOCUS_REFUSED),
    ({"focus": "left,top"}, FOCUS_REFUSED),
    ({"focus": "nan,0"}, FOCUS_REFUSED),
    ({"focus": "0,0,0"}, FOCUS_REFUSED),
    ({"description": "x" * 1501}, "Validation failed: Description is too long (maximum is 1500 characters)"),
    ({"description": "New words", "focus": "0,-1.5"}, FOCUS_REFUSED),
])
async def test_bad_input_is_refused_and_changes_nothing(
    world: World, policy_dir: Path, fields: dict[str, str], error: str,
) -> None:
    """A focal point that is not two numbers from -1 to 1, or alt text over 1500 characters: 422 in
    Mastodon's words, before and after the upload is attached, and nothing changes."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    loose = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat", focus=(0.1, 0.2))
    attached = await world.run(api.media_post, PNG, mime_type="image/png", description="A dog")
    status = await world.run(api.status_post, "Our pets", media_ids=[attached])
    token = await world.token("alice", "mastoco")
    before = (await _media_row(world, loose.id), await _media_row(world, attached.id),
              await world.gateway.snapshot(), await _log(world, status.id))
    for media in (loose, attached):
        async with world.gateway.client.put(f"/api/v1/media/{media.id}", data=fields,
                                            headers={"Authorization": f"Bearer {token}"}) as resp:
            assert (resp.status, await resp.json()) == (422, {"error": error})
    after = (await _media_row(world, loose.id), await _media_row(world, attached.id),
             await world.gateway.snapshot(), await _log(world, status.id))
    assert after == before


async def test_a_custom_thumbnail_is_refused_and_changes_nothing(world: World, policy_dir: Path) -> None:
    """Mastodon.py's ``media_update(thumbnail=…)`` (a file in the PUT's form) on an upload of an
    approved co-signed post, and ``media_post(thumbnail=…)``: 422 saying Byline carries none, and
    nothing changes (the upload, the post, the log) nor is stored. Before: 200, the file dropped
    unread with the new alt text taken, and the app showed its person a thumbnail that never went
    out."""
    status_id, media_id = await _approved_with_an_image(world, policy_dir)
    api = await world.client("alice", "mastoco")
    before = (await _media_row(world, media_id), await world.gateway.snapshot(), await _log(world, status_id))
    refused = "Validation failed: Byline does not carry custom thumbnails"
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_update, media_id, description="Not what bob approved", thumbnail=PNG,
                        thumbnail_mime_type="image/png")
    assert caught.value.args[1:4:2] == (422, refused), caught.value.args
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, PNG, mime_type="image/png", description="A dog", thumbnail=PNG,
                        thumbnail_mime_type="image/png")
    assert caught.value.args[1:4:2] == (422, refused), caught.value.args
    assert (await _media_row(world, media_id), await world.gateway.snapshot(), await _log(world, status_id)) == before


async def test_only_the_uploader_may_change_it(world: World, policy_dir: Path) -> None:
    """Carol writes for the same account, and the app of another account is alice's own: both get
    404 for alice's upload, attached or not, and nothing changes."""
    await _cosigned_on_mastodon(world, policy_dir)
    alice = await world.client("alice", "mastoco")
    loose = await world.run(alice.media_post, PNG, mime_type="image/png", description="A cat")
    attached = await world.run(alice.media_post, PNG, mime_type="image/png", description="A dog")
    await world.run(alice.status_post, "Our pets", media_ids=[attached])
    before = (await _media_row(world, loose.id), await _media_row(world, attached.id), await world.gateway.snapshot())
    others = [await world.client("carol", "mastoco"), await world.client("alice", "masto")]
    for other in others:
        for media in (loose, attached):
            with pytest.raises(MastodonAPIError) as caught:
                await world.run(other.media_update, media, description="Mine now")
            assert caught.value.args[1:4:2] == (404, "Record not found")
    with pytest.raises(MastodonAPIError) as unknown:
        await world.run(alice.media_update, "1234567", description="Anything")
    assert unknown.value.args[1:4:2] == (404, "Record not found")
    assert (await _media_row(world, loose.id), await _media_row(world, attached.id),
            await world.gateway.snapshot()) == before


async def test_the_rules_read_the_alt_text_as_they_read_the_words(world: World, policy_dir: Path) -> None:
    """Alt text is read by everyone who cannot see the picture: a block rule matching it refuses
    the status (422, nothing stored), and a hold rule matching a new alt text of a scheduled
    post holds it for confirmation (before, both went straight out)."""
    instance = yaml.safe_load((policy_dir / "masto.yaml").read_text(encoding="utf-8"))["instance"]
    write_policy(policy_dir, "masto", f"""
        account: masto
        platform: mastodon
        handle: "@brand@mastodon.example"
        instance: {instance}
        credentials: env:BRAND_MASTODON_TOKEN
        tier: direct
        owner: alice
        rules:
          - {{name: breaking-news, action: hold, any_words: [fired], reason: Check the full story first}}
          - {{name: no-slurs, action: block, any_words: [example-slur], reason: Not okay to post}}
    """)
    await world.gateway.sync_policies()
    api = await world.client("alice", "masto")
    slur = await world.run(api.media_post, PNG, mime_type="image/png", description="an example-slur")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "Our mascot", media_ids=[slur])
    assert caught.value.args[1] == 422
    assert (await _media_row(world, slur.id))["post_id"] is None

    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    assert status.byline.state == "scheduled"
    await world.run(api.media_update, media, description="The cat that was fired")
    post = await world.gateway.get("alice", status.id)
    assert (post["state"], [r["rule"] for r in post["reasons"]]) == ("held", ["breaking-news"]), post
    await world.gateway.tick()
    assert _published_alt_texts(world) == []


async def test_a_picture_alone_is_a_post(world: World) -> None:
    """Mastodon takes a status with media and no words (``status`` is optional then): so does
    Byline, and the picture goes out with its alt text; a status with neither is still refused
    as Mastodon refuses it (before, the picture alone was refused: "Text can't be blank")."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat on a mat")
    status = await world.run(api.status_post, "", media_ids=[media])
    assert status.byline.state == "scheduled"
    await world.gateway.tick()
    [out] = world.upstream.statuses(world.upstream_account)
    assert (out.text, [world.upstream.media[m].description for m in out.media_ids]) == ("", ["A cat on a mat"])
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "")
    assert caught.value.args[1:4:2] == (422, "Validation failed: Text can't be blank")


async def _approved_with_an_image(world: World, policy_dir: Path) -> tuple[str, str]:
    """alice's post on co-signed ``mastoco`` with an image described "A cat", approved by bob
    and waiting out its minute: the post's and the upload's ids."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    code, body = await world.gateway.act("bob", status.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    return str(status.id), str(media.id)


async def test_alt_text_changed_in_the_database_after_approval_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Someone with the database rewrites the approved image's alt text: the gateway cannot
    tell, and it goes out; but the claim records what it carries besides the words, and the
    auditor's ``byline audit verify`` names it as other than what was approved. Before: the log
    bound only the words, and verified."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    await Attacker(db_url).run(("UPDATE media SET description = ? WHERE id = ?", ("Buy our coin", media_id)))
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandco") == [["Buy our coin"]]
    result = await _verify(world)
    assert result.code != 0, result.text
    assert f"post {post_id} sent out other media or options than its version 1" in result.text


async def test_a_focal_point_changed_in_the_database_after_approval_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """Someone with the database moves the approved image's focal point (the crop the public
    sees): it goes out, but the claim's record of what the post carries differs from the
    approved version's, and ``byline audit verify`` names it. Before, the focal point was left
    out of that record, and the forged history verified."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    await Attacker(db_url).run(("UPDATE media SET focus = ? WHERE id = ?", ("1.0,-1.0", media_id)))
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    [sent] = world.upstream.statuses(account)
    assert [world.upstream.media[m].focus for m in sent.media_ids] == [(1.0, -1.0)]
    result = await _verify(world)
    assert result.code != 0, result.text
    assert f"post {post_id} sent out other media or options than its version 1" in result.text


async def test_a_post_stored_before_focal_points_were_hashed_is_claimed_as_it_was_hashed(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """A post stored and approved by a Byline that hashed no focal point (no content scheme; its
    version's hash without one), its picture with a focal point, goes out after the upgrade: its
    claim hashes as its version did, so the honest log still verifies."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    async with world.gateway.app[DB].read() as txn:
        salt = (await txn.fetchone("SELECT content_salt FROM posts WHERE id = ?", post_id))["content_salt"]
        [row] = await txn.fetchall("SELECT id, digest, description, focus FROM media WHERE id = ?", media_id)
    assert row["focus"] is None
    unset = content_sha256({"media_ids": [media_id]}, [dict(row)], salt=salt)
    legacy = content_sha256({"media_ids": [media_id]}, [{**dict(row), "focus": "0.5,0.5"}], salt=salt, scheme=None)
    assert unset == legacy
    # As the older Byline left it: the focal point set, the post with no scheme.
    await Attacker(db_url).run(
        ("UPDATE media SET focus = ? WHERE id = ?", ("0.5,0.5", media_id)),
        ("UPDATE posts SET content_scheme = NULL WHERE id = ?", (post_id,)),
    )
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    [sent] = world.upstream.statuses(account)
    assert [world.upstream.media[m].focus for m in sent.media_ids] == [(0.5, 0.5)]
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_a_reply_target_changed_in_the_database_after_approval_is_named_by_the_verifier(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """An approved reply to a status on the platform, its target rewritten in the database to
    another status: it goes out answering a thread its approvers never saw, but the claim's
    record of what the post carries differs from the approved version's, and ``byline audit
    verify`` names it. Before, where a post replies was left out of that record, and the forged
    history verified."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    statuses = []
    for words in ("Our mascot", "An unrelated thread"):
        status = await world.run(api.status_post, words)
        code, body = await world.gateway.act("bob", status.id, "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
        statuses.append(status)
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    first, other = world.upstream.statuses(account)
    reply = await world.run(api.status_post, "She is asleep", in_reply_to_id=statuses[0].id)
    code, body = await world.gateway.act("bob", reply.id, "approve")
    assert (code, body["state"]) == (200, "scheduled"), body
    async with world.gateway.app[DB].read() as txn:
        options = json.loads((await txn.fetchone("SELECT options FROM posts WHERE id = ?", reply.id))["options"])
    assert options.get("reply_to") == first.id and "reply_to_post" not in options, options
    forged = json.dumps({**options, "reply_to": other.id})
    await Attacker(db_url).run(("UPDATE posts SET options = ? WHERE id = ?", (forged, reply.id)))
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    sent = world.upstream.statuses(account)[-1]
    assert (sent.text.split("\n")[0], sent.in_reply_to_id) == ("She is asleep", other.id)
    result = await _verify(world)
    assert result.code != 0, result.text
    assert f"post {reply.id} sent out other media or options than its version 1" in result.text


async def test_a_reply_written_before_its_parent_went_out_hashes_alike_in_its_version_and_claim(
    world: World, policy_dir: Path,
) -> None:
    """A reply written while its parent waits learns where the parent went only when it is
    claimed: its hash counts the parent it waits for, not that platform id, so its version and
    its claim compare equal and the honest log verifies."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    parent = await world.run(api.status_post, "Our mascot")
    reply = await world.run(api.status_post, "She is asleep", in_reply_to_id=parent.id)
    for post in (parent, reply):
        code, body = await world.gateway.act("bob", post.id, "approve")
        assert (code, body["state"]) == (200, "scheduled"), body
    for _ in range(3):
        world.gateway.clock.advance(timedelta(minutes=2))
        await world.gateway.tick()
    [account] = [a for a in world.upstream.accounts.values() if a.username == "brandco"]
    first, second = world.upstream.statuses(account)
    assert second.in_reply_to_id == first.id
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_an_image_whose_bytes_were_swapped_in_the_database_does_not_go_out(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """The approved image's bytes replaced (its stored digest left as it was): the publisher
    checks what it sends against the digest, and fails the post, saying why, instead of sending
    an image nobody approved."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    other = png_of(3, 2, 9)
    assert other != PNG
    await Attacker(db_url).run(("UPDATE media SET data = ? WHERE id = ?", (other, media_id)))
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandco") == []
    post = await world.gateway.get("alice", post_id)
    assert post["state"] == "failed"
    assert "changed after it was claimed" in post["last_error"]


async def test_alt_text_changed_while_its_status_is_checked_does_not_slip_past_the_rules(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The rules read an upload's alt text, then the status takes the upload: a PUT of new alt
    text landing between the two (the upload is nobody's yet, so it is taken) must not go out
    unread. Before, the status was stored with the new alt text, which a block rule refuses,
    and it went out."""
    write_policy(policy_dir, "masto", (policy_dir / "masto.yaml").read_text(encoding="utf-8") + """
rules:
  - name: no-slurs
    action: block
    any_words: [example-slur]
    reason: Not okay to post
""")
    await world.gateway.sync_policies()
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A calm sea")
    token = await world.token("alice", "masto")
    read = PostService._words_seen

    async def then_described(self: PostService, *args: Any, **kwargs: Any) -> Any:
        seen = await read(self, *args, **kwargs)
        if args and getattr(args[0], "media_ids", ()):
            async with world.gateway.client.put(f"/api/v1/media/{media.id}", data={"description": "example-slur"},
                                                headers={"Authorization": f"Bearer {token}"}) as resp:
                assert resp.status == 200, await resp.text()
        return seen

    monkeypatch.setattr(PostService, "_words_seen", then_described)
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "The view today", media_ids=[media])
    assert caught.value.args[1] == 409, caught.value.args
    monkeypatch.setattr(PostService, "_words_seen", read)
    await world.gateway.tick()
    assert _published_alt_texts(world) == []
    assert (await _media_row(world, media.id))["post_id"] is None
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.status_post, "The view today", media_ids=[media])
    assert caught.value.args[1] == 422 and "Not okay to post" in str(caught.value.args[3]), caught.value.args


async def test_the_history_shows_each_version_with_the_crop_it_had(world: World, policy_dir: Path) -> None:
    """``/history`` of a held post whose picture's focal point moved: version 1 with the crop it
    was approved with, version 2 with the new one, as each went (or would go) out."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat", focus=(0.0, 0.5))
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    await world.run(api.media_update, media, focus=(-1, 1))
    history = await world.run(api.status_history, status.id)
    assert [[m.meta.focus for m in h.media_attachments] for h in history] == [
        [{"x": 0.0, "y": 0.5}], [{"x": -1.0, "y": 1.0}]]


async def test_a_writer_made_a_suggester_cannot_move_the_crop_of_their_waiting_post(
    world: World, policy_dir: Path,
) -> None:
    """Alice's approved post, then the policy makes her a suggester: she may no longer edit it,
    and a new focal point is an edit, so it is refused (403) and the crop stays. Before, a focal
    point alone was written past the post's permissions, by anyone who had uploaded the picture."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    path = policy_dir / "mastoco.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("writers: [alice, carol]",
                                                             "writers: [carol]\nsuggesters: [alice]"),
                    encoding="utf-8")
    await world.gateway.sync_policies()
    api = await world.client("alice", "mastoco")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_update, media_id, focus=(1, 1))
    assert caught.value.args[1] == 403
    assert (await _media_row(world, media_id))["focus"] is None
    post = await world.gateway.get("carol", post_id)
    assert post["version"] == 2 and post["state"] == "held"  # held again by the policy change, not the crop


async def test_new_alt_text_does_not_write_over_words_edited_meanwhile(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """New alt text keeps the post's words as it read them; an edit of the words that lands
    between that read and the alt text's own edit is not written over: the alt text's request
    gets 409 and the words edited stay. Before, the alt text's version carried the words it had
    read, and the edit's words were lost without a word to anyone."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    api = await world.client("alice", "mastoco")
    edit = PostService.edit

    async def words_edited_first(self: PostService, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("described"):  # the alt text's edit: the words change just before it
            await world.run(api.status_update, post_id, "Our mascot, Ginger", media_ids=[media_id])
        return await edit(self, *args, **kwargs)

    monkeypatch.setattr(PostService, "edit", words_edited_first)
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_update, media_id, description="A ginger cat")
    assert caught.value.args[1] == 409, caught.value.args
    monkeypatch.setattr(PostService, "edit", edit)
    post = await world.gateway.get("alice", post_id)
    assert (post["text"], post["version"]) == ("Our mascot, Ginger", 2), post
    assert (await _media_row(world, media_id))["description"] == "A cat"


async def _managed_on_mastodon(world: World, policy_dir: Path) -> None:
    """``mastoman`` (``brandman`` on the stand-in): managed, dave its owner (he suggests), bob
    and carol its writers, a minute's cooling-off."""
    await _another_on_mastodon(world, policy_dir, "mastoman", "brandman", """
        tier: managed
        owner: dave
        writers: [bob, carol]
        delay: 1m
    """)


async def test_a_writer_edits_a_suggestion_they_adopted_with_its_pictures(world: World, policy_dir: Path) -> None:
    """bob adopts dave's suggestion of a picture and, in its minute, edits its words in his
    Mastodon app, which sends the picture back as it keeps it: a new version with the picture,
    which goes out with the alt text dave wrote and bob adopted. The picture stays the
    suggestion's, so dave cannot change its alt text once adopted (404). Before, the edit was
    refused (422, the picture "already attached to another post") and an adopted post with
    pictures could not be edited from an app at all."""
    await _managed_on_mastodon(world, policy_dir)
    dave, bob = await world.client("dave", "mastoman"), await world.client("bob", "mastoman")
    media = await world.run(dave.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(dave.status_post, "Our mascot", media_ids=[media])
    code, adopted = await world.gateway.act("bob", status.id, "adopt", {"version": 1})
    assert (code, adopted["state"]) == (201, "scheduled"), adopted
    edited = await world.run(bob.status_update, adopted["id"], "Our mascot, Ginger", media_ids=[media.id])
    assert ([m.id for m in edited.media_attachments], edited.byline.state) == ([media.id], "scheduled")
    post = await world.gateway.get("bob", adopted["id"])
    assert (post["version"], post["text"], post["options"]["media_ids"]) == (2, "Our mascot, Ginger", [media.id])
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(dave.media_update, media, description="A cat. Buy our coin")
    assert caught.value.args[1:4:2] == (404, "Record not found")
    assert (await _media_row(world, media.id))["post_id"] == status.id
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandman") == [["A cat"]]
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_new_alt_text_landing_as_a_suggestion_is_adopted_is_not_adopted_in_the_writers_name(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a managed account dave, its owner, may only suggest. He suggests a picture described
    "A cat"; bob, a writer, reads version 1 and adopts it, and dave's new alt text lands after
    bob's adoption was checked and before it is written. The adoption is refused (409
    stale_version) in its own transaction: an alt text bob never read does not go out on his
    adoption, and nothing is adopted or sent until he adopts the version that has it."""
    await _managed_on_mastodon(world, policy_dir)
    api = await world.client("dave", "mastoman")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    assert status.byline.state == "suggested"
    read = PostService._row
    described: list[Any] = []

    async def read_then_described(self: PostService, post_id: str) -> PostRecord:
        row = await read(self, post_id)
        if not described:  # bob's adoption has read the suggestion: dave's alt text lands now
            described.append(None)
            described[0] = await world.run(api.media_update, media, description="A cat. Buy our coin")
        return row

    monkeypatch.setattr(PostService, "_row", read_then_described)
    code, body = await world.gateway.act("bob", status.id, "adopt", {"version": 1})
    monkeypatch.setattr(PostService, "_row", read)
    assert described[0].description == "A cat. Buy our coin"
    assert (code, body.get("error"), body.get("version")) == (409, "stale_version", 2), body
    suggestion = await world.gateway.get("dave", status.id)
    assert (suggestion["state"], suggestion["version"], suggestion["adopted_into"]) == ("suggested", 2, None)
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandman") == []
    code, body = await world.gateway.act("bob", status.id, "adopt", {"version": 2})
    assert code == 201, body
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    assert _published_alt_texts(world, "brandman") == [["A cat. Buy our coin"]]
    result = await _verify(world)
    assert result.code == 0, result.text


@pytest.mark.parametrize("when", ["before the claim", "inside the claim"])
async def test_new_alt_text_landing_between_the_last_approval_and_the_claim(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, when: str,
) -> None:
    """Approved (the one approval of one asked) and due, then new alt text: landing before the
    publisher claims the post, it is a version 2, held again, and nothing goes out until it is
    approved; landing inside the claim (after the claim hashed what the post carries, before it
    committed), it waits for the claim and then finds the post going out (409), and exactly
    what bob approved goes out, once. Either way the log verifies."""
    post_id, media_id = await _approved_with_an_image(world, policy_dir)
    world.gateway.clock.advance(timedelta(minutes=2))
    token = await world.token("alice", "mastoco")

    async def put_alt() -> tuple[int, dict[str, Any]]:
        async with world.gateway.client.put(f"/api/v1/media/{media_id}", data={"description": "A dog"},
                                            headers={"Authorization": f"Bearer {token}"}) as resp:
            return resp.status, await resp.json()

    if when == "before the claim":
        code, body = await put_alt()
        assert (code, body["description"]) == (200, "A dog"), body
        post = await world.gateway.get("alice", post_id)
        assert (post["state"], post["version"]) == ("held", 2), post
        await _out_once_dave_approves(world, post_id)
        assert _published_alt_texts(world, "brandco") == [["A dog"]]
    else:
        hashed = publisher_module.stored_content_sha256
        landing: list[asyncio.Task[tuple[int, dict[str, Any]]]] = []

        async def then_described(*args: Any, **kwargs: Any) -> Any:
            content = await hashed(*args, **kwargs)
            if not landing:
                landing.append(asyncio.create_task(put_alt()))
                # Time enough for the PUT to land, were the claim not holding the post.
                await asyncio.wait(landing, timeout=0.5)
                assert not landing[0].done(), "new alt text landed inside the claim"
            return content

        monkeypatch.setattr(publisher_module, "stored_content_sha256", then_described)
        assert await world.gateway.tick() == 1
        assert landing, "the claim never hashed the post's content"
        code, body = await landing[0]
        assert (code, body) == (409, {"error": "cannot edit a post that is publishing"})
        post = await world.gateway.get("alice", post_id)
        assert (post["state"], post["version"]) == ("published", 1), post
        assert _published_alt_texts(world, "brandco") == [["A cat"]]
        assert (await _media_row(world, media_id))["description"] == "A cat"
    result = await _verify(world)
    assert result.code == 0, result.text
