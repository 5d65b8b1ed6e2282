"""A replica does not send under a policy another replica has replaced, both databases.

Two gateways share one database, each with its own copy of the policy files. An admin turns a
direct account co-signed on one of them, which records the change; the other has not reloaded.
A post of the account that the change could not hold (it was with its platform at the time)
and that falls to the other gateway (deferred by the platform, or its claim stranded) is not
sent there under the policy replaced: the publisher finds the version recorded is not the one
it has in force, puts the recorded one in force, and holds the post for a co-signer.

On PostgreSQL a recorded version wakes the other replicas' reload at once (``NOTIFY``), but
that is a hint, heard a moment later or not at all while the listening connection is down:
the other gateway here does not listen, so that the window stays open on both databases.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.app import WAKEUPS
from gateway.appkeys import APPENDER, DB, POLICIES, PUBLISHER, REGISTRY
from gateway.audit.replay import Fact, Replay
from gateway.clock import ManualClock
from tests.audit.logtools import byline, verified_by_cli
from tests.audit.synthetic import SyntheticLog, messages, summary
from tests.audit.test_replay import _stamps
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy
from tests.test_direct_at_once import _never_woken
from tests.test_policy_replicas import COSIGNED, DIRECT
from tests.test_races import deferred_while_the_policy_changed


async def _deaf(gw: Gateway) -> Gateway:
    """``gw`` not listening for other replicas' changes (its listening connection down, say):
    it reloads its policies only when it reloads them, as on SQLite."""
    await gw.app[WAKEUPS].stop()
    return gw


async def _held_for_a_cosigner(gw: Gateway, post_id: str) -> dict[str, Any]:
    """The post, insisting it is held at a new version for one of bob and dave, for the change."""
    held = await gw.get("alice", post_id)
    assert (held["state"], held["version"], held["approvals_required"], held["approvers"]) == (
        "held", 2, 1, ["bob", "dave"]), held
    assert held["reasons"][-1]["rule"] == "policy_changed", held["reasons"]
    return held


async def _approved_goes_out_once(gw: Gateway, post_id: str, clock: ManualClock, text: str) -> None:
    """bob's approval sends the held post, once, and the log verifies."""
    status, body = await gw.act("bob", post_id, "approve")
    assert (status, body["state"]) == (200, "scheduled"), body
    clock.advance(timedelta(minutes=2))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("brand")] == [text]
    assert (await gw.get("alice", post_id))["state"] == "published"
    await verified_by_cli(gw)


