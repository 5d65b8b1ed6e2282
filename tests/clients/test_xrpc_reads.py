"""getAuthorFeed and getPosts for an account with no PDS (the sandbox), answered from Byline's own
record of what it published, read with the real ``atproto`` SDK (which checks the lexicons' shapes)."""

from __future__ import annotations

import pytest
from atproto import models
from atproto_client.exceptions import BadRequestError

from adapters.bluesky import fitting_facets, link_facets, post_record, record_cid
from gateway.appkeys import PLATFORMS
from gateway.services.announcements import record_url
from tests.clients.test_atproto_client import POST, Sdk, clock, gw, post_for, run, sdk, session, xrpc
from tests.conftest import Gateway

__all__ = ["clock", "gw", "sdk"]  # the fixtures, shared with the SDK's tests

DID = "did:web:direct.byline.local"
HANDLE = "direct.byline.local"
LIMIT = "limit must be an integer from 1 to 100"








async def test_author_feed_and_posts_come_from_what_byline_published(gw: Gateway, sdk: Sdk) -> None:
    """The feed pages newest first with a cursor; each post has the uri and cid createRecord answered;
    getPosts finds them by those uris, in the order asked, and leaves out what is not published."""
    client = await sdk.login(gw, "alice", "direct", "alice")
    texts = ["First post", "Second, with a link https://example.com/two", "Third post"]
    sent = [await run(client.send_post, text) for text in texts]
    gone = await run(client.send_post, "Deleted after it went out")
    await gw.tick()
    assert await run(client.delete_post, gone.uri) is True
    native = await gw.submit("alice", "direct", "Written through the native API")
    await gw.tick()

    first = await run(client.get_author_feed, actor=HANDLE, limit=2)
    assert [item.post.record.text for item in first.feed] == ["Written through the native API", "Third post"]
    assert first.cursor is not None
    rest = await run(client.get_author_feed, actor=DID, limit=2, cursor=first.cursor)
    assert [item.post.record.text for item in rest.feed] == [texts[1], texts[0]]
    last = await run(client.get_author_feed, actor=DID, limit=2, cursor=rest.cursor) if rest.cursor else None
    assert last is None or (last.feed, last.cursor) == ([], None)

    by_uri = {item.post.uri: item.post for item in [*first.feed, *rest.feed]}
    for answered, text in zip(sent, texts, strict=True):
        view = by_uri[answered.uri]
        assert (view.cid, view.record.text, view.record.langs) == (answered.cid, text, ["en"])
        assert (view.author.did, view.author.handle) == (DID, HANDLE)
        post = await post_for(gw, "alice", "direct", answered.uri)
        # The SDK finds the link itself: its facet goes out as it built it.
        record = post_record(text=text, created_at=post["options"]["created_at"], language="en",
                             facets=fitting_facets(post["options"].get("facets"), text) or link_facets(text),
                             byline=record_url(gw.app[PLATFORMS].public_url, post["id"]))
        assert view.cid == record_cid(record)
    assert native["id"] in {(await post_for(gw, "alice", "direct", uri))["id"] for uri in by_uri}

    token = (await session(gw, "alice", "direct", "alice"))["accessJwt"]
    status, found = await xrpc(gw, "GET", "app.bsky.feed.getPosts", token=token,
                               params=[("uris", sent[2].uri), ("uris", gone.uri), ("uris", sent[0].uri),
                                       ("uris", f"at://did:plc:someoneelse/{POST}/3kabcdefghijk")])
    assert status == 200, found
    assert [p["uri"] for p in found["posts"]] == [sent[2].uri, sent[0].uri]
    assert found["posts"][1] == {
        "$type": "app.bsky.feed.defs#postView", "uri": sent[0].uri, "cid": sent[0].cid,
        "author": {"$type": "app.bsky.actor.defs#profileViewBasic", "did": DID, "handle": HANDLE,
                   "displayName": "@alice"},
        "record": {"$type": POST, "text": "First post", "createdAt": found["posts"][1]["record"]["createdAt"],
                   "langs": ["en"], "byline": record_url(gw.app[PLATFORMS].public_url,
                                                         (await post_for(gw, "alice", "direct", sent[0].uri))["id"])},
        "indexedAt": found["posts"][1]["indexedAt"], "labels": [],
    }
    listed = await run(client.get_posts, [sent[1].uri])
    assert [(p.uri, p.cid) for p in listed.posts] == [(sent[1].uri, sent[1].cid)]


