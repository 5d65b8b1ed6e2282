"""Lists Byline answers itself page as Mastodon's do: a real Mastodon.py follows their Link
headers forward and back, and max_id, since_id, min_id and limit select what Mastodon selects."""

from __future__ import annotations

import pytest
from mastodon import MastodonAPIError

from tests.clients.mastodon_shapes import pagination_links
from tests.clients.world import World


async def _scheduled(world: World, count: int) -> tuple[list[str], str]:
    """``count`` posts by bob on the delayed account, waiting out its delay; their ids oldest
    first, and bob's token."""
    api = await world.client("bob", "delayed")
    ids = [(await world.run(api.status_post, f"Post {n}")).id for n in range(count)]
    assert sorted(ids, key=int) == ids
    return ids, await world.token("bob", "delayed")


async def test_scheduled_statuses_page_with_mastodon_py(world: World) -> None:
    """fetch_next walks five scheduled posts two at a time, fetch_previous walks back, and
    fetch_remaining collects them all, newest first."""
    ids, _ = await _scheduled(world, 5)
    newest = ids[::-1]
    api = await world.client("bob", "delayed")
    first = await world.run(api.scheduled_statuses, limit=2)
    assert [s.id for s in first] == newest[0:2]
    second = await world.run(api.fetch_next, first)
    assert second is not None and [s.id for s in second] == newest[2:4]
    third = await world.run(api.fetch_next, second)
    assert third is not None and [s.id for s in third] == newest[4:5]
    assert await world.run(api.fetch_next, third) is None  # a short page is the last
    back = await world.run(api.fetch_previous, third)
    assert back is not None and [s.id for s in back] == newest[2:4]
    front = await world.run(api.fetch_previous, back)
    assert front is not None and [s.id for s in front] == newest[0:2]
    assert list(await world.run(api.fetch_previous, front) or []) == []  # nothing newer
    everything = await world.run(api.fetch_remaining, first)
    assert [s.id for s in everything] == newest
    assert [s.params.text for s in everything] == [f"Post {n}" for n in (4, 3, 2, 1, 0)]


async def test_scheduled_statuses_link_header_as_mastodon_writes_it(world: World) -> None:
    """The Link header names the next page by max_id and the previous by min_id, keeping limit;
    a last (short) page has no next, an empty one no header at all."""
    ids, token = await _scheduled(world, 3)
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{world.base}/api/v1/scheduled_statuses"
    async with world.gateway.client.get("/api/v1/scheduled_statuses?limit=2", headers=auth) as resp:
        assert resp.status == 200
        assert [s["id"] for s in await resp.json()] == [ids[2], ids[1]]
        assert pagination_links(resp.headers["Link"]) == {"next": {"limit": "2", "max_id": ids[1]},
                                                          "prev": {"limit": "2", "min_id": ids[2]}}
        assert resp.headers["Link"] == (f'<{url}?limit=2&max_id={ids[1]}>; rel="next", '
                                        f'<{url}?limit=2&min_id={ids[2]}>; rel="prev"')
    async with world.gateway.client.get(f"/api/v1/scheduled_statuses?limit=2&max_id={ids[1]}",
                                        headers=auth) as resp:
        assert [s["id"] for s in await resp.json()] == [ids[0]]
        assert resp.headers["Link"] == f'<{url}?limit=2&min_id={ids[0]}>; rel="prev"'
    async with world.gateway.client.get(f"/api/v1/scheduled_statuses?min_id={ids[2]}", headers=auth) as resp:
        assert await resp.json() == []
        assert "Link" not in resp.headers
    async with world.gateway.client.get("/api/v1/scheduled_statuses", headers=auth) as resp:
        assert [s["id"] for s in await resp.json()] == ids[::-1]
        assert resp.headers["Link"] == f'<{url}?min_id={ids[2]}>; rel="prev"'  # no limit asked, none kept


async def test_since_id_min_id_and_max_id_select_as_mastodon(world: World) -> None:
    """since_id gives the newest above it, min_id the oldest above it (both shown newest first),
    max_id bounds either from above; limit is capped, 0 is an empty page, a negative one a 400."""
    ids, _ = await _scheduled(world, 6)
    api = await world.client("bob", "delayed")

    async def page(**kwargs: object) -> list[str]:
        return [s.id for s in await world.run(api.scheduled_statuses, **kwargs)]

    assert await page(since_id=ids[1], limit=2) == [ids[5], ids[4]]
    assert await page(min_id=ids[1], limit=2) == [ids[3], ids[2]]
    assert await page(min_id=ids[0], max_id=ids[4], limit=10) == [ids[3], ids[2], ids[1]]
    assert await page(since_id=ids[0], max_id=ids[4], limit=2) == [ids[3], ids[2]]
    assert await page(min_id=ids[1], since_id=ids[4]) == [ids[5], ids[4], ids[3], ids[2]]  # min_id wins
    assert await page(max_id="9" * 24) == ids[::-1]  # longer than any id: above them all
    assert await page(max_id="1", limit=100) == []
    assert await page(limit=0) == []
    with pytest.raises(MastodonAPIError) as caught:
        await world.run(api.scheduled_statuses, limit=-1)
    assert caught.value.args[1] == 400
    auth = {"Authorization": f"Bearer {await world.token('bob', 'delayed')}"}
    async with world.gateway.client.get("/api/v1/scheduled_statuses?limit=-3", headers=auth) as resp:
        assert (resp.status, await resp.json()) == (
            400, {"error": "Pagination values for `offset` and `limit` must be positive"})


async def test_a_page_holds_only_the_callers_posts_not_yet_out(world: World) -> None:
    """Another writer's posts and a post already published are not on the caller's pages, and
    do not shorten them: a full page is still followed by the next."""
    alice = await world.client("alice", "cosigned")
    carol = await world.client("carol", "cosigned")
    mine = [(await world.run(alice.status_post, f"Alice {n}")).id for n in range(3)]
    theirs = (await world.run(carol.status_post, "Carol's")).id
    mine.append((await world.run(alice.status_post, "Alice 3")).id)
    first = await world.run(alice.scheduled_statuses, limit=2)
    assert [s.id for s in first] == [mine[3], mine[2]]
    rest = await world.run(alice.fetch_remaining, first)
    assert [s.id for s in rest] == mine[::-1]
    assert [s.id for s in await world.run(carol.scheduled_statuses)] == [theirs]
