"""Restarts: posts due while the gateway was down publish when it returns, exactly once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from adapters.base import AdapterError, OutboundPost
from gateway.appkeys import APPENDER, DB, IDENTITY, PLATFORMS, PUBLISHER, REGISTRY, SANDBOX
from gateway.clock import ManualClock
from gateway.services.publisher import claim_key
from gateway.storage.posts import PostRecord
from gateway.types import AccountName, Micros, PostId, UserName
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import Account, FakeMastodon, Status
from tests.fakes.mastodon import create_app as mastodon_app
from tests.test_crash_media import PNG
from tests.test_publishing import MASTODON_TOKEN
from tests.test_voice_integrity import BRAND

BRAND_OF_THREE = BRAND.replace("from: [bob, carol]", "from: [bob, carol, dave]")
"""Co-signed: alice and carol write, one of bob, carol and dave approves."""


async def test_due_and_overdue_posts_publish_once_after_restart(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """Scheduled posts that came due during downtime go out once when the gateway is back."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        overdue = await first.submit("bob", "delayed", "Written before the outage")
        at = (clock.now() + timedelta(minutes=5)).isoformat()
        due = await first.submit("alice", "direct", "Scheduled for later", publish_at=at)
        future = await first.submit("alice", "direct", "Much later",
                                    publish_at=(clock.now() + timedelta(days=2)).isoformat())
    clock.advance(timedelta(hours=3))
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert await second.tick() == 2
        assert await second.tick() == 0
        assert (await second.get("bob", overdue["id"]))["state"] == "published"
        assert (await second.get("alice", due["id"]))["state"] == "published"
        assert (await second.get("alice", future["id"]))["state"] == "scheduled"
        assert [p["text"] for p in await second.timeline("delayed")] == ["Written before the outage"]
        assert [p["text"] for p in await second.timeline("direct")] == ["Scheduled for later"]
    async with started_gateway(db_url, policy_dir, clock) as third:
        assert await third.tick() == 0
        assert len(await third.timeline("direct")) == 1


