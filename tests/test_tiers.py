"""Each tier end to end through the HTTP API of a real server, on both databases."""

from __future__ import annotations

from datetime import timedelta

from gateway.appkeys import IDENTITY
from tests.conftest import Gateway


async def test_direct_publishes_now(gateway: Gateway) -> None:
    """A direct post is scheduled for now and published once by the next tick."""
    post = await gateway.submit("alice", "direct", "Hello world")
    assert post["state"] == "scheduled"
    assert await gateway.tick() == 1
    post = await gateway.get("alice", post["id"])
    assert post["state"] == "published"
    timeline = await gateway.timeline("direct")
    assert [p["text"] for p in timeline] == ["Hello world"]
    assert post["remote"]["id"] == timeline[0]["id"]
    assert [e["type"] for e in post["events"]] == ["post.submitted", "post.publishing", "post.published"]
    assert await gateway.tick() == 0
    assert len(await gateway.timeline("direct")) == 1


async def test_direct_hold_rule_waits_for_owner_confirmation(gateway: Gateway) -> None:
    """A hold rule on a one-person account waits for the owner, who may confirm their own post."""
    post = await gateway.submit("alice", "direct", "The CEO was fired today")
    assert post["state"] == "held"
    assert post["reasons"] == [{"rule": "breaking-news", "action": "hold", "reason": "Check the full story first"}]
    assert post["approvers"] == ["alice"]
    await gateway.tick()
    assert await gateway.timeline("direct") == []
    status, body = await gateway.act("alice", post["id"], "approve")
    assert status == 200, body
    assert body["state"] == "scheduled"
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("direct")] == ["The CEO was fired today"]


async def test_direct_block_rule_refuses_and_records(gateway: Gateway) -> None:
    """A block rule answers 422 with the rule's name and reason; the attempt is logged, nothing posted."""
    before = await gateway.log_size()
    status, body = await gateway.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "you example-slur"})
    assert status == 422
    assert body["error"] == "rule_blocked"
    assert body["rule"] == "no-slurs"
    assert body["reason"] == "Not okay to post"
    assert await gateway.log_size() == before + 1
    status, listing = await gateway.call("alice", "GET", "/v1/posts?account=direct")
    assert listing["posts"] == []


async def test_delayed_can_be_edited_and_cancelled_in_the_window(gateway: Gateway) -> None:
    """A delayed post waits its cooling-off; the author edits it, cancels another, and only one goes out."""
    keep = await gateway.submit("bob", "delayed", "First draft")
    drop = await gateway.submit("bob", "delayed", "Regrettable take")
    assert keep["state"] == drop["state"] == "scheduled"
    await gateway.tick()
    assert await gateway.timeline("delayed") == []
    status, edited = await gateway.call("bob", "PATCH", f"/v1/posts/{keep['id']}", {"text": "Second draft"})
    assert status == 200, edited
    assert edited["version"] == 2
    assert [v["text"] for v in edited["versions"]] == ["First draft", "Second draft"]
    status, cancelled = await gateway.act("bob", drop["id"], "cancel")
    assert status == 200 and cancelled["state"] == "cancelled"
    gateway.clock.advance(timedelta(minutes=9))
    await gateway.tick()
    assert await gateway.timeline("delayed") == []
    gateway.clock.advance(timedelta(minutes=2))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("delayed")] == ["Second draft"]
    status, body = await gateway.act("bob", keep["id"], "cancel")
    assert status == 409 and body["error"] == "invalid_transition"


