"""What a Mastodon instance's 404 for a status says, driven with Mastodon.py against the
stand-in over real sockets on both databases: another account's private status answers the
token's account 404 as a status gone does, so a deletion answered so is recorded only where the
status was surely the token's account's own."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.appkeys import DB
from tests.clients.world import READING, World, write_masto_policy

OTHER_TOKEN = "mtok-another-account-3f9a"


async def _state(world: World, post_id: str) -> str:
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state FROM posts WHERE id = ?", post_id)
    assert row is not None
    return str(row["state"])


async def test_a_deletion_through_another_accounts_token_is_not_recorded(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A private status goes out as brand; the policy's credential is then changed to another
    account's token. Deleting the post answers 404 twice (brand's private status is not that
    account's to delete nor to see), which is no proof it is gone: refused, the post still
    recorded published, the status still up (before: recorded deleted while it stood)."""
    api = await world.client("alice", "masto")
    status = await world.run(api.status_post, "For followers only", visibility="private")
    await world.gateway.tick()
    [sent] = world.upstream.statuses()
    assert (sent.visibility, sent.account_id) == ("private", world.upstream_account.id)
    world.upstream.add_account("someone", OTHER_TOKEN, scopes=READING)
    monkeypatch.setenv("OTHER_MASTODON_TOKEN", OTHER_TOKEN)
    # Handed over: the file names the other account's handle too (a token swapped under the
    # brand's handle holds the account before anything is sent).
    write_masto_policy(policy_dir, world.upstream_url, handle="@someone@mastodon.example",
                       credentials="env:OTHER_MASTODON_TOKEN")
    assert await world.gateway.sync_policies() == ["masto"]
    token = await world.token("alice", "masto")
    answer = await world.gateway.call(None, "DELETE", f"/api/v1/statuses/{status.id}",
                                      headers={"Authorization": f"Bearer {token}"})
    assert answer[0] == 503
    assert "it is gone, or another account's that the token's may not see" in answer[1]["error"]
    assert "Byline cannot tell which, so records no deletion" in answer[1]["error"]
    assert await _state(world, status.id) == "published"
    assert world.upstream.status(sent.id) is not None and not sent.deleted
