"""The queue, post and account pages over HTTP: what each role sees, the forms and what they
refuse (changing nothing), escaping, a role lost in a policy change, and the live stream."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import markupsafe
import pytest

from gateway.appkeys import APPENDER, CHECKPOINTS, DB, LIVE, PEOPLE, PLATFORMS
from gateway.http.pages import queue as queue_http
from gateway.services.live import STREAMS_PER_PERSON
from gateway.services.people import People
from gateway.services.posts import PostService
from gateway.services.queue import QueueService, option_changes, what_else
from gateway.storage.db import DatabaseUnavailable
from tests.conftest import DATABASE_GONE, TEST_POLICIES, finding_the_database_gone, started_gateway, write_policy
from tests.pages.conftest import Pages, Visitor, password_of

Form = dict[str, str]


def section(page: str, name: str) -> str:
    """The HTML of one section of the queue (``to-approve``, ``suggestions``, ``cooling``, ``waiting``)."""
    found = re.search(rf'<section aria-labelledby="{name}">(.*?)</section>', page, re.DOTALL)
    return found.group(1) if found else ""


def post_ids(fragment: str) -> list[str]:
    """The posts shown in a fragment, in order."""
    return re.findall(r'data-post="([0-9]+)"', fragment)


async def held_post(pages: Pages, text: str = "Launch on Monday") -> dict[str, Any]:
    """A co-signed post by carol, held for bob and dave (two approvals needed)."""
    return await pages.gateway.submit("carol", "cosigned", text)


async def test_the_queue_shows_each_person_what_waits_for_them(pages: Pages) -> None:
    """Approvers see held posts, writers see suggestions, authors see their cooling-off posts;
    someone with no role sees nothing."""
    gw = pages.gateway
    held = await held_post(pages)
    suggestion = await gw.submit("dave", "managed", "An idea for Friday")
    cooling = await gw.submit("bob", "delayed", "Out in ten minutes")

    bob = await pages.person("bob")
    _, page = await bob.get("/queue")
    assert post_ids(section(page, "to-approve")) == [held["id"]]
    assert post_ids(section(page, "suggestions")) == [suggestion["id"]]
    assert post_ids(section(page, "cooling")) == [cooling["id"]]
    assert 'data-seconds="600"' in section(page, "cooling") and ">10 min</time>" in page

    dave = await pages.person("dave")
    _, page = await dave.get("/queue")
    assert post_ids(section(page, "to-approve")) == [held["id"]]
    assert post_ids(section(page, "suggestions")) == []
    assert post_ids(section(page, "waiting")) == [suggestion["id"]]

    carol = await pages.person("carol")
    _, page = await carol.get("/queue")
    assert post_ids(section(page, "to-approve")) == []
    assert post_ids(section(page, "suggestions")) == [suggestion["id"]]
    assert post_ids(section(page, "waiting")) == [held["id"]]
    assert "/posts/{}/approve".format(held["id"]) not in page  # the author never approves

    erin = await pages.person("erin")
    _, page = await erin.get("/queue")
    assert post_ids(page) == []
    assert "No policy gives you a role on any account." in page


async def test_a_held_post_shows_why_how_it_will_appear_what_changed_and_who_approved(pages: Pages) -> None:
    """The rule that held it and its reason, the text with its disclosure, the word-level
    difference from the version before, and who else approved this version."""
    gw = pages.gateway
    flagged = await gw.submit("alice", "direct", "The minister was fired today")
    held = await held_post(pages, "Launch on Monday, at noon")
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{held['id']}", {"text": "Launch on Tuesday, at noon"})
    assert status == 200
    status, _ = await gw.act("dave", held["id"], "approve")
    assert status == 200

    alice = await pages.person("alice")
    _, page = await alice.get("/queue")
    card = section(page, "to-approve")
    assert post_ids(card) == [flagged["id"]]
    assert "breaking-news" in card and "Check the full story first" in card

    bob = await pages.person("bob")
    _, page = await bob.get("/queue")
    card = section(page, "to-approve")
    assert '<div class="text">Launch on Tuesday, at noon\n\n—carol</div>' in card
    assert "Launch on <del>Monday</del><ins>Tuesday</ins>, at noon" in card
    assert "What changed since version 1" in card
    assert "Approvals of this version: 1 of 2, by <bdi>dave</bdi>." in card
    assert 'name="version" value="2"' in card


async def test_approve_is_bound_to_the_version_shown(pages: Pages) -> None:
    """An approval of a version that is no longer the post's is a 409 page that says so, and
    changes nothing; the version shown is approved."""
    gw = pages.gateway
    held = await held_post(pages)
    bob = await pages.person("bob")
    await bob.get("/queue")
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{held['id']}", {"text": "Launch on Tuesday"})
    assert status == 200
    before = await gw.snapshot()
    status, page, _ = await bob.post(f"/posts/{held['id']}/approve", {"version": "1"})
    assert status == 409
    assert "you saw version 1, and it is now at version 2. Nothing was approved." in page
    assert 'role="alert"' in page
    assert await gw.snapshot() == before

    status, _, resp = await bob.post(f"/posts/{held['id']}/approve", {"version": "2", "back": "post"})
    assert (status, resp.headers["Location"]) == (303, f"/posts/{held['id']}?done=approve")
    post = await gw.get("carol", held["id"])
    assert [(a["approver"], a["version"]) for a in post["approvals"]] == [("bob", 2)]
    _, page = await bob.get(f"/posts/{held['id']}?done=approve")
    assert "You approved the post." in page


async def test_a_decision_on_words_gone_by_shows_the_words_now(pages: Pages) -> None:
    """bob read version 1; carol made it version 3 meanwhile. His approval, or his rejection, of
    version 1 is a 409 whose page shows version 3's words, what changed since the version he
    read, and the forms for version 3 (before, it said only that the post had changed, and a
    link away)."""
    gw = pages.gateway
    held = await held_post(pages, "Launch on Monday, at noon")
    bob = await pages.person("bob")
    await bob.get("/queue")
    for text in ("Launch on Tuesday, at noon", "Launch on Friday, at dawn"):
        status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{held['id']}", {"text": text})
        assert status == 200
    before = await gw.snapshot()
    for act, form in (("approve", {"version": "1"}), ("reject", {"version": "1", "reason": "no"})):
        status, page, _ = await bob.post(f"/posts/{held['id']}/{act}", form)
        assert status == 409, act
        assert "you saw version 1, and it is now at version 3" in page
        assert '<div class="text">Launch on Friday, at dawn\n\n—carol</div>' in page
        assert "What changed since version 1" in page
        assert "Launch on <del>Monday</del><ins>Friday</ins>, at <del>noon</del><ins>dawn</ins>" in page
        assert 'name="version" value="3"' in page and 'name="version" value="1"' not in page
    assert await gw.snapshot() == before

    status, page, _ = await bob.post(f"/posts/{held['id']}/approve", {"version": "3"})
    assert status == 303
    status, page, _ = await bob.post(f"/posts/{held['id']}/approve", {"version": "3"})
    assert status == 409 and "Launch on Friday" not in page  # not a stale version: nothing more to read


async def test_the_database_gone_is_a_page_that_says_when_to_try_again(
    pages: Pages, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as a person's session is read, or as their approval is
    recorded, as storage says it and as the driver does: a 503 page (HTML, as every page) with
    the database's message and Retry-After, and nothing changed. Before: the session read was
    answered in the API's JSON, and the approval's page had no Retry-After; then the driver's
    word (a server shutting down) still was, for both."""
    gw = pages.gateway
    held = await held_post(pages)
    bob = await pages.person("bob")
    await bob.get("/queue")
    before = await gw.snapshot()

    for cause in DATABASE_GONE:
        gone = finding_the_database_gone(cause)
        with monkeypatch.context() as patched:
            patched.setattr(PostService, "approve", gone)
            status, page, resp = await bob.post(f"/posts/{held['id']}/approve", {"version": "1"})
        assert (status, resp.headers.get("Retry-After"), resp.content_type) == (503, "5", "text/html"), cause
        assert html.escape(DatabaseUnavailable().message) in page, cause
        with monkeypatch.context() as patched:
            patched.setattr(People, "session", gone)
            async with bob.session.get(f"{pages.base}/queue", allow_redirects=False) as resp:
                answer = (resp.status, resp.headers.get("Retry-After"), resp.content_type)
                page = await resp.text()
        assert answer == (503, "5", "text/html"), cause
        assert html.escape(DatabaseUnavailable().message) in page, cause
    assert await gw.snapshot() == before


