"""Voice-change announcements (issue 18): a post on the account itself when its voice changes,
authored by the policy file in the transaction that records the version, out once through the
publisher, never held, and replayed by ``byline audit verify`` (which catches one that no policy
change caused). Both databases; the sandbox, the Mastodon stand-in and a real Bluesky PDS.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.appkeys import DB, PLATFORMS
from gateway.clock import ManualClock
from gateway.policy import announce as voice
from gateway.policy.announce import render, voice_words
from tests.audit.logtools import byline, verified_by_cli
from tests.audit.synthetic import SyntheticLog, messages, summary
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy
from tests.fakes.mastodon import Account, FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.platforms.bluesky.fixture import BlueskyPds, post_records

PUBLIC = "https://byline.example.org"

DIRECT = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    announce: {voice_changes: true}
"""
TEAM = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    approvals:
      from: [bob, dave]
      required: 1
    announce: {voice_changes: true}
"""
TWO_WRITERS = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: direct
    owner: alice
    writers: [alice, carol]
    announce: {voice_changes: true}
"""
ASKS = "    announce: {voice_changes: true}\n"
QUIET_DIRECT = DIRECT.replace(ASKS, "")
QUIET_TWO_WRITERS = TWO_WRITERS.replace(ASKS, "")
TEAM_WITH_A_RULE = TEAM + """
    rules:
      - name: launch
        action: hold
        any_words: [launch]
        reason: Check the date first
"""


async def _announcements(gw: Gateway, account: str) -> list[dict[str, Any]]:
    """The account's announcements: each post the policy file submitted, with its entry's data."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall(
            "SELECT post_id, entry FROM log_entries WHERE account = ? AND type = 'post.submitted' ORDER BY idx",
            account)
    out = []
    for row in rows:
        body = json.loads(bytes(row["entry"]))
        if body["actor"] == "policy-file":
            out.append({"post": body["post"], **body["data"]})
    return out


async def _row(gw: Gateway, post_id: str) -> dict[str, Any]:
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT * FROM posts WHERE id = ?", post_id)
    assert row is not None
    return dict(row)



async def test_a_change_of_voice_is_announced_once_by_the_policy_file(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Direct → co-signed with a second writer: one post, by ``policy-file``, scheduled now in
    the transaction of version 2, goes out unheld with the words and the public page's link;
    a change that leaves the voice alone (a rule) announces nothing; the log verifies."""
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        assert await _announcements(gw, "brand") == [], "a first load is no change of voice"
        write_policy(policies, "brand", TEAM)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        row = await _row(gw, announced["post"])
        assert (row["author"], row["state"], row["required"]) == ("policy-file", "scheduled", 0)
        assert announced["announces"]["version"] == 2
        assert announced["announces"]["changed"] == ["tier", "writers", "approvers", "required"]
        assert announced["state"] == "scheduled" and announced["approvers"] == []
        async with gw.app[DB].read() as txn:
            v2 = await txn.fetchone("SELECT sha256 FROM policy_versions WHERE account = 'brand' AND version = 2")
        assert v2 is not None and announced["announces"]["policy_sha256"] == v2["sha256"]
        assert await gw.tick() == 1
        [went_out] = await gw.timeline("brand")
        assert went_out["text"] == (
            "Change of voice: this account is now written by alice and carol, each post co-signed by one of bob "
            f"and dave. Who writes and approves each post: {PUBLIC}/@brand"
        ), "no disclosure line: the policy file wrote it"
        assert (await _row(gw, announced["post"]))["state"] == "published"

        write_policy(policies, "brand", TEAM_WITH_A_RULE)
        assert await gw.sync_policies() == ["brand"]
        assert len(await _announcements(gw, "brand")) == 1, "a new rule is no change of voice"
        await verified_by_cli(gw)


