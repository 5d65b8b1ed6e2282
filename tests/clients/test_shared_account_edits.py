"""An edit of a published post is new words going out as the account: while another policy
file's credential is a token of the same platform account, the edit is not sent, and the
client app hears why; once the files are put right, it is."""

from __future__ import annotations

import pytest
from mastodon import MastodonAPIError

from gateway.appkeys import REGISTRY
from tests.clients.test_published_races import published
from tests.clients.world import World
from tests.conftest import write_policy

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
    with pytest.raises(MastodonAPIError) as refused:
        await world.run(api.status_update, status_id, "Words nobody co-signed")
    assert refused.value.args[1] == 503
    assert "masto and brand publish as one Mastodon account" in str(refused.value.args[-1])
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["First words"]

    (gw.app[REGISTRY].directory / "brand.yaml").unlink()
    assert await gw.sync_policies() == ["brand"]
    await world.run(api.status_update, status_id, "Words of masto alone")
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Words of masto alone"]
