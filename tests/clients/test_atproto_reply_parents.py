"""Replies through the XRPC surface to a Bluesky account's own posts, with the real ``atproto``
SDK, to a real PDS: what a reply answers is the post that was there when it was written. A PDS
takes a reply to an address that holds nothing; through Byline that reply would answer whatever
is written there later, words its approvers never saw it answer.
"""

from __future__ import annotations

import contextlib
import html
import json
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from atproto import Client, models
from atproto_client.exceptions import BadRequestError, NetworkError

from adapters.bluesky import BlueskyAdapter
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_threads import (
    CREATE,
    POST,
    clients,
    clock,
    login,
    pds_record,
    posts_by_key,
    run,
    sdk_writes,
)
from tests.conftest import started_gateway
from tests.pages.conftest import pages_on
from tests.platforms.bluesky.fixture import BlueskyPds, PdsAccount, app_tid, post_records, write_bluesky_policy

__all__ = ["clients", "clock"]  # fixtures, used by name
FAKE_CID = "bafyreia" + "a" * 51
"""A CID of the right form for a record no one wrote."""


@dataclass(frozen=True)
class OnPds:
    """The account's own session on its PDS: what writes there without Byline (the SDK's login
    reads a profile, which a PDS without an AppView cannot give)."""

    pds: BlueskyPds
    did: str
    token: str

    async def call(self, nsid: str, body: dict[str, Any]) -> dict[str, Any]:
        """One XRPC procedure on the PDS, as the account."""
        async with aiohttp.ClientSession() as http, http.post(
            f"{self.pds.pds_url}/xrpc/{nsid}", json=body, headers={"Authorization": f"Bearer {self.token}"},
        ) as resp:
            assert resp.status == 200, await resp.text()
            return dict(await resp.json())

    async def write(
        self, rkey: str, text: str, *, reply: dict[str, Any] | None = None, labels: tuple[str, ...] = (),
    ) -> dict[str, str]:
        """A post written under ``rkey``, carrying the self-labels ``labels``; its strong ref
        (uri, cid)."""
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": now_iso()}
        if reply is not None:
            record["reply"] = reply
        if labels:
            record["labels"] = {"$type": "com.atproto.label.defs#selfLabels", "values": [{"val": v} for v in labels]}
        made = await self.call("com.atproto.repo.createRecord",
                               {"repo": self.did, "collection": POST, "rkey": rkey, "record": record})
        return {"uri": made["uri"], "cid": made["cid"]}

    async def delete(self, rkey: str) -> None:
        """The post under ``rkey`` deleted."""
        await self.call("com.atproto.repo.deleteRecord", {"repo": self.did, "collection": POST, "rkey": rkey})


async def on_pds(pds: BlueskyPds, account: PdsAccount) -> OnPds:
    """A session of ``account`` on the PDS itself, with its app password."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{pds.pds_url}/xrpc/com.atproto.server.createSession",
        json={"identifier": account.handle, "password": account.app_password},
    ) as resp:
        assert resp.status == 200, await resp.text()
        return OnPds(pds=pds, did=account.did, token=(await resp.json())["accessJwt"])


def now_iso() -> str:
    """Now, as a record's createdAt."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def reply_to(ref: dict[str, str]) -> models.AppBskyFeedPost.ReplyRef:
    """The SDK's reply ref of a post answering ``ref`` (its own thread's root)."""
    strong = models.ComAtprotoRepoStrongRef.Main(uri=ref["uri"], cid=ref["cid"])
    return models.AppBskyFeedPost.ReplyRef(root=strong, parent=strong)


