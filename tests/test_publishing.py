"""The publisher against real platform stand-ins over sockets: outages, 429 storms, lost
answers, broken credentials and the retry budget. Every approved post ends up on the
platform exactly once, and the log says what happened."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from structlog.testing import capture_logs

from adapters.base import AdapterError, OutboundPost, PublishResult, ScopeCheck
from adapters.sandbox import SandboxAdapter
from adapters.x import XAdapter
from gateway.appkeys import PUBLISHER, SANDBOX
from gateway.clock import ManualClock
from gateway.metrics import Metrics
from gateway.services.publisher import _PER_ACCOUNT, Publisher
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import verified_by_cli
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import Account, FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.fakes.x import FakeX
from tests.fakes.x import create_app as x_app
from tests.pages.conftest import page_as

MASTODON_TOKEN = "mtok-gateway-7f3a9c1e"
X_TOKEN = "xtok-gateway-2b8d4f6a"


@dataclass
class Platforms:
    """The stand-ins a test gateway publishes to."""

    mastodon: FakeMastodon
    account: Account
    x: FakeX
    gateway: Gateway


@pytest.fixture
async def platforms(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Platforms]:
    """Mastodon and X stand-ins on real sockets, and a gateway with one account on each."""
    fake_m = FakeMastodon()
    account = fake_m.add_account("brand", MASTODON_TOKEN)
    fake_x = FakeX()
    fake_x.add_user("brand", X_TOKEN)
    m_server = TestServer(mastodon_app(fake_m))
    x_server = TestServer(x_app(fake_x))
    await m_server.start_server()
    await x_server.start_server()
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", MASTODON_TOKEN)
    monkeypatch.setenv("BRAND_X_TOKEN", X_TOKEN)
    write_policy(policy_dir, "masto", f"""
        account: masto
        platform: mastodon
        instance: {str(m_server.make_url('')).rstrip('/')}
        credentials: env:BRAND_MASTODON_TOKEN
        tier: direct
        owner: alice
        retry_attempts: 3
    """)
    write_policy(policy_dir, "xacct", f"""
        account: xacct
        platform: x
        api: {str(x_server.make_url('')).rstrip('/')}
        credentials: env:BRAND_X_TOKEN
        tier: direct
        owner: alice
        rate_limit: 2/h
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            yield Platforms(mastodon=fake_m, account=account, x=fake_x, gateway=gw)
    finally:
        await m_server.close()
        await x_server.close()


async def _types(gw: Gateway, post_id: str) -> list[str]:
    return [e["type"] for e in (await gw.get("alice", post_id))["events"]]


async def test_publishes_to_mastodon_once(platforms: Platforms) -> None:
    """A direct post reaches the Mastodon stand-in once, with its URL recorded."""
    gw = platforms.gateway
    post = await gw.submit("alice", "masto", "Hello fediverse", language="en", visibility="unlisted")
    await gw.tick()
    post = await gw.get("alice", post["id"])
    assert post["state"] == "published"
    statuses = platforms.mastodon.statuses(platforms.account)
    assert [s.text for s in statuses] == ["Hello fediverse"]
    assert statuses[0].visibility == "unlisted" and statuses[0].language == "en"
    assert post["remote"]["id"] == statuses[0].id


async def test_outage_then_recovery(platforms: Platforms) -> None:
    """While the platform answers 503 the post is deferred, not lost; when it is back, once."""
    gw = platforms.gateway
    platforms.mastodon.faults.fail_next(5, 503, method="POST", path="/api/v1/statuses")
    post = await gw.submit("alice", "masto", "Through the outage")
    await gw.tick()  # three quick tries inside, then back to the schedule
    body = await gw.get("alice", post["id"])
    assert body["state"] == "scheduled" and "503" in (body["last_error"] or "")
    assert await _types(gw, post["id"]) == ["post.submitted", "post.publishing", "post.deferred"]
    gw.clock.advance(timedelta(minutes=1))
    await gw.tick()
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    assert [s.text for s in platforms.mastodon.statuses(platforms.account)] == ["Through the outage"]


