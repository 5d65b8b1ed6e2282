"""Nobody speaks alone: the ways one person could publish for a co-signed account, closed.

Each test plays an attack (or an admin's change) over HTTP against a real gateway, checks that
nothing went out that the policy did not allow, and then checks that the gateway's own log
still verifies.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError, OutboundPost, PublishResult
from adapters.sandbox import SandboxAdapter
from gateway.appkeys import APPENDER, CHECKPOINTS, DB, PUBLISHER, SANDBOX
from gateway.audit.entry import text_commitment
from gateway.services.posts import PostService
from gateway.services.publisher import _PER_ACCOUNT
from gateway.storage.posts import PostRecord
from gateway.types import to_micros
from tests.audit.logtools import Attacker, byline
from tests.conftest import TEST_POLICIES, Gateway, started_gateway, write_policy

BRAND = """
    account: brand
    platform: sandbox
    handle: "@brand"
    tier: co-signed
    owner: alice
    writers: [alice, carol]
    delay: 1m
    approvals:
      required: 1
      from: [bob, carol]
    disclosure: "—{author}"
"""

PENCIL = """
    account: pencil
    platform: sandbox
    tier: delayed
    owner: bob
    writers: [bob, carol]
    delay: 10m
    disclosure: "—{author}"
"""


async def _verify_log(gw: Gateway, tmp_path: Path) -> str:
    """Run the real `byline audit verify` against the live gateway; insist it passes."""
    await gw.app[CHECKPOINTS].sign_now()
    url = str(gw.client.make_url("")).rstrip("/")
    key = gw.app[CHECKPOINTS].verifier_key()
    result = await byline("audit", "verify", "--key", key, "--url", url, "--no-state", "--no-progress")
    assert result.code == 0, result.text
    return result.text


async def _publish_due(gw: Gateway, minutes: int = 30) -> None:
    gw.clock.advance(timedelta(minutes=minutes))
    await gw.tick()


async def _patch(gw: Gateway, user: str, post_id: str, text: str) -> tuple[int, Any]:
    return await gw.call(user, "PATCH", f"/v1/posts/{post_id}", {"text": text})


async def test_an_editor_cannot_approve_the_words_they_wrote(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Alice writes, carol edits, carol approves: refused; bob's approval sends it, naming both."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("alice", "brand", "We launch today")
    status, edited = await _patch(gateway, "carol", post["id"], "We launch tomorrow")
    assert status == 200 and edited["version"] == 2
    before = await gateway.snapshot()
    status, body = await gateway.act("carol", post["id"], "approve", {"version": 2})
    assert (status, body["error"]) == (403, "forbidden"), body
    assert await gateway.snapshot() == before
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 2})
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["We launch tomorrow\n\n—alice, edited by carol"]
    assert (await gateway.get("alice", post["id"]))["editors"] == ["carol"]
    await _verify_log(gateway, tmp_path)


async def test_words_rewritten_in_the_database_after_approval_are_named_by_the_verifier(
    gateway: Gateway, policy_dir: Path, db_url: str
) -> None:
    """Carol writes, bob approves; then someone with the database rewrites the approved words
    before they go out, and erases the text bob's approval was given for (as an approval given
    before approvals kept it looks: else the claim would hold the post for other words than bob
    approved). The gateway sends what the database holds, but its log commits to what it sent:
    `byline audit verify` names the post whose words out are not the words approved."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Our results are in")
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    await Attacker(db_url).run(
        ("UPDATE posts SET text = ? WHERE id = ?", ("Buy our coin today", post["id"])),
        ("UPDATE approvals SET text_sha256 = NULL WHERE post_id = ?", (post["id"],)),
    )
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Buy our coin today\n\n—carol"]
    await gateway.app[CHECKPOINTS].sign_now()
    url = str(gateway.client.make_url("")).rstrip("/")
    result = await byline("audit", "verify", "--key", gateway.app[CHECKPOINTS].verifier_key(), "--url", url,
                          "--no-state", "--no-progress")
    assert result.code != 0, result.text
    assert f"post {post['id']} sent out other words than its version 1 (written by carol)" in result.text


async def test_an_approver_cannot_edit_a_post_into_their_own(gateway: Gateway, policy_dir: Path) -> None:
    """Bob edits carol's post when he is its only approver: refused, so his words never go out alone."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Carol's words")
    before = await gateway.snapshot()
    status, body = await _patch(gateway, "bob", post["id"], "Bob's words, under carol's name")
    assert (status, body["error"]) == (409, "no_approvers_left"), body
    assert await gateway.snapshot() == before
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled"
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Carol's words\n\n—carol"]


async def test_an_approval_names_the_version_its_approver_saw(gateway: Gateway, policy_dir: Path) -> None:
    """An approval of the version before an edit is 409; none named is 428; stray fields are 422."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "First words")
    bob = {"Authorization": f"Bearer {gateway.tokens['bob']}"}
    resp = await gateway.client.get(f"/v1/posts/{post['id']}", headers=bob)
    assert resp.status == 200 and resp.headers["ETag"] == '"1"'
    status, _ = await _patch(gateway, "carol", post["id"], "Other words")  # while bob reads
    assert status == 200
    before = await gateway.snapshot()
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert (status, body["error"], body["version"]) == (409, "stale_version", 2), body
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{post['id']}/approve")
    assert (status, body["error"], body["version"]) == (428, "version_required", 2), body
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{post['id']}/reject", {"reason": "no"})
    assert (status, body["error"]) == (428, "version_required"), body
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 2, "anything": "goes"})
    assert (status, body["error"]) == (422, "validation_failed"), body
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{post['id']}/approve", headers={"If-Match": '"1"'})
    assert (status, body["error"]) == (409, "stale_version"), body
    status, body = await gateway.call("carol", "POST", f"/v1/posts/{post['id']}/cancel", {"now": True})
    assert (status, body["error"]) == (422, "validation_failed"), body
    assert await gateway.snapshot() == before
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{post['id']}/approve", headers={"If-Match": '"2"'})
    assert status == 200 and body["state"] == "scheduled", body
    assert [(a["approver"], a["version"]) for a in body["approvals"]] == [("bob", 2)]


