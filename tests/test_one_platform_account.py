"""One platform account, one policy file, as the platform tells it: two policy files whose
credentials are different tokens of one platform account (a second app token made on the
Mastodon instance, a second X token, a Bluesky account's password beside its app password)
publish for neither account until the files are put right, and then their posts go out, once
each. Platform stand-ins and a real PDS on real sockets, both databases."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from adapters.sandbox import SandboxAdapter
from gateway.clock import ManualClock
from gateway.services.identities import SHARED_PUBLIC, UNCOMPARED_PUBLIC, WAITING_PUBLIC
from gateway.services.platforms import SecretFiles
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, make_policy_dir, started_gateway, write_policy
from tests.fakes._faults import Faults
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.platforms.bluesky.fixture import BlueskyPds, texts_from_now, write_bluesky_policy

BRAND_TOKEN = "tok-brand-cosigned-51c2e7"
QUICK_TOKEN = "tok-brand-second-app-9e07a4"
"""A second token of the brand's own platform account (another app's, made on the platform)."""
OWN_TOKEN = "tok-quick-own-account-3d88b1"
"""A token of another platform account: the quick file's own, once the admin puts it right."""
VERIFY = {"mastodon": "/api/v1/accounts/verify_credentials", "x": "/2/users/me"}
CREATE = {"mastodon": "/api/v1/statuses", "x": "/2/tweets"}


@dataclass
class Standin:
    """A platform stand-in on a real socket: its address, its faults, and who published what."""

    platform: str
    url: str
    faults: Faults
    published: Callable[[str], list[str]]
    """The texts the platform account named (brand, quick) holds."""
    add_token: Callable[[str, str], None]
    revoke: Callable[[str], None]

    def verifies(self) -> int:
        """How many times Byline asked who a credential is for."""
        return self.faults.count("GET", VERIFY[self.platform])

    def address(self) -> str:
        """The policy key that names this server."""
        return f"instance: {self.url}" if self.platform == "mastodon" else f"api: {self.url}"


@pytest.fixture(params=["mastodon", "x"])
async def standin(request: pytest.FixtureRequest) -> AsyncIterator[Standin]:
    """A Mastodon or X stand-in where the token BRAND_TOKEN and QUICK_TOKEN are both the brand
    account's, and OWN_TOKEN another account's (quick)."""
    if request.param == "mastodon":
        fake_m = FakeMastodon()
        accounts = {"brand": fake_m.add_account("brand", BRAND_TOKEN), "quick": fake_m.add_account("quick", OWN_TOKEN)}
        server = TestServer(mastodon_app(fake_m))

        def published(name: str) -> list[str]:
            return [s.text for s in fake_m.statuses(accounts[name])]

        def add_token(name: str, token: str) -> None:
            accounts[name].tokens.add(token)

        faults, revoke = fake_m.faults, fake_m.revoke_token
    else:
        fake_x = FakeX()
        users = {"brand": fake_x.add_user("brand", BRAND_TOKEN), "quick": fake_x.add_user("quick", OWN_TOKEN)}
        server = TestServer(x_app(fake_x))

        def published(name: str) -> list[str]:
            return [t.text for t in fake_x.tweets(users[name])]

        def add_token(name: str, token: str) -> None:
            users[name].tokens.add(token)

        faults, revoke = fake_x.faults, fake_x.revoke_token
    add_token("brand", QUICK_TOKEN)
    await server.start_server()
    try:
        yield Standin(platform=request.param, url=str(server.make_url("")).rstrip("/"), faults=faults,
                      published=published, add_token=add_token, revoke=revoke)
    finally:
        await server.close()


def _cosigned(standin: Standin) -> str:
    return f"""
        account: brand
        platform: {standin.platform}
        {standin.address()}
        credentials: env:BRAND_PLATFORM_TOKEN
        tier: co-signed
        owner: alice
        writers: [alice]
        approvals:
          required: 1
          from: [bob]
    """


def _direct(standin: Standin) -> str:
    return f"""
        account: quick
        platform: {standin.platform}
        {standin.address()}
        credentials: file:secrets/quick.token
        tier: direct
        owner: alice
        retry_attempts: 2
    """


