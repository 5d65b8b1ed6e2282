"""Who may reply to and quote a post already out, changed from a Bluesky app: "Edit interaction
settings" and "Hide reply" write the post's threadgate and postgate under its key
(``putRecord``, ``createRecord``, ``deleteRecord``, ``applyWrites``). Through Byline, with the
real ``atproto`` SDK, to a real PDS; each change in the log as ``post.gates_changed``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import html
import json
import re
import secrets
import textwrap
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import markupsafe
import pytest
from atproto import Client, models
from atproto_client.exceptions import AtProtocolError, RateLimitExceededError
from structlog.testing import capture_logs

from adapters.bluesky import BlueskyAdapter
from gateway.appkeys import APPENDER, IDENTITY, NOTIFIER, REGISTRY
from gateway.audit.gates import CHANGES_PER_HOUR
from gateway.clock import ManualClock
from gateway.services.posts import PolicyMoved, PostService
from gateway.storage.db import DatabaseUnavailable
from gateway.types import spoken
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_threads import (
    POST,
    POSTGATE,
    THREADGATE,
    app_thread,
    login,
    pds_record,
    posts_by_key,
    run,
    sdk_writes,
    xrpc,
)
from tests.conftest import Gateway, started_gateway, write_policy
from tests.pages.conftest import pages_on
from tests.pages.test_public_pages import _card
from tests.platforms.bluesky.fixture import BlueskyPds, app_cid, app_tid, write_bluesky_policy
from tests.test_notify_webhooks import Receiver, hook, new_secret

__all__ = ["hook"]  # the webhook receiver's fixture, for these tests too

CREATE = "com.atproto.repo.applyWrites#create"
UPDATE = "com.atproto.repo.applyWrites#update"


@pytest.fixture
def clock() -> ManualClock:
    """A clock moved by hand, starting now: the SDK refreshes tokens by its own clock."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


def skygates_policy(bluesky_pds: BlueskyPds, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
                    *, notify: str = "", writers: str = "[carol]") -> None:
    """``skygates`` on carol.test: co-signed, alice its owner, carol its writer (or ``writers``),
    bob its approver; ``notify``, its webhooks as the policy's YAML says them."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "skygates", f"""
        account: skygates
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:CAROL_BSKY_APP_PASSWORD
        tier: co-signed
        owner: alice
        writers: {writers}
        approvals:
          required: 1
          from: [bob]
    """ + textwrap.indent(textwrap.dedent(notify), " " * 8))


@pytest.fixture
async def gw(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    """``skygates`` on carol.test: co-signed, alice its owner, carol its writer, bob its approver."""
    skygates_policy(bluesky_pds, policy_dir, monkeypatch)
    async with started_gateway(db_url, policy_dir, clock) as gateway:
        yield gateway


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    """SDK clients made by a test; their sockets are closed when it ends."""
    made: list[Client] = []
    yield made
    for client in made:
        client.request.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def threadgate(post_uri: str, **more: Any) -> dict[str, Any]:
    """A threadgate as the app writes it: replies from people the account follows, by default."""
    return {"$type": THREADGATE, "post": post_uri, "createdAt": _now(),
            "allow": [{"$type": f"{THREADGATE}#followingRule"}], **more}


def postgate(post_uri: str, **more: Any) -> dict[str, Any]:
    """A postgate as the app writes it: no quotes."""
    return {"$type": POSTGATE, "post": post_uri, "createdAt": _now(),
            "embeddingRules": [{"$type": f"{POSTGATE}#disableRule"}], **more}


async def published_post(gw: Gateway, client: Client, did: str) -> str:
    """A post carol sends from the app with a threadgate, approved by bob and out: its address."""
    writes = app_thread(did, [f"Out, with replies from followers ({secrets.token_hex(4)})"], threadgate=True)
    await run(client.com.atproto.repo.apply_writes, sdk_writes(did, writes))
    post = (await posts_by_key(gw, "carol", "skygates"))[writes[0]["rkey"]]
    status, body = await gw.act("bob", post["id"], "approve")
    assert status == 200, body
    await gw.tick()
    uri = f"at://{did}/{POST}/{writes[0]['rkey']}"
    assert (await gw.get("carol", post["id"]))["state"] == "published"
    return uri


async def on_pds(pds: BlueskyPds, handle: str, nsid: str, body: dict[str, Any]) -> dict[str, Any]:
    """A write made on the PDS itself by ``handle``, not through Byline."""
    account = pds.account(handle)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{pds.pds_url}/xrpc/com.atproto.server.createSession",
                             json={"identifier": account.handle, "password": account.app_password}) as resp:
            assert resp.status == 200, await resp.text()
            token = (await resp.json())["accessJwt"]
        async with http.post(f"{pds.pds_url}/xrpc/{nsid}", json={"repo": account.did, **body},
                             headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())


async def log_bodies(gw: Gateway) -> list[tuple[int, dict[str, Any]]]:
    """The log's entries with their indexes, as the public log API serves them."""
    size = await gw.log_size()
    status, body = await gw.call(None, "GET", f"/log/entries?start=0&end={size}")
    assert status == 200, body
    return [(int(e["index"]), json.loads(base64.b64decode(e["leaf"]))) for e in body["entries"]]


async def gate_bodies(gw: Gateway) -> list[tuple[int, dict[str, Any]]]:
    """The log's ``post.gates_changed`` entries with their indexes, as the public log API serves them."""
    return [(i, e) for i, e in await log_bodies(gw) if e["type"] == "post.gates_changed"]


async def gate_entries(gw: Gateway) -> list[tuple[str, str, str, str | None]]:
    """The log's ``post.gates_changed`` entries: actor, post, gate, CID."""
    return [(e["actor"], e["post"], e["data"]["gate"], e["data"]["cid"]) for _, e in await gate_bodies(gw)]


async def xrpc_login(gw: Gateway, user: str, identifier: str) -> str:
    """An access token for ``user`` on ``skygates``, as an app gets one."""
    resp = await gw.client.post("/xrpc/com.atproto.server.createSession", json={
        "identifier": identifier, "password": await gw.app[IDENTITY].create(user=user, account="skygates"),
    })
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["accessJwt"])


