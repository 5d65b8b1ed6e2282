"""A hold's deadline is kept by the decision itself, not only by the publisher's sweep.

A co-signed post nobody decided on in ``expire_after`` expires: it never goes out. The
publisher expires it at its next look, but until then the post is still ``held`` in the
database, and an approval that came after the deadline (the sweep not yet run: a publisher
stopped or busy, a gateway that serves requests while another publishes) released it as if
it had come in time. These tests approve after the deadline over the native API, with the
publisher not yet run, on both databases (the approvers' page: tests/pages/test_expired_hold_page.py).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gateway.types import duration_micros, iso, to_micros
from tests.audit.logtools import Attacker
from tests.conftest import TEST_POLICIES, Gateway, write_policy
from tests.test_voice_integrity import _verify_fails, _verify_log

DEADLINE = timedelta(hours=24)  # the test policy's approvals.expire_after on "cosigned"


async def held_with_one_approval(gw: Gateway) -> str:
    """A post of carol's on the co-signed account, approved by bob, one approval short."""
    post = await gw.submit("carol", "cosigned", "Launch day is moved to Friday")
    assert post["state"] == "held", post
    status, body = await gw.act("bob", post["id"], "approve")
    assert (status, body["state"]) == (200, "held"), body
    return str(post["id"])


async def test_an_approval_after_the_deadline_is_refused_and_the_post_expires(gateway: Gateway) -> None:
    """An approval sent after the hold's deadline, before the publisher looked, is refused
    (409) and releases nothing: the post expires at the publisher's next look and never goes out."""
    post_id = await held_with_one_approval(gateway)
    gateway.clock.advance(DEADLINE + timedelta(seconds=1))
    status, body = await gateway.act("dave", post_id, "approve")
    assert status == 409, body
    assert body["error"] == "invalid_transition", body
    assert (await gateway.get("alice", post_id))["state"] == "held"
    await gateway.tick()
    gateway.clock.advance(timedelta(minutes=5))  # past the account's one-minute delay
    await gateway.tick()
    assert (await gateway.get("alice", post_id))["state"] == "expired"
    assert await gateway.timeline("cosigned") == []


async def test_an_approval_just_before_the_deadline_still_counts(gateway: Gateway) -> None:
    """The deadline is the hold's own: the last approval a second before it releases the post."""
    post_id = await held_with_one_approval(gateway)
    gateway.clock.advance(DEADLINE - timedelta(seconds=1))
    status, body = await gateway.act("dave", post_id, "approve")
    assert (status, body["state"]) == (200, "scheduled"), body


async def test_a_deadline_moved_later_in_the_database_is_named_by_the_verifier(
    gateway: Gateway, db_url: str
) -> None:
    """Someone with the database moves a held post's deadline a day later; an approval an hour
    after the real deadline is let through and the post goes out. The log recorded the
    deadline at submission: `byline audit verify` names the approval that came after it."""
    post_id = await held_with_one_approval(gateway)
    later = to_micros(gateway.clock.now() + 2 * DEADLINE)
    await Attacker(db_url).run(("UPDATE posts SET expires_at = ? WHERE id = ?", (later, post_id)))
    gateway.clock.advance(DEADLINE + timedelta(hours=1))
    status, body = await gateway.act("dave", post_id, "approve")
    assert (status, body["state"]) == (200, "scheduled"), body
    gateway.clock.advance(timedelta(minutes=5))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("cosigned")] == ["Launch day is moved to Friday\n\n—carol"]
    text = await _verify_fails(gateway)
    assert f"post {post_id} was approved at" in text and "s after" in text, text
    assert "said its hold expired: more than the 2 s an approval may be late" in text, text