async def test_reject_needs_a_reason(pages: Pages) -> None:
    """A rejection with no reason, a blank one or one too long is refused (422); with one it ends
    the post, and the author reads the reason."""
    gw = pages.gateway
    held = await held_post(pages)
    dave = await pages.person("dave")
    await dave.get("/queue")
    before = await gw.snapshot()
    for form in ({"version": "1"}, {"version": "1", "reason": "   "}, {"version": "1", "reason": "x" * 2001}):
        status, page, _ = await dave.post(f"/posts/{held['id']}/reject", form)
        assert status == 422, form
        assert 'role="alert"' in page
    assert await gw.snapshot() == before

    status, _, resp = await dave.post(f"/posts/{held['id']}/reject", {"version": "1", "reason": "Not before the board"})
    assert (status, resp.headers["Location"]) == (303, "/queue?done=reject")
    post = await gw.get("carol", held["id"])
    assert (post["state"], post["approvals"][0]["reason"]) == ("rejected", "Not before the board")
    carol = await pages.person("carol")
    _, page = await carol.get(f"/posts/{held['id']}")
    assert "<bdi>dave</bdi> rejected it" in page and "Not before the board" in page


async def test_forms_with_missing_or_oversized_fields_change_nothing(pages: Pages) -> None:
    """No version (to approve, or to edit), a version that is not a number, no text, text past
    the account's limit, a form past the size limit: each is refused with its status and changes
    nothing."""
    gw = pages.gateway
    held = await held_post(pages)
    cooling = await gw.submit("bob", "delayed", "Out in ten minutes")
    bob = await pages.person("bob")
    await bob.get("/queue")
    before = await gw.snapshot()
    cases: list[tuple[str, Form, int]] = [
        (f"/posts/{held['id']}/approve", {}, 422),
        (f"/posts/{held['id']}/approve", {"version": "two"}, 422),
        (f"/posts/{held['id']}/approve", {"version": "9" * 30}, 422),
        (f"/posts/{cooling['id']}/edit", {"version": "1"}, 422),
        (f"/posts/{cooling['id']}/edit", {"text": "Later"}, 422),
        (f"/posts/{cooling['id']}/edit", {"version": "1", "text": "  "}, 422),
        (f"/posts/{cooling['id']}/edit", {"version": "1", "text": "x" * 501}, 422),
        (f"/posts/{cooling['id']}/edit", {"version": "1", "text": "x" * 70_000}, 413),
    ]
    for path, form, expected in cases:
        status, page, _ = await bob.post(path, form)
        assert status == expected, (path, {k: v[:20] for k, v in form.items()}, page[-400:])
    assert await gw.snapshot() == before