async def test_an_edit_names_the_version_it_was_written_from_and_a_stale_one_saves_nothing(
    gateway: Gateway, policy_dir: Path,
) -> None:
    """Carol edits her post from her laptop's copy of version 1 (version 2), then from her
    phone's copy of version 1 too: named in the body or as If-Match, the phone's edit is refused
    (409, naming version 2) and changes nothing, rather than write over the laptop's words
    unseen; named right, it is version 3; named neither way, as before, it edits whatever is
    current. A version that is no number, or two that disagree, are 422."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "First words")
    path = f"/v1/posts/{post['id']}"
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Laptop words", "version": 1})
    assert (status, body["version"]) == (200, 2), body
    before = await gateway.snapshot()
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Phone words", "version": 1})
    assert (status, body.get("version")) == (409, 2), body
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Phone words"}, headers={"If-Match": '"1"'})
    assert (status, body.get("version")) == (409, 2), body
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Phone words", "version": "1"})
    assert (status, body["error"]) == (422, "validation_failed"), body
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Phone words", "version": 2},
                                      headers={"If-Match": '"1"'})
    assert (status, body["error"]) == (422, "validation_failed"), body
    assert await gateway.snapshot() == before
    status, body = await gateway.call("carol", "PATCH", path, {"text": "Phone words", "version": 2})
    assert (status, body["version"], body["text"]) == (200, 3, "Phone words"), body
    status, body = await _patch(gateway, "carol", post["id"], "Last words")
    assert (status, body["version"]) == (200, 4), body


async def test_an_edit_landing_as_an_approval_is_decided_is_not_released_by_it(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob approves version 1 of carol's post, the version he read, and carol's edit to version 2
    lands after his approval was checked and before it is written: the approval is refused (409
    stale_version) in its own transaction, so the words bob never read are not released on his
    word; they wait, and go out once bob approves them."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Our results are in")
    read = PostService._row
    edits: list[tuple[int, Any]] = []

    async def read_then_edited(self: PostService, post_id: str) -> PostRecord:
        row = await read(self, post_id)
        if not edits:  # bob's approval has read the post: carol's edit lands now (its own read passes)
            edits.append((0, None))
            edits[0] = await _patch(gateway, "carol", post_id, "Buy our coin today")
        return row

    monkeypatch.setattr(PostService, "_row", read_then_edited)
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    monkeypatch.setattr(PostService, "_row", read)
    assert (edits[0][0], edits[0][1]["version"]) == (200, 2), edits
    assert (status, body.get("error"), body.get("version")) == (409, "stale_version", 2), body
    waiting = await gateway.get("carol", post["id"])
    assert (waiting["state"], waiting["version"], waiting["approvals"]) == ("held", 2, [])
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 2})
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Buy our coin today\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_a_writer_removed_from_the_policy_loses_their_pending_posts(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Carol is taken off the writers: her waiting post is held for the owner, and she can no
    longer edit or cancel it; it goes out only once the owner decides."""
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "pencil", "Carol's take")
    assert post["state"] == "scheduled"
    write_policy(policy_dir, "pencil", PENCIL.replace("writers: [bob, carol]", "writers: [bob]"))
    await gateway.sync_policies()
    held = await gateway.get("bob", post["id"])
    assert held["state"] == "held" and held["version"] == 2 and held["approvers"] == ["bob"]
    assert [r["rule"] for r in held["reasons"]] == ["author_lost_role"]
    before = await gateway.snapshot()
    status, _ = await _patch(gateway, "carol", post["id"], "Carol's new take")
    assert status == 403
    status, _ = await gateway.act("carol", post["id"], "cancel")
    assert status == 403
    assert await gateway.snapshot() == before
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 2})
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("pencil")] == ["Carol's take\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_a_removed_policy_parks_its_posts_until_it_returns(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Without a policy nothing goes out; the author still sees the post; when the file comes
    back the post is decided again under it."""
    path = write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "pencil", "Before the outage")
    path.unlink()
    await gateway.sync_policies()
    status, seen = await gateway.call("carol", "GET", f"/v1/posts/{post['id']}")
    assert status == 200 and seen["state"] == "held"
    assert [r["rule"] for r in seen["reasons"]] == ["policy_removed"]
    status, _ = await gateway.call("bob", "GET", f"/v1/posts/{post['id']}")
    assert status == 404
    status, body = await _patch(gateway, "carol", post["id"], "During the outage")
    assert (status, body["error"]) == (409, "no_policy_in_force"), body
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    back = await gateway.get("bob", post["id"])
    assert back["state"] == "held" and back["approvers"] == ["bob"] and back["version"] == 2
    assert [r["rule"] for r in back["reasons"]] == ["policy_restored"]
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 2})
    assert status == 200, body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("pencil")] == ["Before the outage\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_a_policy_turned_co_signed_holds_what_was_waiting(gateway: Gateway, policy_dir: Path) -> None:
    """A post waiting out its cooling-off when the account turns co-signed waits for approvals."""
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "pencil", "Quick take")
    write_policy(policy_dir, "pencil", PENCIL.replace("tier: delayed", "tier: co-signed")
                 + "    approvals:\n      required: 1\n      from: [alice, dave]\n")
    await gateway.sync_policies()
    held = await gateway.get("carol", post["id"])
    assert held["state"] == "held" and held["approvers"] == ["alice", "dave"]
    assert [r["rule"] for r in held["reasons"]] == ["policy_changed"]
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []


async def test_withheld_words_cannot_be_confirmed_by_guessing(db_url: str, policy_dir: Path, clock: Any) -> None:
    """The public gets neither the words nor the salt of posts that never went out; the
    account's people and auditors get both."""
    guesses = ["Draft announcement", "Regrettable take", "example-slur", "We are hiring"]
    async with started_gateway(db_url, policy_dir, clock, auditors="erin") as gw:
        rejected = await gw.submit("alice", "cosigned", "Draft announcement")
        assert (await gw.act("bob", rejected["id"], "reject", {"reason": "Not yet"}))[0] == 200
        cancelled = await gw.submit("bob", "delayed", "Regrettable take")
        assert (await gw.act("bob", cancelled["id"], "cancel"))[0] == 200
        status, _ = await gw.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "example-slur"})
        assert status == 422
        size = await gw.log_size()

        async def texts(user: str | None) -> list[dict[str, Any]]:
            status, body = await gw.call(user, "GET", f"/log/texts?start=0&end={size}")
            assert status == 200, body
            return list(body["texts"])

        public = await texts(None)
        assert len(public) == 3 and all(t["withheld"] and t["salt"] is None and t["text"] is None for t in public)
        confirmed = [
            g for t in public for g in guesses
            if t["salt"] is not None and text_commitment(g, bytes.fromhex(t["salt"])) == t["hash"]
        ]
        assert confirmed == []
        for who, expect in (("bob", {"Draft announcement", "Regrettable take"}),
                            ("erin", {"Draft announcement", "Regrettable take", "example-slur"})):
            seen = {t["text"]: t for t in await texts(who) if t["text"] is not None}
            assert set(seen) == expect, who
            for text, t in seen.items():
                assert text_commitment(text, bytes.fromhex(t["salt"])) == t["hash"]


