"""The real ``atproto`` SDK, unmodified, posting through Byline's XRPC surface.

The SDK is synchronous: each call runs in a thread (``asyncio.to_thread``) while the gateway
serves on a real socket in the test's event loop. The gateway's clock starts at the real time,
because the SDK compares the tokens' ``exp`` with its own clock.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from atproto import Client, models
from atproto_client.exceptions import BadRequestError, RequestErrorBase, RequestException, UnauthorizedError

from adapters.bluesky import rkey_for
from gateway.appkeys import DB, IDENTITY
from gateway.clock import ManualClock
from gateway.services.posts import PostService
from gateway.services.xrpc_sessions import XrpcSessions
from gateway.storage.db import DatabaseUnavailable
from tests.conftest import (
    DATABASE_GONE,
    TEST_POLICIES,
    Gateway,
    finding_the_database_gone,
    started_gateway,
    write_policy,
)
from tests.platforms.bluesky.fixture import BlueskyPds, write_bluesky_policy

T = TypeVar("T")
POST = "app.bsky.feed.post"


@pytest.fixture
def clock() -> ManualClock:
    """A clock moved by hand, starting now: the SDK refreshes tokens by its own clock."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
async def gw(db_url: str, policy_dir: Path, clock: ManualClock) -> AsyncIterator[Gateway]:
    """A gateway on a real socket with the four tier accounts on the sandbox."""
    async with started_gateway(db_url, policy_dir, clock) as gateway:
        yield gateway


