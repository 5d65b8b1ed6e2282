"""What an approver's card and the APIs say of a held post is what goes out now: its text, and
the approvals given for that very text. An approval is bound to the text it was given for
(``approvals.text_sha256``); a count or a card that showed another text, or counted an
approval of another text, would have an approver release words no one approved."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from adapters.base import AdapterError, OutboundPost, PublishResult
from adapters.sandbox import SandboxAdapter
from gateway.appkeys import CHECKPOINTS
from gateway.http.openapi import document
from gateway.storage import log as gateway_log_sql
from gateway.storage import posts as gateway_posts_sql
from tests.audit.logtools import byline
from tests.conftest import Gateway, write_policy
from tests.pages.conftest import Pages

TRIO = """
    account: trio
    platform: sandbox
    tier: co-signed
    owner: erin
    writers: [alice]
    delay: 1m
    approvals:
      required: 2
      from: [bob, carol, dave]
    disclosure: "—{author}"
"""
"""Alice writes; two of bob, carol and dave approve; her words go out signed "—alice"."""

BRAND = """
    account: brand
    platform: sandbox
    tier: co-signed
    owner: erin
    writers: [alice, carol]
    delay: 1m
    approvals:
      required: 1
      from: [bob, dave]
    disclosure: "—{author}"
"""


def _card(page: str, post_id: str) -> str:
    """The HTML of one post's card on a page."""
    found = re.search(rf'<article[^>]*data-post="{post_id}".*?</article>', page, re.DOTALL)
    assert found is not None, page
    return found.group(0)


def _approvals(card: str) -> str:
    """What a card says of a held post's approvals, as a reader reads it."""
    found = re.search(r'<p class="approvals">(.*?)</p>', card, re.DOTALL)
    assert found is not None, card
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


async def _verify_log(gw: Gateway) -> None:
    """Run the real `byline audit verify` against the live gateway; insist it passes."""
    await gw.app[CHECKPOINTS].sign_now()
    url = str(gw.client.make_url("")).rstrip("/")
    result = await byline("audit", "verify", "--key", gw.app[CHECKPOINTS].verifier_key(), "--url", url,
                          "--no-state", "--no-progress")
    assert result.code == 0, result.text


async def _listed(gw: Gateway, post_id: str) -> dict[str, Any]:
    """The post as ``GET /v1/posts`` lists it to alice."""
    status, body = await gw.call("alice", "GET", "/v1/posts?account=trio")
    assert status == 200, body
    [found] = [p for p in body["posts"] if p["id"] == post_id]
    return dict(found)


PAIR = TRIO.replace("from: [bob, carol, dave]", "from: [bob, carol]")
"""TRIO with two approvers for its two approvals: each approval is wanted."""


async def _bob_approved_the_line_before(
    gw: Gateway, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, *, policy: str = PAIR,
) -> str:
    """Alice's post on ``policy`` (for two approvals), approved by bob under "—alice"; the line
    changes, and the reload's own work passes the post by (as a replica's reload racing the
    approval can): it is held at version 1, its text now "Posted by alice", bob's approval
    counting for none. Its id."""
    write_policy(policy_dir, "trio", policy)
    await gw.sync_policies()
    post = await gw.submit("alice", "trio", "Quarterly numbers")
    status, body = await gw.act("bob", post["id"], "approve", {"version": 1})
    assert (status, body["state"], body["approvals_needed"]) == (200, "held", 1), body

    async def passed_by(*_: Any, **__: Any) -> list[tuple[str, Any]]:
        return []

    write_policy(policy_dir, "trio", policy.replace('disclosure: "—{author}"', 'disclosure: "Posted by {author}"'))
    with monkeypatch.context() as patch:
        patch.setattr("gateway.services.policies.redecide_pending", passed_by)
        assert await gw.sync_policies() == ["trio"]
    got = await gw.get("alice", post["id"])
    assert (got["state"], got["version"], got["approvals_needed"]) == ("held", 1, 2), got
    return str(post["id"])



async def _goes_out(gw: Gateway, account: str, text: str) -> None:
    """Once its cooling-off is over, the released post goes out on ``account`` as ``text``, and
    the log verifies."""
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline(account)] == [text]
    await _verify_log(gw)