async def test_a_forged_or_missing_csrf_value_changes_nothing(pages: Pages) -> None:
    """Every form refuses (403) a CSRF value that is not the session's, or none."""
    gw = pages.gateway
    held = await held_post(pages)
    suggestion = await gw.submit("dave", "managed", "An idea")
    cooling = await gw.submit("bob", "delayed", "Soon")
    bob = await pages.person("bob")
    await bob.get("/queue")
    before = await gw.snapshot()
    forms = [
        (f"/posts/{held['id']}/approve", {"version": "1"}),
        (f"/posts/{held['id']}/reject", {"version": "1", "reason": "no"}),
        (f"/posts/{cooling['id']}/cancel", {}),
        (f"/posts/{cooling['id']}/edit", {"version": "1", "text": "Later"}),
        (f"/posts/{suggestion['id']}/adopt", {"version": "1"}),
        (f"/posts/{suggestion['id']}/dismiss", {}),
    ]
    other = await pages.person("carol")  # a real CSRF value, of another session
    for path, form in forms:
        for csrf in ({"csrf": "forged"}, {}, {"csrf": other.csrf}):
            status, page, _ = await bob.post(path, {**form, **csrf}, csrf=False)
            assert status == 403, (path, csrf)
            assert "was not sent from a page of this gateway" in page
    assert await gw.snapshot() == before


async def test_an_act_the_post_no_longer_allows_is_a_clear_409(pages: Pages) -> None:
    """Approving a post its author cancelled meanwhile, or approving twice, is refused with a
    page that says why and links back to the post; nothing changes."""
    gw = pages.gateway
    held = await held_post(pages)
    other = await held_post(pages, "Another one")
    dave = await pages.person("dave")
    await dave.get("/queue")
    status, _ = await gw.act("carol", held["id"], "cancel")
    assert status == 200
    status, _, _ = await dave.post(f"/posts/{other['id']}/approve", {"version": "1"})
    assert status == 303
    before = await gw.snapshot()
    status, page, _ = await dave.post(f"/posts/{held['id']}/approve", {"version": "1"})
    assert status == 409 and "cannot approve a post that is cancelled" in page
    assert f'href="/posts/{held["id"]}"' in page
    status, page, _ = await dave.post(f"/posts/{other['id']}/approve", {"version": "1"})
    assert status == 409 and "You already decided on this version of the post." in page
    assert await gw.snapshot() == before


async def test_another_persons_post_is_out_of_reach(pages: Pages) -> None:
    """A post of an account one has no role on is not found; one's role may not allow the act
    (403); an id that is no post is not found; nothing changes."""
    gw = pages.gateway
    held = await held_post(pages)
    cooling = await gw.submit("bob", "delayed", "Soon")
    erin = await pages.person("erin")
    dave = await pages.person("dave")
    before = await gw.snapshot()
    status, page = await erin.get(f"/posts/{held['id']}")
    assert status == 404 and "Launch" not in page
    status, page, _ = await erin.post(f"/posts/{held['id']}/approve", {"version": "1"})
    assert status == 404 and "Launch" not in page
    status, _, _ = await dave.post(f"/posts/{cooling['id']}/cancel", {})
    assert status == 404  # dave has no role on the delayed account: he may not even see it
    status, _, _ = await dave.post(f"/posts/{held['id']}/cancel", {})
    assert status == 403  # he may see it (an approver), but only its author cancels it
    for path in ("/posts/123456789/approve", "/posts/abc/approve"):
        status, _, _ = await dave.post(path, {"version": "1"})
        assert status == 404
    status, _ = await dave.get("/posts/%3Cscript%3E")
    assert status == 404
    assert await gw.snapshot() == before


EVIL = """
    account: evil
    platform: sandbox
    handle: "<b>@handle</b>"
    tier: direct
    owner: alice
    writers: [alice, carol]
    disclosure: "<i>by {author}</i><script>alert(3)</script>"
    rules:
      - name: shout
        action: hold
        any_words: [loud]
        reason: "<img src=x onerror=alert(2)> Check it"
"""


async def test_html_and_script_are_escaped_on_every_page(pages: Pages, policy_dir: Path) -> None:
    """Post text, rule reasons, the disclosure and the handle come out as text, never markup,
    on the queue, the post and the account page. (People's and accounts' names cannot hold
    markup: their names are letters, digits, dot, dash and underscore, checked when made.)"""
    gw = pages.gateway
    write_policy(policy_dir, "evil", EVIL)
    await gw.sync_policies()
    text = 'loud <script>alert(1)</script><a href="javascript:x">'
    post = await gw.submit("carol", "evil", text)
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}", {"text": text + " <b>more</b>"})
    assert status == 200
    alice = await pages.person("alice")
    for path in ("/queue", f"/posts/{post['id']}", "/accounts/evil"):
        status, page = await alice.get(path)
        assert status == 200, path
        for raw in ("<script>alert", "<img", "<b>", "<i>", "javascript:x\">"):
            assert raw not in page, (path, raw)
        assert "&lt;script&gt;alert(" in page, path
    _, page = await alice.get(f"/posts/{post['id']}")
    assert str(markupsafe.escape(text)) in page  # version 1, word for word, as text
    status, page = await alice.get("/accounts/%3Cscript%3Ealert(4)%3C%2Fscript%3E")
    assert status == 404 and "<script>alert(4)" not in page and "&lt;script&gt;alert(4)" in page


