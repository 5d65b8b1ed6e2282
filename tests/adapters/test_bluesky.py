"""The Bluesky adapter against a real PDS (``bluesky_pds``: @atproto/dev-env started from npm).

Every check reads what the PDS stored with plain XRPC calls, not through the adapter. Faults the
PDS cannot be made to show by itself (a dropped connection, 429, 503) come from a small aiohttp
proxy put in front of it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import struct
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.base import Adapter, AdapterConfig, AdapterError, MediaItem, OutboundPost
from adapters.bluesky import (
    MAX_GRAPHEMES,
    BlueskyAdapter,
    find_links,
    find_mentions,
    grapheme_count,
    is_tid,
    rkey_for,
)
from tests.platforms.bluesky.fixture import BlueskyPds, PdsAccount, app_tid, harness_log

POSTS = "app.bsky.feed.post"
# @atproto/dev-env signs the PDS's access tokens with this fixed secret (its const.ts), which
# lets a test hand the adapter a token that is genuinely expired rather than merely garbled.
DEV_ENV_JWT_SECRET = b"jwt-secret"

ServerFactory = Callable[[web.Application], Awaitable[TestServer]]


# ---- helpers ---------------------------------------------------------------------------------


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp session, as the gateway shares with its adapters."""
    async with aiohttp.ClientSession() as session:
        yield session


def make_adapter(
    http: aiohttp.ClientSession,
    pds: BlueskyPds,
    account: PdsAccount,
    *,
    secret: str | None = None,
    pds_url: str | None = None,
    clock: Callable[[], datetime] | None = None,
) -> BlueskyAdapter:
    """An adapter for ``account`` that logs in with its app password (or ``secret``)."""
    return BlueskyAdapter(
        AdapterConfig(
            account=f"bluesky-{account.handle}",
            handle=account.handle,
            secret=account.app_password if secret is None else secret,
            options={"pds": pds_url or pds.pds_url, "timeout": "10"},
            session=http,
        ),
        clock=clock,
    )


def new_post(text: str = "hello from Byline", **fields: Any) -> OutboundPost:
    """A post with a fresh id."""
    post_id = str(uuid.uuid4().int >> 64)
    return OutboundPost(post_id=post_id, idempotency_key=f"{post_id}:1", text=text, **fields)


async def xrpc_get(
    http: aiohttp.ClientSession, pds: BlueskyPds, nsid: str, **params: str
) -> tuple[int, Any]:
    """A plain, unauthenticated XRPC query: (status, decoded JSON)."""
    async with http.get(f"{pds.pds_url}/xrpc/{nsid}", params=params) as response:
        return response.status, await response.json(content_type=None)


async def get_post(
    http: aiohttp.ClientSession, pds: BlueskyPds, did: str, rkey: str
) -> dict[str, Any] | None:
    """The stored post record at this key, or None."""
    status, body = await xrpc_get(
        http, pds, "com.atproto.repo.getRecord", repo=did, collection=POSTS, rkey=rkey
    )
    if status == 400 and body.get("error") == "RecordNotFound":
        return None
    assert status == 200, body
    record: dict[str, Any] = body["value"]
    return record


async def list_rkeys(http: aiohttp.ClientSession, pds: BlueskyPds, did: str) -> list[str]:
    """Every post record key in the repo, read page by page with listRecords."""
    rkeys: list[str] = []
    cursor: str | None = None
    while True:
        params = {"repo": did, "collection": POSTS, "limit": "100"}
        if cursor:
            params["cursor"] = cursor
        status, body = await xrpc_get(http, pds, "com.atproto.repo.listRecords", **params)
        assert status == 200, body
        rkeys += [record["uri"].rsplit("/", 1)[1] for record in body["records"]]
        cursor = body.get("cursor")
        if not cursor or not body["records"]:
            return rkeys