def skyreply_policy(policy_dir: Path, bluesky_pds: BlueskyPds, monkeypatch: pytest.MonkeyPatch,
                    tier: str) -> PdsAccount:
    """Account ``skyreply`` on carol.test: written by alice, co-signed by bob unless ``tier``."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
    write_bluesky_policy(policy_dir, "skyreply", handle=account.handle, pds=bluesky_pds.pds_url,
                         credential_env="CAROL_BSKY_APP_PASSWORD", tier=tier)
    return account


@pytest.mark.parametrize("tier", ["direct", "co-signed"])
async def test_a_reply_to_an_address_that_holds_no_post_is_refused_as_the_pds_reads_it(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client], tier: str,
) -> None:
    """A reply naming a key of the account's own repository that holds no post, which the PDS
    itself takes: through Byline, createRecord and applyWrites are refused with getRecord's
    ``RecordNotFound``, nothing is stored, and a post written there later has no reply waiting
    to answer it. (Before: taken; on the co-signed account held, approved, and out as a reply to
    the words written there after the approval.)"""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, tier)
    own = await on_pds(bluesky_pds, account)
    rkey = app_tid()
    empty = f"at://{account.did}/{POST}/{rkey}"
    words = secrets.token_hex(4)
    # The PDS takes such a reply itself: it checks no reply's parent.
    nothing = {"uri": f"at://{account.did}/{POST}/{app_tid()}", "cid": FAKE_CID}
    taken = await own.write(app_tid(), f"PDS reply to nothing ({words})", reply={"root": nothing, "parent": nothing})
    assert await pds_record(bluesky_pds, taken["uri"]) is not None

    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        before = await gw.snapshot()
        with pytest.raises(BadRequestError) as refused:
            await run(client.send_post, f"Quite right ({words})", reply_to=reply_to({"uri": empty, "cid": FAKE_CID}))
        error = refused.value.response.content
        assert (refused.value.response.status_code, error.error) == (400, "RecordNotFound")
        assert error.message.startswith(f"Could not locate record: {empty}")
        missing = {"uri": empty, "cid": FAKE_CID}
        record = {"$type": POST, "text": f"Also right ({words})", "createdAt": now_iso(),
                  "reply": {"root": missing, "parent": missing}}
        with pytest.raises(BadRequestError) as batch:
            await run(client.com.atproto.repo.apply_writes, sdk_writes(account.did, [
                {"$type": CREATE, "collection": POST, "rkey": app_tid(),
                 "value": {"$type": POST, "text": f"First ({words})", "createdAt": record["createdAt"]}},
                {"$type": CREATE, "collection": POST, "rkey": app_tid(), "value": record},
            ]))
        assert (batch.value.response.status_code, batch.value.response.content.error) == (400, "RecordNotFound")
        assert batch.value.response.content.message.startswith(f"writes/2: Could not locate record: {empty}")
        assert await gw.snapshot() == before
        assert await posts_by_key(gw, "alice", "skyreply") == {}

        # The words written there later have no reply of Byline's answering them.
        await own.write(rkey, f"Words no approver saw ({words})")
        for _ in range(3):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        assert await posts_by_key(gw, "alice", "skyreply") == {}
        await verified_by_cli(gw)


@pytest.mark.parametrize("then", ["deleted", "written again"])
async def test_a_held_reply_whose_parent_goes_or_is_replaced_before_it_is_out_fails(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client], then: str,
) -> None:
    """A held reply to a post on the PDS, approved; the post is then deleted, or deleted and
    written again under its key with other words, before the reply goes out: the reply fails,
    saying why, and nothing answering the new words reaches the PDS, as a Mastodon reply whose
    status is gone fails. (Before, written again: out as a reply to the new words.)"""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    own = await on_pds(bluesky_pds, account)
    words = secrets.token_hex(4)
    rkey = app_tid()
    parent = await own.write(rkey, f"Tea is best hot ({words})")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        answer = await run(client.send_post, f"Quite right ({words})", reply_to=reply_to(parent))
        post = (await posts_by_key(gw, "alice", "skyreply"))[answer.uri.rsplit("/", 1)[1]]
        assert post["state"] == "held"
        status, body = await gw.act("bob", post["id"], "approve")
        assert status == 200, body

        await own.delete(rkey)
        if then == "written again":
            again = await own.write(rkey, f"Tea is best iced ({words})")
            assert (again["uri"], again["cid"] != parent["cid"]) == (parent["uri"], True)
        for _ in range(3):
            await gw.tick()
            clock.advance(timedelta(minutes=1))

        status, failed = await gw.call("alice", "GET", f"/v1/posts/{post['id']}")
        assert status == 200, failed
        expected = ("is not the one the reply was written to" if then == "written again" else "does not exist")
        assert failed["state"] == "failed"
        assert f"the post replied to, {parent['uri']}, {expected}" in failed["last_error"]
        assert await pds_record(bluesky_pds, answer.uri) is None
        await verified_by_cli(gw)


async def test_a_reply_to_a_post_that_is_there_goes_out_answering_it(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """A reply to a post on the PDS, and to one of another account there, goes out answering it
    at once on a direct account: the check reads the parent, it does not stand in its way."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "direct")
    own = await on_pds(bluesky_pds, account)
    other = await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))
    words = secrets.token_hex(4)
    parents = [await own.write(app_tid(), f"Mine ({words})"), await other.write(app_tid(), f"Theirs ({words})")]
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        answers = [await run(client.send_post, f"Agreed ({words})", reply_to=reply_to(p)) for p in parents]
        await gw.tick()
        landed: list[dict[str, Any] | None] = [await pds_record(bluesky_pds, a.uri) for a in answers]
        assert [r["value"]["reply"]["parent"] if r else None for r in landed] == parents


