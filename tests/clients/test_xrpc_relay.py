"""No way around an account's policy through the XRPC relay to its PDS.

A PDS routes XRPC method names whatever their case (``com.atproto.Repo.createRecord`` is
``createRecord`` to it), so Byline matches names exactly as the lexicons write them: a write
in any spelling, a service token, direct messages and administration are refused and never
reach the PDS, and only listed reads are relayed, with GET, without the client's routing
headers.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.appkeys import IDENTITY
from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway
from tests.images import GIF
from tests.platforms.bluesky.fixture import BlueskyPds, PdsAccount, write_bluesky_policy

POST = "app.bsky.feed.post"
PROFILE = "app.bsky.actor.profile"
EVIL = "did:web:evil.example"


def spellings(nsid: str, *, canonical: bool) -> list[str]:
    """The method name as written, all lower case, Title-Case segments, one segment changed, random case."""
    segments = nsid.split(".")
    shuffled = random.Random(nsid)
    variants = [
        nsid.lower(),
        ".".join(s[:1].upper() + s[1:] for s in segments),
        ".".join([*segments[:2], segments[2].capitalize(), *segments[3:]]),
        "".join(c.upper() if shuffled.random() < 0.5 else c.lower() for c in nsid),
    ]
    unique = [v for n, v in enumerate(variants) if v != nsid and v not in variants[:n]]
    return [nsid, *unique] if canonical else unique


async def _pds(pds: BlueskyPds, method: str, nsid: str, *, token: str | None = None,
               params: dict[str, str] | None = None, body: Any = None) -> tuple[int, Any]:
    """One call straight to the PDS, past Byline."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.request(
        method, f"{pds.pds_url}/xrpc/{nsid}", params=params, json=body, headers=headers
    ) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def _pds_login(pds: BlueskyPds, account: PdsAccount) -> str:
    status, body = await _pds(pds, "POST", "com.atproto.server.createSession",
                              body={"identifier": account.handle, "password": account.password})
    assert status == 200, body
    return str(body["accessJwt"])


async def _repo_state(pds: BlueskyPds, account: PdsAccount) -> dict[str, Any]:
    """What any write to the account would change: its latest commit, its posts, its profile."""
    state: dict[str, Any] = {}
    _, state["commit"] = await _pds(pds, "GET", "com.atproto.sync.getLatestCommit", params={"did": account.did})
    state["posts"] = []
    params = {"repo": account.did, "collection": POST, "limit": "100"}
    while True:  # every page: the PDS is shared by the whole run and fills up
        _, listed = await _pds(pds, "GET", "com.atproto.repo.listRecords", params=params)
        state["posts"] += [(r["uri"], r["cid"]) for r in listed["records"]]
        if not listed["records"] or not listed.get("cursor"):
            break
        params["cursor"] = listed["cursor"]
    _, state["profile"] = await _pds(pds, "GET", "com.atproto.repo.getRecord",
                                     params={"repo": account.did, "collection": PROFILE, "rkey": "self"})
    return state