async def _carols_post(
    pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> tuple[str, Client, Client, str, str, str]:
    """carol and alice signed in to skygates, and a post of carol's published: the account's
    DID, carol's client and alice's, the post's at:// address, its record key and its id."""
    account = pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    alice = await login(gw, clients, "alice", "skygates", account.did)
    post_uri = await published_post(gw, carol, account.did)
    rkey = post_uri.rsplit("/", 1)[1]
    return account.did, carol, alice, post_uri, rkey, (await posts_by_key(gw, "carol", "skygates"))[rkey]["id"]


async def test_the_team_hides_a_reply_closes_replies_and_quotes_on_a_published_post(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """On a co-signed account, with no approval: carol (its writer) hides a reply and closes
    replies, alice (its owner) turns quotes off and changes both in one applyWrites, carol takes
    the threadgate off. Each lands on the PDS as sent, each is in the log with the CID the PDS
    gave the record (none for a deletion), and the log verifies. (Before: each refused, 400,
    "Byline writes an app.bsky.feed.threadgate only with its post".)"""
    did, carol, alice, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri, quote_uri = f"at://{did}/{THREADGATE}/{rkey}", f"at://{did}/{POSTGATE}/{rkey}"
    first = await pds_record(bluesky_pds, gate_uri)
    assert first is not None and first["value"]["allow"] == [{"$type": f"{THREADGATE}#followingRule"}]
    reply = await on_pds(bluesky_pds, "bob.test", "com.atproto.repo.createRecord", {"collection": POST, "record": {
        "$type": POST, "text": "An abusive reply", "createdAt": _now(),
        "reply": {"root": {"uri": post_uri, "cid": (await pds_record(bluesky_pds, post_uri) or {})["cid"]},
                  "parent": {"uri": post_uri, "cid": (await pds_record(bluesky_pds, post_uri) or {})["cid"]}},
    }})

    def put(collection: str, record: dict[str, Any]) -> models.ComAtprotoRepoPutRecord.Data:
        return models.ComAtprotoRepoPutRecord.Data(repo=did, collection=collection, rkey=rkey, record=record)

    hidden = await run(carol.com.atproto.repo.put_record,
                       put(THREADGATE, threadgate(post_uri, hiddenReplies=[reply["uri"]])))
    assert hidden.uri == gate_uri
    landed = await pds_record(bluesky_pds, gate_uri)
    assert landed is not None and (landed["cid"], landed["value"]["hiddenReplies"]) == (hidden.cid, [reply["uri"]])

    closed = await run(carol.com.atproto.repo.put_record, put(THREADGATE, threadgate(post_uri, allow=[])))
    assert (await pds_record(bluesky_pds, gate_uri) or {})["value"]["allow"] == []
    no_quotes = await run(alice.com.atproto.repo.create_record, models.ComAtprotoRepoCreateRecord.Data(
        repo=did, collection=POSTGATE, rkey=rkey, record=postgate(post_uri)))
    assert (await pds_record(bluesky_pds, quote_uri) or {})["cid"] == no_quotes.cid

    await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
        repo=did, collection=THREADGATE, rkey=rkey))
    assert await pds_record(bluesky_pds, gate_uri) is None

    both = await run(alice.com.atproto.repo.apply_writes, models.ComAtprotoRepoApplyWrites.Data(repo=did, writes=[
        models.ComAtprotoRepoApplyWrites.Create(collection=THREADGATE, rkey=rkey, value=threadgate(
            post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])),
        models.ComAtprotoRepoApplyWrites.Update(collection=POSTGATE, rkey=rkey, value=postgate(
            post_uri, detachedEmbeddingUris=[reply["uri"]])),
    ]))
    assert both.results is not None
    cids = [str(getattr(r, "cid", "")) for r in both.results]
    now = [await pds_record(bluesky_pds, gate_uri), await pds_record(bluesky_pds, quote_uri)]
    assert [r["cid"] if r else None for r in now] == cids
    assert now[1] is not None and now[1]["value"]["detachedEmbeddingUris"] == [reply["uri"]]

    assert await gate_entries(gw) == [
        ("carol", post_id, THREADGATE, hidden.cid), ("carol", post_id, THREADGATE, closed.cid),
        ("alice", post_id, POSTGATE, no_quotes.cid), ("carol", post_id, THREADGATE, None),
        ("alice", post_id, THREADGATE, cids[0]), ("alice", post_id, POSTGATE, cids[1]),
    ]
    assert (await gw.get("carol", post_id))["state"] == "published"
    await verified_by_cli(gw)


