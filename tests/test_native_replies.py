"""Threads through the native API: ``reply_to_post`` names the account's own post by Byline's
id, out or not yet. A reply to a post still in its cooling-off is taken at once, waits for its
parent and goes out as a reply to where the parent went, as the Mastodon API's thread tools get."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.base import AdapterError, OutboundPost, PublishResult
from adapters.sandbox import SandboxAdapter
from gateway.appkeys import POSTS
from gateway.clock import ManualClock
from gateway.services.posts import Caller, PostOptions, PostService
from gateway.services.publisher import _PER_ACCOUNT
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import Attacker, rejected_by_cli, verified_by_cli
from tests.conftest import Gateway, make_policy_dir, started_gateway

MINUTE = timedelta(minutes=1)


async def test_a_reply_to_a_post_in_its_cooling_off_goes_out_after_it(gateway: Gateway) -> None:
    """Before: ``reply_to_post`` was refused (422, an unknown field), and ``reply_to`` with
    Byline's id went out naming an id the platform never gave."""
    first = await gateway.submit("bob", "delayed", "Thread 1/2")
    second = await gateway.submit("bob", "delayed", "Thread 2/2", reply_to_post=first["id"])
    assert second["state"] == "scheduled"
    assert await gateway.tick() == 0

    gateway.clock.advance(10 * MINUTE)
    await gateway.tick()
    out = {p["text"]: p for p in await gateway.timeline("delayed")}
    assert set(out) == {"Thread 1/2", "Thread 2/2"}
    parent = (await gateway.get("bob", first["id"]))["remote"]["id"]
    assert out["Thread 2/2"]["options"].get("reply_to") == parent
    assert (await gateway.get("bob", second["id"]))["state"] == "published"
    await verified_by_cli(gateway)


async def test_a_reply_to_a_post_already_out_names_where_it_went(gateway: Gateway) -> None:
    first = await gateway.submit("alice", "direct", "Out already")
    await gateway.tick()
    parent = (await gateway.get("alice", first["id"]))["remote"]["id"]
    assert parent
    reply = await gateway.submit("alice", "direct", "And a reply", reply_to_post=first["id"])
    await gateway.tick()
    assert (await gateway.get("alice", reply["id"]))["state"] == "published"
    out = {p["text"]: p for p in await gateway.timeline("direct")}
    assert out["And a reply"]["options"].get("reply_to") == parent


async def test_a_reply_to_what_cannot_be_answered_is_refused_and_changes_nothing(gateway: Gateway) -> None:
    """Another account's post, a cancelled one, one nobody made, both fields at once, or an id
    that is not Byline's shape: each refused, saying why, and nothing stored."""
    elsewhere = await gateway.submit("alice", "direct", "On another account")
    cancelled = await gateway.submit("bob", "delayed", "Never mind")
    status, _ = await gateway.act("bob", cancelled["id"], "cancel", {})
    assert status == 200
    before = await gateway.snapshot()
    size = await gateway.log_size()
    for extra, want in (
        ({"reply_to_post": elsewhere["id"]}, 404),
        ({"reply_to_post": cancelled["id"]}, 404),
        ({"reply_to_post": "123456789"}, 404),
        ({"reply_to_post": cancelled["id"], "reply_to": "109"}, 422),
        ({"reply_to_post": "../1"}, 422),
    ):
        status, body = await gateway.call("bob", "POST", "/v1/posts",
                                          {"account": "delayed", "text": "A reply", **extra})
        assert status == want, (extra, body)
        assert "error" in body
    assert await gateway.snapshot() == before
    assert await gateway.log_size() == size