async def run(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """One blocking SDK call, in a thread, while the gateway serves."""
    return await asyncio.to_thread(call, *args, **kwargs)


def base_url(gw: Gateway) -> str:
    """Where a client points: the gateway's address."""
    return str(gw.client.make_url("/"))


async def app_password(gw: Gateway, user: str, account: str | None) -> str:
    """What ``byline token create --user USER --account ACCOUNT`` prints."""
    return await gw.app[IDENTITY].create(user=user, account=account)


class Sdk:
    """Makes SDK clients pointed at a gateway, and closes their connections at the end."""

    def __init__(self) -> None:
        self.made: list[Client] = []

    def client(self, gw: Gateway) -> Client:
        """An unmodified client whose server address is the gateway."""
        client = Client(base_url=base_url(gw))
        self.made.append(client)
        return client

    async def login(self, gw: Gateway, user: str, account: str, identifier: str) -> Client:
        """A client logged in to ``account`` as ``user``, with a fresh app password."""
        client = self.client(gw)
        await run(client.login, identifier, await app_password(gw, user, account))
        return client


@pytest.fixture
def sdk() -> Iterator[Sdk]:
    """SDK clients for a test; their sockets are closed when it ends."""
    made = Sdk()
    yield made
    for client in made.made:
        client.request.close()


async def post_for(gw: Gateway, user: str, account: str, uri: str) -> dict[str, Any]:
    """The gateway's post behind an at:// URI (its record key is derived from the post id)."""
    status, body = await gw.call(user, "GET", f"/v1/posts?account={account}&limit=200")
    assert status == 200, body
    rkey = uri.rsplit("/", 1)[1]
    found = [p for p in body["posts"] if rkey_for(p["id"]) == rkey]
    assert len(found) == 1, (uri, body)
    return await gw.get(user, found[0]["id"])


async def xrpc(
    gw: Gateway, method: str, nsid: str, *, token: str | None = None, body: Any = None,
    raw: bytes | None = None, params: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """A raw XRPC call, for what the SDK never sends (bad input, other tokens)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if raw is not None:
        headers["Content-Type"] = "application/json"
    resp = await gw.client.request(
        method, f"/xrpc/{nsid}", json=body, data=raw, headers=headers, params=params
    )
    text = await resp.text()
    return resp.status, json.loads(text) if text else None


def claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, as a client reads it (without checking the signature)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


async def session(gw: Gateway, user: str, account: str, identifier: str) -> dict[str, Any]:
    """A raw createSession answer."""
    status, body = await xrpc(gw, "POST", "com.atproto.server.createSession", body={
        "identifier": identifier, "password": await app_password(gw, user, account),
    })
    assert status == 200, body
    return dict(body)


# -- the tiers on the sandbox ---------------------------------------------------------------


async def test_direct_post_goes_out_on_the_sandbox(gw: Gateway, sdk: Sdk) -> None:
    """Direct: the SDK logs in with the handle, posts, and the post is published as answered."""
    client = await sdk.login(gw, "alice", "direct", "@alice")
    assert client.me is not None
    assert (client.me.did, client.me.handle) == ("did:web:direct.byline.local", "direct.byline.local")
    sent = await run(client.send_post, "Hello from the atproto SDK")
    post = await post_for(gw, "alice", "direct", sent.uri)
    assert sent.uri == f"at://did:web:direct.byline.local/{POST}/{rkey_for(post['id'])}"
    assert sent.cid.startswith("bafyrei")
    assert (post["state"], post["author"], post["options"]["language"]) == ("scheduled", "alice", "en")
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("direct")] == ["Hello from the atproto SDK"]
    assert (await gw.get("alice", post["id"]))["state"] == "published"


async def test_delayed_post_can_be_deleted_in_its_pencil_stage(gw: Gateway, sdk: Sdk, clock: ManualClock) -> None:
    """Delayed: the post waits out its delay, and delete_post within it means it never goes out."""
    client = await sdk.login(gw, "bob", "delayed", "delayed.byline.local")
    sent = await run(client.send_post, "Second thoughts coming")
    post = await post_for(gw, "bob", "delayed", sent.uri)
    assert post["state"] == "scheduled"
    clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert await gw.timeline("delayed") == []
    assert await run(client.delete_post, sent.uri) is True
    assert (await gw.get("bob", post["id"]))["state"] == "cancelled"
    clock.advance(timedelta(minutes=10))
    await gw.tick()
    assert await gw.timeline("delayed") == []
    kept = await run(client.send_post, "This one stays")
    clock.advance(timedelta(minutes=11))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("delayed")] == ["This one stays"]
    assert (await post_for(gw, "bob", "delayed", kept.uri))["state"] == "published"


async def test_cosigned_post_waits_for_approval(gw: Gateway, sdk: Sdk, clock: ManualClock) -> None:
    """Co-signed: the post is held until two approvers approve, then goes out after its delay."""
    client = await sdk.login(gw, "carol", "cosigned", "brand")
    sent = await run(client.send_post, "We launch today")
    post = await post_for(gw, "carol", "cosigned", sent.uri)
    assert (post["state"], post["approvals_needed"]) == ("held", 2)
    await gw.tick()
    assert await gw.timeline("cosigned") == []
    for approver in ("bob", "dave"):
        status, body = await gw.act(approver, post["id"], "approve")
        assert status == 200, body
    clock.advance(timedelta(minutes=2))
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("cosigned")] == ["We launch today\n\n—carol"]
    assert (await gw.get("carol", post["id"]))["state"] == "published"


async def test_managed_owner_post_becomes_a_suggestion(gw: Gateway, sdk: Sdk) -> None:
    """Managed: the owner's post is a suggestion; it goes out only when a writer adopts it."""
    client = await sdk.login(gw, "dave", "managed", "@dave")
    sent = await run(client.send_post, "Can we say thanks to the volunteers?")
    suggestion = await post_for(gw, "dave", "managed", sent.uri)
    assert (suggestion["state"], suggestion["author"]) == ("suggested", "dave")
    await gw.tick()
    assert await gw.timeline("managed") == []
    status, adopted = await gw.act("bob", suggestion["id"], "adopt")
    assert status == 201, adopted
    await gw.tick()
    assert [p["text"] for p in await gw.timeline("managed")] == [
        "Can we say thanks to the volunteers?\n\n—bob, suggested by dave"
    ]
    assert (await gw.get("dave", suggestion["id"]))["state"] == "adopted"


async def test_blocked_and_oversize_posts_are_refused_as_a_pds_refuses(gw: Gateway, sdk: Sdk) -> None:
    """A rule's block and a too-long text come back as 400 InvalidRequest; nothing is stored."""
    client = await sdk.login(gw, "alice", "direct", "alice")
    before = await gw.snapshot()
    with pytest.raises(BadRequestError) as blocked:
        await run(client.send_post, "an example-slur here")
    assert blocked.value.response is not None
    content = blocked.value.response.content
    assert (content.error, content.message) == (
        "InvalidRequest", "blocked by rule no-slurs: Not okay to post"
    )
    with pytest.raises(BadRequestError) as too_long:
        await run(client.send_post, "x" * 501)
    assert too_long.value.response is not None
    assert too_long.value.response.content.error == "InvalidRequest"
    assert too_long.value.response.content.message.startswith(
        "Invalid app.bsky.feed.post record: text is 501 characters"
    )
    assert await gw.snapshot() == before


# -- sessions -------------------------------------------------------------------------------


async def test_session_tokens_are_jwts_that_refresh_and_revoke(gw: Gateway) -> None:
    """createSession gives JWTs for the account's DID; refresh rotates them; deleteSession ends it."""
    first = await session(gw, "alice", "direct", "direct")
    access, refresh = claims(first["accessJwt"]), claims(first["refreshJwt"])
    assert (first["did"], first["handle"]) == ("did:web:direct.byline.local", "direct.byline.local")
    assert (access["sub"], access["scope"], refresh["scope"]) == (
        first["did"], "com.atproto.appPass", "com.atproto.refresh"
    )
    assert access["exp"] - access["iat"] == 2 * 3600
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession", token=first["accessJwt"])
    assert (status, body) == (200, {"handle": "direct.byline.local", "did": first["did"], "active": True})
    status, body = await xrpc(gw, "GET", "com.atproto.server.describeServer")
    assert (status, body["did"]) == (200, "did:web:byline.local")
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession", token=first["refreshJwt"])
    assert (status, body) == (400, {"error": "InvalidToken", "message": "Bad token scope"})

    status, second = await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=first["refreshJwt"])
    assert status == 200, second
    assert claims(second["accessJwt"])["sid"] == claims(second["refreshJwt"])["sid"] != access["sid"]
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession", token=second["accessJwt"])
    assert status == 200, body

    status, body = await xrpc(gw, "POST", "com.atproto.server.deleteSession", token=second["refreshJwt"])
    assert (status, body) == (200, None)
    revoked = (400, {"error": "ExpiredToken", "message": "Token has been revoked"})
    for token in (first["accessJwt"], second["accessJwt"]):
        assert await xrpc(gw, "GET", "com.atproto.server.getSession", token=token) == revoked


async def test_sdk_refreshes_a_session_near_its_expiry(db_url: str, policy_dir: Path, sdk: Sdk) -> None:
    """The SDK refreshes a token ten minutes from expiry by itself; the first refresh token, used
    again within its grace, answers the session that replaced it, not a new one."""
    # The gateway's clock runs 1 h 50 min behind the SDK's: every access token it issues has
    # ten minutes left by the SDK's clock, inside the quarter hour in which the SDK refreshes.
    behind = ManualClock(datetime.now(UTC) - timedelta(hours=1, minutes=50))
    async with started_gateway(db_url, policy_dir, behind) as gw:
        client = sdk.client(gw)
        events: list[tuple[str, str]] = []
        client.on_session_change(lambda event, s: events.append((event.value, s.refresh_jwt)))
        await run(client.login, "alice", await app_password(gw, "alice", "direct"))
        sent = await run(client.send_post, "Still here after a refresh")
        assert [event for event, _ in events] == ["create", "refresh", "refresh"]
        assert (await post_for(gw, "alice", "direct", sent.uri))["text"] == "Still here after a refresh"
        status, body = await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=events[0][1])
        assert status == 200, body
        assert claims(body["refreshJwt"])["sid"] == claims(events[1][1])["sid"] != claims(events[0][1])["sid"]