async def test_a_gate_is_not_written_while_another_file_speaks_for_the_account(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A direct file signs in to carol.test by its DID with the account's own password (no
    handle in common for the loader to see): the PDS says it is skygates' account. Who may reply
    to skygates' post is then not changed, the app told why (``UpstreamFailure``), the PDS's
    threadgate and the log as they were; with the direct file removed, the change is written."""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    before, logged = await pds_record(bluesky_pds, gate_uri), await gate_entries(gw)
    monkeypatch.setenv("QUICK_BSKY_PASSWORD", bluesky_pds.account("carol.test").password)
    directory = gw.app[REGISTRY].directory
    write_bluesky_policy(directory, "quick", handle=did, pds=bluesky_pds.pds_url,
                         credential_env="QUICK_BSKY_PASSWORD", tier="direct")
    assert await gw.sync_policies() == ["quick"]

    closed = models.ComAtprotoRepoPutRecord.Data(repo=did, collection=THREADGATE, rkey=rkey,
                                                 record=threadgate(post_uri, allow=[]))
    with pytest.raises(AtProtocolError) as refused:
        await run(carol.com.atproto.repo.put_record, closed)
    assert "skygates and quick publish as one Bluesky account" in str(refused.value), refused.value
    assert (await pds_record(bluesky_pds, gate_uri), await gate_entries(gw)) == (before, logged)

    (directory / "quick.yaml").unlink()
    assert await gw.sync_policies() == ["quick"]
    await run(carol.com.atproto.repo.put_record, closed)
    assert (await pds_record(bluesky_pds, gate_uri) or {})["value"]["allow"] == []


async def test_a_refused_change_of_a_posts_gates_changes_nothing(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """An approver's change, a gate that carries words or names another post, one for a post
    still held or one Byline did not write, a create where the PDS holds one, a swap that
    fails, a change batched with a new post, an edit of the post itself: each refused with
    the PDS's error name, and nothing changed on the PDS, in Byline or in its log. Once the
    post is deleted, its gates are no more to change."""
    did, carol_app, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    waiting = app_thread(did, ["Held for bob"], threadgate=True)
    await run(carol_app.com.atproto.repo.apply_writes, sdk_writes(did, waiting))
    held_key = waiting[0]["rkey"]
    theirs = await on_pds(bluesky_pds, "carol.test", "com.atproto.repo.createRecord", {"collection": POST, "record": {
        "$type": POST, "text": "Written on the PDS, not through Byline", "createdAt": _now()}})
    their_key = theirs["uri"].rsplit("/", 1)[1]
    carol, bob = await xrpc_login(gw, "carol", did), await xrpc_login(gw, "bob", did)

    def put(rkey: str, record: dict[str, Any], **more: Any) -> dict[str, Any]:
        return {"repo": did, "collection": THREADGATE, "rkey": rkey, "record": record, **more}

    cases: list[tuple[str, str, dict[str, Any], int, str, str]] = [
        (bob, "com.atproto.repo.putRecord", put(rkey, threadgate(post_uri, allow=[])),
         403, "Forbidden", "bob may not change who may reply to or quote this post"),
        (carol, "com.atproto.repo.putRecord", put(rkey, threadgate(post_uri, text="UNAPPROVED words")),
         400, "InvalidRequest", f"Invalid {THREADGATE} record: Record/text is not part of {THREADGATE}"),
        (carol, "com.atproto.repo.putRecord", put(rkey, threadgate(theirs["uri"])),
         400, "InvalidRequest", f"Invalid {THREADGATE} record: Record/post must be {post_uri}"),
        (carol, "com.atproto.repo.putRecord", put(held_key, threadgate(f"at://{did}/{POST}/{held_key}")),
         400, "InvalidRequest", f"at://{did}/{POST}/{held_key} has not gone out yet (held)"),
        (carol, "com.atproto.repo.deleteRecord", {"repo": did, "collection": THREADGATE, "rkey": their_key},
         400, "InvalidRequest", f"Could not locate record: {theirs['uri']} is not a post made through Byline"),
        (carol, "com.atproto.repo.createRecord", put(rkey, threadgate(post_uri)),
         500, "InternalServerError", ""),
        (carol, "com.atproto.repo.putRecord",
         put(rkey, threadgate(post_uri, allow=[]), swapRecord=app_cid({"not": "the gate"})),
         400, "InvalidSwap", ""),
        (carol, "com.atproto.repo.applyWrites", {"repo": did, "writes": [
            {"$type": CREATE, "collection": POST, "rkey": app_tid(), "value": {
                "$type": POST, "text": "new", "createdAt": _now()}},
            {"$type": UPDATE, "collection": THREADGATE, "rkey": rkey, "value": threadgate(post_uri, allow=[])}]},
         400, "InvalidRequest", f"writes/2: Byline writes an {THREADGATE} only with its post"),
        (carol, "com.atproto.repo.putRecord", {"repo": did, "collection": POST, "rkey": rkey, "record": {
            "$type": POST, "text": "Edited", "createdAt": _now()}},
         400, "InvalidRequest", "Bluesky posts are not edited"),
    ]
    gate_before = await pds_record(bluesky_pds, gate_uri)
    before, size = await gw.snapshot(), await gw.log_size()
    for token, nsid, sent, status_wanted, error, message in cases:
        status, answer = await xrpc(gw, nsid, token, sent)
        assert (status, answer["error"]) == (status_wanted, error), (nsid, sent, answer)
        assert answer["message"].startswith(message), answer
    assert await pds_record(bluesky_pds, gate_uri) == gate_before
    assert await pds_record(bluesky_pds, f"at://{did}/{THREADGATE}/{held_key}") is None
    assert await pds_record(bluesky_pds, f"at://{did}/{THREADGATE}/{their_key}") is None
    assert (await gw.snapshot(), await gw.log_size()) == (before, size)

    assert await run(carol_app.delete_post, post_uri) is True
    assert await pds_record(bluesky_pds, gate_uri) is None
    status, answer = await xrpc(gw, "com.atproto.repo.putRecord", carol, put(rkey, threadgate(post_uri)))
    assert (status, answer["error"]) == (400, "InvalidRequest"), answer
    assert answer["message"] == f"{post_uri} is deleted: it has no {THREADGATE} to change"
    assert await pds_record(bluesky_pds, gate_uri) is None
    assert await gate_entries(gw) == []
    await verified_by_cli(gw)


async def test_a_gate_naming_an_address_the_pds_refuses_is_refused_as_it_is_sent(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """A threadgate or postgate sent with a post, naming a reply, a quote or a list by a string
    that starts "at://" but is no AT-URI: refused at once (400 InvalidRequest, nothing stored
    or logged). Before, it was kept with the post, the post was approved, and the PDS then
    refused the whole commit, so the approved post failed for good."""
    account = bluesky_pds.account("carol.test")
    carol = await xrpc_login(gw, "carol", account.did)
    bad = "at://not an address"
    broken: list[tuple[str, dict[str, Any], str]] = [
        (THREADGATE, {"hiddenReplies": [bad]}, "Record/hiddenReplies/0 must be an at:// URI"),
        (THREADGATE, {"allow": [{"$type": f"{THREADGATE}#listRule", "list": bad}]},
         "Record/allow/0/list must be an at:// URI"),
        (POSTGATE, {"detachedEmbeddingUris": [bad]}, "Record/detachedEmbeddingUris/0 must be an at:// URI"),
    ]
    before, size = await gw.snapshot(), await gw.log_size()
    for collection, fields, message in broken:
        writes = app_thread(account.did, ["Out, once approved"], threadgate=collection == THREADGATE,
                            postgate=collection == POSTGATE)
        writes[1]["value"].update(fields)
        status, answer = await xrpc(gw, "com.atproto.repo.applyWrites", carol, {"repo": account.did, "writes": writes})
        assert (status, answer["error"]) == (400, "InvalidRequest"), (fields, answer)
        assert answer["message"] == f"writes/2: Invalid {collection} record: {message}", answer
    assert (await gw.snapshot(), await gw.log_size()) == (before, size)


async def test_a_posts_gates_change_at_most_thirty_times_an_hour_then_wait_as_a_pds_says(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], clock: ManualClock,
) -> None:
    """Carol changes who may reply to her post 30 times, a minute apart: the 31st is refused
    as a PDS refuses one write too many (429 ``RateLimitExceeded``, its ``RateLimit-*``
    headers and ``Retry-After``: in 30 minutes, when the first change leaves the hour), read
    so by the SDK, and nothing changes on the PDS or in the log. Another post has its own
    budget. Once the first change is an hour old, a batch of two is refused whole (one fits),
    and of two sent at once one is written, the other told to wait for the second change to
    leave the hour. The log verifies.
    (Before: every change was written and listed on the post's card, without end.)"""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    other_uri = await published_post(gw, carol, did)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"

    def put(uri: str, **more: Any) -> models.ComAtprotoRepoPutRecord.Data:
        return models.ComAtprotoRepoPutRecord.Data(repo=did, collection=THREADGATE, rkey=uri.rsplit("/", 1)[1],
                                                   record=threadgate(uri, **more))

    rules: list[list[dict[str, str]]] = [[], [{"$type": f"{THREADGATE}#mentionRule"}]]
    for n in range(CHANGES_PER_HOUR):
        await run(carol.com.atproto.repo.put_record, put(post_uri, allow=rules[n % 2]))
        clock.advance(timedelta(minutes=1))
    assert CHANGES_PER_HOUR == 30

    before, logged, size = await pds_record(bluesky_pds, gate_uri), await gate_entries(gw), await gw.log_size()
    with pytest.raises(RateLimitExceededError) as refused:
        await run(carol.com.atproto.repo.put_record, put(post_uri, allow=rules[0], hiddenReplies=[other_uri]))
    limited = refused.value
    assert limited.response is not None and limited.response.status_code == 429
    content = limited.response.content
    assert getattr(content, "error", None) == "RateLimitExceeded", content
    assert (limited.limit, limited.remaining, limited.policy) == (30, 0, "30;w=3600")
    assert limited.reset_at == clock.now() + timedelta(minutes=30)
    assert limited.response.headers["retry-after"] == "1800"
    assert getattr(content, "message", "").endswith(
        f"post {post_id} changed 30 times in the last hour, and it may change 30 times an hour; "
        "try again in 1800 seconds"), content
    assert (await pds_record(bluesky_pds, gate_uri), await gate_entries(gw), await gw.log_size()) == (
        before, logged, size)

    await run(carol.com.atproto.repo.put_record, put(other_uri, allow=[]))
    assert (await pds_record(bluesky_pds, other_uri.replace(POST, THREADGATE)) or {})["value"]["allow"] == []

    clock.advance(timedelta(minutes=30))  # the first change is an hour old: one more fits
    token = await xrpc_login(gw, "carol", did)
    both = {"repo": did, "writes": [
        {"$type": UPDATE, "collection": THREADGATE, "rkey": rkey, "value": threadgate(post_uri, allow=[])},
        {"$type": CREATE, "collection": POSTGATE, "rkey": rkey, "value": postgate(post_uri)},
    ]}
    resp = await gw.client.post("/xrpc/com.atproto.repo.applyWrites", json=both,
                                headers={"Authorization": f"Bearer {token}"})
    answer = await resp.json()
    assert (resp.status, answer["error"], resp.headers["Retry-After"]) == (429, "RateLimitExceeded", "60"), answer
    assert await pds_record(bluesky_pds, f"at://{did}/{POSTGATE}/{rkey}") is None
    assert await pds_record(bluesky_pds, gate_uri) == before

    # Two changes at once for the one that fits: one is written, the other waits its minute.
    sent = [threadgate(post_uri, allow=[]), threadgate(post_uri, allow=rules[1])]
    answers = await asyncio.gather(*(gw.client.post(
        "/xrpc/com.atproto.repo.putRecord", headers={"Authorization": f"Bearer {token}"},
        json={"repo": did, "collection": THREADGATE, "rkey": rkey, "record": record}) for record in sent))
    assert sorted(r.status for r in answers) == [200, 429], [await r.text() for r in answers]
    [written] = [record for record, r in zip(sent, answers, strict=True) if r.status == 200]
    assert [r.headers.get("Retry-After") for r in answers if r.status == 429] == ["60"]
    assert (await pds_record(bluesky_pds, gate_uri) or {})["value"]["allow"] == written["allow"]
    assert [post for _, post, _, _ in await gate_entries(gw)].count(post_id) == 31
    await verified_by_cli(gw)


async def test_thirty_changes_of_a_posts_gates_in_every_hour_the_gateway_made_verify(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], clock: ManualClock,
) -> None:
    """Carol changes who may reply to her post 30 times, two minutes apart, then once more
    exactly an hour after the first (when it leaves the post's hour), through Byline to the PDS;
    one more at that moment is refused (429). The log holds the 31 changes, the last exactly an
    hour after the first, and the real ``byline audit verify``, which now names a change past
    the budget, passes it: its hour is the gateway's, the moment an hour before left out."""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    rules: list[list[dict[str, str]]] = [[], [{"$type": f"{THREADGATE}#mentionRule"}]]

    def put(n: int) -> models.ComAtprotoRepoPutRecord.Data:
        return models.ComAtprotoRepoPutRecord.Data(repo=did, collection=THREADGATE, rkey=rkey,
                                                   record=threadgate(post_uri, allow=rules[n % 2]))

    for n in range(CHANGES_PER_HOUR):
        await run(carol.com.atproto.repo.put_record, put(n))
        clock.advance(timedelta(minutes=2))
    await run(carol.com.atproto.repo.put_record, put(CHANGES_PER_HOUR))
    with pytest.raises(RateLimitExceededError):
        await run(carol.com.atproto.repo.put_record, put(CHANGES_PER_HOUR + 1))
    times = [datetime.fromisoformat(e["ts"]) for _, e in await gate_bodies(gw) if e["post"] == post_id]
    assert (len(times), times[-1] - times[0], times[-1] - times[1]) == (
        CHANGES_PER_HOUR + 1, timedelta(hours=1), timedelta(minutes=58))
    await verified_by_cli(gw)