async def test_429_storm_honours_retry_after(platforms: Platforms) -> None:
    """A 429 asking for two minutes moves publish_at two minutes on; then it goes out once."""
    gw = platforms.gateway
    platforms.mastodon.faults.rate_limit_next(3, retry_after=120)
    post = await gw.submit("alice", "masto", "Patience")
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "scheduled"
    deferred = body["events"][-1]
    assert deferred["type"] == "post.deferred"
    assert deferred["data"]["retry_at"] == body["publish_at"]
    gw.clock.advance(timedelta(seconds=119))
    assert await gw.tick() == 0  # not before the platform said
    for _ in range(3):  # two more 429s, then through: a storm is not the post's fault
        gw.clock.advance(timedelta(seconds=121))
        await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "published"
    assert [e["type"] for e in body["events"]].count("post.deferred") == 3
    assert len(platforms.mastodon.statuses(platforms.account)) == 1


async def test_a_429_storm_leaves_the_whole_retry_budget_for_the_platforms_refusals(platforms: Platforms) -> None:
    """Three 429s, then two 500s, on an account whose policy allows three attempts: the 429s
    were the platform asking to slow down, not a failure of the post, so they leave its budget
    whole, and the post goes out at its third real attempt rather than failing at its fourth
    send."""
    gw = platforms.gateway
    platforms.mastodon.faults.rate_limit_next(3, retry_after=60, method="POST", path="/api/v1/statuses")
    inline = 3  # the publisher's tries within one claim, a 500 each: one deferral a claim
    platforms.mastodon.faults.fail_next(2 * inline, 500, method="POST", path="/api/v1/statuses")
    post = await gw.submit("alice", "masto", "Slow, then broken, then through")
    for _ in range(6):
        await gw.tick()
        gw.clock.advance(timedelta(hours=1))
    body = await gw.get("alice", post["id"])
    assert body["state"] == "published", body
    assert [e["data"]["error"] for e in body["events"] if e["type"] == "post.deferred"] == [
        "the platform asked to slow down (HTTP 429)"] * 3 + ["the platform failed (HTTP 500)"] * 2
    assert len(platforms.mastodon.statuses(platforms.account)) == 1


async def test_answer_lost_after_mastodon_accepted(platforms: Platforms) -> None:
    """The platform makes the post but the answer never arrives: the retry reuses the key, one copy."""
    gw = platforms.gateway
    platforms.mastodon.faults.drop_next_create(1)
    post = await gw.submit("alice", "masto", "Said once")
    await gw.tick()
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    assert [s.text for s in platforms.mastodon.statuses(platforms.account)] == ["Said once"]


async def test_answer_lost_after_x_accepted(platforms: Platforms) -> None:
    """X has no idempotency key: after a lost answer the retry finds the tweet, no second copy."""
    gw = platforms.gateway
    platforms.x.faults.drop_next_create(1)
    post = await gw.submit("alice", "xacct", "Tweeted once")
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "published", body
    assert [t.text for t in platforms.x.tweets()] == ["Tweeted once"]
    assert body["remote"]["id"] == platforms.x.tweets()[0].id