async def test_an_announcement_goes_out_as_written_where_the_policy_credits_its_writers(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """The account credits its writers (``disclosure: "—{author}"``); a second writer makes a
    change of voice. The announcement goes out in the policy file's words, with no line
    crediting anyone, and carol's post beside it with hers. Before (mutation testing), a claim
    that put the disclosure line under an announcement (crediting "policy-file") was not told
    apart: no announcement test's policy had a disclosure."""
    credits = '    disclosure: "—{author}"\n'
    policies = make_policy_dir(tmp_path, {"brand": DIRECT + credits})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", TWO_WRITERS + credits)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        words = (await _row(gw, announced["post"]))["text"]
        assert words.startswith("Change of voice: ")
        await gw.submit("carol", "brand", "Hello from carol")
        await gw.tick()
        assert sorted(p["text"] for p in await gw.timeline("brand")) == sorted(
            [words, "Hello from carol\n\n—carol"])
        await verified_by_cli(gw)


async def test_fewer_co_signers_asked_is_announced_and_said(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """One of bob and dave co-signing is not both: the announcement says "one of", and lowering
    the count asked from 2 to 1 (the same people named) is a change of voice, announced."""
    both = TEAM.replace("required: 1", "required: 2")
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", both)
        assert await gw.sync_policies() == ["brand"]
        write_policy(policies, "brand", TEAM)
        assert await gw.sync_policies() == ["brand"]
        announced = await _announcements(gw, "brand")
        assert [(a["announces"]["version"], a["announces"]["changed"]) for a in announced] == [
            (2, ["tier", "writers", "approvers", "required"]), (3, ["required"])]
        assert await gw.tick() == 2
        assert sorted(p["text"].split(". Who")[0] for p in await gw.timeline("brand")) == [
            "Change of voice: this account is now written by alice and carol, each post co-signed by bob and dave",
            "Change of voice: this account is now written by alice and carol, each post co-signed by one of bob "
            "and dave",
        ]
        await verified_by_cli(gw)


async def test_without_the_option_nothing_is_announced(db_url: str, tmp_path: Path, clock: ManualClock) -> None:
    """The same change on an account whose policies, the one in force and the new one, ask for
    no announcements: no post."""
    policies = make_policy_dir(tmp_path, {"brand": QUIET_DIRECT})
    async with started_gateway(db_url, policies, clock) as gw:
        write_policy(policies, "brand", TEAM.replace("announce: {voice_changes: true}", ""))
        assert await gw.sync_policies() == ["brand"]
        assert await _announcements(gw, "brand") == []
        write_policy(policies, "brand", TEAM.replace("voice_changes: true", "voice_changes: false")
                     .replace("bob, dave", "bob, erin"))
        assert await gw.sync_policies() == ["brand"]
        assert await _announcements(gw, "brand") == []


async def test_two_gateways_on_one_database_make_one_announcement(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Two replicas given the same change reload at once: one version, one announcement, one post out."""
    first = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-a")
    second = make_policy_dir(tmp_path, {"brand": DIRECT}, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        write_policy(first, "brand", TEAM)
        write_policy(second, "brand", TEAM)
        recorded = await asyncio.gather(a.sync_policies(), b.sync_policies())
        assert sorted(recorded) == [[], ["brand"]]
        assert len(await _announcements(a, "brand")) == 1
        await asyncio.gather(a.tick(), b.tick())
        assert len(await a.timeline("brand")) == 1
        await verified_by_cli(a)


async def test_a_file_edited_back_and_forth_between_reloads_announces_what_was_recorded(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Co-signed and back to direct before the gateway rereads: nothing was in force but
    direct, so nothing is announced; the next real change is announced once."""
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock) as gw:
        write_policy(policies, "brand", TEAM)
        write_policy(policies, "brand", DIRECT)
        assert await gw.sync_policies() == []
        assert await _announcements(gw, "brand") == []
        write_policy(policies, "brand", TEAM)
        assert await gw.sync_policies() == ["brand"]
        write_policy(policies, "brand", DIRECT)
        write_policy(policies, "brand", TEAM)
        assert await gw.sync_policies() == []
        assert [a["announces"]["version"] for a in await _announcements(gw, "brand")] == [2]


async def test_a_policy_removed_and_put_back_with_another_voice_is_announced(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Removing the file and putting it back with new writers is no first load: the account spoke
    through Byline before, so the voice it comes back with is announced (changed from the
    voice removed), and the log verifies."""
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        (policies / "brand.yaml").unlink()
        assert await gw.sync_policies() == ["brand"]
        write_policy(policies, "brand", TEAM)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["version"] == 3
        assert announced["announces"]["changed"] == ["tier", "writers", "approvers", "required"]
        assert await gw.tick() == 1
        [went_out] = await gw.timeline("brand")
        assert "written by alice and carol" in went_out["text"]
        await verified_by_cli(gw)


@pytest.mark.parametrize("off", ["announce taken out", "voice_changes: false"])
async def test_a_change_of_voice_that_turns_announcements_off_is_announced(
    db_url: str, tmp_path: Path, clock: ManualClock, off: str,
) -> None:
    """One edit turns a co-signed account that asked for announcements direct and asks for none:
    its followers were promised they would be told, so the change is announced, once, and the
    same post says no more will be, in the default words (the template withdrawn is in no
    recorded summary); the next change, between two policies asking for none, is not; the log
    verifies."""
    own_words = TEAM.replace("{voice_changes: true}",
                             '{voice_changes: true, template: "Nouvelle voix : {voice}. {url}"}')
    quiet = (QUIET_DIRECT if off == "announce taken out"
             else DIRECT.replace("{voice_changes: true}", "{voice_changes: false}"))
    policies = make_policy_dir(tmp_path, {"brand": own_words})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", quiet)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["version"] == 2
        assert announced["announces"]["changed"] == ["tier", "writers", "approvers", "required", "announce"]
        row = await _row(gw, announced["post"])
        assert (row["author"], row["state"], row["required"]) == ("policy-file", "scheduled", 0)
        assert await gw.tick() == 1
        [went_out] = await gw.timeline("brand")
        assert went_out["text"] == (
            "Change of voice: this account is now written by its owner, and will no longer announce changes of "
            f"its voice. Who writes and approves each post: {PUBLIC}/@brand"
        )

        write_policy(policies, "brand", QUIET_TWO_WRITERS)
        assert await gw.sync_policies() == ["brand"]
        assert len(await _announcements(gw, "brand")) == 1, "no policy asked any more: nothing was promised"
        await verified_by_cli(gw)


async def test_a_policy_that_announced_removed_and_put_back_without_it_is_announced(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Removing a co-signed policy that asked for announcements and adding the file back direct,
    asking for none, is the same change as one edit making it: the voice it comes back with is
    announced (judged against the policy removed, which made the promise), with the end of the
    announcements, in one post, and the log verifies."""
    policies = make_policy_dir(tmp_path, {"brand": TEAM})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        (policies / "brand.yaml").unlink()
        assert await gw.sync_policies() == ["brand"]
        write_policy(policies, "brand", QUIET_DIRECT)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["version"] == 3
        assert announced["announces"]["changed"] == ["tier", "writers", "approvers", "required", "announce"]
        assert await gw.tick() == 1
        [went_out] = await gw.timeline("brand")
        assert "this account is now written by its owner, and will no longer announce" in went_out["text"]
        await verified_by_cli(gw)


ENDED = f"This account will no longer announce changes of its voice. Who writes and approves each post: {PUBLIC}/@brand"


@pytest.mark.parametrize("off", ["announce taken out", "voice_changes: false"])
async def test_turning_announcements_off_is_announced_and_the_change_after_it_is_not(
    db_url: str, tmp_path: Path, clock: ManualClock, off: str,
) -> None:
    """The two-step silence: one edit turns announcements off and leaves the voice as it was,
    a later one changes the voice. The followers were promised they would be told, so the first
    says the promise ended (one post, in the default words, saying only that); the second, on a
    policy that asks for none replacing one that asked for none, is not announced; the log
    verifies."""
    quiet = QUIET_DIRECT if off == "announce taken out" else DIRECT.replace(
        "{voice_changes: true}", "{voice_changes: false}")
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", quiet)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["version"] == 2
        assert announced["announces"]["changed"] == ["announce"]
        row = await _row(gw, announced["post"])
        assert (row["author"], row["state"], row["required"]) == ("policy-file", "scheduled", 0)
        assert await gw.tick() == 1
        [went_out] = await gw.timeline("brand")
        assert went_out["text"] == ENDED

        write_policy(policies, "brand", QUIET_TWO_WRITERS)
        assert await gw.sync_policies() == ["brand"]
        assert len(await _announcements(gw, "brand")) == 1, "the followers were told no more would be"
        await verified_by_cli(gw)


@pytest.mark.parametrize("back", ["without announce", "asking still"])
async def test_a_policy_that_announced_removed_and_put_back_in_its_voice(
    db_url: str, tmp_path: Path, clock: ManualClock, back: str,
) -> None:
    """A removal posts nothing (no policy, no account to post as); the file put back in the same
    voice is judged against the policy removed: without ``announce`` it says the announcements
    ended, asking still it has nothing to say; the log verifies."""
    policies = make_policy_dir(tmp_path, {"brand": DIRECT})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        (policies / "brand.yaml").unlink()
        assert await gw.sync_policies() == ["brand"]
        assert await _announcements(gw, "brand") == [], "a removal posts nothing"
        write_policy(policies, "brand", QUIET_DIRECT if back == "without announce" else DIRECT)
        assert await gw.sync_policies() == ["brand"]
        announced = await _announcements(gw, "brand")
        assert [(a["announces"]["version"], a["announces"]["changed"]) for a in announced] == (
            [(3, ["announce"])] if back == "without announce" else [])
        await gw.tick()
        assert [p["text"] for p in await gw.timeline("brand")] == ([ENDED] if back == "without announce" else [])
        await verified_by_cli(gw)


@pytest.mark.parametrize(("announce", "error"), [
    ("{voice_changes: yes please}", "announce.voice_changes"),
    ("{voice_changes: true, tone: warm}", "announce.tone"),
    ('{voice_changes: true, template: "New voice: {voice}. {nope} {url}"}', "unknown placeholder {nope}"),
    ('{voice_changes: true, template: "New voice: {voice}"}', "put {url} in it"),
    ("{voice_changes: true, template: '" + "x" * 420 + " {url}'}", "would be 521 characters as sandbox counts them"),
])
async def test_a_bad_announce_option_is_refused_and_changes_nothing(
    db_url: str, tmp_path: Path, clock: ManualClock, announce: str, error: str,
) -> None:
    """Strict like every option: the file is refused with its key and why, the policy in force
    stays, and nothing is announced (the length is checked as Bluesky counts, at load)."""
    sky = DIRECT.replace("platform: sandbox", "platform: sandbox\n    max_length: 300")
    policies = make_policy_dir(tmp_path, {"brand": sky})
    async with started_gateway(db_url, policies, clock) as gw:
        write_policy(policies, "brand", TEAM.replace("{voice_changes: true}", announce))
        assert await gw.sync_policies() == []
        status, body = await gw.call("alice", "GET", "/v1/policies/errors")
        assert status == 200
        assert any(error in json.dumps(e) for e in body["errors"]), body
        assert await _announcements(gw, "brand") == []


def _forged(tmp_path: Path, name: str, build: Any) -> list[str]:
    """Build a log with ``build(log)`` and return what the verifier finds in it."""
    log = SyntheticLog()
    direct = summary(owner="alice", writers=["alice"]) | {"announce": True}
    team = summary(owner="alice", writers=["alice", "carol"], approvers=["bob"], required=1,
                   tier="co-signed") | {"announce": True}
    log.add("policy.loaded", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 1})
    build(log, team)
    return messages(log.verify(tmp_path / f"{name}.export"))


TEAM_CHANGED = ("tier", "writers", "approvers", "required")
"""What the forged logs' team policy changes of the direct one."""


def _announce(log: SyntheticLog, post: str, version: int, sha: str, *, state: str = "scheduled",
              changed: tuple[str, ...] = TEAM_CHANGED) -> None:
    log.add("post.submitted", actor="policy-file", account="brand", post=post, data={
        "version": 1, "text_hash": log.commit(f"announcement {post}"), "state": state, "approvers": [],
        "required": 0, "policy_sha256": sha,
        "announces": {"version": version, "policy_sha256": sha, "changed": list(changed)},
    })


def _change(log: SyntheticLog, team: dict[str, Any]) -> None:
    log.add("policy.changed", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p2", "policy": team, "version": 2})


def test_the_verifier_accepts_an_announcement_of_the_change_just_recorded(tmp_path: Path) -> None:
    """The honest log: version 2 changes the voice, its announcement follows and goes out."""
    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        _change(log, team)
        _announce(log, "100", 2, "p2")
        log.add("post.publishing", actor="system", account="brand", post="100", data={"policy_sha256": "p2"})
        log.add("post.published", actor="system", account="brand", post="100", data={"version": 1})

    assert _forged(tmp_path, "honest", build) == []


@pytest.mark.parametrize(("name", "expected", "unannounced"), [
    ("no change", "changed nothing of the account's voice: an announcement without the policy change", 0),
    ("a version never recorded", "not the version the log recorded for it just before", 0),
    ("an older version", "not the version the log recorded for it just before", 2),
    ("twice", "a second time", 0),
    ("held", "goes out at once", 0),
    ("by a writer", "not by the policy file", 1),
])
def test_the_verifier_catches_an_announcement_without_its_policy_change(
    tmp_path: Path, name: str, expected: str, unannounced: int,
) -> None:
    """Forged logs: an announcement no policy change caused (none, one never recorded, one
    already superseded), two for one version, one held for approval, or one by a writer; the
    changes a misplaced or forged announcement leaves unannounced are named besides."""
    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        if name == "no change":
            _announce(log, "100", 1, "p1")
        elif name == "a version never recorded":
            _announce(log, "100", 2, "p2")
        elif name == "an older version":
            _change(log, team)
            log.add("policy.changed", actor="policy-file", account="brand",
                    data={"file": "brand.yaml", "sha256": "p3", "policy": team | {"owner": "bob"}, "version": 3})
            _announce(log, "100", 2, "p2")
        elif name == "twice":
            _change(log, team)
            _announce(log, "100", 2, "p2")
            _announce(log, "101", 2, "p2")
        elif name == "held":
            _change(log, team)
            _announce(log, "100", 2, "p2", state="held")
        else:
            _change(log, team)
            log.add("post.submitted", actor="alice", account="brand", post="100", data={
                "version": 1, "text_hash": log.commit("mine"), "state": "held", "approvers": ["bob"],
                "required": 1, "policy_sha256": "p2",
                "announces": {"version": 2, "policy_sha256": "p2", "changed": list(TEAM_CHANGED)}})

    found = _forged(tmp_path, name.replace(" ", "-"), build)
    never = [f for f in found if "no announcement of it followed" in f]
    assert (len(found), len(never)) == (1 + unannounced, unannounced), found
    assert expected in next(f for f in found if f not in never), found


async def test_byline_audit_verify_rejects_a_forged_announcement(tmp_path: Path) -> None:
    """The real command, on an export with an announcement of a version the log never recorded."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand", data={
        "file": "brand.yaml", "sha256": "p1", "version": 1,
        "policy": summary(owner="alice", writers=["alice"]) | {"announce": True}})
    _announce(log, "100", 2, "p2")
    export = log.write(tmp_path / "forged.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0
    assert "an announcement without the policy change that caused it" in result.text


@pytest.mark.parametrize("then", ["the log ends", "the next version comes", "the file is removed and put back"])
def test_the_verifier_catches_a_change_of_voice_never_announced(tmp_path: Path, then: str) -> None:
    """Forged logs: version 2 changes the voice on a policy asking for announcements and no
    announcement of it follows, before the log ends, the next version, or a removal and a
    return under a third voice (announced, but version 2 never was)."""
    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        _change(log, team)
        if then == "the next version comes":
            log.add("policy.changed", actor="policy-file", account="brand",
                    data={"file": "brand.yaml", "sha256": "p3", "policy": team | {"rules": []}, "version": 3})
        elif then == "the file is removed and put back":
            log.add("policy.removed", actor="policy-file", account="brand",
                    data={"version": 3, "previous_sha256": "p2", "previous": team})
            log.add("policy.loaded", actor="policy-file", account="brand",
                    data={"file": "brand.yaml", "sha256": "p4", "policy": team | {"owner": "bob"}, "version": 4})
            _announce(log, "100", 4, "p4", changed=("owner",))

    found = _forged(tmp_path, then.replace(" ", "-"), build)
    assert len(found) == 1 and "policy version 2 of brand changed its voice" in found[0], found
    assert "no announcement of it followed" in found[0], found


def test_the_verifier_catches_fewer_co_signers_asked_unannounced(tmp_path: Path) -> None:
    """A forged log: version 2 asks one co-signer of bob and dave where version 1 asked both,
    on a policy asking for announcements, and announces nothing."""
    log = SyntheticLog()
    both = summary(owner="alice", writers=["alice"], approvers=["bob", "dave"], required=2,
                   tier="co-signed") | {"announce": True}
    log.add("policy.loaded", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p1", "policy": both, "version": 1})
    log.add("policy.changed", actor="policy-file", account="brand",
            data={"file": "brand.yaml", "sha256": "p2", "policy": both | {"required": 1}, "version": 2})
    found = messages(log.verify(tmp_path / "fewer.export"))
    assert len(found) == 1 and "policy version 2 of brand changed its voice" in found[0], found


async def test_byline_audit_verify_rejects_a_change_of_voice_never_announced(tmp_path: Path) -> None:
    """The real command, on an export where version 2 turns the account co-signed with a new
    writer on a policy asking for announcements, and nothing is announced."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand", data={
        "file": "brand.yaml", "sha256": "p1", "version": 1,
        "policy": summary(owner="alice", writers=["alice"]) | {"announce": True}})
    _change(log, summary(owner="alice", writers=["alice", "carol"], approvers=["bob"], required=1,
                         tier="co-signed") | {"announce": True})
    export = log.write(tmp_path / "forged.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0
    assert "no announcement of it followed" in result.text


def _quiet(policy: dict[str, Any]) -> dict[str, Any]:
    """A policy summary as recorded for the same policy asking for no announcements."""
    return {k: v for k, v in policy.items() if k != "announce"}


@pytest.mark.parametrize("announced", [False, True], ids=["unannounced", "announced"])
@pytest.mark.parametrize("how", ["in one edit", "removed and put back"])
def test_the_verifier_owes_an_announcement_promised_by_the_policy_replaced(
    tmp_path: Path, how: str, announced: bool,
) -> None:
    """Forged logs: the account turns co-signed and stops asking for announcements in one version
    (or its policy, which asked, is removed and comes back co-signed asking for none); with no
    announcement that is a change of voice its followers were promised and not told of, and
    with one the log verifies."""
    version, sha = (2, "p2") if how == "in one edit" else (3, "p3")

    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        if how == "removed and put back":
            log.add("policy.removed", actor="policy-file", account="brand", data={
                "version": 2, "previous_sha256": "p1",
                "previous": summary(owner="alice", writers=["alice"]) | {"announce": True}})
        log.add("policy.changed" if version == 2 else "policy.loaded", actor="policy-file", account="brand",
                data={"file": "brand.yaml", "sha256": sha, "policy": _quiet(team), "version": version})
        if announced:
            _announce(log, "100", version, sha, changed=(*TEAM_CHANGED, "announce"))

    found = _forged(tmp_path, f"{how}-{announced}".replace(" ", "-"), build)
    if announced:
        assert found == []
    else:
        assert len(found) == 1 and f"policy version {version} of brand changed its voice" in found[0], found
        assert "no announcement of it followed" in found[0], found


async def test_byline_audit_verify_rejects_a_change_of_voice_that_turned_announcements_off_unannounced(
    tmp_path: Path,
) -> None:
    """The real command, on an export where version 2 turns the account co-signed with a new
    writer and drops the announcements version 1 asked for, and nothing is announced."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand", data={
        "file": "brand.yaml", "sha256": "p1", "version": 1,
        "policy": summary(owner="alice", writers=["alice"]) | {"announce": True}})
    _change(log, summary(owner="alice", writers=["alice", "carol"], approvers=["bob"], required=1,
                         tier="co-signed"))
    export = log.write(tmp_path / "forged.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0
    assert "policy version 2 of brand changed its voice" in result.text
    assert "no announcement of it followed" in result.text


QUIET_ALICE = summary(owner="alice", writers=["alice"])
"""The forged logs' version 1, direct, as recorded asking for no announcements."""


@pytest.mark.parametrize("how", ["in one edit", "removed and put back"])
@pytest.mark.parametrize("announced", [None, ("announce",), TEAM_CHANGED], ids=["unannounced", "said", "unsaid"])
def test_the_verifier_owes_the_end_of_announcements_its_announcement(
    tmp_path: Path, how: str, announced: tuple[str, ...] | None,
) -> None:
    """Forged logs: version 1 asks for announcements, and the account stops asking in the same
    voice (in one edit, or by a removal and the file back); with no announcement that is a
    promise ended its followers were not told of, with one saying so the log verifies, and
    with one that says it changed the voice instead the end is left unsaid."""
    version, sha = (2, "p2") if how == "in one edit" else (3, "p3")

    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        if how == "removed and put back":
            log.add("policy.removed", actor="policy-file", account="brand", data={
                "version": 2, "previous_sha256": "p1", "previous": QUIET_ALICE | {"announce": True}})
        log.add("policy.changed" if version == 2 else "policy.loaded", actor="policy-file", account="brand",
                data={"file": "brand.yaml", "sha256": sha, "policy": QUIET_ALICE, "version": version})
        if announced is not None:
            _announce(log, "100", version, sha, changed=announced)

    found = _forged(tmp_path, f"{how}-{announced}".replace(" ", "-"), build)
    if announced == ("announce",):
        assert found == []
    elif announced is None:
        assert len(found) == 1 and f"policy version {version} of brand stopped the announcements" in found[0], found
        assert "no announcement of it followed" in found[0] and "not told the promise ended" in found[0], found
    else:
        assert len(found) == 1 and "it leaves unsaid that the announcements ended" in found[0], found


@pytest.mark.parametrize("version_2", ["changes the voice, asking still", "changes a rule", "changes nothing"])
def test_the_verifier_rejects_an_announced_end_of_announcements_the_log_does_not_show(
    tmp_path: Path, version_2: str,
) -> None:
    """Forged logs: an announcement says version 2 ended the announcements, where it still asks
    for them (changing the voice, a rule, or nothing): a withdrawal the log does not show is
    named."""
    def build(log: SyntheticLog, team: dict[str, Any]) -> None:
        policy, said = {
            "changes the voice, asking still": (team, (*TEAM_CHANGED, "announce")),
            "changes a rule": (QUIET_ALICE | {"announce": True, "delay_seconds": 60}, ("announce",)),
            "changes nothing": (QUIET_ALICE | {"announce": True}, ("announce",)),
        }[version_2]
        log.add("policy.changed", actor="policy-file", account="brand",
                data={"file": "brand.yaml", "sha256": "p2", "policy": policy, "version": 2})
        _announce(log, "100", 2, "p2", changed=said)

    found = _forged(tmp_path, version_2.replace(" ", "-").replace(",", ""), build)
    assert len(found) == 1, found
    assert ("an end of announcements the log does not show" if version_2.startswith("changes the voice")
            else "changed nothing of the account's voice: an announcement without the policy change") in found[0]


@pytest.mark.parametrize("forged", ["an end of announcements unannounced", "an end of announcements never made"])
async def test_byline_audit_verify_rejects_an_end_of_announcements_unannounced_or_invented(
    tmp_path: Path, forged: str,
) -> None:
    """The real command: on an export where version 2 stops the announcements version 1 asked
    for, in the same voice, and nothing is announced; and on one where version 2 changes the
    voice, asking still, and its announcement says the announcements ended."""
    log = SyntheticLog()
    log.add("policy.loaded", actor="policy-file", account="brand", data={
        "file": "brand.yaml", "sha256": "p1", "version": 1, "policy": QUIET_ALICE | {"announce": True}})
    if forged == "an end of announcements unannounced":
        _change(log, QUIET_ALICE)
    else:
        _change(log, summary(owner="alice", writers=["alice", "carol"], approvers=["bob"], required=1,
                             tier="co-signed") | {"announce": True})
        _announce(log, "100", 2, "p2", changed=(*TEAM_CHANGED, "announce"))
    export = log.write(tmp_path / "forged.export")
    result = await byline("audit", "verify", "--key", log.signer.verifier().to_text(), "--export", str(export),
                          "--no-state", "--no-progress")
    assert result.code != 0
    assert ("policy version 2 of brand stopped the announcements the policy it replaced asked for, and no "
            "announcement of it followed" if forged == "an end of announcements unannounced"
            else "post 100 says policy version 2 of brand changed tier, writers, approvers, required, announce, "
                 "where the log shows it changed tier, writers, approvers, required: an end of announcements "
                 "the log does not show") in result.text


# -- on real platforms -------------------------------------------------------------------

MASTODON_TOKEN = "mtok-announce-51c0de"


@pytest.fixture
async def mastodon(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeMastodon, Account, str]]:
    """The Mastodon stand-in on a real socket, with one account whose token the gateway reads."""
    fake = FakeMastodon()
    account = fake.add_account("brand", MASTODON_TOKEN)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", MASTODON_TOKEN)
    try:
        yield fake, account, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def _on_mastodon(text: str, instance: str) -> str:
    return text.replace("platform: sandbox", f"platform: mastodon\n    instance: {instance}\n"
                                              "    credentials: env:BRAND_MASTODON_TOKEN")


async def test_an_announcement_reaches_mastodon(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: tuple[FakeMastodon, Account, str],
) -> None:
    """On the Mastodon stand-in: the announcement is a status of the account, once."""
    fake, account, instance = mastodon
    policies = make_policy_dir(tmp_path, {"brand": _on_mastodon(DIRECT, instance)})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", _on_mastodon(TEAM, instance))
        await gw.sync_policies()
        await gw.tick()
        await gw.tick()
        [status] = fake.statuses(account)
        assert status.text.startswith("Change of voice: this account is now written by alice and carol")
        assert status.text.endswith(f"{PUBLIC}/@brand")


@pytest.mark.parametrize(("fault", "state"), [(403, "failed"), (429, "scheduled")])
async def test_a_refused_announcement_marks_the_account_and_blocks_nothing(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: tuple[FakeMastodon, Account, str],
    fault: int, state: str,
) -> None:
    """The platform refuses the announcement (no permission: given up; a rate limit: tried
    again later, as publishing does): the account's health says so, and a writer's post
    submitted meanwhile still goes out; the announcement goes out once the limit has passed."""
    fake, account, instance = mastodon
    policies = make_policy_dir(tmp_path, {"brand": _on_mastodon(DIRECT, instance)})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", _on_mastodon(TWO_WRITERS, instance))
        await gw.sync_policies()
        [announced] = await _announcements(gw, "brand")
        if fault == 429:
            fake.faults.rate_limit_next(1, retry_after=120, method="POST", path="/api/v1/statuses")
        else:
            fake.faults.fail_next(1, 403, method="POST", path="/api/v1/statuses")
        await gw.tick()
        row = await _row(gw, announced["post"])
        assert row["state"] == state
        health = gw.app[PLATFORMS].unhealthy.get("brand", "")
        assert "voice-change announcement" in health and str(fault) in health, health
        _, ready = await gw.call(None, "GET", "/readyz")
        assert "brand" in ready["accounts_unhealthy"]
        post = await gw.submit("carol", "brand", "Business as usual")
        await gw.tick()
        assert (await gw.get("carol", post["id"]))["state"] == "published"
        assert [s.text for s in fake.statuses(account)] == ["Business as usual"]
        if fault == 429:
            clock.advance(timedelta(minutes=3))
            await gw.tick()
            assert (await _row(gw, announced["post"]))["state"] == "published"
            assert len(fake.statuses(account)) == 2
        await verified_by_cli(gw)


async def test_an_announcement_on_a_real_pds_carries_its_record(
    bluesky_pds: BlueskyPds, db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a real Bluesky PDS: the announcement record, read back, holds the words (within 300
    graphemes), and a ``byline`` field with the URL of its public record; the text has no more."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    tag = secrets.token_hex(3)

    def sky(text: str) -> str:
        return text.replace("platform: sandbox", f"platform: bluesky\n    pds: {bluesky_pds.pds_url}\n"
                                                 "    credentials: env:CAROL_BSKY_APP_PASSWORD") \
                   .replace('handle: "@brand"', f"handle: {account.handle}") \
                   .replace("{voice_changes: true}",
                            '{voice_changes: true, template: "' + tag + ' Now {voice}. Bylines: {url}"}')

    policies = make_policy_dir(tmp_path, {"brand": sky(DIRECT)})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", sky(TEAM))
        await gw.sync_policies()
        [announced] = await _announcements(gw, "brand")
        await gw.tick()
        assert (await _row(gw, announced["post"]))["state"] == "published"
        mine = [r["value"] for r in await post_records(bluesky_pds, account.did) if r["value"]["text"].startswith(tag)]
        assert mine == [{
            "$type": "app.bsky.feed.post", "createdAt": mine[0]["createdAt"], "facets": mine[0]["facets"],
            "text": f"{tag} Now written by alice and carol, each post co-signed by one of bob and dave. "
                    f"Bylines: {PUBLIC}/@brand",
            "byline": f"{PUBLIC}/audit?kind=post&q={announced['post']}",
        }]
        await verified_by_cli(gw)


# -- the announcement's words, as pure rules ---------------------------------------------------


@pytest.mark.parametrize(("policy", "words"), [
    ({"tier": "direct", "owner": "alice", "writers": ["alice"]}, "written by its owner"),
    ({"tier": "direct", "owner": "alice", "writers": ["bob", "alice"]}, "written by alice and bob"),
    ({"tier": "managed", "owner": "dave", "writers": ["erin", "bob", "carol"]},
     "managed by a team (bob, carol and erin); dave, its owner, suggests"),
    ({"tier": "co-signed", "owner": "alice", "writers": ["alice", "carol", "bob"], "approvers": []},
     "written by alice, bob and carol, each post co-signed by alice"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": []},
     "written by alice, each post co-signed by its owner"),
    ({"tier": "delayed", "writers": ["alice"], "approvers": ["dave", "bob", "carol"]},
     "written by alice, each post after a cooling-off delay, held posts approved by bob, carol and dave"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["dave", "bob", "carol"], "required": 2},
     "written by alice, each post co-signed by 2 of bob, carol and dave"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["dave", "bob"], "required": 2},
     "written by alice, each post co-signed by bob and dave"),
    ({"tier": "direct", "writers": ["alice"], "approvers": ["dave", "bob"], "required": 1},
     "written by alice, held posts approved by one of bob and dave"),
    ({"tier": "direct", "writers": ["alice"], "approvers": ["dave", "bob"], "required": 0},
     "written by alice, held posts approved by bob and dave"),
])
def test_an_announcement_says_who_speaks_in_a_followers_words(policy: dict[str, Any], words: str) -> None:
    """Each tier in words, names sorted and joined with commas and a last "and"; the owner by
    name, or as "its owner" where the summary names none; approvers of held posts outside
    co-signing too; how many of the approvers sign, when not all (and all of them where the
    summary counts none, never "0 of")."""
    assert voice_words(policy) == words


@pytest.mark.parametrize(("policy", "words"), [
    ({"tier": "direct", "owner": "alice", "writers": ["alice"]}, "written by its owner"),
    ({"tier": "direct", "owner": "alice", "writers": ["carol"]}, "written by carol"),
    ({"tier": "direct", "owner": "alice", "writers": ["bob", "alice"]}, "written by 2 writers"),
    ({"tier": "managed", "owner": "dave", "writers": ["erin", "bob", "carol"]},
     "managed by a team of 3; dave, its owner, suggests"),
    ({"tier": "managed", "owner": "dave", "writers": ["erin"]}, "managed by a team (erin); dave, its owner, suggests"),
    ({"tier": "managed", "owner": "dave", "writers": ["erin", "bob"]},
     "managed by a team of 2; dave, its owner, suggests"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["dave", "bob", "carol"], "required": 2},
     "written by alice, each post co-signed by 2 of 3 co-signers"),
    ({"tier": "co-signed", "writers": ["alice", "erin"], "approvers": ["dave", "bob", "carol"], "required": 1},
     "written by 2 writers, each post co-signed by one of 3 co-signers"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["dave", "bob", "carol"], "required": 3},
     "written by alice, each post co-signed by all 3 co-signers"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["dave", "bob"], "required": 2},
     "written by alice, each post co-signed by both co-signers"),
    ({"tier": "co-signed", "writers": ["alice"], "approvers": ["bob"], "required": 1},
     "written by alice, each post co-signed by bob"),
    ({"tier": "delayed", "writers": ["alice"], "approvers": ["dave", "bob", "carol"], "required": 1},
     "written by alice, each post after a cooling-off delay, held posts approved by one of 3 approvers"),
])
def test_said_briefly_an_announcement_counts_the_people_it_would_name(policy: dict[str, Any], words: str) -> None:
    """Briefly (for a text that would pass the platform's limit), two or more people of one
    part are said by how many; one person is still named, and the owner is "its owner"."""
    assert voice_words(policy, brief=True) == words


