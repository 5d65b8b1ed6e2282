"""The queue, post and account pages in a real headless Chromium, as people use them: a co-signer
approves and the post goes out, an author cancels in the cooling-off window, a writer adopts a
suggestion, and the queue shows a new held post without a reload. Each page passes axe.

With ``BYLINE_SCREENSHOTS=1`` the co-signer's queue is saved to ``docs/screenshots/queue.png``
(for the README); a plain run writes nothing in the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, Locator, Page, Response, expect

from gateway.appkeys import APPENDER, LIVE, PEOPLE
from gateway.http.pages import queue as queue_http
from gateway.services.people import People
from tests.browser.axe import assert_accessible
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import TEST_POLICIES, finding_the_database_gone, write_policy
from tests.pages.conftest import Pages, pages, password_of

__all__ = ["pages"]  # the fixture, for these tests too

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / "queue.png"


async def signed_in(browser: Browser, pages: Pages, name: str, problems: list[str], *,
                    clock: bool = False) -> Page:
    """A page of ``name``'s, signed in through the sign-in form, on their queue. With ``clock``,
    the page's timers run on a clock of Playwright's (running as a real one does), which
    :func:`until` moves on."""
    page = await browser.new_page()
    if clock:
        await page.clock.install()

    def console(message: ConsoleMessage) -> None:
        # Nothing on these pages may break their Content-Security-Policy, nor fail in its script.
        if "Content Security Policy" in message.text:
            problems.append(message.text)

    def answered(response: Response) -> None:
        # Every file a page asks for is there (Chromium asks for a favicon of its own accord).
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            problems.append(f"{response.status} {response.url}")

    page.on("console", console)
    page.on("response", answered)
    page.on("pageerror", lambda error: problems.append(str(error)))
    await page.goto(pages.base + "/queue")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Password").fill(password_of(name))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
    return page


async def until(page: Page, shown: Callable[[], Awaitable[bool]], *, most_ms: int = 120_000) -> None:
    """Move the page's clock on a second at a time, firing the page's timers at once rather than
    waiting them out, until ``shown``; fail once ``most_ms`` of the page's time has gone by."""
    for _ in range(most_ms // 1000):
        if await shown():
            return
        await page.clock.run_for(1000)
        await asyncio.sleep(0.05)  # what the timers started (a fetch, a stream) gets under way
    raise AssertionError(f"not shown within {most_ms} ms of the page's time")


async def live_says(live: Locator, text: str) -> bool:
    """Whether the live status says ``text`` now."""
    return (await live.text_content() or "").strip() == text


def card(page: Page, author: str, account: str) -> Locator:
    """The card of a post by ``author`` on ``account``."""
    return page.get_by_role("article", name=f"Post by {author} on @{account}")


async def test_a_cosigner_approves_and_the_post_goes_out(browser: Browser, pages: Pages, tmp_path: Path) -> None:
    """dave approved already; bob signs in, reads the held post as it will appear and what
    changed since its first version, and approves it; the publisher sends it to the sandbox
    timeline with its disclosure."""
    gw = pages.gateway
    post = await gw.submit("carol", "cosigned", "We launch on Monday at noon")
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}", {"text": "We launch on Tuesday at noon"})
    assert status == 200
    status, _ = await gw.act("dave", post["id"], "approve")
    assert status == 200
    # What else a queue holds, for the picture: a suggestion and a post in its cooling-off window.
    await gw.submit("dave", "managed", "Thank the volunteers on Friday")
    await gw.submit("bob", "delayed", "Slides from today's talk are up")
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    held = page.get_by_role("article", name="Post by carol on @cosigned")
    await expect(held.locator(".text").first).to_have_text("We launch on Tuesday at noon\n\n—carol")
    await expect(held.locator("del")).to_have_text("Monday")
    await expect(held.locator("ins")).to_have_text("Tuesday")
    await expect(held).to_contain_text("Approvals of this version: 1 of 2, by dave.")
    await assert_accessible(page)
    await page.set_viewport_size({"width": 800, "height": 1000})
    shot = tmp_path / "queue.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if SCREENSHOTS:
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)

    await held.get_by_role("button", name="Approve version 2").click()
    await expect(page.get_by_role("status").filter(has_text="You approved the post.")).to_be_visible()
    assert (await gw.get("carol", post["id"]))["state"] == "scheduled"
    gw.clock.advance(timedelta(minutes=2))
    assert await gw.tick() == 1
    assert [p["text"] for p in await gw.timeline("cosigned")] == ["We launch on Tuesday at noon\n\n—carol"]

    await page.goto(pages.base + f"/posts/{post['id']}")
    await expect(page.get_by_role("heading", level=1)).to_contain_text(f"Post {post['id']}")
    await expect(page.get_by_role("table")).to_contain_text("published")
    await assert_accessible(page)
    assert problems == []


