"""A credential speaks for the platform account its policy file names, as the platform tells it:
a token swapped for another account's on the same server (the file's ``handle`` left as it
was) publishes nothing there, not a post co-signed for the brand, nor a direct one; the account
is held and says why, and once the file or the credential is put right each post goes out once.
A file naming no handle is held to the account it published as, across restarts and replicas,
until its admin names the new one, whose posts then need approvals given for it.
Platform stand-ins and a real PDS on real sockets, both databases."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from gateway.app import DB
from gateway.clock import ManualClock
from gateway.services.identities import NOT_NAMED_PUBLIC
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon, Status
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.platforms.bluesky.fixture import BlueskyPds, texts_from_now, write_bluesky_policy

BRAND_TOKEN = "tok-brand-own-4b1f20"
OTHER_TOKEN = "tok-other-account-e93a57"
"""A token of another account on the same server, which the brand's file is given instead."""


@dataclass
class Mastodon:
    """A Mastodon stand-in on a real socket with two accounts, brand and other."""

    fake: FakeMastodon
    url: str

    def texts(self, username: str) -> list[str]:
        """What the account ``username`` has published."""
        account = next(a for a in self.fake.accounts.values() if a.username == username)
        statuses: list[Status] = self.fake.statuses(account)
        return [s.text for s in statuses]


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[str]:
    """``app`` on a real socket: its address."""
    server = TestServer(app)
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


@pytest.fixture
async def mastodon() -> AsyncIterator[Mastodon]:
    """Brand (BRAND_TOKEN) and other (OTHER_TOKEN) on one instance."""
    fake = FakeMastodon()
    fake.add_account("brand", BRAND_TOKEN)
    fake.add_account("other", OTHER_TOKEN)
    async with _serving(mastodon_app(fake)) as url:
        yield Mastodon(fake=fake, url=url)


def _cosigned(url: str, handle: str) -> str:
    return f"""
        account: brand
        platform: mastodon
        handle: "{handle}"
        instance: {url}
        credentials: env:BRAND_PLATFORM_TOKEN
        tier: co-signed
        owner: alice
        writers: [alice]
        approvals:
          required: 1
          from: [bob]
    """


async def _health(gw: Gateway, account: str) -> tuple[bool, str | None]:
    status, body = await gw.call("alice", "GET", "/v1/accounts")
    assert status == 200, body
    found = {a["account"]: (a["healthy"], a["problem"]) for a in body["accounts"]}
    return found[account]