async def test_cosigned_needs_n_distinct_approvals_never_the_author(gateway: Gateway) -> None:
    """Co-signed: 2 of bob, carol, dave must approve; carol cannot approve her own post."""
    post = await gateway.submit("carol", "cosigned", "Our new product ships today")
    assert post["state"] == "held"
    assert sorted(post["approvers"]) == ["bob", "dave"]
    assert post["approvals_needed"] == 2
    status, body = await gateway.act("carol", post["id"], "approve")
    assert status == 403, body
    status, body = await gateway.act("bob", post["id"], "approve")
    assert status == 200 and body["state"] == "held" and body["approvals_needed"] == 1
    status, body = await gateway.act("bob", post["id"], "approve")
    assert status == 409 and body["error"] == "already_decided"
    status, body = await gateway.act("dave", post["id"], "approve")
    assert status == 200 and body["state"] == "scheduled"
    await gateway.tick()
    assert await gateway.timeline("cosigned") == []  # one minute of cooling-off after approval
    gateway.clock.advance(timedelta(minutes=1, seconds=1))
    await gateway.tick()
    published = await gateway.timeline("cosigned")
    assert [p["text"] for p in published] == ["Our new product ships today\n\n—carol"]
    post = await gateway.get("alice", post["id"])
    assert post["state"] == "published"


async def test_cosigned_edit_clears_approvals_and_reject_ends_it(gateway: Gateway) -> None:
    """Editing a held post voids earlier approvals; one rejection ends the post."""
    post = await gateway.submit("alice", "cosigned", "Draft announcement")
    await gateway.act("bob", post["id"], "approve")
    status, edited = await gateway.call("alice", "PATCH", f"/v1/posts/{post['id']}", {"text": "Better announcement"})
    assert status == 200
    assert edited["approvals_needed"] == 2
    status, body = await gateway.act("bob", post["id"], "approve")
    assert status == 200 and body["approvals_needed"] == 1
    status, body = await gateway.act("carol", post["id"], "reject", {"reason": "Not the right week"})
    assert status == 200 and body["state"] == "rejected"
    assert body["approvals"][-1]["reason"] == "Not the right week"
    status, body = await gateway.act("dave", post["id"], "approve")
    assert status == 409


async def test_cosigned_hold_expires(gateway: Gateway) -> None:
    """A held post nobody decides on expires after expire_after."""
    post = await gateway.submit("alice", "cosigned", "Will anyone read this")
    gateway.clock.advance(timedelta(hours=24, seconds=1))
    await gateway.tick()
    assert (await gateway.get("alice", post["id"]))["state"] == "expired"


async def test_managed_owner_suggests_team_adopts(gateway: Gateway) -> None:
    """Managed: the owner's post is a suggestion; a writer adopts it as a post crediting both."""
    suggestion = await gateway.submit("dave", "managed", "Thank you all for coming")
    assert suggestion["state"] == "suggested"
    await gateway.tick()
    assert await gateway.timeline("managed") == []
    status, _ = await gateway.act("dave", suggestion["id"], "adopt")
    assert status == 403
    status, adopted = await gateway.act("bob", suggestion["id"], "adopt", {"text": "Thank you all for coming!"})
    assert status == 201, adopted
    assert adopted["author"] == "bob"
    assert adopted["suggested_by"] == "dave"
    assert adopted["adopted_from"] == suggestion["id"]
    original = await gateway.get("dave", suggestion["id"])
    assert original["state"] == "adopted" and original["adopted_into"] == adopted["id"]
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("managed")] == [
        "Thank you all for coming!\n\n—bob, suggested by dave"  # the suggester is named too
    ]


async def test_a_managed_owner_can_neither_reword_nor_cancel_the_post_a_writer_adopted(gateway: Gateway) -> None:
    """Managed: once bob adopts dave's suggestion, dave (the owner, who only suggests) can neither
    edit its words nor take it back over HTTP (403 each), and it goes out as bob adopted it."""
    suggestion = await gateway.submit("dave", "managed", "Thank you all")
    status, adopted = await gateway.act("bob", suggestion["id"], "adopt", {"text": "Thank you all!"})
    assert status == 201, adopted
    status, body = await gateway.call("dave", "PATCH", f"/v1/posts/{adopted['id']}", {"text": "Dave's own words"})
    assert status == 403, body
    status, body = await gateway.act("dave", adopted["id"], "cancel", {})
    assert status == 403, body
    assert (await gateway.get("bob", adopted["id"]))["state"] == "scheduled"
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("managed")] == ["Thank you all!\n\n—bob, suggested by dave"]


