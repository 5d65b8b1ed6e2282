"""Media through the Mastodon API, both databases: one upload belongs to one post, and what the
instance would refuse is refused when it is uploaded."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
from mastodon import MastodonAPIError

from adapters.base import AdapterError
from adapters.mastodon import MastodonAdapter
from gateway.appkeys import DB, HOUSEKEEPER
from tests.clients.test_media_update import _verify
from tests.clients.world import World
from tests.images import PNG, png_of, png_sized


async def _stored(world: World) -> tuple[int, list[str]]:
    """How many posts are stored, and the types of the log's entries, oldest first."""
    async with world.gateway.app[DB].read() as txn:
        posts = await txn.fetchone("SELECT count(*) AS n FROM posts")
        entries = await txn.fetchall("SELECT type FROM log_entries ORDER BY idx")
    assert posts is not None
    return int(posts["n"]), [e["type"] for e in entries]


async def test_three_statuses_racing_for_one_upload(world: World) -> None:
    """Three statuses name one upload at once: one takes it, two get 422 naming it and store nothing."""
    owner = await world.client("alice", "masto")
    for round_ in range(3):
        media = await world.run(owner.media_post, png_of(3, 2, round_), mime_type="image/png")
        posts_before, log_before = await _stored(world)
        apps = [await world.client("alice", "masto") for _ in range(3)]
        results: list[Any] = await asyncio.gather(
            *(world.run(app.status_post, f"Round {round_}, app {n}", media_ids=[media])
              for n, app in enumerate(apps)),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(won) == 1, f"round {round_}: {len(won)} statuses took upload {media.id}"
        assert [m.id for m in won[0].media_attachments] == [media.id]
        for refused in lost:
            assert isinstance(refused, MastodonAPIError)
            assert refused.args[1:4:2] == (
                422, f"Validation failed: Media {media.id} not found or already attached to another post")
        posts_after, log_after = await _stored(world)
        assert posts_after == posts_before + 1
        assert log_after[len(log_before):] == ["post.submitted"]
    await world.gateway.tick()
    published = world.upstream.statuses(world.upstream_account)
    assert [len(s.media_ids) for s in published] == [1, 1, 1]


async def test_a_deleted_statuses_picture_goes_to_one_redraft(world: World) -> None:
    """Mastodon.py's delete and redraft, twice at once, of a status not out yet and of one
    published: the delete's answer gives the words and the picture; one redraft takes the
    picture (as Mastodon frees a deleted status's media for its redraft), the other gets 422
    and stores nothing; the status deleted keeps the picture in its record. A picture of a status
    still there stays its own. Before, every redraft got 422 and the picture was lost."""
    api = await world.client("alice", "masto")
    for out in (False, True):
        media = await world.run(api.media_post, PNG + bytes([out]), mime_type="image/png", description="A dot")
        first = await world.run(api.status_post, "A dot", media_ids=[media])
        if out:
            await world.gateway.tick()
        still = await world.run(api.status_post, "Another dot", media_ids=[
            await world.run(api.media_post, PNG + b"x" + bytes([out]), mime_type="image/png")])
        with pytest.raises(MastodonAPIError) as caught:
            await world.run(api.status_post, "Not yours", media_ids=[still.media_attachments[0].id])
        assert caught.value.args[1] == 422
        gone = await world.run(api.status_delete, first.id)
        assert (gone.text, [m.id for m in gone.media_attachments]) == ("A dot", [media.id])
        posts_before, log_before = await _stored(world)
        results: list[Any] = await asyncio.gather(
            *(world.run(app.status_post, gone.text, media_ids=[m.id for m in gone.media_attachments])
              for app in [await world.client("alice", "masto") for _ in range(2)]),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        assert len(won) == 1, results
        assert [(m.id, m.description) for m in won[0].media_attachments] == [(media.id, "A dot")]
        [lost] = [r for r in results if isinstance(r, BaseException)]
        assert isinstance(lost, MastodonAPIError) and lost.args[1] == 422, lost
        assert await _stored(world) == (posts_before + 1, [*log_before, "post.submitted"])
        kept = await world.gateway.get("alice", first.id)
        assert (kept["state"], kept["options"]["media_ids"]) == ("deleted" if out else "cancelled", [str(media.id)])
    await world.gateway.tick()
    assert sorted((s.text, len(s.media_ids)) for s in world.upstream.statuses(world.upstream_account)) == [
        ("A dot", 1), ("A dot", 1), ("Another dot", 1), ("Another dot", 1)]


async def test_a_deleted_statuses_picture_is_described_anew_before_its_redraft(world: World) -> None:
    """Delete and redraft as Mastodon's web app does it, of a status not out yet and of one
    published: the freed picture is given new alt text (``PUT /api/v1/media/:id``), and the
    redraft goes out with it; carol, who writes for the account too, gets 404 for it and changes
    nothing; the status deleted keeps the alt text it had in its record, and the log still
    verifies. Before, the uploader's own PUT got 404 and the redraft went out with the old alt text."""
    api, carol = await world.client("alice", "masto"), await world.client("carol", "masto")
    for out in (False, True):
        media = await world.run(api.media_post, PNG + bytes([out]), mime_type="image/png", description="A dot")
        first = await world.run(api.status_post, "A dot", media_ids=[media])
        if out:
            await world.gateway.tick()
        gone = await world.run(api.status_delete, first.id)
        before = await _stored(world)
        with pytest.raises(MastodonAPIError) as caught:
            await world.run(carol.media_update, media, description="Mine now")
        assert caught.value.args[1:4:2] == (404, "Record not found")
        described = await world.run(api.media_update, media, description=f"A black dot, {out}")
        assert (described.id, described.description) == (media.id, f"A black dot, {out}")
        assert await _stored(world) == before, "an upload no post holds is described without a post or log entry"
        redraft = await world.run(api.status_post, gone.text, media_ids=[m.id for m in gone.media_attachments])
        assert [(m.id, m.description) for m in redraft.media_attachments] == [(media.id, f"A black dot, {out}")]
        async with world.gateway.app[DB].read() as txn:
            versions = await txn.fetchall("SELECT media FROM post_versions WHERE post_id = ?", first.id)
        assert [[m["description"] for m in json.loads(v["media"])] for v in versions] == [["A dot"]]
        with pytest.raises(MastodonAPIError) as taken:
            await world.run(carol.media_update, media, description="Mine now")
        assert taken.value.args[1] == 404
    await world.gateway.tick()
    published = world.upstream.statuses(world.upstream_account)
    assert sorted(world.upstream.media[m].description or "" for s in published for m in s.media_ids) == [
        "A black dot, False", "A black dot, True"]
    assert len(published) == 2, "the two redrafts (the status deleted once out is gone there)"
    result = await _verify(world)
    assert result.code == 0, result.text


async def test_a_failed_attach_leaves_no_post_behind(world: World) -> None:
    """If attaching the upload fails, the status is not stored either, so no held post is left
    waiting for an upload that housekeeping will delete."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png")
    posts_before, log_before = await _stored(world)
    async with world.gateway.app[DB].write() as txn:
        # Every change to an upload fails from here on, as a crash between two steps would.
        if txn.dialect == "postgresql":
            await txn.execute("CREATE FUNCTION refuse_media() RETURNS trigger AS $$ "
                              "BEGIN RAISE EXCEPTION 'media store unavailable'; END $$ LANGUAGE plpgsql")
            await txn.execute("CREATE TRIGGER refuse_media BEFORE UPDATE ON media "
                              "FOR EACH ROW EXECUTE FUNCTION refuse_media()")
        else:
            await txn.execute("CREATE TRIGGER refuse_media BEFORE UPDATE ON media "
                              "BEGIN SELECT RAISE(ABORT, 'media store unavailable'); END")
    try:
        await world.run(api.status_post, "With a picture", media_ids=[media])
    except MastodonAPIError as exc:
        assert exc.args[1] == 500
    async with world.gateway.app[DB].write() as txn:
        await txn.execute("DROP TRIGGER refuse_media" + (" ON media" if txn.dialect == "postgresql" else ""))
    assert await _stored(world) == (posts_before, log_before)
    status = await world.run(api.status_post, "With a picture, again", media_ids=[media])
    assert [m.id for m in status.media_attachments] == [media.id]
    assert (await world.gateway.app[HOUSEKEEPER].sweep()).media == 0


async def test_an_edit_and_a_status_racing_for_one_upload(world: World) -> None:
    """An edit adding an upload and a new status naming it, at once: only one of them gets it."""
    api = await world.client("alice", "masto")
    pending = await world.run(api.status_post, "A draft")
    edits_won = statuses_won = 0
    for round_ in range(3):
        media = await world.run(api.media_post, png_of(3, 2, round_), mime_type="image/png")
        editor, poster = await world.client("alice", "masto"), await world.client("alice", "masto")
        results: list[Any] = await asyncio.gather(
            world.run(editor.status_update, pending.id, f"A draft, round {round_}", media_ids=[media]),
            world.run(poster.status_post, f"A new status, round {round_}", media_ids=[media]),
            return_exceptions=True,
        )
        lost = [r for r in results if isinstance(r, BaseException)]
        assert len(lost) == 1, f"round {round_}: {2 - len(lost)} posts took upload {media.id}"
        assert isinstance(lost[0], MastodonAPIError)
        assert lost[0].args[1:4:2] == (
            422, f"Validation failed: Media {media.id} not found or already attached to another post")
        edits_won += not isinstance(results[0], BaseException)
        statuses_won += not isinstance(results[1], BaseException)
    await world.gateway.tick()
    published = world.upstream.statuses(world.upstream_account)
    # Each new status that won goes out with its upload; the draft with the last upload an edit
    # gave it (an edit names the draft's uploads anew, so an earlier round's is let go).
    assert sorted(len(s.media_ids) for s in published) == sorted([1] * statuses_won + [1 if edits_won else 0])


async def test_an_image_mastodon_would_refuse_is_refused_at_upload(world: World) -> None:
    """Mastodon takes images smaller than 16 MB: one of exactly 16 MB is refused when the app
    uploads it, not when its post is published."""
    api = await world.client("alice", "masto")
    limit = 16 * 1024 * 1024
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, png_sized(limit), mime_type="image/png")
    assert caught.value.args[1:4:2] == (422, f"Validation failed: File file size must be at most {limit - 1} bytes")
    largest = await world.run(api.media_post, png_sized(limit - 1), mime_type="image/png")
    await world.run(api.status_post, "The largest picture", media_ids=[largest])
    await world.gateway.tick()
    [published] = world.upstream.statuses(world.upstream_account)
    assert world.upstream.media[published.media_ids[0]].size == limit - 1


async def test_a_file_the_instance_cannot_process_fails_its_post_with_the_reason(world: World) -> None:
    """When the instance cannot process an upload, the post fails at once, saying so, instead of
    retrying the same bytes."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png")
    status = await world.run(api.status_post, "With a picture", media_ids=[media])
    world.upstream.media_processing_failures = 1
    await world.gateway.tick()
    failed = await world.gateway.get("alice", str(status.id))
    assert (failed["state"], failed["attempts"]) == ("failed", 1)
    assert f"could not process the upload (image/png, {len(PNG)} bytes)" in failed["last_error"]
    assert world.upstream.statuses(world.upstream_account) == []


async def test_a_platform_answer_quoting_a_post_that_failed_stays_off_the_public_log(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A platform's refusal may quote the post back. The post never went out, so its words
    stay private: the public entries say what kind of failure it was and the status, the post's
    people read the platform's whole answer as its last error. Before, the answer was in the
    public ``post.failed`` entry."""
    quoted = "Validation failed: 'Acme merger closes Friday' is not allowed here"

    async def refused(self: MastodonAdapter, post: Any) -> Any:
        raise AdapterError(f"POST /api/v1/statuses answered 422: {quoted}", retryable=False, status=422,
                           detail=quoted)

    monkeypatch.setattr(MastodonAdapter, "publish", refused)
    api = await world.client("alice", "masto")
    status = await world.run(api.status_post, "Acme merger closes Friday")
    await world.gateway.tick()
    failed = await world.gateway.get("alice", str(status.id))
    assert failed["state"] == "failed"
    assert quoted in failed["last_error"]
    size = await world.gateway.log_size()
    code, body = await world.gateway.call(None, "GET", f"/log/entries?start=0&end={size}")
    assert code == 200
    entries = [json.loads(base64.b64decode(e["leaf"])) for e in body["entries"]]
    [entry] = [e for e in entries if e["type"] == "post.failed"]
    assert entry["data"]["error"] == "the platform refused the post (HTTP 422)"
    assert b"Acme" not in b"".join(base64.b64decode(e["leaf"]) for e in body["entries"])


async def test_an_upload_form_of_thousands_of_empty_fields_is_refused_at_once(world: World) -> None:
    """A form of a thousand empty fields around one picture (a few megabytes of them held the
    event loop for tens of seconds, a turn of the reader each): 422 once past 16 fields, nothing
    kept; a form with a few fields Byline does not know is still taken."""
    token = await world.token("alice", "masto")

    async def upload(fields: int) -> tuple[int, Any]:
        boundary = "byline-many-7f3a"
        body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="x{i}"\r\n\r\n\r\n'.encode()
                        for i in range(fields))
        body += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="\u202egnp.exe"\r\n'
                 "Content-Type: image/png\r\n\r\n").encode() + PNG + f"\r\n--{boundary}--\r\n".encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"}
        async with world.gateway.client.post("/api/v2/media", data=body, headers=headers) as resp:
            return resp.status, json.loads(await resp.text())

    assert await upload(1000) == (422, {"error": "Validation failed: an upload's form has at most 16 fields"})
    async with world.gateway.app[DB].read() as txn:
        assert await txn.fetchall("SELECT id FROM media") == []
    status, taken = await upload(3)
    assert (status, taken["type"]) == (200, "image"), taken