async def test_two_gateways_racing_for_a_posts_last_change_keep_one(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's post has had 29 changes this hour; two gateways on one database each take a
    change of its threadgate for the 30th. The second gateway's is counted and written to the
    PDS; before it is recorded, the first gateway's is counted, written and recorded. The second
    is then refused as the PDS refuses a write too many (429 ``RateLimitExceeded``, saying when)
    and is not kept: the PDS holds the first's record (its CID, as the log says; the second's
    put-back, to what the log now says, does not undo it), the log has 30 changes of the post,
    and it verifies. (Before:
    each gateway counted only its own turns, and both changes were kept, 31 in the hour.)"""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    rules: list[list[dict[str, str]]] = [[], [{"$type": f"{THREADGATE}#mentionRule"}]]
    for n in range(CHANGES_PER_HOUR - 1):
        await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
            repo=did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=rules[n % 2])))
    clock.advance(timedelta(minutes=1))

    async with started_gateway(db_url, policy_dir, clock) as second:
        first_token, second_token = await xrpc_login(gw, "carol", did), await xrpc_login(second, "carol", did)
        write_gates = BlueskyAdapter.write_gates
        armed, raced = [True], []

        async def first_meanwhile(self: BlueskyAdapter, writes: Any, **kwargs: Any) -> Any:
            answer = await write_gates(self, writes, **kwargs)
            if armed:
                armed.clear()
                raced.append(await xrpc(gw, "com.atproto.repo.putRecord", first_token, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])}))
            return answer

        monkeypatch.setattr(BlueskyAdapter, "write_gates", first_meanwhile)
        with capture_logs() as logs:
            resp = await second.client.post("/xrpc/com.atproto.repo.putRecord", json={
                "repo": did, "collection": THREADGATE, "rkey": rkey,
                "record": threadgate(post_uri, allow=rules[1])}, headers={"Authorization": f"Bearer {second_token}"})
        answer = await resp.json()
    taking_back = [e["event"] for e in logs if e["event"].startswith(("xrpc_gate_left", "xrpc_gate_changed_since"))]
    assert taking_back == [], logs  # put back to what the log says: the first's record, which the PDS holds
    [(status, kept)] = raced
    assert status == 200, kept
    assert (resp.status, answer.get("error"), resp.headers.get("Retry-After")) == (
        429, "RateLimitExceeded", "3540"), answer
    assert answer["message"].endswith(
        f"post {post_id} changed 30 times in the last hour, and it may change 30 times an hour; "
        f"try again in 3540 seconds: its {THREADGATE} is not kept"), answer
    on_pds_now = await pds_record(bluesky_pds, gate_uri)
    assert on_pds_now is not None and (on_pds_now["cid"], on_pds_now["value"]["allow"]) == (kept["cid"], [])
    changes = [(actor, cid) for actor, post, _, cid in await gate_entries(gw) if post == post_id]
    assert (len(changes), changes[-1]) == (CHANGES_PER_HOUR, ("carol", kept["cid"]))
    await verified_by_cli(gw)

async def test_a_gate_written_as_its_post_is_deleted_is_taken_back_and_not_logged(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The post is deleted through Byline (with its gates) just before a change of its
    threadgate reaches the PDS: the gate would rule a post that is gone, so Byline deletes it
    again, answers that the post was deleted, and logs no change; the log verifies."""
    did, _, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    carol = await xrpc_login(gw, "carol", did)
    write_gates = BlueskyAdapter.write_gates
    raced: list[int] = []

    async def deleted_first(self: BlueskyAdapter, writes: Any, **kwargs: Any) -> Any:
        if not raced:
            status, body = await xrpc(gw, "com.atproto.repo.deleteRecord", carol,
                                      {"repo": did, "collection": POST, "rkey": rkey})
            raced.append(status)
            assert await pds_record(bluesky_pds, gate_uri) is None, body
        return await write_gates(self, writes, **kwargs)

    monkeypatch.setattr(BlueskyAdapter, "write_gates", deleted_first)
    status, answer = await xrpc(gw, "com.atproto.repo.putRecord", carol, {
        "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])})
    assert (raced, status, answer["error"]) == ([200], 400, "InvalidRequest"), answer
    assert answer["message"] == f"the post {post_uri} was deleted meanwhile; its {THREADGATE} is not kept"
    assert await pds_record(bluesky_pds, gate_uri) is None
    assert await gate_entries(gw) == []
    await verified_by_cli(gw)


@pytest.mark.parametrize("collection", [THREADGATE, POSTGATE])
async def test_a_gate_change_by_a_writer_dropped_as_it_is_written_is_taken_back_and_not_logged(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
    collection: str,
) -> None:
    """Carol's change of her post's threadgate (replacing the one it went out with) or its new
    postgate is checked; while it is written to the PDS, a new policy file drops her as writer
    and the gateway reloads it. Refused, through the SDK, as the PDS refuses a write its caller
    may not make (403 ``Forbidden``), the PDS holds the gate it held before (the same CID, or
    none), and the log records no change by carol; it verifies. (Before: the change was kept
    and logged under the policy that had just been replaced.)"""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{collection}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    assert (held is not None) == (collection == THREADGATE)
    write_gates = BlueskyAdapter.write_gates
    reloaded: list[list[str]] = []

    async def dropped_as_written(self: BlueskyAdapter, writes: Any, **kwargs: Any) -> Any:
        if not reloaded:
            skygates_policy(bluesky_pds, policy_dir, monkeypatch, writers="[alice]")
            reloaded.append(await gw.sync_policies())
        return await write_gates(self, writes, **kwargs)

    monkeypatch.setattr(BlueskyAdapter, "write_gates", dropped_as_written)
    record = threadgate(post_uri, allow=[]) if collection == THREADGATE else postgate(post_uri)
    before = await gw.snapshot()
    with pytest.raises(AtProtocolError) as refused:
        await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
            repo=did, collection=collection, rkey=rkey, record=record))
    response = refused.value.response
    assert response is not None and reloaded == [["skygates"]], reloaded
    assert (response.status_code, getattr(response.content, "error", None)) == (403, "Forbidden"), response.content
    assert getattr(response.content, "message", None) == (
        f"carol may no longer change who may reply to or quote {post_uri} under the policy of skygates "
        f"in force: its {collection} is not kept"), response.content
    assert await pds_record(bluesky_pds, gate_uri) == held
    assert await gw.snapshot() == before
    assert await gate_entries(gw) == []
    assert (await gw.get("alice", post_id))["state"] == "published"
    await verified_by_cli(gw)