async def test_an_approval_after_the_first_deadline_within_the_one_an_edit_set_verifies(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Approved, then edited before it went out, the post is held again with a new deadline:
    the approvals that come a day after its first deadline, within the new one, release it,
    and the log verifies (the edit recorded the deadline it set)."""
    post_id = await held_with_one_approval(gateway)
    assert (await gateway.act("dave", post_id, "approve"))[0] == 200
    gateway.clock.advance(timedelta(hours=12))
    status, body = await gateway.call("carol", "PATCH", f"/v1/posts/{post_id}", {"text": "Launch day is Friday"})
    assert (status, body["state"]) == (200, "held"), body
    recorded = [(e["type"], e["data"].get("expires_at", "unsaid"))
                for e in (await gateway.get("alice", post_id))["events"]]
    submitted, edited = to_micros(gateway.clock.now() - timedelta(hours=12)), to_micros(gateway.clock.now())
    assert recorded == [("post.submitted", iso(submitted + duration_micros(DEADLINE))),
                        ("post.approved", "unsaid"), ("post.approved", None),
                        ("post.edited", iso(edited + duration_micros(DEADLINE)))], recorded
    gateway.clock.advance(timedelta(hours=13))
    for approver in ("bob", "dave"):
        status, body = await gateway.act(approver, post_id, "approve")
        assert status == 200, body
    assert body["state"] == "scheduled", body
    gateway.clock.advance(timedelta(minutes=5))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("cosigned")] == ["Launch day is Friday\n\n—carol"]
    await _verify_log(gateway, tmp_path)


@pytest.mark.parametrize("change", ["author_dropped", "removed_and_back"])
async def test_a_policy_change_does_not_revive_an_expired_hold(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, change: str
) -> None:
    """A held post past its deadline, the sweep not yet run, when a policy change would decide
    it again (its author taken off the writers; the file removed and put back): it expires in
    the change's transaction rather than be held anew with a fresh deadline, the approvals
    that follow are refused (409), nothing goes out, and the log verifies."""
    post = await gateway.submit("carol", "cosigned", "Launch day is moved to Friday")
    gateway.clock.advance(DEADLINE + timedelta(minutes=1))
    policy = TEST_POLICIES["cosigned"]
    if change == "author_dropped":
        write_policy(policy_dir, "cosigned", policy.replace("writers: [alice, carol]", "writers: [alice]"))
        await gateway.sync_policies()
    else:
        (policy_dir / "cosigned.yaml").unlink()
        await gateway.sync_policies()
        write_policy(policy_dir, "cosigned", policy)
        await gateway.sync_policies()
    for approver in ("bob", "dave"):
        status, body = await gateway.act(approver, post["id"], "approve")
        assert status == 409, body
        assert body["error"] == "invalid_transition", body
    gateway.clock.advance(timedelta(minutes=5))
    await gateway.tick()
    assert (await gateway.get("alice", post["id"]))["state"] == "expired"
    assert await gateway.timeline("cosigned") == []
    await _verify_log(gateway, tmp_path)


@pytest.mark.parametrize("replier", ["alice", "carol"])
async def test_a_policy_change_that_expires_a_hold_cancels_the_replies_waiting_for_it(
    gateway: Gateway, policy_dir: Path, tmp_path: Path, replier: str
) -> None:
    """Carol's held post is past its deadline, and a reply to it (alice's, or carol's own, held
    from an hour later) is not, when a change takes carol off the writers: the change is
    recorded, the post expires in its transaction and the reply is cancelled with it (carol's
    own not decided again as well), nothing goes out, and the log verifies. Before, carol's
    reply, cancelled with its parent, was then decided again from the row read before, and the
    whole change was refused as a conflict, at every reload."""
    parent = await gateway.submit("carol", "cosigned", "Launch day is moved to Friday")
    gateway.clock.advance(timedelta(hours=1))
    reply = await gateway.submit(replier, "cosigned", "Details to follow", reply_to_post=parent["id"])
    assert reply["state"] == "held", reply
    gateway.clock.advance(DEADLINE - timedelta(minutes=59))
    policy = TEST_POLICIES["cosigned"]
    write_policy(policy_dir, "cosigned", policy.replace("writers: [alice, carol]", "writers: [alice]"))
    assert await gateway.sync_policies() == ["cosigned"]
    assert [(await gateway.get("alice", p["id"]))["state"] for p in (parent, reply)] == ["expired", "cancelled"]
    events = [e["type"] for e in (await gateway.get("alice", reply["id"]))["events"]]
    assert events == ["post.submitted", "post.cancelled"], events
    gateway.clock.advance(timedelta(days=2))
    await gateway.tick()
    assert await gateway.timeline("cosigned") == []
    await _verify_log(gateway, tmp_path)


async def test_a_deadline_moved_earlier_in_the_database_is_named_by_the_verifier(
    gateway: Gateway, db_url: str
) -> None:
    """Someone with the database moves a held post's deadline to now: the publisher's next look
    expires it an hour after it was held for a day, and the approval that would have released it
    is refused (409). The log recorded the day: `byline audit verify` names the expiry that came
    before it. A post beside it, expired at its own deadline, is not named."""
    honest = await gateway.submit("carol", "cosigned", "Nobody will approve this")
    gateway.clock.advance(DEADLINE - timedelta(hours=1))
    post_id = await held_with_one_approval(gateway)
    gateway.clock.advance(timedelta(hours=1))
    now = to_micros(gateway.clock.now())
    await Attacker(db_url).run(("UPDATE posts SET expires_at = ? WHERE id = ?", (now, post_id)))
    await gateway.tick()
    assert [(await gateway.get("alice", p))["state"] for p in (honest["id"], post_id)] == ["expired", "expired"]
    status, body = await gateway.act("dave", post_id, "approve")
    assert (status, body["error"]) == (409, "invalid_transition"), body
    text = await _verify_fails(gateway)
    assert f"post {post_id} expired at" in text and "s before" in text, text
    assert "said its hold expired: more than the 2 s an expiry may be early" in text, text
    assert f"post {honest['id']}" not in text, text


async def test_a_hold_with_no_deadline_expired_through_the_database_is_named_by_the_verifier(
    gateway: Gateway, policy_dir: Path, db_url: str
) -> None:
    """Carol's held post is parked with no deadline when the co-signed policy is removed (it
    waits for a policy and a decision); someone with the database gives it one in the past and
    the publisher expires it. The log held it with none: `byline audit verify` names the expiry."""
    post = await gateway.submit("carol", "cosigned", "Launch day is moved to Friday")
    (policy_dir / "cosigned.yaml").unlink()
    assert await gateway.sync_policies() == ["cosigned"]
    database = Attacker(db_url)

    async def held() -> list[tuple[object, ...]]:
        return [tuple(r) for r in await database.fetch("SELECT state, expires_at FROM posts WHERE id = ?", post["id"])]

    assert await held() == [("held", None)]
    gateway.clock.advance(timedelta(days=3))
    await gateway.tick()
    assert await held() == [("held", None)]  # no deadline: the sweep leaves it
    now = to_micros(gateway.clock.now())
    await database.run(("UPDATE posts SET expires_at = ? WHERE id = ?", (now, post["id"])))
    await gateway.tick()
    assert await held() == [("expired", now)]
    text = await _verify_fails(gateway)
    assert f"post {post['id']} expired, but entry" in text, text
    assert "held it with no deadline: a hold without one waits for a decision and never expires" in text, text