class Between:
    """Passes every request on to the PDS and its answer back, but where :meth:`instead` answers
    a request itself or :meth:`altered` changes an answer: a PDS that says otherwise."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.app = web.Application()
        self.app.router.add_route("*", "/{tail:.*}", self._forward)

    def instead(self, request: web.Request) -> web.Response | None:
        """The answer to ``request`` in the PDS's stead, if any."""
        return None

    def altered(self, request: web.Request, answer: Any) -> Any:
        """The PDS's JSON answer to ``request`` as it is passed back (``answer`` itself: as the
        PDS wrote it)."""
        return answer

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        if (own := self.instead(request)) is not None:
            return own
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")}
        async with aiohttp.ClientSession() as http, http.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=await request.read(),
        ) as resp:
            body = await resp.read()
            if resp.status == 200 and resp.content_type == "application/json":
                answer = json.loads(body)
                if (changed := self.altered(request, answer)) is not answer:
                    return web.json_response(changed)
            return web.Response(status=resp.status, body=body, content_type=resp.content_type)


class ReadsFailing(Between):
    """Answers ``getRecord`` with a 503 while ``down``: a PDS that cannot say what a reply answers."""

    down = False

    def instead(self, request: web.Request) -> web.Response | None:
        if self.down and request.path == "/xrpc/com.atproto.repo.getRecord":
            return web.json_response({"error": "NotEnoughResources", "message": "try later"}, status=503)
        return None


class HandleUnvouched(Between):
    """Answers ``describeRepo`` as a PDS does for a repository whose handle no longer resolves
    to it: ``handle.invalid``."""

    def altered(self, request: web.Request, answer: Any) -> Any:
        if request.path == "/xrpc/com.atproto.repo.describeRepo":
            return {**answer, "handle": "handle.invalid", "handleIsCorrect": False}
        return answer


@contextlib.asynccontextmanager
async def skyreply_behind(
    proxy: Between, bluesky_pds: BlueskyPds, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, **policy: Any,
) -> AsyncIterator[PdsAccount]:
    """Account ``skyreply`` on carol.test, its PDS reached through ``proxy`` (served meanwhile)."""
    server = TestServer(proxy.app)
    await server.start_server()
    try:
        account = bluesky_pds.account("carol.test")
        monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", account.app_password)
        write_bluesky_policy(policy_dir, "skyreply", handle=account.handle, pds=str(server.make_url("")).rstrip("/"),
                             credential_env="CAROL_BSKY_APP_PASSWORD", **policy)
        yield account
    finally:
        await server.close()


