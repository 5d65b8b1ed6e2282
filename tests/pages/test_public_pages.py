"""The public transparency page, its Atom feed of voice changes and the audit page, over HTTP on
a real socket, on both databases: only what went out shows, with its byline; markup is text."""

from __future__ import annotations

import html
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import markupsafe
import pytest

from gateway.appkeys import DB, POSTS, SETTINGS
from gateway.audit.gates import THREADGATE, gate_settings
from gateway.services.posts import Caller
from gateway.services.transparency import public_post
from gateway.storage import posts as posts_sql
from tests.conftest import write_policy
from tests.pages.conftest import Pages
from tests.pages.public_story import CANCELLED_WORDS, HELD_WORDS, HOSTILE, Story, tell

ATOM = "{http://www.w3.org/2005/Atom}"


def _card(page: str, post_id: str) -> str:
    """The article of one post on a page."""
    found = re.search(rf'<article[^>]*id="post-{post_id}".*?</article>', page, re.S)
    assert found is not None, f"post {post_id} is not on the page"
    return found.group(0)


def _words(card: str) -> str:
    """A card's text as a reader sees it: tags dropped, entities read, spaces collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", "", card)).split())


@pytest.fixture
async def story(pages: Pages) -> Story:
    """The story of tests/pages/public_story.py, told on the pages' gateway."""
    return await tell(pages.gateway)


async def test_voice_history_of_an_account_whose_tier_changed(pages: Pages, story: Story) -> None:
    """The page says who wrote for the account until when, and who since, each with its log entry."""
    status, page = await (await pages.visitor()).get("/@direct")
    assert status == 200
    lede = _words(re.search(r'<p class="lede">.*?</p>', page, re.S).group(0))  # type: ignore[union-attr]
    assert lede == "Written by its owner until 2 Jan 2026; managed by a team since 2 Jan 2026."
    voice = re.findall(r'<li class="card checked" id="voice-(\d+)"', page)
    assert len(voice) == 2
    tiers = re.findall(r'data-field="policy.tier">([^<]+)<', page)
    assert tiers == ["managed", "direct"]
    newest = _words(re.search(r'<li class="card checked" id="voice-.*?</li>', page, re.S).group(0))  # type: ignore[union-attr]
    assert "Writersbob, carol" in newest
    assert "What changed:" in newest and "tier" in newest


async def test_only_published_posts_show_with_their_bylines(pages: Pages, story: Story) -> None:
    """Each post that went out shows its words and who wrote, approved or suggested it."""
    visitor = await pages.visitor()
    _, direct = await visitor.get("/@direct")
    assert "Our first post" in _card(direct, story.first)
    assert _words(_card(direct, story.team_post)).startswith(
        f"Post {story.team_post} Written by the team now —bob Written by bob. Published 2 Jan 2026")
    _, cosigned = await visitor.get("/@cosigned")
    assert "Written by carol, approved by bob and dave." in _words(_card(cosigned, story.cosigned))
    _, managed = await visitor.get("/@managed")
    assert "Suggested by dave, adopted and written by bob." in _words(_card(managed, story.adopted))
    assert story.suggestion not in managed  # the suggestion itself never went out
    assert re.findall(r'<article[^>]*data-post="(\d+)"', direct) == [story.team_post, story.deleted,
                                                                       story.hostile, story.first]


async def test_a_deleted_post_shows_as_deleted(pages: Pages, story: Story) -> None:
    """A deleted post is a deletion: who deleted it and when, not its words."""
    _, page = await (await pages.visitor()).get("/@direct")
    card = _words(_card(page, story.deleted))
    assert card.startswith(f"Deleted post {story.deleted} Deleted by alice on 1 Jan 2026, 12:02 UTC.")
    assert "A post that was later deleted" not in page


async def test_held_and_cancelled_words_never_appear(pages: Pages, story: Story) -> None:
    """Words that never went out appear on no public page, feed or search."""
    visitor = await pages.visitor()
    seen = []
    for path in ("/@cosigned", "/@delayed", "/@cosigned/voice.atom", "/@delayed/voice.atom",
                 f"/audit?kind=post&q={story.held}", f"/audit?kind=post&q={story.cancelled}",
                 "/audit?kind=person&q=alice", "/audit?kind=person&q=bob", "/audit?kind=account&q=cosigned",
                 "/audit?kind=account&q=delayed"):
        status, body = await visitor.get(path)
        assert status == 200, path
        seen.append(body)
    everything = "\n".join(seen)
    assert HELD_WORDS not in everything
    assert CANCELLED_WORDS not in everything
    assert f'data-post="{story.held}"' not in everything
    assert f'data-post="{story.cancelled}"' not in everything


