"""One policy history for several gateways on one database (issue 17), both databases.

Replicas whose policy files differ, or reach them at different moments, record each version
once, never a removal or change only one of them sees, report the drift in ``/readyz``, and
all enforce the version recorded: a post through a replica whose files are behind is decided
under the new policy, over HTTP.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gateway.appkeys import DB
from gateway.clock import ManualClock
from gateway.storage import schema
from gateway.storage.db import open_database
from tests.audit.logtools import verified_by_cli
from tests.audit.synthetic import SyntheticLog, messages, summary
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy

DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    writers: [alice, carol]
"""
COSIGNED = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    approvals:
      from: [bob, dave]
      required: 1
"""
SOLO = """
    account: solo
    platform: sandbox
    handle: "@erin"
    tier: direct
    owner: erin
"""


async def _records(gw: Gateway, account: str) -> list[tuple[str, int | None]]:
    """The account's policy entries in the log (type, version) and, checked against them, its
    recorded versions."""
    async with gw.app[DB].read() as txn:
        entries = await txn.fetchall(
            "SELECT type, entry FROM log_entries WHERE account = ? AND type LIKE 'policy.%' ORDER BY idx", account)
        versions = await txn.fetchall(
            "SELECT version FROM policy_versions WHERE account = ? ORDER BY version", account)
    found = [(str(e["type"]), json.loads(bytes(e["entry"]))["data"].get("version")) for e in entries]
    assert [int(v["version"]) for v in versions] == list(range(1, len(found) + 1))
    return found



async def _ready(gw: Gateway) -> dict[str, Any]:
    resp = await gw.client.get("/readyz")
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _post(gw: Gateway, account: str, text: str) -> dict[str, Any]:
    status, body = await gw.call("alice", "POST", "/v1/posts", json={"account": account, "text": text})
    assert status == 201, body
    return body


async def test_replicas_with_different_files_record_each_version_once(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Two gateways given different files for one account: the second's file is recorded once
    as version 2, and then nothing, however often each reloads; the first reports the drift
    and enforces version 2 (a post through it is held for a co-signer)."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-b")
    async with started_gateway(db_url, first, clock) as a:
        assert await _records(a, "brand") == [("policy.loaded", 1)]
        async with started_gateway(db_url, second, clock) as b:
            for _ in range(3):
                assert await a.sync_policies() == []
                assert await b.sync_policies() == []
            assert await _records(a, "brand") == [("policy.loaded", 1), ("policy.changed", 2)]
            drift = (await _ready(a))["policy_drift"]
            assert list(drift) == ["brand"] and drift["brand"]["version_in_force"] == 2
            assert (await _ready(b))["policy_drift"] == {}
            post = await _post(a, "brand", "Through the replica whose file is behind")
            assert post["state"] == "held", "decided under the version in force, not under A's file"
            assert post["approvers"] == ["bob", "dave"]


async def test_a_change_rolls_out_replica_by_replica(db_url: str, tmp_path: Path, clock: ManualClock) -> None:
    """An admin's change reaches one replica first: it records it; a post through the other,
    before that one has even reloaded, is decided under the change; the other records nothing
    until its file arrives, and then agrees."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        assert await _records(a, "brand") == [("policy.loaded", 1)]
        write_policy(first, "brand", COSIGNED)
        assert await a.sync_policies() == ["brand"]
        post = await _post(b, "brand", "Through the replica that has not reloaded yet")
        assert post["state"] == "held", "B decided it under version 2, which A recorded"
        assert await b.sync_policies() == []
        assert (await _ready(b))["policy_drift"]["brand"]["version_in_force"] == 2
        write_policy(second, "brand", COSIGNED)
        assert await b.sync_policies() == []
        assert (await _ready(b))["policy_drift"] == {}
        assert await _records(b, "brand") == [("policy.loaded", 1), ("policy.changed", 2)]


async def test_a_removal_one_replica_alone_sees_is_not_recorded(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """A replica without an account's file records no removal, and serves the account under the
    version recorded; the replica whose file is deleted records the removal, once."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT, "solo": SOLO}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        assert await b.sync_policies() == []
        assert await _records(a, "solo") == [("policy.loaded", 1)]
        assert (await _ready(b))["policy_drift"]["solo"]["file_sha256"] is None
        status, body = await b.call("erin", "POST", "/v1/posts", json={"account": "solo", "text": "Still here"})
        assert (status, body["state"]) == (201, "scheduled")
        (first / "solo.yaml").unlink()
        assert await a.sync_policies() == ["solo"]
        assert await b.sync_policies() == []
        assert await _records(a, "solo") == [("policy.loaded", 1), ("policy.removed", 2)]
        assert (await _ready(b))["policy_drift"] == {}


async def test_a_change_back_is_recorded_by_the_replica_that_agreed(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """An admin changes a file and then changes it back: three versions, the third the same file
    as the first; a replica started later with the first file is behind, not a change."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    async with started_gateway(db_url, first, clock) as a:
        write_policy(first, "brand", COSIGNED)
        assert await a.sync_policies() == ["brand"]
        write_policy(first, "brand", DIRECT)
        assert await a.sync_policies() == ["brand"]
        assert await _records(a, "brand") == [("policy.loaded", 1), ("policy.changed", 2), ("policy.changed", 3)]
        second = make_policy_dir(tmp_path, {"brand": COSIGNED}, "policies-b")
        async with started_gateway(db_url, second, clock) as b:
            assert (await _ready(b))["policy_drift"]["brand"]["version_in_force"] == 3
            post = await _post(b, "brand", "Direct again")
            assert post["state"] == "scheduled"
        assert len(await _records(a, "brand")) == 3


def test_the_verifier_catches_a_policy_version_recorded_twice(tmp_path: Path) -> None:
    """A log in which two gateways both recorded a version (or one was left out) fails
    ``byline audit verify``; the honest one passes."""
    direct, cosigned = summary(owner="alice", writers=["alice"]), summary(
        owner="alice", writers=["alice"], approvers=["bob"], required=1, tier="co-signed")
    honest = SyntheticLog()
    honest.add("policy.loaded", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 1})
    honest.add("policy.changed", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p2", "policy": cosigned, "version": 2})
    assert messages(honest.verify(tmp_path / "honest.export")) == []

    forged = SyntheticLog()
    forged.add("policy.loaded", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 1})
    forged.add("policy.changed", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p2", "policy": cosigned, "version": 2})
    forged.add("policy.changed", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 2})
    found = messages(forged.verify(tmp_path / "forged.export"))
    assert len(found) == 1 and "says policy version 2, but it is the account's policy record number 3" in found[0]