async def test_an_author_cancels_in_the_cooling_off_window(browser: Browser, pages: Pages) -> None:
    """bob sees his delayed post counting down, cancels it, and it never goes out."""
    gw = pages.gateway
    post = await gw.submit("bob", "delayed", "Second thoughts coming")
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    mine = card(page, "bob", "delayed")
    countdown = mine.locator("time.countdown")
    await expect(countdown).to_have_text("9 min 59 s", timeout=3000)  # the script ticks it down
    await mine.get_by_role("button", name="Cancel this post").click()
    await expect(page.get_by_role("status").filter(has_text="You cancelled the post.")).to_be_visible()
    await expect(page.get_by_role("article")).to_have_count(0)
    assert (await gw.get("bob", post["id"]))["state"] == "cancelled"
    gw.clock.advance(timedelta(minutes=11))
    await gw.tick()
    assert await gw.timeline("delayed") == []
    assert problems == []


async def test_a_writer_adopts_a_suggestion(browser: Browser, pages: Pages) -> None:
    """carol adopts the owner's suggestion on the managed account; it goes out crediting both.
    The account page she reaches from her queue passes axe."""
    gw = pages.gateway
    await gw.submit("dave", "managed", "Thank you all for coming")
    problems: list[str] = []
    page = await signed_in(browser, pages, "carol", problems)
    suggestion = card(page, "dave", "managed")
    await expect(suggestion).to_contain_text("Thank you all for coming")
    await suggestion.get_by_role("button", name="Adopt").click()
    await expect(page.get_by_role("status").filter(has_text="You adopted the suggestion")).to_be_visible()
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("managed")] == [
        "Thank you all for coming\n\n—carol, suggested by dave"]

    await page.get_by_role("link", name="@managed", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("@managed")
    await expect(page.locator("dl.policy")).to_contain_text("bob, carol")
    await assert_accessible(page)
    assert problems == []


async def test_the_queue_shows_a_new_held_post_without_a_reload(browser: Browser, pages: Pages) -> None:
    """bob's queue is open and empty; carol submits through the API; the post appears in his
    queue and the change is announced, with the page never reloaded."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.2
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    await expect(page.get_by_role("article")).to_have_count(0)
    await page.evaluate("() => { window.stillTheSamePage = true; }")
    await page.wait_for_timeout(300)  # the stream is open
    await gw.submit("carol", "cosigned", "Fresh from the API")
    fresh = card(page, "carol", "cosigned")
    await expect(fresh).to_contain_text("Fresh from the API", timeout=10_000)
    await expect(page.locator("#live-status")).to_contain_text("Your queue changed.")
    await expect(page.locator("#live-status")).to_contain_text("Held for your approval (1)")
    assert await page.evaluate("() => window.stillTheSamePage") is True
    await fresh.get_by_role("button", name="Approve version 1").click()
    await expect(page.get_by_role("status").filter(has_text="You approved the post.")).to_be_visible()
    assert problems == []


async def test_the_queue_says_when_its_live_updates_are_cut_off(
    browser: Browser, pages: Pages, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bob's queue is open when Byline's database goes: the page says its list may be out of
    date (and stays accessible), keeps trying while reconnects are refused, and once the
    database is back reads the list again, showing a post held meanwhile, with no reload.
    Before: the stream kept sending keepalives and the page looked live over the outage."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.2
    monkeypatch.setattr(queue_http, "KEEPALIVE_SECONDS", 0.2)  # the outage met at the next keepalive: soon
    monkeypatch.setattr(queue_http, "RETRY_MILLISECONDS", 200)  # the browser's own reconnect: soon
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems, clock=True)
    await page.evaluate("() => { window.stillTheSamePage = true; }")
    await page.wait_for_timeout(300)  # the stream is open
    live = page.locator("#live-status")
    with monkeypatch.context() as patched:
        patched.setattr(People, "session", finding_the_database_gone())
        await expect(live).to_contain_text("Live updates are disconnected: this list may be out of date.")
        await assert_accessible(page)
        # The browser's own reconnect (after the stream's retry) is refused: the page tries again.
        async with page.expect_response(lambda r: r.url.endswith("/queue/events") and r.status == 503,
                                        timeout=15_000):
            pass
        held = await gw.submit("carol", "cosigned", "Held while the database was away")
    # The page tries again after its own wait (5 s, then longer): its clock is moved on.
    await until(page, card(page, "carol", "cosigned").is_visible)
    await expect(card(page, "carol", "cosigned")).to_contain_text(held["text"])
    await expect(live).to_contain_text("Live updates are back. Held for your approval (1)")
    assert await page.evaluate("() => window.stillTheSamePage") is True
    # Refused while the database was away: the stream, and the session check the page then asks.
    assert [p for p in problems if not p.startswith("503 ") or not p.endswith(("/queue/events", "/session"))] == []


async def test_a_queue_whose_session_ended_while_cut_off_stops_reconnecting_and_offers_sign_in(
    browser: Browser, pages: Pages, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """bob's queue is open when Byline's database goes, and while the page is cut off his
    session ends (his password changed elsewhere). Once the database is back, the page's
    reconnect is refused 401: the page asks the session check, says he was signed out with a
    link to sign in again, and stops reconnecting; the link signs him back in to his queue.
    Before: an EventSource cannot tell a 401 from a 503, so the page reconnected for ever, up
    to once a minute, saying it was trying."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.2
    monkeypatch.setattr(queue_http, "KEEPALIVE_SECONDS", 0.2)
    monkeypatch.setattr(queue_http, "RETRY_MILLISECONDS", 200)
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems, clock=True)
    await page.evaluate("() => { window.stillTheSamePage = true; }")
    await page.wait_for_timeout(300)  # the stream is open
    live = page.locator("#live-status")
    streams: list[int] = []
    asked: list[tuple[str, int]] = []  # the stream's answers and the session check's, in order
    page.on("response", lambda r: streams.append(r.status) if r.url.endswith("/queue/events") else None)
    page.on("response", lambda r: asked.append((r.url.rsplit("/", 1)[-1], r.status))
            if r.url.endswith(("/queue/events", "/session")) else None)
    with monkeypatch.context() as patched:
        patched.setattr(People, "session", finding_the_database_gone())
        await expect(live).to_contain_text("Live updates are disconnected: this list may be out of date.")
        async with page.expect_response(lambda r: r.url.endswith("/queue/events") and r.status == 503,
                                        timeout=15_000):
            pass
        await gw.app[PEOPLE].set_password("bob", "a-new-password-for-bob", appender=gw.app[APPENDER])
    signed_out = "You were signed out. Sign in again to see your queue."
    await until(page, lambda: live_says(live, signed_out))
    await expect(live).to_have_text(signed_out)
    # What told the page: a reconnect refused 401, or, where the database came back between a
    # refused reconnect (503) and the session check the page asks after it, that check's 401.
    assert asked[-1] in (("events", 401), ("session", 401)), asked
    tried = len(streams)
    await page.clock.run_for(61_000)  # past the longest the page would have waited to try again
    await asyncio.sleep(1)  # time for a stream it opened to be answered
    assert len(streams) == tried, streams
    await expect(live).to_have_text(signed_out)
    assert await page.evaluate("() => window.stillTheSamePage") is True
    await assert_accessible(page)

    await live.get_by_role("link", name="Sign in again").click()
    await page.get_by_label("Your name").fill("bob")
    await page.get_by_label("Password").fill("a-new-password-for-bob")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
    refused = {"503 " + pages.base + "/queue/events", "401 " + pages.base + "/queue/events",
               "503 " + pages.base + "/session", "401 " + pages.base + "/session"}
    assert [p for p in problems if p not in refused] == []


