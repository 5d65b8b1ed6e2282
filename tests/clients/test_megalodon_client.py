"""megalodon (npm), an unmodified Mastodon client library, through Byline as its users drive it:
server detection, the OAuth code flow, media with alt text set and changed, scheduled posts
paged through, editing through ``/source``, deleting; with exact checks of what reaches the
Mastodon instance behind the account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.clients.node_client import Megalodon
from tests.clients.revisions import turned
from tests.clients.signin import sign_in
from tests.clients.test_media_update import _verify
from tests.clients.world import World
from tests.images import PNG

# A 1×1 PNG's signature and header chunk: enough for the type to be told from the bytes.


def _links(header: str) -> dict[str, str]:
    """``Link`` as Mastodon sends it: rel name → URL."""
    found = {}
    for part in header.split(","):
        url, _, rel = part.partition(";")
        found[rel.strip().removeprefix('rel="').removesuffix('"')] = url.strip().strip("<>")
    return found


async def _signed_in(world: World, client: Megalodon, *, account: str, user: str) -> None:
    """megalodon's own OAuth code flow: register, a person signs in on the page, code for token."""
    app = await client.ok("app", "Byline megalodon test", {"scopes": ["read", "write"]})
    assert app["url"].startswith(f"{world.base}/oauth/authorize?"), app["url"]
    code = await sign_in(app["url"], token=world.gateway.tokens[user], account=account)
    token = await client.ok("token", app["client_id"], app["client_secret"], code)
    assert token["access_token"].startswith("byl_")
    await client.ok("use", token["access_token"])


async def test_megalodon_detects_byline_as_mastodon(world: World) -> None:
    """megalodon tells what kind of server it talks to from NodeInfo before anything else."""
    async with Megalodon(world.base) as client:
        assert await client.ok("detector") == "mastodon"