async def test_a_reply_whose_parent_ends_while_it_is_read_is_refused(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The parent was waiting when the reply was read, and its cancel committed before the
    reply was stored (another request, another gateway): the cancel took the replies it knew
    of with it, and this one, stored, would wait for a parent that never goes out. It is
    refused in the transaction that would store it. Before: 201, and a reply left waiting."""
    parent = await gateway.submit("bob", "delayed", "Thread 1/2")
    found = await gateway.app[POSTS].reply_parent("bob", "delayed", parent["id"])
    assert found == (None, parent["id"])
    status, _ = await gateway.act("bob", parent["id"], "cancel", {})
    assert status == 200

    async def as_read_before_the_cancel(*_: object) -> tuple[str | None, str | None]:
        return found

    monkeypatch.setattr(PostService, "reply_parent", as_read_before_the_cancel)
    before = await gateway.snapshot()
    status, body = await gateway.call("bob", "POST", "/v1/posts",
                                      {"account": "delayed", "text": "Thread 2/2", "reply_to_post": parent["id"]})
    assert status == 404, body
    assert await gateway.snapshot() == before


async def _reply_told_to_come_back_later(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """bob's thread on delayed, its parent published and its reply claimed (written where the
    parent went) and told by the platform to come back later: the parent, the reply, and where
    the parent went."""
    parent = await gateway.submit("bob", "delayed", "Thread 1/2")
    reply = await gateway.submit("bob", "delayed", "Thread 2/2", reply_to_post=parent["id"])
    publish = SandboxAdapter.publish

    async def later_for_the_reply(self: SandboxAdapter, post: OutboundPost) -> PublishResult:
        if post.text.startswith("Thread 2/2"):
            raise AdapterError("come back later", retryable=True, retry_after=60, status=503)
        return await publish(self, post)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", later_for_the_reply)
        gateway.clock.advance(10 * MINUTE)
        await gateway.tick()
    return parent, reply, (await gateway.get("bob", parent["id"]))["remote"]["id"]


async def test_an_edit_read_before_its_reply_was_sent_keeps_where_the_reply_goes(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A Mastodon app's edit of a reply passes the options it read; the publisher claimed the
    reply meanwhile (writing where its parent went, ``reply_to``) and the platform asked it to
    come back later. The edit keeps where the reply goes: the reply waits for no parent any
    more, and deleting the parent leaves it to go out. Before: the edit wrote the options it
    had read, the reply waited for its parent again, the parent's deletion cancelled it (a
    reply sent, cancelled with its parent) and the log no longer verified."""
    parent, reply, where = await _reply_told_to_come_back_later(gateway, monkeypatch)
    read = PostOptions(reply_to_post=parent["id"])  # what the app's edit read, before the claim
    sent = await gateway.get("bob", reply["id"])
    assert ("scheduled", where) == (sent["state"], sent["options"].get("reply_to"))

    await gateway.app[POSTS].edit(Caller(user="bob"), reply["id"], text="Thread 2/2, edited", options=read)
    assert (await gateway.get("bob", reply["id"]))["options"].get("reply_to") == where
    status, body = await gateway.call("bob", "DELETE", f"/v1/posts/{parent['id']}")
    assert status == 200, body
    assert (await gateway.get("bob", reply["id"]))["state"] == "scheduled"
    await verified_by_cli(gateway)


async def test_a_reply_sent_once_goes_out_where_its_parent_went_after_the_parent_is_deleted(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reply claimed once keeps where its parent went (``reply_to``), and the platform asked it
    to come back later. Its parent deleted meanwhile, the reply still goes out at its next turn,
    to that same place: the platform may have made it already (its key finds it there), and a
    reply sent once is never failed for its parent's sake. Before (mutation testing), a claim
    that read the parent again for a reply that already knows where it goes was not told apart."""
    parent, reply, where = await _reply_told_to_come_back_later(gateway, monkeypatch)
    status, body = await gateway.call("bob", "DELETE", f"/v1/posts/{parent['id']}")
    assert status == 200, body
    assert (await gateway.get("bob", reply["id"]))["state"] == "scheduled"

    gateway.clock.advance(2 * MINUTE)
    await gateway.tick()
    sent = await gateway.get("bob", reply["id"])
    assert ("published", where) == (sent["state"], sent["options"].get("reply_to")), sent
    [out] = [p for p in await gateway.timeline("delayed") if p["text"] == "Thread 2/2"]
    assert out["options"].get("reply_to") == where
    await verified_by_cli(gateway)


async def test_replies_waiting_for_their_parent_leave_the_accounts_next_post_its_place_in_the_page(
    gateway: Gateway,
) -> None:
    """A page of claims takes at most _PER_ACCOUNT of an account's posts. As many replies to a
    post held for a decision fall due, and then another post of the account: the replies are put
    off to wait for their parent, and the other post goes out in that same page. Before
    (mutation testing), a reply put off counted as a claim made, and the other post waited for
    the next tick."""
    parent = await gateway.submit("alice", "direct", "Someone was fired today")
    assert parent["state"] == "held"
    replies = [await gateway.submit("alice", "direct", f"More on this, {n}", reply_to_post=parent["id"])
               for n in range(_PER_ACCOUNT)]
    gateway.clock.advance(timedelta(seconds=1))  # due after the replies
    other = await gateway.submit("alice", "direct", "Lunch is served")
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("direct")] == ["Lunch is served"]
    assert (await gateway.get("alice", other["id"]))["state"] == "published"
    for reply in replies:
        assert (await gateway.get("alice", reply["id"]))["state"] == "scheduled"
    await verified_by_cli(gateway)


async def test_replies_whose_parent_failed_fail_saying_why_and_leave_the_accounts_next_post_its_place(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The platform refuses a post that _PER_ACCOUNT replies wait for: at their turn each reply
    fails, saying its parent failed to go out, and the account's next post, due after them, goes
    out in that same page: a reply failed is no claim of the account's. Before (mutation
    testing), nothing in the claim's tests reached a reply whose parent failed: a reply failed
    without its reason, or counted as a claim made (the next post waited for the next tick),
    was not told apart."""
    parent = await gateway.submit("bob", "delayed", "Thread 1/2")
    replies = [await gateway.submit("bob", "delayed", f"Thread 2/2, take {n}", reply_to_post=parent["id"])
               for n in range(_PER_ACCOUNT)]
    publish = SandboxAdapter.publish

    async def refuse_the_parent(self: SandboxAdapter, post: OutboundPost) -> PublishResult:
        if post.text == "Thread 1/2":
            raise AdapterError("not this one", retryable=False, status=422)
        return await publish(self, post)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", refuse_the_parent)
        gateway.clock.advance(10 * MINUTE)
        await gateway.tick()  # the parent fails; its replies, put off for it, wait a second
    assert (await gateway.get("bob", parent["id"]))["state"] == "failed"
    gateway.clock.advance(timedelta(seconds=2))
    other = await gateway.submit("bob", "delayed", "Lunch is served")  # due ten minutes from now
    gateway.clock.advance(10 * MINUTE)
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("delayed")] == ["Lunch is served"]
    assert (await gateway.get("bob", other["id"]))["state"] == "published"
    for reply in replies:
        failed = await gateway.get("bob", reply["id"])
        assert failed["state"] == "failed", failed
        assert failed["last_error"].startswith(f"the post it replies to, {parent['id']}, failed to go out"), failed
    await verified_by_cli(gateway)