async def test_an_approval_of_the_line_before_is_not_counted_where_a_reload_passed_the_post_by(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob approves alice's post, held for two of three, under the line "—alice"; the line
    changes, and the reload's own work passes the post by (as a replica's reload racing the
    approval can). Carol approves the text that goes out now. Bob approved other words: the
    post still needs one approval, in the native API (one post and the list alike) and on
    dave's card ("1 of 2, by carol"); bob's says his approval does not count. Before, the post
    read one post at a time needed none, and the card said "2 of 2, by bob, carol" while the
    post waited on (and told bob "You approved this version"). Dave's approval sends it."""
    gw = pages.gateway
    post = {"id": await _bob_approved_the_line_before(gw, policy_dir, monkeypatch, policy=TRIO)}
    assert (await gw.get("alice", post["id"]))["display_text"] == "Quarterly numbers\n\nPosted by alice"

    status, body = await gw.act("carol", post["id"], "approve", {"version": 1})
    assert (status, body["state"], body["approvals_needed"]) == (200, "held", 1), body
    for seen in (await gw.get("alice", post["id"]), await _listed(gw, post["id"])):
        assert (seen["approvals_needed"], seen["approved_by"]) == (1, ["carol"]), seen
    dave = await pages.person("dave")
    _, page = await dave.get("/queue")
    assert _approvals(_card(page, post["id"])).startswith("Approvals of this version: 1 of 2, by carol.")
    _, page = await (await pages.person("bob")).get(f"/posts/{post['id']}")
    said = _approvals(_card(page, post["id"]))
    assert said.startswith("Approvals of this version: 1 of 2, by carol. Your approval of this version does not "
                           "count: it was given for other words than go out now"), said

    status, body = await gw.act("dave", post["id"], "approve", {"version": 1})
    assert (status, body["state"]) == (200, "scheduled"), body
    await _goes_out(gw, "trio", "Quarterly numbers\n\nPosted by alice")


async def _approved_sent_and_deferred(
    gw: Gateway, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, *texts: str,
) -> list[str]:
    """Carol's posts of ``texts`` on ``brand``, each approved by bob, sent, and failed for now by
    the platform (deferred: sent again later): their ids."""
    write_policy(policy_dir, "brand", BRAND)
    await gw.sync_policies()
    ids = [str((await gw.submit("carol", "brand", text))["id"]) for text in texts]
    for post_id in ids:
        status, body = await gw.act("bob", post_id, "approve", {"version": 1})
        assert (status, body["state"]) == (200, "scheduled"), body

    async def later(self: SandboxAdapter, out: OutboundPost) -> PublishResult:
        raise AdapterError("the platform is busy", retryable=True, status=503)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", later)
        gw.clock.advance(timedelta(minutes=5))
        await gw.tick()
    return ids


