"""An edit of a published post is new words going out as the account, and a deletion takes the
account's words down: while another policy file's credential is a token of the same platform
account, neither is sent, and the client app hears why; once the files are put right, it is."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from mastodon import MastodonAPIError

from adapters.base import AdapterError
from adapters.mastodon import MastodonAdapter
from gateway.appkeys import REGISTRY
from gateway.clock import ManualClock
from gateway.services.posts import PostService
from tests.audit.logtools import verified_by_cli
from tests.clients.test_published_races import logged, outcome, published, puts, recorded_state, unanswered
from tests.clients.world import World
from tests.conftest import Gateway, write_policy

SECOND_TOKEN = "mtok-second-app-of-brand-0c4f"
"""Another app's token of the Mastodon account behind ``masto``."""


async def test_an_edit_waits_while_another_file_speaks_for_the_account(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A co-signed file added on a second token of masto's platform account: alice's edit of her
    direct post is refused with 503, naming the other account, and the platform keeps the words
    it had; with that file removed, the same edit goes out."""
    gw = world.gateway
    api, status_id = await published(world, "First words")
    await _second_file(world, monkeypatch)
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.status_update, status_id, "Words nobody co-signed")
    assert refused.value.args[1] == 503
    assert "masto and brand publish as one Mastodon account" in str(refused.value.args[-1])
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["First words"]

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    await world.run(api.status_update, status_id, "Words of masto alone")
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Words of masto alone"]


async def test_an_unrecorded_edit_waits_to_be_settled_while_another_file_speaks_for_the_account(
    world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mastodon takes alice's edit and its answer is lost; before the hold runs out a co-signed
    file is added on a second token of the same platform account. The publisher does not send
    the edit again while the files disagree: the change stays kept and the post held for it,
    round after round (another edit is refused meanwhile); with that file removed, the edit is
    sent and recorded once, and the log verifies."""
    gw = world.gateway
    api, status_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "edit")
    assert await outcome(world, api.status_update, status_id, "Launch day, edit A") == 503
    answered()
    sent = puts(world)
    await _second_file(world, monkeypatch)
    for _ in range(2):
        clock.advance(timedelta(minutes=2, seconds=1))  # past the hold, 120 s
        await gw.tick()
        assert puts(world) == sent, "nothing sent as the account while another file speaks for it"
        assert (await logged(gw, status_id))[-1] == "post.revising"
    assert await outcome(world, api.status_update, status_id, "Launch day, edit B") == 503

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    assert await outcome(world, api.status_update, status_id, "Launch day, edit B") == 409, "held for A still"
    clock.advance(timedelta(minutes=2, seconds=1))
    await gw.tick()
    assert puts(world) == sent + 1
    [shown] = world.upstream.statuses(world.upstream_account)
    assert shown.text == (await world.run(api.status_source, status_id)).text == "Launch day, edit A"
    assert (await logged(gw, status_id))[-2:] == ["post.revising", "post.revised"]
    await verified_by_cli(gw)


async def test_a_deletion_waits_while_another_file_speaks_for_the_account(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A co-signed file added on a second token of masto's platform account: alice's deletion of
    her direct post is refused with 503, naming the other account, and the post stays on the
    platform (a file that may not publish alone as the account may not take its words down
    alone); with that file removed, the same deletion goes through."""
    gw = world.gateway
    api, status_id = await published(world, "Words to take down")
    await _second_file(world, monkeypatch)
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.status_delete, status_id)
    assert refused.value.args[1] == 503
    assert "masto and brand publish as one Mastodon account" in str(refused.value.args[-1])
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Words to take down"]
    assert deletes(world) == 0
    assert await recorded_state(gw, status_id) == "published"

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    await world.run(api.status_delete, status_id)
    assert world.upstream.statuses(world.upstream_account) == []
    assert await recorded_state(gw, status_id) == "deleted"


async def test_an_unrecorded_deletion_waits_to_be_settled_while_another_file_speaks_for_the_account(
    world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Alice's deletion gets no answer (it did not reach Mastodon); before the hold runs out a
    co-signed file is added on a second token of the same platform account. The publisher does
    not send the deletion while the files disagree: the post stays held for it and on the
    platform, round after round; with that file removed, it is deleted and recorded, once."""
    gw = world.gateway
    api, status_id = await published(world, "Launch day")
    original = MastodonAdapter.delete_published

    async def lost(adapter: MastodonAdapter, *args: Any, **kwargs: Any) -> None:
        raise AdapterError("delete: no answer within 30 s", retryable=True)

    monkeypatch.setattr(MastodonAdapter, "delete_published", lost)
    assert await outcome(world, api.status_delete, status_id) == 503
    monkeypatch.setattr(MastodonAdapter, "delete_published", original)
    await _second_file(world, monkeypatch)
    for _ in range(2):
        clock.advance(timedelta(minutes=2, seconds=1))  # past the hold, 120 s
        await gw.tick()
        assert deletes(world) == 0, "nothing taken down as the account while another file speaks for it"
        assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day"]
        assert await recorded_state(gw, status_id) == "published"

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    clock.advance(timedelta(minutes=2, seconds=1))
    await gw.tick()
    assert deletes(world) == 1
    assert world.upstream.statuses(world.upstream_account) == []
    assert await recorded_state(gw, status_id) == "deleted"
    await verified_by_cli(gw)


async def test_a_file_come_into_force_while_a_deletion_is_held_stops_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The co-signed file on a second token of masto's platform account comes into force just
    after the deletion passed its check, while the post is being held for it: the deletion is
    checked again right before it is sent, refused, the post let go (not left held) and still
    on the platform; with the file removed, the same deletion goes through at once."""
    gw = world.gateway
    api, status_id = await published(world, "Words to take down")
    original = PostService.hold

    async def hold_as_a_file_arrives(self: PostService, *args: Any, **kwargs: Any) -> Any:
        held = await original(self, *args, **kwargs)
        await _second_file(world, monkeypatch)
        return held

    monkeypatch.setattr(PostService, "hold", hold_as_a_file_arrives)
    assert await outcome(world, api.status_delete, status_id) == 503
    monkeypatch.setattr(PostService, "hold", original)
    assert deletes(world) == 0
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Words to take down"]

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    await world.run(api.status_delete, status_id)
    assert world.upstream.statuses(world.upstream_account) == []
    assert await recorded_state(gw, status_id) == "deleted"


def deletes(world: World) -> int:
    """How many deletions Mastodon was asked for."""
    return sum(r.method == "DELETE" for r in world.upstream.faults.requests)


async def _second_file(world: World, monkeypatch: pytest.MonkeyPatch) -> Gateway:
    """A co-signed policy file "brand" on a second token of masto's platform account, in force."""
    gw = world.gateway
    world.upstream_account.tokens.add(SECOND_TOKEN)
    monkeypatch.setenv("BRAND_SECOND_TOKEN", SECOND_TOKEN)
    instance = gw.app[REGISTRY].policies["masto"].policy.instance
    write_policy(gw.app[REGISTRY].directory, "brand", f"""
        account: brand
        platform: mastodon
        instance: {instance}
        credentials: env:BRAND_SECOND_TOKEN
        tier: co-signed
        owner: alice
        writers: [alice]
        approvals:
          required: 1
          from: [bob]
    """)
    assert await gw.sync_policies() == ["brand"]
    return gw