async def test_a_person_who_loses_their_role_loses_access_at_once(pages: Pages, policy_dir: Path) -> None:
    """bob is taken off the approvers: the post leaves his queue, its page and the account page
    are closed to him, and his approval is refused, though his session and its page are old;
    dave, still an approver, still sees it."""
    gw = pages.gateway
    held = await held_post(pages)
    bob = await pages.person("bob")
    _, page = await bob.get("/queue")
    assert post_ids(section(page, "to-approve")) == [held["id"]]
    write_policy(policy_dir, "cosigned", TEST_POLICIES["cosigned"].replace("from: [bob, carol, dave]",
                                                                          "from: [carol, dave, erin]"))
    assert await gw.sync_policies() == ["cosigned"]
    before = await gw.snapshot()
    status, _, _ = await bob.post(f"/posts/{held['id']}/approve", {"version": "1"})
    assert status == 404
    assert await gw.snapshot() == before
    _, page = await bob.get("/queue")
    assert held["id"] not in page
    status, _ = await bob.get(f"/posts/{held['id']}")
    assert status == 404
    status, page = await bob.get("/accounts/cosigned")
    assert status == 403 and "no role on cosigned" in page
    dave = await pages.person("dave")
    _, page = await dave.get("/queue")
    assert post_ids(section(page, "to-approve")) == [held["id"]]


async def test_the_author_cancels_and_edits_in_the_cooling_off_window(pages: Pages) -> None:
    """Edit makes a new version and restarts the window; Cancel stops the post for good."""
    gw = pages.gateway
    cooling = await gw.submit("bob", "delayed", "Out soon")
    bob = await pages.person("bob")
    await bob.get("/queue")
    status, _, resp = await bob.post(f"/posts/{cooling['id']}/edit", {"version": "1", "text": "Out soon,\r\nfixed"})
    assert (status, resp.headers["Location"]) == (303, "/queue?done=edit")
    post = await gw.get("bob", cooling["id"])
    assert (post["version"], post["text"], post["state"]) == (2, "Out soon,\nfixed", "scheduled")
    status, _, _ = await bob.post(f"/posts/{cooling['id']}/cancel", {})
    assert status == 303
    assert (await gw.get("bob", cooling["id"]))["state"] == "cancelled"
    _, page = await bob.get("/queue?done=cancel")
    assert "You cancelled the post." in page and post_ids(section(page, "cooling")) == []
    gw.clock.advance(timedelta(minutes=11))
    await gw.tick()
    assert await gw.timeline("delayed") == []


async def test_an_edit_written_from_words_gone_by_writes_nothing_over_them(pages: Pages) -> None:
    """carol opens her held post's page to edit it; in her app she makes it version 2 meanwhile;
    then she saves the page's text, written from version 1. It is refused (409) and nothing
    changes: the page shows version 2's words and the text she sent, so neither is lost (before,
    the page's edit silently became version 3 over version 2, whose change was gone unsaid)."""
    gw = pages.gateway
    held = await held_post(pages, "Launch on Monday")
    carol = await pages.person("carol")
    _, page = await carol.get(f"/posts/{held['id']}")
    edit_form = re.search(rf'action="/posts/{held["id"]}/edit".*?</form>', page, re.DOTALL)
    assert edit_form is not None and 'name="version" value="1"' in edit_form.group(0)
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{held['id']}", {"text": "Launch on Monday, not Sunday"})
    assert status == 200
    before = await gw.snapshot()
    status, page, _ = await carol.post(f"/posts/{held['id']}/edit",
                                       {"version": "1", "text": "Launch on Monday at noon", "back": "post"})
    assert status == 409
    assert "This post changed since you read it: you edited version 1, and it is now at version 2." in page
    assert "Nothing was saved." in page and 'role="alert"' in page
    assert '<div class="text">Launch on Monday, not Sunday\n\n—carol</div>' in page
    assert "Launch on Monday at noon" in page  # what she wrote, to carry over
    assert await gw.snapshot() == before

    status, _, _ = await carol.post(f"/posts/{held['id']}/edit",
                                    {"version": "2", "text": "Launch on Monday at noon, not Sunday"})
    assert status == 303
    post = await gw.get("carol", held["id"])
    assert (post["version"], post["text"]) == (3, "Launch on Monday at noon, not Sunday")


async def test_writers_adopt_and_dismiss_suggestions(pages: Pages) -> None:
    """A writer adopts one suggestion (a new post by them, crediting the suggester) and
    dismisses another."""
    gw = pages.gateway
    first = await gw.submit("dave", "managed", "Say hello")
    second = await gw.submit("dave", "managed", "Say goodbye")
    carol = await pages.person("carol")
    await carol.get("/queue")
    status, _, resp = await carol.post(f"/posts/{first['id']}/adopt", {"version": "1", "back": "post"})
    assert status == 303
    new_id = resp.headers["Location"].removeprefix("/posts/").removesuffix("?done=adopt")
    adopted = await gw.get("carol", new_id)
    assert (adopted["author"], adopted["suggested_by"], adopted["display_text"]) == (
        "carol", "dave", "Say hello\n\n—carol, suggested by dave")
    status, _, _ = await carol.post(f"/posts/{second['id']}/dismiss", {})
    assert status == 303
    assert (await gw.get("dave", second["id"]))["state"] == "dismissed"
    _, page = await carol.get("/queue")
    assert post_ids(section(page, "suggestions")) == []


