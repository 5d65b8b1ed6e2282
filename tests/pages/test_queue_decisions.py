"""The queue's decisions as an attacker or a confused person would send them, over HTTP on both
databases: the author approving their own post (with the page's form, a form they crafted, or
the API), and one approver deciding twice, from two tabs one after the other or at once. Each is
refused with a page that says why, and counts nothing: no decision stored, no log entry."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.appkeys import DB
from tests.conftest import Gateway
from tests.pages.conftest import Pages


async def _entries(gw: Gateway, post_id: str) -> list[str]:
    """The types of the log's entries about one post, in order."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT type FROM log_entries WHERE post_id = ? ORDER BY idx", post_id)
    return [str(r["type"]) for r in rows]


async def _decisions(gw: Gateway, post_id: str) -> list[tuple[str, int, str]]:
    """Every decision stored on one post: who, on which version, what."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT approver, version, decision FROM approvals WHERE post_id = ? "
                                  "ORDER BY approver, version", post_id)
    return [(r["approver"], int(r["version"]), r["decision"]) for r in rows]


async def test_an_author_never_approves_their_own_post(pages: Pages) -> None:
    """carol, the author and one of the account's listed approvers, is offered no Approve button;
    a form she crafts with her own session and CSRF value, and the API with her token, are each
    refused (403, saying why) and count nothing; bob and dave still need to approve it."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch on Monday")
    carol = await pages.person("carol")
    _, page = await carol.get(f"/posts/{held['id']}")
    assert f"/posts/{held['id']}/approve" not in page
    before = await gw.snapshot(), await _entries(gw, held["id"])
    status, page, _ = await carol.post(f"/posts/{held['id']}/approve", {"version": "1"})
    assert status == 403, page
    assert 'role="alert">carol may not approve this post' in page
    status, body = await gw.act("carol", held["id"], "approve")
    assert status == 403, body
    assert (await gw.snapshot(), await _entries(gw, held["id"])) == before
    assert (await gw.get("carol", held["id"]))["approvals_needed"] == 2


async def test_one_approver_in_two_tabs_decides_once(pages: Pages) -> None:
    """bob approves in one tab and then, from another tab still open on the same version,
    approves again or rejects: the second is refused (409) and his approval stands, counted
    once. Rejected first, the post takes no approval after. Nothing is stored or logged twice."""
    gw = pages.gateway
    approved = await gw.submit("carol", "cosigned", "Launch on Monday")
    rejected = await gw.submit("carol", "cosigned", "Launch on Sunday")
    tab_one, tab_two = await pages.person("bob"), await pages.person("bob")
    await tab_two.get("/queue")

    status, _, _ = await tab_one.post(f"/posts/{approved['id']}/approve", {"version": "1"})
    assert status == 303
    after_one = await gw.snapshot(), await _entries(gw, approved["id"])
    for act, form in (("approve", {"version": "1"}), ("reject", {"version": "1", "reason": "Not Monday"})):
        status, page, _ = await tab_two.post(f"/posts/{approved['id']}/{act}", form)
        assert status == 409, (act, page)
        assert "You already decided on this version of the post." in page
    assert (await gw.snapshot(), await _entries(gw, approved["id"])) == after_one
    assert await _decisions(gw, approved["id"]) == [("bob", 1, "approve")]
    post = await gw.get("carol", approved["id"])
    assert (post["state"], post["approvals_needed"]) == ("held", 1)

    status, _, _ = await tab_one.post(f"/posts/{rejected['id']}/reject", {"version": "1", "reason": "Sunday?"})
    assert status == 303
    after_reject = await gw.snapshot()
    status, page, _ = await tab_two.post(f"/posts/{rejected['id']}/approve", {"version": "1"})
    assert status == 409 and "cannot approve a post that is rejected" in page
    assert await gw.snapshot() == after_reject
    assert await _decisions(gw, rejected["id"]) == [("bob", 1, "reject")]


async def test_an_approval_and_a_rejection_sent_at_once_do_not_both_count(pages: Pages) -> None:
    """bob's two tabs send Approve and Reject of one version at the same moment, and dave's
    double click sends Approve twice at once: for each, one goes through and the other is
    refused (409), and one decision is stored and logged."""
    gw = pages.gateway
    both = await gw.submit("carol", "cosigned", "Launch on Monday")
    twice = await gw.submit("carol", "cosigned", "Launch on Tuesday")
    tab_one, tab_two = await pages.person("bob"), await pages.person("bob")
    dave = await pages.person("dave")
    sent: list[Any] = await asyncio.gather(
        tab_one.post(f"/posts/{both['id']}/approve", {"version": "1"}),
        tab_two.post(f"/posts/{both['id']}/reject", {"version": "1", "reason": "No"}),
        dave.post(f"/posts/{twice['id']}/approve", {"version": "1"}),
        dave.post(f"/posts/{twice['id']}/approve", {"version": "1"}),
    )
    statuses = [status for status, _, _ in sent]
    assert sorted(statuses[:2]) == [303, 409] and sorted(statuses[2:]) == [303, 409], statuses
    [(who, version, decision)] = await _decisions(gw, both["id"])
    assert (who, version) == ("bob", 1)
    assert decision == ("approve" if statuses[0] == 303 else "reject")
    logged = [t for t in await _entries(gw, both["id"]) if t in ("post.approved", "post.rejected")]
    assert logged == ["post.approved" if decision == "approve" else "post.rejected"]
    assert await _decisions(gw, twice["id"]) == [("dave", 1, "approve")]
    assert [t for t in await _entries(gw, twice["id"]) if t == "post.approved"] == ["post.approved"]


async def test_the_answers_to_the_forms_are_neither_kept_nor_framed(pages: Pages) -> None:
    """The queue's forms answer, taken (303) or refused (403, 409), with the pages' headers: no
    cache keeps a page that showed a held post's words (a refusal shows them now), and no other
    site frames one under a person's click."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch on Monday")
    bob = await pages.person("bob")
    await bob.get("/queue")
    answers = [await bob.post(f"/posts/{held['id']}/approve", {"version": "1"}),
               await bob.post(f"/posts/{held['id']}/approve", {"version": "1"}),
               await bob.post(f"/posts/{held['id']}/reject", {"version": "1", "reason": "no", "csrf": "forged"},
                              csrf=False)]
    assert [status for status, _, _ in answers] == [303, 409, 403]
    for status, _, resp in answers:
        headers = resp.headers
        assert (headers.get("Cache-Control"), headers.get("X-Frame-Options")) == ("no-store", "DENY"), status
        assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), status


async def test_an_edit_whose_escapes_are_not_text_saves_nothing(pages: Pages) -> None:
    """An edit sent from the page with a %-escape that is not UTF-8 is refused (400), not saved
    with U+FFFD where the bytes were for its approvers to approve as if someone wrote it."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch on Monday")
    carol = await pages.person("carol")
    await carol.get(f"/posts/{held['id']}")
    before = await gw.snapshot(), await _entries(gw, held["id"])
    body = f"csrf={carol.csrf}&version=1&text=Launch%20on%20Tuesday%FF%FE"
    async with carol.session.post(f"{carol.base}/posts/{held['id']}/edit", data=body.encode(), allow_redirects=False,
                                  headers={"Content-Type": "application/x-www-form-urlencoded"}) as answer:
        assert answer.status == 400, await answer.text()
    assert (await gw.snapshot(), await _entries(gw, held["id"])) == before
