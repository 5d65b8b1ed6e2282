"""What an approver's page shows of a held post: everything of it that goes out, not its words
alone. An approval on the queue is for the version shown, so the content warning, who sees the
post, what it replies to, and each picture with its alt text are shown with the words; an
author's picture or warning no approver was shown would otherwise go out on their approval."""

from __future__ import annotations

import contextlib
import html
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

from gateway.appkeys import PEOPLE
from tests.audit.logtools import Attacker
from tests.clients.test_media_update import PNG, _cosigned_on_mastodon
from tests.clients.world import World
from tests.pages.conftest import Pages, password_of


def _card(page: str, post_id: str) -> str:
    """The HTML of one post's card on a page."""
    found = re.search(rf'<article[^>]*data-post="{post_id}".*?</article>', page, re.DOTALL)
    assert found is not None, page
    return found.group(0)


@contextlib.asynccontextmanager
async def _bob_signed_in(world: World) -> AsyncIterator[Any]:
    """Bob, a co-signer, signed in to the pages; his browser's sessions closed after."""
    await world.gateway.app[PEOPLE].add("bob", password_of("bob"), email="bob@example.org")
    pages = Pages(gateway=world.gateway, base=world.base)
    try:
        yield await pages.person("bob")
    finally:
        for session in pages._sessions:
            await session.close()


async def test_an_approver_sees_the_warning_the_audience_the_reply_and_each_picture_with_its_alt_text(
    world: World, policy_dir: Path,
) -> None:
    """Alice's app sends a held post with a content warning, direct visibility, a reply and a
    picture whose alt text is hers; bob's queue card shows each of them beside the words, and
    the picture is the very file that goes out."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    parent = await world.run(api.status_post, "Who is our mascot?")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat <b>asleep</b>")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media], spoiler_text="Cats inside",
                             visibility="direct", language="de", sensitive=True, in_reply_to_id=parent.id)
    assert status.byline.state == "held"
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        card = _card(page, status.id)
        words = html.unescape(re.sub(r"<[^>]+>", " ", card))
        for shown in ("Our mascot", "Content warning", "Cats inside", "direct", "de", "sensitive",
                      "A cat <b>asleep</b>"):
            assert shown in words, (shown, card)
        assert f'href="/posts/{parent.id}"' in card, card
        [src] = re.findall(r'<img[^>]*src="([^"]+)"', card)
        assert re.search(r'<img[^>]*alt="A cat &lt;b&gt;asleep&lt;/b&gt;"', card), card
        async with bob.session.get(bob.base + src) as resp:
            assert (resp.status, await resp.read()) == (200, PNG)
        _, post_page = await bob.get(f"/posts/{status.id}")
        assert "Cats inside" in _card(post_page, status.id)


async def test_an_approver_sees_what_an_edit_changed_besides_the_words(world: World, policy_dir: Path) -> None:
    """Alice's held post edited twice with the same words: its content warning and whether its
    picture is marked sensitive (version 2), then its picture's alt text (version 3). Bob's card
    says what version 3 changed (the alt text, as it was and as it is), and the post's page what
    each version changed."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media], spoiler_text="Cats inside")
    await world.run(api.status_update, status.id, "Our mascot", media_ids=[media.id], spoiler_text="Cats, asleep",
                    sensitive=True)
    await world.run(api.media_update, media, description="A ginger cat, asleep")
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        card = _card(page, status.id)
        changed = re.search(r'<dl class="option-changes">.*?</dl>', card, re.DOTALL)
        assert changed is not None, card
        assert _words(changed.group(0)) == "Alt text of picture 1 was A cat , now A ginger cat, asleep"
        _, post_page = await bob.get(f"/posts/{status.id}")
        steps = re.findall(r'<h3>Version (\d+)</h3>(.*?)</li>', post_page, re.DOTALL)
        found = {int(n): re.search(r'<dl class="option-changes">.*?</dl>', step, re.DOTALL) for n, step in steps}
        assert {n: _words(m.group(0)) if m else None for n, m in found.items()} == {
            3: "Alt text of picture 1 was A cat , now A ginger cat, asleep",
            2: "Content warning was Cats inside , now Cats, asleep Media added: marked sensitive (hidden until opened)",
            1: None,
        }