async def test_a_post_sent_before_and_edited_shows_its_approver_the_words_that_go_out_now(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's post, approved by bob, is sent and the platform fails it for now (deferred: it is
    sent again later). Carol edits it; it is held for bob again. His card shows the edited
    words, as they go out and as his approval is given for, and, labelled, the words sent
    before. Before, the card showed the words sent before as what goes out, and bob approved
    words he was not shown. The native API says the words sent before too (``sent_text``, one
    post and the list, each as its OpenAPI schema says). His approval sends the edited words."""
    gw = pages.gateway
    [post_id] = await _approved_sent_and_deferred(gw, policy_dir, monkeypatch, "Quarterly numbers")
    post = {"id": post_id}
    deferred = await gw.get("carol", post["id"])
    assert (deferred["state"], deferred["attempts"]) == ("scheduled", 1), deferred
    status, body = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}",
                                 {"text": "Quarterly numbers, corrected", "version": 1})
    assert (status, body["state"], body["version"]) == (200, "held", 2), body
    assert body["display_text"] == "Quarterly numbers, corrected\n\n—carol"

    sent = "Quarterly numbers\n\n—carol"
    read = await gw.get("bob", post["id"])
    status, listed = await gw.call("bob", "GET", "/v1/posts?account=brand")
    assert status == 200, listed
    [summary] = [p for p in listed["posts"] if p["id"] == post["id"]]
    assert (read["sent_text"], summary["sent_text"]) == (sent, sent)
    schemas = document()["components"]["schemas"]
    for found, shape in ((read, "Post"), (summary, "PostSummary")):
        jsonschema.Draft202012Validator(schemas[shape]).validate(found)

    bob = await pages.person("bob")
    _, page = await bob.get("/queue")
    card = _card(page, post["id"])
    shown = re.search(r'<p class="as-shown">As it will appear:</p>\s*<div class="text">(.*?)</div>', card, re.DOTALL)
    assert shown is not None, card
    assert html.unescape(shown.group(1)) == "Quarterly numbers, corrected\n\n—carol"
    before = re.search(r'<div class="sent-before">(.*?)</div>\s*</div>', card, re.DOTALL)
    assert before is not None, card
    assert "Sent before in other words" in before.group(1)
    assert "Quarterly numbers\n\n—carol" in html.unescape(before.group(1))

    status, body = await gw.act("bob", post["id"], "approve", {"version": 2})
    assert (status, body["state"]) == (200, "scheduled"), body
    await _goes_out(gw, "brand", "Quarterly numbers, corrected\n\n—carol")


async def test_a_page_of_posts_sent_before_reads_their_last_claims_at_once(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three of carol's posts, each approved, sent and deferred by the platform, then edited
    and held again: the native list and bob's queue page show each as it is read alone (the
    words that go out now, the words sent before, the approvals it needs), and read the posts'
    last claims in one query for the list, none one post at a time (before, ``last_claim`` ran
    once for each post of every list, and again for each card)."""
    gw = pages.gateway
    ids = await _approved_sent_and_deferred(gw, policy_dir, monkeypatch, *(f"Numbers {n}" for n in range(3)))
    for n, post_id in enumerate(ids):
        status, body = await gw.call("carol", "PATCH", f"/v1/posts/{post_id}",
                                     {"text": f"Numbers {n}, corrected", "version": 1})
        assert (status, body["state"]) == (200, "held"), body
    alone = {}
    for post_id in ids:
        read = await gw.get("bob", post_id)
        alone[post_id] = (read["display_text"], read["sent_text"], read["approvals_needed"])
    assert alone[ids[0]] == ("Numbers 0, corrected\n\n—carol", "Numbers 0\n\n—carol", 1)

    one_by_one, at_once = gateway_log_sql.last_claim, gateway_log_sql.last_claims
    reads: list[str] = []
    pages_read: list[list[str]] = []

    async def counted(txn: Any, post_id: str) -> Any:
        reads.append(post_id)
        return await one_by_one(txn, post_id)

    async def counted_page(txn: Any, post_ids: Any) -> Any:
        if post_ids:
            pages_read.append(sorted(post_ids))
        return await at_once(txn, post_ids)

    monkeypatch.setattr(gateway_log_sql, "last_claim", counted)
    monkeypatch.setattr(gateway_log_sql, "last_claims", counted_page)
    status, listed = await gw.call("bob", "GET", "/v1/posts?account=brand")
    assert status == 200, listed
    shown = {p["id"]: (p["display_text"], p["sent_text"], p["approvals_needed"]) for p in listed["posts"]}
    assert {i: shown[i] for i in ids} == alone
    assert (reads, pages_read) == ([], [sorted(ids)])
    _, page = await (await pages.person("bob")).get("/queue")
    for n, post_id in enumerate(ids):
        assert f"Numbers {n}\n\n—carol" in html.unescape(_card(page, post_id))
    assert reads == []


