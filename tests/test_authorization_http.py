"""The authorization matrix over HTTP: every tier × every person × every action.

A person the rules refuse gets 403 (or 404 when they may not even see the post), and nothing
changes; a person the rules allow gets past authorization (2xx, or 409 when the post's state
does not allow the action).
"""

from __future__ import annotations

import pytest

from tests.conftest import USERS, Gateway
from tests.test_authorization import AUTHOR, EXPECTED_MAY

TEXT = {"direct": "Board fired the CEO", "delayed": "A thought", "cosigned": "Launch day", "managed": "An idea"}


async def _fresh_post(gateway: Gateway, tier: str, action: str) -> str:
    post = await gateway.submit(AUTHOR[tier], tier, TEXT[tier])
    if action in ("delete", "retry"):
        # Get it published (approve where it is held), so delete is possible.
        if post["state"] == "held":
            for approver in post["approvers"][: post["approvals_needed"]]:
                status, _ = await gateway.act(approver, post["id"], "approve")
                assert status == 200
        if post["state"] == "suggested":
            return str(post["id"])
        gateway.clock.advance(__import__("datetime").timedelta(hours=1))
        await gateway.tick()
        assert (await gateway.get(AUTHOR[tier], post["id"]))["state"] == "published"
    return str(post["id"])


def _request(action: str, post_id: str) -> tuple[str, str, object]:
    if action == "view":
        return "GET", f"/v1/posts/{post_id}", None
    if action == "edit":
        return "PATCH", f"/v1/posts/{post_id}", {"text": "Edited words"}
    if action == "delete":
        return "DELETE", f"/v1/posts/{post_id}", None
    if action in ("approve", "reject"):
        return "POST", f"/v1/posts/{post_id}/{action}", {"version": 1}  # what a fresh post is at
    return "POST", f"/v1/posts/{post_id}/{action}", {}


@pytest.mark.parametrize("tier", ["direct", "delayed", "cosigned", "managed"])
async def test_matrix(gateway: Gateway, tier: str) -> None:
    """Every person × action on this tier is allowed or refused as the product rules say."""
    for action, allowed in EXPECTED_MAY[tier].items():
        for user in USERS:
            post_id = await _fresh_post(gateway, tier, action)
            before = await gateway.snapshot()
            method, path, body = _request(action, post_id)
            status, answer = await gateway.call(user, method, path, body)
            where = f"{tier}: {user} {action}"
            if user in allowed:
                assert status in (200, 201, 409), f"{where}: {status} {answer}"
                if status == 409:
                    assert answer["error"] in ("invalid_transition", "already_decided", "no_approvers_left"), where
            else:
                can_view = user in EXPECTED_MAY[tier]["view"]
                # A viewer learns first when the post's state rules the action out (409).
                assert status in ((403, 409) if can_view else (404,)), f"{where}: {status} {answer}"
                assert await gateway.snapshot() == before, f"{where}: a refused request changed state"


async def test_stranger_cannot_submit_or_list(gateway: Gateway) -> None:
    """Someone with no role on an account can neither post to it nor list its posts."""
    for tier in ("direct", "delayed", "cosigned", "managed"):
        status, body = await gateway.call("erin", "POST", "/v1/posts", {"account": tier, "text": "hi"})
        assert status == 403, body
        status, body = await gateway.call("erin", "GET", f"/v1/posts?account={tier}")
        assert status == 403, body
    status, body = await gateway.call("bob", "POST", "/v1/posts", {"account": "cosigned", "text": "hi"})
    assert status == 403  # an approver is not a writer