def _words(fragment: str) -> str:
    """An HTML fragment's words, as one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", fragment)).split())


async def test_an_approver_sees_where_a_picture_is_cropped_and_that_a_new_crop_changed_it(
    world: World, policy_dir: Path,
) -> None:
    """Alice moves her held picture's focal point: bob's card says where previews crop it now,
    and that version 2 changed it from where it was. Before, the crop was shown nowhere, though
    it decides what of the picture the public sees."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat", focus=(0.0, 0.0))
    status = await world.run(api.status_post, "Our mascot", media_ids=[media])
    await world.run(api.media_update, media, focus=(-1, 1))
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        card = _card(page, status.id)
        caption = re.search(r"<figcaption>.*?</figcaption>", card, re.DOTALL)
        assert caption is not None, card
        assert _words(caption.group(0)) == "Picture 1, alt text: A cat ; previews crop it around: top left (x -1, y 1)"
        changed = re.search(r'<dl class="option-changes">.*?</dl>', card, re.DOTALL)
        assert changed is not None, card
        assert _words(changed.group(0)) == (
            "Focal point of picture 1 was middle centre (x 0, y 0) , now top left (x -1, y 1)")


async def test_an_approver_sees_when_the_writer_asked_for_the_post_to_go_out(
    world: World, policy_dir: Path,
) -> None:
    """A held post its writer asked to go out at a time of their choosing: bob's card says when,
    as the approval is for it too (a post approved for now may be asked for a later moment).
    Before, the card showed no time until the post was approved."""
    await _cosigned_on_mastodon(world, policy_dir)
    at = world.gateway.clock.now() + timedelta(days=3)
    post = await world.gateway.submit("alice", "mastoco", "Launch day", publish_at=at.isoformat())
    assert post["state"] == "held", post
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        card = _card(page, post["id"])
        asked = re.search(r'<span class="asked-time">.*?</span>', card, re.DOTALL)
        assert asked is not None, card
        assert f'datetime="{at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ}"' in asked.group(0), asked.group(0)


async def test_an_approval_of_a_version_gone_by_shows_what_changed_besides_the_words(
    world: World, policy_dir: Path,
) -> None:
    """Bob reads alice's held post; her app then changes its content warning (version 2) and its
    picture's alt text (version 3). Bob's approval of version 1 is refused (409), nothing is
    approved, and the page shows version 3 with all that changed since version 1, not the words
    alone (before, it showed nothing of the post)."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    status = await world.run(api.status_post, "Our mascot", media_ids=[media], spoiler_text="Cats inside")
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        assert 'name="version" value="1"' in _card(page, status.id)
        await world.run(api.status_update, status.id, "Our mascot", media_ids=[media.id], spoiler_text="Dogs inside")
        await world.run(api.media_update, media, description="A dog")
        before = await world.gateway.snapshot()
        status_code, page, _ = await bob.post(f"/posts/{status.id}/approve", {"version": "1"})
        assert status_code == 409
        assert await world.gateway.snapshot() == before
        card = _card(page, status.id)
        changed = re.search(r'<dl class="option-changes">.*?</dl>', card, re.DOTALL)
        assert changed is not None, card
        assert _words(changed.group(0)) == ("Content warning was Cats inside , now Dogs inside "
                                            "Alt text of picture 1 was A cat , now A dog")
        assert "What changed since version 1" in card and 'name="version" value="3"' in card


async def test_an_approver_sees_whose_status_on_the_platform_a_reply_answers_with_a_link_to_it(
    world: World, policy_dir: Path,
) -> None:
    """Alice's app answers a status of someone else's on the instance (``in_reply_to_id``, an id
    Byline did not give): bob's card says whose status it answers and links to it, as the
    instance gave its address when Byline checked the reply could be made. Before, the card said
    only the status's number, and bob approved words without seeing what they answer (a "well
    said!" under a post he would never endorse). An edit keeps it, and it is the approved
    version's: it goes out answering that very status."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    theirs = world.upstream.seed_status(carl, "Something bob would never endorse",
                                        created_at=world.gateway.clock.now())
    api = await world.client("alice", "mastoco")
    status = await world.run(api.status_post, "Well said!", in_reply_to_id=theirs.id)
    assert status.byline.state == "held"
    await world.run(api.status_update, status.id, "Well said, carl!")
    url = f"https://{world.upstream.host}/@carl/{theirs.id}"
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        card = _card(page, status.id)
        replies = re.search(r"<dt>Replies to</dt><dd>(.*?)</dd>", card, re.DOTALL)
        assert replies is not None, card
        assert f'href="{url}"' in replies.group(1), replies.group(1)
        assert "@carl" in html.unescape(re.sub(r"<[^>]+>", " ", replies.group(1))), replies.group(1)
        code, _, _ = await bob.post(f"/posts/{status.id}/approve", {"version": "2"})
        assert code in (200, 303), code
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    [sent] = [s for s in world.upstream.statuses() if s.text.startswith("Well said, carl!")]
    assert sent.in_reply_to_id == theirs.id


