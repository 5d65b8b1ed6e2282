"""What a post carries besides its words stays as private as its words until it goes out.

The log is public (its entries over ``/log/entries`` and as tlog tiles, for anyone). A post
that never went out shows there that it existed and who acted on it, but not its words (a
salted hash): nor its content warning or its pictures' alt texts, which are kept beside each
version in the database, and its ``content_sha256`` is salted with a salt of the post's that
the log never holds, so a guess of a draft's picture or alt text cannot be checked against it.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from gateway.appkeys import APPENDER, DB
from gateway.audit.appender import LogTxn
from gateway.services.content import content_sha256
from gateway.storage import media as media_sql
from gateway.storage import posts as sql
from gateway.types import AccountName, Micros, PostId, UserName
from tests.clients.test_media_update import PNG, _cosigned_on_mastodon
from tests.clients.world import World

SECRETS = ("Warning one, never sent", "Warning two, never sent", "A cat, never sent", "A dog, never sent")


async def _public_entries(world: World) -> list[bytes]:
    """Every entry of the log as anyone reads it, without a token: over the log API and as the
    entry bundle of the tiles (the two must agree)."""
    size = await world.gateway.log_size()
    assert size < 256  # one partial tile holds them all
    async with world.gateway.client.get(f"/log/entries?start=0&end={size}") as resp:
        assert resp.status == 200
        listed = [base64.b64decode(e["leaf"]) for e in (await resp.json())["entries"]]
    async with world.gateway.client.get(f"/log/tile/entries/000.p/{size}") as resp:
        assert resp.status == 200
        bundle = await resp.read()
    tiled: list[bytes] = []
    while bundle:
        length = int.from_bytes(bundle[:2], "big")
        tiled.append(bundle[2 : 2 + length])
        bundle = bundle[2 + length :]
    assert tiled == listed
    return listed


async def _held_and_changed(world: World, policy_dir: Path) -> tuple[Any, Any, Any]:
    """Alice's app, and her held post with a picture: its content warning changed by an edit
    (version 2), its picture's alt text by another (version 3)."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description=SECRETS[2])
    status = await world.run(api.status_post, "Our mascot", media_ids=[media], spoiler_text=SECRETS[0])
    assert status.byline.state == "held"
    await world.run(api.status_update, status.id, "Our mascot", spoiler_text=SECRETS[1], media_ids=[media.id])
    await world.run(api.media_update, media, description=SECRETS[3])
    return api, status, media


async def test_history_shows_each_version_with_the_warning_and_alt_text_it_had(
    world: World, policy_dir: Path,
) -> None:
    """/history answers from what is kept beside each version: each one's content warning, and
    its picture with the alt text it had then (not the one it has now)."""
    api, status, _ = await _held_and_changed(world, policy_dir)
    history = await world.run(api.status_history, status.id)
    assert [(h.byline.version, h.spoiler_text, [m.description for m in h.media_attachments]) for h in history] == [
        (1, SECRETS[0], [SECRETS[2]]), (2, SECRETS[1], [SECRETS[2]]), (3, SECRETS[1], [SECRETS[3]]),
    ]


async def test_a_cancelled_drafts_warning_and_alt_text_are_not_in_the_public_log(
    world: World, policy_dir: Path,
) -> None:
    """The held post's warnings and alt texts, then cancelled: no entry the public reads holds
    any of them, and its content hashes do not confirm the right guess of them."""
    api, status, media = await _held_and_changed(world, policy_dir)
    await world.run(api.status_delete, status.id)  # held: cancelled, never out
    assert (await world.gateway.get("alice", status.id))["state"] == "cancelled"

    entries = await _public_entries(world)
    for secret in SECRETS:
        assert not [e for e in entries if secret.encode() in e], secret
    mine = [json.loads(e) for e in entries if json.loads(e).get("post") == status.id]
    assert [e["type"] for e in mine] == ["post.submitted", "post.edited", "post.edited", "post.cancelled"]
    assert not [e for e in mine if "options" in e["data"]]

    # The right guess of each version's content, hashed as the log hashed content before it had
    # a salt, matches none of the hashes the log records; with the post's salt, they are its own.
    async with world.gateway.app[DB].read() as txn:
        [upload] = await media_sql.info(txn, [media.id])
        record = await sql.get_post(txn, status.id)
    assert record is not None and record.content_salt is not None and len(record.content_salt) == 32
    guessed = [({"media_ids": [media.id], "spoiler_text": w}, dict(upload, description=alt))
               for w, alt in ((SECRETS[0], SECRETS[2]), (SECRETS[1], SECRETS[2]), (SECRETS[1], SECRETS[3]))]
    logged = [e["data"]["content_sha256"] for e in mine[:3]]
    assert [content_sha256(o, [u]) for o, u in guessed] != logged
    assert not {content_sha256(o, [u]) for o, u in guessed} & set(logged)
    assert [content_sha256(o, [u], salt=record.content_salt) for o, u in guessed] == logged


async def test_a_version_kept_before_options_were_reads_them_from_the_log(world: World) -> None:
    """A post whose versions were recorded by an earlier Byline (no options kept beside them; its
    log entries carry them in plain, and stay so): /history shows each version's warning from
    the log, and the warning of a version whose edit changed none is the one before."""
    post_id = "7000000000000000001"
    rows = (("First", {"spoiler_text": "then"}), ("Second", None), ("Third", {"spoiler_text": "now"}))

    async def earlier_byline(ltx: LogTxn) -> None:
        await sql.insert_post(ltx.txn, sql.PostRecord(
            id=PostId(post_id), account=AccountName("cosigned"), author=UserName("carol"), state="held",
            version=3, text="Third", options={"spoiler_text": "now"}, approvers=(UserName("bob"),), required=1,
            created_at=Micros(ltx.now), updated_at=Micros(ltx.now),
        ))
        for version, (text, options) in enumerate(rows, 1):
            await ltx.txn.execute("INSERT INTO post_versions (post_id, version, text, editor, created_at) "
                                  "VALUES (?, ?, ?, 'carol', ?)", post_id, version, text, ltx.now)
            data: dict[str, Any] = {"version": version, "state": "held"}
            if options is not None:
                data["options"] = options
            await ltx.append("post.submitted" if version == 1 else "post.edited", actor="carol",
                             account="cosigned", post=post_id, data=data)

    await world.gateway.app[APPENDER].submit(earlier_byline)
    carol = await world.client("carol", "cosigned")
    history = await world.run(carol.status_history, post_id)
    assert [(h.byline.version, h.spoiler_text) for h in history] == [(1, "then"), (2, "then"), (3, "now")]