async def test_a_deferred_post_is_not_sent_under_the_policy_another_replica_replaced(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """alice's post on direct brand is with its platform through B when A records brand
    co-signed (so the change leaves it be), and the platform answers "later": deferred. Due
    again, B, which has not reloaded, holds it for bob or dave instead of sending it under the
    direct policy (before, it went out on alice's word alone); bob's approval then sends it."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        await _deaf(b)
        post = await b.submit("alice", "brand", "Launch day")
        assert post["state"] == "scheduled", post
        await deferred_while_the_policy_changed(b, post["id"], monkeypatch, policy_dir=first, policy=COSIGNED,
                                                recorded_by=a)
        clock.advance(timedelta(minutes=2))
        await b.tick()
        assert await b.timeline("brand") == []
        held = await _held_for_a_cosigner(b, post["id"])
        assert [e["type"] for e in held["events"]].count("post.publishing") == 1, held["events"]
        await _approved_goes_out_once(b, post["id"], clock, "Launch day")


async def test_a_stranded_claim_is_not_sent_under_the_policy_another_replica_replaced(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """alice's post on direct brand lies claimed by a publisher that died when A records brand
    co-signed. Its lease run out, B, which has not reloaded, claims it again only to look for
    it, does not find it, and holds it for bob or dave (before, it sent it under the direct
    policy); bob's approval then sends it."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        await _deaf(b)
        post = await b.submit("alice", "brand", "Launch day")
        # Claimed as a publisher that then died would have: nothing here sends it or keeps its lease.
        claim = await b.app[APPENDER].submit(b.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None and not claim.recovering
        write_policy(first, "brand", COSIGNED)
        assert await a.sync_policies() == ["brand"]
        clock.advance(timedelta(minutes=3))
        await b.tick()
        assert await b.timeline("brand") == []
        held = await _held_for_a_cosigner(b, post["id"])
        claims = [e for e in held["events"] if e["type"] == "post.publishing"]
        assert [(e["data"]["recovering"], e["data"].get("looks_only")) for e in claims] == [
            (False, None), (True, "policy_changed")], claims
        await _approved_goes_out_once(b, post["id"], clock, "Launch day")


async def test_a_direct_post_through_a_replica_not_reloaded_is_not_claimed_at_once(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """alice posts on brand through B, whose publisher claims a direct post as it is stored,
    after A recorded brand co-signed and before B reloaded: the claim planned under B's direct
    policy is not stored (the post is stored only under the recorded version, in the same
    transaction), the post is decided again under the co-signed one and held for bob or dave,
    and nothing is sent. (So before this change too: a guard for the claim at once, which
    reads no head of its own.)"""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, _never_woken(db_url, second, clock) as b:
        await _deaf(b)
        write_policy(first, "brand", COSIGNED)
        assert await a.sync_policies() == ["brand"]
        assert b.app[REGISTRY].policies["brand"].policy.tier.value == "direct"
        post = await b.submit("alice", "brand", "Launch day")
        assert (post["state"], post["approvers"]) == ("held", ["bob", "dave"]), post
        await asyncio.sleep(0.3)
        assert [e["type"] for e in (await b.get("alice", post["id"]))["events"]] == ["post.submitted"]
        assert await b.timeline("brand") == []
        await _approved_goes_out_once(b, post["id"], clock, "Launch day")


# -- what the verifier names ------------------------------------------------------------------

_P1, _P2 = "1" * 64, "2" * 64
_DIRECT = summary(owner="alice", writers=["alice", "carol"])
_COSIGNED = summary(owner="alice", writers=["alice", "carol"], approvers=["bob", "dave"], required=1,
                    tier="co-signed")


def _claim(log: SyntheticLog, post: str, *, sha: str | None, checked: object = True) -> int:
    """A claim of ``post`` sending its words under ``sha``; ``checked``: its data.policy_in_force
    (None: left out, as claims before the check were written)."""
    data: dict[str, Any] = {"attempt": 1, "version": 1, "idempotency_key": f"byline-{post}-v1",
                            "recovering": False, "text_hash": log.commit(log.words.get(post) or ""),
                            "policy_sha256": sha}
    if checked is not None:
        data["policy_in_force"] = checked
    return log.add("post.publishing", actor="system", account="brand", post=post, data=data)


def _turned_cosigned(log: SyntheticLog) -> int:
    """brand direct (version 1), carol's post 1 scheduled under it, and brand co-signed (version 2):
    the index of the change."""
    log.add("policy.loaded", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": _P1, "policy": _DIRECT, "version": 1})
    log.submit("1", author="carol", account="brand", sha=_P1)
    return log.add("policy.changed", actor="policy-file", account="brand",
                   data={"file": "brand.yaml", "sha256": _P2, "policy": _COSIGNED, "version": 2,
                         "previous_sha256": _P1, "changed": ["approvers", "required", "tier"]})


async def _rejected_by_cli(log: SyntheticLog, path: Path) -> str:
    """What the real ``byline audit verify`` says of the export, insisting it fails."""
    export = log.write(path)
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0, result.text
    return result.text


async def test_byline_audit_verify_names_a_claim_under_the_policy_just_replaced(tmp_path: Path) -> None:
    """A forged log: a second after brand turned co-signed, carol's post is claimed under the
    direct policy, the claim saying it checked that policy was in force. The grace that lets an
    action name a policy just replaced does not cover it: the real command names it. The same
    claim before the change passes."""
    log = SyntheticLog()
    change = _turned_cosigned(log)
    claim = _claim(log, "1", sha=_P1)
    said = await _rejected_by_cli(log, tmp_path / "forged.export")
    assert (f"entry {claim}: post 1 was claimed under policy 111111111111, but the last policy record before "
            f"it (entry {change}) is 222222222222") in said, said

    honest = SyntheticLog()
    honest.add("policy.loaded", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": _P1, "policy": _DIRECT, "version": 1})
    honest.submit("1", author="carol", account="brand", sha=_P1)
    _claim(honest, "1", sha=_P1)
    honest.add("policy.changed", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": _P2, "policy": _COSIGNED, "version": 2,
                     "previous_sha256": _P1, "changed": ["approvers", "required", "tier"]})
    assert messages(honest.verify(tmp_path / "honest.export")) == []


async def test_byline_audit_verify_names_a_claim_leaving_the_check_out_once_claims_made_it(
    tmp_path: Path,
) -> None:
    """A forged log: claims say they checked their policy, and then, long after, one under the
    policy replaced a second before leaves data.policy_in_force out (to pass within the grace as
    claims of an earlier Byline did): the real command names it. A log whose claims never say it
    (an earlier Byline's) keeps the grace: no false alarm on it."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": _P1, "policy": _DIRECT, "version": 1})
    log.submit("0", author="alice", account="brand", sha=_P1)
    _claim(log, "0", sha=_P1)
    log.wait(600)
    log.submit("1", author="carol", account="brand", sha=_P1)
    log.add("policy.changed", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": _P2, "policy": _COSIGNED, "version": 2,
                  "previous_sha256": _P1, "changed": ["approvers", "required", "tier"]})
    claim = _claim(log, "1", sha=_P1, checked=None)
    said = await _rejected_by_cli(log, tmp_path / "forged.export")
    assert f"entry {claim}: post 1 was claimed without saying it checked the policy it names" in said, said

    earlier = SyntheticLog()
    _turned_cosigned(earlier)
    _claim(earlier, "1", sha=_P1, checked=None)
    assert messages(earlier.verify(tmp_path / "earlier.export")) == []


_IN_FORCE = "a claim that checked its policy (data.policy_in_force) names brand's policy in force"
_LEFT_OUT = ("was claimed without saying it checked the policy it names was the account's in force "
             "(data.policy_in_force), though claims before it did: it could have gone out under a policy another "
             "gateway had replaced")


@pytest.mark.parametrize(("after", "named"), [(10, False), (310, True)])
def test_a_claim_leaving_the_check_out_passes_only_for_the_grace_after_the_first_that_made_it(
    tmp_path: Path, after: int, named: bool,
) -> None:
    """In a rolling upgrade a replica of the earlier Byline claims beside the first new ones for
    a while: its claim 11 s after the first that said it checked its policy passes; one 311 s
    after, past the grace (300 s), is named."""
    log = SyntheticLog()
    log.policy("brand", _DIRECT, _P1)
    log.submit("0", author="alice", account="brand", sha=_P1)
    log.submit("1", author="carol", account="brand", sha=_P1)
    _claim(log, "0", sha=_P1)
    log.wait(after)
    claim = _claim(log, "1", sha=_P1, checked=None)
    assert messages(log.verify(tmp_path / "x.export")) == ([f"entry {claim}: post 1 {_LEFT_OUT}"] if named else [])


def test_no_grace_for_leaving_the_check_out_after_an_untimed_first_claim_that_made_it() -> None:
    """The grace runs from the time of the first claim that said it checked its policy: where
    that time is unknown (the verifier names the entry's ts), a claim a second later that does
    not say so is named; timed, the same claim passes."""
    facts: list[Fact] = [
        ("policy.loaded", "policy-file", "brand", None, (_P1, _DIRECT, None)),
        ("post.submitted", "alice", "brand", "0", (1, "scheduled", (), 0, _P1)),
        ("post.submitted", "carol", "brand", "1", (1, "scheduled", (), 0, _P1)),
        ("post.publishing", "system", "brand", "0", (_P1, 1, None, True)),
        ("post.publishing", "system", "brand", "1", (_P1, 1)),
    ]
    flat = [part for offset, fact in enumerate(facts) for part in (offset, *fact)]
    untimed = Replay()
    untimed.feed_flat(10, flat, stamps=_stamps(0, 1, 2) + " " * len(_stamps(3)) + _stamps(4))
    assert untimed.findings == [(14, f"post 1 {_LEFT_OUT}")]
    timed = Replay()
    timed.feed_flat(10, flat, stamps=_stamps(0, 1, 2, 3, 4))
    assert timed.findings == []


def _removed(log: SyntheticLog) -> int:
    """brand direct, carol's post 1 scheduled under it, and brand's policy removed: the removal."""
    log.policy("brand", _DIRECT, _P1)
    log.submit("1", author="carol", account="brand", sha=_P1)
    return log.add("policy.removed", actor="policy-file", account="brand", data={"previous_sha256": _P1})


def test_a_checked_claim_names_the_record_it_misses_in_full(tmp_path: Path) -> None:
    """A claim that says it checked its policy, and names another than the log's last record for
    the account, is named with that record's entry and the first 12 digits of both policies;
    after the account's policy was removed, with the removal (besides the decision the removal
    owed the post, and its claim with no policy in force)."""
    log = SyntheticLog()
    change = _turned_cosigned(log)
    claim = _claim(log, "1", sha=_P1)
    assert messages(log.verify(tmp_path / "replaced.export")) == [
        f"entry {claim}: post 1 was claimed under policy 111111111111, but the last policy record before it "
        f"(entry {change}) is 222222222222: {_IN_FORCE}",
    ]
    log = SyntheticLog()
    removal = _removed(log)
    claim = _claim(log, "1", sha=_P1)
    assert messages(log.verify(tmp_path / "removed.export")) == [
        f"entry {claim}: post.publishing of post 1, which entry {removal} left to be decided again first: the "
        "account's policy was removed",
        f"entry {claim}: post 1 was claimed under policy 111111111111, but the last policy record before it "
        f"(entry {removal}) is its removal: {_IN_FORCE}",
        f"entry {claim}: post 1 went out while brand had no policy in force",
    ]


def test_a_checked_claim_naming_no_policy_where_the_log_records_none_is_named(tmp_path: Path) -> None:
    """A forged log: a post of an account the log records no policy for, claimed under none, says
    it checked that policy was in force: named as such, besides its submission and its claim
    with no policy in force."""
    log = SyntheticLog()
    log.submit("1", author="carol", account="brand")
    claim = _claim(log, "1", sha=None)
    assert messages(log.verify(tmp_path / "x.export")) == [
        "entry 0: carol submitted a post to brand, which had no policy in force",
        f"entry {claim}: post 1 was claimed under policy none, but the log has recorded no policy for it: "
        f"{_IN_FORCE}",
        f"entry {claim}: post 1 went out while brand had no policy in force",
    ]


@pytest.mark.parametrize("checked", [False, "yes", 1])
def test_a_malformed_policy_in_force_is_named(tmp_path: Path, checked: object) -> None:
    """data.policy_in_force is true or absent: anything else is named (read as absent, it would
    buy a forged claim the grace)."""
    log = SyntheticLog()
    _turned_cosigned(log)
    claim = _claim(log, "1", sha=_P1, checked=checked)
    assert f"entry {claim}: post.publishing has a malformed data.policy_in_force" in messages(
        log.verify(tmp_path / "x.export")), messages(log.verify(tmp_path / "y.export"))


async def test_a_recorded_version_this_replica_cannot_put_in_force_is_not_reloaded_for_each_tick(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A records a new disclosure line for brand, whose text is then not kept (as versions
    recorded before texts were): B, whose file is the old one, cannot put it in force. alice's
    post due on B is not sent under B's version; B reloads once for the recorded version, not
    once a tick, and the post waits for a gateway that has the version in force. A then records
    another line, kept: B reloads for it at once, and sends the post under it, once; the log
    verifies."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        await _deaf(b)
        post = await b.submit("alice", "brand", "Launch day")
        write_policy(first, "brand", DIRECT + '    disclosure: "—{author}"\n')
        assert await a.sync_policies() == ["brand"]
        async with b.app[DB].write() as txn:
            await txn.execute("UPDATE policy_versions SET body = NULL WHERE account = 'brand' AND version = 2")
        reloads: list[None] = []
        sync = b.app[POLICIES].sync

        async def counted() -> list[str]:
            reloads.append(None)
            return await sync()

        monkeypatch.setattr(b.app[PUBLISHER], "refresh_policies", counted)
        for _ in range(3):
            await b.tick()
        assert len(reloads) == 1
        assert (await b.get("alice", post["id"]))["state"] == "scheduled"
        assert await b.timeline("brand") == []
        write_policy(first, "brand", DIRECT + '    disclosure: "Written by {author}"\n')
        assert await a.sync_policies() == ["brand"]
        await b.tick()
        assert len(reloads) == 2
        assert [p["text"] for p in await b.timeline("brand")] == ["Launch day"]  # alice, the owner, is not credited
        await verified_by_cli(b)