def rkey_of(uri: str) -> str:
    """The record key at the end of an at:// URI."""
    return uri.rsplit("/", 1)[1]


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def expired_access_token(did: str) -> str:
    """An access JWT for ``did`` signed like the test PDS signs them, expired a minute ago."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    header = {"typ": "at+jwt", "alg": "HS256"}
    claims = {
        "scope": "com.atproto.appPass",
        "aud": "did:web:localhost",
        "sub": did,
        "iat": now - 120,
        "exp": now - 60,
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(DEV_ENV_JWT_SECRET, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


@asynccontextmanager
async def traced_session(sent: list[tuple[str, str | None]]) -> AsyncIterator[aiohttp.ClientSession]:
    """A real aiohttp session that notes each request's NSID and Authorization header in ``sent``."""
    tracing = aiohttp.TraceConfig()

    async def on_start(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        sent.append((params.url.path.removeprefix("/xrpc/"), params.headers.get("Authorization")))

    tracing.on_request_start.append(on_start)
    async with aiohttp.ClientSession(trace_configs=[tracing]) as http:
        yield http


def go_stale(adapter: BlueskyAdapter, **tokens: str) -> None:
    """Replace the session's tokens: white box, the one place to make a token go stale."""
    client = adapter._client
    assert client._login is not None
    client._login = dataclasses.replace(client._login, **tokens)


Rule = Callable[[str], "str | web.Response"]


async def start_proxy(
    aiohttp_server: ServerFactory, pds: BlueskyPds, rule: Rule
) -> tuple[TestServer, list[str]]:
    """A proxy to the PDS that does to each request what ``rule(nsid)`` says.

    ``"forward"`` passes it on; ``"drop-after"`` passes it on, lets the PDS answer, and then
    closes the client's connection without a response (the lost-answer case); ``"drop"``
    closes the connection without passing it on; a ``web.Response`` is answered instead.
    Returns the server and the list of NSIDs it saw.
    """
    seen: list[str] = []
    upstream = aiohttp.ClientSession()

    async def handle(request: web.Request) -> web.StreamResponse:
        nsid = request.path.removeprefix("/xrpc/")
        seen.append(nsid)
        action = rule(nsid)
        if isinstance(action, web.StreamResponse):
            return action
        body = await request.read()
        if action != "drop":
            headers = {
                k: v
                for k, v in request.headers.items()
                if k.lower() in ("authorization", "content-type", "accept")
            }
            async with upstream.request(
                request.method,
                f"{pds.pds_url}{request.path_qs}",
                headers=headers,
                data=body or None,
            ) as answer:
                payload = await answer.read()
                status = answer.status
                content_type = answer.headers.get("Content-Type", "application/json")
            if action == "forward":
                return web.Response(status=status, body=payload, content_type=None,
                                    headers={"Content-Type": content_type})
        assert request.transport is not None
        request.transport.abort()
        raise ConnectionResetError("proxy dropped the connection on purpose")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)

    async def close_upstream(_: web.Application) -> None:
        await upstream.close()

    app.on_cleanup.append(close_upstream)
    server = await aiohttp_server(app)
    return server, seen


def proxy_url(server: TestServer) -> str:
    """The proxy's base URL."""
    return str(server.make_url("")).rstrip("/")


# ---- pure functions --------------------------------------------------------------------------


def test_rkey_is_a_deterministic_valid_tid() -> None:
    """The record key is a valid TID, the same for one post id and different across ids."""
    keys = {rkey_for(str(n)) for n in range(2000)}
    assert len(keys) == 2000
    assert all(len(key) == 13 and is_tid(key) for key in keys)
    assert rkey_for("12345") == rkey_for("12345")
    assert not is_tid("3kabcdefghijkl") and not is_tid("kabcdefghijkl")


def test_grapheme_count_counts_user_perceived_characters() -> None:
    """Combining marks, flags, ZWJ emoji, skin tones, Hangul jamo and CRLF count as one each."""
    assert grapheme_count("abc") == 3
    assert grapheme_count("e\u0301" * 4) == 4
    assert grapheme_count("🇩🇪🇫🇷") == 2
    assert grapheme_count("👨‍👩‍👧‍👦") == 1
    assert grapheme_count("👍🏽!") == 2
    assert grapheme_count("\u1100\u1161\u11a8") == 1
    assert grapheme_count("a\r\nb") == 3
    assert grapheme_count("क्षत्रिय") == 3


def test_link_and_mention_detection_trims_punctuation() -> None:
    """Links lose trailing punctuation and unbalanced ")"; only handle-shaped mentions count."""
    links = find_links("see (https://example.com/a_(b)). and http://x.test/q?a=1, ok")
    assert [link.value for link in links] == ["https://example.com/a_(b)", "http://x.test/q?a=1"]
    mentions = find_mentions("@bob.test, hi @alice and mail me@carol.test (@dave.example).")
    assert [mention.value for mention in mentions] == ["bob.test", "dave.example"]


# ---- against the PDS -------------------------------------------------------------------------


async def test_adapter_meets_the_protocol(http: aiohttp.ClientSession, bluesky_pds: BlueskyPds) -> None:
    """BlueskyAdapter is an Adapter for the platform "bluesky"."""
    adapter = make_adapter(http, bluesky_pds, bluesky_pds.account("alice.test"))
    assert isinstance(adapter, Adapter)
    assert adapter.platform == "bluesky"