async def test_crash_after_platform_accepted_is_recovered_without_a_second_copy(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A publish that reached the platform but died before recording it is found, not redone."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("alice", "direct", "Lost in the crash")
        publisher = first.app[PUBLISHER]
        claim = await first.app[APPENDER].submit(publisher._claim_work(post["id"]))
        assert claim is not None
        adapter = first.app[PLATFORMS].adapter_for(first.app[REGISTRY].policies["direct"])
        await adapter.publish(OutboundPost(post_id=post["id"], idempotency_key=claim.key, text=claim.text))
        # ...and the gateway dies here, before recording the result.
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert (await second.get("alice", post["id"]))["state"] == "publishing"
        assert await second.tick() == 0  # the lease has not run out yet
        clock.advance(timedelta(minutes=3))
        assert await second.tick() == 1
        recovered = await second.get("alice", post["id"])
        assert recovered["state"] == "published"
        assert len(await second.timeline("direct")) == 1
        kinds = [e["type"] for e in recovered["events"]]
        assert kinds == ["post.submitted", "post.publishing", "post.publishing", "post.published"]
        assert recovered["events"][2]["data"]["recovering"] is True


async def test_crash_before_platform_saw_it_publishes_once(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A publish that died before any request left is published by the recovery path, once."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("alice", "direct", "Never left")
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None
    clock.advance(timedelta(minutes=3))
    async with started_gateway(db_url, policy_dir, clock) as second:
        assert await second.tick() == 1
        assert [p["text"] for p in await second.timeline("direct")] == ["Never left"]
        assert (await second.get("alice", post["id"]))["state"] == "published"


async def test_a_claim_is_taken_up_again_the_moment_its_lease_runs_out_and_not_before(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """A claim whose publisher died is claimed again at the very microsecond its lease runs out,
    as the query for due posts reads it, and not a microsecond before, even asked for that one
    post: then it goes out once, and the log verifies."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("alice", "direct", "Never left")
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None
    async with started_gateway(db_url, policy_dir, clock) as second:
        publisher = second.app[PUBLISHER]
        clock.advance(timedelta(microseconds=publisher._lease - 1))
        assert await second.app[APPENDER].submit(publisher._claim_work(post["id"])) is None
        assert await second.tick() == 0
        clock.advance(timedelta(microseconds=1))
        assert await second.tick() == 1
        published = await second.get("alice", post["id"])
        assert published["state"] == "published", published
        assert [e["data"]["recovering"] for e in published["events"] if e["type"] == "post.publishing"] == [
            False, True]
        assert [p["text"] for p in await second.timeline("direct")] == ["Never left"]
        await verified_by_cli(second)


BRAND_DELAYED = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: delayed
    owner: alice
    writers: [alice, carol]
    delay: 1m
    disclosure: "—{author}"
"""
"""brand before it turns co-signed: alice and carol write, and a post waits a minute."""


async def _claimed_when_the_gateway_died(
    db_url: str, policy_dir: Path, clock: ManualClock, *, sent: bool, policy: str = BRAND_OF_THREE,
    **options: Any,
) -> str:
    """carol's post on brand (under ``policy``, carrying ``options``), approved by bob where it
    is co-signed, and claimed by a publisher that dies before it records how the publish went:
    before any request left, or (``sent``) once the platform had taken it. The post's id."""
    write_policy(policy_dir, "brand", policy)
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("carol", "brand", "Launch day", **options)
        if post["state"] == "held":
            status, body = await first.act("bob", post["id"], "approve")
            assert (status, body["state"]) == (200, "scheduled"), body
        clock.advance(timedelta(minutes=2))
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None
        if sent:
            adapter = first.app[PLATFORMS].adapter_for(first.app[REGISTRY].policies["brand"])
            await adapter.publish(OutboundPost(post_id=post["id"], idempotency_key=claim.key, text=claim.text))
    return str(post["id"])


async def test_a_cosigned_claim_recovered_under_the_policy_it_was_approved_under_goes_out_once(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """carol's post, approved by bob, lies claimed by a dead publisher, and brand's policy has
    not changed: once its lease runs out it is claimed again to be sent, not only looked for (bob's
    approval still counts), as the same attempt (a lease that ran out is no refusal, and uses
    none of the retry budget), and goes out once; the log verifies."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        published = await second.get("alice", post_id)
        assert (published["state"], published["version"]) == ("published", 1), published
        claims = [e["data"] for e in published["events"] if e["type"] == "post.publishing"]
        assert [(c["recovering"], c.get("looks_only"), c["attempt"]) for c in claims] == [
            (False, None, 1), (True, None, 1)], claims
        await verified_by_cli(second)


BRAND_HELD = BRAND_DELAYED + """
    approvals:
      required: 1
      from: [bob, dave]
    rules:
      - {name: launch, action: hold, any_words: [launch], reason: Check it}
"""
"""brand delayed, not co-signed: a post that speaks of a launch is held for bob or dave."""


async def test_a_recovered_claim_of_a_post_held_by_a_rule_and_released_goes_out_on_its_release(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """On a delayed account, carol's post is held by a rule and released by bob, then lies claimed
    by a dead publisher, the policy unchanged: once its lease runs out it is claimed again to be
    sent, not only looked for (bob's release is read, and still counts), and goes out once; the
    log verifies. (A claim that read no release for a post held on a tier other than co-signed
    held it again for the release it has.)"""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False, policy=BRAND_HELD)
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        published = await second.get("alice", post_id)
        assert (published["state"], published["approvals_required"]) == ("published", 1), published
        claims = [e["data"] for e in published["events"] if e["type"] == "post.publishing"]
        assert [(c["recovering"], c.get("looks_only")) for c in claims] == [(False, None), (True, None)], claims
        await verified_by_cli(second)


@pytest.mark.parametrize(("policy", "required", "approvers"), [
    pytest.param(BRAND_OF_THREE.replace("required: 1", "required: 2"), 2, ["bob", "dave"],
                 id="one-more-approval-asked"),
    pytest.param(BRAND_OF_THREE.replace("from: [bob, carol, dave]", "from: [carol, dave]"), 1, ["dave"],
                 id="bob-no-longer-approves"),
])
async def test_a_claim_recovered_after_the_policy_asks_other_approvals_is_held_not_sent(
    db_url: str, policy_dir: Path, clock: ManualClock, policy: str, required: int, approvers: list[str],
) -> None:
    """The policy asks for two approvals (or no longer names bob) while carol's post, approved
    by bob alone, lies claimed by a dead publisher: once its lease runs out it is looked for, not
    found, and held for the approvals asked now, not sent (before, the recovery sent it on bob's
    one); the approvers named now then send it, and the log verifies."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    write_policy(policy_dir, "brand", policy)
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert await second.timeline("brand") == []
        held = await second.get("alice", post_id)
        assert (held["state"], held["version"], held["approvals_required"]) == ("held", 2, required), held
        assert held["reasons"][-1]["rule"] == "policy_changed"
        kinds = [e["type"] for e in held["events"]]
        assert kinds[-3:] == ["post.publishing", "post.publishing", "post.redecided"], kinds
        assert held["events"][-2]["data"]["looks_only"] == "policy_changed"
        for n, approver in enumerate(approvers, 1):
            status, body = await second.act(approver, post_id, "approve")
            assert (status, body["state"]) == (200, "scheduled" if n == len(approvers) else "held"), body
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        await verified_by_cli(second)


async def test_a_claim_recovered_after_its_author_lost_the_writer_role_is_held_not_sent(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """The policy takes carol off the writers while her post lies claimed by a dead publisher:
    once its lease runs out it is looked for, not found, and held for the approvers to decide
    again (before, the recovery sent it under the policy that no longer lets her write); bob's
    approval of it then sends it, and the log verifies."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("writers: [alice, carol]", "writers: [alice]"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert await second.timeline("brand") == []
        held = await second.get("alice", post_id)
        assert (held["state"], held["version"], held["approvers"]) == ("held", 2, ["bob", "dave"]), held
        assert held["reasons"][-1]["rule"] == "author_lost_role"
        assert held["events"][-2]["data"]["looks_only"] == "author_lost_role"
        status, body = await second.act("bob", post_id, "approve")
        assert (status, body["state"]) == (200, "scheduled"), body
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        await verified_by_cli(second)


async def test_a_claim_recovered_after_the_policy_changed_is_recorded_published_when_the_platform_has_it(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """The platform took carol's post before its publisher died, and the policy then asks for
    two approvals: the recovery finds it there and records it published (it cannot be taken
    back), once; the log says the claim only looked and found it, and verifies (before, the
    claim was one that would have sent it, and the verifier named it)."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        found = await second.get("alice", post_id)
        assert found["state"] == "published"
        assert [e["type"] for e in found["events"]][-2:] == ["post.publishing", "post.published"]
        assert found["events"][-2]["data"]["looks_only"] == "policy_changed"
        assert found["events"][-1]["data"]["found"] is True
        await verified_by_cli(second)


async def test_a_recovered_claim_its_platform_cannot_look_for_waits_publishing_unsent(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform cannot say whether it has carol's post (its lookup fails) when the recovery
    would only look for it: it is neither sent nor put back among the due posts (before, it was
    deferred, scheduled again), but left publishing for its lease to run out; looked for again
    then, and not found, it is held."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        async def unreachable(key: str) -> object:
            raise AdapterError("the platform could not be reached", retryable=True)

        clock.advance(timedelta(minutes=3))
        with monkeypatch.context() as patch:
            patch.setattr(second.app[SANDBOX], "find", unreachable)
            await second.tick()
        waiting = await second.get("alice", post_id)
        assert (waiting["state"], waiting["version"]) == ("publishing", 1), waiting
        assert [e["type"] for e in waiting["events"]][-2:] == ["post.publishing", "post.publishing"]
        assert await second.timeline("brand") == []
        assert await second.tick() == 0  # its lease has not run out again yet
        clock.advance(timedelta(minutes=3))
        await second.tick()
        held = await second.get("alice", post_id)
        assert (held["state"], held["approvals_required"]) == ("held", 2), held
        assert await second.timeline("brand") == []
        await verified_by_cli(second)


async def _held_after_a_lookup_that_missed(
    gw: Gateway, post_id: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    *, mastodon: FakeMastodon | None = None,
) -> None:
    """The recovery of carol's claim looks for her post and misses it (the platform's lookup lags
    behind what it took: the sandbox's, or the ``mastodon`` stand-in's account timeline), so it
    is held for the two approvals the policy now asks."""
    async def lagging(key: str) -> None:
        return None

    clock.advance(timedelta(minutes=3))
    with monkeypatch.context() as patch:
        if mastodon is None:
            patch.setattr(gw.app[SANDBOX], "find", lagging)
        else:
            patch.setattr(mastodon, "statuses", lambda *args, **kwargs: [])
        await gw.tick()
    held = await gw.get("alice", post_id)
    assert (held["state"], held["version"], held["approvals_required"]) == ("held", 2, 2), held


async def _approved_by_bob_and_dave(gw: Gateway, post_id: str) -> Any:
    """bob and dave approve carol's held post, each answered 200; dave's answer."""
    for approver in ("bob", "dave"):
        status, body = await gw.act(approver, post_id, "approve")
        assert status == 200, body
    return body


@pytest.mark.parametrize("options", [pytest.param({}, id="words-only"),
                                     pytest.param({"spoiler_text": "Spoilers"}, id="with-a-content-warning")])
async def test_a_held_recovered_claim_approved_again_with_the_same_words_is_not_published_twice(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, options: dict[str, Any],
) -> None:
    """The platform took carol's post before its publisher died; the recovery's lookup missed it
    and it was held; bob and dave approve the same words again. They go out under the key the
    first send used, so the platform gives back the post it has: one copy, recorded published
    with its id (before, a new version's new key made a second copy), and the log verifies. So
    too with a content warning, the same in both versions: the claim compares what it carries
    with what the first send carried (before, under mutation, a claim that compared it with
    nothing took a new key for it, and made a second copy)."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, **options)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        first = await second.timeline("brand")
        assert [p["text"] for p in first] == ["Launch day\n\n—carol"]
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert [(p["id"], p["text"]) for p in await second.timeline("brand")] == [
            (first[0]["id"], "Launch day\n\n—carol")]
        published = await second.get("alice", post_id)
        assert (published["state"], published["remote"]["id"]) == ("published", first[0]["id"]), published
        claims = [e["data"] for e in published["events"] if e["type"] == "post.publishing"]
        assert [c["idempotency_key"] for c in claims] == [f"byline-{post_id}-v1"] * 3
        await verified_by_cli(second)


@dataclass(frozen=True)
class BrandOnMastodon:
    """The Mastodon stand-in with brand's account, and ``BRAND_OF_THREE`` posting to it."""

    fake: FakeMastodon
    account: Account
    instance: str
    """The stand-in's address."""

    def on_it(self, policy: str) -> str:
        """A sandbox ``policy`` of brand's, posting to the stand-in instead."""
        return policy.replace("platform: sandbox", f"""platform: mastodon
    instance: {self.instance}
    credentials: env:BRAND_MASTODON_TOKEN""")

    @property
    def policy(self) -> str:
        """``BRAND_OF_THREE`` on the stand-in."""
        return self.on_it(BRAND_OF_THREE)


@pytest.fixture
async def brand_on_mastodon(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[BrandOnMastodon]:
    """The stand-in on a real socket, its token where the policy's credentials say."""
    fake = FakeMastodon()
    account = fake.add_account("brand", MASTODON_TOKEN)
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", MASTODON_TOKEN)
    async with TestServer(mastodon_app(fake)) as server:
        yield BrandOnMastodon(fake, account, str(server.make_url("")).rstrip("/"))


async def test_a_held_recovered_claim_approved_again_is_one_status_on_mastodon(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    brand_on_mastodon: BrandOnMastodon,
) -> None:
    """The same through the Mastodon stand-in and its Idempotency-Key: the instance took carol's
    status before the gateway died, its account timeline did not show it yet when the recovery
    looked, and bob and dave approve the same words again. The instance answers the repeated key
    with the status it made: one status, recorded as the post's (before, two), and the log verifies."""
    mastodon = brand_on_mastodon
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, policy=mastodon.policy)
    [taken] = mastodon.fake.statuses(mastodon.account)
    write_policy(policy_dir, "brand", mastodon.policy.replace("required: 1", "required: 2"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch, mastodon=mastodon.fake)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert [(s.id, s.text) for s in mastodon.fake.statuses(mastodon.account)] == [
            (taken.id, "Launch day\n\n—carol")]
        published = await second.get("alice", post_id)
        assert (published["state"], published["remote"]["id"]) == ("published", taken.id), published
        await verified_by_cli(second)


async def test_a_recovered_claim_whose_token_cannot_read_statuses_waits_naming_the_scope(
    db_url: str, policy_dir: Path, clock: ManualClock, brand_on_mastodon: BrandOnMastodon,
) -> None:
    """The instance took carol's status before the gateway died, and brand's token has only the
    scopes the README used to list (``read:accounts``, ``write:statuses``): the recovery cannot
    read the account's statuses (Mastodon answers 403 for scope). The post is neither failed nor
    sent again: it waits, its budget untouched, and the account's health (``GET /v1/accounts``,
    ``/readyz``) says the token lacks read:statuses. Once the application has the scope, the
    status is found: one status, recorded as the post's, and the log verifies. (Before: the
    bare 403 failed the post, though it was out.)"""
    mastodon = brand_on_mastodon
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, policy=mastodon.policy)
    [taken] = mastodon.fake.statuses(mastodon.account)
    mastodon.fake.scope_token(MASTODON_TOKEN, "read:accounts", "write:statuses")
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        waiting = await second.get("alice", post_id)
        assert (waiting["state"], waiting["attempts"]) == ("scheduled", 1), waiting
        assert "the token lacks the scope read:statuses" in waiting["last_error"]
        _, accounts = await second.call("alice", "GET", "/v1/accounts")
        brand = next(a for a in accounts["accounts"] if a["account"] == "brand")
        assert brand["healthy"] is False and "the token lacks the scope read:statuses" in brand["problem"]
        assert MASTODON_TOKEN not in str(accounts)
        _, ready = await second.call(None, "GET", "/readyz")
        assert ready["accounts_unhealthy"] == ["brand"]
        mastodon.fake.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses", "write:statuses")
        clock.advance(timedelta(minutes=6))
        await second.tick()
        assert [s.id for s in mastodon.fake.statuses(mastodon.account)] == [taken.id]
        published = await second.get("alice", post_id)
        assert (published["state"], published["remote"]["id"]) == ("published", taken.id), published
        await verified_by_cli(second)


async def test_a_claim_under_a_carried_key_deferred_sends_its_words_again_after_the_disclosure_changed(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    brand_on_mastodon: BrandOnMastodon,
) -> None:
    """As above, and the claim approved again (version 2, under the first claim's key, which it
    carries with the same words) meets an outage: deferred. The policy's disclosure line changes;
    the retry at version 2 sends the words that key went out with, so the instance answers with
    the status it made: one status, its words the post's as recorded (before, the new words went
    out under version 2's key: a second status), and the log verifies."""
    mastodon = brand_on_mastodon
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, policy=mastodon.policy)
    [taken] = mastodon.fake.statuses(mastodon.account)
    assert taken.idempotency_key is not None  # the key the first claim sent it under
    two_approvals = mastodon.policy.replace("required: 1", "required: 2")
    write_policy(policy_dir, "brand", two_approvals)
    async with started_gateway(db_url, policy_dir, clock) as second:
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch, mastodon=mastodon.fake)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        mastodon.fake.faults.fail_next(10, 503, method="POST", path="/api/v1/statuses")
        await second.tick()
        deferred = await second.get("alice", post_id)
        assert (deferred["state"], deferred["version"]) == ("scheduled", 2), deferred
        mastodon.fake.faults.clear()
        write_policy(policy_dir, "brand", two_approvals.replace("—{author}", "Written by {author}"))
        assert await second.sync_policies() == ["brand"]
        clock.advance(timedelta(minutes=10))
        await second.tick()
        assert [(s.id, s.text) for s in mastodon.fake.statuses(mastodon.account)] == [
            (taken.id, "Launch day\n\n—carol")]
        published = await second.get("alice", post_id)
        assert (published["state"], published["remote"]["id"], published["display_text"]) == (
            "published", taken.id, "Launch day\n\n—carol"), published
        keys = {e["data"]["idempotency_key"] for e in published["events"] if e["type"] == "post.publishing"}
        assert keys == {taken.idempotency_key}, keys
        await verified_by_cli(second)


@pytest.mark.parametrize("options", [pytest.param({}, id="words-only"),
                                     pytest.param({"spoiler_text": "Spoilers"}, id="with-a-content-warning")])
@pytest.mark.parametrize("platform", ["sandbox", "mastodon"])
async def test_a_recovered_claim_held_and_approved_after_the_disclosure_changed_is_one_post(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    brand_on_mastodon: BrandOnMastodon, platform: str, options: dict[str, Any],
) -> None:
    """The platform took carol's post on delayed brand before its publisher died; brand then
    turns co-signed, with another disclosure line; the recovery's lookup misses the post and it
    is held; bob and dave approve it over HTTP. Its words are the same, only the line around
    them changed: it goes out as the first send did, under that send's key, so the platform
    gives back the post it has. One post, recorded published with the words it shows (before,
    the new line went out under the new version's key: a second post), and the log verifies.
    So too with a content warning, the same in both versions, which the first claim's entry
    records by its hash (``content_sha256``)."""
    mastodon = brand_on_mastodon if platform == "mastodon" else None

    def on_it(policy: str) -> str:
        return policy if mastodon is None else mastodon.on_it(policy)

    async def out(gw: Gateway) -> list[tuple[str, str]]:
        if mastodon is None:
            return [(p["id"], p["text"]) for p in await gw.timeline("brand")]
        return [(s.id, s.text) for s in mastodon.fake.statuses(mastodon.account)]

    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, policy=on_it(BRAND_DELAYED),
                                                   **options)
    write_policy(policy_dir, "brand", on_it(BRAND_OF_THREE.replace("required: 1", "required: 2")
                                            .replace("—{author}", "Written by {author}")))
    async with started_gateway(db_url, policy_dir, clock) as second:
        first = await out(second)
        assert [text for _, text in first] == ["Launch day\n\n—carol"]
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch,
                                               mastodon=None if mastodon is None else mastodon.fake)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert first == await out(second)
        published = await second.get("alice", post_id)
        assert (published["state"], published["remote"]["id"], published["display_text"]) == (
            "published", first[0][0], "Launch day\n\n—carol"), published
        keys = {e["data"]["idempotency_key"] for e in published["events"] if e["type"] == "post.publishing"}
        assert keys == {f"byline-{post_id}-v1"}, keys
        await verified_by_cli(second)


async def test_a_post_held_before_what_a_send_carried_was_kept_goes_out_once_after_the_line_changed(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, on the sandbox, for a post held before Byline kept what a send carried
    besides its words (``sent_content`` empty: its database upgraded while the post was held):
    approved again after the line changed, it is still the claim before it taken up again,
    and sends what that claim sent under that claim's key: one post, and the log verifies
    (under mutation, a claim that chose its key as a new one would, comparing what it carries
    with nothing kept, made a second post)."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True, policy=BRAND_DELAYED)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2")
                 .replace("—{author}", "Written by {author}"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        first = await second.timeline("brand")
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch)
        async with second.app[DB].write() as txn:
            await txn.execute("UPDATE posts SET sent_content = NULL WHERE id = ?", post_id)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert [(p["id"], p["text"]) for p in first] == [
            (p["id"], p["text"]) for p in await second.timeline("brand")] == [(first[0]["id"], "Launch day\n\n—carol")]
        published = await second.get("alice", post_id)
        keys = {e["data"]["idempotency_key"] for e in published["events"] if e["type"] == "post.publishing"}
        assert (published["state"], keys) == ("published", {f"byline-{post_id}-v1"}), published
        await verified_by_cli(second)


BRAND_DELAYED_UNSIGNED = BRAND_DELAYED.replace('    disclosure: "—{author}"\n', "")
"""delayed brand with no disclosure line: a post goes out with its own words alone."""


async def _uploads_claimed_when_the_gateway_died(
    db_url: str, policy_dir: Path, clock: ManualClock, mastodon: BrandOnMastodon
) -> str:
    """carol's post of a picture alone (no words) on delayed brand with no disclosure line, on the
    Mastodon stand-in, posted through Byline's Mastodon API as an app posts it, and claimed by a
    publisher that dies once the instance took it (its words: none at all). The post's id."""
    policy = mastodon.on_it(BRAND_DELAYED_UNSIGNED)
    assert "disclosure" not in policy
    write_policy(policy_dir, "brand", policy)
    async with started_gateway(db_url, policy_dir, clock) as first:
        auth = {"Authorization": f"Bearer {await first.app[IDENTITY].create(user='carol', account='brand')}"}
        form = aiohttp.FormData()
        form.add_field("file", PNG, filename="dot.png", content_type="image/png")
        async with first.client.post("/api/v2/media", data=form, headers=auth) as resp:
            assert resp.status in (200, 202), await resp.text()
            media_id = (await resp.json())["id"]
        async with first.client.post("/api/v1/statuses", data={"status": "", "media_ids[]": media_id},
                                     headers=auth) as resp:
            assert resp.status == 200, await resp.text()
            post_id = str((await resp.json())["id"])
        clock.advance(timedelta(minutes=2))
        publisher = first.app[PUBLISHER]
        claim = await first.app[APPENDER].submit(publisher._claim_work(post_id))
        assert claim is not None and claim.text == ""
        adapter = first.app[PLATFORMS].adapter_for(first.app[REGISTRY].policies["brand"])
        await adapter.publish(OutboundPost(post_id=post_id, idempotency_key=claim.key, text=claim.text,
                                           media=await publisher._media(claim)))
    return post_id


async def _one_picture_alone_published(gw: Gateway, post_id: str, mastodon: BrandOnMastodon, taken: Status) -> None:
    """What the instance shows is ``taken`` alone, the picture without words; the post is
    recorded published as that status, with the words it shows, every claim of it under the key
    the first send used; and the log verifies with ``byline audit verify``."""
    assert [(s.id, s.text, len(s.media_ids)) for s in mastodon.fake.statuses(mastodon.account)] == [
        (taken.id, "", 1)]
    published = await gw.get("alice", post_id)
    assert (published["state"], published["remote"]["id"], published["display_text"]) == (
        "published", taken.id, ""), published
    keys = {e["data"]["idempotency_key"] for e in published["events"] if e["type"] == "post.publishing"}
    assert keys == {taken.idempotency_key}, keys
    await verified_by_cli(gw)


async def test_a_recovered_claim_of_a_picture_alone_sends_no_disclosure_line_added_since(
    db_url: str, policy_dir: Path, clock: ManualClock, brand_on_mastodon: BrandOnMastodon,
) -> None:
    """The instance took carol's picture alone, sent with no words (brand had no disclosure
    line), before its publisher died; brand then gains a disclosure line. The recovered claim
    sends what the first send did, nothing, under its key: the instance gives back the status it
    made, and the post is recorded published with the words that status shows (before, an
    empty first send counted as never sent: the new line went out under the first key, and the
    post was recorded with words the instance does not show), and the log verifies."""
    mastodon = brand_on_mastodon
    post_id = await _uploads_claimed_when_the_gateway_died(db_url, policy_dir, clock, mastodon)
    [taken] = mastodon.fake.statuses(mastodon.account)
    write_policy(policy_dir, "brand", mastodon.on_it(BRAND_DELAYED))
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        await _one_picture_alone_published(second, post_id, mastodon, taken)


async def test_a_held_recovered_claim_of_a_picture_alone_approved_after_a_disclosure_line_came_is_one_status(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    brand_on_mastodon: BrandOnMastodon,
) -> None:
    """The same, and brand turns co-signed as it gains the line: the recovery's lookup misses
    the status, the post is held, and bob and dave approve it again over HTTP, a new version of
    the same picture alone. It sends what the first send did, under that send's key: one
    status (before, the new line went out under the new version's key: a second status beside
    the first), and the log verifies."""
    mastodon = brand_on_mastodon
    post_id = await _uploads_claimed_when_the_gateway_died(db_url, policy_dir, clock, mastodon)
    [taken] = mastodon.fake.statuses(mastodon.account)
    write_policy(policy_dir, "brand", mastodon.on_it(BRAND_OF_THREE.replace("required: 1", "required: 2")))
    async with started_gateway(db_url, policy_dir, clock) as second:
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch, mastodon=mastodon.fake)
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        await _one_picture_alone_published(second, post_id, mastodon, taken)


@pytest.mark.parametrize("line", [pytest.param("—", id="same-line"), pytest.param("Written by ", id="other-line")])
async def test_a_held_recovered_claim_edited_before_it_is_approved_goes_out_under_a_new_key(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, line: str,
) -> None:
    """The same, but carol edits the held post before it is approved: the new words are not the
    ones the first send carried, so they go out under a key of their own (the platform must not
    hand back the old words as if they were the new), with the disclosure line the policy asks
    now (changed meanwhile, or not: an edit is another post, never the first send's words
    again), and the log verifies."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=True)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2")
                 .replace("—{author}", line + "{author}"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        await _held_after_a_lookup_that_missed(second, post_id, clock, monkeypatch)
        status, body = await second.call("carol", "PATCH", f"/v1/posts/{post_id}", {"text": "Launch day, for real"})
        assert (status, body["state"]) == (200, "held"), body
        await _approved_by_bob_and_dave(second, post_id)
        clock.advance(timedelta(minutes=2))
        await second.tick()
        assert sorted(p["text"] for p in await second.timeline("brand")) == [
            "Launch day\n\n—carol", f"Launch day, for real\n\n{line}carol"]
        published = await second.get("alice", post_id)
        assert published["state"] == "published", published
        claims = [e["data"] for e in published["events"] if e["type"] == "post.publishing"]
        assert claims[-1]["idempotency_key"] == f"byline-{post_id}-v{published['version']}" != claims[0][
            "idempotency_key"]
        await verified_by_cli(second)


async def test_a_recovered_claim_held_and_approved_waits_out_the_longer_delay_now_in_force(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """While carol's claimed post lies stranded, the policy asks for two approvals and a
    cooling-off of an hour where it was a minute: the recovery holds it unsent, and once bob and
    dave approve it, it waits the hour now in force from their approval before it goes out, once;
    the log verifies (its due-time check holds the claim to the approval's time)."""
    post_id = await _claimed_when_the_gateway_died(db_url, policy_dir, clock, sent=False)
    write_policy(policy_dir, "brand", BRAND_OF_THREE.replace("required: 1", "required: 2")
                 .replace("delay: 1m", "delay: 1h"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert (await second.get("alice", post_id))["state"] == "held"
        body = await _approved_by_bob_and_dave(second, post_id)
        approved = clock.now()
        assert body["state"] == "scheduled", body
        assert datetime.fromisoformat(body["publish_at"]) == approved + timedelta(hours=1)
        clock.advance(timedelta(minutes=59))
        await second.tick()
        assert await second.timeline("brand") == []
        assert (await second.get("alice", post_id))["state"] == "scheduled"
        clock.advance(timedelta(minutes=1))
        await second.tick()
        assert [p["text"] for p in await second.timeline("brand")] == ["Launch day\n\n—carol"]
        assert (await second.get("alice", post_id))["state"] == "published"
        await verified_by_cli(second)


async def test_a_recovered_delayed_claim_whose_window_ended_goes_out_once_though_the_delay_grew(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """bob's post on the delayed account was due, and claimed, when its publisher died; the
    delay then grows from ten minutes to two hours. Its cooling-off ended under the policy it was
    released under, as for every post already due when a delay changes (a delay change decides
    no waiting post again, and the log's due-time check holds each claim to the time its post's
    entries gave): the recovery looks for it, and, not finding it, sends it once, with the key
    of the claim it takes up; the log verifies."""
    async with started_gateway(db_url, policy_dir, clock) as first:
        post = await first.submit("bob", "delayed", "Cooled off already")
        clock.advance(timedelta(minutes=11))
        claim = await first.app[APPENDER].submit(first.app[PUBLISHER]._claim_work(post["id"]))
        assert claim is not None
    policy = (policy_dir / "delayed.yaml").read_text()
    assert "delay: 10m" in policy
    write_policy(policy_dir, "delayed", policy.replace("delay: 10m", "delay: 2h"))
    async with started_gateway(db_url, policy_dir, clock) as second:
        clock.advance(timedelta(minutes=3))
        await second.tick()
        assert [p["text"] for p in await second.timeline("delayed")] == ["Cooled off already"]
        published = await second.get("bob", post["id"])
        assert published["state"] == "published", published
        claims = [e["data"] for e in published["events"] if e["type"] == "post.publishing"]
        assert [(c["recovering"], c["idempotency_key"], "looks_only" in c) for c in claims] == [
            (False, claim.key, False), (True, claim.key, False)]
        assert await second.tick() == 0
        assert len(await second.timeline("delayed")) == 1
        await verified_by_cli(second)


def _claimed(**row: Any) -> PostRecord:
    """Post 7 at version 3, claimed before with "Launch day" and a content warning's hash."""
    fields: dict[str, Any] = {
        "id": PostId("7"), "account": AccountName("brand"), "author": UserName("carol"), "state": "scheduled",
        "version": 3, "text": "Launch day", "created_at": Micros(0), "updated_at": Micros(0),
        "idempotency_key": "byline-7-v1", "published_text": "Launch day", "sent_content": "c" * 64,
    }
    return PostRecord(**{**fields, **row})


@pytest.mark.parametrize(("row", "text", "content", "recovering", "expected"), [
    pytest.param({}, "Launch day", "c" * 64, False, "byline-7-v1", id="same-words-and-content"),
    pytest.param({}, "Launch day!", "c" * 64, False, "byline-7-v3", id="other-words"),
    pytest.param({}, "Launch day", "d" * 64, False, "byline-7-v3", id="other-content-warning"),
    pytest.param({}, "Launch day", None, False, "byline-7-v3", id="content-taken-off"),
    pytest.param({"sent_content": ""}, "Launch day", None, False, "byline-7-v1", id="words-only-both-times"),
    pytest.param({"sent_content": None}, "Launch day", None, False, "byline-7-v3", id="claimed-before-it-was-kept"),
    pytest.param({"sent_content": None}, "Launch day", None, True, "byline-7-v1", id="recovered-claim"),
    pytest.param({"idempotency_key": None, "published_text": None, "sent_content": None}, "Launch day", None,
                 False, "byline-7-v3", id="never-claimed"),
])
def test_a_claims_key_follows_what_it_sends(
    row: dict[str, Any], text: str, content: str | None, recovering: bool, expected: str
) -> None:
    """A claim sends the key of the claim before it where it sends the same words and content
    (or takes that claim up again), and its version's key where anything sent differs."""
    assert expected == claim_key(_claimed(**row), text=text, content=content, recovering=recovering)


def test_manual_clock_is_utc() -> None:
    """The test clock is an aware UTC time, as stored times require."""
    assert ManualClock().now().tzinfo is UTC
    assert ManualClock(datetime(2030, 1, 1, tzinfo=UTC)).now().year == 2030