async def test_a_reply_whose_parent_cannot_be_read_for_the_database_gone_is_a_503(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as the parent is looked up says nothing of whether Byline has
    it: 503 with the database's message, and nothing stored. Before: 404 (no such post); through
    the Mastodon API, for a platform that cannot be asked, Byline's id went out as the platform's."""
    parent = await gateway.submit("bob", "delayed", "Thread 1/2")
    view = PostService.view

    async def gone(self: PostService, caller: Caller, post_id: str, **kwargs: object) -> object:
        if post_id == parent["id"]:
            raise DatabaseUnavailable()
        return await view(self, caller, post_id, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(PostService, "view", gone)
    before = await gateway.snapshot()
    status, body = await gateway.call("bob", "POST", "/v1/posts",
                                      {"account": "delayed", "text": "Thread 2/2", "reply_to_post": parent["id"]})
    assert (503, DatabaseUnavailable().message) == (status, body["message"]), body
    assert await gateway.snapshot() == before


QUICK_DELAY = """
    account: quick
    platform: sandbox
    handle: "@quick"
    tier: delayed
    owner: alice
    delay: 10s
    approvals:
      required: 1
      from: [bob]
    rules:
      - name: launch
        action: hold
        any_words: [launch]
        reason: Check the date first
"""


async def test_a_reply_edited_while_it_waits_for_its_parent_keeps_its_new_cooling_off(
    db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """A reply due while its parent waits for an approval waits a minute for it. Edited then,
    its ten seconds of cooling-off start again but end before that minute, so its time stays
    the minute's. Its parent out four seconds before those ten end, the reply is not brought
    forward into them: before, the time alone told whether it had been edited, and it went out
    at once, inside the window in which its author could still take it back."""
    policies = make_policy_dir(tmp_path, {"quick": QUICK_DELAY})
    async with started_gateway(db_url, policies, clock) as gw:
        parent = await gw.submit("alice", "quick", "The launch is on")
        assert parent["state"] == "held"
        reply = await gw.submit("alice", "quick", "Details to follow", reply_to_post=parent["id"])
        clock.advance(timedelta(seconds=11))
        await gw.tick()  # due, its parent undecided: it waits a minute for it
        assert (await gw.get("alice", reply["id"]))["state"] == "scheduled"

        status, body = await gw.act("bob", parent["id"], "approve")  # out after its ten seconds
        assert status == 200, body
        clock.advance(timedelta(seconds=5))
        status, body = await gw.call("alice", "PATCH", f"/v1/posts/{reply['id']}", {"text": "Details at noon"})
        assert status == 200, body
        edited_at = clock.now()
        clock.advance(timedelta(seconds=6))
        await gw.tick()  # the parent goes out, four seconds before the edit's cooling-off ends
        await gw.tick()
        assert [p["text"] for p in await gw.timeline("quick")] == ["The launch is on"]
        assert (await gw.get("alice", reply["id"]))["state"] == "scheduled"

        clock.advance(timedelta(minutes=1))
        await gw.tick()
        out = {p["text"]: p for p in await gw.timeline("quick")}
        assert set(out) == {"The launch is on", "Details at noon"}
        went = [e for e in (await gw.get("alice", reply["id"]))["events"] if e["type"] == "post.publishing"]
        assert datetime.fromisoformat(went[0]["ts"]) >= edited_at + timedelta(seconds=10)
        await verified_by_cli(gw)


async def _approved_reply_then_parent_edited(gw: Gateway) -> tuple[dict[str, Any], dict[str, Any]]:
    """On the co-signed account alice writes "Doors open at nine" and a reply to it, both held;
    bob and carol approve the reply; alice edits the parent to "Event cancelled"."""
    parent = await gw.submit("alice", "cosigned", "Doors open at nine")
    reply = await gw.submit("alice", "cosigned", "Bring your ticket", reply_to_post=parent["id"])
    assert (parent["state"], reply["state"]) == ("held", "held")
    for approver in ("bob", "carol"):
        status, body = await gw.act(approver, reply["id"], "approve")
        assert status == 200, body
    status, body = await gw.call("alice", "PATCH", f"/v1/posts/{parent['id']}", {"text": "Event cancelled"})
    assert status == 200, body
    return parent, reply


async def _parent_approved_and_out(gw: Gateway, parent: dict[str, Any]) -> None:
    """bob and carol approve the parent's new words, and its minute of cooling-off passes."""
    for approver in ("bob", "carol"):
        status, body = await gw.act(approver, parent["id"], "approve")
        assert status == 200, body
    for _ in range(3):
        gw.clock.advance(2 * MINUTE)
        await gw.tick()


async def test_a_reply_approved_against_its_parents_words_fails_once_the_parent_goes_out_edited(
    gateway: Gateway,
) -> None:
    """bob and carol approve a reply to "Doors open at nine"; alice edits the parent to "Event
    cancelled", which they approve again. The parent goes out; the reply does not, and fails
    saying why: its approvals answered words that never went out. Before, both went out, and
    "Bring your ticket" answered "Event cancelled" with nobody having approved that."""
    parent, reply = await _approved_reply_then_parent_edited(gateway)
    await _parent_approved_and_out(gateway, parent)
    assert [p["text"] for p in await gateway.timeline("cosigned")] == ["Event cancelled"]
    failed = await gateway.get("alice", reply["id"])
    assert failed["state"] == "failed", failed
    assert (f"the post it replies to, {parent['id']}, went out as {parent['id']} version 2, not with the words "
            f"of {parent['id']} version 1 that this reply's approvers saw it answer") in failed["last_error"]
    await verified_by_cli(gateway)


async def test_a_reply_edited_after_its_parent_answers_the_parents_words_then(gateway: Gateway) -> None:
    """The reply edited after its parent's edit answers the parent's words then: approved again,
    it goes out after the parent, as a reply to where the parent went."""
    parent, reply = await _approved_reply_then_parent_edited(gateway)
    status, body = await gateway.call("alice", "PATCH", f"/v1/posts/{reply['id']}", {"text": "Refunds at the desk"})
    assert status == 200, body
    for approver in ("bob", "carol"):
        status, body = await gateway.act(approver, reply["id"], "approve")
        assert status == 200, body
    await _parent_approved_and_out(gateway, parent)
    out = {p["text"]: p for p in await gateway.timeline("cosigned")}
    assert set(out) == {"Event cancelled", "Refunds at the desk"}
    went = (await gateway.get("alice", parent["id"]))["remote"]["id"]
    assert out["Refunds at the desk"]["options"].get("reply_to") == went
    await verified_by_cli(gateway)


async def test_a_reply_sent_for_other_parent_words_is_named_by_the_verifier(gateway: Gateway, db_url: str) -> None:
    """As above, and someone with the database binds the reply to the parent's new version, so
    that it goes out after it: the gateway cannot tell, but the reply's submission recorded the
    version its approvals answered, and ``byline audit verify`` names the reply as sent
    answering other words."""
    parent, reply = await _approved_reply_then_parent_edited(gateway)
    attacker = Attacker(db_url)
    [(stored,)] = await attacker.fetch("SELECT options FROM posts WHERE id = ?", reply["id"])
    options = json.loads(stored)
    assert (options["answers_post"], options["answers_version"]) == (parent["id"], 1)
    await attacker.run(("UPDATE posts SET options = ? WHERE id = ?",
                        (json.dumps({**options, "answers_version": 2}), reply["id"])))
    await _parent_approved_and_out(gateway, parent)
    assert (await gateway.get("alice", reply["id"]))["state"] == "published"
    said = await rejected_by_cli(gateway)
    assert (f"post {reply['id']} is sent replying to post {parent['id']}, its approvals given while that post's "
            f"words were its version 1, but post {parent['id']} was published at version 2") in said, said