def _big_team(n: int) -> list[str]:
    return [f"newsroom-writer-{i:02d}" for i in range(n)]


async def test_a_change_of_voice_to_a_big_team_is_announced_within_the_platforms_limit(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: tuple[FakeMastodon, Account, str],
) -> None:
    """Thirty writers named would take the announcement past Mastodon's 500 characters, where
    the platform refuses it and the followers are not told; said with the writers counted, it
    goes out (the public page it links to names them). A policy asking for announcements with
    such a team loads, rather than being refused for the length of its team."""
    fake, account, instance = mastodon
    team = _big_team(30)
    big = _on_mastodon(TEAM.replace("writers: [alice, carol]", f"writers: [{', '.join(team)}]"), instance)
    policies = make_policy_dir(tmp_path, {"brand": _on_mastodon(DIRECT, instance)})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", big)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["version"] == 2
        await gw.tick()
        [status] = fake.statuses(account)
        assert status.text == (
            "Change of voice: this account is now written by 30 writers, each post co-signed by one of 2 "
            f"co-signers. Who writes and approves each post: {PUBLIC}/@brand")
        assert (await _row(gw, announced["post"]))["state"] == "published"
        await verified_by_cli(gw)


async def test_the_end_of_announcements_for_a_big_team_goes_out_within_the_platforms_limit(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: tuple[FakeMastodon, Account, str],
) -> None:
    """One edit gives the account thirty writers and asks for no more announcements: the
    default words that say both, with the writers named, are over Mastodon's limit; said with
    the writers counted they go out, so the followers promised to be told are told."""
    fake, account, instance = mastodon
    quiet_big = _on_mastodon(QUIET_TWO_WRITERS.replace("writers: [alice, carol]",
                                                       f"writers: [{', '.join(_big_team(30))}]"), instance)
    policies = make_policy_dir(tmp_path, {"brand": _on_mastodon(DIRECT, instance)})
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", quiet_big)
        assert await gw.sync_policies() == ["brand"]
        [announced] = await _announcements(gw, "brand")
        assert announced["announces"]["changed"] == ["writers", "announce"]
        await gw.tick()
        [status] = fake.statuses(account)
        assert status.text == (
            "Change of voice: this account is now written by 30 writers, and will no longer announce changes of "
            f"its voice. Who writes and approves each post: {PUBLIC}/@brand")
        assert (await _row(gw, announced["post"]))["state"] == "published"
        await verified_by_cli(gw)


