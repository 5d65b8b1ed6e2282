"""A Mastodon-compatible server whose accounts carry no profile ``url`` (some forks leave it
out), driven with Mastodon.py against the stand-in over real sockets on both databases: apps
are still given an account with an address, and a deletion that cannot be told from an unseen
status is refused rather than recorded."""

from __future__ import annotations

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


async def test_a_deletion_on_a_server_without_profile_addresses(world: World) -> None:
    """The status is deleted (200) as on any server; once it is gone from the instance's own
    pages, Byline's deletion, answered 404 twice, cannot tell gone from another account's
    unseen status without the account's profile address: refused (503) saying so, the record
    left published, never recorded on a guess."""
    world.upstream.profile_urls = False
    api = await world.client("alice", "masto")
    first = await world.run(api.status_post, "Deleted as usual")
    second = await world.run(api.status_post, "Deleted on the instance first")
    await world.gateway.tick()
    await world.run(api.status_delete, first["id"])
    assert await _state(world, first["id"]) == "deleted"
    [gone] = [s for s in world.upstream.statuses() if "instance first" in s.text]
    gone.deleted = True
    token = await world.token("alice", "masto")
    status, body = await world.gateway.call(None, "DELETE", f"/api/v1/statuses/{second['id']}",
                                            headers={"Authorization": f"Bearer {token}"})
    assert status == 503 and "Byline cannot tell which, so records no deletion" in body["error"], body
    assert await _state(world, second["id"]) == "published"