async def test_reads_refuse_bad_parameters_as_an_appview_does(gw: Gateway) -> None:
    """Another actor, a limit out of range, a bad cursor or filter, too many uris: 400 InvalidRequest."""
    token = (await session(gw, "alice", "direct", "alice"))["accessJwt"]
    cases: list[tuple[str, list[tuple[str, str]], str]] = [
        ("app.bsky.feed.getAuthorFeed", [("actor", "someone.else.test")], "Profile not found"),
        ("app.bsky.feed.getAuthorFeed", [], "Params must have the property \"actor\""),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("limit", "0")], LIMIT),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("limit", "101")], LIMIT),
        # isdigit takes "¹", which int refuses, and int refuses 5,000 digits: both were a 500.
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("limit", "\u00b9")], LIMIT),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("limit", "9" * 5000)], LIMIT),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("cursor", "\u00b9\u00b2")], "Malformed cursor"),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("cursor", "x'--")], "Malformed cursor"),
        ("app.bsky.feed.getAuthorFeed", [("actor", HANDLE), ("filter", "everything")], "filter must be one of"),
        ("app.bsky.feed.getPosts", [], "Params must have the property \"uris\""),
        ("app.bsky.feed.getPosts", [("uris", f"at://{DID}/{POST}/3k{n:011d}") for n in range(26)],
         "uris must not have more than 25 elements"),
        ("app.bsky.feed.getPosts", [("uris", "https://example.com/post")], "uris: 'https://example.com/post' is not"),
    ]
    for nsid, params, message in cases:
        status, body = await xrpc(gw, "GET", nsid, token=token, params=params)
        assert (status, body["error"]) == (400, "InvalidRequest"), (nsid, params, body)
        assert body["message"].startswith(message), (nsid, params, body)
    status, body = await xrpc(gw, "GET", "app.bsky.feed.getTimeline", token=token)
    assert (status, body["error"]) == (501, "MethodNotImplemented"), body


async def test_sdk_sees_an_empty_feed_for_an_account_that_published_nothing(gw: Gateway, sdk: Sdk) -> None:
    """A held post is not in the feed; an account with nothing out has an empty feed and no cursor."""
    client = await sdk.login(gw, "carol", "cosigned", "brand")
    await run(client.send_post, "Waiting for approval")
    await gw.tick()
    feed = await run(client.get_author_feed, actor="cosigned.byline.local")
    assert (feed.feed, feed.cursor) == ([], None)
    with pytest.raises(BadRequestError):
        await run(client.get_author_feed, actor="someone.else.test")


async def test_feed_filters_leave_out_replies_and_page_through_them(gw: Gateway, sdk: Sdk) -> None:
    """posts_no_replies leaves replies out, across pages; posts_with_video has nothing to show."""
    client = await sdk.login(gw, "alice", "direct", "alice")
    parent = await run(client.send_post, "A thread starts")
    ref = models.create_strong_ref(parent)
    for n in range(3):
        await run(client.send_post, f"Reply {n}", reply_to=models.AppBskyFeedPost.ReplyRef(root=ref, parent=ref))
    await run(client.send_post, "After the thread")
    await gw.tick()
    everything = await run(client.get_author_feed, actor=HANDLE, limit=10)
    assert [i.post.record.text for i in everything.feed] == [
        "After the thread", "Reply 2", "Reply 1", "Reply 0", "A thread starts"]
    first = await run(client.get_author_feed, actor=HANDLE, limit=1, filter="posts_no_replies")
    assert [i.post.record.text for i in first.feed] == ["After the thread"]
    second = await run(client.get_author_feed, actor=HANDLE, limit=1, filter="posts_no_replies", cursor=first.cursor)
    assert [i.post.record.text for i in second.feed] == ["A thread starts"]
    assert second.cursor is None
    video = await run(client.get_author_feed, actor=HANDLE, filter="posts_with_video")
    assert (video.feed, video.cursor) == ([], None)
