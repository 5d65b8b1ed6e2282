"""A phone photo posted through Byline does not tell the world where its author stood: the EXIF
GPS, the owner's name, the device's serial, XMP, IPTC and comments are taken out of an upload
before it is kept, hashed or sent, through the Mastodon media API (Mastodon.py, the Mastodon
stand-in) and through ``uploadBlob`` (the real ``atproto`` SDK and a real PDS, which serves a
blob as it was sent); the picture and its orientation stay. A picture whose container does not
hold together is refused (422 on the Mastodon API, 400 InvalidRequest on XRPC) and nothing is
kept or sent. Both databases."""

from __future__ import annotations

import hashlib
import io
import json
import secrets

import pytest
from mastodon import MastodonAPIError

from gateway.appkeys import DB
from gateway.services.image_metadata import stripped
from tests.clients.test_atproto_client import Sdk, clock, run, sdk, session
from tests.clients.test_atproto_embeds import blob_cid, pds_get, pds_record, sky
from tests.clients.world import World
from tests.conftest import Gateway
from tests.images import JPEG, PRIVATE, exif, gif_with, jpeg_with, orientation_of, png_with, webp_with
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clock", "sdk", "sky"]  # the fixtures, shared with the SDK's tests

pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")


def _exif_orientation(jpeg: bytes) -> int | None:
    """The orientation a viewer reads from a JPEG's first EXIF segment, or None."""
    at = jpeg.find(b"\xff\xe1")
    if at < 0 or jpeg[at + 4:at + 10] != b"Exif\x00\x00":
        return None
    return orientation_of(jpeg[at + 10:])


async def _uploads(world: World) -> list[tuple[str, bytes]]:
    async with world.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT digest, data FROM media ORDER BY id")
    return [(r["digest"], bytes(r["data"])) for r in rows]


async def test_mastodon_uploads_reach_the_instance_without_what_they_say_about_their_author(world: World) -> None:
    """A JPEG, PNG, WebP and GIF full of metadata, uploaded with Mastodon.py and posted: what the
    instance receives, what Byline keeps and previews, and the digest the log binds are all the
    stripped picture: no name, serial, model, GPS, caption or XMP; the JPEG still turned."""
    api = await world.client("alice", "masto")
    sent = {"image/jpeg": jpeg_with(tiff=exif(orientation=6), trailer=b"SEFT" + PRIVATE[1]),
            "image/png": png_with(), "image/webp": webp_with(), "image/gif": gif_with()}
    media = [await world.run(api.media_post, io.BytesIO(data), mime_type=mime_type, description=mime_type)
             for mime_type, data in sent.items()]
    for one in media:
        async with world.gateway.client.get(one.url.removeprefix(world.base)) as preview:
            shown = await preview.read()
            assert [p for p in PRIVATE if p in shown] == []
    await world.run(api.status_post, "Holiday pictures", media_ids=media)
    await world.gateway.tick()
    [published] = world.upstream.statuses(world.upstream_account)
    received = {world.upstream.media[m].mime_type: world.upstream.media[m].data for m in published.media_ids}
    assert list(received) == list(sent)
    for mime_type, data in received.items():
        assert [p for p in PRIVATE if p in data] == [], mime_type
        assert data == stripped(sent[mime_type], mime_type)
    assert _exif_orientation(received["image/jpeg"]) == 6
    assert received["image/jpeg"].endswith(JPEG[JPEG.index(b"\xff\xdb"):])  # the picture itself, as it was
    assert [(d, hashlib.sha256(b).hexdigest()) for d, b in await _uploads(world)] == [
        (hashlib.sha256(b).hexdigest(), hashlib.sha256(b).hexdigest()) for b in received.values()]


async def test_a_broken_picture_is_refused_and_nothing_is_kept(world: World) -> None:
    """A JPEG cut short in its metadata, a PNG whose chunk runs past its end: 422 saying what is
    wrong with the file; no upload kept, nothing published."""
    api = await world.client("alice", "masto")
    broken = jpeg_with()[:60]
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, io.BytesIO(broken), mime_type="image/jpeg")
    assert caught.value.args[1:4:2] == (
        422, "Validation failed: File is invalid: the JPEG's segment at byte 2 runs past its end")
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, io.BytesIO(png_with()[:200]), mime_type="image/png")
    assert caught.value.args[1] == 422
    assert await _uploads(world) == []
    assert world.upstream.media == {}