async def test_adopt_is_bound_to_the_version_shown(pages: Pages) -> None:
    """The suggester's edit after the writer's queue was drawn makes the writer's adoption a 409
    page that says so, and nothing goes out (before, the form named no version and the words the
    writer never saw were adopted and published); the version shown is adopted."""
    gw = pages.gateway
    suggestion = await gw.submit("dave", "managed", "Say hello")
    carol = await pages.person("carol")
    _, page = await carol.get("/queue")
    assert 'action="/posts/{}/adopt"'.format(suggestion["id"]) in page
    assert 'name="version" value="1"' in section(page, "suggestions")
    status, _ = await gw.call("dave", "PATCH", f"/v1/posts/{suggestion['id']}", {"text": "Words carol never saw"})
    assert status == 200
    before = await gw.snapshot()
    status, page, _ = await carol.post(f"/posts/{suggestion['id']}/adopt", {"version": "1"})
    assert status == 409
    assert "you saw version 1, and it is now at version 2. Nothing was adopted." in page
    assert "<del>Say</del><ins>Words</ins> <del>hello</del><ins>carol never saw</ins>" in page  # to read first
    assert 'name="version" value="2"' in page
    assert await gw.snapshot() == before
    await gw.tick()
    assert await gw.timeline("managed") == []
    status, _, _ = await carol.post(f"/posts/{suggestion['id']}/adopt", {"version": "2"})
    assert status == 303
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("managed")] == ["Words carol never saw\n\n—carol, suggested by dave"]


async def test_the_post_page_tells_the_whole_history_with_proofs(pages: Pages) -> None:
    """Every version with who wrote it, every decision, every log entry, and for each entry a
    link to its inclusion proof in the latest signed checkpoint, which the public log answers."""
    gw = pages.gateway
    held = await held_post(pages, "First words")
    await gw.call("carol", "PATCH", f"/v1/posts/{held['id']}", {"text": "Second words"})
    await gw.act("bob", held["id"], "approve")
    await gw.app[CHECKPOINTS].sign_now()
    dave = await pages.person("dave")
    _, page = await dave.get(f"/posts/{held['id']}")
    assert page.index("<h3>Version 2</h3>") < page.index("<h3>Version 1</h3>")
    assert "<del>First</del><ins>Second</ins> words" in page
    assert "<bdi>bob</bdi> approved it" in page
    assert '(1 of 2 approvals)' in page
    links = re.findall(r'href="(/log/proof/inclusion\?index=\d+&amp;size=\d+)"', page)
    assert len(links) == 3  # submitted, edited, approved
    for link in links:
        async with dave.session.get(pages.base + html.unescape(link)) as resp:
            assert resp.status == 200
            assert (await resp.json())["proof"] is not None


async def test_the_account_page_shows_the_policy_history_health_and_posts(pages: Pages) -> None:
    """Its people read the policy in force (tier, approvers and how many, delay, disclosure),
    its changes, its health and its posts by state; others are refused."""
    await held_post(pages)
    carol = await pages.person("carol")
    status, page = await carol.get("/accounts/cosigned")
    assert status == 200
    assert "2 of <bdi>bob</bdi>, <bdi>carol</bdi>, <bdi>dave</bdi>, within 1 day" in page
    assert "1 min of cooling-off" in page and "“—{author}”" in page
    assert "policy first recorded" in page
    assert '<span class="tag state-held">held</span> 1' in page
    assert "Posting works" in page
    alice = await pages.person("alice")
    _, page = await alice.get("/accounts/direct")
    assert "Check the full story first" in page and "any of the words fired, scandal" in page
    erin = await pages.person("erin")
    status, _ = await erin.get("/accounts/cosigned")
    assert status == 403
    status, _ = await erin.get("/accounts/nosuch")
    assert status == 404
    pages.gateway.app[PLATFORMS].mark("cosigned", "credential env:BRAND_TOKEN is not set in the environment")
    _, page = await carol.get("/accounts/cosigned")
    assert "Posts to this account are not going out: credential env:BRAND_TOKEN is not set" in page
    _, page = await carol.get("/queue")
    assert "not posting: credential env:BRAND_TOKEN" in page


async def test_an_admin_reads_every_account_page(db_url: str, policy_dir: Path, clock: Any) -> None:
    """A gateway admin (BYLINE_ADMINS) with no role on an account reads its page."""
    async with started_gateway(db_url, policy_dir, clock, admins="erin") as gw:
        await gw.app[PEOPLE].add("erin", password_of("erin"))
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            erin = Visitor(session=session, base=str(gw.client.make_url("")).rstrip("/"))
            await erin.sign_in("erin")
            status, page = await erin.get("/accounts/cosigned")
            assert status == 200 and "You administer this gateway." in page


async def test_pages_need_a_session(pages: Pages) -> None:
    """Without a session the pages send the visitor to sign in, and the stream is refused."""
    visitor = await pages.visitor()
    for path in ("/queue", "/posts/1", "/accounts/cosigned"):
        async with visitor.session.get(pages.base + path, allow_redirects=False) as resp:
            location = urlsplit(resp.headers["Location"])
            assert (resp.status, location.path, parse_qs(location.query)) == (303, "/signin", {"next": [path]})
    async with visitor.session.get(pages.base + "/queue/events") as resp:
        assert resp.status == 401


