"""The approvers' page keeps a hold's deadline: the approve form sent after it releases nothing
(see tests/test_expired_holds.py for the API's side)."""

from __future__ import annotations

from datetime import timedelta

from tests.pages.conftest import Pages
from tests.test_expired_holds import DEADLINE, held_with_one_approval


async def test_the_approvers_page_refuses_an_approval_after_the_deadline(pages: Pages) -> None:
    """An approver who opened the post in time and sends the page's approve form after the
    deadline is told it expired, and nothing goes out."""
    gw = pages.gateway
    post_id = await held_with_one_approval(gw)
    dave = await pages.person("dave")
    status, _page = await dave.get(f"/posts/{post_id}")
    assert status == 200
    gw.clock.advance(DEADLINE + timedelta(minutes=1))
    status, page, _resp = await dave.post(f"/posts/{post_id}/approve",
                                          {"version": str(await gw.current_version(post_id))})
    assert status == 409, page
    assert "expired" in page
    await gw.tick()
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert (await gw.get("alice", post_id))["state"] == "expired"
    assert await gw.timeline("cosigned") == []