async def test_an_edit_made_while_a_cosigner_reads_is_not_put_under_their_click(browser: Browser, pages: Pages) -> None:
    """bob reads version 1 of carol's held post; carol edits it; bob clicks the Approve button of
    the card he read. Nothing is approved: he is told the post changed since he read it, and
    shown its new words with what changed, and approves those (before, the live update had
    swapped version 2's card in under his pointer, and his click approved words he was never
    shown; and then the refusal showed no words, only a link away)."""
    gw = pages.gateway
    gw.app[LIVE].interval = 0.2
    post = await gw.submit("carol", "cosigned", "We launch on Monday at noon")
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    held = card(page, "carol", "cosigned")
    await expect(held.locator(".text").first).to_have_text("We launch on Monday at noon\n\n—carol")
    await page.wait_for_timeout(300)  # the stream is open
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}", {"text": "We are all fired"})
    assert status == 200
    await expect(page.locator("#live-status")).to_contain_text("Your queue changed.", timeout=10_000)
    await held.get_by_role("button", name=re.compile(r"^Approve version")).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("This did not go through")
    await expect(page.locator("main")).to_contain_text("This post changed since you read it: you saw version 1")
    assert (await gw.get("carol", post["id"]))["approvals_needed"] == 2
    now = card(page, "carol", "cosigned")
    await expect(now.locator(".text").first).to_have_text("We are all fired\n\n—carol")
    await expect(now.locator(".diff del")).to_have_text(["launch", "on", "Monday at noon"])
    await expect(now.locator(".diff ins")).to_have_text(["are", "all", "fired"])
    await assert_accessible(page)
    await now.get_by_role("button", name="Approve version 2").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")
    assert [(a["approver"], a["version"]) for a in (await gw.get("carol", post["id"]))["approvals"]] == [("bob", 2)]
    assert problems == ["409 " + pages.base + f"/posts/{post['id']}/approve"]