async def _xrpc(gw: Gateway, method: str, nsid: str, *, token: str, body: Any = None, raw: bytes | None = None,
                content_type: str | None = None, params: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One call to Byline's XRPC surface with a session's access token."""
    sent = {"Authorization": f"Bearer {token}", **(headers or {})}
    if content_type:
        sent["Content-Type"] = content_type
    resp = await gw.client.request(method, f"/xrpc/{nsid}", json=body, data=raw, params=params, headers=sent)
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


async def _session(gw: Gateway, user: str, account: str, identifier: str) -> str:
    password = await gw.app[IDENTITY].create(user=user, account=account)
    status, body = await _xrpc(gw, "POST", "com.atproto.server.createSession", token="",
                               body={"identifier": identifier, "password": password})
    assert status == 200, body
    return str(body["accessJwt"])


@pytest.fixture
async def cosigned(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[Gateway]:
    """A gateway with ``sky``: co-signed on the PDS's bob.test, owned by alice, approved by bob."""
    account = bluesky_pds.account("bob.test")
    monkeypatch.setenv("SKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "sky", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="SKY_APP_PASSWORD")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        yield gw


async def test_writes_in_any_spelling_never_reach_the_pds(bluesky_pds: BlueskyPds, cosigned: Gateway) -> None:
    """Writes, a service token, a message, an admin call, any case, owner or approver: refused, PDS untouched."""
    account = bluesky_pds.account("bob.test")
    direct = await _pds_login(bluesky_pds, account)
    # Someone else's post, and a profile, written on the PDS itself: what a bypass would change.
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    status, theirs = await _pds(bluesky_pds, "POST", "com.atproto.repo.createRecord", token=direct, body={
        "repo": account.did, "collection": POST,
        "record": {"$type": POST, "text": f"Written on the PDS ({secrets.token_hex(4)})", "createdAt": now},
    })
    assert status == 200, theirs
    their_rkey = theirs["uri"].rsplit("/", 1)[1]
    status, body = await _pds(bluesky_pds, "POST", "com.atproto.repo.putRecord", token=direct, body={
        "repo": account.did, "collection": PROFILE, "rkey": "self",
        "record": {"$type": PROFILE, "displayName": "Bob, as Bob wrote it"},
    })
    assert status == 200, body
    before = await _repo_state(bluesky_pds, account)
    gateway_before = await cosigned.snapshot()

    post = {"$type": POST, "text": "Straight to the PDS, no approval", "createdAt": now}
    writes: list[tuple[str, bool, dict[str, Any]]] = [
        ("com.atproto.repo.createRecord", False,
         {"body": {"repo": account.did, "collection": POST, "record": post}}),
        ("com.atproto.repo.putRecord", True,
         {"body": {"repo": account.did, "collection": PROFILE, "rkey": "self",
                   "record": {"$type": PROFILE, "displayName": "Taken over"}}}),
        ("com.atproto.repo.deleteRecord", False,
         {"body": {"repo": account.did, "collection": POST, "rkey": their_rkey}}),
        ("com.atproto.repo.applyWrites", False,
         {"body": {"repo": account.did, "writes": [
             {"$type": "com.atproto.repo.applyWrites#create", "collection": POST, "value": post},
             {"$type": "com.atproto.repo.applyWrites#delete", "collection": POST, "rkey": their_rkey},
         ]}}),
        ("com.atproto.repo.importRepo", True, {"raw": b"\x0a\xa1", "content_type": "application/vnd.ipld.car"}),
        ("com.atproto.repo.uploadBlob", False, {"raw": GIF, "content_type": "image/gif"}),
        ("app.bsky.actor.putPreferences", True, {"body": {"preferences": []}}),
        ("chat.bsky.convo.sendMessage", True, {"body": {"convoId": "3kfake", "message": {"text": "hi"}}}),
        ("com.atproto.admin.updateAccountPassword", True,
         {"body": {"did": account.did, "password": "taken-over-password"}}),
        ("com.atproto.server.createAppPassword", True, {"body": {"name": "mine now"}}),
    ]
    byline_names = {"com.atproto.repo.createRecord", "com.atproto.repo.deleteRecord",
                    "com.atproto.repo.applyWrites", "com.atproto.repo.uploadBlob", "com.atproto.repo.putRecord"}
    answers: list[tuple[str, str, int, Any, tuple[int, str, str]]] = []
    for user in ("alice", "bob"):  # the owner, and an approver
        token = await _session(cosigned, user, "sky", account.handle)
        for nsid, with_canonical, call in writes:
            for name in spellings(nsid, canonical=with_canonical):
                status, body = await _xrpc(cosigned, "POST", name, token=token, **call)
                # putRecord is Byline's own (a published post's threadgate or postgate), and
                # refuses a profile as the relay refuses a write.
                wanted = ((400, "InvalidRequest", f"{name} is not the method's name")
                          if nsid in byline_names and name != nsid
                          else (501, "MethodNotImplemented", f"Byline does not relay {name}: "))
                answers.append((user, name, status, body, wanted))
        for name in spellings("com.atproto.server.getServiceAuth", canonical=True):
            status, body = await _xrpc(cosigned, "GET", name, token=token,
                                       params={"aud": EVIL, "lxm": "com.atproto.repo.createRecord"})
            answers.append((user, name, status, body, (501, "MethodNotImplemented",
                                                       f"Byline does not relay {name}: a service token")))
    assert len(answers) > 80
    assert await _repo_state(bluesky_pds, account) == before
    assert await cosigned.snapshot() == gateway_before
    for user, name, status, body, (status_wanted, error, message) in answers:
        assert "token" not in body and "accessJwt" not in body, (user, name, body)
        assert (status, body["error"]) == (status_wanted, error), (user, name, body)
        assert body["message"].startswith(message), (user, name, body)


async def test_reads_relay_only_from_the_list_and_only_with_get(bluesky_pds: BlueskyPds, cosigned: Gateway) -> None:
    """Listed reads relay as the PDS answers them; a POST to one, a misspelt one and unlisted reads are refused."""
    account = bluesky_pds.account("bob.test")
    token = await _session(cosigned, "bob", "sky", account.did)
    listing = {"repo": account.did, "collection": POST, "limit": "100"}
    status, relayed = await _xrpc(cosigned, "GET", "com.atproto.repo.listRecords", token=token, params=listing)
    assert (status, relayed) == (200, (await _pds(bluesky_pds, "GET", "com.atproto.repo.listRecords",
                                                  params=listing))[1])
    status, relayed = await _xrpc(cosigned, "GET", "com.atproto.identity.resolveHandle", token=token,
                                  params={"handle": account.handle})
    assert (status, relayed) == (200, {"did": account.did})
    status, described = await _xrpc(cosigned, "GET", "com.atproto.repo.describeRepo", token=token,
                                    params={"repo": account.handle})
    assert (status, described["did"]) == (200, account.did), described
    status, uploaded = await _xrpc(cosigned, "POST", "com.atproto.repo.uploadBlob", token=token,
                                   raw=GIF, content_type="image/gif")
    assert (status, uploaded["blob"]["mimeType"]) == (200, "image/gif"), uploaded

    status, body = await _xrpc(cosigned, "POST", "com.atproto.repo.listRecords", token=token, body=listing)
    assert (status, body) == (400, {"error": "InvalidRequest", "message": "Incorrect HTTP method (POST) expected GET"})
    for name in spellings("com.atproto.repo.listRecords", canonical=False):
        status, body = await _xrpc(cosigned, "GET", name, token=token, params=listing)
        assert (status, body["error"]) == (400, "InvalidRequest"), (name, body)
        assert body["message"] == (f"{name} is not the method's name: XRPC method names are matched "
                                   "as written; call com.atproto.repo.listRecords"), body
    for name in ("com.atproto.server.listAppPasswords", "com.atproto.server.getAccountInviteCodes",
                 "com.atproto.sync.getRepo", "chat.bsky.convo.listConvos", "app.bsky.unspecced.getConfig"):
        status, body = await _xrpc(cosigned, "GET", name, token=token, params={"did": account.did})
        assert (status, body["error"]) == (501, "MethodNotImplemented"), (name, body)
        assert body["message"].startswith(f"Byline does not relay {name}: "), body
    status, body = await _xrpc(cosigned, "GET", "com.atproto.repo.createRecord", token=token)
    assert (status, body) == (400, {"error": "InvalidRequest", "message": "Incorrect HTTP method (GET) expected POST"})


class _FakePds:
    """A PDS that logs the account in and records every other call it receives."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, str]]] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/xrpc/{nsid}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        nsid = request.match_info["nsid"]
        if nsid in ("com.atproto.server.createSession", "com.atproto.server.refreshSession"):
            return web.json_response({"did": "did:plc:fakepds", "handle": "fake.test",
                                      "accessJwt": "pds-access", "refreshJwt": "pds-refresh"})
        if nsid == "com.atproto.server.getSession":
            return web.json_response({"did": "did:plc:fakepds", "handle": "fake.test"})
        self.calls.append((request.method, nsid, {k.lower(): v for k, v in request.headers.items()}))
        return web.json_response({"feed": [], "did": "did:plc:fakepds", "handle": "fake.test"})


async def test_client_routing_headers_are_not_relayed(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """atproto-proxy and other client headers never reach the PDS; the labeler choice and language do."""
    fake = _FakePds()
    server = TestServer(fake.app())
    await server.start_server()
    monkeypatch.setenv("FAKE_PDS_PASSWORD", "abcd-efgh-ijkl-mnop")
    write_bluesky_policy(policy_dir, "fake", handle="fake.test", pds=str(server.make_url('')).rstrip('/'),
                         credential_env="FAKE_PDS_PASSWORD")
    sent = {
        "atproto-proxy": f"{EVIL}#bsky_appview", "atproto-accept-labelers": "did:plc:labeler",
        "Accept-Language": "de", "X-Forwarded-For": "203.0.113.9", "Cookie": "session=theirs",
        "X-Bsky-Topics": "x", "Origin": "https://evil.example",
    }
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            token = await _session(gw, "bob", "fake", "fake.test")
            for nsid, params in (("app.bsky.feed.getTimeline", {"limit": "5"}),
                                 ("app.bsky.actor.getProfile", {"actor": "someone.else.test"})):
                status, body = await _xrpc(gw, "GET", nsid, token=token, params=params, headers=sent)
                assert status == 200, body
    finally:
        await server.close()
    assert [(method, nsid) for method, nsid, _ in fake.calls] == [
        ("GET", "app.bsky.feed.getTimeline"), ("GET", "app.bsky.actor.getProfile"),
    ]
    for _, _, headers in fake.calls:
        assert "atproto-proxy" not in headers
        assert not {"x-forwarded-for", "cookie", "x-bsky-topics", "origin"} & set(headers)
        assert (headers["atproto-accept-labelers"], headers["accept-language"]) == ("did:plc:labeler", "de")
        assert headers["authorization"] == "Bearer pds-access"