async def test_markup_in_words_and_names_is_text(pages: Pages, story: Story) -> None:
    """HTML and script in a post's words show as text; an account name with markup is a 404 page."""
    visitor = await pages.visitor()
    _, page = await visitor.get("/@direct")
    assert HOSTILE not in page
    assert str(markupsafe.escape(HOSTILE)) in _card(page, story.hostile)
    status, missing = await visitor.get("/@%3Cscript%3Ealert(1)%3C%2Fscript%3E")
    assert status == 404
    assert "<script>alert(1)" not in missing
    status, found = await visitor.get("/audit?kind=person&q=%3Cscript%3Ealert(1)%3C/script%3E")
    assert status == 200
    assert "<script>alert(1)" not in found
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in found


async def test_unknown_account_is_a_404_page(pages: Pages, story: Story) -> None:
    """An account the log never saw has no page and no feed, each answered with a page that says so."""
    visitor = await pages.visitor()
    for path in ("/@nobody", "/@nobody/voice.atom"):
        status, body = await visitor.get(path)
        assert status == 404, path
        assert 'role="alert"' in body
        assert "no account named" in body


async def test_voice_feed_is_atom(pages: Pages, story: Story) -> None:
    """The feed parses as Atom 1.0 with an id, title, updated and an entry per change, newest first."""
    async with (await pages.visitor()).session.get(pages.base + "/@direct/voice.atom") as resp:
        assert resp.status == 200
        assert resp.content_type == "application/atom+xml"
        raw = await resp.read()
    feed = ET.fromstring(raw)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated", "author"):
        assert feed.find(f"{ATOM}{name}") is not None, name
    assert feed.findtext(f"{ATOM}title") == "Who speaks for @direct"
    entries = feed.findall(f"{ATOM}entry")
    assert [e.findtext(f"{ATOM}title") for e in entries] == [
        "@direct is managed by a team (managed)", "@direct is written by its owner (direct)"]
    for entry in entries:
        for name in ("id", "title", "updated", "content"):
            assert entry.findtext(f"{ATOM}{name}"), name
        link = entry.find(f"{ATOM}link")
        assert link is not None and link.get("href", "").startswith(pages.base + "/@direct#voice-")
    assert feed.findtext(f"{ATOM}updated") == entries[0].findtext(f"{ATOM}updated")
    assert "Writers: bob, carol." in (entries[0].findtext(f"{ATOM}content") or "")
    assert len({e.findtext(f"{ATOM}id") for e in entries}) == 2


async def test_audit_finds_a_post_by_id_and_by_platform_url(pages: Pages, story: Story) -> None:
    """A post id or the post's address on its platform finds the post with its byline."""
    visitor = await pages.visitor()
    status, page = await visitor.get(f"/audit?kind=post&q={story.cosigned}")
    assert status == 200
    assert "approved by bob and dave" in _words(_card(page, story.cosigned))
    url = re.search(r'data-field="url" href="([^"]+)"', _card(page, story.cosigned)).group(1)  # type: ignore[union-attr]
    status, by_url = await visitor.get("/audit?kind=url&q=" + url.replace("#", "%23"))
    assert status == 200
    assert re.findall(r'<article[^>]*data-post="(\d+)"', by_url) == [story.cosigned]
    _, nothing = await visitor.get("/audit?kind=url&q=https://example.org/nowhere")
    assert "Nothing that went out matches." in nothing


async def test_audit_finds_posts_by_person_and_account(pages: Pages, story: Story) -> None:
    """A person's search shows what they did to each post; an account's links to its page."""
    visitor = await pages.visitor()
    _, page = await visitor.get("/audit?kind=person&q=dave")
    assert re.findall(r'<article[^>]*data-post="(\d+)"', page) == [story.adopted, story.cosigned]
    assert "dave: suggested." in _words(_card(page, story.adopted) + page.split(_card(page, story.adopted))[1][:400])
    _, account = await visitor.get("/audit?kind=account&q=@managed")
    assert '<a href="/@managed"><bdi>@managed</bdi></a>' in account
    assert re.findall(r'<article[^>]*data-post="(\d+)"', account) == [story.adopted]