async def test_a_reply_whose_parent_cannot_be_read_or_is_no_post_is_refused_with_nothing_stored(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """A PDS that cannot say what a reply answers is a 502 ``UpstreamFailure`` the client tries
    again, and taken then; a parent that names another kind of record is a 400 saying so.
    Nothing of a refused reply is stored."""
    proxy = ReadsFailing(bluesky_pds.pds_url)
    async with skyreply_behind(proxy, bluesky_pds, policy_dir, monkeypatch) as account:
        parent = await (await on_pds(bluesky_pds, account)).write(app_tid(), f"Hello ({secrets.token_hex(4)})")
        async with started_gateway(db_url, policy_dir, clock) as gw:
            client = await login(gw, clients, "alice", "skyreply", account.handle)
            before = await gw.snapshot()
            proxy.down = True
            with pytest.raises(NetworkError) as unread:
                await run(client.send_post, "Hello back", reply_to=reply_to(parent))
            answered = unread.value.response
            assert answered is not None and (answered.status_code, answered.content.error) == (502, "UpstreamFailure")
            like = {"uri": f"at://{account.did}/app.bsky.feed.like/{app_tid()}", "cid": FAKE_CID}
            with pytest.raises(BadRequestError) as not_post:
                await run(client.send_post, "Hello like", reply_to=reply_to(like))
            assert not_post.value.response.content.message == (
                f"Invalid {POST} record: Record/reply/parent: bluesky: can only reply to posts, not {like['uri']}"
            )
            assert await gw.snapshot() == before

            proxy.down = False
            again = await run(client.send_post, "Hello back", reply_to=reply_to(parent))
            assert (await posts_by_key(gw, "alice", "skyreply"))[again.uri.rsplit("/", 1)[1]]["state"] == "held"


async def test_a_reply_sent_through_the_native_api_answers_the_bluesky_post_that_was_there(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same through ``POST /v1/posts`` (``reply_to``, an at:// address): an address that
    holds no post is a 404 with nothing stored; a reply to a post there, approved, fails once
    that post is deleted and written again with other words, and nothing answering them goes
    out. (Before: the first taken, the second out as a reply to the new words.)"""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    own = await on_pds(bluesky_pds, account)
    rkey = app_tid()
    words = secrets.token_hex(4)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        before = await gw.snapshot()
        empty = f"at://{account.did}/{POST}/{rkey}"
        status, body = await gw.call("alice", "POST", "/v1/posts",
                                     {"account": "skyreply", "text": f"Quite right ({words})", "reply_to": empty})
        assert (status, body["error"]) == (404, "not_found"), body
        assert body["message"].startswith(f"Could not locate record: {empty}")
        assert await gw.snapshot() == before

        parent = await own.write(rkey, f"Tea is best hot ({words})")
        post = await gw.submit("alice", "skyreply", f"Quite right ({words})", reply_to=parent["uri"])
        status, body = await gw.act("bob", post["id"], "approve")
        assert status == 200, body
        await own.delete(rkey)
        await own.write(rkey, f"Tea is best iced ({words})")
        for _ in range(3):
            await gw.tick()
            clock.advance(timedelta(minutes=1))
        failed = await gw.get("alice", post["id"])
        assert failed["state"] == "failed", failed
        assert "is not the one the reply was written to" in failed["last_error"]
        assert [r for r in await post_records(bluesky_pds, account.did) if words in r["value"]["text"]
                and r["value"].get("reply")] == []
        await verified_by_cli(gw)


def shown_on_card(page: str, post_id: str, label: str) -> str:
    """What one post's card on a page shows under ``label`` (its HTML)."""
    card = re.search(rf'<article[^>]*data-post="{post_id}".*?</article>', page, re.DOTALL)
    assert card is not None, page
    found = re.search(rf"<dt>{label}</dt><dd>(.*?)</dd>", card.group(0), re.DOTALL)
    assert found is not None, card.group(0)
    return found.group(1)


def _replies_to(page: str, post_id: str) -> str:
    """What one post's card on a page says it replies to (its HTML)."""
    return shown_on_card(page, post_id, "Replies to")


async def test_an_approver_sees_whose_bluesky_post_a_reply_answers_with_a_link_to_it(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch, clients: list[Client],
) -> None:
    """Alice answers bob.test's post on the PDS from a Bluesky app (createRecord) and through
    the native API (``reply_to``, its at:// address). Bob's cards say whose post each answers,
    by the handle the PDS vouched for when the reply was written, and link to it in the Bluesky
    app, and the words it answers as text (markup in them shown as written). Before, they said
    only the at:// address, and bob approved words without seeing what they answer; then whose
    post, without its words. The handle and the words are kept with the reply: the PDS is not
    asked as the card is shown."""
    account = skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    theirs = bluesky_pds.account("bob.test")
    words = secrets.token_hex(4)
    said = f"Tea is <b>best</b> iced & cold ({words})"
    parent = await (await on_pds(bluesky_pds, theirs)).write(app_tid(), said)
    rkey = parent["uri"].rsplit("/", 1)[1]
    async with started_gateway(db_url, policy_dir, clock) as gw:
        client = await login(gw, clients, "alice", "skyreply", account.handle)
        answer = await run(client.send_post, f"Never ({words})", reply_to=reply_to(parent))
        by_app = (await posts_by_key(gw, "alice", "skyreply"))[answer.uri.rsplit("/", 1)[1]]
        native = await gw.submit("alice", "skyreply", f"Hot, always ({words})", reply_to=parent["uri"])
        async with pages_on(gw, ["bob"]) as pages:
            bob = await pages.person("bob")
            _, page = await bob.get("/queue")
            for post_id in (by_app["id"], native["id"]):
                shown = _replies_to(page, post_id)
                assert f'href="https://bsky.app/profile/bob.test/post/{rkey}"' in shown, shown
                assert "@bob.test's post" in html.unescape(shown), shown
                assert html.unescape(shown_on_card(page, post_id, "Words it answers")) == f"<bdi>{said}</bdi>"

            async def asked(self: BlueskyAdapter, repo: str) -> str | None:
                raise AssertionError(f"the PDS asked for {repo}'s handle as a card was shown")

            async def read(self: BlueskyAdapter, address: str, *, what: str = "") -> dict[str, Any]:
                raise AssertionError(f"the PDS asked for {address} as a card was shown")

            monkeypatch.setattr(BlueskyAdapter, "vouched_handle", asked)
            monkeypatch.setattr(BlueskyAdapter, "record", read)
            _, again = await bob.get("/queue")
            for label in ("Replies to", "Words it answers"):
                assert [shown_on_card(again, p, label) for p in (by_app["id"], native["id"])] == [
                    shown_on_card(page, p, label) for p in (by_app["id"], native["id"])]
        await verified_by_cli(gw)


async def test_a_reply_to_a_bluesky_post_whose_handle_the_pds_cannot_vouch_for_shows_its_address_unlinked(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The PDS says the parent's author has no handle it can vouch for (``handle.invalid``):
    the reply is taken all the same (its parent is there), and bob's card shows the at://
    address as it is, linking nowhere and naming no one, with the words it answers, which the
    PDS gave as it holds them."""
    said = f"Tea is best iced ({secrets.token_hex(4)})"
    async with skyreply_behind(HandleUnvouched(bluesky_pds.pds_url), bluesky_pds, policy_dir, monkeypatch):
        parent = await (await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))).write(app_tid(), said)
        async with started_gateway(db_url, policy_dir, clock) as gw:
            post = await gw.submit("alice", "skyreply", "Hot, always", reply_to=parent["uri"])
            assert post["state"] == "held", post
            async with pages_on(gw, ["bob"]) as pages:
                _, page = await (await pages.person("bob")).get("/queue")
            shown = _replies_to(page, post["id"])
            assert html.unescape(shown).strip() == f"<bdi>{parent['uri']} on the platform</bdi>", shown
            assert html.unescape(shown_on_card(page, post["id"], "Words it answers")) == f"<bdi>{said}</bdi>"


async def test_an_approver_reads_the_self_labels_of_the_bluesky_post_a_reply_answers_before_its_words(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Bob.test's post carries self-labels (a content warning, as Bluesky apps show it): bob's
    card of alice's reply to it shows them, "Content warning: ...", before the words, as the
    PDS gave them when the reply was written. Before: the words alone."""
    skyreply_policy(policy_dir, bluesky_pds, monkeypatch, "co-signed")
    said = f"The ending, told ({secrets.token_hex(4)})"
    parent = await (await on_pds(bluesky_pds, bluesky_pds.account("bob.test"))).write(
        app_tid(), said, labels=("graphic-media", "nudity"))
    async with started_gateway(db_url, policy_dir, clock) as gw:
        post = await gw.submit("alice", "skyreply", "Spoilers!", reply_to=parent["uri"])
        assert post["state"] == "held", post
        async with pages_on(gw, ["bob"]) as pages:
            _, page = await (await pages.person("bob")).get("/queue")
        assert html.unescape(shown_on_card(page, post["id"], "Words it answers")) == (
            f"<bdi>Content warning: graphic-media, nudity\n\n{said}</bdi>")