async def test_an_approver_sees_where_a_reply_to_a_post_already_out_answers_it(
    world: World, policy_dir: Path,
) -> None:
    """Alice's app answers the account's own status that went out through Byline, by the id
    Byline gave it: bob's card links to that status where it is on the platform, as Byline
    recorded it published. Before, the card said only the platform's number for it."""
    await _cosigned_on_mastodon(world, policy_dir)
    api = await world.client("alice", "mastoco")
    parent = await world.run(api.status_post, "Our new office opens today")
    code, _ = await world.gateway.act("dave", parent.id, "approve")
    assert code == 200
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    out = await world.gateway.get("alice", parent.id)
    assert out["state"] == "published" and out["remote"]["url"], out
    status = await world.run(api.status_post, "Come and see it", in_reply_to_id=parent.id)
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        replies = re.search(r"<dt>Replies to</dt><dd>(.*?)</dd>", _card(page, status.id), re.DOTALL)
        assert replies is not None, page
        assert f'href="{html.escape(out["remote"]["url"])}"' in replies.group(1), replies.group(1)


async def test_an_approver_sees_what_a_reply_sent_through_the_native_api_answers(
    world: World, policy_dir: Path,
) -> None:
    """Alice answers carl's status on the instance by its id (``reply_to``), and the account's
    own status out already by Byline's id (``reply_to_post``), through the native API: bob's
    card says whose status each answers and links to it, as for a Mastodon app's reply; an id
    the instance has no status under is a 404 with nothing stored. Before, the cards said only
    the platform's number, and the unknown id was taken."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    theirs = world.upstream.seed_status(carl, "Something bob would never endorse",
                                        created_at=world.gateway.clock.now())
    parent = await world.gateway.submit("alice", "mastoco", "Our new office opens today")
    code, _ = await world.gateway.act("dave", parent["id"], "approve")
    assert code == 200
    world.gateway.clock.advance(timedelta(minutes=2))
    await world.gateway.tick()
    out = await world.gateway.get("alice", parent["id"])
    assert out["state"] == "published" and out["remote"]["url"], out
    to_carl = await world.gateway.submit("alice", "mastoco", "Well said!", reply_to=theirs.id)
    to_ours = await world.gateway.submit("alice", "mastoco", "Come and see it", reply_to_post=parent["id"])
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        shown = []
        for post in (to_carl, to_ours):
            replies = re.search(r"<dt>Replies to</dt><dd>(.*?)</dd>", _card(page, post["id"]), re.DOTALL)
            assert replies is not None, page
            shown.append(replies.group(1))
        assert f'href="https://{world.upstream.host}/@carl/{theirs.id}"' in shown[0], shown[0]
        assert "@carl" in html.unescape(re.sub(r"<[^>]+>", " ", shown[0])), shown[0]
        assert f'href="{html.escape(out["remote"]["url"])}"' in shown[1], shown[1]
    before = await world.gateway.snapshot()
    code, body = await world.gateway.call("alice", "POST", "/v1/posts",
                                          {"account": "mastoco", "text": "Hm", "reply_to": "9" * 18})
    assert (code, body["error"]) == (404, "not_found"), body
    assert await world.gateway.snapshot() == before
    # Bob approves there but may not post: refused as he is, not told what the instance holds.
    code, body = await world.gateway.call("bob", "POST", "/v1/posts",
                                          {"account": "mastoco", "text": "Hm", "reply_to": "9" * 18})
    assert (code, body["error"]) == (403, "forbidden"), body


def _answered(card: str) -> str:
    """What a card shows under "Words it answers", as its reader reads it."""
    found = re.search(r"<dt>Words it answers</dt><dd><bdi>(.*?)</bdi></dd>", card, re.DOTALL)
    assert found is not None, card
    return html.unescape(found.group(1))


async def test_an_approver_reads_the_words_of_the_status_a_reply_answers(world: World, policy_dir: Path) -> None:
    """Alice's app (Mastodon.py) answers carl's status on the instance, whose words carry markup
    as text, two paragraphs and a long link: bob's card and the post's page show them as the
    instance's readers read them, plain text, kept as the reply was written: carl's later edit
    is not shown, the instance is not asked as the card is shown, and alice's edit of her reply
    keeps them. A status longer than Byline keeps is cut, saying so. Before: whose status and
    its address only, and bob approved words without reading what they answer."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    link = "https://example.org/" + "a" * 40
    theirs = world.upstream.seed_status(carl, f"Say <b>no</b> & mean it\nto the bypass\n\nRead {link}",
                                        created_at=world.gateway.clock.now())
    long = world.upstream.seed_status(carl, "word " * 1000, created_at=world.gateway.clock.now())
    api = await world.client("alice", "mastoco")
    status = await world.run(api.status_post, "Well said!", in_reply_to_id=theirs.id)
    longer = await world.run(api.status_post, "Too long; did read", in_reply_to_id=long.id)
    assert (status.byline.state, longer.byline.state) == ("held", "held")
    stored = world.upstream.status(theirs.id)
    assert stored is not None
    stored.text = "Say yes to the bypass"
    path = f"/api/v1/statuses/{theirs.id}"
    asked = world.upstream.faults.count("GET", path)
    await world.run(api.status_update, status.id, "Well said, carl!")
    expected = f"Say <b>no</b> & mean it\nto the bypass\n\nRead {link}"
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        assert _answered(_card(page, status.id)) == expected
        cut = _answered(_card(page, longer.id))
        assert (len(cut), cut[:10], cut[-1]) == (2000, "word word ", "…")
        _, post_page = await bob.get(f"/posts/{status.id}")
        assert _answered(_card(post_page, status.id)) == expected
    assert world.upstream.faults.count("GET", path) == asked


