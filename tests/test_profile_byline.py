"""The profile byline (issue 18): one line of each account's profile kept true to the policy in
force, on the Mastodon stand-in and a real Bluesky PDS, on both databases; once across
replicas; a refusal shown in the account's health while its posts still go out; every line
set recorded in the log and replayed by ``byline audit verify``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateway.app import PROFILES
from gateway.appkeys import DB
from gateway.clock import ManualClock
from gateway.policy import byline as byline_text
from gateway.policy.announce import voice_words
from gateway.policy.loader import PolicyFileError, parse_policy
from gateway.storage import profiles as profile_sql
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import verified_by_cli
from tests.audit.synthetic import SyntheticLog, messages, summary
from tests.conftest import Gateway, finding_the_database_gone, started_gateway, write_policy
from tests.fakes.mastodon import Account, FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.pages.conftest import page_as
from tests.platforms.bluesky.fixture import BlueskyPds

TOKEN = "mtok-byline-5c1e9a"


def _mastodon_policy(instance: str, *, cosigned: bool = False, account: str = "masto") -> str:
    approvals = """
        approvals:
          required: 1
          from: [bob]""" if cosigned else ""
    return f"""
        account: {account}
        platform: mastodon
        instance: {instance}
        credentials: env:MASTO_TOKEN
        tier: {"co-signed" if cosigned else "direct"}
        owner: alice
        writers: [alice, carol]
        profile:
          byline: true{approvals}
    """


@dataclass
class World:
    """The Mastodon stand-in and where it listens."""

    fake: FakeMastodon
    account: Account
    url: str


@pytest.fixture
async def mastodon(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    """The Mastodon stand-in on a real socket, with an account whose profile has fields of its own."""
    fake = FakeMastodon()
    account = fake.add_account("brand", TOKEN)
    account.note = "We make bread."
    account.fields = [{"name": "Shop", "value": "https://bread.example"}, {"name": "Pronouns", "value": "we/us"}]
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    monkeypatch.setenv("MASTO_TOKEN", TOKEN)
    try:
        yield World(fake=fake, account=account, url=str(server.make_url("")).rstrip("/"))
    finally:
        await server.close()


async def _profile_entries(gw: Gateway) -> list[dict[str, Any]]:
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE type = 'profile.updated' ORDER BY idx")
    return [json.loads(bytes(r["entry"]))["data"] for r in rows]



def _patches(world: World) -> int:
    return world.fake.faults.count("PATCH", "/api/v1/accounts/update_credentials")


# -- the policy option -----------------------------------------------------------------------------


def test_the_option_is_checked_when_the_policy_loads() -> None:
    """A byline that cannot fit, reaches past its places, or asks X for what Byline cannot do is
    refused with its key; the default loads."""
    base = "account: a\nplatform: bluesky\npds: https://pds.example\ncredentials: env:T\ntier: direct\nowner: alice\n"
    policy = parse_policy(base + "profile:\n  byline: true\n", name="a.yaml", expected_account="a")
    assert policy.profile.byline and "{voice}" in policy.profile.template
    cases = {
        "profile:\n  byline: true\n  template: '{voice.__class__}'\n": "may only use",
        "profile:\n  byline: true\n  template: 'By {writers}'\n": "may only use",
        "profile:\n  byline: yes-please\n": "boolean",
        "profile:\n  byline: true\n  template: '" + "x" * 300 + " {voice}'\n": "at most 256",
        "profile:\n  bylines: true\n": "unknown key",
    }
    for extra, words in cases.items():
        with pytest.raises(PolicyFileError) as refused:
            parse_policy(base + extra, name="a.yaml", expected_account="a")
        assert words in str(refused.value.issues[0]), (extra, refused.value.issues)
        assert refused.value.issues[0].key.startswith("profile")
    x = "account: a\nplatform: x\ncredentials: env:T\ntier: direct\nowner: alice\nprofile:\n  byline: true\n"
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(x, name="a.yaml", expected_account="a")
    assert "OAuth 1.0a" in str(refused.value.issues[0]) and refused.value.issues[0].key == "profile.oauth1"
    assert parse_policy(x + "  oauth1: env:X_KEYS\n", name="a.yaml", expected_account="a").profile.oauth1
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(base + "profile:\n  byline: true\n  oauth1: env:K\n", name="a.yaml", expected_account="a")
    assert "only X needs it" in str(refused.value.issues[0])
    masto = ("account: a\nplatform: mastodon\ninstance: https://m.example\ncredentials: env:T\ntier: direct\n"
             "owner: alice\nprofile:\n  byline: true\n  template: 'Written by: {voice} " + "y" * 250 + "'\n")
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(masto, name="a.yaml", expected_account="a")
    assert "Mastodon takes at most 255" in str(refused.value.issues[0])


# -- the Mastodon stand-in validates fields as Mastodon documents them ------------------------------


async def test_mastodon_stand_in_validates_profile_fields(mastodon: World) -> None:
    """update_credentials: at most 4 fields, 255 characters a name or value, 422 in Mastodon's
    words otherwise and nothing changed; what is not sent stays."""
    url = f"{mastodon.url}/api/v1/accounts/update_credentials"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    five = {str(i): {"name": f"n{i}", "value": "v"} for i in range(5)}
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.patch(url, json={"fields_attributes": five}) as resp:
            assert (resp.status, await resp.json()) == (
                422, {"error": "Validation failed: Fields is too long (maximum is 4 characters)"})
        long = {"0": {"name": "Shop", "value": "x" * 256}}
        async with http.patch(url, json={"fields_attributes": long}) as resp:
            assert resp.status == 422
            assert (await resp.json())["error"] == (
                "Validation failed: Fields value is too long (maximum is 255 characters)")
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns"]
        form = {"fields_attributes[0][name]": "Shop", "fields_attributes[0][value]": "x" * 255}
        async with http.patch(url, data=form) as resp:
            assert resp.status == 200
        async with http.get(f"{mastodon.url}/api/v1/accounts/verify_credentials") as resp:
            body = await resp.json()
    assert body["source"]["fields"] == [{"name": "Shop", "value": "x" * 255, "verified_at": None}]
    assert body["source"]["note"] == "We make bread."


# -- the gateway keeps the line ---------------------------------------------------------------------


async def test_mastodon_byline_follows_the_voice_and_keeps_the_rest(
    mastodon: World, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """The field is added beside the account's own, then changed in place when the voice
    changes; each line set is in the log once, and the log verifies."""
    write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url))
    async with started_gateway(db_url, policy_dir, clock) as gw:
        assert await gw.app[PROFILES].run_once() == 1
        fields = mastodon.account.fields
        assert [f["name"] for f in fields] == ["Shop", "Pronouns", "Written by"]
        assert fields[2]["value"].startswith("its owner and a team · http")
        assert fields[2]["value"].endswith("/@masto")
        assert mastodon.account.note == "We make bread."
        assert await gw.app[PROFILES].run_once() == 0  # nothing more to set

        write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url, cosigned=True))
        assert await gw.sync_policies() == ["masto"]
        assert await gw.app[PROFILES].run_once() == 1
        fields = mastodon.account.fields
        assert [f["name"] for f in fields] == ["Shop", "Pronouns", "Written by"]
        assert fields[2]["value"].startswith("its owner and a team, approved by a co-signer · ")
        entries = await _profile_entries(gw)
        assert [(e["version"], e["platform"]) for e in entries] == [(1, "mastodon"), (2, "mastodon")]
        assert entries[1]["text"] == "Written by: " + fields[2]["value"]
        assert _patches(mastodon) == 2

        write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url, cosigned=True).replace(
            "byline: true", "byline: false"))
        assert await gw.sync_policies() == ["masto"]
        assert await gw.app[PROFILES].run_once() == 1
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns"]
        assert (await _profile_entries(gw))[-1] == {"version": 3, "text": None, "platform": "mastodon"}
        await verified_by_cli(gw)


async def test_a_gateway_dying_mid_update_is_taken_over_once(
    mastodon: World, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """A gateway that claimed the update and died before recording it: once its lease runs out
    another one sets the line, and the log has it once."""
    write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url))
    async with started_gateway(db_url, policy_dir, clock) as gw:
        now = int(clock.now().timestamp() * 1_000_000)
        async with gw.app[DB].write() as txn:
            (update,) = await profile_sql.due(txn, now=now)
            assert await profile_sql.claim(txn, update, now=now, lease_until=now + 60_000_000)
        assert await gw.app[PROFILES].run_once() == 0  # claimed by the gateway that died
        clock.advance(timedelta(minutes=5))
        assert await gw.app[PROFILES].run_once() == 1
        assert await gw.app[PROFILES].run_once() == 0
        assert [e["version"] for e in await _profile_entries(gw)] == [1]
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns", "Written by"]


async def test_one_change_on_two_gateways_is_one_update(
    mastodon: World, db_url: str, tmp_path: Path, clock: ManualClock,
) -> None:
    """Two gateways on one database: a policy change both see makes one profile update, one
    entry in the log, however often each one runs."""
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    for directory in (first, second):
        write_policy(directory, "masto", _mastodon_policy(mastodon.url))
    async with started_gateway(db_url, first, clock) as a, started_gateway(db_url, second, clock) as b:
        assert await a.app[PROFILES].run_once() + await b.app[PROFILES].run_once() == 1
        for directory in (first, second):
            write_policy(directory, "masto", _mastodon_policy(mastodon.url, cosigned=True))
        recorded = await a.sync_policies() + await b.sync_policies()
        assert recorded == ["masto"]
        for _ in range(2):
            await b.app[PROFILES].run_once()
            await a.app[PROFILES].run_once()
        assert [e["version"] for e in await _profile_entries(a)] == [1, 2]
        assert _patches(mastodon) == 2
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns", "Written by"]


async def test_a_refused_update_marks_health_and_posts_still_go_out(
    mastodon: World, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """The platform refuses the profile (403, then a rate limit): /readyz and the account page
    say so, a post goes out all the same, and the line is set once the platform takes it."""
    write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url))
    mastodon.fake.faults.fail_next(1, 403, method="PATCH", path="/api/v1/accounts/update_credentials")
    async with started_gateway(db_url, policy_dir, clock) as gw:
        assert await gw.app[PROFILES].run_once() == 0
        resp = await gw.client.get("/readyz")
        ready = await resp.json()
        assert resp.status == 200 and ready["profile_bylines_failing"] == ["masto"]
        assert ready["accounts_unhealthy"] == []
        status, page = await page_as(gw, "alice", "/accounts/masto")
        assert status == 200 and "byline is not up to date" in page and "403" in page
        assert "Posting works" in page

        post = await gw.submit("alice", "masto", "Fresh loaves at noon")
        await gw.tick()
        assert (await gw.get("alice", post["id"]))["state"] == "published"
        assert [s.text for s in mastodon.fake.statuses(mastodon.account)] == ["Fresh loaves at noon"]

        mastodon.fake.faults.rate_limit_next(1, 120, method="PATCH", path="/api/v1/accounts/update_credentials")
        clock.advance(timedelta(minutes=6))
        assert await gw.app[PROFILES].run_once() == 0  # the rate limit: later again
        assert (await (await gw.client.get("/readyz")).json())["profile_bylines_failing"] == ["masto"]
        clock.advance(timedelta(minutes=3))
        assert await gw.app[PROFILES].run_once() == 1
        assert (await (await gw.client.get("/readyz")).json())["profile_bylines_failing"] == []
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns", "Written by"]
        assert len(await _profile_entries(gw)) == 1


async def test_no_byline_while_two_files_speak_for_one_account(
    mastodon: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two files whose tokens are one Mastodon account (a second app's token in the second): the
    byline of neither is written, since either would say the wrong voice, and /readyz says so;
    with the second file removed, the first one's line is set."""
    mastodon.account.tokens.add("mtok-byline-second-app-4b0d")
    monkeypatch.setenv("SECOND_TOKEN", "mtok-byline-second-app-4b0d")
    write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url))
    write_policy(policy_dir, "brand", _mastodon_policy(mastodon.url, cosigned=True, account="brand").replace(
        "env:MASTO_TOKEN", "env:SECOND_TOKEN"))
    async with started_gateway(db_url, policy_dir, clock) as gw:
        assert await gw.app[PROFILES].run_once() == 0
        ready = await (await gw.client.get("/readyz")).json()
        assert ready["profile_bylines_failing"] == ["brand", "masto"]
        assert _patches(mastodon) == 0
        (policy_dir / "brand.yaml").unlink()
        await gw.sync_policies()
        clock.advance(timedelta(minutes=10))
        assert await gw.app[PROFILES].run_once() == 1
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns", "Written by"]


