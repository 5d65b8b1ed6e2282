"""Threads as the Bluesky app sends them: one ``applyWrites``, each post under a record key the
app chose (a TID), each reply naming the post before it by that address and by the CID the app
computed for the record it built, and the thread's reply and quote settings (a threadgate, a
postgate) under the posts' keys. Through Byline, with the real ``atproto`` SDK, to a real PDS.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from atproto import Client, models

from adapters.bluesky import rkey_for
from gateway.appkeys import IDENTITY
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, started_gateway, write_policy
from tests.platforms.bluesky.fixture import BlueskyPds, app_cid, app_tid, write_bluesky_policy

T = TypeVar("T")
POST = "app.bsky.feed.post"
THREADGATE = "app.bsky.feed.threadgate"
POSTGATE = "app.bsky.feed.postgate"
CREATE = "com.atproto.repo.applyWrites#create"


@pytest.fixture
def clock() -> ManualClock:
    """A clock moved by hand, starting now: the SDK refreshes tokens by its own clock."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def gw(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway on a real socket with the four tier accounts on the sandbox."""
    async with started_gateway(db_url, policy_dir, clock) as gateway:
        yield gateway


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """SDK clients made by a test; their sockets are closed when it ends."""
    made: list[Client] = []
    yield made
    for client in made:
        client.request.close()


