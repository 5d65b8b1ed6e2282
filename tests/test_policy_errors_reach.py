"""Who sees a refused policy file's problems: admins all of them, others only their accounts'."""

from __future__ import annotations

from pathlib import Path

from gateway.appkeys import IDENTITY
from gateway.clock import ManualClock
from gateway.policy.loader import check_dir
from tests.conftest import TEST_POLICIES, make_policy_dir, started_gateway, write_policy


async def test_refused_files_are_shown_to_their_people_and_admins(
    db_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """A newer ``cosigned.yaml`` that is refused shows to its people (the policy still in force
    names them) and to admins; a file that never loaded shows to admins only; a token bound to
    another account sees none."""
    policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
    async with started_gateway(db_url, policy_dir, clock, admins="erin") as gw:
        write_policy(policy_dir, "cosigned", "account: cosigned\ntier: co-signed\nowner: [not, a, name]\n")
        write_policy(policy_dir, "secret-plans", "account: secret-plans\ntier: nonsense\n")
        await gw.sync_policies()

        async def files(user: str) -> set[str]:
            status, body = await gw.call(user, "GET", "/v1/policies/errors")
            assert status == 200, body
            return {e["file"] for e in body["errors"]}

        assert await files("erin") == {"cosigned.yaml", "secret-plans.yaml"}
        assert await files("bob") == {"cosigned.yaml"}  # an approver on cosigned
        assert await files("alice") == {"cosigned.yaml"}  # its owner
        gw.tokens["alice-direct"] = await gw.app[IDENTITY].create(user="alice", account="direct")
        assert await files("alice-direct") == set()
        gw.tokens["nobody"] = await gw.app[IDENTITY].create(user="zed")
        assert await files("nobody") == set()


async def test_a_yml_file_is_reported_not_ignored(db_url: str, tmp_path: Path, clock: ManualClock) -> None:
    """``managed.yaml`` renamed to ``managed.yml`` is not loaded, and says so where refused files
    do: the errors API and ``byline policy check`` (``check_dir``); the account's file is gone, so is its policy."""
    policy_dir = make_policy_dir(tmp_path, TEST_POLICIES)
    async with started_gateway(db_url, policy_dir, clock, admins="erin") as gw:
        (policy_dir / "managed.yaml").rename(policy_dir / "managed.yml")
        await gw.sync_policies()
        expected = {"file": "managed.yml", "line": None, "key": "",
                    "message": "not read: Byline reads policy files ending in .yaml; rename it to managed.yaml"}
        status, body = await gw.call("erin", "GET", "/v1/policies/errors")
        assert status == 200 and body["errors"] == [expected]
        status, body = await gw.call("bob", "POST", "/v1/posts", {"account": "managed", "text": "hi"})
        assert status == 404, body
    good, issues = check_dir(policy_dir)  # what `byline policy check` prints, failing
    assert "managed" not in good
    assert [str(i) for i in issues] == [
        "managed.yml: not read: Byline reads policy files ending in .yaml; rename it to managed.yaml"]