async def test_a_flood_of_empty_comments_is_refused_before_it_takes_the_cpu(world: World) -> None:
    """A JPEG of 65,536 empty comment segments (a quarter of a megabyte; at the upload limit,
    seconds of CPU to walk): 422 saying so, nothing kept."""
    api = await world.client("alice", "masto")
    flood = JPEG[:2] + b"\xff\xfe\x00\x02" * 65_536 + JPEG[2:]
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, io.BytesIO(flood), mime_type="image/jpeg")
    assert caught.value.args[1:4:2] == (
        422, "Validation failed: File is invalid: the JPEG has more than 65535 segments")
    assert await _uploads(world) == []


async def test_bluesky_blobs_the_pds_serves_carry_no_gps(bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk) -> None:
    """A phone's JPEG posted with the SDK's ``send_image``: the blob the PDS holds, fetched from it
    with ``com.atproto.sync.getBlob`` as anyone can, has no GPS, name or serial, keeps its
    orientation, and is the blob the record names."""
    account = bluesky_pds.account("carol.test")
    client = await sdk.login(sky, "alice", "sky", account.handle)
    photo = jpeg_with(tiff=exif(orientation=8), trailer=secrets.token_bytes(8))
    sent = await run(client.send_image, "From the beach", image=photo, image_alt="The beach")
    await sky.tick()
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None
    blob = landed["value"]["embed"]["images"][0]["image"]
    status, served = await pds_get(bluesky_pds, "com.atproto.sync.getBlob", did=account.did, cid=blob["ref"]["$link"])
    assert status == 200
    assert [p for p in PRIVATE if p in served] == []
    assert served == stripped(photo, "image/jpeg")
    assert (blob["ref"]["$link"], blob["size"]) == (blob_cid(served), len(served))
    assert _exif_orientation(served) == 8


async def test_a_broken_blob_is_refused_before_the_pds(bluesky_pds: BlueskyPds, sky: Gateway) -> None:
    """``uploadBlob`` of a JPEG cut short: 400 InvalidRequest (as a PDS refuses) saying why; no copy kept, and the
    PDS never received it (its CID unknown there)."""
    account = bluesky_pds.account("carol.test")
    token = (await session(sky, "alice", "sky", account.handle))["accessJwt"]
    broken = jpeg_with()[:60] + secrets.token_bytes(4)
    async with sky.client.post("/xrpc/com.atproto.repo.uploadBlob", data=broken,
                               headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}) as resp:
        assert resp.status == 400
        body = json.loads(await resp.text())
    assert body == {"error": "InvalidRequest", "message": "the blob is not a well-formed image/jpeg: "
                                                          "the JPEG's segment at byte 2 runs past its end"}
    async with sky.app[DB].read() as txn:
        assert await txn.fetchall("SELECT id FROM media") == []
    status, _ = await pds_get(bluesky_pds, "com.atproto.sync.getBlob", did=account.did, cid=blob_cid(broken))
    assert status != 200


async def test_a_blob_relayed_back_is_never_a_page_of_byline(bluesky_pds: BlueskyPds, sky: Gateway) -> None:
    """An SVG with a script, uploaded as image/svg+xml and posted as a picture (the lexicon takes
    any image/*), then read back through Byline's ``getBlob`` relay: Byline serves it sandboxed
    (nothing loads or runs) and unsniffed, as the PDS itself does, never as a page of its origin."""
    account = bluesky_pds.account("carol.test")
    token = (await session(sky, "alice", "sky", account.handle))["accessJwt"]
    svg = (b'<svg xmlns="http://www.w3.org/2000/svg"><script>fetch("/xrpc/com.atproto.server.getSession")'
           b"</script><!-- " + secrets.token_hex(4).encode() + b" --></svg>")
    auth = {"Authorization": f"Bearer {token}"}
    async with sky.client.post("/xrpc/com.atproto.repo.uploadBlob", data=svg,
                               headers={**auth, "Content-Type": "image/svg+xml"}) as resp:
        assert resp.status == 200, await resp.text()
        blob = (await resp.json())["blob"]
    record = {"$type": "app.bsky.feed.post", "text": "A drawing", "createdAt": "2026-12-07T20:00:00.000Z",
              "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "A drawing", "image": blob}]}}
    async with sky.client.post("/xrpc/com.atproto.repo.createRecord", headers=auth, json={
            "repo": account.did, "collection": "app.bsky.feed.post", "record": record}) as resp:
        assert resp.status == 200, await resp.text()
    await sky.tick()
    async with sky.client.get("/xrpc/com.atproto.sync.getBlob", headers=auth,
                              params={"did": account.did, "cid": blob["ref"]["$link"]}) as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.read() == svg
        csp = resp.headers.get("Content-Security-Policy", "")
        assert "sandbox" in csp and "default-src 'none'" in csp, dict(resp.headers)
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