async def read_event(resp: aiohttp.ClientResponse, seconds: float) -> str:
    """The name of the next event on a stream (comments skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            line = (await resp.content.readline()).decode()
            if line.startswith("event: "):
                return line.removeprefix("event: ").strip()


async def test_the_stream_says_when_the_queue_changed(pages: Pages) -> None:
    """A new held post for bob, made through the API, reaches his open stream as an event."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.1
    bob = await pages.person("bob")
    async with bob.session.get(pages.base + "/queue/events") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert await resp.content.readline() == b"retry: 5000\n"
        await held_post(pages)
        assert await read_event(resp, 10) == "queue"
        # A change of another account's posts is not bob's business: no event for it.
        await gw.submit("alice", "direct", "Nothing for bob")
        with pytest.raises(TimeoutError):
            await read_event(resp, 1.5)


async def test_the_stream_hears_changes_made_on_another_replica(pages: Pages, db_url: str, policy_dir: Path,
                                                                 clock: Any) -> None:
    """Two gateways on one database, as replicas: a post submitted on the second reaches the
    stream open on the first."""
    pages.gateway.app[LIVE].interval = 0.1
    bob = await pages.person("bob")
    async with bob.session.get(pages.base + "/queue/events") as resp, \
            started_gateway(db_url, policy_dir, clock) as other:
        assert resp.status == 200
        await resp.content.readline()
        await other.submit("carol", "cosigned", "Posted through the other replica")
        assert await read_event(resp, 10) == "queue"


