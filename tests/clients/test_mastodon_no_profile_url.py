"""A Mastodon-compatible server whose accounts carry no profile ``url`` (some forks leave it
out), driven with Mastodon.py against the stand-in over real sockets on both databases: apps
are still given an account with an address, and a deletion answered 404 twice is recorded only
where the account the status went out as is the token's, else refused rather than recorded."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.appkeys import DB
from tests.clients.world import World


async def _state(world: World, post_id: str) -> str:
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state FROM posts WHERE id = ?", post_id)
    assert row is not None
    return str(row["state"])


async def test_apps_are_given_the_accounts_public_page_for_its_address(world: World) -> None:
    """The account, and every status showing it, carries an absolute ``url`` (Byline's public
    page of the account) where the server gave none: an app that decodes it as a URL (Ice
    Cubes) would drop the account and each such status (before: no ``url`` at all)."""
    world.upstream.profile_urls = False
    api = await world.client("alice", "masto")
    page = f"{world.base}/@masto"
    me = await world.run(api.account_verify_credentials)
    assert (me["url"], me["acct"]) == (page, "brand")
    status = await world.run(api.status_post, "Hello from a fork")
    assert status["account"]["url"] == page
    await world.gateway.tick()
    assert (await world.run(api.status, status["id"]))["account"]["url"] == page


async def _gone_on_the_instance(world: World, words: str) -> None:
    [gone] = [s for s in world.upstream.statuses() if words in s.text]
    gone.deleted = True


async def _delete(world: World, status_id: str) -> tuple[int, dict[str, str]]:
    token = await world.token("alice", "masto")
    return await world.gateway.call(None, "DELETE", f"/api/v1/statuses/{status_id}",
                                    headers={"Authorization": f"Bearer {token}"})


async def test_a_deletion_on_a_server_without_profile_addresses(world: World) -> None:
    """The status is deleted (200) as on any server; once it is gone from the instance's own
    pages, Byline's deletion, answered 404 twice, is proof it is gone: the instance said, when
    it went out, which account it went out as, and that is the token's account, which always
    sees its own statuses. Recorded deleted (before: refused, 503, and left published)."""
    world.upstream.profile_urls = False
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Deleted as usual")
    second = await world.run(api.status_post, "Deleted on the instance first")
    await world.gateway.tick()
    await world.run(api.status_delete, first["id"])
    assert await _state(world, first["id"]) == "deleted"
    await _gone_on_the_instance(world, "instance first")
    status, body = await _delete(world, second["id"])
    assert status == 200, body
    assert await _state(world, second["id"]) == "deleted"


async def test_a_deletion_of_a_post_whose_author_was_not_recorded_is_refused(world: World) -> None:
    """A post published before its author was recorded (``remote_author`` NULL), on a server
    without profile addresses: nothing tells its gone status from another account's unseen
    one, so the deletion is refused (503) saying so, the record left published."""
    world.upstream.profile_urls = False
    api = await world.client("alice", "masto")
    posted = await world.run(api.status_post, "Published before authors were kept")
    await world.gateway.tick()
    async with world.gateway.app[DB].write() as txn:
        await txn.execute("UPDATE posts SET remote_author = NULL WHERE id = ?", posted["id"])
    await _gone_on_the_instance(world, "before authors")
    status, body = await _delete(world, posted["id"])
    assert status == 503 and "Byline cannot tell which, so records no deletion" in body["error"], body
    assert await _state(world, posted["id"]) == "published"


async def _published_before_authors(world: World, api: Any, words: str, **options: Any) -> str:
    """A status posted through Byline, recorded as a post published before its author was."""
    posted = await world.run(api.status_post, words, **options)
    await world.gateway.tick()
    async with world.gateway.app[DB].write() as txn:
        await txn.execute("UPDATE posts SET remote_author = NULL WHERE id = ?", posted["id"])
    return str(posted["id"])


@pytest.mark.parametrize("visibility", ["public", "unlisted"])
async def test_a_public_status_gone_for_everyone_is_recorded_deleted(world: World, visibility: str) -> None:
    """A post sent public (or unlisted) before its author was recorded, its status gone: a read
    without the token answers 404 while one of the account's own statuses of that visibility
    read so answers, so it is shown to no one, whoever's it was. Recorded deleted (before:
    refused, 503, and left published for good)."""
    world.upstream.profile_urls = False
    api = await world.client("alice", "masto")
    await world.run(api.status_post, "Still on the instance", visibility=visibility)
    gone = await _published_before_authors(world, api, "Published before authors were kept", visibility=visibility)
    await _gone_on_the_instance(world, "before authors")
    status, body = await _delete(world, gone)
    assert status == 200, body
    assert await _state(world, gone) == "deleted"


@pytest.mark.parametrize(("anonymous_reads", "other"), [
    pytest.param(False, "public", id="server hides every status from readers without a token"),
    pytest.param(True, "private", id="no other public status to compare with"),
])
async def test_a_public_status_gone_proves_nothing_where_anyone_might_not_see_it(
    world: World, anonymous_reads: bool, other: str
) -> None:
    """Where the server answers every read without a token 404 (as a fork may), or the account
    has no other status of that visibility to show that it does not, the public status's 404
    proves nothing: the deletion is refused (503) and the post stays published."""
    world.upstream.profile_urls = False
    world.upstream.anonymous_reads = anonymous_reads
    api = await world.client("alice", "masto")
    await world.run(api.status_post, "Still on the instance", visibility=other)
    gone = await _published_before_authors(world, api, "Published before authors were kept", visibility="public")
    await _gone_on_the_instance(world, "before authors")
    status, body = await _delete(world, gone)
    assert status == 503 and "Byline cannot tell which, so records no deletion" in body["error"], body
    assert await _state(world, gone) == "published"