async def test_bad_credentials_get_the_pds_answers(gw: Gateway, sdk: Sdk, clock: ManualClock) -> None:
    """Unknown, revoked, unbound and wrong-account app passwords; missing, forged and expired tokens."""
    password = await app_password(gw, "alice", "direct")
    cases = [
        ("alice", "byl_not-a-token", "Invalid identifier or password"),
        ("alice", gw.tokens["alice"], "Invalid identifier or password: this token is not an app password"),
        ("brand", password, "Invalid identifier or password: this app password is for another account"),
        ("delayed.byline.local", password,
         "Invalid identifier or password: this app password is for another account"),
    ]
    for identifier, secret, message in cases:
        status, body = await xrpc(gw, "POST", "com.atproto.server.createSession",
                                  body={"identifier": identifier, "password": secret})
        assert status == 401 and body["error"] == "AuthenticationRequired", body
        assert body["message"].startswith(message), body
    with pytest.raises(UnauthorizedError):
        await run(sdk.client(gw).login, "alice", "byl_wrong")

    live = await session(gw, "alice", "direct", "alice")
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession")
    assert (status, body) == (401, {"error": "AuthMissing", "message": "Authentication Required"})
    forged = live["accessJwt"][:-4] + ("AAAA" if not live["accessJwt"].endswith("AAAA") else "BBBB")
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession", token=forged)
    assert (status, body) == (400, {"error": "InvalidToken", "message": "Token could not be verified"})
    clock.advance(timedelta(hours=2, seconds=1))
    status, body = await xrpc(gw, "GET", "com.atproto.server.getSession", token=live["accessJwt"])
    assert (status, body) == (400, {"error": "ExpiredToken", "message": "Token has expired"})