async def test_the_session_check_says_signed_in_signed_out_or_cannot_tell(
    pages: Pages, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``/session``, which the queue's script asks once its stream is refused: 204 for a live
    session, 401 once it ended (bob's password changed) or for a browser without one, and 503
    with Retry-After while the database cannot say; never cached, and it says nothing of
    the person. (Before: no such check; the page could not tell 401 from 503.)"""
    gw = pages.gateway
    bob, nobody = await pages.person("bob"), await pages.visitor()
    async with bob.session.get(pages.base + "/session") as resp:
        assert (resp.status, await resp.read(), resp.headers["Cache-Control"]) == (204, b"", "no-store")
    with monkeypatch.context() as patched:
        patched.setattr(People, "session", finding_the_database_gone())
        async with bob.session.get(pages.base + "/session") as resp:
            assert (resp.status, "Retry-After" in resp.headers) == (503, True)
    async with nobody.session.get(pages.base + "/session") as resp:
        assert (resp.status, await resp.text()) == (401, "Sign in first.")
    await gw.app[PEOPLE].set_password("bob", "a-new-password-for-bob", appender=gw.app[APPENDER])
    async with bob.session.get(pages.base + "/session") as resp:
        assert (resp.status, await resp.text(), resp.headers["Cache-Control"]) == (401, "Sign in first.", "no-store")


async def test_the_stream_ends_when_the_session_does(pages: Pages) -> None:
    """A person signed out elsewhere (here: their password changed) is told so at the next
    change, and the stream ends."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.1
    bob = await pages.person("bob")
    async with bob.session.get(pages.base + "/queue/events") as resp:
        await resp.content.readline()
        await gw.app[PEOPLE].set_password("bob", "a-new-password-for-bob", appender=gw.app[APPENDER])
        await held_post(pages)
        assert await read_event(resp, 10) == "signedout"
        async with asyncio.timeout(5):
            await resp.content.read()
        assert resp.content.at_eof()


@pytest.mark.parametrize("cause", DATABASE_GONE, ids=["storage", "driver"])
@pytest.mark.parametrize("read", ["session_check", "queue"])
async def test_a_stream_that_meets_the_database_gone_says_so_and_ends(
    pages: Pages, monkeypatch: pytest.MonkeyPatch, read: str, cause: BaseException,
) -> None:
    """The database gone under an open stream, met by the session's check at a keepalive or by
    the read of a changed queue: the page is told it is out of date and the stream ends, so the
    browser reconnects; refused 503 with Retry-After while the database is gone, and heard again
    once it is back. Before: an idle stream kept sending keepalives over an outage, and a read
    that met it broke the response off mid-stream with nothing said."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.1
    bob = await pages.person("bob")
    with monkeypatch.context() as patched:
        if read == "session_check":  # checked at each keepalive: soon
            patched.setattr(queue_http, "KEEPALIVE_SECONDS", 0.2)
        async with bob.session.get(pages.base + "/queue/events") as resp:
            assert (resp.status, await resp.content.readline()) == (200, b"retry: 5000\n")
            if read == "session_check":
                patched.setattr(People, "session", finding_the_database_gone(cause))
            else:
                patched.setattr(QueueService, "fingerprint", finding_the_database_gone(cause))
                await held_post(pages)
            async with asyncio.timeout(5):
                rest = await resp.content.read()
            assert resp.content.at_eof()
        assert rest.endswith(b"event: unavailable\ndata: the database is not answering; reconnect in a moment\n\n")
        patched.setattr(People, "session", finding_the_database_gone(cause))
        async with bob.session.get(pages.base + "/queue/events") as again:
            assert (again.status, again.headers.get("Retry-After")) == (503, "5")
    async with bob.session.get(pages.base + "/queue/events") as back:
        assert (back.status, await back.content.readline()) == (200, b"retry: 5000\n")
        await held_post(pages, "Once the database is back")
        assert await read_event(back, 10) == "queue"


async def test_live_streams_are_bounded_per_person(pages: Pages) -> None:
    """A person has at most a few streams open; one more is refused (429)."""
    bob = await pages.person("bob")
    opened = []
    try:
        for _ in range(STREAMS_PER_PERSON):
            resp = await bob.session.get(pages.base + "/queue/events")
            opened.append(resp)
            assert resp.status == 200
            await resp.content.readline()
        async with bob.session.get(pages.base + "/queue/events") as resp:
            assert resp.status == 429
        carol = await pages.person("carol")
        async with carol.session.get(pages.base + "/queue/events") as resp:
            assert resp.status == 200
    finally:
        for resp in opened:
            resp.close()


async def test_streams_end_when_the_gateway_stops(db_url: str, policy_dir: Path, clock: Any) -> None:
    """Stopping the gateway ends an open stream at once instead of waiting on it."""
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.app[PEOPLE].add("bob", password_of("bob"))
        session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        try:
            bob = Visitor(session=session, base=str(gw.client.make_url("")).rstrip("/"))
            await bob.sign_in("bob")
            resp = await session.get(bob.base + "/queue/events")
            await resp.content.readline()
            await asyncio.wait_for(gw.client.close(), 5)
            assert await asyncio.wait_for(resp.content.read(), 5) == b": listening\n\n"
            assert resp.content.at_eof()
        finally:
            await session.close()



async def test_a_form_sent_in_pieces_is_read_whole(pages: Pages) -> None:
    """An edit whose body reaches the gateway in two pieces (a slow phone link) is stored whole
    (before, the first piece was taken for the whole form: the words were cut short and saved)."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Launch on Monday")
    carol = await pages.person("carol")
    await carol.get(f"/posts/{held['id']}")
    words = "Launch on Tuesday at noon, with the whole team present"
    body = f"csrf={quote(carol.csrf)}&back=post&version=1&text={quote(words)}".encode()

    async def slowly() -> AsyncIterator[bytes]:
        yield body[:-20]
        await asyncio.sleep(0.3)
        yield body[-20:]

    async with carol.session.post(
        carol.base + f"/posts/{held['id']}/edit", data=slowly(), allow_redirects=False,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Content-Length": str(len(body))},
    ) as answer:
        assert answer.status == 303, await answer.text()
    assert (await gw.get("carol", held["id"]))["text"] == words


async def test_the_post_page_links_only_to_web_addresses(pages: Pages) -> None:
    """The address a platform gave for a published post is a link only when it is http(s): a
    hostile instance's ``javascript:`` address is shown as text."""
    gw = pages.gateway
    post = await gw.submit("alice", "direct", "Hello world")
    await gw.tick()
    async with gw.app[DB].write() as txn:
        await txn.execute("UPDATE posts SET remote_url = ? WHERE id = ?", "javascript:alert(document.domain)",
                          post["id"])
    alice = await pages.person("alice")
    status, page = await alice.get(f"/posts/{post['id']}")
    assert status == 200 and 'href="javascript:' not in page and "javascript:alert(document.domain)" in page



async def test_a_reply_card_links_only_to_the_web_address_of_what_it_answers(pages: Pages) -> None:
    """The address a platform gave for the status a held reply answers is a link on its card
    only when it is http(s): one a hostile instance gave (or a row kept from before the check)
    as ``javascript:`` is shown as text, never followed by an approver's click."""
    gw = pages.gateway
    held = await gw.submit("carol", "cosigned", "Quite right")
    hostile = {"reply_to": "109", "reply_to_url": "javascript:alert(document.domain)", "reply_to_account": "mallory"}
    async with gw.app[DB].write() as txn:
        await txn.execute("UPDATE posts SET options = ? WHERE id = ?", json.dumps(hostile), held["id"])
        await txn.execute("UPDATE post_versions SET options = ? WHERE post_id = ?", json.dumps(hostile), held["id"])
    alice = await pages.person("alice")
    status, page = await alice.get(f"/posts/{held['id']}")
    assert status == 200
    assert "javascript:alert(document.domain)" in page  # shown, as text
    assert 'href="javascript:' not in page


def test_a_card_names_what_a_bluesky_post_sends_besides_its_words() -> None:
    """A quote, a link card, image alt texts and shapes, self-labels, a link or a hashtag's feed
    hidden under words and the reply settings are all named on the card: each goes out with the
    approved version."""
    shown = what_else({
        "embed": {"$type": "app.bsky.embed.recordWithMedia",
                  "record": {"record": {"uri": "at://did:plc:x/app.bsky.feed.post/3k", "cid": "c"}},
                  "media": {"$type": "app.bsky.embed.images", "images": [
                      {"alt": "a map", "aspectRatio": {"width": 4, "height": 1}}, {"alt": ""}]}},
        "self_labels": {"values": [{"val": "graphic-media"}]},
        "facets": {"facets": [{"index": {"byteStart": 0, "byteEnd": 4},
                               "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://evil.example"}]},
                              {"index": {"byteStart": 5, "byteEnd": 9},
                               "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": "other"}]}]},
        "gates": {"app.bsky.feed.postgate": {"embeddingRules": [{"$type": "app.bsky.feed.postgate#disableRule"}]},
                  "app.bsky.feed.threadgate": {"allow": []}},
    })
    assert [(s.label, s.value) for s in shown] == [
        ("Quotes", "at://did:plc:x/app.bsky.feed.post/3k"),
        ("Quoted words", "Words not kept: this quote was written before Byline kept them. "
                         "Read them on the platform before you approve."),
        ("Image description", "a map"), ("Image shape", "4 wide, 1 high"), ("Image description", "(none)"),
        ("Labels", "graphic-media"),
        ("Link under its words", "https://evil.example"), ("Hashtag under its words", "#other"),
        ("Who may reply or quote", "Replies: nobody"), ("Who may reply or quote", "Quotes: off"),
    ]


