"""``GET /metrics``: each family moves by the right amount when its event happens, labels hold
route patterns and tiers (never an account, a person or a text), and BYLINE_METRICS=off turns
the page off."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client.parser import text_string_to_metric_families

from gateway.appkeys import CHECKPOINTS, DB, NOTIFIER
from gateway.clock import ManualClock, now_micros
from gateway.storage import gate_intents as intents_sql
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.mastodon import create_app as mastodon_app
from tests.test_notify_webhooks import Receiver, hooked_policies, new_secret, receiver

hook = pytest.fixture(receiver)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(gw: Gateway) -> Samples:
    """Every sample on the page, parsed by the Prometheus client's own text parser."""
    resp = await gw.client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out: Samples = {}
    for family in text_string_to_metric_families(await resp.text()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 for a series not there yet (a counter no event has moved)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How far one series moved between two scrapes."""
    return value(after, name, **labels) - value(before, name, **labels)


def events(tier: str, event: str, state: str) -> dict[str, str]:
    return {"tier": tier, "event": event, "state": state}


async def test_requests_by_route_pattern_and_status(gateway: Gateway) -> None:
    """A request counts under its route's pattern, method and status, and is timed; a path no
    route matches counts as 'unmatched', and no post id or path appears on the page."""
    post = await gateway.submit("alice", "direct", "Counted")
    before = await scrape(gateway)
    await gateway.get("alice", post["id"])
    status, _ = await gateway.call("alice", "GET", "/v1/posts/nope-123/nothing-here")
    assert status == 404
    after = await scrape(gateway)
    route = "/v1/posts/{id}"
    assert moved(before, after, "byline_http_requests_total", method="GET", route=route, status="200") == 1
    assert moved(before, after, "byline_http_request_duration_seconds_count", route=route) == 1
    assert moved(before, after, "byline_http_request_duration_seconds_sum", route=route) > 0
    assert moved(before, after, "byline_http_requests_total", method="GET", route="unmatched", status="404") == 1
    # The scrape before counts itself on the page after.
    assert moved(before, after, "byline_http_requests_total", method="GET", route="/metrics", status="200") == 1
    page = (await (await gateway.client.get("/metrics")).text())
    assert post["id"] not in page and "nothing-here" not in page and "Counted" not in page


async def test_posts_by_tier_and_by_change(gateway: Gateway) -> None:
    """Each submission counts under its account's tier and the state the policy put it in, a
    refusal as 'none'; each change after it under its log event and the state it left."""
    before = await scrape(gateway)
    direct = await gateway.submit("alice", "direct", "Straight out")
    delayed = await gateway.submit("bob", "delayed", "In ten minutes")
    held = await gateway.submit("alice", "cosigned", "Two of three, please")
    status, _ = await gateway.call("alice", "POST", "/v1/posts", {"account": "direct", "text": "an example-slur"})
    assert status == 422
    assert (direct["state"], delayed["state"], held["state"]) == ("scheduled", "scheduled", "held")
    for approver in ("bob", "carol"):
        status, body = await gateway.act(approver, held["id"], "approve")
        assert status == 200, body
    status, body = await gateway.act("bob", delayed["id"], "cancel")
    assert status == 200, body
    after = await scrape(gateway)
    name = "byline_post_events_total"
    assert moved(before, after, name, **events("direct", "post.submitted", "scheduled")) == 1
    assert moved(before, after, name, **events("delayed", "post.submitted", "scheduled")) == 1
    assert moved(before, after, name, **events("co-signed", "post.submitted", "held")) == 1
    assert moved(before, after, name, **events("direct", "post.refused", "none")) == 1
    assert moved(before, after, name, **events("co-signed", "post.approved", "held")) == 1
    assert moved(before, after, name, **events("co-signed", "post.approved", "scheduled")) == 1
    assert moved(before, after, name, **events("delayed", "post.cancelled", "cancelled")) == 1
    assert sum(v for (n, _), v in after.items() if n == name) - sum(
        v for (n, _), v in before.items() if n == name
    ) == 7
    page = await (await gateway.client.get("/metrics")).text()
    for private in ("alice", "bob", "carol", "cosigned", "Straight out", held["id"]):
        assert private not in page


async def test_due_queue_publish_and_expiry(gateway: Gateway, clock: ManualClock) -> None:
    """The due queue counts scheduled posts whose time has come (read from the database at the
    scrape); a publish counts its claim, its publication and its latency on its platform; a
    hold that runs out counts as expired."""
    await gateway.submit("bob", "delayed", "Soon")
    await gateway.submit("alice", "cosigned", "Nobody will approve this")
    first = await scrape(gateway)
    assert value(first, "byline_due_posts") == 0
    clock.advance(timedelta(minutes=11))
    before = await scrape(gateway)
    assert value(before, "byline_due_posts") == 1
    clock.advance(timedelta(hours=24))
    await gateway.tick()
    after = await scrape(gateway)
    assert value(after, "byline_due_posts") == 0
    name = "byline_post_events_total"
    assert moved(before, after, name, **events("delayed", "post.publishing", "publishing")) == 1
    assert moved(before, after, name, **events("delayed", "post.published", "published")) == 1
    assert moved(before, after, name, **events("co-signed", "post.expired", "expired")) == 1
    assert moved(before, after, "byline_publish_duration_seconds_count", platform="sandbox") == 1
    assert moved(before, after, "byline_publish_duration_seconds_sum", platform="sandbox") > 0


MASTODON_TOKEN = "mtok-metrics-5e1c7a"


@pytest.fixture
async def mastodon(
    db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FakeMastodon, Gateway]]:
    """A Mastodon stand-in on a real socket, and a gateway with a direct account on it."""
    fake = FakeMastodon()
    fake.add_account("brand", MASTODON_TOKEN)
    server = TestServer(mastodon_app(fake))
    await server.start_server()
    monkeypatch.setenv("METRICS_MASTODON_TOKEN", MASTODON_TOKEN)
    write_policy(policy_dir, "masto", f"""
        account: masto
        platform: mastodon
        instance: {str(server.make_url('')).rstrip('/')}
        credentials: env:METRICS_MASTODON_TOKEN
        tier: direct
        owner: alice
        retry_attempts: 3
    """)
    try:
        async with started_gateway(db_url, policy_dir, clock) as gw:
            yield fake, gw
    finally:
        await server.close()


async def test_retries_by_platform(mastodon: tuple[FakeMastodon, Gateway]) -> None:
    """A 503 ridden out in place counts one inline retry; an outage that outlasts the quick
    tries counts their inline retries and a deferral, and the post's deferral under its tier."""
    fake, gw = mastodon
    before = await scrape(gw)
    fake.faults.fail_next(1, 503, method="POST", path="/api/v1/statuses")
    out = await gw.submit("alice", "masto", "Through a blip")
    await gw.tick()
    assert (await gw.get("alice", out["id"]))["state"] == "published"
    middle = await scrape(gw)
    assert moved(before, middle, "byline_publish_retries_total", platform="mastodon", kind="inline") == 1
    assert moved(before, middle, "byline_publish_duration_seconds_count", platform="mastodon") == 1
    fake.faults.fail_next(3, 503, method="POST", path="/api/v1/statuses")
    later = await gw.submit("alice", "masto", "Through an outage")
    await gw.tick()
    assert (await gw.get("alice", later["id"]))["state"] == "scheduled"
    after = await scrape(gw)
    assert moved(middle, after, "byline_publish_retries_total", platform="mastodon", kind="inline") == 2
    assert moved(middle, after, "byline_publish_retries_total", platform="mastodon", kind="deferred") == 1
    assert moved(middle, after, "byline_post_events_total", **events("direct", "post.deferred", "scheduled")) == 1
    assert moved(middle, after, "byline_publish_duration_seconds_count", platform="mastodon") == 0


async def test_policy_reload_errors(gateway: Gateway, policy_dir: Path) -> None:
    """A policy file broken at a reload counts one reload error and one file refused now; fixed
    and reloaded, nothing is refused and the count stays; a post the change holds again counts
    as decided again."""
    delayed = await gateway.submit("bob", "delayed", "Before the change")
    good = (policy_dir / "delayed.yaml").read_text()
    before = await scrape(gateway)
    assert value(before, "byline_policy_files_refused") == 0
    (policy_dir / "delayed.yaml").write_text(good.replace("tier: delayed", "tier: [not, a, tier]"))
    await gateway.sync_policies()
    broken = await scrape(gateway)
    assert moved(before, broken, "byline_policy_reload_errors_total") == 1
    assert value(broken, "byline_policy_files_refused") == 1
    cosigned = good.replace("tier: delayed", "tier: co-signed") + "approvals:\n  required: 1\n  from: [alice]\n"
    (policy_dir / "delayed.yaml").write_text(cosigned)
    await gateway.sync_policies()
    fixed = await scrape(gateway)
    assert value(fixed, "byline_policy_files_refused") == 0
    assert moved(broken, fixed, "byline_policy_reload_errors_total") == 0
    assert (await gateway.get("bob", delayed["id"]))["state"] == "held"
    assert moved(before, fixed, "byline_post_events_total", **events("co-signed", "post.redecided", "held")) == 1


async def test_log_size_and_checkpoint_age(gateway: Gateway, clock: ManualClock) -> None:
    """The log's size is read at the scrape; the seconds since the last checkpoint grow with
    the clock and drop to zero when one is signed, and it then covers the whole log."""
    first = await scrape(gateway)
    assert value(first, "byline_log_entries") == await gateway.log_size()
    await gateway.submit("alice", "direct", "One more entry")
    clock.advance(timedelta(seconds=90))
    before = await scrape(gateway)
    assert value(before, "byline_log_entries") == value(first, "byline_log_entries") + 1
    assert value(before, "byline_log_checkpoint_age_seconds") == 90
    assert value(before, "byline_log_checkpoint_entries") < value(before, "byline_log_entries")
    await gateway.app[CHECKPOINTS].sign_now()
    after = await scrape(gateway)
    assert value(after, "byline_log_checkpoint_age_seconds") == 0
    assert value(after, "byline_log_checkpoint_entries") == value(after, "byline_log_entries")


async def test_gate_changes_left_count_only_those_past_their_requests_lease(
    gateway: Gateway, clock: ManualClock,
) -> None:
    """A gate change written down counts as left for the reconcilers only once its request's
    lease has run out (not while its request is still at it), and stays counted while a
    reconciler holds it, until it is dropped. (The counting of a real change left on a PDS:
    ``tests/clients/test_atproto_gate_intents.py``.)"""
    now = now_micros(clock)
    intent = intents_sql.GateIntent(
        id="a", account="direct", post_id="1", remote_id="at://did:plc:x/app.bsky.feed.post/1",
        collection="app.bsky.feed.threadgate", held=None, written={"allow": []}, actor="alice",
        lease_until=now + 120_000_000, created_at=now)
    async with gateway.app[DB].write() as txn:
        await intents_sql.insert(txn, [intent])
    assert value(await scrape(gateway), "byline_gate_changes_left") == 0
    clock.advance(timedelta(seconds=120))
    assert value(await scrape(gateway), "byline_gate_changes_left") == 1
    later = now_micros(clock)
    async with gateway.app[DB].write() as txn:
        assert await intents_sql.claim(txn, "a", token="t", now=later, until=later + 5_000_000)
    assert value(await scrape(gateway), "byline_gate_changes_left") == 1
    async with gateway.app[DB].write() as txn:
        assert await intents_sql.drop(txn, "a", token="t")
    assert value(await scrape(gateway), "byline_gate_changes_left") == 0


async def test_webhook_deliveries_by_outcome(
    db_url: str, tmp_path: Path, clock: ManualClock, hook: Receiver
) -> None:
    """A webhook the receiver refuses counts as a retry, and the call that gets through as
    delivered, both on the webhook channel."""
    policy_dir = hooked_policies(tmp_path, hook.url, new_secret(), {"cosigned": ["post.held"]})
    hook.plan = [500]
    async with started_gateway(db_url, policy_dir, clock, notify_interval_seconds=3600,
                               notify_timeout_seconds=1.0) as gw:
        before = await scrape(gw)
        await gw.submit("alice", "cosigned", "Look at this first")
        await gw.app[NOTIFIER].run_once()
        middle = await scrape(gw)
        clock.advance(timedelta(minutes=1))
        await gw.app[NOTIFIER].run_once()
        after = await scrape(gw)
    assert moved(before, middle, "byline_notifications_total", channel="webhook", outcome="retry") == 1
    assert moved(before, middle, "byline_notifications_total", channel="webhook", outcome="delivered") == 0
    assert moved(middle, after, "byline_notifications_total", channel="webhook", outcome="delivered") == 1
    assert len(hook.calls) == 2


async def test_signin_failures(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """A wrong app password counts as a failed sign-in; the attempt after the allowance is used
    up counts as throttled (429)."""
    async with started_gateway(db_url, policy_dir, clock, signin_attempts="1/minute") as gw:
        before = await scrape(gw)
        path = "/xrpc/com.atproto.server.createSession"
        status, _ = await gw.call(None, "POST", path, {"identifier": "direct", "password": "not-it"})
        assert status == 401
        status, _ = await gw.call(None, "POST", path, {"identifier": "direct", "password": "not-it"})
        assert status == 429
        after = await scrape(gw)
    assert moved(before, after, "byline_signin_failures_total", outcome="wrong") == 1
    assert moved(before, after, "byline_signin_failures_total", outcome="throttled") == 1


async def test_each_gateway_counts_its_own(gateway: Gateway, tmp_path: Path, policy_dir: Path,
                                           clock: ManualClock) -> None:
    """Two gateways in one process (as replicas in tests) each count only what they did."""
    await gateway.submit("alice", "direct", "Only here")
    async with started_gateway(f"sqlite:///{tmp_path / 'other.db'}", policy_dir, clock,
                               log_key_file=tmp_path / "other.key") as other:
        theirs = await scrape(other)
    ours = await scrape(gateway)
    submitted = events("direct", "post.submitted", "scheduled")
    assert (value(ours, "byline_post_events_total", **submitted),
            value(theirs, "byline_post_events_total", **submitted)) == (1, 0)


async def test_metrics_off(db_url: str, policy_dir: Path, clock: ManualClock) -> None:
    """BYLINE_METRICS=off: no page (404), and the gateway works as before."""
    async with started_gateway(db_url, policy_dir, clock, metrics=False) as gw:
        resp = await gw.client.get("/metrics")
        assert resp.status == 404
        await gw.submit("alice", "direct", "Still works")


@pytest.mark.parametrize("replier", ["alice", "carol"])
async def test_replies_cancelled_with_a_hold_a_policy_change_expires(
    gateway: Gateway, clock: ManualClock, policy_dir: Path, replier: str
) -> None:
    """A policy change that takes carol off the writers while her held post is past its
    deadline expires it, and the reply waiting for it (alice's, or carol's own, held a day
    from an hour later) is cancelled with it: each counts, the expiry and the cancellation,
    as the publisher's sweep counts them."""
    parent = await gateway.submit("carol", "cosigned", "Launch day is moved to Friday")
    clock.advance(timedelta(hours=1))
    reply = await gateway.submit(replier, "cosigned", "Details to follow", reply_to_post=parent["id"])
    assert reply["state"] == "held", reply
    clock.advance(timedelta(hours=23, minutes=1))  # past the parent's deadline, not the reply's
    before = await scrape(gateway)
    policy = (policy_dir / "cosigned.yaml").read_text()
    write_policy(policy_dir, "cosigned", policy.replace("writers: [alice, carol]", "writers: [alice]"))
    assert await gateway.sync_policies() == ["cosigned"]
    after = await scrape(gateway)
    assert [(await gateway.get("alice", p["id"]))["state"] for p in (parent, reply)] == ["expired", "cancelled"]
    name = "byline_post_events_total"
    assert moved(before, after, name, **events("co-signed", "post.expired", "expired")) == 1
    assert moved(before, after, name, **events("co-signed", "post.cancelled", "cancelled")) == 1
    assert moved(before, after, name, **events("co-signed", "post.redecided", "held")) == 0