async def test_the_database_gone_is_a_503_the_sdk_does_not_take_for_the_pds(
    gw: Gateway, sdk: Sdk, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Byline's database not answering as a session is looked up is 503 NotEnoughResources with
    Retry-After, as storage says it and as the driver does: the SDK raises a plain
    ``RequestException`` with the status and the wait. Before: 502 UpstreamFailure, which the SDK
    raises as a ``NetworkError`` (the PDS's upstream failed), and the driver's word a 500."""
    client = await sdk.login(gw, "alice", "direct", "alice")
    before = await gw.snapshot()
    for cause in DATABASE_GONE:
        gone = finding_the_database_gone(cause)
        with monkeypatch.context() as patched:
            patched.setattr(XrpcSessions, "authenticate", gone)
            with pytest.raises(RequestErrorBase) as refused:
                await run(client.send_post, "Posted as the database is away")
        assert type(refused.value) is RequestException, (cause, refused.value)
        answer = refused.value.response
        assert answer is not None
        assert (503, "NotEnoughResources", DatabaseUnavailable().message, "5") == (
            answer.status_code, answer.content.error, answer.content.message, answer.headers.get("retry-after"),
        ), cause
    assert await gw.snapshot() == before
    sent = await run(client.send_post, "Posted once it is back")
    assert (await post_for(gw, "alice", "direct", sent.uri))["text"] == "Posted once it is back"


@pytest.mark.parametrize("where", ["check_submission", "submit"])
async def test_the_database_gone_inside_apply_writes_is_a_503_not_the_pds_upstream(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, where: str,
) -> None:
    """A batch of writes that meets Byline's database gone, as the writes are checked or as
    they are made, is answered as any call that meets it: 503 NotEnoughResources with
    Retry-After, nothing written. Before, the batch's own words for a refused write wrapped
    it, and it went out as 502 UpstreamFailure: the PDS's upstream failed, said the client."""
    live = await session(gw, "alice", "direct", "alice")

    def create(text: str) -> dict[str, Any]:
        return {"$type": "com.atproto.repo.applyWrites#create", "collection": POST,
                "value": {"$type": POST, "text": text, "createdAt": "2026-01-01T00:00:00Z"}}

    before = await gw.snapshot()
    monkeypatch.setattr(PostService, where, finding_the_database_gone())
    status, body = await xrpc(gw, "POST", "com.atproto.repo.applyWrites", token=live["accessJwt"], body={
        "repo": live["did"], "writes": [create("first"), create("second")],
    })
    assert (status, body) == (503, {"error": "NotEnoughResources", "message": DatabaseUnavailable().message})
    assert await gw.snapshot() == before


async def test_revoking_the_app_password_ends_its_sessions(gw: Gateway) -> None:
    """A session made from an app password stops working, and posts nothing, once it is revoked."""
    password = await app_password(gw, "alice", "direct")
    status, live = await xrpc(gw, "POST", "com.atproto.server.createSession",
                              body={"identifier": "alice", "password": password})
    assert status == 200, live
    assert await gw.app[IDENTITY].revoke(password)
    before = await gw.snapshot()
    status, body = await xrpc(gw, "POST", "com.atproto.repo.createRecord", token=live["accessJwt"], body={
        "repo": live["did"], "collection": POST,
        "record": {"$type": POST, "text": "should not go", "createdAt": "2026-01-01T00:00:00Z"},
    })
    assert (status, body) == (400, {"error": "ExpiredToken", "message": "Token has been revoked"})
    status, body = await xrpc(gw, "POST", "com.atproto.server.createSession",
                              body={"identifier": "alice", "password": password})
    assert (status, body) == (401, {"error": "AuthenticationRequired", "message": "Invalid identifier or password"})
    assert await gw.snapshot() == before


# -- refresh grace --------------------------------------------------------------------------

REVOKED = (400, {"error": "ExpiredToken", "message": "Token has been revoked"})


async def refreshed(gw: Gateway, token: str) -> dict[str, Any]:
    """A raw refreshSession that must succeed."""
    status, body = await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=token)
    assert status == 200, body
    return dict(body)


async def works(gw: Gateway, token: str) -> bool:
    """Whether an access token is still taken (getSession answers 200)."""
    status, _ = await xrpc(gw, "GET", "com.atproto.server.getSession", token=token)
    return status == 200


async def test_two_sdk_clients_sharing_a_session_do_not_log_each_other_out(
    db_url: str, policy_dir: Path, sdk: Sdk
) -> None:
    """An app and its share extension share one saved session; the app refreshes it first, and the
    extension's refresh with the old refresh token, within the grace, gets the same new session.
    Both post. Before, the extension was logged out (ExpiredToken)."""
    # Every token the gateway issues is due for refresh by the SDK's clock (see the test above).
    behind = ManualClock(datetime.now(UTC) - timedelta(hours=1, minutes=50))
    async with started_gateway(db_url, policy_dir, behind) as gw:
        app, extension = sdk.client(gw), sdk.client(gw)
        seen: dict[str, list[tuple[str, str]]] = {"app": [], "extension": []}
        for name, client in (("app", app), ("extension", extension)):
            client.on_session_change(lambda event, s, name=name: seen[name].append((event.value, s.refresh_jwt)))
        await run(app.login, "alice", await app_password(gw, "alice", "direct"), fetch_bsky_profile=False)
        await run(extension.login, session_string=app.export_session_string(), fetch_bsky_profile=False)
        (_, saved_refresh), = seen["app"]
        did, saved = claims(saved_refresh)["sub"], claims(saved_refresh)["sid"]

        from_app = await run(app.send_post, "Posted from the app", profile_identify=did)
        from_extension = await run(extension.send_post, "Shared from the extension", profile_identify=did)

        assert (await post_for(gw, "alice", "direct", from_app.uri))["text"] == "Posted from the app"
        assert (await post_for(gw, "alice", "direct", from_extension.uri))["text"] == "Shared from the extension"
        assert [e for e, _ in seen["app"]] == ["create", "refresh"]
        assert seen["extension"] == [("import", saved_refresh), ("refresh", seen["extension"][1][1])]
        assert claims(seen["extension"][1][1])["sid"] == claims(seen["app"][1][1])["sid"] != saved


async def test_a_refreshed_session_stays_usable_for_its_grace(gw: Gateway, clock: ManualClock) -> None:
    """After a refresh, the old access token still works (until its own exp) and the old refresh
    token answers the same successor each time (its exp no later than the successor's own end)
    until two hours after the refresh; then it is refused, and the successor goes on."""
    first = await session(gw, "alice", "direct", "direct")
    clock.advance(timedelta(minutes=30))
    second = await refreshed(gw, first["refreshJwt"])
    assert await works(gw, first["accessJwt"])
    again = await refreshed(gw, first["refreshJwt"])
    successor = claims(second["accessJwt"])["sid"]
    assert {claims(t)["sid"] for t in (again["accessJwt"], again["refreshJwt"], second["refreshJwt"])} == {successor}
    assert successor != claims(first["accessJwt"])["sid"]
    assert again["accessJwt"] != second["accessJwt"] and await works(gw, again["accessJwt"])
    assert await works(gw, second["accessJwt"])

    # The successor is refreshed in turn: the first refresh token still answers it, but its
    # tokens now end with the successor's own grace (two hours from now, not ninety days).
    clock.advance(timedelta(minutes=30))
    third = await refreshed(gw, second["refreshJwt"])
    assert claims(third["accessJwt"])["sid"] not in (successor, claims(first["accessJwt"])["sid"])
    once_more = await refreshed(gw, first["refreshJwt"])
    assert claims(once_more["refreshJwt"])["sid"] == successor
    grace_end = int(clock.now().timestamp()) + 2 * 3600
    assert claims(once_more["refreshJwt"])["exp"] == grace_end

    # One minute left of the first grace: the first access token has run out on its own (two
    # hours, like the grace, so it never outlives it), the first refresh token still answers.
    clock.advance(timedelta(hours=1, minutes=29))
    expired = (400, {"error": "ExpiredToken", "message": "Token has expired"})
    assert await xrpc(gw, "GET", "com.atproto.server.getSession", token=first["accessJwt"]) == expired
    assert claims((await refreshed(gw, first["refreshJwt"]))["accessJwt"])["sid"] == successor
    clock.advance(timedelta(minutes=1))
    assert await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=first["refreshJwt"]) == REVOKED
    assert await works(gw, third["accessJwt"])
    fourth = await refreshed(gw, third["refreshJwt"])
    assert await works(gw, fourth["accessJwt"])


