"""Whose platform account a policy speaks as is part of its voice: a file pointed at another
real account (another handle and its token on the Mastodon instance) is logged as that change,
and the posts approved for the first account are decided again before anything goes out on
the second. A Mastodon stand-in on a real socket, both databases."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from gateway.appkeys import CHECKPOINTS, DB
from gateway.clock import ManualClock
from tests.audit.logtools import byline_in_process, verified_by_cli
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy
from tests.fakes.mastodon import Account, FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app

BRAND_TOKEN = "tok-brand-5e1f0a"
OTHER_TOKEN = "tok-other-a7c3d2"


@dataclass
class Instance:
    """The Mastodon stand-in, its address, and its two accounts."""

    fake: FakeMastodon
    url: str
    brand: Account
    other: Account

    def published(self, account: Account) -> list[str]:
        """The texts ``account`` holds on the instance."""
        return [s.text for s in self.fake.statuses(account)]


@pytest.fixture
async def instance() -> AsyncIterator[Instance]:
    """A Mastodon instance holding @brand and @other, each with its own token."""
    fake = FakeMastodon()
    brand, other = fake.add_account("brand", BRAND_TOKEN), fake.add_account("other", OTHER_TOKEN)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    try:
        yield Instance(fake=fake, url=str(server.make_url("")).rstrip("/"), brand=brand, other=other)
    finally:
        await server.close()


def _policy(instance: Instance, handle: str, token_name: str) -> str:
    return f"""
        account: brand
        platform: mastodon
        instance: {instance.url}
        handle: "@{handle}"
        credentials: env:{token_name}
        tier: co-signed
        owner: alice
        writers: [alice]
        delay: 10m
        approvals:
          required: 2
          from: [bob, carol, dave]
        announce:
          voice_changes: true
    """


def _directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, brand: str) -> Path:
    """The policy directory holding ``brand``, with both accounts' tokens in the environment."""
    monkeypatch.setenv("BRAND_TOKEN", BRAND_TOKEN)
    monkeypatch.setenv("OTHER_TOKEN", OTHER_TOKEN)
    return make_policy_dir(tmp_path, {"brand": brand})


async def _approved_for_brand(gw: Gateway) -> dict[str, Any]:
    """Alice's post, approved by bob and carol and scheduled: waiting out its cooling-off."""
    post = await gw.submit("alice", "brand", "Words for the brand")
    for approver in ("bob", "carol"):
        status, body = await gw.act(approver, post["id"], "approve")
        assert status == 200, body
    assert body["state"] == "scheduled", body
    return post


async def _policy_events(gw: Gateway) -> list[dict[str, Any]]:
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE chain = ? ORDER BY idx", "policy:brand")
    return [json.loads(bytes(r["entry"])) for r in rows]


