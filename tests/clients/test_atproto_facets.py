"""Rich text (links with their own words, mentions, hashtags) built by the real ``atproto`` SDK
reaches a real PDS with the client's facets, held posts included; once someone edits the words
the client's facets no longer fit and Byline finds the links itself; facets the lexicon refuses
are refused with nothing stored."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from atproto import client_utils

from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.clients.test_atproto_client import POST, Sdk, clock, post_for, run, sdk, session, xrpc
from tests.clients.test_atproto_embeds import pds_record, sky
from tests.conftest import Gateway
from tests.platforms.bluesky.fixture import BlueskyPds

__all__ = ["clock", "sdk", "sky"]  # the fixtures, shared with the embeds' tests


def _rich(did: str, tag: str) -> client_utils.TextBuilder:
    return (client_utils.TextBuilder().text("Launch day: ").link("read the plan", f"https://example.com/{tag}")
            .text(", thanks ").mention("@carol", did).text(" ").tag("#launch", "launch").text(" ✨"))


def _facets(builder: client_utils.TextBuilder) -> list[dict[str, Any]]:
    """The facets as the SDK builds them, as JSON the PDS stores."""
    return [f.model_dump(by_alias=True, exclude_none=True) for f in builder.build_facets()]


async def test_the_clients_facets_go_out_as_built(bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk) -> None:
    account = bluesky_pds.account("carol.test")
    client = await sdk.login(sky, "alice", "sky", account.handle)
    builder = _rich(account.did, secrets.token_hex(4))
    sent = await run(client.send_post, builder)
    await sky.tick()
    landed = await pds_record(bluesky_pds, sent.uri)
    assert landed is not None
    assert (landed["cid"], landed["value"]["text"]) == (sent.cid, builder.build_text())
    assert landed["value"]["facets"] == _facets(builder)


async def test_a_held_post_keeps_its_facets_until_its_words_are_edited(
    bluesky_pds: BlueskyPds, sky: Gateway, sdk: Sdk, clock: ManualClock,
) -> None:
    """Approved as written: the client's facets. Edited by a writer first: the words' own links."""
    account = bluesky_pds.account("bob.test")
    client = await sdk.login(sky, "alice", "skyheld", account.handle)
    tag = secrets.token_hex(4)
    kept, edited = _rich(account.did, tag), _rich(account.did, tag + "e")
    as_written = await run(client.send_post, kept)
    to_edit = await run(client.send_post, edited)
    later = await post_for(sky, "alice", "skyheld", to_edit.uri)
    status, body = await sky.call("alice", "PATCH", f"/v1/posts/{later['id']}",
                                  {"text": f"Launch day: the plan is at https://example.com/{tag}"})
    assert status == 200, body
    for sent in (as_written, to_edit):
        post = await post_for(sky, "alice", "skyheld", sent.uri)
        status, body = await sky.act("bob", post["id"], "approve")
        assert status == 200, body
    clock.advance(timedelta(minutes=2))
    await sky.tick()
    first = await pds_record(bluesky_pds, as_written.uri)
    second = await pds_record(bluesky_pds, to_edit.uri)
    assert first is not None and second is not None
    assert first["value"]["facets"] == _facets(kept)
    url = f"https://example.com/{tag}"
    start = len(b"Launch day: the plan is at ")
    assert second["value"]["facets"] == [{
        "index": {"byteStart": start, "byteEnd": start + len(url)},
        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}],
    }]


async def test_facets_the_lexicon_refuses_store_nothing(bluesky_pds: BlueskyPds, sky: Gateway) -> None:
    account = bluesky_pds.account("carol.test")
    token = (await session(sky, "alice", "sky", account.handle))["accessJwt"]
    text = "Short"
    link = {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}
    cases = [
        ([{"index": {"byteStart": 0, "byteEnd": 99}, "features": [link]}],
         "facets/0/index must span bytes of the text (it has 5)"),
        ([{"index": {"byteStart": 3, "byteEnd": 1}, "features": [link]}],
         "facets/0/index must span bytes of the text (it has 5)"),
        ([{"index": {"byteStart": -1, "byteEnd": 1}, "features": [link]}],
         "facets/0/index/byteStart must be an integer of at least 0"),
        ([{"index": {"byteStart": 0, "byteEnd": 1}, "features": [{"$type": "app.bsky.richtext.facet#mention",
                                                                  "did": "carol"}]}],
         "facets/0/features/0/did must be a DID"),
        ([{"index": {"byteStart": 0, "byteEnd": 1}, "features": [{"$type": "app.bsky.richtext.facet#tag",
                                                                  "tag": "x" * 65}]}],
         "facets/0/features/0/tag must be 1 to 64 graphemes (640 bytes)"),
        ([{"index": {"byteStart": 0, "byteEnd": 1}}], "facets/0/features must be an array"),
    ]
    async with sky.app[DB].read() as txn:
        before = await txn.fetchone("SELECT count(*) AS n FROM posts")
    for facets, why in cases:
        status, body = await xrpc(sky, "POST", "com.atproto.repo.createRecord", token=token, body={
            "repo": account.did, "collection": POST,
            "record": {"$type": POST, "text": text, "createdAt": "2026-12-05T00:00:00Z", "facets": facets},
        })
        assert (status, body["error"]) == (400, "InvalidRequest"), body
        assert body["message"] == f"Invalid {POST} record: Record/{why}", body
    async with sky.app[DB].read() as txn:
        after = await txn.fetchone("SELECT count(*) AS n FROM posts")
    assert before is not None and after is not None and after["n"] == before["n"]