async def test_refreshes_at_the_same_moment_get_one_successor(gw: Gateway) -> None:
    """Four refreshes of one session sent together all succeed, with one successor between them."""
    first = await session(gw, "alice", "direct", "direct")
    answers = await asyncio.gather(*(
        xrpc(gw, "POST", "com.atproto.server.refreshSession", token=first["refreshJwt"]) for _ in range(4)
    ))
    assert [status for status, _ in answers] == [200] * 4, answers
    assert len({claims(body["refreshJwt"])["sid"] for _, body in answers}) == 1
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT token_hash FROM tokens WHERE substr(token_hash, 1, 5) = 'xrpc:'")
    assert len(rows) == 2


@pytest.mark.parametrize("logs_out", ["old", "new"])
async def test_delete_session_in_the_grace_ends_old_and_new(gw: Gateway, logs_out: str) -> None:
    """deleteSession with either the refreshed session's tokens or its successor's ends both at
    once, with no grace: every access token is refused and no refresh token refreshes."""
    first = await session(gw, "alice", "direct", "direct")
    second = await refreshed(gw, first["refreshJwt"])
    assert await works(gw, first["accessJwt"]) and await works(gw, second["accessJwt"])
    by = first if logs_out == "old" else second
    status, body = await xrpc(gw, "POST", "com.atproto.server.deleteSession", token=by["refreshJwt"])
    assert (status, body) == (200, None)
    for tokens in (first, second):
        assert await xrpc(gw, "GET", "com.atproto.server.getSession", token=tokens["accessJwt"]) == REVOKED
        assert await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=tokens["refreshJwt"]) == REVOKED
    other = await session(gw, "alice", "direct", "direct")  # another login is not touched
    assert await works(gw, other["accessJwt"])