async def test_broken_credential_holds_posts_and_marks_account(
    platforms: Platforms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 marks the account unhealthy and holds its posts without burning retries; a new
    token makes it healthy and the post goes out."""
    gw = platforms.gateway
    platforms.mastodon.revoke_token(MASTODON_TOKEN)
    post = await gw.submit("alice", "masto", "Waiting for a token")
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert body["state"] == "scheduled" and body["attempts"] == 0  # the refusal counts against no budget
    status, accounts = await gw.call("alice", "GET", "/v1/accounts")
    masto = next(a for a in accounts["accounts"] if a["account"] == "masto")
    assert masto["healthy"] is False and MASTODON_TOKEN not in str(masto["problem"])
    status, ready = await gw.call(None, "GET", "/readyz")
    assert status == 200  # the gateway still takes posts; one account is waiting for its admin
    assert ready["accounts_unhealthy"] == ["masto"]
    # Refused when asked who the token is for, before any post is sent with it.
    for _ in range(5):  # an hour of ticks while broken: never failed, never a request with the dead token burnt
        gw.clock.advance(timedelta(minutes=12))
        await gw.tick()
    body = await gw.get("alice", post["id"])
    assert (body["state"], body["attempts"]) == ("scheduled", 0), body
    assert platforms.mastodon.faults.count("POST", "/api/v1/statuses") == 0
    platforms.account.tokens.add("mtok-rotated-0000")
    monkeypatch.setenv("BRAND_MASTODON_TOKEN", "mtok-rotated-0000")  # the admin rotates the token
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    _, accounts = await gw.call("alice", "GET", "/v1/accounts")
    assert next(a for a in accounts["accounts"] if a["account"] == "masto")["healthy"] is True


async def test_retry_budget_then_manual_retry(platforms: Platforms) -> None:
    """After the policy's retry budget a post fails with the platform's answer; /retry puts it back."""
    gw = platforms.gateway
    platforms.mastodon.faults.fail_next(1000, 500)
    post = await gw.submit("alice", "masto", "Stubborn")
    for _ in range(3):
        await gw.tick()
        gw.clock.advance(timedelta(hours=1))
    body = await gw.get("alice", post["id"])
    assert body["state"] == "failed", body
    assert "500" in body["last_error"]
    assert body["events"][-1]["type"] == "post.failed"
    platforms.mastodon.faults.clear()
    status, body = await gw.act("alice", post["id"], "retry")
    assert status == 200 and body["state"] == "scheduled"
    await gw.tick()
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    assert len(platforms.mastodon.statuses(platforms.account)) == 1


async def test_rate_limit_from_policy(platforms: Platforms) -> None:
    """rate_limit: 2/h lets two posts out now and the third an hour after the first: put at
    the first microsecond the first send has left the window (the window counts sends after its
    start), no earlier, where it would be put back again and again, nor later."""
    gw = platforms.gateway
    ids = [(await gw.submit("alice", "xacct", f"Burst {n}"))["id"] for n in range(3)]
    sent_at = gw.clock.now()
    await gw.tick()
    posts = [await gw.get("alice", i) for i in ids]
    assert sorted(p["state"] for p in posts) == ["published", "published", "scheduled"]
    [waiting] = [p for p in posts if p["state"] == "scheduled"]
    assert datetime.fromisoformat(waiting["publish_at"]) == sent_at + timedelta(hours=1, microseconds=1)
    gw.clock.advance(timedelta(minutes=59))
    await gw.tick()
    assert len(platforms.x.tweets()) == 2
    gw.clock.advance(timedelta(minutes=2))
    await gw.tick()
    assert sorted(t.text for t in platforms.x.tweets()) == ["Burst 0", "Burst 1", "Burst 2"]


LIMITED = """
    account: limited
    platform: sandbox
    handle: "@limited"
    tier: direct
    owner: erin
    rate_limit: 1/h
"""


async def test_posts_put_off_by_the_rate_limit_leave_a_retry_its_place_in_the_page(
    gateway: Gateway, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rate_limit: 1/h, and the account's first post sent and deferred by the platform for a
    minute. _PER_ACCOUNT new posts then fall due: each is put off to the hour's end, and the
    deferred post, due after them and no new send (the limit counts first sends), goes out in
    that same page, as a page takes at most _PER_ACCOUNT claims of an account. Before (mutation
    testing), a post put off counted as a claim made, and the retry waited for the next tick."""
    write_policy(policy_dir, "limited", LIMITED)
    assert await gateway.sync_policies() == ["limited"]
    first = await gateway.submit("erin", "limited", "Sent, and asked to come back")
    sent_at = gateway.clock.now()

    async def later(self: object, post: OutboundPost) -> PublishResult:
        raise AdapterError("come back later", retryable=True, retry_after=60, status=503)

    with monkeypatch.context() as patched:
        patched.setattr(SandboxAdapter, "publish", later)
        await gateway.tick()
    assert (await gateway.get("erin", first["id"]))["state"] == "scheduled"
    burst = [(await gateway.submit("erin", "limited", f"Burst {n}"))["id"] for n in range(_PER_ACCOUNT)]
    gateway.clock.advance(timedelta(minutes=2))
    await gateway.tick()
    assert [p["text"] for p in await gateway.timeline("limited")] == ["Sent, and asked to come back"]
    for post_id in burst:
        waiting = await gateway.get("erin", post_id)
        assert waiting["state"] == "scheduled", waiting
        assert datetime.fromisoformat(waiting["publish_at"]) == sent_at + timedelta(hours=1, microseconds=1)
    await verified_by_cli(gateway)


async def test_delete_on_mastodon(platforms: Platforms) -> None:
    """Deleting a published post deletes the status on the platform."""
    gw = platforms.gateway
    post = await gw.submit("alice", "masto", "Ephemeral")
    await gw.tick()
    status, body = await gw.call("alice", "DELETE", f"/v1/posts/{post['id']}")
    assert status == 200 and body["state"] == "deleted"
    assert platforms.mastodon.statuses(platforms.account) == []


class _Flaky:
    """An adapter whose first publishes fail as ``errors`` say, then succeed."""

    platform = "mastodon"

    def __init__(self, *errors: AdapterError) -> None:
        self.errors = list(errors)
        self.tries = 0

    async def publish(self, post: OutboundPost) -> PublishResult:
        self.tries += 1
        if self.errors:
            raise self.errors.pop(0)
        return PublishResult(remote_id=f"r{self.tries}")


def _blip(retry_after: float | None = None) -> AdapterError:
    return AdapterError("503", retryable=True, retry_after=retry_after, status=503)


@pytest.mark.parametrize(("errors", "slept", "outcome"), [
    ((), [], "r1"),  # out at once: no wait
    ((_blip(),), [0.2], "r2"),
    ((_blip(), _blip()), [0.2, 0.4], "r3"),  # doubling
    ((_blip(2.5), _blip()), [2.5, 0.4], "r3"),  # a Retry-After the platform gave is kept to
    ((_blip(), _blip(), _blip()), [0.2, 0.4], "503"),  # three tries, then back to the scheduler
    ((_blip(9.0),), [], "503"),  # a wait longer than the short one is the scheduler's
    ((AdapterError("422", retryable=False),), [], "422"),
    ((AdapterError("401", retryable=True, auth_failed=True),), [], "401"),
])
async def test_short_blips_are_ridden_out_in_place_with_these_waits(
    errors: tuple[AdapterError, ...], slept: list[float], outcome: str
) -> None:
    """A publication tries three times, waiting 0.2 s, then 0.4 s (or what the platform asked,
    up to 5 s), each wait counted as an inline retry; anything else is not tried again here."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    metrics = Metrics()
    publisher = Publisher(db=cast(Any, None), appender=cast(Any, None), policies=cast(Any, None),
                          platforms=cast(Any, None), clock=ManualClock(), inline_attempts=3,
                          inline_wait_max=5.0, sleep=sleep, metrics=metrics)
    adapter = _Flaky(*errors)
    post = OutboundPost(post_id="1", text="hello", idempotency_key="k")
    try:
        result = (await publisher._publish_with_retries(cast(Any, adapter), post)).remote_id
    except AdapterError as exc:
        result = exc.message
    assert (result, waits) == (outcome, slept)
    assert metrics.publish_retries.get("mastodon", "inline") == len(slept)


async def test_no_cookie_set_for_one_account_goes_out_with_another(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform client is shared by every account, and a platform may set cookies (a load
    balancer's, a session): none is kept, so nothing one account's answer set ever goes out
    with another account's request to the same instance, and nothing the platform knows of one
    account ties it to the next. Before, the shared session kept them in one jar for all."""
    fake = FakeMastodon()
    fake.add_account("first", "mtok-first-0a1b2c")
    fake.add_account("second", "mtok-second-3d4e5f")
    sent: list[tuple[str, str | None]] = []  # (the bearer token, the Cookie header it came with)

    @web.middleware
    async def cookies(request: web.Request, handler: Any) -> web.StreamResponse:
        sent.append((request.headers.get("Authorization", ""), request.headers.get("Cookie")))
        response = await handler(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        response.set_cookie("_instance_session", f"session-of-{token}", path="/")
        return response

    app = mastodon_app(fake)
    app.middlewares.append(cookies)
    server = TestServer(app)
    await server.start_server()
    monkeypatch.setenv("FIRST_TOKEN", "mtok-first-0a1b2c")
    monkeypatch.setenv("SECOND_TOKEN", "mtok-second-3d4e5f")
    # By name, not by address: cookie jars keep no cookies set by a bare IP address.
    instance = f"http://localhost:{server.port}"
    for account, env in (("first", "FIRST_TOKEN"), ("second", "SECOND_TOKEN")):
        write_policy(policy_dir, account, f"""
            account: {account}
            platform: mastodon
            instance: {instance}
            credentials: env:{env}
            tier: direct
            owner: alice
        """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            for account in ("first", "second", "first"):
                post = await gw.submit("alice", account, f"Hello from {account}")
                await gw.tick()
                assert (await gw.get("alice", post["id"]))["state"] == "published"
    finally:
        await server.close()
    publishes = [(token, cookie) for token, cookie in sent if token]
    assert len(publishes) >= 3
    assert all(cookie is None for _, cookie in publishes), publishes


async def test_the_database_gone_mid_publish_is_no_broken_credential(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database going away while a post is being published (here, as the sandbox keeps it;
    on any platform, as the post's images are read) is no credential of the account's failing:
    the account stays healthy (nothing held, nothing for its admin to mend), the post is tried
    again after the first short wait, not five minutes on, and such failures, however many,
    never use up its retry budget; once the database answers it goes out, once."""
    async with started_gateway(db_url, policy_dir, clock) as gw:
        sandbox = gw.app[SANDBOX]
        create = sandbox.create
        gone = {"left": 10}  # more than the policy's budget of tries (8)

        async def away(**kwargs: Any) -> Any:
            if gone["left"] > 0:
                gone["left"] -= 1
                raise DatabaseUnavailable()
            return await create(**kwargs)

        monkeypatch.setattr(sandbox, "create", away)
        post = await gw.submit("alice", "direct", "Out once the database is back")
        while gone["left"] > 0:
            await gw.tick()
            body = await gw.get("alice", post["id"])
            assert body["state"] == "scheduled", body
            assert "database" in (body["last_error"] or "").lower(), body
            _, accounts = await gw.call("alice", "GET", "/v1/accounts")
            assert next(a for a in accounts["accounts"] if a["account"] == "direct")["healthy"] is True
            _, ready = await gw.call(None, "GET", "/readyz")
            assert ready["accounts_unhealthy"] == []
            wait = datetime.fromisoformat(body["publish_at"]) - clock.now()
            assert wait <= timedelta(seconds=5), wait  # the first short wait, every time
            clock.advance(wait)
        await gw.tick()
        body = await gw.get("alice", post["id"])
        assert body["state"] == "published", body
        assert [p["text"] for p in await gw.timeline("direct")] == ["Out once the database is back"]


async def test_the_database_gone_stops_a_tick_at_its_first_expiry(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the database not answering as a hold past its time is expired, the tick ends there
    (its loop says so in one line and tries again): it does not go on to try each of up to 500
    in turn, saying nothing. Once the database answers, each expires. Before: every hold was
    tried and the tick went on as if none was due."""
    held = [await gateway.submit("alice", "cosigned", f"Will anyone read this {n}") for n in range(3)]
    gateway.clock.advance(timedelta(hours=24, seconds=1))
    tried: list[str] = []

    def gone(self: Publisher, post_id: str) -> Any:
        async def work(ltx: Any) -> Any:
            tried.append(post_id)
            raise DatabaseUnavailable()

        return work

    with monkeypatch.context() as patched:
        patched.setattr(Publisher, "_expire_work", gone)
        with pytest.raises(DatabaseUnavailable):
            await gateway.tick()
    assert len(tried) == 1
    await gateway.tick()
    assert [(await gateway.get("alice", p["id"]))["state"] for p in held] == ["expired"] * 3


async def _deferred_after_a_lost_answer(
    platforms: Platforms, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> tuple[dict[str, Any], str]:
    """carol's post on masto (which she now writes for, with a disclosure line) reaches
    Mastodon, but the answer is lost and the platform then fails: the post is deferred, its
    outcome unknown. The post, and the policy it was sent under."""
    gw = platforms.gateway
    masto = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
    disclosed = masto + "writers: [carol]\ndisclosure: \"—{author}\"\n"
    write_policy(policy_dir, "masto", disclosed)
    assert await gw.sync_policies() == ["masto"]
    faults = platforms.mastodon.faults
    dropped = faults.take_drop

    def then_failing() -> bool:
        drop = dropped()
        if drop:  # the status is made and its answer lost; the claim's next tries meet an outage
            faults.fail_next(10, 503, method="POST", path="/api/v1/statuses")
        return drop

    monkeypatch.setattr(faults, "take_drop", then_failing)
    faults.drop_next_create(1)
    post = await gw.submit("carol", "masto", "Doors open at nine")
    await gw.tick()
    body = await gw.get("alice", post["id"])
    assert (body["state"], body["version"]) == ("scheduled", 1), body
    assert [s.text for s in platforms.mastodon.statuses(platforms.account)] == ["Doors open at nine\n\n—carol"]
    faults.clear()
    return post, disclosed


async def _out_once_as_first_sent(platforms: Platforms, post: dict[str, Any]) -> None:
    """One status on Mastodon, with the words first sent, recorded as the post's under the key
    they went out with, and the log verifies."""
    gw = platforms.gateway
    body = await gw.get("alice", post["id"])
    statuses = platforms.mastodon.statuses(platforms.account)
    assert [s.text for s in statuses] == ["Doors open at nine\n\n—carol"]
    assert (body["state"], body["remote"]["id"], body["display_text"]) == (
        "published", statuses[0].id, "Doors open at nine\n\n—carol"), body
    claims = [e["data"]["idempotency_key"] for e in body["events"] if e["type"] == "post.publishing"]
    assert len(claims) == 2 and set(claims) == {statuses[0].idempotency_key}, claims
    await verified_by_cli(gw)


async def test_a_retry_after_a_lost_answer_sends_the_words_its_key_was_sent_with(
    platforms: Platforms, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """carol's post reaches Mastodon, but the answer is lost and the platform then fails: the
    post is deferred, its outcome unknown. The policy's disclosure line changes meanwhile. The
    retry sends the words it first sent, under the key it sent them with: Mastodon gives back
    the status it made, and Byline records as published what the platform shows (before, it
    sent the new words under the same key, and recorded them as published where the platform
    kept the first words)."""
    gw = platforms.gateway
    post, disclosed = await _deferred_after_a_lost_answer(platforms, policy_dir, monkeypatch)
    write_policy(policy_dir, "masto", disclosed.replace("—{author}", "Written by {author}"))
    assert await gw.sync_policies() == ["masto"]
    gw.clock.advance(timedelta(minutes=10))
    await gw.tick()
    await _out_once_as_first_sent(platforms, post)


async def test_a_deferred_post_held_and_approved_after_the_line_changed_is_one_status(
    platforms: Platforms, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same deferred post, its outcome unknown, when masto turns co-signed with another
    disclosure line: the change holds it for bob as a new version, and bob approves it over
    HTTP. Its words are the ones sent, only the line around them changed: it sends what it
    sent, under that key, and Mastodon gives back the status it made: one status (before, the
    new line went out under the new version's key: two), and the log verifies."""
    gw = platforms.gateway
    post, disclosed = await _deferred_after_a_lost_answer(platforms, policy_dir, monkeypatch)
    write_policy(policy_dir, "masto", disclosed.replace("tier: direct", "tier: co-signed")
                 .replace("—{author}", "Written by {author}") + "approvals:\n  required: 1\n  from: [bob]\n")
    assert await gw.sync_policies() == ["masto"]
    held = await gw.get("alice", post["id"])
    assert (held["state"], held["version"]) == ("held", 2), held
    status, body = await gw.act("bob", post["id"], "approve")
    assert (status, body["state"]) == (200, "scheduled"), body
    gw.clock.advance(timedelta(minutes=10))
    await gw.tick()
    await _out_once_as_first_sent(platforms, post)


LACKS_READ = "the token lacks the scope read:statuses; give the application read:statuses on the instance"
LACKS_WRITE = "the token lacks the scope write:statuses; give the application write:statuses on the instance"


async def _masto_health(gw: Gateway) -> tuple[dict[str, Any], dict[str, Any]]:
    """Masto's entry in ``GET /v1/accounts`` (as alice), and ``/readyz``; neither shows the token."""
    status, accounts = await gw.call("alice", "GET", "/v1/accounts")
    assert status == 200, accounts
    ready_status, ready = await gw.call(None, "GET", "/readyz")
    assert ready_status == 200, ready
    assert MASTODON_TOKEN not in str(accounts) and MASTODON_TOKEN not in str(ready)
    return next(a for a in accounts["accounts"] if a["account"] == "masto"), ready


async def test_a_token_without_read_statuses_is_a_warning_named_within_one_scope_round(platforms: Platforms) -> None:
    """A token made from the old README (``read:accounts``, ``write:statuses``): after one round
    of the once-a-minute check, ``GET /v1/accounts`` and ``/readyz`` say it lacks read:statuses
    and what to do, while the account stays healthy and alice's post goes out; once the
    application has the scope, the next round takes the warning back. The check made no status."""
    gw, mastodon = platforms.gateway, platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "write:statuses")
    assert await gw.app[PUBLISHER].check_scopes() == 1
    assert mastodon.statuses(platforms.account) == []
    masto, ready = await _masto_health(gw)
    assert (masto["healthy"], masto["problem"]) == (True, None), masto
    assert LACKS_READ in masto["warning"] and "a post's recovery after a crash" in masto["warning"]
    assert ready["account_warnings"] == {"masto": masto["warning"]}
    assert (ready["accounts_unhealthy"], ready["account_problems"]) == ([], {})

    page_status, page = await page_as(gw, "alice", "/accounts/masto")
    assert page_status == 200 and "Posting works" in page and "cannot do all Byline may need" in page
    assert "the token lacks the scope read:statuses" in page and MASTODON_TOKEN not in page

    post = await gw.submit("alice", "masto", "Still goes out")
    await gw.tick()
    assert [s.text for s in mastodon.statuses(platforms.account)] == ["Still goes out"]
    assert (await gw.get("alice", post["id"]))["state"] == "published"

    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses", "write:statuses")
    await gw.app[PUBLISHER].check_scopes()
    masto, ready = await _masto_health(gw)
    assert (masto["healthy"], masto["warning"], ready["account_warnings"]) == (True, None, {}), masto


async def _goes_out_once_given_write_statuses(platforms: Platforms, post: dict[str, Any]) -> None:
    """The application given write:statuses, the post waiting for it goes out at its next try
    (five minutes on), once, and the account is healthy again."""
    gw, mastodon = platforms.gateway, platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses", "write:statuses")
    gw.clock.advance(timedelta(minutes=5))
    await gw.tick()
    await gw.tick()
    assert [s.text for s in mastodon.statuses(platforms.account)] == ["Waits for the scope"]
    assert (await gw.get("alice", post["id"]))["state"] == "published"
    masto, ready = await _masto_health(gw)
    assert (masto["healthy"], masto["problem"], ready["account_problems"]) == (True, None, {}), masto


async def test_a_token_without_write_statuses_holds_the_account_from_its_first_post_until_it_is_given(
    platforms: Platforms,
) -> None:
    """A token that cannot publish at all: the round does not ask (the only question is a request
    to create a status), so the account is healthy until alice's first post meets the 403; then
    it is unhealthy, saying it lacks write:statuses, and the post waits, scheduled, its budget
    untouched, nothing on the instance. Once the application has the scope, the publisher's probe
    a minute on finds it mended and the post goes out once."""
    gw, mastodon = platforms.gateway, platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses")
    await gw.app[PUBLISHER].check_scopes()
    masto, ready = await _masto_health(gw)
    assert (masto["healthy"], masto["problem"], masto["warning"]) == (True, None, None), masto

    post = await gw.submit("alice", "masto", "Waits for the scope")
    await gw.tick()
    waiting = await gw.get("alice", post["id"])
    assert (waiting["state"], waiting["attempts"]) == ("scheduled", 0), waiting
    assert mastodon.statuses(platforms.account) == []
    masto, ready = await _masto_health(gw)
    assert masto["healthy"] is False and LACKS_WRITE in masto["problem"], masto
    assert ready["accounts_unhealthy"] == ["masto"]

    await _goes_out_once_given_write_statuses(platforms, post)


async def _until(what: str, found: Callable[[], Awaitable[bool]], *, within: float = 20.0) -> None:
    """Return once ``found()`` is true, looked at every 50 ms; fail after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not await found():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within} s: {what}"
        await asyncio.sleep(0.05)


async def test_the_publishers_own_round_names_a_missing_scope_and_takes_it_back_once_given(
    platforms: Platforms, db_url: str, policy_dir: Path, clock: ManualClock,
) -> None:
    """With the publisher running as in ``byline serve`` (its round every 0.2 s here, by
    ``BYLINE_ACCOUNT_CHECK_SECONDS``), nobody asking by hand: a token without read:statuses
    comes to show its warning in ``GET /v1/accounts``, and once the application has the scope,
    the warning goes by itself. No round made a status."""
    mastodon = platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "write:statuses")
    async with started_gateway(db_url, policy_dir, clock, run_publisher=True, account_check_seconds=0.2) as gw:
        async def warned() -> bool:
            return LACKS_READ in ((await _masto_health(gw))[0]["warning"] or "")

        await _until("the warning shown", warned)
        masto, ready = await _masto_health(gw)
        assert (masto["healthy"], ready["account_warnings"]) == (True, {"masto": masto["warning"]}), masto

        mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses", "write:statuses")

        async def taken_back() -> bool:
            return (await _masto_health(gw))[0]["warning"] is None

        await _until("the warning taken back", taken_back)
        masto, ready = await _masto_health(gw)
        assert (masto["healthy"], masto["problem"], ready["account_warnings"]) == (True, None, {}), masto
    assert mastodon.statuses(platforms.account) == []


async def test_an_account_is_asked_its_scopes_where_its_adapter_can_say_them_whatever_its_platform(
    platforms: Platforms, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An X adapter given a ``scope_check`` (as an adapter of any platform may have one) is
    asked in the round as Mastodon's is, and what it says shows on xacct in ``GET /v1/accounts``.
    (Before: the round asked Mastodon accounts alone, whatever the adapters could say.)"""
    gw = platforms.gateway
    said = "the token lacks the scope tweet.read; sign the account in again with tweet.read"

    async def scope_check(adapter: XAdapter) -> ScopeCheck:
        return ScopeCheck(warning=said)

    monkeypatch.setattr(XAdapter, "scope_check", scope_check, raising=False)
    assert await gw.app[PUBLISHER].check_scopes() == 2
    status, accounts = await gw.call("alice", "GET", "/v1/accounts")
    assert status == 200, accounts
    xacct = next(a for a in accounts["accounts"] if a["account"] == "xacct")
    assert (xacct["healthy"], xacct["warning"]) == (True, said), xacct


async def test_an_account_refused_for_write_statuses_shows_it_while_its_post_tries_again(
    platforms: Platforms,
) -> None:
    """Alice's post meets a token without write:statuses: the account is unhealthy, saying so.
    Five minutes on, the probe finds the token signing in, which says nothing of write:statuses:
    the post tries again, and while it is at the instance the account still shows the problem
    (no ``credential_works_again``); refused again, it waits as before, its budget untouched.
    Once the application has the scope, the next try goes out and the account is healthy.
    (Before: the probe marked the account healthy as it let the post try, and it showed
    healthy until the instance's refusal came back, at every try.)"""
    gw, mastodon = platforms.gateway, platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts", "read:statuses")
    post = await gw.submit("alice", "masto", "Waits for the scope")
    await gw.tick()
    masto, _ = await _masto_health(gw)
    assert masto["healthy"] is False and LACKS_WRITE in masto["problem"], masto

    creates = mastodon.faults.count("POST", "/api/v1/statuses")
    mastodon.faults.delay_next(1.0, method="POST", path="/api/v1/statuses")
    gw.clock.advance(timedelta(minutes=5))

    async def sent_again() -> bool:
        return mastodon.faults.count("POST", "/api/v1/statuses") > creates

    with capture_logs() as logs:
        trying = asyncio.ensure_future(gw.tick())
        await _until("the post sent again", sent_again)
        during, ready = await _masto_health(gw)
        await trying
    assert during["healthy"] is False and LACKS_WRITE in during["problem"], during
    assert ready["accounts_unhealthy"] == ["masto"]
    assert "credential_works_again" not in [e["event"] for e in logs], logs
    waiting = await gw.get("alice", post["id"])
    assert (waiting["state"], waiting["attempts"]) == ("scheduled", 0), waiting
    masto, _ = await _masto_health(gw)
    assert masto["healthy"] is False and LACKS_WRITE in masto["problem"], masto

    await _goes_out_once_given_write_statuses(platforms, post)


async def test_a_token_with_every_scope_is_healthy_and_the_scope_check_changes_nothing(platforms: Platforms) -> None:
    """With the scopes the README asks for, a round finds nothing to say, and the instance holds
    no status for it."""
    gw, mastodon = platforms.gateway, platforms.mastodon
    assert await gw.app[PUBLISHER].check_scopes() == 1
    masto, ready = await _masto_health(gw)
    assert (masto["healthy"], masto["problem"], masto["warning"]) == (True, None, None), masto
    assert (ready["accounts_unhealthy"], ready["account_problems"], ready["account_warnings"]) == ([], {}, {})
    assert mastodon.statuses(platforms.account) == []


async def test_what_the_scope_check_said_of_a_removed_account_goes_with_it(
    platforms: Platforms, policy_dir: Path,
) -> None:
    """A token without read:statuses gives masto a warning; its policy file removed, the next
    round takes it back: ``/readyz`` no longer names an account that is not there."""
    gw, mastodon = platforms.gateway, platforms.mastodon
    mastodon.scope_token(MASTODON_TOKEN, "read:accounts")
    await gw.app[PUBLISHER].check_scopes()
    _, ready = await _masto_health(gw)
    assert LACKS_READ in ready["account_warnings"]["masto"]
    (policy_dir / "masto.yaml").unlink()
    assert await gw.sync_policies() == ["masto"]
    assert await gw.app[PUBLISHER].check_scopes() == 0
    status, ready = await gw.call(None, "GET", "/readyz")
    assert status == 200, ready
    assert (ready["accounts_unhealthy"], ready["account_problems"], ready["account_warnings"]) == ([], {}, {})
