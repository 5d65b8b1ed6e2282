"""An upload's type is what its bytes are, as on Mastodon: a file sent with no type, or as
``application/octet-stream``, is taken for the image it is and reaches the platform as that;
what is not an image Byline carries is refused with Mastodon's words, and nothing is stored;
a declared type the bytes contradict is not believed. Real Mastodon.py, raw multipart over
aiohttp, a real gateway and the Mastodon stand-in, both databases."""

from __future__ import annotations

import io
import json
import mimetypes
from pathlib import Path
from typing import Any

import pytest
from mastodon import MastodonAPIError

from gateway.appkeys import DB
from tests.clients.world import World
from tests.images import GIF, JPEG, PNG

INVALID = "Validation failed: File content type is invalid, File is invalid"


async def _uploads(world: World) -> list[dict[str, Any]]:
    async with world.gateway.app[DB].read() as txn:
        return [dict(r) for r in await txn.fetchall("SELECT id, mime_type, size FROM media ORDER BY id")]


async def _raw_upload(world: World, data: bytes, part_headers: str, *, description: str = "") -> tuple[int, Any]:
    """``POST /api/v2/media`` with a file part written by hand, headers exactly as given."""
    boundary = "byline-raw-7f3a"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\n{description}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload\"\r\n"
            f"{part_headers}\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Authorization": f"Bearer {await world.token('alice', 'masto')}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with world.gateway.client.post("/api/v2/media", data=body, headers=headers) as resp:
        return resp.status, json.loads(await resp.text())


async def _published_media(world: World) -> list[tuple[str, int, str | None]]:
    """What reached the platform: each upload's type, size and alt text, post by post."""
    return [(m.mime_type, m.size, m.description)
            for s in world.upstream.statuses(world.upstream_account) for m in map(world.upstream.media.get, s.media_ids)
            if m is not None]


async def test_files_sent_without_a_type_go_out_as_what_they_are(world: World, tmp_path: Path) -> None:
    """Mastodon.py sending file objects as octet-stream (what it is told when the type is not
    known, as for a file named IMG_0001.bin), and a part with no Content-Type at all: each is
    kept, shown and published as the image its bytes are, with its alt text."""
    api = await world.client("alice", "masto")
    as_octets = await world.run(api.media_post, io.BytesIO(JPEG), mime_type="application/octet-stream",
                                description="A harbour at dawn")
    unnamed = tmp_path / "IMG_0001.bin"
    unnamed.write_bytes(GIF)
    declared = mimetypes.guess_type(unnamed.name)[0]
    assert declared == "application/octet-stream"
    with unnamed.open("rb") as file:
        from_path = await world.run(api.media_post, file, mime_type=declared, file_name=unnamed.name,
                                    description="A dot")
    status, untyped = await _raw_upload(world, PNG, "", description="A red square")
    assert status == 200, untyped
    assert [m["mime_type"] for m in await _uploads(world)] == ["image/jpeg", "image/gif", "image/png"]
    for media, data, mime in ((as_octets, JPEG, "image/jpeg"), (from_path, GIF, "image/gif")):
        async with world.gateway.client.get(media.url.removeprefix(world.base)) as preview:
            assert (preview.status, preview.content_type, await preview.read()) == (200, mime, data)
    await world.run(api.status_post, "Three pictures", media_ids=[as_octets, from_path, untyped["id"]])
    await world.gateway.tick()
    assert await _published_media(world) == [
        ("image/jpeg", len(JPEG), "A harbour at dawn"), ("image/gif", len(GIF), "A dot"),
        ("image/png", len(PNG), "A red square"),
    ]


@pytest.mark.parametrize(("data", "declared"), [
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", "application/octet-stream"),
    (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", ""),
    (b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + b"\x00" * 64, "application/octet-stream"),
    (b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + b"\x00" * 40, "image/png"),
    (b"\x00" * 128, "image/png"),
])
async def test_what_is_not_an_image_byline_carries_is_refused(world: World, data: bytes, declared: str) -> None:
    """A PDF, an HTML page, a video (which no adapter carries yet), a ZIP that claims to be a PNG,
    and bytes that are nothing at all: Mastodon's 422, and no upload is stored."""
    status, body = await _raw_upload(world, data, f"Content-Type: {declared}\r\n" if declared else "")
    assert (status, body) == (422, {"error": INVALID})
    assert await _uploads(world) == []


async def test_a_declared_type_the_bytes_contradict_is_not_believed(world: World) -> None:
    """A JPEG that Mastodon.py declares as a PNG is kept and sent as the JPEG it is (the platform
    would otherwise get bytes under a type they are not)."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, io.BytesIO(JPEG), mime_type="image/png")
    async with world.gateway.client.get(media.url.removeprefix(world.base)) as preview:
        assert (preview.content_type, await preview.read()) == ("image/jpeg", JPEG)
    await world.run(api.status_post, "Not a PNG", media_ids=[media])
    await world.gateway.tick()
    assert await _published_media(world) == [("image/jpeg", len(JPEG), None)]
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.media_post, io.BytesIO(b"<svg xmlns='http://www.w3.org/2000/svg'/>"),
                        mime_type="image/png")
    assert caught.value.args[1:4:2] == (422, INVALID)