async def run(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One blocking SDK call, in a thread, while the gateway serves."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def login(gw: Gateway, clients: list[Client], user: str, account: str, identifier: str) -> Client:
    """An unmodified SDK client pointed at the gateway, logged in with a fresh app password."""
    client = Client(base_url=str(gw.client.make_url("/")))
    clients.append(client)
    await run(client.login, identifier, await gw.app[IDENTITY].create(user=user, account=account))
    return client


def app_thread(did: str, texts: list[str], *, threadgate: bool = False, postgate: bool = False) -> list[dict[str, Any]]:
    """The writes of the Bluesky app's composer for a thread (its ``post`` in src/lib/api):
    each post under a fresh TID, createdAt a millisecond apart, replying to the one before by
    its address and the CID the app computed; a threadgate with the first post, a postgate with
    each, under the post's key."""
    writes: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    reply: dict[str, Any] | None = None
    for n, text in enumerate(texts):
        rkey = app_tid()
        uri = f"at://{did}/{POST}/{rkey}"
        created = (now + timedelta(milliseconds=n + 1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        record: dict[str, Any] = {"$type": POST, "createdAt": created, "text": text, "langs": ["en"]}
        if reply is not None:
            record["reply"] = reply
        writes.append({"$type": CREATE, "collection": POST, "rkey": rkey, "value": record})
        if threadgate and n == 0:
            writes.append({"$type": CREATE, "collection": THREADGATE, "rkey": rkey, "value": {
                "$type": THREADGATE, "createdAt": created, "post": uri,
                "allow": [{"$type": f"{THREADGATE}#followingRule"}],
            }})
        if postgate:
            writes.append({"$type": CREATE, "collection": POSTGATE, "rkey": rkey, "value": {
                "$type": POSTGATE, "createdAt": created, "post": uri,
                "embeddingRules": [{"$type": f"{POSTGATE}#disableRule"}],
            }})
        ref = {"cid": app_cid(record), "uri": uri}
        reply = {"root": reply["root"] if reply else ref, "parent": ref}
    return writes


def sdk_writes(did: str, writes: list[dict[str, Any]]) -> models.ComAtprotoRepoApplyWrites.Data:
    """The same writes as the SDK's input model (``validate: true``, as the app sends them)."""
    return models.ComAtprotoRepoApplyWrites.Data(repo=did, validate_=True, writes=[
        models.ComAtprotoRepoApplyWrites.Create(collection=w["collection"], rkey=w["rkey"], value=w["value"])
        for w in writes
    ])


async def pds_record(pds: BlueskyPds, uri: str) -> dict[str, Any] | None:
    """The record at ``uri`` as the PDS holds it (uri, cid, value), or None."""
    repo, collection, rkey = uri.removeprefix("at://").split("/")
    async with aiohttp.ClientSession() as http, http.get(
        f"{pds.pds_url}/xrpc/com.atproto.repo.getRecord",
        params={"repo": repo, "collection": collection, "rkey": rkey},
    ) as resp:
        if resp.status == 400:
            return None
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def posts_by_key(gw: Gateway, user: str, account: str) -> dict[str, dict[str, Any]]:
    """The account's posts on Byline by the record key they are written under."""
    status, body = await gw.call(user, "GET", f"/v1/posts?account={account}&limit=200")
    assert status == 200, body
    return {p["options"].get("record_key") or rkey_for(p["id"]): p for p in body["posts"]}


@pytest.mark.parametrize("tier", ["direct", "co-signed"])
async def test_a_thread_sent_in_one_apply_writes_lands_under_the_apps_keys(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client], tier: str,
) -> None:
    """Three posts in one applyWrites, with the app's keys, a threadgate and postgates: each post
    lands under its key, each reply points at its parent and root as the PDS holds them (not at
    the CIDs the app computed: the disclosure line, and on the co-signed account the later
    createdAt, make the records differ), the gates land with their posts and not before, a later
    createRecord reply waits for its parent too, and the log verifies. (Before: refused, "Byline
    chooses the record key".)"""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    approvals = "approvals:\n          required: 1\n          from: [alice]" if tier == "co-signed" else ""
    write_policy(policy_dir, "skyapp", f"""
        account: skyapp
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:CAROL_BSKY_APP_PASSWORD
        tier: {tier}
        owner: alice
        writers: [bob]
        disclosure: "—{{author}}"
        {approvals}
    """)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "bob", "skyapp", account.handle)
        words = secrets.token_hex(4)
        texts = [f"Thread {n}/3 from the app ({words})" for n in (1, 2, 3)]
        writes = app_thread(account.did, texts, threadgate=True, postgate=True)
        answer = await run(client.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
        assert answer.results is not None
        created = models.ComAtprotoRepoApplyWrites.CreateResult
        answered = [(r.uri, r.cid) for r in answer.results if isinstance(r, created)]
        assert [uri for uri, _ in answered] == [f"at://{account.did}/{w['collection']}/{w['rkey']}" for w in writes]
        post_uris = [f"at://{account.did}/{POST}/{w['rkey']}" for w in writes if w["collection"] == POST]
        gate_uris = [uri for uri, _ in answered if uri not in post_uris]
        assert len(gate_uris) == 4  # a threadgate, and a postgate a post

        # A reply the app sends later, to the last post, by the address and CID it was answered.
        last_cid = dict(answered)[post_uris[2]]
        last = models.create_strong_ref(models.ComAtprotoRepoStrongRef.Main(uri=post_uris[2], cid=last_cid))
        first = models.ComAtprotoRepoStrongRef.Main(uri=post_uris[0], cid=app_cid(writes[0]["value"]))
        later = await run(client.send_post, f"And one more ({words})",
                          reply_to=models.AppBskyFeedPost.ReplyRef(root=first, parent=last))
        post_uris.append(later.uri)

        for uri in gate_uris:
            assert await pds_record(bluesky_pds, uri) is None  # not before their post
        posts = await posts_by_key(gw, "bob", "skyapp")
        keys = [uri.rsplit("/", 1)[1] for uri in post_uris]
        if tier == "co-signed":
            assert [posts[k]["state"] for k in keys] == ["held"] * 4
            clock.advance(timedelta(minutes=10))  # approved later: written with the time it goes out
            for key in reversed(keys):  # the replies first: each waits for its parent
                status, body = await gw.act("alice", posts[key]["id"], "approve")
                assert status == 200, body
        for _ in range(6):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        posts = await posts_by_key(gw, "bob", "skyapp")
        assert [(posts[k]["state"], posts[k]["remote"]["id"]) for k in keys] == [
            ("published", uri) for uri in post_uris
        ]

        landed = [await pds_record(bluesky_pds, uri) for uri in post_uris]
        assert all(record is not None for record in landed), landed
        held = [(r["uri"], r["cid"], r["value"]) for r in landed if r is not None]
        assert [value["text"] for _, _, value in held[:3]] == [f"{t}\n\n—bob" for t in texts]
        assert held[0][1] != app_cid(writes[0]["value"])  # Byline wrote the record otherwise
        if tier == "direct":  # out at once, as Byline answered it would be
            assert dict(answered)[post_uris[0]] == held[0][1]
        root = {"uri": held[0][0], "cid": held[0][1]}
        assert "reply" not in held[0][2]
        for n in (1, 2, 3):
            assert held[n][2]["reply"] == {"root": root, "parent": {"uri": held[n - 1][0], "cid": held[n - 1][1]}}
        gates = [await pds_record(bluesky_pds, uri) for uri in gate_uris]
        assert [g["value"]["post"] if g else None for g in gates] == [
            post_uris[0], post_uris[0], post_uris[1], post_uris[2]
        ]
        assert gates[0] is not None and gates[0]["value"]["allow"] == [{"$type": f"{THREADGATE}#followingRule"}]

        # deleteRecord by the app's key: the post is deleted on the PDS.
        assert await run(client.delete_post, post_uris[3]) is True
        assert await pds_record(bluesky_pds, post_uris[3]) is None
        assert (await posts_by_key(gw, "bob", "skyapp"))[keys[3]]["state"] == "deleted"
        await verified_by_cli(gw)


async def test_the_gates_of_a_post_that_never_goes_out_are_never_written(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """A held post with its threadgate and postgate, taken back: neither it nor they reach the PDS."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skygated", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skygated", account.did)
        writes = app_thread(account.did, [f"Never out ({secrets.token_hex(4)})"], threadgate=True, postgate=True)
        await run(client.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
        assert await run(client.delete_post, f"at://{account.did}/{POST}/{writes[0]['rkey']}") is True
        for _ in range(2):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        assert [await pds_record(bluesky_pds, f"at://{account.did}/{w['collection']}/{w['rkey']}")
                for w in writes] == [None, None, None]
        status, body = await gw.act("bob", (await posts_by_key(gw, "alice", "skygated"))[writes[0]["rkey"]]["id"],
                                    "approve")
        assert status == 409, body


async def test_deleting_a_published_post_deletes_its_threadgate_and_postgate(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """A post that went out with its threadgate and postgate, deleted by the app (deleteRecord of
    the post, the gates being Byline's to write): the PDS holds none of the three after, where
    the gates stayed before, ruling replies and quotes of a post that was gone."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skydel", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD", tier="direct")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skydel", account.did)
        writes = app_thread(account.did, [f"Out, then deleted ({secrets.token_hex(4)})"], threadgate=True,
                            postgate=True)
        await run(client.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
        await gw.tick()
        uris = [f"at://{account.did}/{w['collection']}/{w['rkey']}" for w in writes]
        assert [await pds_record(bluesky_pds, uri) is not None for uri in uris] == [True, True, True]

        assert await run(client.delete_post, uris[0]) is True

        assert [await pds_record(bluesky_pds, uri) for uri in uris] == [None, None, None]
        assert (await posts_by_key(gw, "alice", "skydel"))[writes[0]["rkey"]]["state"] == "deleted"
        await verified_by_cli(gw)


async def xrpc(gw: Gateway, nsid: str, token: str, body: Any) -> tuple[int, Any]:
    """A raw XRPC procedure call, for what the SDK would refuse to send."""
    resp = await gw.client.post(f"/xrpc/{nsid}", json=body, headers={"Authorization": f"Bearer {token}"})
    return resp.status, await resp.json()


async def test_app_keys_that_are_not_tids_or_are_taken_are_refused_as_the_pds_refuses(gw: Gateway) -> None:
    """A key that is no TID is a 400 in the PDS's words; a key a post of the account has (the
    app's own, or one Byline derived), or that one batch gives twice, is the PDS's 500 for a
    record that exists; a gate without its post, or on an account with no PDS, is a 400 that
    says what to do; and nothing of a refused batch is stored."""
    resp = await gw.client.post("/xrpc/com.atproto.server.createSession", json={
        "identifier": "bob", "password": await gw.app[IDENTITY].create(user="bob", account="delayed"),
    })
    live = await resp.json()
    did, token = live["did"], live["accessJwt"]
    thread = app_thread(did, ["one", "two"])
    status, body = await xrpc(gw, "com.atproto.repo.applyWrites", token, {"repo": did, "writes": thread})
    assert status == 200, body
    first_key = thread[0]["rkey"]
    posts = await posts_by_key(gw, "bob", "delayed")
    assert [posts[w["rkey"]]["state"] for w in thread] == ["scheduled", "scheduled"]
    second = posts[thread[1]["rkey"]]
    assert second["options"]["reply_to_post"] == posts[first_key]["id"]  # it waits for its parent
    derived = rkey_for(posts[first_key]["id"])

    before = await gw.snapshot()
    record = {"$type": POST, "text": "again", "createdAt": "2026-01-01T00:00:00.000Z"}
    fresh = app_tid()
    cases: list[tuple[str, dict[str, Any], int, str, str]] = [
        ("com.atproto.repo.createRecord", {"repo": did, "collection": POST, "rkey": first_key, "record": record},
         500, "InternalServerError", f"Record already exists: at://{did}/{POST}/{first_key}"),
        ("com.atproto.repo.createRecord", {"repo": did, "collection": POST, "rkey": derived, "record": record},
         500, "InternalServerError", "Record already exists"),
        ("com.atproto.repo.applyWrites", {"repo": did, "writes": [
            {"$type": CREATE, "collection": POST, "rkey": fresh, "value": record},
            {"$type": CREATE, "collection": POST, "rkey": first_key, "value": record}]},
         500, "InternalServerError", "Record already exists"),
        ("com.atproto.repo.applyWrites", {"repo": did, "writes": [
            {"$type": CREATE, "collection": POST, "rkey": fresh, "value": record},
            {"$type": CREATE, "collection": POST, "rkey": fresh, "value": record}]},
         500, "InternalServerError", "Record already exists"),
        ("com.atproto.repo.applyWrites", {"repo": did, "writes": [
            {"$type": CREATE, "collection": POST, "rkey": fresh, "value": record},
            {"$type": CREATE, "collection": POST, "rkey": "3kabc", "value": record}]},
         400, "InvalidRequest", 'Invalid record key for app.bsky.feed.post: Invalid TID string (got "3kabc")'),
        ("com.atproto.repo.applyWrites", {"repo": did, "writes": [
            {"$type": CREATE, "collection": POST, "rkey": fresh, "value": record},
            {"$type": CREATE, "collection": THREADGATE, "rkey": app_tid(), "value": {}}]},
         400, "InvalidRequest", f"writes/2: Byline writes an {THREADGATE} only with its post"),
        ("com.atproto.repo.applyWrites", {"repo": did, "writes": app_thread(did, ["gated"], threadgate=True)},
         400, "InvalidRequest", f"writes/2: {THREADGATE} sets who may reply or quote on Bluesky; delayed is on"),
        ("com.atproto.repo.createRecord", {"repo": did, "collection": THREADGATE, "rkey": first_key, "record": {}},
         400, "InvalidRequest", f"{THREADGATE} sets who may reply or quote on Bluesky; delayed is on sandbox"),
    ]
    for nsid, sent, status_wanted, error, message in cases:
        status, answer = await xrpc(gw, nsid, token, sent)
        assert (status, answer["error"]) == (status_wanted, error), (sent, answer)
        assert answer["message"].startswith(message), answer
    assert await gw.snapshot() == before

    # Taken back by the app's key while it waits; its reply then fails when due, saying why.
    status, body = await xrpc(gw, "com.atproto.repo.deleteRecord", token,
                              {"repo": did, "collection": POST, "rkey": first_key})
    assert (status, body) == (200, {})
    assert (await posts_by_key(gw, "bob", "delayed"))[first_key]["state"] == "cancelled"


async def test_posts_under_the_apps_keys_are_read_back_by_them(gw: Gateway, clients: list[Client]) -> None:
    """On an account with no PDS, getPosts and getAuthorFeed find a published post by the
    address with the app's key, which is the one it shows; derived keys still work beside it."""
    client = await login(gw, clients, "alice", "direct", "alice")
    assert client.me is not None
    did = client.me.did
    writes = app_thread(did, ["keyed by the app"])
    await run(client.com.atproto.repo.apply_writes, sdk_writes(did, writes))
    plain = await run(client.send_post, "keyed by Byline")
    await gw.tick()
    keyed = f"at://{did}/{POST}/{writes[0]['rkey']}"
    found = await run(client.app.bsky.feed.get_posts, {"uris": [keyed, plain.uri]})
    assert [(p.uri, p.record.text) for p in found.posts] == [
        (keyed, "keyed by the app"), (plain.uri, "keyed by Byline"),
    ]
    feed = await run(client.app.bsky.feed.get_author_feed, {"actor": did})
    assert {keyed, plain.uri} <= {item.post.uri for item in feed.feed}


async def test_a_gate_carrying_words_is_refused_and_nothing_of_its_batch_is_kept(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A writer on a co-signed account sends the approvers a harmless post, with a threadgate
    that also carries words and a link card. A gate goes out without approvals, so those words
    would reach the account's public repository unapproved: the batch is refused, naming the
    field, and nothing of it is stored."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skyworded", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        resp = await gw.client.post("/xrpc/com.atproto.server.createSession", json={
            "identifier": account.did, "password": await gw.app[IDENTITY].create(user="alice", account="skyworded"),
        })
        token = (await resp.json())["accessJwt"]
        writes = app_thread(account.did, ["Happy Friday!"], threadgate=True)
        writes[1]["value"]["text"] = "UNAPPROVED: we are shutting down tomorrow"
        before = await gw.snapshot()
        status, body = await xrpc(gw, "com.atproto.repo.applyWrites", token, {"repo": account.did, "writes": writes})
        assert (status, body["error"]) == (400, "InvalidRequest"), body
        assert "Record/text is not part of app.bsky.feed.threadgate" in body["message"], body
        assert await gw.snapshot() == before


async def test_a_batch_the_policy_would_refuse_in_part_is_refused_whole(gw: Gateway) -> None:
    """A PDS writes all of an applyWrites or none of it. Posts of a thread that Byline would
    refuse one by one (words past the limit, an embed the account's platform does not carry),
    and a reply to a post written after it in the batch or to itself, refuse the whole batch
    before any post of it is in: no first half published while the app is told it failed,
    whose retry would then find its keys taken."""
    resp = await gw.client.post("/xrpc/com.atproto.server.createSession", json={
        "identifier": "bob", "password": await gw.app[IDENTITY].create(user="bob", account="delayed"),
    })
    live = await resp.json()
    did, token = live["did"], live["accessJwt"]
    before = await gw.snapshot()
    too_long = app_thread(did, ["Thread 1/2", "x" * 5000])
    with_embed = app_thread(did, ["Thread 1/2", "Thread 2/2"])
    with_embed[1]["value"]["embed"] = {"$type": "app.bsky.embed.external", "external": {
        "uri": "https://example.com", "title": "t", "description": "d"}}
    forward = app_thread(did, ["Thread 1/2", "Thread 2/2"])
    forward[0]["value"]["reply"] = {"root": {"uri": f"at://{did}/{POST}/{forward[1]['rkey']}", "cid": "bafy"},
                                    "parent": {"uri": f"at://{did}/{POST}/{forward[1]['rkey']}", "cid": "bafy"}}
    for writes, said in ((too_long, "writes/2: "), (with_embed, "writes/2: Invalid app.bsky.feed.post record: "
                                                                 "Byline publishes embeds to Bluesky accounts only"),
                         (forward, "Invalid app.bsky.feed.post record: reply.parent names a post written after it")):
        status, body = await xrpc(gw, "com.atproto.repo.applyWrites", token, {"repo": did, "writes": writes})
        assert (status, body["error"]) == (400, "InvalidRequest"), body
        assert body["message"].startswith(said), body
        assert await gw.snapshot() == before
    key = app_tid()
    itself = {"uri": f"at://{did}/{POST}/{key}", "cid": "bafy"}
    status, body = await xrpc(gw, "com.atproto.repo.createRecord", token, {
        "repo": did, "collection": POST, "rkey": key,
        "record": {"$type": POST, "text": "me", "createdAt": "2026-01-01T00:00:00.000Z",
                   "reply": {"root": itself, "parent": itself}}})
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert "reply.parent names this post itself" in body["message"], body
    assert await gw.snapshot() == before