_RECORDING_FAILS: dict[str, tuple[int, str]] = {
    # Why the log cannot take the change, and how the app is answered: as any call that meets
    # it, never as a change made.
    "database": (503, "NotEnoughResources"),  # Byline's database gone, as storage says it
    "driver": (503, "NotEnoughResources"),  # the same, in the driver's words
    "crash": (500, "InternalServerError"),  # the appender raising, as a bug would
    "policy": (502, "UpstreamFailure"),  # the policy in force moving every time it is looked at
}


def recording_fails(gw: Gateway, patched: pytest.MonkeyPatch, why: str, *, after: int = 0) -> None:
    """Make the log refuse every change recorded in ``gw`` after the first ``after``, for ``why``."""
    submit = gw.app[APPENDER].submit
    calls: list[int] = []
    cause: Exception = {"database": DatabaseUnavailable(), "driver": asyncpg.AdminShutdownError("terminating"),
                        "crash": RuntimeError("the appender is not running")}.get(why, PolicyMoved("skygates"))

    def failing(work: Any) -> Any:
        calls.append(1)
        if len(calls) <= after:
            return submit(work)
        raise cause

    async def moved(*_: object, **__: object) -> None:
        raise cause

    if why == "policy":
        patched.setattr(PostService, "_check_in_force", moved)
    else:
        patched.setattr(gw.app[APPENDER], "submit", failing)


def _both_gates(did: str, post_uri: str, rkey: str) -> models.ComAtprotoRepoApplyWrites.Data:
    """The app's batch closing replies (replacing the threadgate) and quotes (a new postgate)."""
    return models.ComAtprotoRepoApplyWrites.Data(repo=did, writes=[
        models.ComAtprotoRepoApplyWrites.Update(collection=THREADGATE, rkey=rkey, value=threadgate(post_uri, allow=[])),
        models.ComAtprotoRepoApplyWrites.Create(collection=POSTGATE, rkey=rkey, value=postgate(post_uri)),
    ])