async def test_audit_finds_every_act_of_a_person_by_name(pages: Pages) -> None:
    """alice, the account's owner, neither wrote nor approved two of carol's posts: she changed
    who may reply to one and deleted the other. Her search finds both, each saying what she did.
    Before: the search looked only at authors, suggesters, editors and approvers, and found
    nothing, though the log holds both acts of hers."""
    gw = pages.gateway
    out = []
    for words in ("Replies from followers only", "Out, and later taken down"):
        post = await gw.submit("carol", "cosigned", words)
        for approver in ("bob", "dave"):
            status, body = await gw.act(approver, post["id"], "approve")
            assert status == 200, body
        gw.clock.advance(timedelta(minutes=2))
        assert await gw.tick() == 1
        out.append(post["id"])
    gated, deleted = out
    posts, alice = gw.app[POSTS], Caller(user="alice")
    await posts.record_gates_changed(alice, await posts.gateable(alice, gated), collection=THREADGATE, cid=None,
                                     settings=gate_settings(THREADGATE, {"allow": []}))
    status, body = await gw.call("alice", "DELETE", f"/v1/posts/{deleted}")
    assert status == 200, body
    visitor = await pages.visitor()
    status, page = await visitor.get("/audit?kind=person&q=alice")
    assert status == 200
    assert re.findall(r'<article[^>]*data-post="(\d+)"', page) == [deleted, gated]
    assert "alice: deleted." in _words(_card(page, deleted))
    assert "alice: changed who may reply or quote." in _words(_card(page, gated))
    _, carol = await visitor.get("/audit?kind=person&q=carol")
    assert re.findall(r'<article[^>]*data-post="(\d+)"', carol) == [deleted, gated]


@pytest.mark.parametrize(("query", "message"), [
    ("kind=post&q=12ab", "A post id is made of digits only."),
    ("kind=nonsense&q=1", "Choose what to search by"),
    ("kind=post&q=", "Enter something to search for."),
    ("kind=account&q=%3Cb%3E", "An account name is letters"),
    ("kind=person&q=" + "x" * 2049, "too long"),
    ("kind=person&q=a%01b", "control characters"),
])
async def test_bad_search_gets_a_clear_error_and_changes_nothing(
    pages: Pages, story: Story, query: str, message: str
) -> None:
    """Bad search input: 422, the form again with the error announced, nothing stored changes."""
    before = (await pages.gateway.snapshot(), await pages.gateway.log_size())
    status, page = await (await pages.visitor()).get("/audit?" + query)
    assert status == 422
    alert = re.search(r'<p class="error" role="alert" id="search-error">(.*?)</p>', page, re.S)
    assert alert is not None and message in html.unescape(alert.group(1))
    assert 'aria-invalid="true"' in page
    assert (await pages.gateway.snapshot(), await pages.gateway.log_size()) == before


async def test_bad_page_cursor_is_a_clear_error(pages: Pages, story: Story) -> None:
    """A ``before`` that is no post id is refused with a page that says why."""
    status, page = await (await pages.visitor()).get("/@direct?before=abc")
    assert status == 422
    assert "must be a post id" in html.unescape(page)


async def test_pages_of_posts_are_bounded(pages: Pages, story: Story) -> None:
    """Twenty posts a page, newest first; the next page goes on from the last one shown."""
    gw = pages.gateway
    for n in range(21):
        await gw.submit("bob", "direct", f"Team post {n}")
    await gw.tick()
    visitor = await pages.visitor()
    _, first = await visitor.get("/@direct")
    ids = re.findall(r'<article[^>]*data-post="(\d+)"', first)
    assert len(ids) == 20
    older = re.search(r'<a rel="next" href="/@direct\?before=(\d+)">Older posts</a>', first)
    assert older is not None and older.group(1) == ids[-1]
    _, second = await visitor.get(f"/@direct?before={ids[-1]}")
    rest = re.findall(r'<article[^>]*data-post="(\d+)"', second)
    assert rest[-4:] == [story.team_post, story.deleted, story.hostile, story.first]
    assert not set(rest) & set(ids)
    assert len(ids) + len(rest) == 21 + 4


async def test_no_secret_or_unpublished_text_through_the_texts_the_page_uses(pages: Pages, story: Story) -> None:
    """The page's words come with the salts anyone may fetch: withheld ones stay withheld."""
    async with pages.gateway.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT idx FROM log_entries WHERE post_id = ? ORDER BY idx", story.held)
    status, body = await pages.gateway.call(None, "GET", f"/log/texts?start={rows[0]['idx']}&end={rows[0]['idx'] + 1}")
    assert status == 200
    assert body["texts"][0]["text"] is None and body["texts"][0]["salt"] is None
    for token in pages.gateway.tokens.values():
        _, page = await (await pages.visitor()).get("/@cosigned")
        assert token not in page


