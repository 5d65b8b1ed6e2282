"""Who may word a pending revision of a published post, over the surfaces people use: a
co-signer's words in it (from a Mastodon.py app or the approval page's edit form) cost them their
approval, and a managed account's owner, who only suggests, words neither a published post nor
its pending revision. Over HTTP, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from mastodon.errors import MastodonAPIError

from tests.audit.logtools import verified_by_cli
from tests.clients.revisions import pending_revision, published_on_masto
from tests.clients.world import World
from tests.conftest import Gateway, write_policy
from tests.pages.conftest import pages_on


async def _released(gw: Gateway, revision: str, *, by: tuple[str, str]) -> None:
    """The two co-signers ``by`` approve ``revision`` (each approval taken), and the publisher runs."""
    for approver in by:
        code, body = await gw.act(approver, revision, "approve")
        assert code == 200, body
    await gw.tick()


async def test_a_cosigner_editing_a_revision_from_a_mastodon_app_no_longer_approves_it(
    world: World, policy_dir: Path,
) -> None:
    """Bob, a co-signer, rewords alice's pending revision with ``PUT /api/v1/statuses/:id`` on
    the revision's id: his approval of it is refused (403), and the words that go out are his,
    approved by two others, naming him."""
    gw = world.gateway
    _, status, pending = await pending_revision(world, policy_dir, "Doors at 9", "Doors at 10")
    api = await world.client("bob", "masto")
    await world.run(api.status_update, pending["id"], "Doors at 10, bar at 8")
    code, body = await gw.act("bob", pending["id"], "approve")
    assert code == 403, body
    await _released(gw, pending["id"], by=("carol", "dave"))
    assert status.edits == ["Doors at 10, bar at 8\n\n—alice, edited by bob"]
    await verified_by_cli(gw)


async def test_a_cosigner_editing_the_published_status_from_a_mastodon_app_is_refused(
    world: World, policy_dir: Path,
) -> None:
    """Bob's ``PUT /api/v1/statuses/:id`` on the published status while alice's revision waits
    is refused (403; he approves its edits, he does not write the post): the revision keeps her
    words, and his approval of them still counts."""
    gw = world.gateway
    post_id, status, pending = await pending_revision(world, policy_dir, "Quiz at 8", "Quiz at 9")
    api = await world.client("bob", "masto")
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.status_update, post_id, "Quiz at 9, prizes")
    assert refused.value.args[1] == 403
    shown = await gw.get("alice", pending["id"])
    assert (shown["text"], shown["version"]) == ("Quiz at 9", pending["version"])
    await _released(gw, pending["id"], by=("bob", "dave"))
    assert status.edits == ["Quiz at 9\n\n—alice"]
    await verified_by_cli(gw)


async def test_a_cosigner_editing_a_revision_on_its_page_no_longer_approves_it(
    world: World, policy_dir: Path,
) -> None:
    """Bob rewords a pending revision with its page's edit form, then presses approve: refused
    (403), and it still needs two approvals, neither his, the platform keeping the published words."""
    gw = world.gateway
    _, status, pending = await pending_revision(world, policy_dir, "Talk at 3", "Talk at 4")
    async with pages_on(gw) as pages:
        bob = await pages.person("bob")
        code, _, _ = await bob.post(f"/posts/{pending['id']}/edit", {"text": "Talk at 4, room B", "version": "1"})
        assert code == 303
        code, page, _ = await bob.post(f"/posts/{pending['id']}/approve", {"version": "2"})
        assert code == 403, page
    shown = await gw.get("alice", pending["id"])
    assert (shown["text"], shown["approvals_needed"]) == ("Talk at 4, room B", 2), shown
    await gw.tick()
    assert status.edits == []
    await verified_by_cli(gw)


def _managed(policy_dir: Path, instance: str) -> None:
    """``masto`` managed by erin, who suggests; a rule holds words about prices for a second look."""
    write_policy(policy_dir, "masto", f"""account: masto
platform: mastodon
handle: "@brand@mastodon.example"
instance: {instance}
credentials: env:BRAND_MASTODON_TOKEN
tier: managed
owner: erin
writers: [alice, carol]
rules:
  - name: prices
    action: hold
    any_words: [price]
    reason: Check prices first
""")


async def test_a_managed_owner_words_neither_a_published_post_nor_its_pending_revision(
    world: World, policy_dir: Path,
) -> None:
    """Erin owns a managed account, where she only suggests: her edit of a published post, and
    of alice's edit of it held by a rule, is refused (403) natively and from a Mastodon.py app;
    nothing of hers reaches the platform, and the held edit keeps alice's words."""
    gw = world.gateway
    _managed(policy_dir, world.upstream_url)
    await gw.sync_policies()
    post_id, status = await published_on_masto(gw, world.upstream, "Open late today")
    code, pending = await gw.call("alice", "PATCH", f"/v1/posts/{post_id}", {"text": "Open late, price list inside"})
    assert (code, pending["state"], pending["revises"]) == (200, "held", post_id), pending
    api = await world.client("erin", "masto")
    for target in (post_id, pending["id"]):
        code, body = await gw.call("erin", "PATCH", f"/v1/posts/{target}", {"text": "Closed today"})
        assert code == 403, body
        with pytest.raises(MastodonAPIError) as refused:
            await world.run(api.status_update, target, "Closed today")
        assert refused.value.args[1] == 403
    assert (await gw.get("alice", pending["id"]))["text"] == "Open late, price list inside"
    await gw.tick()
    assert status.edits == []
    await verified_by_cli(gw)
