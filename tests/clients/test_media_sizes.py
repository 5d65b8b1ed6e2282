"""An app lays a picture out before it loads from the size its MediaAttachment gives
(``meta.original``, and ``meta.small`` for the preview, which is the same picture), as Mastodon
gives it: read from the picture's header when it is uploaded, turned by its EXIF orientation,
on the upload's answer, ``GET /api/v1/media/:id``, the status, and statuses by id, through
Mastodon.py. An upload kept before sizes were read shows ``meta`` as before. Both databases."""

from __future__ import annotations

import io
import json
from typing import Any

from gateway.appkeys import DB
from tests.clients.world import World
from tests.images import GIF, WEBP, exif, jpeg_with, png_of, png_with


def _size(width: int, height: int) -> dict[str, Any]:
    return {"width": width, "height": height, "size": f"{width}x{height}", "aspect": width / height}


def _seen(meta: Any) -> dict[str, Any]:
    """``meta`` as the gateway sent it: Mastodon.py fills what it left out with None."""
    return {k: v for k, v in json.loads(json.dumps(meta)).items() if v is not None}


def _meta(width: int, height: int) -> dict[str, Any]:
    return {"original": _size(width, height), "small": _size(width, height)}


async def test_every_attachment_says_the_size_its_picture_is_shown_at(world: World) -> None:
    """A JPEG stored sideways (orientation 6), a PNG turned by its eXIf (8), a 7×5 PNG, a WebP
    and a GIF: each attachment says the size a viewer shows, the turned ones swapped; a focal
    point stays beside it."""
    api = await world.client("alice", "masto")
    sent = [("image/jpeg", jpeg_with(tiff=exif(orientation=6)), _meta(2, 3)),
            ("image/png", png_with(tiff=exif(orientation=8)), _meta(2, 3)),
            ("image/png", png_of(7, 5), _meta(7, 5)),
            ("image/webp", WEBP, _meta(3, 2)),
            ("image/gif", GIF, _meta(1, 1))]
    uploaded = [await world.run(api.media_post, io.BytesIO(data), mime_type=mime_type) for mime_type, data, _ in sent]
    expected = [meta for _, _, meta in sent]
    assert [_seen(m.meta) for m in uploaded] == expected
    assert [_seen((await world.run(api.media, m.id)).meta) for m in uploaded] == expected
    focused = await world.run(api.media_post, io.BytesIO(png_of(4, 8)), mime_type="image/png", focus=(0.5, -0.25))
    assert _seen(focused.meta) == {**_meta(4, 8), "focus": {"x": 0.5, "y": -0.25}}
    status = await world.run(api.status_post, "Pictures", media_ids=uploaded[:4])
    assert [_seen(m.meta) for m in status.media_attachments] == expected[:4]
    await world.gateway.tick()
    shown = await world.run(api.status, status.id)
    assert [_seen(m.meta) for m in shown.media_attachments] == expected[:4]
    [listed] = await world.run(api.statuses, [status.id])
    assert [_seen(m.meta) for m in listed.media_attachments] == expected[:4]


async def test_an_upload_kept_before_sizes_were_read_shows_meta_as_before(world: World) -> None:
    """An upload whose row has no size (kept before version 26): ``meta`` holds its focal point
    only, no ``original``."""
    api = await world.client("alice", "masto")
    upload = await world.run(api.media_post, io.BytesIO(png_of(4, 8)), mime_type="image/png", focus=(0.5, 0.5))
    async with world.gateway.app[DB].write() as txn:
        await txn.execute("UPDATE media SET width = NULL, height = NULL WHERE id = ?", upload.id)
    assert _seen((await world.run(api.media, upload.id)).meta) == {"focus": {"x": 0.5, "y": 0.5}}
