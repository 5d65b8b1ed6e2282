"""Posts with embeds (images with alt text, link cards, quotes), made with the real ``atproto``
SDK through Byline's XRPC surface, landing on a real PDS exactly as the SDK built them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import libipld
import pytest
from atproto import models
from atproto_client.exceptions import BadRequestError

from adapters.bluesky import rkey_for
from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_client import (
    POST,
    Sdk,
    app_password,
    clock,
    post_for,
    run,
    sdk,
    session,
    xrpc,
)
from tests.conftest import Gateway, started_gateway, write_policy
from tests.pages.conftest import pages_on
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clock", "sdk"]  # the fixtures, shared with the SDK's tests

IMAGE = "app.bsky.embed.images#image"
RATIO = "app.bsky.embed.defs#aspectRatio"
STRONG_REF = "com.atproto.repo.strongRef"

# The SDK (atproto 0.0.73) uploads a blob with httpx's old ``data=<bytes>``; the warning is its own.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")






def png(width: int, height: int, seed: str) -> bytes:
    """A real PNG (grey pixels), different for each seed, as a phone would upload."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # Each pixel's shade from the seed's digest: one shade for the whole image gave 256 images
    # in all, and a test's random seed then drew another test's "never uploaded" one in 256.
    shades = hashlib.sha256(seed.encode()).digest()
    rows = b"".join(b"\x00" + bytes(shades[(y * width + x) % len(shades)] for x in range(width))
                    for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def blob_cid(data: bytes) -> str:
    """A blob's CID as the AT Protocol defines it (CIDv1, raw, SHA-256), worked out here."""
    return libipld.encode_cid(bytes((0x01, 0x55, 0x12, 0x20)) + hashlib.sha256(data).digest())


def blob_json(data: bytes, mime_type: str = "image/png") -> dict[str, Any]:
    """A blob as a record on the PDS holds it."""
    return {"$type": "blob", "ref": {"$link": blob_cid(data)}, "mimeType": mime_type, "size": len(data)}


def held_upload(did: str, data: bytes) -> list[Path]:
    """The test PDS's temporary files (an upload no record uses yet) holding ``data``."""
    return [f for f in Path(tempfile.gettempdir()).glob(f"byline-pds-*/blobs/tempt/{did}/*") if f.read_bytes() == data]


async def pds_get(pds: BlueskyPds, nsid: str, **params: str) -> tuple[int, bytes]:
    """A GET straight to the PDS, not through Byline."""
    async with aiohttp.ClientSession() as http, http.get(f"{pds.pds_url}/xrpc/{nsid}", params=params) as resp:
        return resp.status, await resp.read()


async def pds_record(pds: BlueskyPds, uri: str) -> dict[str, Any] | None:
    """The record at ``uri`` on the PDS, or None."""
    repo, collection, rkey = uri.removeprefix("at://").split("/")
    status, body = await pds_get(pds, "com.atproto.repo.getRecord", repo=repo, collection=collection, rkey=rkey)
    if status == 400:
        return None
    assert status == 200, body
    return dict(json.loads(body))


@pytest.fixture
async def sky(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    """A gateway with ``sky`` (direct, on carol.test) and ``skyheld`` (co-signed by bob, on
    bob.test): one platform account has one policy."""
    held = "tier: co-signed\napprovals:\n  required: 1\n  from: [bob]"
    for name, handle, tier in (("sky", "carol.test", "tier: direct"), ("skyheld", "bob.test", held)):
        account = bluesky_pds.account(handle)
        env = f"{handle.split('.')[0].upper()}_BSKY_APP_PASSWORD"
        monkeypatch.setenv(env, account.app_password)
        write_policy(policy_dir, name, f"account: {name}\nplatform: bluesky\nhandle: {account.handle}\n"
                                       f"pds: {bluesky_pds.pds_url}\ncredentials: env:{env}\n"
                                       f"owner: alice\n{tier}\n")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        yield gw


async def test_images_link_card_and_quote_land_exactly_as_built(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk,
) -> None:
    """Images with alt text and aspect ratios, a link card with a thumb, a quote and a quote with an
    image: each record on the PDS is the SDK's, its CID the one answered, its blobs served."""
    account = bluesky_pds.account("carol.test")
    client = await sdk.login(sky, "alice", "sky", account.handle)
    tag = secrets.token_hex(4)
    first, second = png(3, 2, f"a{tag}"), png(2, 4, f"b{tag}")
    sent = await run(
        client.send_images, f"Two pictures ({tag})", images=[first, second],
        image_alts=["A grey field, three by two", ""],
        image_aspect_ratios=[models.AppBskyEmbedDefs.AspectRatio(width=3, height=2),
                             models.AppBskyEmbedDefs.AspectRatio(width=2, height=4)],
    )
    post = await post_for(sky, "alice", "sky", sent.uri)
    assert (post["state"], sent.uri) == ("scheduled", f"at://{account.did}/{POST}/{rkey_for(post['id'])}")
    await sky.tick()
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None
    assert landed["cid"] == sent.cid
    assert landed["value"]["embed"] == {
        "$type": "app.bsky.embed.images",
        "images": [
            {"$type": IMAGE, "alt": "A grey field, three by two", "image": blob_json(first),
             "aspectRatio": {"$type": RATIO, "width": 3, "height": 2}},
            {"$type": IMAGE, "alt": "", "image": blob_json(second),
             "aspectRatio": {"$type": RATIO, "width": 2, "height": 4}},
        ],
    }
    for data in (first, second):
        served = await pds_get(bluesky_pds, "com.atproto.sync.getBlob", did=account.did, cid=blob_cid(data))
        assert served == (200, data)

    # A post the SDK builds whole, self-labelled: its labels go out as given, not as Byline's own.
    nude = png(2, 2, f"n{tag}")
    nude_blob = (await run(client.upload_blob, nude)).blob
    labelled = await run(client.app.bsky.feed.post.create, account.did, models.AppBskyFeedPost.Record(
        text="Life drawing", created_at=client.get_current_time_iso(),
        embed=models.AppBskyEmbedImages.Main(images=[models.AppBskyEmbedImages.Image(alt="A figure", image=nude_blob)]),
        labels=models.ComAtprotoLabelDefs.SelfLabels(values=[models.ComAtprotoLabelDefs.SelfLabel(val="nudity")]),
    ))
    await sky.tick()
    landed = await pds_record(bluesky_pds, labelled.uri)
    assert landed is not None
    assert (landed["cid"], landed["value"]["labels"], landed["value"]["embed"]["images"][0]["image"]) == (
        labelled.cid,
        {"$type": "com.atproto.label.defs#selfLabels",
         "values": [{"$type": "com.atproto.label.defs#selfLabel", "val": "nudity"}]},
        blob_json(nude),
    )

    thumb = png(4, 4, f"t{tag}")
    uploaded = await run(client.upload_blob, thumb)
    card = models.AppBskyEmbedExternal.Main(external=models.AppBskyEmbedExternal.External(
        uri=f"https://example.com/launch/{tag}", title="We launch today", description="All about it",
        thumb=uploaded.blob,
    ))
    linked = await run(client.send_post, "Read all about it", embed=card)
    quote = await run(client.send_post, "Quoting myself",
                      embed=models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(sent)))
    both_image = png(1, 1, f"q{tag}")
    both_blob = await run(client.upload_blob, both_image)
    both = await run(client.send_post, "Quote and picture", embed=models.AppBskyEmbedRecordWithMedia.Main(
        record=models.AppBskyEmbedRecord.Main(record=models.create_strong_ref(linked)),
        media=models.AppBskyEmbedImages.Main(images=[models.AppBskyEmbedImages.Image(
            alt="One pixel", image=both_blob.blob)]),
    ))
    await sky.tick()
    expected = {
        linked.uri: {"$type": "app.bsky.embed.external", "external": {
            "$type": "app.bsky.embed.external#external", "uri": f"https://example.com/launch/{tag}",
            "title": "We launch today", "description": "All about it", "thumb": blob_json(thumb)}},
        quote.uri: {"$type": "app.bsky.embed.record",
                    "record": {"$type": STRONG_REF, "uri": sent.uri, "cid": sent.cid}},
        both.uri: {"$type": "app.bsky.embed.recordWithMedia",
                   "record": {"$type": "app.bsky.embed.record",
                              "record": {"$type": STRONG_REF, "uri": linked.uri, "cid": linked.cid}},
                   "media": {"$type": "app.bsky.embed.images",
                             "images": [{"$type": IMAGE, "alt": "One pixel", "image": blob_json(both_image)}]}},
    }
    for answered, embed in ((linked, expected[linked.uri]), (quote, expected[quote.uri]), (both, expected[both.uri])):
        record = await pds_record(bluesky_pds, answered.uri)
        assert record is not None, answered.uri
        assert (record["cid"], record["value"]["embed"]) == (answered.cid, embed)


async def test_held_post_keeps_its_images_until_approved(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk, clock: ManualClock,
) -> None:
    """A co-signed post with an image waits (nothing on the PDS, which then drops the upload) and,
    approved most of a day later (within its 24 h hold: an approval after it is refused), goes
    out with Byline's copy of the image, alt text and aspect ratio."""
    account = bluesky_pds.account("bob.test")
    client = await sdk.login(sky, "alice", "skyheld", account.handle)
    image = png(5, 3, secrets.token_hex(4))
    sent = await run(client.send_image, "Approve me", image=image, image_alt="A grey band, five by three",
                     image_aspect_ratio=models.AppBskyEmbedDefs.AspectRatio(width=5, height=3))
    post = await post_for(sky, "alice", "skyheld", sent.uri)
    assert post["state"] == "held"
    await sky.tick()
    assert await pds_record(bluesky_pds, sent.uri) is None
    async with sky.app[DB].read() as txn:
        kept = await txn.fetchall("SELECT mime_type, size, digest, post_id FROM media WHERE post_id = ?", post["id"])
    assert [dict(r) for r in kept] == [{"mime_type": "image/png", "size": len(image),
                                        "digest": hashlib.sha256(image).hexdigest(), "post_id": post["id"]}]
    # The PDS keeps an upload no record uses as a temporary file, and drops it in time: drop it now.
    dropped = await asyncio.to_thread(held_upload, account.did, image)
    assert len(dropped) == 1, dropped
    dropped[0].unlink()
    clock.advance(timedelta(hours=23))
    status, body = await sky.act("bob", post["id"], "approve")
    assert status == 200, body
    clock.advance(timedelta(minutes=2))
    await sky.tick()
    assert (await sky.get("alice", post["id"]))["state"] == "published"
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None
    assert landed["value"]["embed"] == {"$type": "app.bsky.embed.images", "images": [
        {"$type": IMAGE, "alt": "A grey band, five by three", "image": blob_json(image),
         "aspectRatio": {"$type": RATIO, "width": 5, "height": 3}},
    ]}
    assert await pds_get(bluesky_pds, "com.atproto.sync.getBlob", did=account.did, cid=blob_cid(image)) == (200, image)


async def test_embeds_the_lexicons_or_byline_refuse_change_nothing(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk,
) -> None:
    """Too many images, no alt text, a video, a blob not uploaded here or described wrongly, a bad
    link or quote (one whose address the PDS would not read as an AT-URI too), an embed for a
    sandbox account: 400 InvalidRequest saying why; nothing stored."""
    account = bluesky_pds.account("carol.test")
    token = (await session(sky, "alice", "sky", account.handle))["accessJwt"]
    image = png(2, 2, secrets.token_hex(4))
    async with sky.client.post("/xrpc/com.atproto.repo.uploadBlob", data=image,
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"}) as resp:
        assert resp.status == 200, await resp.text()
        blob = (await resp.json())["blob"]
    assert blob == blob_json(image)
    unknown = blob_json(png(2, 2, "never uploaded"))
    big = {**blob, "size": 1_000_001}
    one = {"alt": "grey", "image": blob}
    prefix = "Invalid app.bsky.feed.post record: Record/"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"$type": "app.bsky.embed.images", "images": [one] * 5},
         "embed/images: List should have at most 4 items"),
        ({"$type": "app.bsky.embed.images", "images": [{"image": blob}]}, "embed/images/0/alt: Field required"),
        ({"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": {**blob, "mimeType": "video/mp4"}}]},
         "embed/images/0/image: the lexicon accepts images (image/*) here, not video/mp4"),
        ({"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": big}]},
         "embed/images/0/image: the blob is 1000001 bytes; the lexicon allows at most 1000000"),
        ({"$type": "app.bsky.embed.images",
          "images": [{"alt": "x", "image": blob, "aspectRatio": {"width": 0, "height": 1}}]},
         "embed/images/0/aspectRatio/width: Input should be greater than or equal to 1"),
        ({"$type": "app.bsky.embed.video", "video": blob},
         "Byline does not publish video embeds (app.bsky.embed.video)"),
        ({"$type": "app.bsky.embed.external",
          "external": {"uri": "javascript:alert(1)", "title": "", "description": ""}},
         "embed/external/uri: 'javascript:alert(1)' is not an http(s) URI"),
        ({"$type": "app.bsky.embed.record", "record": {"uri": "https://example.com/p", "cid": blob["ref"]["$link"]}},
         "embed/record/uri: 'https://example.com/p' is not an at://<repo>/<collection>/<rkey> address"),
        # Three parts, but no AT-URI: the PDS would refuse the approved post's commit.
        ({"$type": "app.bsky.embed.record",
          "record": {"uri": f"at://not an address/{POST}/3kabc", "cid": blob["ref"]["$link"]}},
         f"embed/record/uri: 'at://not an address/{POST}/3kabc' is not an at://<repo>/<collection>/<rkey> address"),
        ({"$type": "app.bsky.embed.recordWithMedia",
          "record": {"record": {"uri": f"at://{account.did}/{POST}/3kabc", "cid": blob["ref"]["$link"]}},
          "media": {"$type": "app.bsky.embed.video", "video": blob}},
         "Byline does not publish video embeds"),
        ({"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": unknown}]},
         f"embed: the blob {unknown['ref']['$link']} was not uploaded through Byline for sky"),
        ({"$type": "app.bsky.embed.images", "images": [{"alt": "x", "image": {**blob, "mimeType": "image/jpeg"}}]},
         f"embed: the blob {blob['ref']['$link']} is image/png of {len(image)} bytes, not image/jpeg"),
    ]
    before = await sky.snapshot()
    for embed, message in cases:
        record = {"$type": POST, "text": "with an embed", "createdAt": "2026-01-01T00:00:00.000Z", "embed": embed}
        status, body = await xrpc(sky, "POST", "com.atproto.repo.createRecord", token=token,
                                  body={"repo": account.did, "collection": POST, "record": record})
        assert (status, body["error"]) == (400, "InvalidRequest"), (embed, body)
        assert body["message"].startswith(prefix + message), (embed, body)
    # In a batch, a bad embed anywhere refuses the whole batch before any of it is written.
    plain = {"$type": POST, "text": "fine", "createdAt": "2026-01-01T00:00:00.000Z"}
    status, body = await xrpc(sky, "POST", "com.atproto.repo.applyWrites", token=token, body={
        "repo": account.did, "writes": [
            {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": plain},
            {"$type": "com.atproto.repo.applyWrites#create", "collection": POST,
             "value": {**plain, "embed": cases[0][0]}},
        ]})
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert body["message"].startswith(prefix + cases[0][1]), body
    assert await sky.snapshot() == before

    # A kept blob belongs to the one post that shows it.
    record = {"$type": POST, "text": "mine", "createdAt": "2026-01-01T00:00:00.000Z",
              "embed": {"$type": "app.bsky.embed.images", "images": [one]}}
    status, body = await xrpc(sky, "POST", "com.atproto.repo.createRecord", token=token,
                              body={"repo": account.did, "collection": POST, "record": record})
    assert status == 200, body
    status, body = await xrpc(sky, "POST", "com.atproto.repo.createRecord", token=token,
                              body={"repo": account.did, "collection": POST, "record": {**record, "text": "again"}})
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert "or another post already shows it" in body["message"], body

    # A sandbox account has no PDS: no embeds there.
    sandbox = await sdk.login(sky, "alice", "direct", "direct")
    with pytest.raises(BadRequestError) as refused:
        quoted = models.ComAtprotoRepoStrongRef.Main(uri=f"at://{account.did}/{POST}/3kabc", cid=blob["ref"]["$link"])
        await run(sandbox.send_post, "Quote", embed=models.AppBskyEmbedRecord.Main(record=quoted))
    assert refused.value.response is not None
    assert refused.value.response.content.message == (
        "Invalid app.bsky.feed.post record: Byline publishes embeds to Bluesky accounts only; "
        "direct is on sandbox: post the text alone"
    )


async def test_the_rules_read_alt_texts_and_link_cards(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An image's alt text and a link card's title and description are read by the rules as the
    words are: a block rule matching one refuses the post (nothing on the PDS), a hold rule
    holds it (before, both went straight out)."""
    account = bluesky_pds.account("alice.test")  # an account of its own: sky has carol.test's
    monkeypatch.setenv("ALICE_BSKY_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "skyrules", f"account: skyrules\nplatform: bluesky\nhandle: {account.handle}\n"
                                         f"pds: {bluesky_pds.pds_url}\ncredentials: env:ALICE_BSKY_APP_PASSWORD\n"
                                         "owner: alice\ntier: direct\nrules:\n"
                                         "  - {name: breaking-news, action: hold, any_words: [fired], reason: Check}\n"
                                         "  - {name: no-slurs, action: block, any_words: [example-slur], "
                                         "reason: Not okay}\n")
    await sky.sync_policies()
    client = await sdk.login(sky, "alice", "skyrules", account.handle)
    with pytest.raises(BadRequestError) as refused:
        await run(client.send_image, "A picture", image=png(2, 2, secrets.token_hex(4)), image_alt="an example-slur")
    assert "blocked by rule no-slurs" in str(refused.value)
    assert await sky.timeline("skyrules") == []

    card = models.AppBskyEmbedExternal.Main(external=models.AppBskyEmbedExternal.External(
        uri="https://news.example/story", title="The CEO was fired", description="What happened"))
    sent = await run(client.send_post, "Read this", embed=card)
    post = await post_for(sky, "alice", "skyrules", sent.uri)
    assert (post["state"], [r["rule"] for r in post["reasons"]]) == ("held", ["breaking-news"]), post
    await sky.tick()
    assert await pds_record(bluesky_pds, sent.uri) is None


async def test_an_image_alone_is_a_post(bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk) -> None:
    """A record with no text and an image embed, which the PDS takes (the lexicon asks for
    ``text`` but sets no least length), goes through Byline too and lands as built (before,
    Byline refused it: "text is empty")."""
    account = bluesky_pds.account("carol.test")
    client = await sdk.login(sky, "alice", "sky", account.handle)
    image = png(2, 3, secrets.token_hex(4))
    sent = await run(client.send_image, "", image=image, image_alt="A grey stripe")
    post = await post_for(sky, "alice", "sky", sent.uri)
    assert post["state"] == "scheduled"
    await sky.tick()
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None and landed["cid"] == sent.cid
    assert (landed["value"]["text"], landed["value"]["embed"]["images"][0]["alt"]) == ("", "A grey stripe")


async def test_alt_text_of_a_record_is_edited_in_its_record_not_its_upload(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk,
) -> None:
    """A held post made through XRPC sends its alt text in its record's embed: new alt text of
    its picture through the Mastodon API (``PUT /api/v1/media/:id``, or an edit's
    ``media_attributes[]``) is refused with 422 saying where the alt text lives, and changes
    nothing; approved, the post goes out with the alt text its approver saw, version 1. (Before:
    a version 2 showed the approver the new alt text while the record sent the old one.)"""
    account = bluesky_pds.account("bob.test")
    client = await sdk.login(sky, "alice", "skyheld", account.handle)
    image = png(3, 3, secrets.token_hex(4))
    sent = await run(client.send_image, "Approve my picture", image=image, image_alt="A grey square")
    post = await post_for(sky, "alice", "skyheld", sent.uri)
    assert (post["state"], post["version"]) == ("held", 1)
    headers = {"Authorization": f"Bearer {await app_password(sky, 'alice', 'skyheld')}"}
    async with sky.client.get(f"/api/v1/statuses/{post['id']}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        [picture] = (await resp.json())["media_attachments"]
    before = await sky.snapshot()
    refused = "Validation failed: the alt text of a post written as a Bluesky record (through XRPC) goes out"
    async with sky.client.put(f"/api/v1/media/{picture['id']}", headers=headers,
                              json={"description": "A white square"}) as resp:
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["error"].startswith(refused)
    async with sky.client.put(f"/api/v1/statuses/{post['id']}", headers=headers, json={
        "status": "Approve my picture",
        "media_ids": [picture["id"]], "media_attributes": [{"id": picture["id"], "description": "A white square"}],
    }) as resp:
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["error"].startswith(refused)
    assert await sky.snapshot() == before
    await _out_as_written(bluesky_pds, sky, post["id"], sent, alts=["A grey square"])


async def test_approvers_see_the_alt_text_a_record_sends_not_its_uploads(
    bluesky_pds: BlueskyPds, sky: Gateway,
) -> None:
    """A picture uploaded through the Mastodon API with alt text of its own, then shown by a
    record (through XRPC) whose embed gives it other alt text: the approvers' card says the
    picture's alt text is the record's, which is what goes out. (Before: the picture's caption
    said the upload's alt text, which never goes out, beside the record's.)"""
    account = bluesky_pds.account("bob.test")
    token = (await session(sky, "alice", "skyheld", account.handle))["accessJwt"]
    image = png(4, 2, secrets.token_hex(4))
    form = aiohttp.FormData()
    form.add_field("file", image, filename="grey.png", content_type="image/png")
    form.add_field("description", "A cat")
    headers = {"Authorization": f"Bearer {await app_password(sky, 'alice', 'skyheld')}"}
    async with sky.client.post("/api/v2/media", data=form, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    embed = {"$type": "app.bsky.embed.images", "images": [{"alt": "A grey band", "image": blob_json(image)}]}
    record = {"$type": POST, "text": "Look", "createdAt": "2026-01-01T00:00:00.000Z", "embed": embed}
    status, body = await xrpc(sky, "POST", "com.atproto.repo.createRecord", token=token,
                              body={"repo": account.did, "collection": POST, "record": record})
    assert status == 200, body
    post = await post_for(sky, "alice", "skyheld", body["uri"])
    post_id = post["id"]
    async with pages_on(sky) as pages:
        bob = await pages.person("bob")
        _, queue = await bob.get("/queue")
        [card] = re.findall(rf'<article class="card post"[^>]*data-post="{post_id}".*?</article>', queue, re.DOTALL)
    assert re.findall(r"alt text: (?:<bdi>)?([^;<]*)", card) == ["A grey band"]
    status, answer = await sky.act("bob", post["id"], "approve")
    assert status == 200, answer
    await sky.tick()
    landed = await pds_record(bluesky_pds, body["uri"])
    assert landed is not None
    assert [i["alt"] for i in landed["value"]["embed"]["images"]] == ["A grey band"]


@pytest.mark.parametrize("change", ["adds a picture", "takes its picture away"])
async def test_pictures_of_a_record_are_changed_in_its_record_not_its_media_ids(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk, change: str,
) -> None:
    """A held post made through XRPC shows the pictures its record's embed names, and only
    those go out: an edit through the Mastodon API that adds an upload, or takes its picture
    away, is refused with 422 saying where its pictures live, and changes nothing; approved, the
    post goes out as its approver saw it, version 1. (Before: a version 2 showed the approver a
    picture that never went out, or none where the record still sent one.)"""
    account = bluesky_pds.account("bob.test")
    client = await sdk.login(sky, "alice", "skyheld", account.handle)
    sent = await run(client.send_image, "Approve my picture", image=png(3, 3, secrets.token_hex(4)),
                     image_alt="A grey square")
    post = await post_for(sky, "alice", "skyheld", sent.uri)
    headers = {"Authorization": f"Bearer {await app_password(sky, 'alice', 'skyheld')}"}
    async with sky.client.get(f"/api/v1/statuses/{post['id']}", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        [picture] = (await resp.json())["media_attachments"]
    media_ids = [picture["id"]]
    if change == "adds a picture":
        form = aiohttp.FormData()
        form.add_field("file", png(5, 2, secrets.token_hex(4)), filename="red.png", content_type="image/png")
        form.add_field("description", "A red band")
        async with sky.client.post("/api/v2/media", data=form, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            media_ids.append((await resp.json())["id"])
    else:
        media_ids = []
    before = await sky.snapshot()
    async with sky.client.put(f"/api/v1/statuses/{post['id']}", headers=headers,
                              json={"status": "Approve my picture", "media_ids": media_ids}) as resp:
        assert resp.status == 422, await resp.text()
        assert (await resp.json())["error"].startswith(
            "Validation failed: the pictures of a post written as a Bluesky record (through XRPC) go out")
    assert await sky.snapshot() == before
    await _out_as_written(bluesky_pds, sky, post["id"], sent, alts=["A grey square"])


async def _out_as_written(bluesky_pds: BlueskyPds, sky: Gateway, post_id: str, sent: Any, *, alts: list[str]) -> None:
    """Bob approves the post at its version 1; it goes out as its record was written (its CID,
    its pictures' ``alts``), and the log verifies."""
    status, body = await sky.act("bob", post_id, "approve")
    assert (status, body["state"], body["version"]) == (200, "scheduled", 1), body
    await sky.tick()
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None and landed["cid"] == sent.cid
    assert [i["alt"] for i in landed["value"]["embed"]["images"]] == alts
    await verified_by_cli(sky)