async def test_a_reply_to_a_status_the_instance_cannot_show_now_is_taken_and_says_so(
    world: World, policy_dir: Path,
) -> None:
    """The instance answers 503 as Byline reads the status alice's reply answers: the reply is
    taken, as before, and bob's card says plainly that its words could not be read, and why,
    rather than show nothing of them."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    theirs = world.upstream.seed_status(carl, "Something", created_at=world.gateway.clock.now())
    world.upstream.faults.fail_next(10, 503, method="GET", path=f"/api/v1/statuses/{theirs.id}")
    api = await world.client("alice", "mastoco")
    status = await world.run(api.status_post, "Well said!", in_reply_to_id=theirs.id)
    assert status.byline.state == "held"
    world.upstream.faults.clear()
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
        assert _answered(_card(page, status.id)) == (
            "Not known: they could not be read when the reply was written (the instance answered 503). "
            "Read them on the platform before you approve.")


async def test_an_approver_reads_the_content_warning_of_what_a_reply_answers_and_the_words_of_a_boost(
    world: World, policy_dir: Path,
) -> None:
    """Alice's app (Mastodon.py) answers carl's status, which hides its words behind a content
    warning, once as carl's and once as dave's boost of it. Bob's cards show "Content warning:
    ..." before the words, as Mastodon shows it, and the answer to the boost shows carl's words
    and whose they are, saying it is dave's boost of them. Before: the words without their
    warning, and for the boost the boost's own words, none."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl, dave = (world.upstream.add_account(name, f"{name}-token") for name in ("carl", "dave"))
    now = world.gateway.clock.now()
    theirs = world.upstream.seed_status(carl, "The butler did it", created_at=now, spoiler_text="Finale <spoilers>")
    boost = world.upstream.seed_reblog(dave, theirs, created_at=now)
    api = await world.client("alice", "mastoco")
    to_status = await world.run(api.status_post, "No way", in_reply_to_id=theirs.id)
    to_boost = await world.run(api.status_post, "Thanks for sharing", in_reply_to_id=boost.id)
    url = f"https://{world.upstream.host}/@carl/{theirs.id}"
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
    for reply in (to_status, to_boost):
        assert _answered(_card(page, reply.id)) == "Content warning: Finale <spoilers>\n\nThe butler did it"
    replies_to = re.search(r"<dt>Replies to</dt><dd>(.*?)</dd>", _card(page, to_boost.id), re.DOTALL)
    assert replies_to is not None
    assert html.unescape(replies_to.group(1)) == (
        f'<a href="{url}">@dave\'s boost of @carl\'s status on the platform: {url}</a>')


async def test_a_reply_stored_before_words_were_kept_says_so_with_where_to_read_them(
    world: World, policy_dir: Path, db_url: str,
) -> None:
    """A reply to carl's status stored before Byline kept the words a reply answers (its options
    as they were written then: whose status and its address only): bob's card says plainly
    that the words were not kept and where to read them, linking there. Before: nothing, and
    bob could take the missing words for a status with none."""
    await _cosigned_on_mastodon(world, policy_dir)
    carl = world.upstream.add_account("carl", "carl-token")
    theirs = world.upstream.seed_status(carl, "Something", created_at=world.gateway.clock.now())
    api = await world.client("alice", "mastoco")
    status = await world.run(api.status_post, "Well said!", in_reply_to_id=theirs.id)
    attacker = Attacker(db_url)
    [(stored,)] = await attacker.fetch("SELECT options FROM posts WHERE id = ?", status.id)
    then = {k: v for k, v in json.loads(stored).items() if k not in ("reply_to_text", "reply_to_warning")}
    await attacker.run(("UPDATE posts SET options = ? WHERE id = ?", (json.dumps(then), status.id)))
    url = f"https://{world.upstream.host}/@carl/{theirs.id}"
    async with _bob_signed_in(world) as bob:
        _, page = await bob.get("/queue")
    found = re.search(r"<dt>Words it answers</dt><dd>(.*?)</dd>", _card(page, status.id), re.DOTALL)
    assert found is not None, _card(page, status.id)
    assert html.unescape(found.group(1)) == (
        f'<a href="{url}">Words not kept: this reply was written before Byline kept them. '
        f"Read them on the platform before you approve: {url}.</a>")