async def test_an_approver_whose_approval_was_for_the_line_before_approves_the_words_that_go_out_now(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob's approval of alice's post was given for the line before a reload passed it by, and
    counts for none; carol approves the words that go out now. Bob's card offers him the
    Approve button again, and his approval from the page releases the post: it goes out with
    the line he approved, and the log, his two approvals in it, verifies. Before, he was refused
    ("already decided on this version") and the post waited on its two approvers for ever. Carol's
    approval again of the same words is refused, through the native API, and changes nothing."""
    gw = pages.gateway
    post_id = await _bob_approved_the_line_before(gw, policy_dir, monkeypatch)
    status, body = await gw.act("carol", post_id, "approve", {"version": 1})
    assert (status, body["state"], body["approvals_needed"]) == (200, "held", 1), body
    before = await gw.snapshot()
    status, body = await gw.act("carol", post_id, "approve", {"version": 1})
    assert (status, body["error"]) == (409, "already_decided"), body
    assert await gw.snapshot() == before

    bob = await pages.person("bob")
    _, page = await bob.get(f"/posts/{post_id}")
    card = _card(page, post_id)
    assert "Approve the words above for it to count." in _approvals(card)
    assert f'action="/posts/{post_id}/approve"' in card
    status, page, _ = await bob.post(f"/posts/{post_id}/approve", {"version": "1"})
    assert status == 303, page
    got = await gw.get("alice", post_id)
    assert (got["state"], got["approvals_needed"]) == ("scheduled", 0), got
    decided = sorted((d["approver"], d["decision"]) for d in got["approvals"])
    assert decided == [("bob", "approve"), ("carol", "approve")]
    approved = [e for e in got["events"] if e["type"] == "post.approved"]
    assert [(e["actor"], e["data"]["count"], e["data"]["state"]) for e in approved] == [
        ("bob", 1, "held"), ("carol", 1, "held"), ("bob", 2, "scheduled")]
    await _goes_out(gw, "trio", "Quarterly numbers\n\nPosted by alice")


async def test_an_approver_whose_approval_was_for_the_line_before_may_reject_the_words_that_go_out_now(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob approved the words with the line before; he does not want them out with the new one.
    His rejection through the native API replaces his approval, which counted for none: the post
    is rejected and never goes out. Before, he was refused ("already decided on this version"),
    unable to approve or refuse the words he was shown."""
    gw = pages.gateway
    post_id = await _bob_approved_the_line_before(gw, policy_dir, monkeypatch)
    status, body = await gw.act("bob", post_id, "reject", {"version": 1, "reason": "Not with that line"})
    assert (status, body["state"]) == (200, "rejected"), body
    got = await gw.get("alice", post_id)
    assert [(d["approver"], d["decision"], d["reason"]) for d in got["approvals"]] == [
        ("bob", "reject", "Not with that line")]
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert await gw.timeline("trio") == []
    await _verify_log(gw)


async def test_a_list_of_held_posts_reads_their_approvals_at_once_and_counts_each(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three of alice's held posts: one approved by no one, one by bob, one by bob and carol,
    and one released by them, in the list of the native API, each with what it needs, as one
    post read alone says. The page's approvals are read in one query, not one a held post
    (before, ``approvers_of`` ran once for each)."""
    gw = pages.gateway
    write_policy(policy_dir, "trio", TRIO.replace("required: 2", "required: 3"))
    await gw.sync_policies()
    ids = [str((await gw.submit("alice", "trio", f"Post {n}"))["id"]) for n in range(4)]
    for post_id, approvers in zip(ids, ((), ("bob",), ("bob", "carol"), ("bob", "carol", "dave")), strict=True):
        for who in approvers:
            status, body = await gw.act(who, post_id, "approve", {"version": 1})
            assert status == 200, body
    alone = [(await gw.get("alice", p))["approvals_needed"] for p in ids]
    assert alone == [3, 2, 1, 0]

    reads: list[str] = []
    one_by_one = gateway_posts_sql.approvers_of

    async def counted(txn: Any, post_id: str, version: int) -> dict[str, str | None]:
        reads.append(post_id)
        return await one_by_one(txn, post_id, version)

    monkeypatch.setattr(gateway_posts_sql, "approvers_of", counted)
    status, body = await gw.call("alice", "GET", "/v1/posts?account=trio")
    assert status == 200, body
    listed = {p["id"]: (p["state"], p["approvals_needed"]) for p in body["posts"]}
    assert [listed[p] for p in ids] == [("held", 3), ("held", 2), ("held", 1), ("scheduled", 0)]
    assert reads == []
