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

from tests.conftest import Gateway

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