async def test_revoking_the_app_password_in_the_grace_ends_old_and_new(gw: Gateway) -> None:
    """Revoking the app password ends a refreshed session and its successor at once."""
    password = await app_password(gw, "alice", "direct")
    status, first = await xrpc(gw, "POST", "com.atproto.server.createSession",
                               body={"identifier": "alice", "password": password})
    assert status == 200, first
    second = await refreshed(gw, first["refreshJwt"])
    assert await works(gw, first["accessJwt"]) and await works(gw, second["accessJwt"])
    assert await gw.app[IDENTITY].revoke(password)
    for tokens in (first, second):
        assert await xrpc(gw, "GET", "com.atproto.server.getSession", token=tokens["accessJwt"]) == REVOKED
        assert await xrpc(gw, "POST", "com.atproto.server.refreshSession", token=tokens["refreshJwt"]) == REVOKED


async def test_losing_every_role_in_the_grace_ends_old_and_new(gw: Gateway, policy_dir: Path) -> None:
    """Once the policy names the person no more, neither a refreshed session nor its successor
    reads, writes or refreshes."""
    first = await session(gw, "alice", "direct", "direct")
    second = await refreshed(gw, first["refreshJwt"])
    assert await works(gw, first["accessJwt"]) and await works(gw, second["accessJwt"])
    write_policy(policy_dir, "direct", TEST_POLICIES["direct"].replace("owner: alice", "owner: bob"))
    await gw.sync_policies()
    for tokens in (first, second):
        for nsid, token in (("com.atproto.server.getSession", tokens["accessJwt"]),
                            ("com.atproto.server.refreshSession", tokens["refreshJwt"])):
            status, body = await xrpc(gw, "GET" if nsid.endswith("getSession") else "POST", nsid, token=token)
            assert (status, body["error"]) == (401, "AuthenticationRequired"), (nsid, body)


# -- records --------------------------------------------------------------------------------


async def test_malformed_and_misdirected_writes_are_refused(gw: Gateway) -> None:
    """Bad JSON, a bad record, another account's repo and a non-post record: PDS errors, nothing stored."""
    live = await session(gw, "alice", "direct", "alice")
    token = live["accessJwt"]
    record = {"$type": POST, "text": "hello", "createdAt": "2026-01-01T00:00:00Z"}
    before = await gw.snapshot()
    cases: list[tuple[dict[str, Any] | None, bytes | None, int, str, str]] = [
        (None, b'{"repo": ', 400, "InvalidRequest", "body is not valid JSON"),
        (None, b"[1, 2]", 400, "InvalidRequest", "body must be a JSON object"),
        ({"repo": live["did"], "collection": POST, "record": {"text": 5}}, None, 400, "InvalidRequest",
         "Invalid app.bsky.feed.post record: text: Input should be a valid string"),
        ({"repo": live["did"], "collection": POST, "record": {"text": "no time"}}, None, 400,
         "InvalidRequest", "Invalid app.bsky.feed.post record: createdAt: Field required"),
        ({"repo": live["did"], "collection": POST,
          "record": {**record, "embed": {"$type": "app.bsky.embed.external"}}}, None, 400,
         "InvalidRequest", "Invalid app.bsky.feed.post record: Record/embed/external: Field required"),
        ({"repo": "did:web:delayed.byline.local", "collection": POST, "record": record}, None, 401,
         "AuthenticationRequired", "Authentication Required: this session writes to did:web:direct"),
        ({"repo": live["did"], "collection": "app.bsky.feed.like", "record": record}, None, 400,
         "InvalidRequest", "Byline writes app.bsky.feed.post records only, not app.bsky.feed.like"),
        ({"repo": live["did"], "collection": POST, "rkey": "3kabc", "record": record}, None, 400,
         "InvalidRequest", 'Invalid record key for app.bsky.feed.post: Invalid TID string (got "3kabc")'),
        ({"repo": live["did"], "collection": POST, "rkey": "bad!", "record": record}, None, 400,
         "InvalidRequest", 'Invalid record key (got "bad!")'),
    ]
    for body, raw, status_wanted, error, message in cases:
        status, answer = await xrpc(gw, "POST", "com.atproto.repo.createRecord", token=token, body=body, raw=raw)
        assert (status, answer["error"]) == (status_wanted, error), answer
        assert answer["message"].startswith(message), answer
    status, answer = await xrpc(gw, "GET", "com.atproto.repo.createRecord", token=token)
    assert (status, answer["error"]) == (400, "InvalidRequest"), answer
    assert await gw.snapshot() == before