@pytest.mark.parametrize("handle", ["@brand", "@Brand@mastodon.example"])
async def test_a_swapped_token_does_not_publish_a_cosigned_post_on_another_account(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: Mastodon, monkeypatch: pytest.MonkeyPatch,
    handle: str,
) -> None:
    """The brand's file keeps its handle, its token is another account's: the approved post
    waits (not on the other account, not failed), the brand is unhealthy naming both accounts
    and no token, on /readyz too, and logged so; the token put back, it goes out once, as the
    brand, and the log verifies."""
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", OTHER_TOKEN)
    directory = make_policy_dir(tmp_path, {"brand": _cosigned(mastodon.url, handle)})
    async with started_gateway(db_url, directory, clock) as gw:
        signed = await gw.submit("alice", "brand", "Signed for the brand")
        status, approved = await gw.act("bob", signed["id"], "approve")
        assert status == 200, approved
        with capture_logs() as logs:
            await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == ([], [])
        body = await gw.get("alice", signed["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 0), body
        assert body["events"][-1]["data"]["error"] == NOT_NAMED_PUBLIC
        healthy, problem = await _health(gw, "brand")
        assert healthy is False and problem is not None
        assert handle in problem and "other@" in problem, problem
        status, ready = await gw.call(None, "GET", "/readyz")
        assert ready["accounts_unhealthy"] == ["brand"], ready
        held = [e for e in logs if e["event"] == "platform_account_not_named"]
        assert [(e["account"], e["named"], e["answered"].partition("@")[0]) for e in held] == [
            ("brand", handle, "other")]
        assert all(token not in repr(logs) + problem for token in (BRAND_TOKEN, OTHER_TOKEN))

        asked = mastodon.fake.faults.count("GET", "/api/v1/accounts/verify_credentials")
        for _ in range(3):  # minutes go by: nothing goes out, and the platform is not asked again
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == ([], [])
        assert mastodon.fake.faults.count("GET", "/api/v1/accounts/verify_credentials") == asked

        monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)  # the admin puts the token back
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == (["Signed for the brand"], [])
        assert await _health(gw, "brand") == (True, None)
        clock.advance(timedelta(hours=1))
        await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == (["Signed for the brand"], [])
        assert (await gw.get("alice", signed["id"]))["state"] == "published"
        await verified_by_cli(gw)


@dataclass
class X:
    """An X stand-in on a real socket with two users, quick and other."""

    fake: FakeX
    url: str

    def texts(self, username: str) -> list[str]:
        """What the user ``username`` has posted."""
        user = next(u for u in self.fake.users.values() if u.username == username)
        return [t.text for t in self.fake.tweets(user)]


@pytest.fixture
async def x() -> AsyncIterator[X]:
    """Quick (BRAND_TOKEN) and other (OTHER_TOKEN) on one X stand-in."""
    fake = FakeX()
    fake.add_user("quick", BRAND_TOKEN)
    fake.add_user("other", OTHER_TOKEN)
    async with _serving(x_app(fake)) as url:
        yield X(fake=fake, url=url)


def _direct(url: str, handle: str) -> str:
    handle_line = f'handle: "{handle}"' if handle else ""
    return f"""
        account: quick
        platform: x
        {handle_line}
        api: {url}
        credentials: file:secrets/quick.token
        tier: direct
        owner: alice
    """


def _give_quick(directory: Path, token: str) -> None:
    """The quick file's token, written as a new file where the old one was."""
    path = directory / "secrets" / "quick.token"
    path.with_suffix(".new").write_text(token + "\n", encoding="utf-8")
    path.with_suffix(".new").replace(path)


def _quick_dir(tmp_path: Path, x: X, token: str, name: str = "policies") -> Path:
    """A policy directory with quick's file, naming no handle, and ``token`` as its credential."""
    directory = make_policy_dir(tmp_path, {"quick": _direct(x.url, "")}, name)
    (directory / "secrets").mkdir()
    _give_quick(directory, token)
    return directory


async def _published_as_quick_then_swapped(gw: Gateway, directory: Path, clock: ManualClock, x: X) -> None:
    """Quick's first post goes out on its own token; the token is then swapped for the other
    user's, the file naming no handle."""
    await gw.submit("alice", "quick", "First, as quick")
    await gw.tick()
    assert x.texts("quick") == ["First, as quick"]
    _give_quick(directory, OTHER_TOKEN)
    clock.advance(timedelta(seconds=5))


async def _held_as_quick(gw: Gateway, x: X, text: str, *, published: list[str]) -> None:
    """Quick's post ``text`` is held, sent nowhere (quick has ``published`` only), and quick
    is unhealthy: it published as quick, its token is the other user's."""
    later = await gw.submit("alice", "quick", text)
    await gw.tick()
    assert (x.texts("quick"), x.texts("other")) == (published, [])
    assert (await gw.get("alice", later["id"]))["state"] == "scheduled"
    healthy, problem = await _health(gw, "quick")
    assert healthy is False and "published as quick" in str(problem) and "for other" in str(problem), problem


async def test_a_direct_account_on_another_users_token_waits_until_its_file_names_it(
    db_url: str, tmp_path: Path, clock: ManualClock, x: X,
) -> None:
    """A direct X file naming @quick on the other user's token: its post waits, every minute,
    unsent; the admin writes the handle the token really is for, and it goes out once there."""
    directory = make_policy_dir(tmp_path, {"quick": _direct(x.url, "@quick")})
    (directory / "secrets").mkdir()
    _give_quick(directory, OTHER_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        post = await gw.submit("alice", "quick", "Quick, or other?")
        await gw.tick()
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert (x.texts("quick"), x.texts("other")) == ([], [])
        body = await gw.get("alice", post["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 0), body
        healthy, problem = await _health(gw, "quick")
        assert healthy is False and "@quick" in str(problem) and "other" in str(problem), problem

        write_policy(directory, "quick", _direct(x.url, "@Other"))
        assert await gw.sync_policies() == ["quick"]
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert (x.texts("quick"), x.texts("other")) == ([], ["Quick, or other?"])
        assert await _health(gw, "quick") == (True, None)
        await verified_by_cli(gw)


async def test_a_file_naming_no_handle_keeps_to_the_account_it_published_as(
    db_url: str, tmp_path: Path, clock: ManualClock, x: X,
) -> None:
    """A direct file naming no handle publishes as the account its token is for; its token
    swapped for another user's, the next post waits, naming the account it published as; the
    old token back, it goes out once, there."""
    directory = _quick_dir(tmp_path, x, BRAND_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        await _published_as_quick_then_swapped(gw, directory, clock, x)
        await _held_as_quick(gw, x, "Then, as whom?", published=["First, as quick"])

        _give_quick(directory, BRAND_TOKEN)
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert (x.texts("quick"), x.texts("other")) == (["First, as quick", "Then, as whom?"], [])
        assert await _health(gw, "quick") == (True, None)


@pytest.mark.parametrize("by", ["handle", "did"])
async def test_a_bluesky_app_password_of_another_account_publishes_nothing_there(
    bluesky_pds: BlueskyPds, db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
    by: str,
) -> None:
    """On a real PDS: the co-signed brand's file names bob (by handle or DID) and is given
    carol's app password: the approved post goes out on neither account and bob's file is
    unhealthy; bob's app password back, it goes out once, as bob."""
    bob, carol = bluesky_pds.account("bob.test"), bluesky_pds.account("carol.test")
    monkeypatch.setenv("BRAND_BSKY_APP_PASSWORD", carol.app_password)
    directory = make_policy_dir(tmp_path, {})
    write_bluesky_policy(directory, "brand", handle=bob.handle if by == "handle" else bob.did,
                         pds=bluesky_pds.pds_url, credential_env="BRAND_BSKY_APP_PASSWORD")
    new_texts = await texts_from_now(bluesky_pds, bob.did, carol.did)

    async with started_gateway(db_url, directory, clock) as gw:
        text = f"Signed for bob ({secrets.token_hex(4)})"  # the PDS is shared by the whole run
        signed = await gw.submit("alice", "brand", text)
        status, approved = await gw.act("bob", signed["id"], "approve")
        assert status == 200, approved
        await gw.tick()
        assert (await new_texts(bob.did), await new_texts(carol.did)) == ([], [])
        assert (await gw.get("alice", signed["id"]))["state"] == "scheduled"
        healthy, problem = await _health(gw, "brand")
        assert healthy is False and problem is not None
        assert carol.app_password not in problem

        monkeypatch.setenv("BRAND_BSKY_APP_PASSWORD", bob.app_password)
        for _ in range(3):
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (await new_texts(bob.did), await new_texts(carol.did)) == ([text], [])
        assert await _health(gw, "brand") == (True, None)


async def test_a_token_swapped_during_a_cooling_off_holds_the_post_it_would_have_sent(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: Mastodon, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delayed brand's post is submitted on its own token, which is swapped for another
    account's during the cooling-off: when it is due it waits, sent nowhere; the brand's token
    back, it goes out once, as the brand."""
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)
    directory = make_policy_dir(tmp_path, {"brand": f"""
        account: brand
        platform: mastodon
        handle: "@brand"
        instance: {mastodon.url}
        credentials: env:BRAND_PLATFORM_TOKEN
        tier: delayed
        delay: 10m
        owner: alice
    """})
    async with started_gateway(db_url, directory, clock) as gw:
        cooling = await gw.submit("alice", "brand", "After ten minutes")
        await gw.tick()
        monkeypatch.setenv("BRAND_PLATFORM_TOKEN", OTHER_TOKEN)
        clock.advance(timedelta(minutes=11))
        await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == ([], [])
        body = await gw.get("alice", cooling["id"])
        assert body["state"] == "scheduled" and body["events"][-1]["data"]["error"] == NOT_NAMED_PUBLIC, body
        assert (await _health(gw, "brand"))[0] is False

        monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)
        for _ in range(2):
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == (["After ten minutes"], [])
        assert await _health(gw, "brand") == (True, None)
        await verified_by_cli(gw)


async def test_a_token_swapped_across_a_restart_is_caught_where_the_file_names_no_handle(
    db_url: str, tmp_path: Path, clock: ManualClock, x: X,
) -> None:
    """Quick's file names no handle; a gateway publishes as quick and stops; its token is
    swapped for the other user's; the gateway started again on the same database holds the next
    post (not sent as other), naming quick; the token put back, it goes out once, as quick."""
    directory = _quick_dir(tmp_path, x, BRAND_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        await _published_as_quick_then_swapped(gw, directory, clock, x)
    async with started_gateway(db_url, directory, clock) as gw:
        await _held_as_quick(gw, x, "After the restart, as whom?", published=["First, as quick"])
        async with gw.app[DB].read() as txn:
            kept = [dict(r) for r in await txn.fetchall("SELECT * FROM platform_identities")]
        assert [(r["account"], r["handle"]) for r in kept] == [("quick", "quick")], kept
        assert all(token not in repr(kept) for token in (BRAND_TOKEN, OTHER_TOKEN)), kept

        _give_quick(directory, BRAND_TOKEN)
        for _ in range(2):
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (x.texts("quick"), x.texts("other")) == (["First, as quick", "After the restart, as whom?"], [])
        assert await _health(gw, "quick") == (True, None)


async def test_a_replica_given_another_users_token_holds_what_it_would_send(
    db_url: str, tmp_path: Path, clock: ManualClock, x: X,
) -> None:
    """Two gateways share one database, each with its own secrets; quick's file names no handle.
    One publishes as quick; the other, whose token is the other user's, sends nothing of what it
    claims and is unhealthy, naming quick; the first goes on publishing as quick."""
    first, second = _quick_dir(tmp_path, x, BRAND_TOKEN), _quick_dir(tmp_path, x, OTHER_TOKEN, "policies-b")
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        await a.submit("alice", "quick", "Through the first")
        await a.tick()
        assert x.texts("quick") == ["Through the first"]

        clock.advance(timedelta(seconds=5))
        await _held_as_quick(b, x, "Through the second", published=["Through the first"])
        assert await _health(a, "quick") == (True, None)

        clock.advance(timedelta(minutes=2))
        await a.tick()
        assert (x.texts("quick"), x.texts("other")) == (["Through the first", "Through the second"], [])


async def test_an_admin_accepts_a_move_by_naming_the_handle_and_approvals_are_asked_again(
    db_url: str, tmp_path: Path, clock: ManualClock, mastodon: Mastodon, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A co-signed brand naming no handle publishes as brand; a post approved then waits, as the
    gateway restarts with another account's token; the admin accepts the move by naming @other
    in the file: the post is held again (approvals given for brand are not carried over), goes
    out on other only once bob approves it again, once; and the log verifies."""
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)
    directory = make_policy_dir(tmp_path, {"brand": _cosigned(mastodon.url, "")})
    async with started_gateway(db_url, directory, clock) as gw:
        first = await gw.submit("alice", "brand", "First, as the brand")
        assert (await gw.act("bob", first["id"], "approve"))[0] == 200
        await gw.tick()
        assert mastodon.texts("brand") == ["First, as the brand"]
        second = await gw.submit("alice", "brand", "Approved for the brand")
        status, body = await gw.act("bob", second["id"], "approve")
        assert status == 200 and body["state"] == "scheduled", body

    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", OTHER_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == (["First, as the brand"], [])
        assert (await gw.get("alice", second["id"]))["state"] == "scheduled"
        healthy, problem = await _health(gw, "brand")
        assert healthy is False and "published as brand" in str(problem), problem

        write_policy(directory, "brand", _cosigned(mastodon.url, "@other"))
        assert await gw.sync_policies() == ["brand"]
        held = await gw.get("bob", second["id"])
        assert (held["state"], held["reasons"][-1]["rule"]) == ("held", "account_changed"), held
        for _ in range(2):
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert mastodon.texts("other") == []

        status, body = await gw.act("bob", second["id"], "approve", {"version": held["version"]})
        assert status == 200, body
        for _ in range(2):
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (mastodon.texts("brand"), mastodon.texts("other")) == (
            ["First, as the brand"], ["Approved for the brand"])
        assert await _health(gw, "brand") == (True, None)
        await verified_by_cli(gw)