def _directory(tmp_path: Path, standin: Standin, monkeypatch: pytest.MonkeyPatch, *, both: bool = True) -> Path:
    """The two files: the brand's, co-signed, on an env: token; quick, direct, on a file: token
    that is a second token of the brand's own account."""
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)
    files = {"quick": _direct(standin), **({"brand": _cosigned(standin)} if both else {})}
    directory = make_policy_dir(tmp_path, files)
    (directory / "secrets").mkdir()
    _give_quick(directory, QUICK_TOKEN)
    return directory


def _give_quick(directory: Path, token: str) -> None:
    """The admin writes the quick file's token (a new file where the old one was)."""
    path = directory / "secrets" / "quick.token"
    path.with_suffix(".new").write_text(token + "\n", encoding="utf-8")
    path.with_suffix(".new").replace(path)


async def _health(gw: Gateway) -> dict[str, tuple[bool, str | None]]:
    status, body = await gw.call("alice", "GET", "/v1/accounts")
    assert status == 200, body
    return {a["account"]: (a["healthy"], a["problem"]) for a in body["accounts"]}


async def _events(gw: Gateway, post_id: str) -> list[str]:
    return [e["type"] for e in (await gw.get("alice", post_id))["events"]]


async def test_a_second_token_of_a_cosigned_account_publishes_nothing_until_put_right(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A direct file whose token is a second token of the co-signed brand's platform account
    does not post alone as the brand: its post waits (neither lost nor failed), the approved
    co-signed post waits too, both accounts say why without a token; once the admin gives the
    direct file its own account's token, each post goes out exactly once, as its own account."""
    directory = _directory(tmp_path, standin, monkeypatch)
    async with started_gateway(db_url, directory, clock) as gw:
        quick = await gw.submit("alice", "quick", "Alone, as the brand?")
        await gw.tick()
        assert (standin.published("brand"), standin.published("quick")) == ([], [])
        body = await gw.get("alice", quick["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 0), body  # held: no attempt spent
        assert body["events"][-1]["type"] == "post.deferred"
        assert body["events"][-1]["data"]["error"] == SHARED_PUBLIC
        health = await _health(gw)
        for account, other in (("quick", "brand"), ("brand", "quick")):
            healthy, problem = health[account]
            assert healthy is False and problem is not None
            assert f"{account} and {other} publish as one" in problem, problem
            assert all(token not in problem for token in (BRAND_TOKEN, QUICK_TOKEN, OWN_TOKEN))
        status, ready = await gw.call(None, "GET", "/readyz")
        assert status == 200 and ready["accounts_unhealthy"] == ["brand", "quick"]

        signed = await gw.submit("alice", "brand", "Signed by two")
        status, approved = await gw.act("bob", signed["id"], "approve")
        assert status == 200, approved
        asked = standin.verifies()
        for _ in range(3):  # minutes of ticks while the files disagree: nothing goes out, nothing fails
            clock.advance(timedelta(minutes=2))
            await gw.tick()
        assert (standin.published("brand"), standin.published("quick")) == ([], [])
        assert standin.verifies() == asked  # looked at again each minute, from what is known: not asked again
        assert {(await gw.get("alice", p["id"]))["state"] for p in (quick, signed)} == {"scheduled"}

        _give_quick(directory, OWN_TOKEN)  # the admin puts the direct file right
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        await gw.tick()
        assert standin.published("quick") == ["Alone, as the brand?"]
        assert standin.published("brand") == ["Signed by two"]
        assert await _events(gw, quick["id"]) == [
            "post.submitted", "post.publishing", "post.deferred", "post.publishing", "post.published"]
        assert {name: healthy for name, (healthy, _) in (await _health(gw)).items()} == {"brand": True, "quick": True}
        clock.advance(timedelta(hours=1))
        await gw.tick()
        assert (standin.published("brand"), standin.published("quick")) == (["Signed by two"], ["Alone, as the brand?"])


async def test_a_second_file_for_the_account_stops_the_one_that_posted_alone(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account alone on its platform posts once Byline has asked who its own credential is
    for, and asks of no other; a co-signed file added later on another token of the same
    account stops it at its next post, and removing the direct file lets the co-signed one
    publish."""
    directory = _directory(tmp_path, standin, monkeypatch, both=False)
    async with started_gateway(db_url, directory, clock) as gw:
        first = await gw.submit("alice", "quick", "Before the brand's file")
        await gw.tick()
        assert (await gw.get("alice", first["id"]))["state"] == "published"
        assert standin.verifies() == 1  # its own credential only: no other file could be the same account

        write_policy(directory, "brand", _cosigned(standin))
        assert await gw.sync_policies() == ["brand"]
        second = await gw.submit("alice", "quick", "After the brand's file")
        await gw.tick()
        assert standin.published("brand") == ["Before the brand's file"]
        assert (await gw.get("alice", second["id"]))["state"] == "scheduled"

        (directory / "quick.yaml").unlink()
        assert await gw.sync_policies() == ["quick"]
        signed = await gw.submit("alice", "brand", "Only the brand's file now")
        await gw.act("bob", signed["id"], "approve")
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert standin.published("brand") == ["Before the brand's file", "Only the brand's file now"]
        assert (await gw.get("alice", second["id"]))["state"] == "held"  # its policy gone, it waits for one


async def test_a_held_post_keeps_its_whole_retry_budget_for_the_platform(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Held while two files speak for one platform account is no attempt that failed: once put
    right, a post with two attempts in its budget still gets both from the platform (its first
    refused, the second out), where the hold had spent one and the first refusal failed it; the
    log verifies."""
    directory = _directory(tmp_path, standin, monkeypatch)
    async with started_gateway(db_url, directory, clock) as gw:
        quick = await gw.submit("alice", "quick", "Held, not failed")
        await gw.tick()
        body = await gw.get("alice", quick["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 0), body
        assert body["events"][-1]["data"]["error"] == SHARED_PUBLIC

        _give_quick(directory, OWN_TOKEN)
        standin.faults.fail_next(3, 503, method="POST", path=CREATE[standin.platform])  # every inline try
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        body = await gw.get("alice", quick["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 1), body
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert standin.published("quick") == ["Held, not failed"]
        assert await _events(gw, quick["id"]) == [
            "post.submitted", "post.publishing", "post.deferred", "post.publishing", "post.deferred",
            "post.publishing", "post.published"]
        await verified_by_cli(gw)


async def test_each_credential_is_asked_about_once_not_at_every_post(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two files on two accounts of one platform: the first post asks who each credential is
    for, once each; the posts after it ask nothing, within the second a verdict is kept or after."""
    directory = _directory(tmp_path, standin, monkeypatch)
    _give_quick(directory, OWN_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        for n in range(6):
            await gw.submit("alice", "quick", f"Post {n}")
            await gw.tick()
            clock.advance(timedelta(seconds=n % 2 * 5))  # half of them after the verdict was kept
        assert standin.published("quick") == [f"Post {n}" for n in range(6)]
        assert standin.verifies() == 2


async def _waiting_for_the_brands_new_token(
    gw: Gateway, standin: Standin, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Any]:
    """Quick posts with both credentials known; then the brand's token is rotated and the
    platform answers 503 when asked whose the new one is, so quick's next post (returned) waits."""
    await gw.submit("alice", "quick", "Both known")
    await gw.tick()
    standin.add_token("brand", "tok-brand-rotated-77f0")
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", "tok-brand-rotated-77f0")  # the brand's token rotated
    standin.faults.fail_next(1, 503, method="GET", path=VERIFY[standin.platform])
    clock.advance(timedelta(seconds=2))
    held = await gw.submit("alice", "quick", "Wait for the answer")
    await gw.tick()
    return held


async def test_a_platform_that_does_not_say_holds_the_posts_then_lets_them_go(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Another file's credential on the same server that the platform does not say the owner of
    (it answers 503) holds the account's posts, naming that file's account, rather than let one
    out under the wrong policy; the platform asked again a minute later, the post goes out once."""
    directory = _directory(tmp_path, standin, monkeypatch)
    _give_quick(directory, OWN_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        held = await _waiting_for_the_brands_new_token(gw, standin, clock, monkeypatch)
        assert standin.published("quick") == ["Both known"]
        body = await gw.get("alice", held["id"])
        assert body["state"] == "scheduled" and body["events"][-1]["data"]["error"] == WAITING_PUBLIC
        healthy, problem = (await _health(gw))["quick"]
        assert healthy is False and problem is not None and "which account brand's credential is for" in problem
        clock.advance(timedelta(seconds=61))
        await gw.tick()
        assert standin.published("quick") == ["Both known", "Wait for the answer"]
        assert (await _health(gw))["quick"] == (True, None)


async def test_a_file_whose_credential_the_platform_refuses_holds_nobody_back(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A credential the platform refuses publishes as nobody, so it shares no account: the other
    file's posts go out (the refused one's own posts wait for its admin, as before)."""
    directory = _directory(tmp_path, standin, monkeypatch)
    _give_quick(directory, OWN_TOKEN)
    standin.revoke(BRAND_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        await gw.submit("alice", "quick", "Mine alone")
        await gw.tick()
        assert standin.published("quick") == ["Mine alone"]


async def test_sandbox_accounts_are_never_asked_about(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sandbox accounts are separate by name (each has its own timeline): several of them are
    never asked who they are, and publish."""
    asked: list[str] = []

    async def verify(self: SandboxAdapter) -> Any:
        asked.append("asked")
        raise AssertionError("a sandbox account was asked who it is")

    monkeypatch.setattr(SandboxAdapter, "verify_credentials", verify)
    async with started_gateway(db_url, policy_dir, clock) as gw:
        await gw.submit("alice", "direct", "On the direct timeline")
        await gw.submit("bob", "delayed", "On the delayed timeline")
        clock.advance(timedelta(minutes=11))
        await gw.tick()
        assert [p["text"] for p in await gw.timeline("direct")] == ["On the direct timeline"]
        assert [p["text"] for p in await gw.timeline("delayed")] == ["On the delayed timeline"]
    assert asked == []


async def test_a_bluesky_account_behind_two_credentials_publishes_for_neither(
    bluesky_pds: BlueskyPds, db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a real PDS: the co-signed brand signs in to bob.test with its app password, a direct
    file signs in by DID with the account's password (no handle in common for the loader to
    see); the PDS says both are one DID, so the direct post waits; pointed at carol.test's own
    app password, it goes out once, as carol."""
    bob, carol = bluesky_pds.account("bob.test"), bluesky_pds.account("carol.test")
    monkeypatch.setenv("BRAND_BSKY_APP_PASSWORD", bob.app_password)
    monkeypatch.setenv("QUICK_BSKY_PASSWORD", bob.password)
    directory = make_policy_dir(tmp_path, {})
    write_bluesky_policy(directory, "brand", handle=bob.handle, pds=bluesky_pds.pds_url,
                         credential_env="BRAND_BSKY_APP_PASSWORD")
    write_bluesky_policy(directory, "quick", handle=bob.did, pds=bluesky_pds.pds_url,
                         credential_env="QUICK_BSKY_PASSWORD", tier="direct")
    new_texts = await texts_from_now(bluesky_pds, bob.did, carol.did)

    async with started_gateway(db_url, directory, clock) as gw:
        text = f"Alone, as bob? ({secrets.token_hex(4)})"  # the PDS is shared by the whole run
        post = await gw.submit("alice", "quick", text)
        await gw.tick()
        assert await new_texts(bob.did) == []
        assert (await gw.get("alice", post["id"]))["state"] == "scheduled"
        (quick_healthy, problem), (brand_healthy, _) = (await _health(gw))["quick"], (await _health(gw))["brand"]
        assert (quick_healthy, brand_healthy) == (False, False)
        assert "quick and brand publish as one Bluesky account" in str(problem)

        write_bluesky_policy(directory, "quick", handle=carol.handle, pds=bluesky_pds.pds_url,
                             credential_env="QUICK_BSKY_PASSWORD", tier="direct")
        monkeypatch.setenv("QUICK_BSKY_PASSWORD", carol.app_password)
        assert await gw.sync_policies() == ["quick"]
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert (await new_texts(bob.did), await new_texts(carol.did)) == ([], [text])
        assert (await gw.get("alice", post["id"]))["state"] == "published"


def _two_addresses(tmp_path: Path, server: TestServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The co-signed brand at ``127.0.0.1``, the direct quick at ``localhost`` (with a second
    token of the brand's account): one Mastodon stand-in by two addresses no normaliser folds."""
    monkeypatch.setenv("BRAND_PLATFORM_TOKEN", BRAND_TOKEN)
    directory = make_policy_dir(tmp_path, {
        "brand": f"""
            account: brand
            platform: mastodon
            instance: http://127.0.0.1:{server.port}
            credentials: env:BRAND_PLATFORM_TOKEN
            tier: co-signed
            owner: alice
            writers: [alice]
            approvals:
              required: 1
              from: [bob]
        """,
        "quick": f"""
            account: quick
            platform: mastodon
            instance: http://LocalHost:{server.port}/
            credentials: file:secrets/quick.token
            tier: direct
            owner: alice
        """,
    })
    (directory / "secrets").mkdir()
    _give_quick(directory, QUICK_TOKEN)
    return directory


async def test_two_addresses_of_one_mastodon_instance_are_one_account(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The co-signed brand names its instance by one address and a direct file names the same
    instance by another (``127.0.0.1`` and ``localhost``, which no normaliser folds), with a
    second token of the brand's account: the instance says both are its ``@brand`` (its profile
    address is its own, whatever address was asked), so the direct post waits instead of going
    out alone as the brand; given its own account's token, it goes out once, as quick. Each
    credential is asked about once."""
    fake = FakeMastodon()
    brand, quick = fake.add_account("brand", BRAND_TOKEN), fake.add_account("quick", OWN_TOKEN)
    brand.tokens.add(QUICK_TOKEN)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    try:
        directory = _two_addresses(tmp_path, server, monkeypatch)
        async with started_gateway(db_url, directory, clock) as gw:
            post = await gw.submit("alice", "quick", "Alone, as the brand, by another address?")
            await gw.tick()
            assert ([s.text for s in fake.statuses(brand)], [s.text for s in fake.statuses(quick)]) == ([], [])
            body = await gw.get("alice", post["id"])
            assert (body["state"], body["events"][-1]["data"]["error"]) == ("scheduled", SHARED_PUBLIC), body
            healthy, problem = (await _health(gw))["quick"]
            assert healthy is False and "quick and brand publish as one Mastodon account" in str(problem), problem
            assert fake.faults.count("GET", VERIFY["mastodon"]) == 2

            _give_quick(directory, OWN_TOKEN)
            clock.advance(timedelta(minutes=2))
            await gw.tick()
            assert [s.text for s in fake.statuses(quick)] == ["Alone, as the brand, by another address?"]
            assert [s.text for s in fake.statuses(brand)] == []
            assert fake.faults.count("GET", VERIFY["mastodon"]) == 3
    finally:
        await server.close()


async def test_a_file_found_to_share_the_account_while_a_post_is_on_its_way_stops_it(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A direct file alone on its platform is past the check, its post's first request answered
    429 for a second: meanwhile the co-signed brand's file, on another token of the same
    platform account, comes into force. The retry does not go out alone as the brand: the
    account is looked at again right before it, and the post waits, its budget untouched."""
    directory = _directory(tmp_path, standin, monkeypatch, both=False)
    async with started_gateway(db_url, directory, clock) as gw:
        post = await gw.submit("alice", "quick", "On its way as the brand")
        standin.faults.rate_limit_next(1, 1.0, method="POST", path=CREATE[standin.platform])
        tick = asyncio.ensure_future(gw.tick())
        # The stand-in counts requests; it has no event to wait on.
        while standin.faults.count("POST", CREATE[standin.platform]) == 0 and not tick.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        write_policy(directory, "brand", _cosigned(standin))
        assert await gw.sync_policies() == ["brand"]
        await tick
        assert standin.published("brand") == []
        body = await gw.get("alice", post["id"])
        assert (body["state"], body["attempts"]) == ("scheduled", 0), body
        assert body["events"][-1]["data"]["error"] == SHARED_PUBLIC
        healthy, problem = (await _health(gw))["brand"]
        assert healthy is False and "brand and quick publish as one" in str(problem), problem


async def test_two_addresses_of_a_server_that_gives_no_profile_address_hold_the_posts(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server speaking Mastodon's API that answers ``verify_credentials`` without the account's
    ``url`` (Mastodon always gives it) cannot tell two addresses' accounts apart: the direct
    post at the other address waits, saying why, rather than go out, maybe alone as the brand."""
    fake = FakeMastodon()
    brand = fake.add_account("brand", BRAND_TOKEN)
    brand.tokens.add(QUICK_TOKEN)
    rendered = fake.render_account

    def without_url(account: Any) -> dict[str, Any]:
        return {k: v for k, v in rendered(account).items() if k != "url"}

    monkeypatch.setattr(fake, "render_account", without_url)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    try:
        directory = _two_addresses(tmp_path, server, monkeypatch)
        async with started_gateway(db_url, directory, clock) as gw:
            post = await gw.submit("alice", "quick", "Alone, by an address nobody can compare?")
            await gw.tick()
            assert fake.statuses(brand) == []
            body = await gw.get("alice", post["id"])
            assert (body["state"], body["events"][-1]["data"]["error"]) == ("scheduled", UNCOMPARED_PUBLIC), body
            healthy, problem = (await _health(gw))["quick"]
            assert healthy is False and "did not give the account's profile address" in str(problem), problem
    finally:
        await server.close()


async def test_a_file_come_into_force_while_the_check_waits_on_the_platform_is_not_missed(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deletion of quick's post checks the accounts beside it, and waits a second for the
    platform to say whose another file's rotated token is; meanwhile a co-signed file on a
    second token of quick's own platform account comes into force. The deletion is not sent on
    the strength of the policies as they were when the check began: it is refused, the post
    still on the platform."""
    monkeypatch.setenv("OTHER_PLATFORM_TOKEN", BRAND_TOKEN)
    directory = make_policy_dir(tmp_path, {"quick": _direct(standin), "other": f"""
        account: other
        platform: {standin.platform}
        {standin.address()}
        credentials: env:OTHER_PLATFORM_TOKEN
        tier: direct
        owner: alice
    """})
    (directory / "secrets").mkdir()
    _give_quick(directory, OWN_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        post = await gw.submit("alice", "quick", "Mine to take down?")
        await gw.tick()
        assert standin.published("quick") == ["Mine to take down?"]
        standin.add_token("brand", "tok-other-rotated-5d1a")
        monkeypatch.setenv("OTHER_PLATFORM_TOKEN", "tok-other-rotated-5d1a")
        clock.advance(timedelta(seconds=2))
        asked = standin.verifies()
        standin.faults.delay_next(1.0, method="GET", path=VERIFY[standin.platform])
        deleting = asyncio.ensure_future(gw.call("alice", "DELETE", f"/v1/posts/{post['id']}"))
        # The stand-in counts requests; it has no event to wait on.
        while standin.verifies() == asked and not deleting.done():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        standin.add_token("quick", "tok-quick-second-app-8b20")
        monkeypatch.setenv("BRAND_PLATFORM_TOKEN", "tok-quick-second-app-8b20")
        write_policy(directory, "brand", _cosigned(standin))
        assert await gw.sync_policies() == ["brand"]
        status, body = await deleting
        assert status == 503, body
        assert "quick and brand publish as one" in body["message"], body
        assert standin.published("quick") == ["Mine to take down?"]


async def test_a_token_rewritten_in_another_file_holds_an_account_that_was_found_clear(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The brand was found to share its platform account with no other file; then the admin
    writes a second token of the brand's account into the quick file. Within the second after,
    nothing is read again; after it, the brand's next approved post waits with the quick file's."""
    directory = _directory(tmp_path, standin, monkeypatch)
    _give_quick(directory, OWN_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        first = await gw.submit("alice", "brand", "Signed by two, the files apart")
        await gw.act("bob", first["id"], "approve")
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert standin.published("brand") == ["Signed by two, the files apart"]

        _give_quick(directory, QUICK_TOKEN)
        clock.advance(timedelta(seconds=2))
        second = await gw.submit("alice", "brand", "Signed by two, the files one account")
        await gw.act("bob", second["id"], "approve")
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert standin.published("brand") == ["Signed by two, the files apart"]
        body = await gw.get("alice", second["id"])
        assert (body["state"], body["events"][-1]["data"]["error"]) == ("scheduled", SHARED_PUBLIC), body
        assert {name: healthy for name, (healthy, _) in (await _health(gw)).items()} == {"brand": False, "quick": False}


async def test_many_accounts_on_one_instance_read_each_credential_once_a_second_not_once_a_pair(
    db_url: str, tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Thirty accounts on one Mastodon instance, each posting every two seconds: once each is
    known, a round of their posts reads each credential file about twice (its publication, and
    the group's look at the others once a second), where comparing every account with every
    other at every publication read them 30 times each (870 reads a round)."""
    fake = FakeMastodon()
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    names = [f"desk{n:02d}" for n in range(30)]
    try:
        url = str(server.make_url("")).rstrip("/")
        directory = make_policy_dir(tmp_path, {name: f"""
            account: {name}
            platform: mastodon
            instance: {url}
            credentials: file:secrets/{name}.token
            tier: direct
            owner: alice
        """ for name in names})
        (directory / "secrets").mkdir()
        accounts = {}
        for name in names:
            token = f"tok-{name}-{secrets.token_hex(4)}"
            accounts[name] = fake.add_account(name, token)
            (directory / "secrets" / f"{name}.token").write_text(token + "\n", encoding="utf-8")
        clock.advance(timedelta(seconds=5))  # the files are settled
        reads: list[str] = []
        real_read = SecretFiles.read

        def counted(self: SecretFiles, reference: str, rules: Any) -> str:
            reads.append(reference)
            return real_read(self, reference, rules)

        monkeypatch.setattr(SecretFiles, "read", counted)
        async with started_gateway(db_url, directory, clock) as gw:
            per_round = []
            for n in range(3):
                reads.clear()
                for name in names:
                    await gw.submit("alice", name, f"Round {n} from {name}")
                await gw.tick()
                per_round.append(len(reads))
                clock.advance(timedelta(seconds=2))
            for name in names:
                assert [s.text for s in fake.statuses(accounts[name])] == [f"Round {n} from {name}" for n in range(3)]
            assert fake.faults.count("GET", VERIFY["mastodon"]) == len(names)  # each asked about once
            assert per_round[1] <= 3 * len(names) and per_round[2] <= 3 * len(names), per_round
    finally:
        await server.close()


async def test_removing_the_second_file_shows_the_account_healthy_at_once(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two files found to be one platform account are both shown unhealthy; the admin removes
    the direct one, and at the publisher's next tick the brand is healthy again, with no post of
    its own due: before, it showed the clash until its next post came due and was looked at."""
    directory = _directory(tmp_path, standin, monkeypatch)
    async with started_gateway(db_url, directory, clock) as gw:
        await gw.submit("alice", "quick", "Alone, as the brand?")
        await gw.tick()
        assert {name: healthy for name, (healthy, _) in (await _health(gw)).items()} == {"brand": False, "quick": False}

        (directory / "quick.yaml").unlink()
        assert await gw.sync_policies() == ["quick"]
        await gw.tick()
        assert {name: healthy for name, (healthy, _) in (await _health(gw)).items()} == {"brand": True}
        status, ready = await gw.call(None, "GET", "/readyz")
        assert status == 200 and ready["accounts_unhealthy"] == [], ready


async def test_removing_the_file_an_account_waits_on_shows_it_healthy_at_once(
    db_url: str, tmp_path: Path, clock: ManualClock, standin: Standin, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An account held until the platform says whose another file's credential is, with no post
    of its own due (its writer took the held one back): once the admin removes that other file,
    it is healthy at the publisher's next tick, where it showed the wait until a post came due."""
    directory = _directory(tmp_path, standin, monkeypatch)
    _give_quick(directory, OWN_TOKEN)
    async with started_gateway(db_url, directory, clock) as gw:
        held = await _waiting_for_the_brands_new_token(gw, standin, clock, monkeypatch)
        assert (await _health(gw))["quick"][0] is False
        status, body = await gw.act("alice", held["id"], "cancel")
        assert status == 200, body

        (directory / "brand.yaml").unlink()
        assert await gw.sync_policies() == ["brand"]
        await gw.tick()
        assert await _health(gw) == {"quick": (True, None)}
        assert standin.published("quick") == ["Both known"]