async def test_an_edit_after_approval_goes_back_to_the_approvers(gateway: Gateway) -> None:
    """Approved and scheduled, then edited by its author: held again, the old approvals void, and
    the new words go out only once approved themselves."""
    post = await gateway.submit("carol", "cosigned", "Approved words")
    for approver in ("bob", "dave"):
        assert (await gateway.act(approver, post["id"], "approve", {"version": 1}))[0] == 200
    assert (await gateway.get("carol", post["id"]))["state"] == "scheduled"
    status, edited = await _patch(gateway, "carol", post["id"], "Words nobody approved")
    assert status == 200, edited
    assert (edited["state"], edited["approvals_needed"], edited["publish_at"]) == ("held", 2, None)
    assert [r["rule"] for r in edited["reasons"]] == ["edited-after-approval"]
    await _publish_due(gateway)
    assert await gateway.timeline("cosigned") == []
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert (status, body["error"]) == (409, "stale_version")
    for approver in ("bob", "dave"):
        assert (await gateway.act(approver, post["id"], "approve", {"version": 2}))[0] == 200
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("cosigned")] == ["Words nobody approved\n\n—carol"]


async def test_a_failed_post_retried_after_its_account_turned_co_signed_waits_for_approval(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """A post that failed on a pencil (delayed) account stays failed when the account turns
    co-signed (only waiting posts are decided again then); its author's retry must not send it
    out alone: it is held for the approvers the policy now names, and goes out once they approve."""
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "pencil", "Quick take")

    async def refuse(*, account: str, post: object) -> object:
        raise AdapterError("the instance refused it", retryable=False, status=422)

    with monkeypatch.context() as patch:
        patch.setattr(gateway.app[SANDBOX], "create", refuse)
        await _publish_due(gateway)
    assert (await gateway.get("carol", post["id"]))["state"] == "failed"
    write_policy(policy_dir, "pencil", PENCIL.replace("tier: delayed", "tier: co-signed")
                 + "    approvals:\n      required: 1\n      from: [alice, dave]\n")
    await gateway.sync_policies()

    status, body = await gateway.act("carol", post["id"], "retry")
    assert status == 200, body
    assert body["state"] == "held" and body["approvers"] == ["alice", "dave"]
    assert [r["rule"] for r in body["reasons"]] == ["policy_changed"]
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []

    status, body = await gateway.act("alice", post["id"], "approve", {"version": body["version"]})
    assert status == 200, body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("pencil")] == ["Quick take\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_more_approvals_asked_reach_the_posts_held_or_approved_for_fewer(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """The policy in force says how many approve: a post held for one approval, and one already
    approved by one and waiting out its delay, both wait for two once the policy asks for two."""
    write_policy(policy_dir, "brand", BRAND.replace("from: [bob, carol]", "from: [bob, carol, dave]"))
    await gateway.sync_policies()
    held = await gateway.submit("alice", "brand", "Launch day")
    approved = await gateway.submit("alice", "brand", "Launch eve")
    status, body = await gateway.act("bob", approved["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body

    write_policy(policy_dir, "brand", BRAND.replace("from: [bob, carol]", "from: [bob, carol, dave]")
                 .replace("required: 1", "required: 2"))
    await gateway.sync_policies()
    for post in (held, approved):
        got = await gateway.get("alice", post["id"])
        assert got["state"] == "held" and got["approvals_required"] == 2, got
    status, body = await gateway.act("bob", held["id"], "approve")
    assert status == 200 and body["state"] == "held", body
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []

    status, body = await gateway.act("dave", held["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Launch day"]
    await _verify_log(gateway, tmp_path)


MANAGED_HOLD = TEST_POLICIES["managed"].rstrip() + """
        rules:
          - name: breaking-news
            action: hold
            any_words: [fired]
            reason: Check the full story first
"""


async def test_the_owner_of_a_managed_account_confirms_but_never_rewrites(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """On a managed account the team writes and the owner only suggests. A writer's post held by a
    rule goes to the owner to confirm (the policy names no approvers); the owner may confirm it
    or not, but not put words of their own into it and confirm those alone (before, the edit was
    taken and the owner's words went out on the owner's confirmation)."""
    write_policy(policy_dir, "managed", MANAGED_HOLD)
    await gateway.sync_policies()
    post = await gateway.submit("bob", "managed", "Someone was fired today")
    assert post["state"] == "held" and post["approvers"] == ["dave"]
    status, body = await _patch(gateway, "dave", post["id"], "Words only dave wrote")
    assert status == 403, body
    status, body = await gateway.act("dave", post["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("managed")] == ["Someone was fired today\n\n—bob"]
    await _verify_log(gateway, tmp_path)


async def test_a_post_held_again_for_its_author_lost_role_asks_as_many_approvals_as_the_policy(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """carol's post waits for two approvals; the policy then takes carol off the writers and asks
    for two of bob and carol. Her post is held again for the approvers but her, and still for two:
    bob alone does not send it out (before, the gate shrank to what was left, one)."""
    cosigned = BRAND.replace("required: 1", "required: 2").replace("from: [bob, carol]", "from: [bob, carol, dave]")
    write_policy(policy_dir, "brand", cosigned)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Launch")
    assert post["approvals_required"] == 2
    write_policy(policy_dir, "brand", cosigned.replace("writers: [alice, carol]", "writers: [alice]")
                 .replace("from: [bob, carol, dave]", "from: [bob, carol]"))
    await gateway.sync_policies()
    held = await gateway.get("bob", post["id"])
    assert (held["state"], held["approvers"], held["approvals_required"]) == ("held", ["bob"], 2), held
    status, body = await gateway.act("bob", post["id"], "approve", {"version": held["version"]})
    assert status == 200 and body["state"] == "held", body
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    await _verify_log(gateway, tmp_path)



async def test_a_post_deferred_after_its_author_lost_the_role_in_flight_is_held_for_a_decision(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """carol's post, approved by bob, is being sent when the policy takes her off the writers
    (the change decides again only the posts waiting, not one in flight), and the platform fails
    it for now. Deferred, it is held for a decision at its next turn (before, it stayed scheduled
    for ever: its author's lost role kept it from going out, and no one was asked to decide);
    bob's approval then sends it."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Launch")
    status, body = await gateway.act("bob", post["id"], "approve")
    assert (status, body["state"]) == (200, "scheduled"), body
    gateway.clock.advance(timedelta(minutes=2))
    claim = await gateway.app[APPENDER].submit(gateway.app[PUBLISHER]._claim_work(post["id"]))
    assert claim is not None
    write_policy(policy_dir, "brand", BRAND.replace("writers: [alice, carol]", "writers: [alice]"))
    await gateway.sync_policies()

    async def unavailable(*, account: str, post: object) -> object:
        raise AdapterError("the instance is down", retryable=True, status=503)

    with monkeypatch.context() as patch:
        patch.setattr(gateway.app[SANDBOX], "create", unavailable)
        await gateway.app[PUBLISHER]._send(claim)
    assert (await gateway.get("alice", post["id"]))["state"] == "scheduled"
    await _publish_due(gateway)
    held = await gateway.get("bob", post["id"])
    assert (held["state"], held["version"], held["approvers"]) == ("held", 2, ["bob"]), held
    assert held["reasons"][-1]["rule"] == "author_lost_role"
    assert await gateway.timeline("brand") == []
    status, body = await gateway.act("bob", post["id"], "approve")
    assert (status, body["state"]) == (200, "scheduled"), body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Launch\n\n—carol"]
    await _verify_log(gateway, tmp_path)


@pytest.mark.parametrize(("changes", "approvers", "cause"), [
    ((("writers: [alice, carol]", "writers: [alice]"),), ("bob",), "author_lost_role"),
    ((("required: 1", "required: 2"), ("from: [bob, carol]", "from: [bob, carol, dave]")), ("bob", "dave"),
     "policy_changed"),
], ids=["author_lost_role", "approvals_raised"])
async def test_posts_held_again_at_their_turn_leave_the_accounts_next_post_its_place_in_the_page(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: Any,
    changes: tuple[tuple[str, str], ...], approvers: tuple[str, ...], cause: str,
) -> None:
    """A page of claims takes at most _PER_ACCOUNT of an account's posts. carol's posts, as many,
    approved by bob, are being sent when the policy changes (carol taken off the writers, or two
    approvals asked), and the platform fails them for now; alice's next post, approved as the
    new policy asks, falls due after them. At their turn carol's posts are held again, and
    alice's goes out in that same page: a post held again is no claim of the account's. Before
    (mutation testing), a post held again counted as a claim made, and alice's waited for the
    next tick."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    claims = []
    for n in range(_PER_ACCOUNT):
        post = await gateway.submit("carol", "brand", f"Launch {n}")
        status, body = await gateway.act("bob", post["id"], "approve")
        assert (status, body["state"]) == (200, "scheduled"), body
    gateway.clock.advance(timedelta(minutes=2))
    async with gateway.app[DB].read() as txn:
        due = [r["id"] for r in await txn.fetchall("SELECT id FROM posts WHERE state = 'scheduled' ORDER BY id")]
    for post_id in due:
        claim = await gateway.app[APPENDER].submit(gateway.app[PUBLISHER]._claim_work(post_id))
        assert claim is not None
        claims.append(claim)
    changed = BRAND
    for before, after in changes:
        changed = changed.replace(before, after)
    write_policy(policy_dir, "brand", changed)
    assert await gateway.sync_policies() == ["brand"]

    async def later(*, account: str, post: object) -> object:
        raise AdapterError("come back later", retryable=True, retry_after=60, status=503)

    with monkeypatch.context() as patch:
        patch.setattr(gateway.app[SANDBOX], "create", later)
        for claim in claims:
            await gateway.app[PUBLISHER]._send(claim)
    gateway.clock.advance(timedelta(seconds=1))  # alice's post falls due after carol's
    alices = await gateway.submit("alice", "brand", "Doors open")
    for approver in approvers:
        status, body = await gateway.act(approver, alices["id"], "approve")
        assert status == 200, body
    assert body["state"] == "scheduled", body

    await _publish_due(gateway, minutes=2)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Doors open"]
    for post_id in due:
        held = await gateway.get("bob", post_id)
        assert (held["state"], held["reasons"][-1]["rule"]) == ("held", cause), held
    await _verify_log(gateway, tmp_path)


async def test_a_post_decided_again_for_its_authors_role_is_held_at_its_retry_for_approvals_asked_since(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """carol's post, held again once the policy took her off the writers, is approved by bob and
    fails on the platform; the policy then asks for two approvals. Alice's retry holds it at once
    for them (before, the retry put it back scheduled: its author's lost role, already decided,
    hid the approvals it now lacks until the publisher came to it)."""
    three = BRAND.replace("from: [bob, carol]", "from: [bob, carol, dave]")
    write_policy(policy_dir, "brand", three)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Launch")
    without_carol = three.replace("writers: [alice, carol]", "writers: [alice]")
    write_policy(policy_dir, "brand", without_carol)
    await gateway.sync_policies()
    held = await gateway.get("bob", post["id"])
    assert [r["rule"] for r in held["reasons"]] == ["author_lost_role"], held
    status, body = await gateway.act("bob", post["id"], "approve", {"version": held["version"]})
    assert status == 200 and body["state"] == "scheduled", body

    async def refuse(*, account: str, post: object) -> object:
        raise AdapterError("the instance refused it", retryable=False, status=422)

    with monkeypatch.context() as patch:
        patch.setattr(gateway.app[SANDBOX], "create", refuse)
        await _publish_due(gateway)
    assert (await gateway.get("alice", post["id"]))["state"] == "failed"
    write_policy(policy_dir, "brand", without_carol.replace("required: 1", "required: 2"))
    await gateway.sync_policies()

    status, body = await gateway.act("alice", post["id"], "retry")
    assert status == 200, body
    assert (body["state"], body["approvals_required"]) == ("held", 2), body
    assert "policy_changed" in [r["rule"] for r in body["reasons"]], body
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    await _verify_log(gateway, tmp_path)


CONFIRMED = """
    account: pencil
    platform: sandbox
    tier: delayed
    owner: alice
    writers: [alice]
    delay: 10m
    rules:
      - {name: news, action: hold, any_words: [fired], reason: Check it}
"""


async def test_an_owners_own_confirmation_does_not_carry_a_post_onto_a_co_signed_account(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Alice's post is held by a rule on her delayed account, where she confirms her own words
    (no approvers are named). The account turns co-signed before it goes out: her confirmation
    is no approval there (the author never counts), so the post waits for bob."""
    write_policy(policy_dir, "pencil", CONFIRMED)
    await gateway.sync_policies()
    post = await gateway.submit("alice", "pencil", "Someone got fired")
    status, body = await gateway.act("alice", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    write_policy(policy_dir, "pencil", CONFIRMED.replace("tier: delayed", "tier: co-signed")
                 + "    approvals:\n      required: 1\n      from: [bob]\n")
    await gateway.sync_policies()
    got = await gateway.get("alice", post["id"])
    assert got["state"] == "held" and got["approvers"] == ["bob"], got
    await _publish_due(gateway)
    assert await gateway.timeline("pencil") == []
    status, body = await gateway.act("bob", post["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("pencil")] == ["Someone got fired"]
    await _verify_log(gateway, tmp_path)


async def test_an_approval_by_someone_no_longer_an_approver_does_not_send_a_post(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Bob approves carol's post on the co-signed brand; before it goes out the admin replaces
    bob with dave among the approvers. Bob's approval no longer counts: the post waits for dave."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Quarterly numbers")
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    write_policy(policy_dir, "brand", BRAND.replace("from: [bob, carol]", "from: [carol, dave]"))
    await gateway.sync_policies()
    got = await gateway.get("carol", post["id"])
    assert got["state"] == "held" and got["approvers"] == ["dave"], got
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    status, body = await gateway.act("dave", post["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Quarterly numbers\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_the_publisher_sends_nothing_on_a_co_signed_account_without_approvals_that_count(
    gateway: Gateway, policy_dir: Path, db_url: str
) -> None:
    """However a post came to be released (here someone with the database marks carol's held
    post scheduled, approved by erin, who approves nothing on brand; an approval decided on a
    policy a change had just replaced would look the same), the publisher checks the approvals
    under the policy in force before it claims: the post is held again for bob, and nothing goes out."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit("carol", "brand", "Not approved by anyone who may")
    await Attacker(db_url).run(
        ("INSERT INTO approvals (post_id, version, approver, decision, reason, created_at) "
         "VALUES (?, 1, 'erin', 'approve', NULL, 0)", (post["id"],)),
        ("UPDATE posts SET state = 'scheduled', publish_at = 0 WHERE id = ?", (post["id"],)),
    )
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    got = await gateway.get("carol", post["id"])
    assert got["state"] == "held" and got["approvers"] == ["bob"], got
    assert [r["rule"] for r in got["reasons"]] == ["policy_changed"]


DISCLOSED = {"rule": "disclosure_changed", "action": "hold",
             "reason": "The account's disclosure line changed since this post was approved"}
RELINED = BRAND.replace('disclosure: "—{author}"', 'disclosure: "Posted by {author}"')
"""BRAND with its disclosure line in other words."""


async def _approved_by_bob(gateway: Gateway, policy_dir: Path, author: str, words: str) -> str:
    """``author``'s post on brand, approved by bob under its first disclosure line; its id."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    post = await gateway.submit(author, "brand", words)
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    return str(post["id"])


async def _held_for_bob_then_sent_with_the_new_line(gateway: Gateway, post_id: str, tmp_path: Path) -> None:
    """The post is held again at version 2 for the new line, its card showing that line; nothing
    goes out at its time; bob's approval of version 2 sends it with the new line; the log verifies."""
    held = await gateway.get("bob", post_id)
    assert (held["state"], held["version"], held["approvers"]) == ("held", 2, ["bob"]), held
    assert held["reasons"][-1] == DISCLOSED, held["reasons"]
    assert held["display_text"] == "Quarterly numbers\n\nPosted by carol"
    await _publish_due(gateway)
    assert await gateway.timeline("brand") == []
    status, body = await gateway.act("bob", post_id, "approve", {"version": 2})
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Quarterly numbers\n\nPosted by carol"]
    await _verify_log(gateway, tmp_path)


async def test_a_disclosure_line_changed_after_approval_holds_the_post_for_its_approvers_again(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Bob approves carol's post under the line "—carol"; before it is due the admin edits the
    policy's disclosure and reloads. The words would go out ending otherwise than bob read: the
    post is held again with that reason, nothing goes out at its time, and bob's approval of
    the new version (its card showing the new line) sends it with the new line."""
    post_id = await _approved_by_bob(gateway, policy_dir, "carol", "Quarterly numbers")
    write_policy(policy_dir, "brand", RELINED)
    assert await gateway.sync_policies() == ["brand"]
    await _held_for_bob_then_sent_with_the_new_line(gateway, post_id, tmp_path)


async def test_the_claim_holds_a_post_approved_under_another_disclosure_line_the_reload_passed_by(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reload that changes the line leaves the approved post be (its own work passed it by,
    as a replica's reload racing the approval can): the publisher's claim finds bob approved
    other words than it would send, holds it again for him, and sends nothing."""
    post_id = await _approved_by_bob(gateway, policy_dir, "carol", "Quarterly numbers")

    async def passed_by(*_: Any, **__: Any) -> list[tuple[str, Any]]:
        return []

    write_policy(policy_dir, "brand", RELINED)
    with monkeypatch.context() as patch:
        patch.setattr("gateway.services.policies.redecide_pending", passed_by)
        assert await gateway.sync_policies() == ["brand"]
    assert (await gateway.get("bob", post_id))["state"] == "scheduled"
    await _publish_due(gateway)
    await _held_for_bob_then_sent_with_the_new_line(gateway, post_id, tmp_path)


async def test_a_reply_retried_with_its_parent_after_the_disclosure_line_changed_is_held_for_it(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carol's post and her reply to it are approved by bob; the platform refuses the post, and
    the reply fails with it, never sent. The line changes (a reload passes failed posts by).
    Carol retries her post: it goes out as it was sent, the words bob approved; the reply,
    retried with it, would go out with the new line bob never read: held for him, and sent with
    that line once he approves it."""
    parent_id = await _approved_by_bob(gateway, policy_dir, "carol", "Quarterly numbers")
    reply = await gateway.submit("carol", "brand", "More to follow", reply_to_post=parent_id)
    status, body = await gateway.act("bob", reply["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    publish = SandboxAdapter.publish

    async def refuse_the_parent(self: SandboxAdapter, post: OutboundPost) -> PublishResult:
        if post.text.startswith("Quarterly numbers"):
            raise AdapterError("not this one", retryable=False, status=422)
        return await publish(self, post)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", refuse_the_parent)
        await _publish_due(gateway)
        await _publish_due(gateway)
    failed = [await gateway.get("carol", i) for i in (parent_id, reply["id"])]
    assert [p["state"] for p in failed] == ["failed", "failed"], failed
    write_policy(policy_dir, "brand", RELINED)
    assert await gateway.sync_policies() == ["brand"]
    status, body = await gateway.act("carol", parent_id, "retry")
    assert status == 200 and body["state"] == "scheduled", body
    held = await gateway.get("bob", reply["id"])
    assert (held["state"], held["version"], held["reasons"][-1]) == ("held", 2, DISCLOSED), held
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Quarterly numbers\n\n—carol"]
    status, body = await gateway.act("bob", reply["id"], "approve", {"version": 2})
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == [
        "More to follow\n\nPosted by carol", "Quarterly numbers\n\n—carol"]
    await _verify_log(gateway, tmp_path)


async def test_a_disclosure_change_that_leaves_the_owners_words_as_they_were_keeps_their_approval(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Alice, the owner, writes (no disclosure line on her words under either policy); bob
    approves; the admin edits the disclosure. What goes out is what bob read: it is not held
    again, and goes out at its time on bob's approval."""
    post_id = await _approved_by_bob(gateway, policy_dir, "alice", "From the owner")
    write_policy(policy_dir, "brand", RELINED)
    assert await gateway.sync_policies() == ["brand"]
    got = await gateway.get("bob", post_id)
    assert (got["state"], got["version"]) == ("scheduled", 1), got
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("brand")] == ["From the owner"]
    await _verify_log(gateway, tmp_path)


DESK = """
    account: desk
    platform: sandbox
    tier: direct
    owner: alice
    writers: [alice]
    approvals:
      required: 1
      from: [bob, carol]
    rules:
      - {name: news, action: hold, any_words: [fired], reason: Check it}
"""
"""A direct account whose hold rule sends a post to bob or carol."""


async def test_a_release_on_a_direct_account_by_someone_no_longer_an_approver_does_not_send_a_post(
    gateway: Gateway, policy_dir: Path, tmp_path: Path
) -> None:
    """Alice's post, due in two hours, is held by a rule on her direct account and released by
    bob; the admin takes bob off the approvers before it is due. His release no longer counts:
    the post is held again for carol, nothing goes out at its time, and carol's approval sends it."""
    write_policy(policy_dir, "desk", DESK)
    await gateway.sync_policies()
    due = gateway.clock.now() + timedelta(hours=2)
    post = await gateway.submit("alice", "desk", "Someone got fired", publish_at=due.isoformat())
    assert post["state"] == "held", post
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    write_policy(policy_dir, "desk", DESK.replace("from: [bob, carol]", "from: [carol]"))
    await gateway.sync_policies()
    got = await gateway.get("alice", post["id"])
    assert (got["state"], got["approvers"]) == ("held", ["carol"]), got
    assert "policy_changed" in [r["rule"] for r in got["reasons"]], got
    await _publish_due(gateway, minutes=180)
    assert await gateway.timeline("desk") == []
    status, body = await gateway.act("carol", post["id"], "approve")
    assert status == 200 and body["state"] == "scheduled", body
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("desk")] == ["Someone got fired"]
    await _verify_log(gateway, tmp_path)


async def test_the_publisher_sends_nothing_held_by_a_rule_on_a_direct_account_without_a_release_that_counts(
    gateway: Gateway, policy_dir: Path, db_url: str, tmp_path: Path
) -> None:
    """However a post held by a rule on a direct account came to be released (here someone with
    the database marks it scheduled, approved by erin, who releases nothing on desk; a release
    the policy in force no longer entitles looks the same at its claim), the publisher checks
    the release under the policy in force before it claims: held again for bob or carol."""
    write_policy(policy_dir, "desk", DESK)
    await gateway.sync_policies()
    post = await gateway.submit("alice", "desk", "Someone got fired, says erin")
    await Attacker(db_url).run(
        ("INSERT INTO approvals (post_id, version, approver, decision, reason, created_at) "
         "VALUES (?, 1, 'erin', 'approve', NULL, 0)", (post["id"],)),
        ("UPDATE posts SET state = 'scheduled', publish_at = 0 WHERE id = ?", (post["id"],)),
    )
    await _publish_due(gateway)
    assert await gateway.timeline("desk") == []
    got = await gateway.get("alice", post["id"])
    assert (got["state"], got["approvers"]) == ("held", ["bob", "carol"]), got
    assert [r["rule"] for r in got["reasons"]] == ["news", "policy_changed"], got


async def test_a_policy_file_put_back_after_a_while_brings_its_account_back(
    db_url: str, policy_dir: Path, clock: Any, tmp_path: Path
) -> None:
    """The file is gone for several reloads, and the gateway restarts meanwhile; when the admin
    puts it back (the same file, a `git checkout` of it) the account is back, its parked post
    decided again under it: the directory agreed with the removal, so the file's return is its
    change, not a directory behind the log."""
    path = write_policy(policy_dir, "pencil", PENCIL)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.sync_policies()
        post = await gw.submit("carol", "pencil", "Before the outage")
        path.unlink()
        for _ in range(3):
            await gw.sync_policies()
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.sync_policies()
        write_policy(policy_dir, "pencil", PENCIL)
        assert await gw.sync_policies() == ["pencil"]
        back = await gw.get("bob", post["id"])
        assert back["state"] == "held" and [r["rule"] for r in back["reasons"]] == ["policy_restored"]
        fresh = await gw.submit("carol", "pencil", "After the outage")
        assert fresh["state"] == "scheduled"
        await _verify_log(gw, tmp_path)


async def test_a_writer_adopts_the_version_of_a_suggestion_they_read(gateway: Gateway, tmp_path: Path) -> None:
    """On a managed account the owner suggests and a writer adopts, and an adopted post goes out at
    once. The owner must not swap the words between the writer's reading and their adopting:
    before, the adoption took whatever the suggestion said by then, so the owner's new words went
    out alone under the writer's name."""
    suggestion = await gateway.submit("dave", "managed", "Thank you all for coming")
    read = await gateway.get("bob", suggestion["id"])
    assert read["version"] == 1
    status, edited = await _patch(gateway, "dave", suggestion["id"], "Words bob never read")
    assert status == 200 and edited["version"] == 2, edited
    before = await gateway.snapshot()
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{suggestion['id']}/adopt", {"version": 1})
    assert (status, body["error"], body["version"]) == (409, "stale_version", 2), body
    status, body = await gateway.call("bob", "POST", f"/v1/posts/{suggestion['id']}/adopt", {})
    assert (status, body["error"]) == (428, "version_required"), body
    assert await gateway.snapshot() == before
    await _publish_due(gateway)
    assert await gateway.timeline("managed") == []
    status, adopted = await gateway.call("bob", "POST", f"/v1/posts/{suggestion['id']}/adopt", {},
                                         headers={"If-Match": '"2"'})
    assert status == 201 and adopted["text"] == "Words bob never read", adopted
    await _publish_due(gateway)
    assert [p["text"] for p in await gateway.timeline("managed")] == ["Words bob never read\n\n—bob, suggested by dave"]
    await _verify_log(gateway, tmp_path)


async def _verify_fails(gw: Gateway) -> str:
    """Run the real `byline audit verify` against the live gateway; insist it fails."""
    await gw.app[CHECKPOINTS].sign_now()
    url = str(gw.client.make_url("")).rstrip("/")
    result = await byline("audit", "verify", "--key", gw.app[CHECKPOINTS].verifier_key(), "--url", url,
                          "--no-state", "--no-progress")
    assert result.code != 0, result.text
    return result.text


async def test_a_delayed_post_moved_earlier_in_the_database_is_named_by_the_verifier(
    gateway: Gateway, policy_dir: Path, db_url: str
) -> None:
    """Bob writes on a delayed account, with ten minutes to take it back; someone with the
    database moves its time to now, and the publisher sends it at once. The log said when it
    was due: `byline audit verify` names the post that went out before its window ended. An
    honest post beside it, edited and sent at its time, is not named."""
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    honest = await gateway.submit("bob", "pencil", "Slow thoughts")
    gateway.clock.advance(timedelta(minutes=5))
    assert (await _patch(gateway, "bob", honest["id"], "Slower thoughts"))[0] == 200
    post = await gateway.submit("bob", "pencil", "Hot take")
    now = to_micros(gateway.clock.now())
    await Attacker(db_url).run(("UPDATE posts SET publish_at = ? WHERE id = ?", (now, post["id"])))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("pencil")] == ["Hot take"]
    text = await _verify_fails(gateway)
    assert f"post {post['id']} went out at" in text and "s before" in text, text
    assert f"post {honest['id']}" not in text, text
    gateway.clock.advance(timedelta(minutes=10))
    await gateway.tick()
    assert len(await gateway.timeline("pencil")) == 2


async def test_an_approved_post_moved_earlier_in_the_database_is_named_by_the_verifier(
    gateway: Gateway, policy_dir: Path, db_url: str
) -> None:
    """Carol asks for tomorrow and bob approves that; someone with the database moves the time to
    now, and it goes out at once: `byline audit verify` names it, for the time the approval that
    scheduled it recorded."""
    write_policy(policy_dir, "brand", BRAND)
    await gateway.sync_policies()
    tomorrow = (gateway.clock.now() + timedelta(days=1)).isoformat()
    post = await gateway.submit("carol", "brand", "Results tomorrow", publish_at=tomorrow)
    status, body = await gateway.act("bob", post["id"], "approve", {"version": 1})
    assert status == 200 and body["state"] == "scheduled", body
    now = to_micros(gateway.clock.now())
    await Attacker(db_url).run(("UPDATE posts SET publish_at = ? WHERE id = ?", (now, post["id"])))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("brand")] == ["Results tomorrow\n\n—carol"]
    text = await _verify_fails(gateway)
    assert f"post {post['id']} went out at" in text and "s before" in text, text


async def test_posts_sent_at_their_time_verify(gateway: Gateway, policy_dir: Path, tmp_path: Path) -> None:
    """The honest flows beside those: a co-signed post asked for tomorrow and approved, sent then;
    a delayed one sent at the end of its window; a direct one at once; each verifies."""
    write_policy(policy_dir, "brand", BRAND)
    write_policy(policy_dir, "pencil", PENCIL)
    await gateway.sync_policies()
    tomorrow = (gateway.clock.now() + timedelta(days=1)).isoformat()
    asked = await gateway.submit("carol", "brand", "Results tomorrow", publish_at=tomorrow)
    assert (await gateway.act("bob", asked["id"], "approve", {"version": 1}))[0] == 200
    await gateway.submit("bob", "pencil", "Slow thoughts")
    await gateway.submit("alice", "direct", "Right now")
    await gateway.tick()
    gateway.clock.advance(timedelta(minutes=10))
    await gateway.tick()
    gateway.clock.advance(timedelta(days=1))
    await gateway.tick()
    assert len(await gateway.timeline("brand")) == 1 and len(await gateway.timeline("pencil")) == 1
    await _verify_log(gateway, tmp_path)