def test_an_announcement_fills_its_placeholders_and_nothing_else() -> None:
    """Each placeholder is filled; any other braces (unknown, escaped, unclosed, reversed) stay
    as written, and a template without any is its own text."""
    got = render("{account} {handle} v{version}: {voice} {url} {x} {{voice}} }{ {", account="brand",
                 handle="@brand", summary={"tier": "direct", "owner": "alice", "writers": ["alice"]},
                 url="https://byline.example/@brand", version=3)
    assert got == ("brand @brand v3: written by its owner https://byline.example/@brand {x} "
                   "{written by its owner} }{ {")
    assert render("no braces at all", account="a", handle="h", summary={}, url="u", version=1) == "no braces at all"


ALICE = {"tier": "direct", "owner": "alice", "writers": ["alice"]}
ALICE_AND_BOB = {"tier": "direct", "owner": "alice", "writers": ["alice", "bob"]}
ASKING = {"announce": True}


@pytest.mark.parametrize(("before", "after", "expected"), [
    (None, ALICE | ASKING, []),
    (ALICE, ALICE_AND_BOB, []),
    (ALICE, ALICE | ASKING, []),
    (ALICE, ALICE_AND_BOB | ASKING, ["writers"]),
    (ALICE | ASKING, ALICE_AND_BOB | ASKING, ["writers"]),
    (ALICE | ASKING, ALICE | ASKING | {"delay_seconds": 60}, []),
    (ALICE | ASKING, ALICE, ["announce"]),
    (ALICE | ASKING, ALICE_AND_BOB, ["writers", "announce"]),
    (ALICE | ASKING, {"tier": "co-signed", "owner": "bob", "writers": ["alice"], "approvers": ["carol"],
                      "required": 1}, ["tier", "owner", "approvers", "required", "announce"]),
], ids=["first load", "neither asks", "turned on", "new policy asks", "both ask", "no change",
        "turned off", "changed and turned off", "each part"])
