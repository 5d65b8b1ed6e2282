"""An app pointed at a sandbox account shows what Byline published there: account lookup, the
account, its statuses and the home and public timelines come from Byline's own record, paged
as Mastodon pages them. The account's id is the one verify_credentials gives."""

from __future__ import annotations

from typing import Any

import pytest
from mastodon import Mastodon, MastodonNotFoundError

from tests.clients.mastodon_shapes import check, check_list, pagination_links
from tests.clients.world import World


async def _published(world: World, api: Mastodon) -> dict[str, str]:
    """Posts on the direct account, by name: five published (one unlisted, one a reply), one
    deleted after it went out, one held by a rule, and another account's published post."""
    made: dict[str, str] = {}

    async def post(name: str, text: str, **kwargs: Any) -> None:
        made[name] = (await world.run(api.status_post, text, **kwargs)).id
        await world.gateway.tick()

    await post("first", "First post")
    await post("gone", "Deleted later")
    await post("quiet", "Unlisted one", visibility="unlisted")
    await post("reply", "A reply", in_reply_to_id=made["first"])
    await post("fourth", "Fourth post")
    await post("last", "Last post")
    await world.run(api.status_delete, made["gone"])
    made["held"] = (await world.run(api.status_post, "Someone was fired")).id
    other = await world.client("bob", "delayed")
    made["elsewhere"] = (await world.run(other.status_post, "Bob's")).id
    return made


async def test_lookup_and_account_are_the_apps_own(world: World) -> None:
    """lookup finds the account by its acct (with or without @, or @ Byline's host) and GET
    /accounts/:id gives it; the id is verify_credentials' id, any other is not found."""
    api = await world.client("alice", "direct")
    me = await world.run(api.account_verify_credentials)
    host = world.base.split("://", 1)[1]
    for acct in ("alice", "@alice", "ALICE", f"alice@{host}"):
        found = await world.run(api.account_lookup, acct)
        assert (found.id, found.acct, found.username) == (me.id, "alice", "alice"), acct
    account = await world.run(api.account, me.id)
    assert (account.id, account.acct, account.url) == (me.id, "alice", me.url)
    assert account.url.endswith("/sandbox/direct")
    for acct in ("erin", "alice@elsewhere.example", ""):
        with pytest.raises(MastodonNotFoundError):
            await world.run(api.account_lookup, acct)
    with pytest.raises(MastodonNotFoundError):
        await world.run(api.account, "12345")
    auth = {"Authorization": f"Bearer {await world.token('alice', 'direct')}"}
    for path in ("/api/v1/accounts/lookup?acct=alice", f"/api/v1/accounts/{me.id}"):
        async with world.gateway.client.get(path, headers=auth) as resp:
            check("Account", await resp.json())


async def test_statuses_count_is_what_byline_published_and_is_still_up(world: World) -> None:
    """The account's statuses_count, as apps show it on the profile, is its published posts still
    up: not the deleted, held or another account's ones, and it follows a delete at once (before:
    0 for every account not on Mastodon)."""
    api = await world.client("alice", "direct")
    assert (await world.run(api.account_verify_credentials)).statuses_count == 0
    made = await _published(world, api)
    me = await world.run(api.account_verify_credentials)
    assert me.statuses_count == 5
    assert (await world.run(api.account, me.id)).statuses_count == 5
    assert (await world.run(api.status, made["first"])).account.statuses_count == 5
    assert {s.account.statuses_count for s in await world.run(api.account_statuses, me.id)} == {5}
    await world.run(api.status_delete, made["first"])
    assert (await world.run(api.account_verify_credentials)).statuses_count == 4
    bob = await world.client("bob", "delayed")
    assert (await world.run(bob.account_verify_credentials)).statuses_count == 0  # Bob's is not out yet


async def test_account_statuses_are_what_byline_published_paged(world: World) -> None:
    """The account's statuses: its published posts (not the deleted, held or another account's
    ones), newest first, two a page with Mastodon.py following the Link header both ways."""
    api = await world.client("alice", "direct")
    made = await _published(world, api)
    me = await world.run(api.account_verify_credentials)
    out = [made[n] for n in ("last", "fourth", "reply", "quiet", "first")]
    first = await world.run(api.account_statuses, me.id, limit=2)
    assert [s.id for s in first] == out[0:2]
    second = await world.run(api.fetch_next, first)
    assert second is not None and [s.id for s in second] == out[2:4]
    third = await world.run(api.fetch_next, second)
    assert third is not None and [s.id for s in third] == out[4:5]
    assert await world.run(api.fetch_next, third) is None
    back = await world.run(api.fetch_previous, third)
    assert back is not None and [s.id for s in back] == out[2:4]
    everything = await world.run(api.fetch_remaining, first)
    assert [s.id for s in everything] == out
    timeline = {p["text"]: p["id"] for p in await world.gateway.timeline("direct")}
    assert [s.url.rsplit("/", 1)[1] for s in everything] == [f"direct#post-{timeline[t]}" for t in (
        "Last post", "Fourth post", "A reply", "Unlisted one", "First post")]
    assert {s.account.id for s in everything} == {me.id}
    assert [s.content for s in everything][:2] == ["<p>Last post</p>", "<p>Fourth post</p>"]
    no_replies = await world.run(api.account_statuses, me.id, exclude_replies=True)
    assert [s.id for s in no_replies] == [made[n] for n in ("last", "fourth", "quiet", "first")]
    assert await world.run(api.account_statuses, me.id, only_media=True) == []  # the sandbox takes no media
    assert await world.run(api.account_statuses, me.id, pinned=True) == []
    assert [s.id for s in await world.run(api.account_statuses, me.id, min_id=made["quiet"], limit=1)] == [
        made["reply"]]
    auth = {"Authorization": f"Bearer {await world.token('alice', 'direct')}"}
    url = f"{world.base}/api/v1/accounts/{me.id}/statuses"
    async with world.gateway.client.get(f"/api/v1/accounts/{me.id}/statuses?limit=2&exclude_replies=true",
                                        headers=auth) as resp:
        body = await resp.json()
        check_list("Status", body)
        assert [s["id"] for s in body] == out[0:2]
        assert pagination_links(resp.headers["Link"])["next"] == {"limit": "2", "exclude_replies": "true",
                                                                 "max_id": out[1]}
        assert resp.headers["Link"] == (f'<{url}?limit=2&exclude_replies=true&max_id={out[1]}>; rel="next", '
                                        f'<{url}?limit=2&exclude_replies=true&min_id={out[0]}>; rel="prev"')
    with pytest.raises(MastodonNotFoundError):
        await world.run(api.account_statuses, "12345")