async def test_verify_credentials_returns_did_and_handle(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """verify_credentials answers the account's DID and handle as the PDS knows them."""
    alice = bluesky_pds.account("alice.test")
    info = await make_adapter(http, bluesky_pds, alice).verify_credentials()
    assert (info.remote_id, info.handle) == (alice.did, "alice.test")
    assert info.url == "https://bsky.app/profile/alice.test"


async def test_publish_stores_text_langs_and_utf8_facets(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """The stored post has the text, langs, and link/mention facets at UTF-8 byte offsets."""
    alice, bob = bluesky_pds.account("alice.test"), bluesky_pds.account("bob.test")
    text = "Grüße 🌍 an @bob.test: https://example.com/ü?x=1. Nicht @nobody.test"
    post = new_post(text, language="de")
    result = await make_adapter(http, bluesky_pds, alice).publish(post)

    rkey = rkey_for(post.post_id)
    assert result.remote_id == f"at://{alice.did}/{POSTS}/{rkey}"
    assert result.url == f"https://bsky.app/profile/alice.test/post/{rkey}"
    record = await get_post(http, bluesky_pds, alice.did, rkey)
    assert record is not None
    assert record["text"] == text
    assert record["langs"] == ["de"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", record["createdAt"])
    encoded = text.encode("utf-8")
    mention_start = encoded.index(b"@bob.test")
    link = "https://example.com/ü?x=1".encode()
    link_start = encoded.index(link)
    assert record["facets"] == [
        {
            "index": {"byteStart": mention_start, "byteEnd": mention_start + len(b"@bob.test")},
            "features": [{"$type": "app.bsky.richtext.facet#mention", "did": bob.did}],
        },
        {
            "index": {"byteStart": link_start, "byteEnd": link_start + len(link)},
            "features": [
                {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/ü?x=1"}
            ],
        },
    ]
    # The offsets are bytes, not characters: the text before them is not ASCII.
    assert mention_start != text.index("@bob.test")
    assert "labels" not in record and "reply" not in record and "embed" not in record


async def test_publishing_the_same_post_twice_makes_one_record(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A resend, from the same adapter or a new one after a restart, returns the one record."""
    alice = bluesky_pds.account("alice.test")
    before = await list_rkeys(http, bluesky_pds, alice.did)
    post = new_post("only once, please")
    first = await make_adapter(http, bluesky_pds, alice).publish(post)
    again = await make_adapter(http, bluesky_pds, alice).publish(post)
    adapter = make_adapter(http, bluesky_pds, alice)
    third = await adapter.publish(dataclasses.replace(post, text="only once, edited"))

    assert first == again == third
    after = await list_rkeys(http, bluesky_pds, alice.did)
    assert len(after) == len(before) + 1
    assert after.count(rkey_for(post.post_id)) == 1
    record = await get_post(http, bluesky_pds, alice.did, rkey_for(post.post_id))
    assert record is not None and record["text"] == "only once, please"


async def test_lost_create_answer_is_found_by_reading_the_key_back(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """When the connection drops after the PDS wrote the post, publish reads it back: one post."""
    alice = bluesky_pds.account("alice.test")
    proxy, seen = await start_proxy(
        aiohttp_server,
        bluesky_pds,
        lambda nsid: "drop-after" if nsid == "com.atproto.repo.createRecord" else "forward",
    )
    before = await list_rkeys(http, bluesky_pds, alice.did)
    post = new_post("the answer to this was lost")
    adapter = make_adapter(http, bluesky_pds, alice, pds_url=proxy_url(proxy))

    result = await adapter.publish(post)

    assert seen.count("com.atproto.repo.createRecord") == 1
    assert seen[-1] == "com.atproto.repo.getRecord"
    assert result.remote_id == f"at://{alice.did}/{POSTS}/{rkey_for(post.post_id)}"
    after = await list_rkeys(http, bluesky_pds, alice.did)
    assert len(after) == len(before) + 1
    assert after.count(rkey_for(post.post_id)) == 1


async def test_retry_after_a_dropped_connection_publishes_once(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """A drop that also hides the record is a retryable error; the retry finds the one post."""
    alice = bluesky_pds.account("alice.test")
    created = False

    def rule(nsid: str) -> str:
        nonlocal created
        if nsid == "com.atproto.repo.createRecord":
            created = True
            return "drop-after"
        return "drop" if created else "forward"

    proxy, _ = await start_proxy(aiohttp_server, bluesky_pds, rule)
    before = await list_rkeys(http, bluesky_pds, alice.did)
    post = new_post("lost twice over")
    through_proxy = make_adapter(http, bluesky_pds, alice, pds_url=proxy_url(proxy))

    with pytest.raises(AdapterError) as caught:
        await through_proxy.publish(post)
    assert caught.value.retryable and not caught.value.auth_failed
    # The PDS did write it.
    assert await get_post(http, bluesky_pds, alice.did, rkey_for(post.post_id)) is not None

    direct = make_adapter(http, bluesky_pds, alice)
    assert await direct.find_existing(post) is not None
    result = await direct.publish(post)
    assert rkey_of(result.remote_id) == rkey_for(post.post_id)
    after = await list_rkeys(http, bluesky_pds, alice.did)
    assert len(after) == len(before) + 1
    assert after.count(rkey_for(post.post_id)) == 1


async def test_a_client_key_and_its_gates_go_out_in_one_commit_once(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """A post with the key its client chose and a threadgate under it: written together with
    applyWrites; an answer lost after the PDS wrote them is found by reading the key back, and
    a resend makes nothing new."""
    alice = bluesky_pds.account("alice.test")
    proxy, seen = await start_proxy(
        aiohttp_server, bluesky_pds,
        lambda nsid: "drop-after" if nsid == "com.atproto.repo.applyWrites" else "forward",
    )
    rkey = app_tid()
    gate = {"$type": "app.bsky.feed.threadgate", "post": f"at://{alice.did}/{POSTS}/{rkey}",
            "allow": [{"$type": "app.bsky.feed.threadgate#mentionRule"}], "createdAt": "2026-01-01T00:00:00.000Z"}
    post = new_post("under the key the app chose", record_key=rkey, record_url="https://byline.example/audit?q=1",
                    gates={"app.bsky.feed.threadgate": gate})
    before = await list_rkeys(http, bluesky_pds, alice.did)

    result = await make_adapter(http, bluesky_pds, alice, pds_url=proxy_url(proxy)).publish(post)

    assert seen.count("com.atproto.repo.applyWrites") == 1 and "com.atproto.repo.createRecord" not in seen
    assert result.remote_id == f"at://{alice.did}/{POSTS}/{rkey}"
    again = make_adapter(http, bluesky_pds, alice)
    assert await again.find_existing(post) == result
    assert await again.publish(post) == result
    after = await list_rkeys(http, bluesky_pds, alice.did)
    assert (len(after), after.count(rkey)) == (len(before) + 1, 1)
    status, body = await xrpc_get(http, bluesky_pds, "com.atproto.repo.getRecord", repo=alice.did,
                                  collection="app.bsky.feed.threadgate", rkey=rkey)
    assert (status, body["value"]) == (200, gate)


async def test_a_client_key_holding_another_record_fails_the_post(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A key its client chose that holds a record Byline did not write: the post fails for good,
    rather than be taken for that record."""
    bob = bluesky_pds.account("bob.test")
    rkey = app_tid()
    theirs = await make_adapter(http, bluesky_pds, bob).publish(new_post("written elsewhere", record_key=rkey))
    assert rkey_of(theirs.remote_id) == rkey
    post = new_post("mine", record_key=rkey, record_url="https://byline.example/audit?q=2")

    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, bob).publish(post)

    assert not caught.value.retryable
    assert f"the record key {rkey} its client chose" in caught.value.message
    record = await get_post(http, bluesky_pds, bob.did, rkey)
    assert record is not None and record["text"] == "written elsewhere"


async def test_find_existing_is_none_before_and_the_post_after(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """find_existing reads the derived key: nothing before publishing, the same result after."""
    adapter = make_adapter(http, bluesky_pds, bluesky_pds.account("bob.test"))
    post = new_post("find me")
    assert await adapter.find_existing(post) is None
    published = await adapter.publish(post)
    assert await adapter.find_existing(post) == published


async def test_delete_removes_the_record_and_repeats_quietly(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """delete removes the record from the repo; deleting it again still succeeds."""
    bob = bluesky_pds.account("bob.test")
    adapter = make_adapter(http, bluesky_pds, bob)
    post = new_post("short-lived")
    result = await adapter.publish(post)
    assert rkey_for(post.post_id) in await list_rkeys(http, bluesky_pds, bob.did)

    await adapter.delete(result.remote_id)
    assert await get_post(http, bluesky_pds, bob.did, rkey_for(post.post_id)) is None
    assert rkey_for(post.post_id) not in await list_rkeys(http, bluesky_pds, bob.did)
    await adapter.delete(result.remote_id)
    assert await adapter.find_existing(post) is None


async def get_record(
    http: aiohttp.ClientSession, pds: BlueskyPds, did: str, collection: str, rkey: str
) -> tuple[int, Any]:
    """getRecord of any collection, as the PDS answers it: (status, decoded JSON)."""
    return await xrpc_get(http, pds, "com.atproto.repo.getRecord", repo=did, collection=collection, rkey=rkey)


async def test_delete_takes_the_posts_threadgate_and_postgate_with_it_in_one_commit(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """A post that went out with a threadgate and a postgate: deleting it deletes both with it,
    in one applyWrites, so nothing is left ruling replies and quotes of a post that is gone
    (before: the post alone, by deleteRecord, and both gates stayed). A gate a post deleted
    earlier left behind is deleted by the next delete; a delete with nothing left is quiet."""
    bob = bluesky_pds.account("bob.test")
    gates = "app.bsky.feed.threadgate", "app.bsky.feed.postgate"

    def gated_post(text: str) -> OutboundPost:
        rkey = app_tid()
        uri = f"at://{bob.did}/{POSTS}/{rkey}"
        return new_post(text, record_key=rkey, record_url=f"https://byline.example/audit?q={rkey}", gates={
            gates[0]: {"$type": gates[0], "post": uri, "createdAt": "2026-01-01T00:00:00.000Z",
                       "allow": [{"$type": f"{gates[0]}#followingRule"}]},
            gates[1]: {"$type": gates[1], "post": uri, "createdAt": "2026-01-01T00:00:00.000Z",
                       "embeddingRules": [{"$type": f"{gates[1]}#disableRule"}]},
        })

    proxy, seen = await start_proxy(aiohttp_server, bluesky_pds, lambda nsid: "forward")
    adapter = make_adapter(http, bluesky_pds, bob, pds_url=proxy_url(proxy))
    post = gated_post("gated, then deleted")
    assert post.record_key is not None
    result = await adapter.publish(post)
    assert [(await get_record(http, bluesky_pds, bob.did, c, post.record_key))[0] for c in gates] == [200, 200]
    seen.clear()

    await adapter.delete(result.remote_id)

    assert seen.count("com.atproto.repo.applyWrites") == 1 and "com.atproto.repo.deleteRecord" not in seen
    for collection in (POSTS, *gates):
        status, body = await get_record(http, bluesky_pds, bob.did, collection, post.record_key)
        assert (status, body.get("error")) == (400, "RecordNotFound"), (collection, body)
    seen.clear()
    await adapter.delete(result.remote_id)
    assert "com.atproto.repo.applyWrites" not in seen

    # A post deleted on its own (as before this change): its gates are still there, and go now.
    left = gated_post("deleted alone before")
    assert left.record_key is not None
    left_uri = (await adapter.publish(left)).remote_id
    async with http.post(f"{bluesky_pds.pds_url}/xrpc/com.atproto.server.createSession",
                         json={"identifier": bob.did, "password": bob.password}) as response:
        token = (await response.json())["accessJwt"]
    async with http.post(f"{bluesky_pds.pds_url}/xrpc/com.atproto.repo.deleteRecord",
                         headers={"Authorization": f"Bearer {token}"},
                         json={"repo": bob.did, "collection": POSTS, "rkey": left.record_key}) as response:
        assert response.status == 200, await response.text()
    await adapter.delete(left_uri)
    assert [(await get_record(http, bluesky_pds, bob.did, c, left.record_key))[0] for c in gates] == [400, 400]


async def test_delete_refuses_another_accounts_post(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """delete will not touch a URI in someone else's repo, and that post stays."""
    alice, bob = bluesky_pds.account("alice.test"), bluesky_pds.account("bob.test")
    result = await make_adapter(http, bluesky_pds, alice).publish(new_post("mine"))
    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, bob).delete(result.remote_id)
    assert not caught.value.retryable
    assert await get_post(http, bluesky_pds, alice.did, rkey_of(result.remote_id)) is not None


async def test_wrong_app_password_is_auth_failed_and_not_echoed(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A wrong app password gives auth_failed, not retryable, and appears nowhere in the error."""
    alice = bluesky_pds.account("alice.test")
    wrong = "wxyz-wxyz-wxyz-wxyz"
    adapter = make_adapter(http, bluesky_pds, alice, secret=wrong)
    for call in (adapter.publish(new_post("never")), adapter.verify_credentials()):
        with pytest.raises(AdapterError) as caught:
            await call
        error = caught.value
        assert error.auth_failed and not error.retryable and error.status == 401
        assert wrong not in f"{error} {error.message} {error.detail} {adapter!r}"


async def test_the_app_password_is_never_a_bearer_token(bluesky_pds: BlueskyPds) -> None:
    """The app password goes only in createSession's body; every other call carries a session JWT."""
    bob = bluesky_pds.account("bob.test")
    sent: list[tuple[str, str | None]] = []
    async with traced_session(sent) as http:
        adapter = make_adapter(http, bluesky_pds, bob)
        await adapter.publish(new_post("who am I"))
        await adapter.xrpc_raw("GET", "com.atproto.server.getSession")

    assert sent[0] == ("com.atproto.server.createSession", None)
    assert {nsid for nsid, _ in sent[1:]} >= {"com.atproto.repo.createRecord", "com.atproto.server.getSession"}
    login = adapter._client.login  # white box: the JWT the PDS issued
    assert login is not None
    assert all(auth == f"Bearer {login.access_jwt}" for _, auth in sent[1:]), sent
    assert all(bob.app_password not in (auth or "") for _, auth in sent)


async def test_revoked_app_password_is_auth_failed_after_one_new_login(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """After the app password is revoked, a refused token leads to auth_failed, not a loop."""
    carol = bluesky_pds.account("carol.test")

    async def call(nsid: str, body: dict[str, str], token: str | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with http.post(
            f"{bluesky_pds.pds_url}/xrpc/{nsid}", json=body, headers=headers
        ) as response:
            assert response.status == 200, await response.text()
            return await response.json(content_type=None)

    login = await call(
        "com.atproto.server.createSession",
        {"identifier": carol.handle, "password": carol.password},
    )
    name = f"revoke-me-{uuid.uuid4().hex[:8]}"
    app_password = await call(
        "com.atproto.server.createAppPassword", {"name": name}, login["accessJwt"]
    )
    adapter = make_adapter(http, bluesky_pds, carol, secret=app_password["password"])
    await adapter.publish(new_post("before the revocation"))

    await call("com.atproto.server.revokeAppPassword", {"name": name}, login["accessJwt"])
    # Access tokens outlive a revocation until they expire (2 hours); skip ahead to that.
    go_stale(adapter, access_jwt=expired_access_token(carol.did))
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(new_post("after the revocation"))
    assert caught.value.auth_failed and not caught.value.retryable


async def test_expired_access_token_is_refreshed(
    bluesky_pds: BlueskyPds,
) -> None:
    """An ExpiredToken answer leads to refreshSession and the post is then created."""
    alice = bluesky_pds.account("alice.test")
    sent: list[tuple[str, str | None]] = []
    async with traced_session(sent) as http:
        adapter = make_adapter(http, bluesky_pds, alice)
        await adapter.verify_credentials()
        go_stale(adapter, access_jwt=expired_access_token(alice.did))
        sent.clear()
        post = new_post("after a refresh")
        result = await adapter.publish(post)

    assert [nsid for nsid, _ in sent] == [
        "com.atproto.repo.createRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.repo.createRecord",
    ]
    assert rkey_of(result.remote_id) == rkey_for(post.post_id)


async def test_refused_refresh_token_leads_to_a_new_session(
    bluesky_pds: BlueskyPds,
) -> None:
    """When both tokens are refused the adapter logs in again with the app password."""
    bob = bluesky_pds.account("bob.test")
    sent: list[tuple[str, str | None]] = []
    async with traced_session(sent) as http:
        adapter = make_adapter(http, bluesky_pds, bob)
        await adapter.verify_credentials()
        go_stale(adapter, access_jwt="garbled", refresh_jwt="garbled")
        sent.clear()
        await adapter.publish(new_post("after a new login"))
        info = await adapter.verify_credentials()

    assert [nsid for nsid, _ in sent[:4]] == [
        "com.atproto.repo.createRecord",
        "com.atproto.server.refreshSession",
        "com.atproto.server.createSession",
        "com.atproto.repo.createRecord",
    ]
    assert info.remote_id == bob.did


async def test_reply_refs_point_at_parent_and_thread_root(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A reply names its parent; a reply to a reply keeps the thread's first post as root."""
    alice, bob, carol = (bluesky_pds.account(h) for h in ("alice.test", "bob.test", "carol.test"))
    top = await make_adapter(http, bluesky_pds, alice).publish(new_post("a thread"))
    middle = await make_adapter(http, bluesky_pds, bob).publish(
        new_post("a reply", reply_to=top.remote_id)
    )
    leaf_post = new_post("a reply to the reply", reply_to=middle.remote_id)
    await make_adapter(http, bluesky_pds, carol).publish(leaf_post)

    _, top_stored = await xrpc_get(
        http, bluesky_pds, "com.atproto.repo.getRecord",
        repo=alice.did, collection=POSTS, rkey=rkey_of(top.remote_id),
    )
    _, middle_stored = await xrpc_get(
        http, bluesky_pds, "com.atproto.repo.getRecord",
        repo=bob.did, collection=POSTS, rkey=rkey_of(middle.remote_id),
    )
    top_ref = {"uri": top.remote_id, "cid": top_stored["cid"]}
    middle_ref = {"uri": middle.remote_id, "cid": middle_stored["cid"]}
    assert middle_stored["value"]["reply"] == {"root": top_ref, "parent": top_ref}
    leaf = await get_post(http, bluesky_pds, carol.did, rkey_for(leaf_post.post_id))
    assert leaf is not None
    assert leaf["reply"] == {"root": top_ref, "parent": middle_ref}


async def test_reply_to_a_missing_post_is_refused(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A reply to a post that does not exist is a final error and creates nothing."""
    alice = bluesky_pds.account("alice.test")
    post = new_post("into the void", reply_to=f"at://{alice.did}/{POSTS}/{rkey_for('missing')}")
    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, alice).publish(post)
    assert not caught.value.retryable and "does not exist" in caught.value.message
    assert await get_post(http, bluesky_pds, alice.did, rkey_for(post.post_id)) is None


async def test_over_long_text_is_refused_without_a_record(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """301 graphemes (or >3000 bytes) is refused up front; 300 graphemes of 2 code points pass."""
    alice = bluesky_pds.account("alice.test")
    adapter = make_adapter(http, bluesky_pds, alice)
    before = await list_rkeys(http, bluesky_pds, alice.did)
    for text in ("e\u0301" * (MAX_GRAPHEMES + 1), "👨‍👩‍👧‍👦" * 150):
        post = new_post(text)
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(post)
        assert not caught.value.retryable and not caught.value.auth_failed
        assert "Bluesky allows at most" in caught.value.message
    assert await list_rkeys(http, bluesky_pds, alice.did) == before

    fits = new_post("e\u0301" * MAX_GRAPHEMES)
    await adapter.publish(fits)
    record = await get_post(http, bluesky_pds, alice.did, rkey_for(fits.post_id))
    assert record is not None and record["text"] == fits.text


async def test_invalid_request_is_final_with_the_pds_message(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A record the PDS rejects (a malformed language tag) is final, with its reason in detail."""
    alice = bluesky_pds.account("alice.test")
    post = new_post("bad language", language="not a language!")
    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, alice).publish(post)
    error = caught.value
    assert not error.retryable and not error.auth_failed and error.status == 400
    assert error.detail is not None and error.detail.startswith("InvalidRequest:")
    assert "langs" in error.detail
    assert await get_post(http, bluesky_pds, alice.did, rkey_for(post.post_id)) is None


async def test_content_warning_and_sensitive_image(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """A CW goes in front of the text; the image is uploaded once, embedded and self-labelled."""
    bob = bluesky_pds.account("bob.test")
    image = tiny_png()
    post = new_post(
        "the details",
        spoiler_text="medical",
        media=(MediaItem(data=image, mime_type="image/png", description="an x-ray"),),
    )
    proxy, seen = await start_proxy(aiohttp_server, bluesky_pds, lambda nsid: "forward")
    adapter = make_adapter(http, bluesky_pds, bob, pds_url=proxy_url(proxy))
    first = await adapter.publish(post)
    assert await adapter.publish(post) == first
    assert seen.count("com.atproto.repo.uploadBlob") == 1
    assert seen.count("com.atproto.repo.createRecord") == 1
    record = await get_post(http, bluesky_pds, bob.did, rkey_for(post.post_id))
    assert record is not None
    assert record["text"] == "CW: medical\n\nthe details"
    assert record["labels"] == {
        "$type": "com.atproto.label.defs#selfLabels",
        "values": [{"val": "graphic-media"}],
    }
    embed = record["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    (entry,) = embed["images"]
    assert entry["alt"] == "an x-ray"
    assert entry["image"]["mimeType"] == "image/png" and entry["image"]["size"] == len(image)
    async with http.get(
        f"{bluesky_pds.pds_url}/xrpc/com.atproto.sync.getBlob",
        params={"did": bob.did, "cid": entry["image"]["ref"]["$link"]},
    ) as response:
        assert response.status == 200
        assert await response.read() == image


async def test_sensitive_text_only_post_gets_no_label(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """Without media, sensitive adds no self-label (Bluesky labels only blur media)."""
    bob = bluesky_pds.account("bob.test")
    post = new_post("words only", sensitive=True)
    await make_adapter(http, bluesky_pds, bob).publish(post)
    record = await get_post(http, bluesky_pds, bob.did, rkey_for(post.post_id))
    assert record is not None and "labels" not in record and record["text"] == "words only"


async def test_non_public_visibility_and_non_image_media_are_refused(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """Followers-only/direct posts and video are refused rather than posted publicly."""
    bob = bluesky_pds.account("bob.test")
    adapter = make_adapter(http, bluesky_pds, bob)
    video = MediaItem(data=b"\x00" * 16, mime_type="video/mp4")
    for post in (new_post("secret", visibility="private"), new_post("clip", media=(video,))):
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(post)
        assert not caught.value.retryable
        assert await get_post(http, bluesky_pds, bob.did, rkey_for(post.post_id)) is None


async def test_what_bluesky_cannot_carry_is_refused_in_its_words(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """A followers-only or direct post is refused, saying every Bluesky post is public; unlisted
    and a content warning go out."""
    bob = bluesky_pds.account("bob.test")
    adapter = make_adapter(http, bluesky_pds, bob)
    for visibility in ("private", "direct"):
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(new_post("secret", visibility=visibility))
        assert (caught.value.message, caught.value.retryable) == (
            f"bluesky: every Bluesky post is public; refusing a post meant to be {visibility!r}", False)
    for post in (new_post("open", visibility="unlisted"), new_post("hidden", spoiler_text="cw")):
        assert (await adapter.publish(post)).remote_id


async def test_rate_limit_is_retryable_with_retry_after(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """429 is retryable; retry_after comes from ratelimit-reset, or Retry-After when given."""
    alice = bluesky_pds.account("alice.test")
    headers: dict[str, str] = {}

    def rule(nsid: str) -> str | web.Response:
        if nsid != "com.atproto.repo.createRecord":
            return "forward"
        return web.json_response(
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            status=429,
            headers=headers,
        )

    proxy, _ = await start_proxy(aiohttp_server, bluesky_pds, rule)
    adapter = make_adapter(http, bluesky_pds, alice, pds_url=proxy_url(proxy))

    headers.update({"ratelimit-reset": str(int(time.time()) + 120), "ratelimit-remaining": "0"})
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(new_post("too fast"))
    error = caught.value
    assert error.retryable and error.status == 429 and not error.auth_failed
    assert error.retry_after is not None and 100 <= error.retry_after <= 121

    headers.clear()
    headers["Retry-After"] = "7"
    with pytest.raises(AdapterError) as caught:
        await adapter.publish(new_post("too fast again"))
    assert caught.value.retry_after == 7.0


async def test_retry_after_is_read_on_the_injected_clock(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """An HTTP-date Retry-After and an epoch ratelimit-reset are counted from the adapter's clock."""
    alice = bluesky_pds.account("alice.test")
    now = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    headers: dict[str, str] = {}

    def rule(nsid: str) -> str | web.Response:
        if nsid != "com.atproto.repo.createRecord":
            return "forward"
        return web.json_response({"error": "RateLimitExceeded"}, status=429, headers=headers)

    proxy, _ = await start_proxy(aiohttp_server, bluesky_pds, rule)
    adapter = make_adapter(http, bluesky_pds, alice, pds_url=proxy_url(proxy), clock=lambda: now)
    for given, expected in (
        ({"Retry-After": "Tue, 06 May 2031 07:08:39 GMT"}, 30.0),
        ({"Retry-After": "soon", "ratelimit-reset": str(int(now.timestamp()) + 90)}, 90.0),
        ({"ratelimit-reset": str(int(now.timestamp()) - 5)}, 0.0),
    ):
        headers.clear()
        headers.update(given)
        with pytest.raises(AdapterError) as caught:
            await adapter.publish(new_post("on our clock"))
        assert (caught.value.retry_after, caught.value.status) == (expected, 429)


async def test_server_errors_and_unreachable_pds_are_retryable(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds, aiohttp_server: ServerFactory
) -> None:
    """A 503 from the PDS and a PDS that cannot be reached are both retryable."""
    alice = bluesky_pds.account("alice.test")
    proxy, _ = await start_proxy(
        aiohttp_server,
        bluesky_pds,
        lambda nsid: web.json_response(
            {"error": "InternalServerError", "message": "down for maintenance"}, status=503
        )
        if nsid == "com.atproto.repo.createRecord"
        else "forward",
    )
    url = proxy_url(proxy)
    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, alice, pds_url=url).publish(new_post("not now"))
    assert caught.value.retryable and caught.value.status == 503

    await proxy.close()  # nothing listens on that port any more
    with pytest.raises(AdapterError) as caught:
        await make_adapter(http, bluesky_pds, alice, pds_url=url).publish(new_post("nobody home"))
    assert caught.value.retryable and caught.value.status is None


async def test_the_pds_never_reached_outside(
    http: aiohttp.ClientSession, bluesky_pds: BlueskyPds
) -> None:
    """The harness refused no outside connection or DNS lookup during these tests."""
    adapter = make_adapter(http, bluesky_pds, bluesky_pds.account("alice.test"))
    # A mention of a handle outside the PDS makes it try to resolve one; the harness must
    # answer that itself.
    post = new_post("hi @someone.example.com")
    await adapter.publish(post)
    record = await get_post(
        http, bluesky_pds, bluesky_pds.account("alice.test").did, rkey_for(post.post_id)
    )
    assert record is not None and "facets" not in record
    assert "refused" not in harness_log(bluesky_pds)
