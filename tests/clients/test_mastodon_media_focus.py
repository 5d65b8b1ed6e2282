"""An upload's focal point, set when it is uploaded or changed after, reaches the instance with
the upload when the post goes out (a Mastodon app crops previews around it)."""

from __future__ import annotations

from tests.clients.world import World
from tests.images import PNG


async def test_the_focal_point_goes_out_with_the_upload(world: World) -> None:
    api = await world.client("alice", "masto")
    first = await world.run(api.media_post, PNG, mime_type="image/png", description="Left", focus=(-0.5, 0.25))
    second = await world.run(api.media_post, PNG + b"\x01", mime_type="image/png", description="Right")
    await world.run(api.media_update, second, focus=(0.75, -1.0))
    await world.run(api.status_post, "Two crops", media_ids=[first, second])
    await world.gateway.tick()
    [sent] = world.upstream.statuses(world.upstream_account)
    landed = [world.upstream.media[m] for m in sent.media_ids]
    assert [(m.description, m.focus) for m in landed] == [("Left", (-0.5, 0.25)), ("Right", (0.75, -1.0))]
    plain = await world.run(api.media_post, PNG + b"\x02", mime_type="image/png")
    await world.run(api.status_post, "No crop", media_ids=[plain])
    await world.gateway.tick()
    last = world.upstream.statuses(world.upstream_account)[-1]
    assert world.upstream.media[last.media_ids[0]].focus is None
