"""From a post back to its record (issue 18): a follower pastes a post's address, in whatever
form their app shows it, into the audit page and gets its byline (who wrote, who approved,
under which policy version) with the log entries that prove it; a Bluesky post carries the
link to that record in its own record. Over HTTP, both databases, against the Mastodon and X
stand-ins and a real Bluesky PDS.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from aiohttp.test_utils import TestServer

from gateway.appkeys import DB
from gateway.clock import ManualClock
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.platforms.bluesky.fixture import BlueskyPds, post_records

PUBLIC = "https://byline.example.org"
M_TOKEN = "mtok-lookup-9d2e"
X_TOKEN = "xtok-lookup-4a7c"


def _policy(platform: str, where: str, tier: str = "co-signed") -> str:
    approvals = "approvals:\n      from: [bob]\n      required: 1\n" if tier == "co-signed" else ""
    return f"""
    account: brand
    platform: {platform}
    {where}
    tier: {tier}
    owner: alice
    writers: [alice, carol]
    {approvals}
    announce: {{voice_changes: true}}
    """


@pytest.fixture
async def stand_ins(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[FakeMastodon, FakeX, str, str]]:
    """The Mastodon and X stand-ins on real sockets."""
    mastodon, x = FakeMastodon(), FakeX()
    mastodon.add_account("brand", M_TOKEN)
    x.add_user("brand", X_TOKEN)
    m_server, x_server = TestServer(mastodon_app(mastodon)), TestServer(x_app(x))
    await m_server.start_server()
    await x_server.start_server()
    monkeypatch.setenv("BRAND_M_TOKEN", M_TOKEN)
    monkeypatch.setenv("BRAND_X_TOKEN", X_TOKEN)
    try:
        yield mastodon, x, str(m_server.make_url("")).rstrip("/"), str(x_server.make_url("")).rstrip("/")
    finally:
        await m_server.close()
        await x_server.close()


async def _publish(gw: Gateway, text: str) -> tuple[str, str, str]:
    """A post by carol approved by bob, out: its id, platform address and remote id."""
    post = await gw.submit("carol", "brand", text)
    status, _ = await gw.act("bob", post["id"], "approve")
    assert status == 200
    await gw.tick()
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state, remote_url, remote_id FROM posts WHERE id = ?", post["id"])
    assert row is not None and row["state"] == "published"
    return post["id"], str(row["remote_url"]), str(row["remote_id"])


async def _lookup(gw: Gateway, address: str) -> str:
    """The audit page's answer to a pasted address: 200, as text."""
    resp = await gw.client.get("/audit", params={"kind": "url", "q": address})
    body = await resp.text()
    assert resp.status == 200, body
    return html.unescape(re.sub(r"<[^>]+>", "", body))


async def _sha(gw: Gateway, version: int) -> str:
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT sha256 FROM policy_versions WHERE account = 'brand' AND version = ?", version)
    assert row is not None
    return str(row["sha256"])


def _says(page: str, post_id: str, sha: str) -> None:
    words = " ".join(page.split())
    assert f"Post {post_id}" in words
    assert "Written by carol, approved by bob." in words
    assert f"Decided under policy version 2 of @brand, file {sha}." in words
    assert "Log entries of this post" in words


async def test_a_mastodon_post_is_found_from_any_form_of_its_address(
    db_url: str, tmp_path: Path, clock: ManualClock, stand_ins: tuple[FakeMastodon, FakeX, str, str],
) -> None:
    """The status URL as Mastodon shows it, with a trailing slash, a query and fragment, or its
    /users/…/statuses/… form: each finds the post, its byline and its policy version."""
    _, _, instance, _ = stand_ins
    policies = tmp_path / "policies"
    policies.mkdir()
    where = f"instance: {instance}\n    credentials: env:BRAND_M_TOKEN"
    write_policy(policies, "brand", _policy("mastodon", where, tier="direct"))
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", _policy("mastodon", where))
        await gw.sync_policies()
        await gw.tick()  # the announcement of version 2 goes out
        post_id, url, remote_id = await _publish(gw, "Found from its address")
        sha = await _sha(gw, 2)
        parts = urlsplit(url)
        for address in (url, url + "/", url + "?utm_source=app#reply", f" {url} ",
                        f"{parts.scheme}://{parts.netloc}/users/brand/statuses/{remote_id}"):
            _says(await _lookup(gw, address), post_id, sha)
        other = await _lookup(gw, f"https://elsewhere.example/@brand/{remote_id}")
        assert "Nothing that went out matches." in other, "the same id on another server is another post"
        async with gw.app[DB].read() as txn:
            row = await txn.fetchone("SELECT remote_url FROM posts WHERE author = 'policy-file'")
        assert row is not None
        words = " ".join((await _lookup(gw, str(row["remote_url"]))).split())
        assert ("An announcement of a change of voice, written by Byline from the account's policy file "
                "(version 2): no one approved it, the policy an admin wrote is its authorisation.") in words