async def test_apply_writes_creates_and_deletes_posts(gw: Gateway) -> None:
    """applyWrites creates two posts and takes one back in the same call; a bad write is refused first."""
    live = await session(gw, "bob", "delayed", "bob")
    token, did = live["accessJwt"], live["did"]

    def create(text: str) -> dict[str, Any]:
        return {"$type": "com.atproto.repo.applyWrites#create", "collection": POST,
                "value": {"$type": POST, "text": text, "createdAt": "2026-01-01T00:00:00Z"}}

    before = await gw.snapshot()
    status, body = await xrpc(gw, "POST", "com.atproto.repo.applyWrites", token=token, body={
        "repo": did, "writes": [create("fine"), {"$type": "com.atproto.repo.applyWrites#update",
                                                  "collection": POST, "rkey": "x", "value": {}}],
    })
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert await gw.snapshot() == before

    status, body = await xrpc(gw, "POST", "com.atproto.repo.applyWrites", token=token, body={
        "repo": did, "writes": [create("first"), create("second")],
    })
    assert status == 200, body
    first, second = body["results"]
    assert first["$type"] == "com.atproto.repo.applyWrites#createResult"
    status, body = await xrpc(gw, "POST", "com.atproto.repo.applyWrites", token=token, body={
        "repo": did, "writes": [{"$type": "com.atproto.repo.applyWrites#delete", "collection": POST,
                                 "rkey": first["uri"].rsplit("/", 1)[1]}],
    })
    assert (status, body) == (200, {"results": [{"$type": "com.atproto.repo.applyWrites#deleteResult"}]})
    assert (await post_for(gw, "bob", "delayed", first["uri"]))["state"] == "cancelled"
    assert (await post_for(gw, "bob", "delayed", second["uri"]))["state"] == "scheduled"
    status, body = await xrpc(gw, "POST", "com.atproto.repo.deleteRecord", token=token, body={
        "repo": did, "collection": POST, "rkey": "2222222222222",
    })
    assert (status, body["error"]) == (400, "InvalidRequest"), body
    assert body["message"].startswith("Could not locate record"), body


async def test_sandbox_accounts_have_no_pds_to_relay_to(gw: Gateway, sdk: Sdk) -> None:
    """Reads other than the own profile answer MethodNotImplemented (501) for a sandbox account."""
    client = await sdk.login(gw, "alice", "direct", "alice")
    with pytest.raises(RequestException) as refused:
        await run(client.com.atproto.repo.list_records, {"repo": "direct.byline.local", "collection": POST})
    assert refused.value.response is not None
    assert refused.value.response.status_code == 501
    assert refused.value.response.content.error == "MethodNotImplemented"
    with pytest.raises(BadRequestError):
        await run(client.app.bsky.actor.get_profile, {"actor": "someone.else.example"})


# -- a real PDS behind the account -----------------------------------------------------------