def test_what_an_edit_changed_besides_its_words() -> None:
    """Pictures taken out and added are named by place; the alt text of a picture both versions
    carry is compared where both kept theirs, and not guessed where the earlier one did not (a
    version recorded before alt texts were kept); an embed's alt texts are compared as a whole."""
    before = {"media_ids": ["a", "b"], "spoiler_text": "cw",
              "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "old"}]}}
    after = {"media_ids": ["b", "c"], "visibility": "private",
             "embed": {"$type": "app.bsky.embed.images", "images": [{"alt": "new"}]}}
    kept = [{"id": "a", "description": "A"}, {"id": "b", "description": "B"}]
    now = [{"id": "b", "description": "B, better"}, {"id": "c", "description": None}]
    changed = [(c.label, c.before, c.after) for c in option_changes(before, kept, after, now)]
    assert changed == [
        ("Content warning", "cw", None),
        ("Image description", "old", "new"),
        ("Who sees it", None, "followers only"),
        ("Pictures", "picture 1 (taken out), picture 2", "picture 1, picture 2 (new)"),
        ("Alt text of picture 1", "B", "B, better"),
    ]
    assert [c.label for c in option_changes(before, None, after, now)] == [
        "Content warning", "Image description", "Who sees it", "Pictures"]
    assert option_changes(after, now, after, now) == ()


async def test_a_reply_to_a_suggestion_adopted_since_says_the_post_it_answers_changed(pages: Pages) -> None:
    """Dave suggests a post and a reply to it; carol adopts the post with other words. The
    reply's approvals answer the suggestion's words, and the publisher holds it to them: its
    card shows those, says plainly that the post it answers is now the adopted one, which the
    reply will not go out after unless edited, and shows the adopted words too (before: the
    adopted words alone, as if the reply answered them)."""
    gw = pages.gateway
    first = await gw.submit("dave", "managed", "Say hello")
    reply = await gw.submit("dave", "managed", "Bring your badge", reply_to_post=first["id"])
    status, adopted = await gw.call("carol", "POST", f"/v1/posts/{first['id']}/adopt",
                                    {"version": 1, "text": "Say hello at nine"})
    assert status == 201, adopted
    carol = await pages.person("carol")
    status, page = await carol.get(f"/posts/{reply['id']}")
    assert status == 200
    assert shown_under(page, "Words it answers") == ["Say hello"]
    assert shown_under(page, "Changed since") == [
        f"The post it answers has changed since (now post {adopted['id']}, version 1): this reply will not go "
        "out unless its author edits it."]
    assert shown_under(page, "Its words now") == [adopted["display_text"]]
    assert "Say hello at nine" in adopted["display_text"]

def shown_under(fragment: str, label: str) -> list[str]:
    """The words a card shows under ``label``, each as its reader reads them."""
    return [html.unescape(re.sub(r"<[^>]+>", "", found))
            for found in re.findall(rf"<dt>{re.escape(label)}</dt><dd>(.*?)</dd>", fragment, re.DOTALL)]


async def test_a_reply_to_a_post_edited_since_shows_the_words_it_answers_and_that_they_changed(pages: Pages) -> None:
    """Carol's held post, and her reply to it; then she edits the post. Her reply's card, in
    bob's queue and on its page, shows the words its approvals answer (version 1's, which the
    publisher holds it to), says plainly that the post has other words now and that the reply
    will not go out unless edited, and shows those words too (before: the words now alone, as
    if the reply answered them). Edited again, the reply answers them and says nothing more."""
    gw = pages.gateway
    parent = await held_post(pages, "Launch on Monday")
    reply = await gw.submit("carol", "cosigned", "Doors open at nine", reply_to_post=parent["id"])
    status, edited = await gw.call("carol", "PATCH", f"/v1/posts/{parent['id']}", {"text": "Launch on Friday"})
    assert status == 200, edited
    bob = await pages.person("bob")
    _, queue = await bob.get("/queue")
    status, own = await bob.get(f"/posts/{reply['id']}")
    assert status == 200
    for card in (re.search(rf'<article[^>]*data-post="{reply["id"]}".*?</article>', queue, re.DOTALL), own):
        card = card.group(0) if isinstance(card, re.Match) else card
        assert card, queue
        assert shown_under(card, "Words it answers") == ["Launch on Monday"]
        assert shown_under(card, "Changed since") == [
            "The post it answers has changed since (now version 2): this reply will not go out unless its "
            "author edits it."]
        assert shown_under(card, "Its words now") == [edited["display_text"]]
        assert "Launch on Friday" in edited["display_text"]

    status, again = await gw.call("carol", "PATCH", f"/v1/posts/{reply['id']}", {"text": "Doors open at ten"})
    assert status == 200, again
    _, own = await bob.get(f"/posts/{reply['id']}")
    assert shown_under(own, "Words it answers") == [edited["display_text"]]
    assert shown_under(own, "Changed since") == shown_under(own, "Its words now") == []