async def test_an_x_post_is_found_by_its_twitter_or_x_address(
    db_url: str, tmp_path: Path, clock: ManualClock, stand_ins: tuple[FakeMastodon, FakeX, str, str],
) -> None:
    """x.com/i/web/status/ID as recorded, or x.com or twitter.com by the user's name, as apps share it."""
    _, _, _, api = stand_ins
    policies = tmp_path / "policies"
    policies.mkdir()
    where = f"api: {api}\n    credentials: env:BRAND_X_TOKEN"
    write_policy(policies, "brand", _policy("x", where, tier="direct"))
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", _policy("x", where))
        await gw.sync_policies()
        await gw.tick()
        post_id, url, remote_id = await _publish(gw, "Found on X")
        assert url == f"https://x.com/i/web/status/{remote_id}"
        sha = await _sha(gw, 2)
        for address in (url, f"https://twitter.com/brand/status/{remote_id}",
                        f"https://mobile.twitter.com/brand/status/{remote_id}?s=20", f"https://x.com/brand/status/{remote_id}/"):
            _says(await _lookup(gw, address), post_id, sha)


async def test_a_bad_address_gets_a_clear_answer_and_changes_nothing(gateway: Gateway) -> None:
    """Control characters are refused with 422; an address of nothing, or not an address, finds nothing."""
    before = await gateway.snapshot()
    resp = await gateway.client.get("/audit", params={"kind": "url", "q": "https://x.com/a/status/1\x07"})
    assert resp.status == 422
    assert "control characters" in await resp.text()
    for address in ("https://x.com/brand/status/99999", "at://did:plc:abc/app.bsky.feed.post/3kxyz",
                    "javascript:alert(1)", "https://[::1", "https://byline.example.org/audit?kind=post&q=1; DROP"):
        assert "Nothing that went out matches." in await _lookup(gateway, address)
    assert await gateway.snapshot() == before


async def test_a_bluesky_post_carries_the_link_to_its_record(
    bluesky_pds: BlueskyPds, db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a real PDS: the post's record holds a ``byline`` field (the link to its public record)
    and its text exactly the words, nothing more; that link, the app's URL by handle or by DID,
    and the at:// URI each find the post with its byline and policy version."""
    account = bluesky_pds.account("bob.test")
    monkeypatch.setenv("BOB_BSKY_APP_PASSWORD", account.app_password)
    policies = tmp_path / "policies"
    policies.mkdir()
    where = f"pds: {bluesky_pds.pds_url}\n    credentials: env:BOB_BSKY_APP_PASSWORD\n    handle: {account.handle}"
    write_policy(policies, "brand", _policy("bluesky", where, tier="direct"))
    async with started_gateway(db_url, policies, clock, public_url=PUBLIC) as gw:
        write_policy(policies, "brand", _policy("bluesky", where))
        await gw.sync_policies()
        await gw.tick()
        text = f"Carried by its record ({secrets.token_hex(4)})"
        post_id, url, remote_id = await _publish(gw, text)
        [record] = [r for r in await post_records(bluesky_pds, account.did) if r["uri"] == remote_id]
        link = f"{PUBLIC}/audit?kind=post&q={post_id}"
        assert record["value"]["text"] == text
        assert record["value"]["byline"] == link
        sha = await _sha(gw, 2)
        rkey = remote_id.rsplit("/", 1)[1]
        assert url.endswith(f"/post/{rkey}")
        for address in (url, link, remote_id, f"https://bsky.app/profile/{quote(account.did)}/post/{rkey}",
                        f"https://bsky.app/profile/{account.handle}/post/{rkey}"):
            _says(await _lookup(gw, address), post_id, sha)
        resp = await gw.client.get(urlsplit(link).path + "?" + urlsplit(link).query)
        assert resp.status == 200
        _says(html.unescape(re.sub(r"<[^>]+>", "", await resp.text())), post_id, sha)