async def _announced(gw: Gateway) -> list[Any]:
    """What each announcement of the account's voice says changed, as its log entry says."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT id FROM posts WHERE author = ? ORDER BY created_at", "policy-file")
    return [(await gw.get("alice", r["id"]))["events"][0]["data"]["announces"]["changed"] for r in rows]


async def test_a_policy_pointed_at_another_platform_account_holds_what_was_approved_for_the_first(
    db_url: str, tmp_path: Path, clock: ManualClock, instance: Instance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob and carol approve alice's post for @brand; in its cooling-off the admin points the
    file at @other (its handle and its token). The log names the change (``speaks_as``) without
    a token or where one is kept; the post is held again, nothing goes out on either account at
    its time, the announcement names the change; only bob's and carol's approvals of the new
    version send it, on @other, once; the public page shows each version's account; the log
    verifies."""
    directory = _directory(tmp_path, monkeypatch, _policy(instance, "brand", "BRAND_TOKEN"))
    async with started_gateway(db_url, directory, clock) as gw:
        post = await _approved_for_brand(gw)

        write_policy(directory, "brand", _policy(instance, "Other", "OTHER_TOKEN"))
        assert await gw.sync_policies() == ["brand"]
        changed = (await _policy_events(gw))[-1]
        assert changed["type"] == "policy.changed"
        assert changed["data"]["changed"] == ["speaks_as"]
        assert changed["data"]["policy"]["speaks_as"] == f"{instance.url} @other"
        assert not any(secret in str(changed) for secret in (BRAND_TOKEN, OTHER_TOKEN, "OTHER_TOKEN", "env:"))

        held = await gw.get("bob", post["id"])
        assert (held["state"], held["version"]) == ("held", 2), held
        assert held["reasons"][-1]["rule"] == "account_changed"
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        announced = instance.published(instance.other)
        assert len(announced) == 1 and "Words for the brand" not in announced[0], announced
        assert instance.published(instance.brand) == []
        assert await _announced(gw) == [["speaks_as"]]

        for approver in ("bob", "carol"):
            status, body = await gw.act(approver, post["id"], "approve", {"version": 2})
            assert status == 200, body
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert instance.published(instance.other)[1:] == ["Words for the brand"]
        assert instance.published(instance.brand) == []
        status, page = await gw.call(None, "GET", "/@brand")
        assert status == 200
        assert f"<bdi>{instance.url} @brand</bdi>" in page and f"<bdi>{instance.url} @other</bdi>" in page, page
        await verified_by_cli(gw)


