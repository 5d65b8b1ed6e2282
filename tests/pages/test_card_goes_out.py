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

import pytest

from adapters.base import AdapterError, OutboundPost, PublishResult
from adapters.sandbox import SandboxAdapter
from gateway.appkeys import CHECKPOINTS
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
RELINED = TRIO.replace('disclosure: "—{author}"', 'disclosure: "Posted by {author}"')
"""TRIO with its disclosure line in other words."""

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
    write_policy(policy_dir, "trio", TRIO)
    await gw.sync_policies()
    post = await gw.submit("alice", "trio", "Quarterly numbers")
    status, body = await gw.act("bob", post["id"], "approve", {"version": 1})
    assert (status, body["state"], body["approvals_needed"]) == (200, "held", 1), body

    async def passed_by(*_: Any, **__: Any) -> list[tuple[str, Any]]:
        return []

    write_policy(policy_dir, "trio", RELINED)
    with monkeypatch.context() as patch:
        patch.setattr("gateway.services.policies.redecide_pending", passed_by)
        assert await gw.sync_policies() == ["trio"]
    got = await gw.get("alice", post["id"])
    assert (got["state"], got["version"], got["approvals_needed"]) == ("held", 1, 2), got
    assert got["display_text"] == "Quarterly numbers\n\nPosted by alice"

    status, body = await gw.act("carol", post["id"], "approve", {"version": 1})
    assert (status, body["state"], body["approvals_needed"]) == (200, "held", 1), body
    assert (await gw.get("alice", post["id"]))["approvals_needed"] == 1
    assert (await _listed(gw, post["id"]))["approvals_needed"] == 1
    dave = await pages.person("dave")
    _, page = await dave.get("/queue")
    assert _approvals(_card(page, post["id"])).startswith("Approvals of this version: 1 of 2, by carol.")
    _, page = await (await pages.person("bob")).get(f"/posts/{post['id']}")
    said = _approvals(_card(page, post["id"]))
    assert said.startswith("Approvals of this version: 1 of 2, by carol. Your approval of this version does not "
                           "count: it was given for other words than go out now"), said

    status, body = await gw.act("dave", post["id"], "approve", {"version": 1})
    assert (status, body["state"]) == (200, "scheduled"), body
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("trio")] == ["Quarterly numbers\n\nPosted by alice"]
    await _verify_log(gw)


async def test_a_post_sent_before_and_edited_shows_its_approver_the_words_that_go_out_now(
    pages: Pages, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's post, approved by bob, is sent and the platform fails it for now (deferred: it is
    sent again later). Carol edits it; it is held for bob again. His card shows the edited
    words, as they go out and as his approval is given for, and, labelled, the words sent
    before. Before, the card showed the words sent before as what goes out, and bob approved
    words he was not shown. His approval sends the edited words."""
    gw = pages.gateway
    write_policy(policy_dir, "brand", BRAND)
    await gw.sync_policies()
    post = await gw.submit("carol", "brand", "Quarterly numbers")
    status, body = await gw.act("bob", post["id"], "approve", {"version": 1})
    assert (status, body["state"]) == (200, "scheduled"), body

    async def later(self: SandboxAdapter, out: OutboundPost) -> PublishResult:
        raise AdapterError("the platform is busy", retryable=True, status=503)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", later)
        gw.clock.advance(timedelta(minutes=5))
        await gw.tick()
    deferred = await gw.get("carol", post["id"])
    assert (deferred["state"], deferred["attempts"]) == ("scheduled", 1), deferred
    status, body = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}",
                                 {"text": "Quarterly numbers, corrected", "version": 1})
    assert (status, body["state"], body["version"]) == (200, "held", 2), body
    assert body["display_text"] == "Quarterly numbers, corrected\n\n—carol"

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
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("brand")] == ["Quarterly numbers, corrected\n\n—carol"]
    await _verify_log(gw)