@contextlib.asynccontextmanager
async def another_origin(form_of: Callable[[str], str]) -> AsyncIterator[TestServer]:
    """A site of another origin (127.0.0.1, on a port of its own): its page at ``/{name}`` holds
    ``form_of(name)``, a form it submits as it loads."""

    async def hostile(request: web.Request) -> web.Response:
        return web.Response(content_type="text/html", text=(
            f"<!doctype html><title>Cats</title>{form_of(request.match_info['name'])}"
            "<script>document.forms[0].submit()</script>"))

    app = web.Application()
    app.router.add_get("/{name}", hostile)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield server
    finally:
        await server.close()


async def test_another_site_cannot_sign_a_person_out(browser: Browser, pages: Pages) -> None:
    """A page on another site posts a form to /signout as bob's browser loads it: bob stays signed
    in (before, his Lax cookie stayed home, the gateway saw no session, asked for no CSRF value
    and told the browser to forget the cookie: any site could sign its visitors out)."""

    form = f'<form method="post" action="{pages.base}/signout"><input type="hidden" name="csrf" value="guess"></form>'
    async with another_origin(lambda _name: form) as server:
        problems: list[str] = []
        page = await signed_in(browser, pages, "bob", problems)
        # localhost is another site than 127.0.0.1 (SameSite looks at the host, not the port).
        await page.goto(str(server.make_url("/signout")).replace("127.0.0.1", "localhost"))
        await page.wait_for_url(f"{pages.base}/**")
        await page.goto(pages.base + "/queue")
        await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")