async def _moved_past_the_reload(gw: Gateway, directory: Path, instance: Instance,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The file pointed at @other by a reload whose work passes the pending posts by (a replica
    behind the policy, a race): nothing but the claim stands between them and @other."""

    async def passed_by(*_: Any, **__: Any) -> list[tuple[str, Any]]:
        return []

    write_policy(directory, "brand", _policy(instance, "other", "OTHER_TOKEN"))
    with monkeypatch.context() as patch:
        patch.setattr("gateway.services.policies.redecide_pending", passed_by)
        assert await gw.sync_policies() == ["brand"]


async def test_the_claim_holds_a_post_approved_for_another_platform_account(
    db_url: str, tmp_path: Path, clock: ManualClock, instance: Instance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob's and carol's approvals were given for @brand; the reload that would hold the post
    passed it by. At its time the claim counts neither for @other: nothing goes out on either
    account, the post is held again for the account change, and bob's and carol's approvals of
    the new version send it on @other, once; the log verifies."""
    directory = _directory(tmp_path, monkeypatch, _policy(instance, "brand", "BRAND_TOKEN"))
    async with started_gateway(db_url, directory, clock) as gw:
        post = await _approved_for_brand(gw)
        await _moved_past_the_reload(gw, directory, instance, monkeypatch)
        assert (await gw.get("bob", post["id"]))["state"] == "scheduled"
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert not any("Words for the brand" in text for text in instance.published(instance.other))
        assert instance.published(instance.brand) == []
        held = await gw.get("bob", post["id"])
        assert (held["state"], held["version"]) == ("held", 2), held
        assert held["reasons"][-1]["rule"] == "account_changed"

        for approver in ("bob", "carol"):
            status, body = await gw.act(approver, post["id"], "approve", {"version": 2})
            assert status == 200, body
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert [t for t in instance.published(instance.other) if "Words" in t] == ["Words for the brand"]
        assert instance.published(instance.brand) == []
        await verified_by_cli(gw)


async def test_a_failed_post_retried_after_the_account_changed_is_held_for_it(
    db_url: str, tmp_path: Path, clock: ManualClock, instance: Instance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Approved for @brand, alice's post fails there (the instance answers 500 past its retry
    budget); the file is pointed at @other, whose reload leaves failed posts be. Alice's retry
    puts it back held for the account change, not on its way to @other on approvals for @brand."""
    directory = _directory(tmp_path, monkeypatch, _policy(instance, "brand", "BRAND_TOKEN"))
    async with started_gateway(db_url, directory, clock) as gw:
        post = await _approved_for_brand(gw)
        instance.fake.faults.fail_next(1000, 500)
        for _ in range(9):  # its budget of eight retries, each after a wait of hours at most
            clock.advance(timedelta(hours=6))
            await gw.tick()
        assert (await gw.get("alice", post["id"]))["state"] == "failed"
        instance.fake.faults.clear()
        write_policy(directory, "brand", _policy(instance, "other", "OTHER_TOKEN"))
        assert await gw.sync_policies() == ["brand"]

        status, body = await gw.act("alice", post["id"], "retry")
        assert status == 200, body
        assert (body["state"], body["reasons"][-1]["rule"]) == ("held", "account_changed"), body
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert not any("Words for the brand" in text for text in instance.published(instance.other))
        assert instance.published(instance.brand) == []
        await verified_by_cli(gw)


async def test_a_post_sent_as_another_account_on_approvals_for_the_first_is_named_by_the_verifier(
    db_url: str, tmp_path: Path, clock: ManualClock, instance: Instance, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Approvals given by an earlier Byline, which kept no account for them (they count as
    before), and a reload that passes the approved post by: it goes out on @other on bob's and
    carol's approvals for @brand. `byline audit verify` names the claim, for the account its
    approvals were given for, as the log says."""
    directory = _directory(tmp_path, monkeypatch, _policy(instance, "brand", "BRAND_TOKEN"))
    async with started_gateway(db_url, directory, clock) as gw:
        post = await _approved_for_brand(gw)
        async with gw.app[DB].write() as txn:
            await txn.execute("UPDATE approvals SET speaks_as = NULL WHERE post_id = ?", post["id"])
        await _moved_past_the_reload(gw, directory, instance, monkeypatch)
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert "Words for the brand" in instance.published(instance.other)
        await gw.app[CHECKPOINTS].sign_now()
        url = str(gw.client.make_url("")).rstrip("/")
        result = await byline_in_process("audit", "verify", "--key", gw.app[CHECKPOINTS].verifier_key(), "--url",
                                         url, "--no-state", "--no-progress", "--workers", "1")
        assert result.code != 0, result.text
        assert (f"post {post['id']} went out on brand as {instance.url} @other with approvals given while it "
                f"spoke as another platform account ({instance.url} @brand)") in result.text, result.text


@pytest.mark.parametrize(("tier", "state"), [("delayed", "held"), ("direct", "scheduled")])
async def test_a_post_in_its_cooling_off_is_decided_again_when_the_account_changes(
    db_url: str, tmp_path: Path, clock: ManualClock, instance: Instance, monkeypatch: pytest.MonkeyPatch,
    tier: str, state: str,
) -> None:
    """Alice's post waits out the delayed account's ten minutes, left to be caught for @brand;
    the file is pointed at @other: it is held for a decision (the owner's, where no approvers
    are named) and does not go out there at its time. A direct writer's own post, timed for
    later, goes on, on her word as before."""

    def policy(handle: str, token_name: str) -> str:
        text = _policy(instance, handle, token_name).replace("tier: co-signed", f"tier: {tier}")
        return text.split("        approvals:")[0]

    directory = _directory(tmp_path, monkeypatch, policy("brand", "BRAND_TOKEN"))
    async with started_gateway(db_url, directory, clock) as gw:
        later = (clock.now() + timedelta(minutes=10)).isoformat()
        post = await gw.submit("alice", "brand", "Words for the brand", **({"publish_at": later}
                                                                           if tier == "direct" else {}))
        assert post["state"] == "scheduled", post
        write_policy(directory, "brand", policy("other", "OTHER_TOKEN"))
        assert await gw.sync_policies() == ["brand"]
        got = await gw.get("alice", post["id"])
        assert got["state"] == state, got
        clock.advance(timedelta(minutes=30))
        await gw.tick()
        assert instance.published(instance.brand) == []
        assert instance.published(instance.other) == ([] if state == "held" else ["Words for the brand"])
        await verified_by_cli(gw)