async def test_managed_dismiss_and_team_posts(gateway: Gateway) -> None:
    """A writer dismisses a suggestion; a writer's own post goes out directly."""
    suggestion = await gateway.submit("dave", "managed", "Maybe post this")
    status, body = await gateway.act("carol", suggestion["id"], "dismiss", {"reason": "off-message"})
    assert status == 200 and body["state"] == "dismissed"
    post = await gateway.submit("carol", "managed", "Team update")
    assert post["state"] == "scheduled"
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("managed")] == ["Team update\n\n—carol"]


async def test_delete_published_post(gateway: Gateway) -> None:
    """Deleting a published post removes it from the platform and keeps the record."""
    post = await gateway.submit("alice", "direct", "Short-lived")
    await gateway.tick()
    status, body = await gateway.call("alice", "DELETE", f"/v1/posts/{post['id']}")
    assert status == 200 and body["state"] == "deleted"
    assert await gateway.timeline("direct") == []
    assert [e["type"] for e in body["events"]][-1] == "post.deleted"
    status, body = await gateway.call("alice", "DELETE", f"/v1/posts/{post['id']}")
    assert status == 409


async def test_accounts_and_policy_listing(gateway: Gateway) -> None:
    """GET /v1/accounts lists roles per account; the policy view never shows credentials."""
    status, body = await gateway.call("carol", "GET", "/v1/accounts")
    assert status == 200
    roles = {a["account"]: a["roles"] for a in body["accounts"]}
    assert roles == {"cosigned": ["approver", "writer"], "managed": ["writer"]}
    status, body = await gateway.call("carol", "GET", "/v1/accounts/cosigned/policy")
    assert status == 200 and body["policy"]["tier"] == "co-signed"
    status, body = await gateway.call("erin", "GET", "/v1/accounts/cosigned/policy")
    assert status == 403


async def test_the_rules_read_the_content_warning_as_they_read_the_text(gateway: Gateway) -> None:
    """The content warning is the first thing a reader sees: a hold or block rule matching it
    holds or refuses the post as if the words were in its text, through the native API, the
    Mastodon API and an edit (before, the post went straight out with them)."""
    held = await gateway.submit("alice", "direct", "Read more", spoiler_text="The CEO was fired")
    assert held["state"] == "held" and [r["rule"] for r in held["reasons"]] == ["breaking-news"]

    status, body = await gateway.call("alice", "POST", "/v1/posts", {
        "account": "direct", "text": "Read more", "spoiler_text": "an example-slur"})
    assert (status, body["error"]) == (422, "rule_blocked"), body
    app = await gateway.app[IDENTITY].create(user="alice", account="direct")
    async with gateway.client.post("/api/v1/statuses", json={"status": "Read more", "spoiler_text": "an example-slur"},
                                   headers={"Authorization": f"Bearer {app}"}) as answer:
        assert answer.status == 422, await answer.text()

    quiet = await gateway.submit("alice", "direct", "Read more", spoiler_text="Long read")
    assert quiet["state"] == "scheduled"
    async with gateway.client.put(f"/api/v1/statuses/{quiet['id']}",
                                  json={"status": "Read more", "spoiler_text": "an example-slur"},
                                  headers={"Authorization": f"Bearer {app}"}) as answer:
        assert answer.status == 422, await answer.text()
    status, body = await gateway.call("alice", "PATCH", f"/v1/posts/{held['id']}", {"text": "Read more again"})
    assert status == 200 and body["state"] == "held", body  # the warning it keeps still holds it

    assert await gateway.tick() == 1
    assert [p["text"] for p in await gateway.timeline("direct")] == ["Read more"]
    assert (await gateway.get("alice", quiet["id"]))["state"] == "published"
