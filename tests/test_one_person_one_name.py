"""A person is named one way in a policy: two names that read as one (``alice`` and ``Alice``,
``alice`` and ``aIice``) are refused, since the second would be another person to Byline and
the same one to whoever reads the file, and a writer given that name's token too would approve
her own words as a co-signer."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.appkeys import IDENTITY
from tests.conftest import TEST_POLICIES, Gateway, write_policy


@pytest.mark.parametrize("twin", ["Alice", "aIice", "ALICE"])
async def test_a_writer_named_again_among_the_co_signers_is_refused(
    gateway: Gateway, policy_dir: Path, twin: str,
) -> None:
    """``cosigned``'s co-signers made bob, carol and ``twin`` (for dave), a name that reads as
    its writer alice's: the file is refused, saying which names are one, and the policy before stays in
    force. Alice's post then needs bob's and carol's approvals: ``twin``, whose token alice
    holds, has no role (404) and cannot be the second. Before, the file was taken, and alice's
    own approval under the second name put her post out with one co-signer's."""
    write_policy(policy_dir, "cosigned", TEST_POLICIES["cosigned"].replace(
        "from: [bob, carol, dave]", f"from: [bob, carol, {twin}]"))
    await gateway.sync_policies()
    gateway.tokens[twin] = await gateway.app[IDENTITY].create(user=twin, account="cosigned")
    post = await gateway.submit("alice", "cosigned", "Our numbers are in")
    assert post["state"] == "held", post
    code, body = await gateway.act("bob", post["id"], "approve")
    assert (code, body["state"]) == (200, "held"), body
    before = await gateway.snapshot()
    code, body = await gateway.act(twin, post["id"], "approve")
    assert code == 404, body
    assert await gateway.snapshot() == before
    assert (await gateway.get("alice", post["id"]))["state"] == "held"
    status, body = await gateway.call("alice", "GET", "/v1/policies/errors")
    assert status == 200, body
    [error] = [e for e in body["errors"] if e["file"] == "cosigned.yaml"]
    assert f"'{twin}'" in error["message"] and "'alice'" in error["message"], error