async def test_a_database_from_before_versions_is_numbered_by_its_log(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """A database whose policies were recorded before versions were numbered (schema version 9)
    gets each account's versions counted from its log: the version in force is the last, a
    removed account's removal too; the gateway then goes on from there, and the log verifies."""
    files = make_policy_dir(tmp_path, {"brand": DIRECT, "solo": SOLO}, "policies")
    async with started_gateway(db_url, files, clock) as gw:
        write_policy(files, "brand", COSIGNED)
        assert await gw.sync_policies() == ["brand"]
        write_policy(files, "brand", DIRECT)
        (files / "solo.yaml").unlink()
        assert await gw.sync_policies() == ["brand", "solo"]
    db = await open_database(db_url)
    try:
        async with db.write() as txn:  # back to how version 9 left it
            await txn.execute("DROP TABLE policy_versions")
            await txn.execute("ALTER TABLE policy_heads DROP COLUMN version")
            await txn.execute("ALTER TABLE policy_heads DROP COLUMN file")
            await txn.execute("DELETE FROM schema_migrations WHERE version = 10")
        await schema.migrate(db)
        async with db.read() as txn:
            versions = [(r["account"], int(r["version"]), r["sha256"] is not None, r["body"])
                        for r in await txn.fetchall(
                            "SELECT account, version, sha256, body FROM policy_versions ORDER BY account, version")]
            heads = [(r["account"], int(r["version"])) for r in await txn.fetchall(
                "SELECT account, version FROM policy_heads")]
    finally:
        await db.close()
    assert versions == [("brand", 1, True, None), ("brand", 2, True, None), ("brand", 3, True, None),
                        ("solo", 1, True, None), ("solo", 2, False, None)]
    assert heads == [("brand", 3)]
    # Put back while the gateway is down: this directory agreed with the removal, so the file it
    # now holds again is a change made here, recorded as the next version when it starts.
    write_policy(files, "solo", SOLO)
    async with started_gateway(db_url, files, clock) as gw:
        assert (await _ready(gw))["policy_drift"] == {}
        assert await _records(gw, "solo") == [("policy.loaded", 1), ("policy.removed", 2), ("policy.loaded", 3)]
        write_policy(files, "brand", COSIGNED.replace("required: 1", "required: 2"))
        assert await gw.sync_policies() == ["brand"]
        assert await _records(gw, "brand") == [
            ("policy.loaded", 1), ("policy.changed", 2), ("policy.changed", 3), ("policy.changed", 4)]
        async with gw.app[DB].read() as txn:
            kept = await txn.fetchall(
                "SELECT version FROM policy_versions WHERE account = 'brand' AND body IS NOT NULL")
        # The text of the file in force, kept once seen, for each version that was that file.
        assert sorted(int(r["version"]) for r in kept) == [1, 3, 4]
        await verified_by_cli(gw)


async def test_a_file_removed_while_the_gateway_was_down_is_recorded_at_its_start(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """The admin deletes an account's file while the only gateway is stopped (to silence the
    account): started again, the gateway knows its directory agreed with that version before,
    so the missing file is a removal, recorded once, and nothing more goes out for the account
    (before, it took the missing file for a directory behind, and went on serving the deleted
    policy). Another replica's directory, which never had the file, still records nothing."""
    policies = make_policy_dir(tmp_path, {"brand": DIRECT, "solo": SOLO}, "policies")
    async with started_gateway(db_url, policies, clock) as gw:
        assert await _records(gw, "solo") == [("policy.loaded", 1)]
    (policies / "solo.yaml").unlink()
    async with started_gateway(db_url, policies, clock) as gw:
        assert await _records(gw, "solo") == [("policy.loaded", 1), ("policy.removed", 2)]
        status, body = await gw.call("erin", "POST", "/v1/posts", json={"account": "solo", "text": "Still posting?"})
        assert status == 404, body
        assert (await _ready(gw))["policy_drift"] == {}
    behind = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-behind")
    write_policy(policies, "solo", SOLO.replace("handle: \"@erin\"", "handle: \"@erin.again\""))
    async with started_gateway(db_url, policies, clock) as gw, started_gateway(db_url, behind, clock) as other:
        assert [kind for kind, _ in await _records(gw, "solo")] == ["policy.loaded", "policy.removed", "policy.loaded"]
        assert await other.sync_policies() == []
        assert (await _ready(other))["policy_drift"]["solo"]["file_sha256"] is None