async def test_a_revised_post_shows_the_words_of_its_revision(pages: Pages, story: Story) -> None:
    """After a revision on its platform, a post's words are the revision's, marked with its entry."""
    async with pages.gateway.app[DB].read() as txn:
        record = await posts_sql.get_post(txn, story.first)
        rows = await txn.fetchall("SELECT idx, entry FROM log_entries WHERE post_id = ? ORDER BY idx", story.first)
    assert record is not None
    entries = [(int(r["idx"]), json.loads(bytes(r["entry"]))) for r in rows]
    revised = {**entries[0][1], "type": "post.revised", "ts": "2026-01-03T00:00:00.000000Z",
               "data": {"version": 2, "text_hash": "00" * 32}}
    texts = {i: "committed" for i, _ in entries} | {10_000: "Our first post, revised"}
    shown = public_post(replace(record, text="Our first post, revised", version=2),
                        [*entries, (10_000, revised)], texts)
    assert shown is not None
    assert (shown.text, shown.text_mark and shown.text_mark.index) == ("Our first post, revised", 10_000)
    erased = public_post(record, entries, {i: None for i, _ in entries})
    assert erased is not None and (erased.erased, erased.text, erased.text_mark) == (True, None, None)


async def test_an_account_whose_policy_was_removed_says_so(pages: Pages, story: Story) -> None:
    """Removing an account's policy file ends its voice: the page and the feed say so; its posts stay."""
    settings = pages.gateway.app[SETTINGS]
    (Path(settings.policy_dir) / "cosigned.yaml").unlink()
    assert await pages.gateway.sync_policies() == ["cosigned"]
    visitor = await pages.visitor()
    status, page = await visitor.get("/@cosigned")
    assert status == 200
    lede = _words(re.search(r'<p class="lede">.*?</p>', page, re.S).group(0))  # type: ignore[union-attr]
    assert lede == ("Co-signed by others before each post goes out until 2 Jan 2026; no longer carried by this "
                    "gateway since 2 Jan 2026. This gateway no longer posts for this account.")
    assert story.cosigned in page
    _, feed = await visitor.get("/@cosigned/voice.atom")
    titles = [t.text for t in ET.fromstring(feed).iter(f"{ATOM}title")]
    assert titles[1] == "@cosigned is no longer carried by this gateway"


ASKING = """
    account: direct
    platform: sandbox
    handle: "@alice"
    tier: direct
    owner: alice
    announce: {voice_changes: true}
"""
"""The direct account, asking for its changes of voice to be announced."""

TEAM_ASKING = ASKING.replace("tier: direct\n", "tier: managed\n").replace(
    "owner: alice\n", "owner: alice\n    writers: [bob, carol]\n")


@pytest.mark.parametrize(("then", "label"), [
    (TEAM_ASKING, "An announcement of a change of voice, written by Byline"),
    (ASKING.replace("    announce: {voice_changes: true}\n", ""),
     "An announcement of the end of the announcements of changes of voice, written by Byline"),
    (TEAM_ASKING.replace("    announce: {voice_changes: true}\n", ""),
     "An announcement of a change of voice and the end of the announcements of changes of voice, "
     "written by Byline"),
], ids=["voice", "end", "both"])
async def test_an_announcement_is_labelled_with_what_it_announces(pages: Pages, then: str, label: str) -> None:
    """The policy file's announcement is labelled with what it announces: a change of voice, the end
    of the announcements when that is all that changed, or both when one edit did both."""
    gw = pages.gateway
    directory = Path(gw.app[SETTINGS].policy_dir)
    write_policy(directory, "direct", ASKING)
    assert await gw.sync_policies() == ["direct"]
    write_policy(directory, "direct", then)
    assert await gw.sync_policies() == ["direct"]
    assert await gw.tick() == 1
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT id FROM posts WHERE author = 'policy-file'")
    [post_id] = [str(r["id"]) for r in rows]
    _, page = await (await pages.visitor()).get("/@direct")
    assert (f"{label} from the account's policy file (version 3): no one approved it, the policy an admin "
            "wrote is its authorisation.") in _words(_card(page, post_id))