async def test_megalodon_posts_media_with_alt_text_changed_after_upload(world: World, tmp_path: Path) -> None:
    """An upload sent as bare bytes (no content type), its alt text changed with PUT, then posted:
    the instance gets a PNG with the new description, once; deleting removes it there."""
    picture = tmp_path / "picture.bin"
    picture.write_bytes(PNG)
    async with Megalodon(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        media = await client.ok("media", str(picture), {"description": "A square"})
        assert (media["type"], media["description"]) == ("image", "A square")
        changed = await client.ok("updateMedia", media["id"], {"description": "A red square on white"})
        assert changed["description"] == "A red square on white"
        status = await client.ok("postStatus", "A picture", {"media_ids": [media["id"]]})
        assert status["media_attachments"][0]["description"] == "A red square on white"
        await world.gateway.tick()
        [sent] = world.upstream.statuses(world.upstream_account)
        assert sent.text == "A picture"
        [uploaded] = [world.upstream.media[m] for m in sent.media_ids]
        assert (uploaded.mime_type, uploaded.description, uploaded.size) == (
            "image/png", "A red square on white", len(PNG))
        await client.ok("deleteStatus", status["id"])
        assert world.upstream.statuses(world.upstream_account) == []
        assert [s.text for s in world.upstream.statuses(world.upstream_account, include_deleted=True)] == [
            "A picture"]


async def test_megalodon_pages_scheduled_posts_and_edits_one_through_its_source(world: World) -> None:
    """Five scheduled posts read two at a time by following ``Link``; one edited as a client
    edits (``/source``, then PUT), one cancelled; nothing reaches the instance before its time."""
    # megalodon schedules only what is more than five minutes off by the machine's clock, and
    # Byline by its own: an hour past the later of the two.
    start = max(world.gateway.clock.now(), datetime.now(UTC))
    async with Megalodon(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        made = []
        for n in range(5):
            when = (start + timedelta(hours=1, minutes=n)).isoformat()
            scheduled = await client.ok("postStatus", f"Later {n}", {"scheduled_at": when})
            assert scheduled["params"]["text"] == f"Later {n}"
            made.append(scheduled["id"])
        seen: list[str] = []
        query: dict[str, object] = {"limit": 2}
        pages = 0
        while True:
            page = await client.call("getScheduledStatuses", query)
            assert page.ok, page
            seen += [s["id"] for s in page.data]
            pages += 1
            nexts = _links(page.headers.get("link", "")).get("next") if page.headers.get("link") else None
            if not page.data or nexts is None:
                break
            query = {"limit": 2, "max_id": parse_qs(urlsplit(nexts).query)["max_id"][0]}
        assert seen == list(reversed(made)), "newest first, every one once"
        assert pages >= 3

        source = await client.ok("getStatusSource", made[2])
        assert (source["id"], source["text"]) == (made[2], "Later 2")
        edited = await client.ok("editStatus", made[2], {"status": source["text"] + ", edited"})
        assert edited["content"].startswith("<p>Later 2, edited") or "Later 2, edited" in edited["content"]
        again = await client.ok("getScheduledStatus", made[2])
        assert again["params"]["text"] == "Later 2, edited"

        await client.ok("cancelScheduledStatus", made[0])
        left = await client.ok("getScheduledStatuses", {"limit": 40})
        assert [s["id"] for s in left] == list(reversed(made[1:]))
    assert world.upstream.statuses(world.upstream_account) == []


async def test_megalodon_edit_with_media_attributes_changes_the_alt_text_once(world: World, tmp_path: Path) -> None:
    """A scheduled post's picture given new alt text and a focal point by an edit sent as
    megalodon sends an edit (its own HTTP client, JSON, as its ``editStatus`` does): one new
    version, and that is what reaches the instance; an edit naming another status's picture is
    422 and changes nothing. Before, the edit got 200 and the alt text stayed as it was."""
    picture = tmp_path / "picture.bin"
    picture.write_bytes(PNG)
    # megalodon schedules only what is more than five minutes off by the machine's clock.
    due = max(world.gateway.clock.now(), datetime.now(UTC)) + timedelta(hours=1)
    when = due.isoformat()
    async with Megalodon(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        media = await client.ok("media", str(picture), {"description": "A square"})
        other = await client.ok("media", str(picture), {"description": "Another square"})
        status = await client.ok("postStatus", "A picture", {"media_ids": [media["id"]], "scheduled_at": when})
        await client.ok("postStatus", "Another picture", {"media_ids": [other["id"]], "scheduled_at": when})
        path = f"/api/v1/statuses/{status['id']}"
        refused = await client.call("put", path, {"status": "A picture", "media_attributes": [
            {"id": other["id"], "description": "Changed from elsewhere"}]})
        assert (refused.ok, refused.status, refused.data["error"]) == (
            False, 422, f"Validation failed: Media {other['id']} is not attached to this status")
        edited = await client.ok("put", path, {"status": "A picture", "media_attributes": [
            {"id": media["id"], "description": "A red square on white", "focus": "0.25,-0.75"}]})
        assert [(m["description"], m["meta"]["focus"]) for m in edited["media_attachments"]] == [
            ("A red square on white", {"x": 0.25, "y": -0.75})]
        pending = await client.ok("getScheduledStatuses", {"limit": 40})
        assert sorted(m["description"] for s in pending for m in s["media_attachments"]) == [
            "A red square on white", "Another square"]
        post = await world.gateway.get("alice", status["id"])
        assert post["version"] == 2
    world.gateway.clock.advance(due - world.gateway.clock.now() + timedelta(minutes=1))
    await world.gateway.tick()
    sent = {s.text: [world.upstream.media[m] for m in s.media_ids]
            for s in world.upstream.statuses(world.upstream_account)}
    assert [(m.description, m.focus) for m in sent["A picture"]] == [("A red square on white", (0.25, -0.75))]
    assert [m.description for m in sent["Another picture"]] == ["Another square"]
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_megalodon_edit_held_for_cosigners_answers_with_the_status_it_edited(
    world: World, policy_dir: Path,
) -> None:
    """megalodon edits a published status of a co-signed account: the status it gets back is the
    one it edited, as an app puts it in place of the one it shows (before: the pending edit's,
    with another id, which an app would show as a second status), with the words the platform
    shows until two co-signers approve the edit."""
    async with Megalodon(world.base) as client:
        await _signed_in(world, client, account="masto", user="alice")
        first = await client.ok("postStatus", "Choir at 6", {})
        await world.gateway.tick()
        await turned(world, policy_dir, "co-signed")
        edited = await client.ok("editStatus", first["id"], {"status": "Choir at 7"})
        assert (edited["id"], edited["content"]) == (first["id"], "<p>Choir at 6</p>")
    [sent] = world.upstream.statuses(world.upstream_account)
    assert (sent.text, sent.edits) == ("Choir at 6", [])


async def _choir_published_then_cosigned(
    world: World, client: Megalodon, policy_dir: Path, tmp_path: Path,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """alice, signed in to megalodon, publishes "Choir at 6" with a picture ("A square") on
    ``masto`` while it is direct; the account turns co-signed. The upload and the status."""
    picture = tmp_path / "picture.bin"
    picture.write_bytes(PNG)
    await _signed_in(world, client, account="masto", user="alice")
    media = await client.ok("media", str(picture), {"description": "A square"})
    first = await client.ok("postStatus", "Choir at 6", {"media_ids": [media["id"]]})
    await world.gateway.tick()
    await turned(world, policy_dir, "co-signed")
    return media, first


async def test_megalodon_deletes_and_redrafts_a_picture_whose_edit_waits(
    world: World, policy_dir: Path, tmp_path: Path,
) -> None:
    """megalodon's delete and redraft of a published status with a picture, whose edit waits for
    co-signers: the delete takes the status off the instance and cancels the edit; the status
    written again from it with the same picture (its media id, as Mastodon frees a deleted
    status's media for its redraft) is held for the co-signers, and goes out with the picture
    once they approve; carol cannot take alice's picture. Before, the redraft was refused (422,
    the upload "already attached to another post") and the app lost the picture."""
    gw = world.gateway
    async with Megalodon(world.base) as client:
        media, first = await _choir_published_then_cosigned(world, client, policy_dir, tmp_path)
        await client.ok("editStatus", first["id"], {"status": "Choir at 7"})
        gone = await client.ok("deleteStatus", first["id"])
        assert [m["id"] for m in gone["media_attachments"]] == [media["id"]]
        assert world.upstream.statuses(world.upstream_account) == []
        async with Megalodon(world.base) as other:
            await _signed_in(world, other, account="masto", user="carol")
            taken = await other.call("postStatus", "Not hers", {"media_ids": [media["id"]]})
            assert (taken.ok, taken.status) == (False, 422), taken
        again = await client.ok("postStatus", "Choir at 7", {"media_ids": [m["id"] for m in gone["media_attachments"]]})
        assert [m["description"] for m in again["media_attachments"]] == ["A square"]
    code, cancelled = await gw.call("alice", "GET", "/v1/posts?account=masto&state=cancelled")
    assert code == 200, cancelled
    assert [p["revises"] for p in cancelled["posts"]] == [first["id"]]
    redrafted = await gw.get("alice", again["id"])
    assert (redrafted["state"], redrafted["approvals_needed"]) == ("held", 2)
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, again["id"], "approve")
        assert code == 200, body
    await gw.tick()
    [sent] = world.upstream.statuses(world.upstream_account)
    assert (sent.text, [world.upstream.media[m].description for m in sent.media_ids]) == (
        "Choir at 7\n\n—alice", ["A square"])
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_megalodon_held_edit_with_new_alt_text_goes_out_once_approved(
    world: World, policy_dir: Path, tmp_path: Path,
) -> None:
    """An edit of a published status's words and its picture's alt text, sent as megalodon
    sends an edit (its own HTTP client, JSON), on an account turned co-signed: held, alt text
    with words (before: 422, "edit the words alone"); the instance keeps the published ones until
    two co-signers approve, then takes both in one edit."""
    gw = world.gateway
    async with Megalodon(world.base) as client:
        media, first = await _choir_published_then_cosigned(world, client, policy_dir, tmp_path)
        change = [{"id": media["id"], "description": "The choir's poster"}]
        edited = await client.ok("put", f"/api/v1/statuses/{first['id']}",
                                 {"status": "Choir at 7", "media_attributes": change})
    assert (edited["id"], [m["description"] for m in edited["media_attachments"]]) == (first["id"], ["A square"])
    held = edited["byline"]["pending_revision"]
    [sent] = world.upstream.statuses(world.upstream_account)
    assert (sent.edits, [world.upstream.media[m].description for m in sent.media_ids]) == ([], ["A square"])
    for approver in ("bob", "dave"):
        code, body = await gw.act(approver, held["id"], "approve")
        assert code == 200, body
    await gw.tick()
    assert (sent.edits, [world.upstream.media[m].description for m in sent.media_ids]) == (
        ["Choir at 7\n\n—alice"], ["The choir's poster"])
    result = await _verify(world)
    assert result.code == 0, result.text