async def _pds_record(pds: BlueskyPds, uri: str) -> dict[str, Any] | None:
    repo, collection, rkey = uri.removeprefix("at://").split("/")
    async with aiohttp.ClientSession() as http, http.get(
        f"{pds.pds_url}/xrpc/com.atproto.repo.getRecord",
        params={"repo": repo, "collection": collection, "rkey": rkey},
    ) as resp:
        if resp.status == 400:
            return None
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_bluesky_account_publishes_to_the_real_pds(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, sdk: Sdk,
) -> None:
    """Direct on Bluesky: the record lands on the PDS under the answered uri and cid; reads are relayed."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_policy(policy_dir, "sky", f"""
        account: sky
        platform: bluesky
        handle: {account.handle}
        pds: {bluesky_pds.pds_url}
        credentials: env:CAROL_BSKY_APP_PASSWORD
        tier: direct
        owner: alice
    """)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await sdk.login(gw, "alice", "sky", account.handle)
        assert client.me is not None and (client.me.did, client.me.handle) == (account.did, account.handle)
        text = f"Through Byline to a real PDS ({secrets.token_hex(4)}) https://example.com/launch"
        sent = await run(client.send_post, text)
        post = await post_for(gw, "alice", "sky", sent.uri)
        assert sent.uri == f"at://{account.did}/{POST}/{rkey_for(post['id'])}"
        assert await _pds_record(bluesky_pds, sent.uri) is None
        await gw.tick()
        assert (await gw.get("alice", post["id"]))["state"] == "published"
        landed = await _pds_record(bluesky_pds, sent.uri)
        assert landed is not None
        assert (landed["cid"], landed["value"]["text"]) == (sent.cid, text)

        parent = models.create_strong_ref(sent)
        reply = await run(client.send_post, "A reply, through Byline too",
                          reply_to=models.AppBskyFeedPost.ReplyRef(root=parent, parent=parent))
        await gw.tick()
        landed = await _pds_record(bluesky_pds, reply.uri)
        assert landed is not None
        assert (landed["cid"], landed["value"]["reply"]["parent"]) == (reply.cid, {"uri": sent.uri, "cid": sent.cid})

        listed = await run(client.com.atproto.repo.list_records,
                           {"repo": account.did, "collection": POST, "limit": 100})
        assert {sent.uri, reply.uri} <= {r.uri for r in listed.records}
        described = await run(client.com.atproto.repo.describe_repo, {"repo": account.handle})
        assert (described.did, described.handle) == (account.did, account.handle)
        with pytest.raises(RequestException) as refused:
            await run(client.com.atproto.server.create_app_password, {"name": "mine now"})
        assert refused.value.response is not None
        assert refused.value.response.status_code == 501

        assert await run(client.delete_post, sent.uri) is True
        assert (await gw.get("alice", post["id"]))["state"] == "deleted"
        assert await _pds_record(bluesky_pds, sent.uri) is None


async def test_bluesky_post_held_by_a_rule_waits_and_can_be_taken_back(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, sdk: Sdk,
) -> None:
    """A held post on a Bluesky account never reaches the PDS when deleted before approval."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skyheld", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await sdk.login(gw, "alice", "skyheld", account.did)
        sent = await run(client.send_post, f"Not yet ({secrets.token_hex(4)})")
        post = await post_for(gw, "alice", "skyheld", sent.uri)
        assert post["state"] == "held"
        await gw.tick()
        assert await _pds_record(bluesky_pds, sent.uri) is None
        assert await run(client.delete_post, sent.uri) is True
        assert (await gw.get("alice", post["id"]))["state"] == "cancelled"
        status, body = await gw.act("bob", post["id"], "approve")
        assert status == 409, body
        await gw.tick()
        assert await _pds_record(bluesky_pds, sent.uri) is None


async def test_a_reply_approved_before_its_parent_waits_for_it_on_the_pds(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, sdk: Sdk,
) -> None:
    """A reply to a post Byline answered for but has not written (its ``parent.uri`` is that
    post's future address) waits for it: approved first, it does not go out before its parent
    (before: it went out first, the PDS had no parent, and it failed for good), then lands as a
    reply to the parent, under the CID it was answered with."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skythread", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await sdk.login(gw, "alice", "skythread", account.did)
        words = secrets.token_hex(4)
        first = await run(client.send_post, f"Thread 1/2 ({words})")
        parent = models.create_strong_ref(first)
        second = await run(client.send_post, f"Thread 2/2 ({words})",
                           reply_to=models.AppBskyFeedPost.ReplyRef(root=parent, parent=parent))
        first_post = await post_for(gw, "alice", "skythread", first.uri)
        second_post = await post_for(gw, "alice", "skythread", second.uri)
        status, body = await gw.act("bob", second_post["id"], "approve")
        assert status == 200, body
        await gw.tick()
        assert await _pds_record(bluesky_pds, second.uri) is None
        assert (await gw.get("alice", second_post["id"]))["state"] == "scheduled"
        status, body = await gw.act("bob", first_post["id"], "approve")
        assert status == 200, body
        await gw.tick()
        assert await _pds_record(bluesky_pds, first.uri) is not None
        clock.advance(timedelta(minutes=1))  # while its parent was held, it looks again a minute later
        await gw.tick()
        landed = await _pds_record(bluesky_pds, second.uri)
        assert landed is not None, await gw.get("alice", second_post["id"])
        assert landed["value"]["reply"]["parent"] == {"uri": first.uri, "cid": first.cid}
        assert landed["cid"] == second.cid