def test_what_a_version_announces(
    before: dict[str, Any] | None, after: dict[str, Any], expected: list[str],
) -> None:
    """The parts of the voice changed where either policy asks, in the order of the voice's
    keys, and ``announce`` last where the one replaced asked and the new one does not."""
    assert voice.announced(before, after) == expected


@pytest.mark.parametrize(("changed", "expected"), [
    (["writers"], "Own: written by its owner https://byline.example/@brand"),
    (["announce"], "This account will no longer announce changes of its voice. Who writes and approves each "
                   "post: https://byline.example/@brand"),
    (["writers", "announce"], "Change of voice: this account is now written by its owner, and will no longer "
                              "announce changes of its voice. Who writes and approves each post: "
                              "https://byline.example/@brand"),
    (["tier", "owner", "announce"], "Change of voice: this account is now written by its owner, and will no "
                                    "longer announce changes of its voice. Who writes and approves each post: "
                                    "https://byline.example/@brand"),
])
def test_the_end_of_announcements_is_said_in_the_default_words(changed: list[str], expected: str) -> None:
    """A change of voice in the policy's own template; the end of the announcements, alone or
    with a change of voice, in the default words that say it, linking the public page."""
    template = voice.template_for(changed, "Own: {voice} {url}")
    assert render(template, account="brand", handle="@brand", summary=ALICE, url="https://byline.example/@brand",
                  version=2) == expected