async def test_the_database_gone_as_the_line_is_set_is_no_refusal_of_the_platform(
    mastodon: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database not answering as an update is made ready (its earlier lines read) is no
    word of the platform's: the tick fails as a tick does with the database gone, the account's
    health shows nothing, and the line is set once the claim's lease has run out. Before: put
    back as "the profile byline could not be set" and shown as failing on /readyz and the
    account's page, its wait growing as for a refusal."""
    write_policy(policy_dir, "masto", _mastodon_policy(mastodon.url))
    async with started_gateway(db_url, policy_dir, clock) as gw:

        gone = finding_the_database_gone()

        with monkeypatch.context() as patched:
            patched.setattr(profile_sql, "previous_texts", gone)
            with pytest.raises(DatabaseUnavailable):
                await gw.app[PROFILES].run_once()
        assert (await (await gw.client.get("/readyz")).json())["profile_bylines_failing"] == []
        assert await gw.app[PROFILES].run_once() == 0  # still claimed
        assert (await (await gw.client.get("/readyz")).json())["profile_bylines_failing"] == []
        clock.advance(timedelta(minutes=3))
        assert await gw.app[PROFILES].run_once() == 1
        assert [f["name"] for f in mastodon.account.fields] == ["Shop", "Pronouns", "Written by"]
        assert len(await _profile_entries(gw)) == 1


async def test_bluesky_description_line_on_a_real_pds(
    bluesky_pds: BlueskyPds, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a real PDS: the profile record's description gets Byline's line, the rest of the
    description and the record's other fields kept; a change of voice changes that line in place."""
    account = bluesky_pds.account("carol.test")
    monkeypatch.setenv("CAROL_BSKY", account.app_password)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{bluesky_pds.pds_url}/xrpc/com.atproto.server.createSession",
                             json={"identifier": account.handle, "password": account.app_password}) as resp:
            jwt = (await resp.json())["accessJwt"]
        mine = {"$type": "app.bsky.actor.profile", "displayName": "Carol's Bakery",
                "description": "Bread, daily.\nOpen 7 to 3."}
        async with http.post(f"{bluesky_pds.pds_url}/xrpc/com.atproto.repo.putRecord",
                             headers={"Authorization": f"Bearer {jwt}"},
                             json={"repo": account.did, "collection": "app.bsky.actor.profile", "rkey": "self",
                                   "record": mine}) as resp:
            assert resp.status == 200, await resp.text()

        async def profile() -> dict[str, Any]:
            async with http.get(f"{bluesky_pds.pds_url}/xrpc/com.atproto.repo.getRecord",
                                params={"repo": account.did, "collection": "app.bsky.actor.profile",
                                        "rkey": "self"}) as resp:
                assert resp.status == 200
                value: dict[str, Any] = (await resp.json())["value"]
                return value

        def policy(tier: str) -> str:
            return f"""
                account: sky
                platform: bluesky
                handle: {account.handle}
                pds: {bluesky_pds.pds_url}
                credentials: env:CAROL_BSKY
                tier: {tier}
                owner: carol
                writers: [alice]
                {"suggesters: [carol]" if tier == "managed" else ""}
                profile:
                  byline: true
                  template: "Written by {{voice}}: {{url}}"
            """

        write_policy(policy_dir, "sky", policy("direct"))
        async with started_gateway(db_url, policy_dir, clock) as gw:
            assert await gw.app[PROFILES].run_once() == 1
            first = await profile()
            lines = first["description"].split("\n")
            assert lines[:2] == ["Bread, daily.", "Open 7 to 3."] and len(lines) == 3
            assert lines[2].startswith("Written by a team: http") and lines[2].endswith("/@sky")
            assert first["displayName"] == "Carol's Bakery"

            write_policy(policy_dir, "sky", policy("managed"))
            assert await gw.sync_policies() == ["sky"]
            assert await gw.app[PROFILES].run_once() == 1
            second = await profile()
            lines = second["description"].split("\n")
            assert lines[:2] == ["Bread, daily.", "Open 7 to 3."] and len(lines) == 3
            assert lines[2].startswith("Written by a team, for its owner: ")
            assert second["displayName"] == "Carol's Bakery"
            entries = await _profile_entries(gw)
            assert [(e["version"], e["platform"], e["text"]) for e in entries][-1] == (2, "bluesky", lines[2])
            await verified_by_cli(gw)


async def test_x_description_line_with_oauth1(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On the X stand-in, which checks the OAuth 1.0a signature and the 160-character limit: the
    description gets Byline's line and keeps the rest; a description that would grow past 160
    is refused before any write, shown in the account's health, and its posts still go out."""
    fake = FakeX()
    user = fake.add_user("brand", "xtok-byline-91c2")
    user.description = "Bread, daily."
    user.oauth1 = ("ck-1", "cs-secret-1", "at-1", "ats-secret-1")
    server = TestServer(x_app(fake))
    await server.start_server()
    monkeypatch.setenv("X_TOKEN", "xtok-byline-91c2")
    monkeypatch.setenv("X_KEYS", json.dumps({"consumer_key": "ck-1", "consumer_secret": "cs-secret-1",
                                             "token": "at-1", "token_secret": "ats-secret-1"}))
    write_policy(policy_dir, "xacct", f"""
        account: xacct
        platform: x
        api: {str(server.make_url("")).rstrip("/")}
        credentials: env:X_TOKEN
        tier: direct
        owner: alice
        profile:
          byline: true
          template: "Written by {{voice}}: {{url}}"
          oauth1: env:X_KEYS
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            assert await gw.app[PROFILES].run_once() == 1
            lines = user.description.split("\n")
            assert lines[0] == "Bread, daily." and len(lines) == 2
            assert lines[1].startswith("Written by its owner: http") and lines[1].endswith("/@xacct")
            assert (await _profile_entries(gw))[-1]["platform"] == "x"

            user.description = "x" * 150  # the account's own words leave no room
            write_policy(policy_dir, "xacct", f"""
                account: xacct
                platform: x
                api: {str(server.make_url("")).rstrip("/")}
                credentials: env:X_TOKEN
                tier: direct
                owner: alice
                writers: [alice, carol]
                profile:
                  byline: true
                  template: "Written by {{voice}}: {{url}}"
                  oauth1: env:X_KEYS
            """)
            assert await gw.sync_policies() == ["xacct"]
            writes = fake.faults.count("POST", "/1.1/account/update_profile.json")
            assert await gw.app[PROFILES].run_once() == 0
            assert fake.faults.count("POST", "/1.1/account/update_profile.json") == writes
            assert (await (await gw.client.get("/readyz")).json())["profile_bylines_failing"] == ["xacct"]
            post = await gw.submit("alice", "xacct", "Rye today")
            await gw.tick()
            assert (await gw.get("alice", post["id"]))["state"] == "published"
    finally:
        await server.close()


async def test_x_stand_in_refuses_what_x_refuses() -> None:
    """update_profile: a bearer token or a wrong signature is 401 code 32; a description over 160
    characters is 403 code 120, and nothing changes."""
    import oauthlib.oauth1

    fake = FakeX()
    user = fake.add_user("brand", "tok")
    user.oauth1 = ("ck", "cs", "at", "ats")
    server = TestServer(x_app(fake))
    await server.start_server()
    url = str(server.make_url("/1.1/account/update_profile.json"))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data="description=hi", headers={**form, "Authorization": "Bearer tok"}) as resp:
                assert (resp.status, (await resp.json())["errors"][0]["code"]) == (401, 32)
            wrong = oauthlib.oauth1.Client("ck", client_secret="cs", resource_owner_key="at",
                                           resource_owner_secret="not-it")
            _, headers, _ = wrong.sign(url, http_method="POST", body="description=hi", headers=form)
            async with http.post(url, data="description=hi", headers=headers) as resp:
                assert resp.status == 401
            right = oauthlib.oauth1.Client("ck", client_secret="cs", resource_owner_key="at",
                                           resource_owner_secret="ats")
            body = "description=" + "y" * 161
            _, headers, _ = right.sign(url, http_method="POST", body=body, headers=form)
            async with http.post(url, data=body, headers=headers) as resp:
                assert resp.status == 403
                assert (await resp.json())["errors"][0] == {"code": 120, "message": (
                    "Account update failed: Description is too long (maximum is 160 characters).")}
            assert user.description == ""
            _, headers, _ = right.sign(url, http_method="POST", body="description=hi", headers=form)
            async with http.post(url, data="description=hi", headers=headers) as resp:
                assert resp.status == 200
            assert user.description == "hi"
    finally:
        await server.close()


# -- the verifier ----------------------------------------------------------------------------------


def test_verify_catches_a_byline_without_its_policy_version(tmp_path: Path) -> None:
    """``profile.updated`` naming a policy version the log recorded is accepted; one naming a
    version never recorded for the account, or lacking its text, is a finding."""
    direct = summary(owner="alice", writers=["alice"])
    honest = SyntheticLog()
    honest.add("policy.loaded", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 1})
    honest.add("profile.updated", actor="system", account="brand",
               data={"version": 1, "text": "Written by: its owner", "platform": "mastodon"})
    assert messages(honest.verify(tmp_path / "honest.export")) == []

    forged = SyntheticLog()
    forged.add("policy.loaded", actor="policy-file", account="brand",
               data={"file": "brand.yaml", "sha256": "p1", "policy": direct, "version": 1})
    forged.add("profile.updated", actor="system", account="brand",
               data={"version": 2, "text": "Written by: a team", "platform": "mastodon"})
    forged.add("profile.updated", actor="system", account="other",
               data={"version": 1, "text": "Written by: a team", "platform": "mastodon"})
    forged.add("profile.updated", actor="system", account="brand", data={"version": 1, "platform": "mastodon"})
    found = messages(forged.verify(tmp_path / "forged.export"))
    assert len(found) == 3, found
    expected = ("entry 1: profile.updated for brand names policy version 2, which the log has not recorded",
                "entry 2: profile.updated for other names policy version 1",
                "entry 3: profile.updated lacks data.version, data.text or data.platform")
    assert all(any(line.startswith(e) for line in found) for e in expected), found


# -- what the byline says, and whether it fits, as pure rules -------------------------------------

FAMILY = "\U0001F469\u200D\U0001F469\u200D\U0001F467"  # one grapheme of 18 bytes


@pytest.mark.parametrize(("policy", "said"), [
    (summary(owner="alice", writers=["alice"]), "its owner"),
    (summary(owner="alice", writers=["alice", "carol"]), "its owner and a team"),
    (summary(owner="dave", writers=["bob"], tier="managed"), "a team, for its owner"),
    (summary(owner="alice", writers=["alice", "carol"], approvers=["alice"], tier="co-signed"),
     "its owner and a team, approved by the owner"),
    (summary(owner="alice", writers=["carol"], approvers=["alice", "bob"], tier="co-signed"),
     "a team, approved by the owner or a co-signer"),
    (summary(owner="alice", writers=["carol"], approvers=["bob"], tier="co-signed"), "a team, approved by a co-signer"),
    (summary(owner="alice", writers=["alice"], approvers=["bob"], tier="delayed"), "its owner"),
])
def test_the_byline_says_who_writes_and_who_approves(policy: dict[str, Any], said: str) -> None:
    """The voice in words for each tier: approvers are named only where the account is co-signed."""
    assert byline_text.voice(policy) == said


def test_a_byline_renders_its_places() -> None:
    """``{voice}``, ``{url}`` (the public page, one slash before ``@``) and ``{account}``."""
    got = byline_text.render("{voice} · {url} · {account}", summary=summary(owner="alice", writers=["alice"]),
                             account="brand", public_url="https://byline.example/")
    assert got == "its owner · https://byline.example/@brand · brand"


def test_a_mastodon_field_is_split_at_the_first_colon() -> None:
    """Name before the first ``": "``, value after it (colons and all); no colon: a field "Byline"."""
    assert byline_text.mastodon_field("Written by: its owner: really") == byline_text.MastodonField(
        name="Written by", value="its owner: really")
    assert byline_text.mastodon_field("no colon here") == byline_text.MastodonField(
        name="Byline", value="no colon here")


@pytest.mark.parametrize(("platform", "text", "problem"), [
    ("mastodon", "n" * 255 + ": " + "v" * 255, None),
    ("mastodon", "n" * 256 + ": v", "the Mastodon field's name would be 256 characters; Mastodon takes at most 255"),
    ("mastodon", "n: " + "v" * 256, "the Mastodon field's value would be 256 characters; Mastodon takes at most 255"),
    ("mastodon", ": v", "the Mastodon field would have no name (the text before the first ': ')"),
    ("bluesky", "b" * 256, None),
    ("bluesky", "b" * 257, "the line would be 257 characters; a Bluesky description takes at most 256"),
    ("bluesky", FAMILY * 142 + "bbbb", None),  # 2,560 bytes
    ("bluesky", FAMILY * 142 + "bbbbb", "the line would be 147 characters; a Bluesky description takes at most 256"),
    ("x", "x" * 160, None),
    ("x", "x" * 161, "the line would be 161 characters; an X description takes at most 160"),
    ("sandbox", "s" * 500, None),
])
def test_a_byline_fits_each_platforms_profile_to_the_character(platform: str, text: str, problem: str | None) -> None:
    """Each platform's limit is inclusive: a Mastodon field's name and value, a Bluesky
    description's graphemes and bytes, an X description's characters; the sandbox has none."""
    assert byline_text.too_long(platform, text) == problem


@pytest.mark.parametrize(("account", "room"), [("brand", 96), ("a" * 60, 92)])
def test_a_template_is_checked_with_room_for_the_public_address(account: str, room: int) -> None:
    """A template is measured with a public address of 64 characters (or the account's page on
    an empty host, for a name too long to leave room): it fits to the last character."""
    assert byline_text.check_fits("x", "{url}" + "y" * room, summary={}, account=account) is None
    with pytest.raises(ValueError) as refused:
        byline_text.check_fits("x", "{url}" + "y" * (room + 1), summary={}, account=account)
    assert str(refused.value) == ("the line would be 161 characters; an X description takes at most 160 "
                                  "(counting a public address of 64 characters)")


def test_an_x_byline_without_oauth1_keys_says_what_to_name() -> None:
    """The whole message an admin reads for an X byline without OAuth 1.0a keys."""
    x = "account: a\nplatform: x\ncredentials: env:T\ntier: direct\nowner: alice\nprofile:\n  byline: true\n"
    with pytest.raises(PolicyFileError) as refused:
        parse_policy(x, name="a.yaml", expected_account="a")
    assert [(i.key, i.message) for i in refused.value.issues] == [(
        "profile.oauth1", "X changes a profile only through API v1.1 with OAuth 1.0a user keys, which the account's "
        "OAuth 2 token is not: name where they are kept (env:NAME or file:PATH)")]


def test_an_announcement_names_a_team_of_one() -> None:
    """A managed account run by one writer: the announcement names them alone."""
    assert voice_words(summary(owner="dave", writers=["bob"], tier="managed")) == (
        "managed by a team (bob); dave, its owner, suggests")