@pytest.mark.parametrize("why", list(_RECORDING_FAILS))
async def test_a_gate_change_the_log_cannot_record_is_taken_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch, why: str,
) -> None:
    """Carol closes replies and quotes in one batch; the PDS takes both, then the log cannot
    record them: the database is gone (as storage or the driver says it), the appender crashes,
    or the policy keeps moving until the gateway gives up. The app gets that error, through the
    SDK, as any call that meets it; the PDS holds the threadgate it held before (same CID) and
    no postgate, the log holds no change, and once the log records again the same batch is
    written and logged; the log verifies. (Before: both changes stayed on the PDS, with no log
    entry saying who made them.)"""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    replies_uri, quotes_uri = f"at://{did}/{THREADGATE}/{rkey}", f"at://{did}/{POSTGATE}/{rkey}"
    held = await pds_record(bluesky_pds, replies_uri)
    assert held is not None and await pds_record(bluesky_pds, quotes_uri) is None
    before = await gw.snapshot()
    with monkeypatch.context() as patched:
        recording_fails(gw, patched, why)
        with pytest.raises(AtProtocolError) as refused, capture_logs() as logs:
            await run(carol.com.atproto.repo.apply_writes, _both_gates(did, post_uri, rkey))
    response = refused.value.response
    assert response is not None
    assert (response.status_code, getattr(response.content, "error", None)) == _RECORDING_FAILS[why], response
    assert [e for e in logs if e["event"] in ("xrpc_gate_left", "xrpc_gate_changed_since")] == [], logs
    assert await pds_record(bluesky_pds, replies_uri) == held
    assert await pds_record(bluesky_pds, quotes_uri) is None
    assert (await gw.snapshot(), await gate_entries(gw)) == (before, [])

    await run(carol.com.atproto.repo.apply_writes, _both_gates(did, post_uri, rkey))
    assert [(gate, cid) for _, _, gate, cid in await gate_entries(gw)] == [
        (THREADGATE, (await pds_record(bluesky_pds, replies_uri) or {})["cid"]),
        (POSTGATE, (await pds_record(bluesky_pds, quotes_uri) or {})["cid"]),
    ]
    await verified_by_cli(gw)


async def test_a_batch_the_log_fails_midway_keeps_what_it_recorded_and_takes_back_the_rest(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The log records the batch's new threadgate, then the database goes as the postgate is
    recorded: the threadgate stays (on the PDS with the CID the log names), the postgate is
    deleted again, and the app gets 503 ``NotEnoughResources``; the log verifies."""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    replies_uri, quotes_uri = f"at://{did}/{THREADGATE}/{rkey}", f"at://{did}/{POSTGATE}/{rkey}"
    with monkeypatch.context() as patched:
        recording_fails(gw, patched, "database", after=1)
        with pytest.raises(AtProtocolError) as refused:
            await run(carol.com.atproto.repo.apply_writes, _both_gates(did, post_uri, rkey))
    response = refused.value.response
    assert response is not None
    assert (response.status_code, getattr(response.content, "error", None)) == (503, "NotEnoughResources")
    kept = await pds_record(bluesky_pds, replies_uri)
    assert kept is not None and kept["value"]["allow"] == []
    assert await gate_entries(gw) == [("carol", post_id, THREADGATE, kept["cid"])]
    assert await pds_record(bluesky_pds, quotes_uri) is None
    await verified_by_cli(gw)


async def test_a_gate_deleted_and_not_recorded_is_written_again_as_it_was(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol deletes her post's threadgate and the database goes as the deletion is recorded:
    the app gets 503 ``NotEnoughResources``, the PDS holds the threadgate again, the same
    record (same CID), and the log holds no change. (Before: replies stayed open to everybody,
    with nothing in the log.)"""
    did, carol, _, _, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    assert held is not None
    with monkeypatch.context() as patched:
        recording_fails(gw, patched, "database")
        with pytest.raises(AtProtocolError) as refused:
            await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
                repo=did, collection=THREADGATE, rkey=rkey))
    response = refused.value.response
    assert response is not None
    assert (response.status_code, getattr(response.content, "error", None)) == (503, "NotEnoughResources")
    assert await pds_record(bluesky_pds, gate_uri) == held
    assert await gate_entries(gw) == []

