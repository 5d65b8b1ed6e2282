"""Mastodon media as a 4.x instance handles it: the stand-in's rules, and the adapter against them."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from adapters.base import AdapterError, MediaItem
from adapters.mastodon import MastodonAdapter
from tests.adapters.helpers import post
from tests.adapters.test_mastodon import TOKEN, running
from tests.adapters.test_mastodon import Env as MastodonEnv
from tests.fakes.mastodon import IMAGE_LIMIT, PROCESSING_ERROR

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class Env(MastodonEnv):
    """The Mastodon adapter tests' stand-in, with media calls made as the account."""

    def adapter(self, **options: str) -> MastodonAdapter:
        """An adapter for the account that polls processing media every 10 ms."""
        return super().adapter(media_poll_interval="0.01", **options)

    async def upload(self, data: bytes, mime_type: str, **fields: str) -> tuple[int, Any]:
        """``POST /api/v2/media`` as the account: the status and the JSON body."""
        form = aiohttp.FormData()
        form.add_field("file", io.BytesIO(data), content_type=mime_type, filename="upload")
        for name, value in fields.items():
            form.add_field(name, value)
        async with self.session.post(self.server.make_url("/api/v2/media"), data=form,
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def get(self, media_id: str) -> tuple[int, Any]:
        """``GET /api/v1/media/:id`` as the account: the status and the JSON body."""
        async with self.session.get(self.server.make_url(f"/api/v1/media/{media_id}"),
                                    headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
            return resp.status, await resp.json(content_type=None)

    def uploads(self) -> int:
        """How many uploads the stand-in received."""
        return self.fake.faults.count("POST", "/api/v2/media")


@pytest.fixture
async def env(aiohttp_server: Any) -> AsyncIterator[Env]:
    """A running stand-in with one account, and a client session."""
    async with running(aiohttp_server, Env) as running_env:
        yield running_env


# -- the stand-in ------------------------------------------------------------------------------


async def test_stand_in_answers_the_attachment_while_and_after_processing(env: Env) -> None:
    """202 and every 206 carry the MediaAttachment with ``url: null``; the 200 carries its URL."""
    env.fake.media_processing_polls = 2
    status, created = await env.upload(PNG, "image/png", description="a red dot")
    assert (status, created["type"], created["url"], created["description"]) == (202, "image", None, "a red dot")
    seen = [await env.get(created["id"]) for _ in range(3)]
    assert [(s, body["id"], body["url"] is None) for s, body in seen] == [
        (206, created["id"], True), (206, created["id"], True), (200, created["id"], False)]


async def test_stand_in_takes_video_only_in_the_background(env: Env) -> None:
    """An image is processed at once (200); a video is always 202, then 206, then 200."""
    assert (await env.upload(PNG, "image/png"))[0] == 200
    status, video = await env.upload(b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    assert (status, video["type"], video["url"]) == (202, "video", None)
    assert [(await env.get(video["id"]))[0] for _ in range(2)] == [206, 200]


@pytest.mark.parametrize("mime_type", ["application/pdf", "image/svg+xml", "image/bmp", "application/octet-stream"])
async def test_stand_in_refuses_types_mastodon_does_not_take(env: Env, mime_type: str) -> None:
    """A type outside ``MediaAttachment.supported_mime_types`` is 422, and nothing is stored."""
    assert await env.upload(b"<svg/>", mime_type) == (
        422, {"error": "Validation failed: File content type is invalid, File is invalid"})
    assert env.fake.media == {}


async def test_stand_in_refuses_files_at_the_size_limit(env: Env) -> None:
    """Images must be smaller than 16 MB (exactly 16 MB is refused); video may be larger."""
    assert await env.upload(b"\x00" * IMAGE_LIMIT, "image/png") == (
        422, {"error": "Validation failed: File file size must be less than 16 MB"})
    assert (await env.upload(b"\x00" * (IMAGE_LIMIT - 1), "image/png"))[0] == 200
    assert (await env.upload(b"\x00" * IMAGE_LIMIT, "video/mp4"))[0] == 202
    assert await env.upload(PNG, "image/png", description="x" * 1501) == (
        422, {"error": "Validation failed: Description is too long (maximum is 1500 characters)"})


async def test_stand_in_processing_can_fail(env: Env) -> None:
    """A failure at once is 500 and stores nothing; a failure in the background is 422 on GET,
    and a status refuses the upload."""
    env.fake.media_processing_failures = 1
    assert await env.upload(PNG, "image/png") == (500, {"error": PROCESSING_ERROR})
    assert env.fake.media == {}
    env.fake.media_processing_failures, env.fake.media_processing_polls = 1, 1
    status, media = await env.upload(PNG, "image/png")
    assert status == 202
    assert [await env.get(media["id"]) for _ in range(2)] == [
        (206, media), (422, {"error": PROCESSING_ERROR})]
    async with env.session.post(env.server.make_url("/api/v1/statuses"),
                                json={"status": "hi", "media_ids": [media["id"]]},
                                headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        assert resp.status == 422
    assert env.fake.statuses() == []


# -- the adapter against it --------------------------------------------------------------------


async def test_adapter_waits_out_background_processing_then_attaches(env: Env) -> None:
    """A video (2 MB, streamed) answered 202 is polled through its 206s; the status is made once
    it is ready."""
    env.fake.media_processing_polls = 3
    clip = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * (2 * 1024 * 1024)
    video = MediaItem(data=clip, mime_type="video/mp4", description="a clip")
    result = await env.adapter().publish(post("With a clip", media=(video,)))
    stored = env.fake.status(result.remote_id)
    assert stored is not None and len(stored.media_ids) == 1
    media = env.fake.media[stored.media_ids[0]]
    assert (media.kind, media.description, media.size, media.processed) == ("video", "a clip", len(clip), True)
    assert env.fake.faults.count("GET", f"/api/v1/media/{media.id}") == 4


@pytest.mark.parametrize("in_background", [False, True])
async def test_adapter_reports_a_file_the_instance_could_not_process(env: Env, in_background: bool) -> None:
    """Processing that fails, at once or in the background, is a final error naming the file,
    and no status is made."""
    env.fake.media_processing_failures = 1
    env.fake.media_processing_polls = 2 if in_background else 0
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(media=(MediaItem(data=PNG, mime_type="image/png"),)))
    error = caught.value
    assert not error.retryable
    assert "could not process" in error.message and "image/png, 72 bytes" in error.message
    assert error.detail == PROCESSING_ERROR
    assert env.fake.faults.count("POST", "/api/v1/statuses") == 0


@pytest.mark.parametrize(("item", "expected"), [
    (MediaItem(data=b"%PDF-1.7", mime_type="application/pdf"), "takes no files of type 'application/pdf'"),
    (MediaItem(data=b"\x00" * IMAGE_LIMIT, mime_type="image/png"),
     f"the image/png file of {IMAGE_LIMIT} bytes is too large: the instance takes files smaller than"),
    (MediaItem(data=PNG, mime_type="image/png", description="x" * 1501),
     "alt text of 1501 characters, at most 1500 allowed"),
])
async def test_adapter_refuses_what_the_instance_would_without_a_request(
    env: Env, item: MediaItem, expected: str
) -> None:
    """A type, size or alt text a stock instance refuses is a final error before any upload."""
    with pytest.raises(AdapterError) as caught:
        await env.adapter().publish(post(media=(item,)))
    assert not caught.value.retryable and expected in caught.value.message
    assert env.uploads() == 0


# -- alt text and focal points in an edit (Mastodon 4.1's media_attributes[]) -------------------


async def _with_two_pictures(env: Env) -> str:
    """A status of the account's with two pictures ("One", "Two"), made by the adapter: its id."""
    pictures = (MediaItem(data=PNG, mime_type="image/png", description="One"),
                MediaItem(data=PNG, mime_type="image/png", description="Two", focus="0.5,0.5"))
    return (await env.adapter().publish(post("Two pictures", media=pictures))).remote_id


async def _put(env: Env, status_id: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with env.session.put(env.server.make_url(f"/api/v1/statuses/{status_id}"), json=body,
                               headers={"Authorization": f"Bearer {TOKEN}"}) as resp:
        return resp.status, await resp.json(content_type=None)


def _pictures(env: Env, status_id: str) -> list[tuple[str | None, tuple[float, float] | None]]:
    status = env.fake.status(status_id)
    assert status is not None
    return [(env.fake.media[m].description, env.fake.media[m].focus) for m in status.media_ids]


async def test_stand_in_takes_media_attributes_of_an_edit_as_mastodon_does(env: Env) -> None:
    """``PUT /api/v1/statuses/:id``: ``media_attributes[]`` count only beside ``media_ids``
    (without, ignored, as Mastodon's UpdateStatusService does); ``media_ids`` must be the
    status's own, each attribute must name one of them, alt text is at most 1,500 characters and
    a focal point "x,y" within -1..1 (422, nothing changed); a good one is applied and recorded."""
    status_id = await _with_two_pictures(env)
    status = env.fake.status(status_id)
    assert status is not None
    first, second = status.media_ids
    before = [("One", None), ("Two", (0.5, 0.5))]
    code, _ = await _put(env, status_id, {"status": "Edited", "media_attributes": [
        {"id": first, "description": "Ignored"}]})
    assert (code, _pictures(env, status_id), status.media_edits) == (200, before, [])
    for body, error in [
        ({"media_ids": [second, first]}, "Validation failed: media_ids must be the status's media"),
        ({"media_ids": [first]}, "Validation failed: media_ids must be the status's media"),
        ({"media_ids": [first, second], "media_attributes": [{"id": "1", "description": "Not hers"}]},
         "Validation failed: Media 1 is not attached to this status"),
        ({"media_ids": [first, second], "media_attributes": [{"id": first, "description": "x" * 1501}]},
         "Validation failed: Description is too long (maximum is 1500 characters)"),
        ({"media_ids": [first, second], "media_attributes": [{"id": second, "focus": "1.5,0"}]},
         "Validation failed: Focus is invalid"),
    ]:
        code, answer = await _put(env, status_id, {"status": "Refused", **body})
        assert (code, answer["error"]) == (422, error), body
        assert (status.text, _pictures(env, status_id), status.media_edits) == ("Edited", before, [])
    code, answer = await _put(env, status_id, {"status": "Described", "media_ids": [first, second],
                                               "media_attributes": [{"id": first, "description": "The first"},
                                                                    {"id": second, "focus": "-1,1"}]})
    assert code == 200, answer
    assert [(m["description"], m["meta"].get("focus")) for m in answer["media_attachments"]] == [
        ("The first", None), ("Two", {"x": -1.0, "y": 1.0})]
    assert status.media_edits == [{first: {"description": "The first"}, second: {"focus": (-1.0, 1.0)}}]


async def test_adapter_edit_carries_new_alt_text_and_focal_points(env: Env) -> None:
    """``OutboundPost.redescribed``: the edit sends the status's own media ids, read from it, and
    each picture's alt text and focal point, in order; the words change with them."""
    status_id = await _with_two_pictures(env)
    await env.adapter().edit(status_id, post("Two pictures, described", redescribed=(
        ("The first", "0.25,-0.5"), ("Two", "0.5,0.5"))))
    status = env.fake.status(status_id)
    assert status is not None
    assert (status.text, _pictures(env, status_id)) == (
        "Two pictures, described", [("The first", (0.25, -0.5)), ("Two", (0.5, 0.5))])
    assert len(status.media_edits) == 1


async def test_adapter_edit_naming_other_pictures_than_the_status_has_is_refused(env: Env) -> None:
    """An edit giving alt text to a number of pictures the status does not have is a final error
    before the edit is sent: the status keeps its words and pictures."""
    status_id = await _with_two_pictures(env)
    with pytest.raises(AdapterError) as caught:
        await env.adapter().edit(status_id, post("Edited", redescribed=(("Only one", None),)))
    assert not caught.value.retryable
    assert env.fake.faults.count("PUT", f"/api/v1/statuses/{status_id}") == 0
    status = env.fake.status(status_id)
    assert status is not None and status.text == "Two pictures"