async def test_a_page_of_another_origin_cannot_approve_or_reject_as_a_cosigner(browser: Browser, pages: Pages) -> None:
    """bob, signed in, opens pages of another origin that post Approve and Reject forms for a held
    post, with its version and a guessed CSRF value. From another site (localhost) his Lax
    cookie stays home and the gateway asks him to sign in; from the same site on another port
    (127.0.0.1, as a sibling app on his gateway's host would be) the cookie goes with the form,
    and the CSRF value refuses it (403). Either way nothing is decided, and he is still signed in."""
    gw = pages.gateway
    post = await gw.submit("carol", "cosigned", "We launch on Monday")
    forms: dict[str, str] = {"approve": "", "reject": '<input type="hidden" name="reason" value="no">'}

    def form(act: str) -> str:
        return (f'<form method="post" action="{pages.base}/posts/{post["id"]}/{act}">'
                '<input type="hidden" name="csrf" value="guess"><input type="hidden" name="version" value="1">'
                f"{forms[act]}</form>")

    async with another_origin(form) as server:
        problems: list[str] = []
        page = await signed_in(browser, pages, "bob", problems)
        before = await gw.snapshot()
        for host in ("localhost", "127.0.0.1"):
            for act in forms:
                async with page.expect_response(f"{pages.base}/posts/{post['id']}/{act}") as sent:
                    await page.goto(str(server.make_url(f"/{act}")).replace("127.0.0.1", host))
                answer = await sent.value
                await page.wait_for_url(f"{pages.base}/**")
                if host == "127.0.0.1":
                    assert answer.status == 403, (act, answer.status)
                    await expect(page.locator("main")).to_contain_text("was not sent from a page of this gateway")
                else:  # no session came with it: to the sign-in page (which, signed in, goes on home)
                    assert (answer.status, answer.headers["location"]) == (303, "/signin?next=/"), act
        assert await gw.snapshot() == before
        await page.goto(pages.base + "/queue")
        await expect(page.get_by_role("heading", level=1)).to_have_text("My queue")


async def test_an_approver_taken_off_while_the_queue_is_open_is_refused(
    browser: Browser, pages: Pages, policy_dir: Path,
) -> None:
    """bob's queue shows carol's held post; a policy reload takes him off its approvers; he
    clicks the Approve button still on his screen. Nothing is approved: the page says the post
    is out of his reach and why it may be (before, it said only "no post" and the post's id,
    of a post he had just read), and his queue no longer shows it."""
    gw = pages.gateway
    post = await gw.submit("carol", "cosigned", "We launch on Monday")
    problems: list[str] = []
    page = await signed_in(browser, pages, "bob", problems)
    held = card(page, "carol", "cosigned")
    await expect(held.locator(".text").first).to_have_text("We launch on Monday\n\n—carol")
    write_policy(policy_dir, "cosigned", TEST_POLICIES["cosigned"].replace("from: [bob, carol, dave]",
                                                                          "from: [carol, dave, erin]"))
    assert await gw.sync_policies() == ["cosigned"]
    before = await gw.snapshot()
    await held.get_by_role("button", name="Approve version 1").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("This did not go through")
    await expect(page.get_by_role("alert")).to_have_text(
        "There is no such post among those you may act on: it is gone, or a change of its account's policy "
        "took your role on it away.")
    assert await gw.snapshot() == before
    assert (await gw.get("carol", post["id"]))["approvals_needed"] == 2
    await assert_accessible(page)
    await page.goto(pages.base + "/queue")
    await expect(card(page, "carol", "cosigned")).to_have_count(0)
    assert problems == ["404 " + pages.base + f"/posts/{post['id']}/approve"]


async def test_an_edit_saved_after_the_post_moved_on_keeps_both_texts(browser: Browser, pages: Pages) -> None:
    """carol opens Edit… on her held post and types; meanwhile her app makes the post version 2;
    she saves. Nothing is saved over version 2: the page says the post changed since she read
    it, shows version 2 as it is and the text she typed, and passes axe (before, her text
    became version 3 and version 2's change was lost unsaid)."""
    gw = pages.gateway
    post = await gw.submit("carol", "cosigned", "We launch on Monday")
    problems: list[str] = []
    page = await signed_in(browser, pages, "carol", problems)
    mine = card(page, "carol", "cosigned")
    await mine.get_by_text("Edit…").click()
    await mine.get_by_label("New text").fill("We launch on Monday at noon")
    status, _ = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}", {"text": "We launch on Monday, not Sunday"})
    assert status == 200
    await mine.get_by_role("button", name="Save a new version").click()
    await expect(page.get_by_role("alert")).to_contain_text("you edited version 1, and it is now at version 2")
    now = card(page, "carol", "cosigned")
    await expect(now.locator(".text").first).to_have_text("We launch on Monday, not Sunday\n\n—carol")
    await expect(page.locator("main > .text")).to_have_text("We launch on Monday at noon")
    post_now = await gw.get("carol", post["id"])
    assert (post_now["version"], post_now["text"]) == (2, "We launch on Monday, not Sunday")
    await assert_accessible(page)
    assert problems == ["409 " + pages.base + f"/posts/{post['id']}/edit"]