async def test_a_gate_that_was_not_there_is_not_deleted_again_when_its_deletion_is_not_kept(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol deletes a postgate her post never had, and is dropped as writer while it is
    written: the deletion is not kept, but nothing changed on the PDS, so nothing is put back
    there (one write, the deletion itself; no second deletion for the PDS to answer and the
    gateway to warn of), and the app gets 403. (Before: the gateway deleted it again.)"""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    write_gates = BlueskyAdapter.write_gates
    sent: list[list[tuple[str, str, str, Any]]] = []

    async def dropped_as_written(self: BlueskyAdapter, writes: Any, **kwargs: Any) -> Any:
        if not sent:
            skygates_policy(bluesky_pds, policy_dir, monkeypatch, writers="[alice]")
            assert await gw.sync_policies() == ["skygates"]
        sent.append([(call, remote_id, collection, value) for call, remote_id, collection, value in writes])
        return await write_gates(self, writes, **kwargs)

    monkeypatch.setattr(BlueskyAdapter, "write_gates", dropped_as_written)
    with pytest.raises(AtProtocolError) as refused, capture_logs() as logs:
        await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
            repo=did, collection=POSTGATE, rkey=rkey))
    response = refused.value.response
    assert response is not None and response.status_code == 403, response
    assert sent == [[("deleteRecord", post_uri, POSTGATE, None)]]
    assert [e for e in logs if e["event"] == "xrpc_gate_left"] == [], logs
    assert await pds_record(bluesky_pds, f"at://{did}/{POSTGATE}/{rkey}") is None
    assert await gate_entries(gw) == []

async def test_followers_see_who_changed_who_may_reply_or_quote_and_when(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """Carol lets only people mentioned reply and hides a reply, alice turns quotes off: the
    account's public page and the post's public record (the audit page) show each change, by
    whom (the entry's actor) and when (its time), in plain words; so do the post's page for its
    people and the native API's history. The hidden reply's address is on none of them, nor in
    the log, and the log verifies. (Before: the public card said nothing of either change.)"""
    did, carol, alice, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    reply = await on_pds(bluesky_pds, "bob.test", "com.atproto.repo.createRecord", {"collection": POST, "record": {
        "$type": POST, "text": "A reply to hide", "createdAt": _now()}})
    await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
        repo=did, collection=THREADGATE, rkey=rkey,
        record=threadgate(post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}], hiddenReplies=[reply["uri"]])))
    await run(alice.com.atproto.repo.create_record, models.ComAtprotoRepoCreateRecord.Data(
        repo=did, collection=POSTGATE, rkey=rkey, record=postgate(post_uri)))
    (replies_at, replies), (quotes_at, quotes) = await gate_bodies(gw)
    said = {"Replies: only people mentioned; 1 reply hidden": (replies_at, replies),
            "Quotes: off": (quotes_at, quotes)}

    for path in ("/@skygates", f"/audit?kind=post&q={post_id}"):
        resp = await gw.client.get(path)
        assert resp.status == 200, path
        card = _card(await resp.text(), post_id)
        for words, (index, entry) in said.items():
            who = (f'<span class="mark" data-entry="{index}" data-type="post.gates_changed" data-field="actor">'
                   f"<bdi>{entry['actor']}</bdi></span>")
            when = (f'<time class="mark" data-entry="{index}" data-type="post.gates_changed" data-field="ts" '
                    f'datetime="{entry["ts"]}">{spoken(datetime.fromisoformat(entry["ts"]))}</time>')
            what = (f'<span class="mark" data-entry="{index}" data-type="post.gates_changed" data-field="settings" '
                    f'data-words="gate">{words}</span>')
            assert f"<li>{what} — changed by {who} on {when}.</li>" in card, (path, card)
        assert reply["uri"] not in card

    assert [e["data"]["settings"] for e in (replies, quotes)] == [
        {"replies": ["mention"], "lists": 0, "hidden_replies": 1}, {"quotes": "off", "detached_quotes": 0},
    ]
    history = [(e["actor"], e["data"]["settings"]) for e in (await gw.get("alice", post_id))["events"]
               if e["type"] == "post.gates_changed"]
    assert history == [("carol", replies["data"]["settings"]), ("alice", quotes["data"]["settings"])]
    async with pages_on(gw, ["alice"]) as pages:
        status, page = await (await pages.person("alice")).get(f"/posts/{post_id}")
    assert status == 200
    for words, (index, entry) in said.items():
        row = re.search(rf"<td class=\"mono\">#{index}</td>.*?</tr>", page, re.S)
        assert row is not None and f"<bdi>{entry['actor']}</bdi>" in row.group(0), page
        assert f"who may reply or quote changed <span class=\"tag state-published\">published</span> " \
               f"<span class=\"meta\">({words})</span>" in row.group(0), row.group(0)
    entries = json.dumps([e for _, e in await gate_bodies(gw)])
    assert reply["uri"] not in entries and reply["uri"] not in page
    await verified_by_cli(gw)


@contextlib.asynccontextmanager
async def hooked_gateway(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    hook: Receiver, events: list[str],
) -> AsyncIterator[tuple[Gateway, str]]:
    """``skygates`` with a webhook told of ``events``, and its secret; the notifier runs when
    the test says."""
    secret = new_secret()
    (policy_dir / "secrets").mkdir()
    (policy_dir / "secrets" / "hook.key").write_text(secret + "\n")
    skygates_policy(bluesky_pds, policy_dir, monkeypatch, notify=f"""
        notify:
          - url: {hook.url}
            secret: file:secrets/hook.key
            events: [{", ".join(events)}]
    """)
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600,
                               public_url="https://byline.example") as gateway:
        yield gateway, secret


@pytest.fixture
async def hooked(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    hook: Receiver,
) -> AsyncIterator[tuple[Gateway, str]]:
    """``skygates`` with a webhook told only of ``post.gates_changed``, and its secret."""
    async with hooked_gateway(bluesky_pds, db_url, policy_dir, clock, monkeypatch, hook,
                              ["post.gates_changed"]) as found:
        yield found


async def test_a_webhook_is_told_who_changed_who_may_reply_signed(
    bluesky_pds: BlueskyPds, hooked: tuple[Gateway, str], clients: list[Client], hook: Receiver,
) -> None:
    """Carol closes replies and hides a reply, then takes the threadgate off: the account's
    webhook gets one ``post.gates_changed`` a change, signed with its secret (Standard
    Webhooks), naming the post, carol, the gate, the PDS's CID and the settings in words; not
    the hidden reply's address, the secret or any token. Once told, it is not told again.
    (Before: the policy's webhook could not even ask for the event.)"""
    gw, secret = hooked
    did, carol, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    hidden = "at://did:plc:someoneelse/app.bsky.feed.post/3kreplyhidden"
    closed = await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
        repo=did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=[], hiddenReplies=[hidden])))
    await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
        repo=did, collection=THREADGATE, rkey=rkey))
    [(first, _), (second, _)] = await gate_bodies(gw)

    assert await gw.app[NOTIFIER].run_once() == 2 + 2  # two stored, two sent
    assert await gw.app[NOTIFIER].run_once() == 0
    payloads = sorted(hook.verified(secret), key=lambda p: int(p["data"]["log_index"]))
    page = f"https://byline.example/posts/{post_id}"
    common = {"account": "skygates", "log_event": "post.gates_changed", "actor": "carol", "post": post_id,
              "author": "carol", "state": "published", "page": page, "remote_id": post_uri, "gate": THREADGATE}
    assert [p["data"] for p in payloads] == [
        {**common, "log_index": first, "version": 1, "cid": closed.cid,
         "settings": {"replies": "nobody", "lists": 0, "hidden_replies": 1},
         "words": "Replies: nobody; 1 reply hidden"},
        {**common, "log_index": second, "version": 1, "cid": None,
         "settings": {"replies": "everybody", "lists": 0, "hidden_replies": 0}, "words": "Replies: everybody"},
    ]
    assert [p["type"] for p in payloads] == ["post.gates_changed"] * 2
    everything = b"".join(body for _, body in hook.calls).decode()
    password = bluesky_pds.account("carol.test").app_password
    for kept in (hidden, secret, secret.removeprefix("whsec_"), password, *gw.tokens.values()):
        assert kept not in everything


HOSTILE_LIST = "at://did:plc:abc/app.bsky.graph.list/x'&quot;onmouseover=alert(1)"
"""A list's address as the PDS's AT-URI syntax lets it through: a quote, an entity, a handler."""


def gated_thread(did: str, text: str) -> list[dict[str, Any]]:
    """The app's writes for one post whose threadgate lets people mentioned, followers and a
    list (``HOSTILE_LIST``) reply and hides two replies, and whose postgate turns quotes off
    and detaches one."""
    writes = app_thread(did, [text], threadgate=True, postgate=True)
    writes[1]["value"]["allow"] = [{"$type": f"{THREADGATE}#mentionRule"}, {"$type": f"{THREADGATE}#followerRule"},
                                   {"$type": f"{THREADGATE}#listRule", "list": HOSTILE_LIST}]
    writes[1]["value"]["hiddenReplies"] = [f"at://did:plc:erin/{POST}/3hid{n}" for n in range(2)]
    writes[2]["value"]["detachedEmbeddingUris"] = [f"at://did:plc:erin/{POST}/3quote"]
    return writes