async def test_home_and_public_timelines_show_the_accounts_posts(world: World) -> None:
    """Home has every published post of the account, public its public ones; both page by
    Link (a timeline links onwards from any page with statuses, as Mastodon's do)."""
    api = await world.client("alice", "direct")
    made = await _published(world, api)
    home = await world.run(api.timeline_home, limit=2)
    assert [s.id for s in home] == [made["last"], made["fourth"]]
    assert [s.id for s in await world.run(api.fetch_remaining, home)] == [
        made[n] for n in ("last", "fourth", "reply", "quiet", "first")]
    public = await world.run(api.timeline_public, limit=3)
    assert [s.id for s in await world.run(api.fetch_remaining, public)] == [
        made[n] for n in ("last", "fourth", "reply", "first")]
    assert await world.run(api.timeline_public, remote=True) == []
    assert [s.id for s in await world.run(api.timeline_home, since_id=made["reply"])] == [
        made["last"], made["fourth"]]
    auth = {"Authorization": f"Bearer {await world.token('alice', 'direct')}"}
    url = f"{world.base}/api/v1/timelines/public"
    async with world.gateway.client.get(f"/api/v1/timelines/public?local=true&max_id={made['reply']}",
                                        headers=auth) as resp:
        body = await resp.json()
        check_list("Status", body)
        assert [s["id"] for s in body] == [made["first"]]
        assert resp.headers["Link"] == (f'<{url}?local=true&max_id={made["first"]}>; rel="next", '
                                        f'<{url}?local=true&min_id={made["first"]}>; rel="prev"')
    async with world.gateway.client.get(f"/api/v1/timelines/home?max_id={made['first']}", headers=auth) as resp:
        assert (await resp.json(), resp.headers.get("Link")) == ([], None)


async def test_statuses_by_id_are_byline_posts_in_the_order_asked(world: World) -> None:
    """``statuses(ids)`` (``GET /api/v1/statuses?id[]=``, Phanpy's batch fetch on Mastodon
    4.3) answers each post Byline made that the app may see, as ``status(id)`` does, in the
    order asked and once each; deleted ones, another account's and unknown ids are left out;
    more than 20 ids is Mastodon's validation error."""
    api = await world.client("alice", "direct")
    made = await _published(world, api)
    asked = [made["last"], made["held"], "999999", made["gone"], made["first"], made["elsewhere"], made["last"]]
    found = await world.run(api.statuses, asked)
    assert [s.id for s in found] == [made["last"], made["held"], made["first"]]
    assert [s.content for s in found] == [(await world.run(api.status, i)).content for i in
                                          (made["last"], made["held"], made["first"])]
    auth = {"Authorization": f"Bearer {await world.token('alice', 'direct')}"}
    async with world.gateway.client.get(f"/api/v1/statuses?id[]={made['first']}", headers=auth) as resp:
        check_list("Status", await resp.json())
    query = "&".join(f"id[]={n}" for n in range(1, 22))
    async with world.gateway.client.get(f"/api/v1/statuses?{query}", headers=auth) as resp:
        assert resp.status == 422, await resp.text()
    async with world.gateway.client.get("/api/v1/statuses?id[]=12x", headers=auth) as resp:
        assert resp.status == 422, await resp.text()


async def test_a_status_is_read_without_its_history(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Status shows neither a post's versions nor its log events: reading one (alone, by
    ``id[]``, or as a stream's event) leaves them unread; ``/history`` reads them."""
    from gateway.storage import log as log_sql
    from gateway.storage import posts as posts_sql

    api = await world.client("alice", "direct")
    made = (await world.run(api.status_post, "Read lightly")).id
    await world.gateway.tick()
    reads: list[str] = []
    for module, name in ((log_sql, "post_entries"), (posts_sql, "versions")):
        original = getattr(module, name)

        async def counted(*args: Any, _original: Any = original, _name: str = name, **kwargs: Any) -> Any:
            reads.append(_name)
            return await _original(*args, **kwargs)

        monkeypatch.setattr(module, name, counted)
    await world.run(api.status, made)
    await world.run(api.statuses, [made])
    assert reads == []
    assert [e.content for e in await world.run(api.status_history, made)] == ["<p>Read lightly</p>"]
    assert sorted(set(reads)) == ["post_entries", "versions"]