async def gated_post_out(bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], text: str) -> str:
    """Carol's post of ``gated_thread``, approved by bob and out: its id."""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    writes = gated_thread(account.did, text)
    await run(carol.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
    post_id = str((await posts_by_key(gw, "carol", "skygates"))[writes[0]["rkey"]]["id"])
    status, body = await gw.act("bob", post_id, "approve")
    assert status == 200, body
    await gw.tick()
    assert (await gw.get("carol", post_id))["state"] == "published"
    return post_id


async def replies_closed(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> tuple[str, int, dict[str, Any]]:
    """A post of carol's out on skygates, then its replies closed from her app: the post's id,
    and the index and body of the change's entry."""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    post_uri = await published_post(gw, carol, account.did)
    rkey = post_uri.rsplit("/", 1)[1]
    post_id = str((await posts_by_key(gw, "carol", "skygates"))[rkey]["id"])
    await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
        repo=account.did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=[])))
    [(index, entry)] = await gate_bodies(gw)
    return post_id, index, entry


GATED_WORDS = ("Replies: only people mentioned, the account's followers and people on 1 list; 2 replies hidden",
               "Quotes: off; 1 quote detached")


def goes_out_with(page: str) -> list[tuple[str, str]]:
    """What a post's page lists under "Goes out with it", as read: label and value."""
    found = re.search(r'<div class="goes-out">.*?</div>', page, re.S)
    assert found is not None, page
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", found.group(0), re.S)
    return [(html.unescape(dt), html.unescape(re.sub(r"<[^>]+>", "", dd))) for dt, dd in pairs]


async def test_approvers_read_a_posts_gates_in_words_and_followers_see_them_once_out(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client],
) -> None:
    """Carol sends a post whose threadgate lets people mentioned, followers and a list reply and
    hides two replies, and whose postgate turns quotes off: bob's page of the held post says so
    in words, with the list's address as text (its quote and entity inert), part of what he
    approves; once out, its public card says who might reply or quote as it went out, with no
    address. (Before: the approver read the records' JSON, and the public card nothing.)"""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    writes = gated_thread(account.did, f"Gated from the start ({secrets.token_hex(4)})")
    await run(carol.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
    post_id = (await posts_by_key(gw, "carol", "skygates"))[writes[0]["rkey"]]["id"]

    async with pages_on(gw, ["bob"]) as pages:
        bob = await pages.person("bob")
        status, page = await bob.get(f"/posts/{post_id}")
        assert status == 200
        assert goes_out_with(page) == [
            ("Language", "en"), ("Who may reply or quote", GATED_WORDS[0]), ("List that may reply", HOSTILE_LIST),
            ("Who may reply or quote", GATED_WORDS[1]),
        ]
        assert HOSTILE_LIST not in page and str(markupsafe.escape(HOSTILE_LIST)) in page
        status, _, _ = await bob.post(f"/posts/{post_id}/approve", {"version": "1", "back": "post"})
        assert status == 303
    await gw.tick()
    assert (await gw.get("carol", post_id))["state"] == "published"

    resp = await gw.client.get("/@skygates")
    card = _card(await resp.text(), post_id)
    sent = re.search(r'<p class="gates-sent">(.*?)</p>', card, re.S)
    assert sent is not None, card
    assert html.unescape(re.sub(r"<[^>]+>", "", sent.group(1))) == \
        f"Who may reply or quote, as it went out: {'. '.join(GATED_WORDS)}."
    assert re.findall(r'data-type="post.publishing" data-field="(gates\.\d\.settings)" data-words="gate"', card) == [
        "gates.0.settings", "gates.1.settings"]
    assert "graph.list" not in card and "3hid" not in card


async def test_a_webhook_is_told_who_may_reply_or_quote_to_a_held_post_and_as_it_went_out(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    hook: Receiver, clients: list[Client],
) -> None:
    """Carol sends a post whose threadgate lets people mentioned, followers and a list reply and
    whose postgate turns quotes off: the account's webhook hears of it held and published, each
    time with who may reply or quote (the settings and the words the pages use), as an approver
    on a chat channel must know what they are asked to approve; never the list's address or the
    hidden replies' and detached quotes' (other people's). (Before: nothing of the gates.)"""
    async with hooked_gateway(bluesky_pds, db_url, policy_dir, clock, monkeypatch, hook,
                              ["post.held", "post.published"]) as (gw, secret):
        post_id = await gated_post_out(bluesky_pds, gw, clients, f"Gated, told to the team ({secrets.token_hex(4)})")
        assert await gw.app[NOTIFIER].run_once() == 2 + 2  # two stored, two sent
    payloads = {p["type"]: p["data"] for p in hook.verified(secret)}
    gates = [
        {"gate": THREADGATE, "settings": {"replies": ["mention", "follower", "list"], "lists": 1, "hidden_replies": 2},
         "words": GATED_WORDS[0]},
        {"gate": POSTGATE, "settings": {"quotes": "off", "detached_quotes": 1}, "words": GATED_WORDS[1]},
    ]
    assert sorted(payloads) == ["post.held", "post.published"]
    assert payloads["post.held"]["post"] == payloads["post.published"]["post"] == post_id
    assert payloads["post.held"]["gates"] == gates
    assert payloads["post.published"]["gates"] == gates
    everything = b"".join(body for _, body in hook.calls).decode()
    assert "graph.list" not in everything and "3hid" not in everything and "3quote" not in everything


async def test_a_gated_post_whose_account_moved_off_bluesky_is_refused_not_sent_open_to_all(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], policy_dir: Path,
) -> None:
    """Carol sends a post whose threadgate and postgate limit who may reply and quote; while it
    waits for bob, the account's policy moves it off Bluesky (to the sandbox, which has no such
    settings). Bob approves it as he read it, limits and all: it fails, saying why, rather than
    go out where anyone may reply to and quote it; the public card shows nothing of it, and the
    log verifies. (Before: it went out on the sandbox open to all, and its public card said,
    checked against its claim, that only some might reply.)"""
    account = bluesky_pds.account("carol.test")
    carol = await login(gw, clients, "carol", "skygates", account.handle)
    writes = gated_thread(account.did, f"Gated, then moved ({secrets.token_hex(4)})")
    await run(carol.com.atproto.repo.apply_writes, sdk_writes(account.did, writes))
    post_id = (await posts_by_key(gw, "carol", "skygates"))[writes[0]["rkey"]]["id"]
    write_policy(policy_dir, "skygates", """
        account: skygates
        platform: sandbox
        handle: "@carol"
        tier: co-signed
        owner: alice
        writers: [carol]
        approvals:
          required: 1
          from: [bob]
    """)
    await gw.sync_policies()
    status, body = await gw.act("bob", post_id, "approve")
    assert status == 200, body
    await gw.tick()
    post = await gw.get("carol", post_id)
    assert (post["state"], post.get("remote")) == ("failed", None), post
    assert "Sandbox has no setting of who may reply to or quote a post" in str(post.get("last_error")), post
    kinds = [e["type"] for _, e in await log_bodies(gw) if e.get("post") == post_id]
    assert "post.published" not in kinds and kinds[-1] == "post.failed", kinds
    resp = await gw.client.get("/@skygates")
    assert post_id not in await resp.text()
    await verified_by_cli(gw)
