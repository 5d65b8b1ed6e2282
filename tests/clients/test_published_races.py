"""Edits and deletes of one published post racing each other, on one gateway and across
replicas, driven with Mastodon.py: they reach the platform one at a time, each recorded before
the next is sent, so that Byline's record and its public log say what the platform shows. A
change whose gateway stopped before recording it is settled by the publisher of any gateway
once its hold runs out (the real crash: ``tests/test_crash_published.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from mastodon import Mastodon, MastodonAPIError
from structlog.testing import capture_logs

from adapters.base import AdapterError
from adapters.mastodon import MastodonAdapter
from gateway.appkeys import DB, REGISTRY
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.test_media_update import PNG
from tests.clients.world import UPSTREAM_TOKEN, World, write_masto_policy
from tests.conftest import Gateway, started_gateway, write_policy
from tests.fakes.mastodon import FakeMastodon, Status
from tests.fakes.mastodon import create_app as mastodon_app
from tests.test_metrics import scrape, value

WAIT = 10.0
"""Seconds a test waits for a request to reach the platform before it fails."""


@dataclass
class Gate:
    """Holds the first call of an adapter method until the test opens it: before the platform
    is asked, or after it has taken the change and before the gateway records it."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    calls: int = 0


_CALLED: dict[str, str] = {"delete": "delete_published"}
"""The ``MastodonAdapter`` method a change calls, where it is not the change's name: a deletion
is told where the post went out."""


def hold_first(monkeypatch: pytest.MonkeyPatch, name: str, *, taken: bool) -> Gate:
    """Hold the first call of ``MastodonAdapter.<name>`` (``taken``: after the platform took it)."""
    gate = Gate()
    name = _CALLED.get(name, name)
    original: Callable[..., Awaitable[Any]] = getattr(MastodonAdapter, name)

    async def held(adapter: MastodonAdapter, *args: Any, **kwargs: Any) -> Any:
        gate.calls += 1
        first = gate.calls == 1
        if first and not taken:
            gate.reached.set()
            await gate.opened.wait()
        result = await original(adapter, *args, **kwargs)
        if first and taken:
            gate.reached.set()
            await gate.opened.wait()
        return result

    monkeypatch.setattr(MastodonAdapter, name, held)
    return gate


async def outcome(world: World, call: Callable[..., Any], *args: Any) -> int:
    """The HTTP status a Mastodon.py call was answered with."""
    try:
        await world.run(call, *args)
    except MastodonAPIError as exc:
        return int(exc.args[1])
    return 200


async def published(world: World, text: str) -> tuple[Mastodon, str]:
    """Alice's post on the Mastodon account, out on the platform; her client and its id."""
    api = await world.client("alice", "masto")
    status = await world.run(api.status_post, text)
    await world.gateway.tick()
    return api, str(status.id)


async def logged(gw: Gateway, post_id: str) -> list[str]:
    """The types of the post's log entries, in order."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE post_id = ? ORDER BY idx", post_id)
    return [json.loads(bytes(r["entry"]))["type"] for r in rows]


async def recorded_state(gw: Gateway, post_id: str) -> str:
    """The state Byline's record gives the post."""
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state FROM posts WHERE id = ?", post_id)
    assert row is not None
    return str(row["state"])


def client_of(gw: Gateway, token: str) -> Mastodon:
    """A Mastodon.py client of ``gw``."""
    return Mastodon(access_token=token, api_base_url=str(gw.client.make_url("")).rstrip("/"))


async def test_a_second_edit_while_the_first_is_at_the_platform_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Edit A is on its way to Mastodon when edit B of the same post arrives. Before: B went
    out and was recorded, then A reached the platform, whose record clashed with B's version:
    Mastodon showed A while Byline's record and log said B. Now B hears 409 and reaches
    nothing; A is shown, recorded and logged."""
    api, post_id = await published(world, "Launch day")
    gate = hold_first(monkeypatch, "edit", taken=False)
    first = asyncio.ensure_future(outcome(world, api.status_update, post_id, "Launch day, edit A"))
    await asyncio.wait_for(gate.reached.wait(), WAIT)
    second = await outcome(world, api.status_update, post_id, "Launch day, edit B")
    gate.opened.set()
    answered = await first
    [shown] = world.upstream.statuses(world.upstream_account)
    recorded = await world.run(api.status_source, post_id)
    assert shown.text == recorded.text, "the platform and Byline's record disagree"
    assert (answered, second, shown.text, gate.calls) == (200, 409, "Launch day, edit A", 1)
    history = await world.run(api.status_history, post_id)
    assert [h.content for h in history] == ["<p>Launch day</p>", "<p>Launch day, edit A</p>"]
    assert (await logged(world.gateway, post_id)).count("post.revised") == 1
    edited = await world.run(api.status_update, post_id, "Launch day, edit C")  # the post is free again
    assert edited.content == "<p>Launch day, edit C</p>"
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day, edit C"]
    await verified_by_cli(world.gateway)


async def test_edits_through_two_replicas_reach_the_platform_one_at_a_time(
    world: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same race with A sent through one gateway and B through another on the same
    database: the hold is the database's, so B is refused there too and the record says A."""
    api, post_id = await published(world, "Launch day")
    gate = hold_first(monkeypatch, "edit", taken=False)
    async with started_gateway(db_url, policy_dir, clock) as other:
        there = client_of(other, await world.token("alice", "masto"))
        first = asyncio.ensure_future(outcome(world, api.status_update, post_id, "Launch day, edit A"))
        await asyncio.wait_for(gate.reached.wait(), WAIT)
        second = await outcome(world, there.status_update, post_id, "Launch day, edit B")
        gate.opened.set()
        answered = await first
        [shown] = world.upstream.statuses(world.upstream_account)
        recorded = await world.run(there.status_source, post_id)
        assert shown.text == recorded.text, "the platform and Byline's record disagree"
        assert (answered, second, shown.text, gate.calls) == (200, 409, "Launch day, edit A", 1)
        assert (await logged(world.gateway, post_id)).count("post.revised") == 1
    await verified_by_cli(world.gateway)


async def test_a_delete_while_an_edit_is_being_recorded_waits_for_it(
    world: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon has taken an edit and the gateway is about to record it when a delete arrives
    through another replica. Before: the delete went out and was recorded, and then the edit's
    record turned the deleted post back into a published one, in the record and in the log
    (which no longer verified), while the platform had deleted it. Now the delete hears 409
    until the edit is recorded, and then goes through."""
    api, post_id = await published(world, "Launch day")
    gate = hold_first(monkeypatch, "edit", taken=True)
    async with started_gateway(db_url, policy_dir, clock) as other:
        there = client_of(other, await world.token("alice", "masto"))
        editing = asyncio.ensure_future(outcome(world, api.status_update, post_id, "Launch day, edit A"))
        await asyncio.wait_for(gate.reached.wait(), WAIT)
        deleting = await outcome(world, there.status_delete, post_id)
        gate.opened.set()
        edited = await editing
        shown = [s.text for s in world.upstream.statuses(world.upstream_account)]
        assert (shown, await recorded_state(world.gateway, post_id)) == (["Launch day, edit A"], "published")
        assert (deleting, edited) == (409, 200)
        assert await outcome(world, there.status_delete, post_id) == 200
    assert world.upstream.statuses(world.upstream_account) == []
    assert await logged(world.gateway, post_id) == [
        "post.submitted", "post.publishing", "post.published", "post.revising", "post.revised", "post.deleted"]
    await verified_by_cli(world.gateway)


async def test_an_edit_while_a_delete_is_at_the_platform_is_refused(
    world: World, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A delete is on its way to Mastodon when an edit of the post arrives: the edit hears 409
    and nothing of it reaches the platform; the post ends deleted, there and here."""
    api, post_id = await published(world, "Launch day")
    gate = hold_first(monkeypatch, "delete", taken=False)
    asked = len(world.upstream.faults.requests)
    deleting = asyncio.ensure_future(outcome(world, api.status_delete, post_id))
    await asyncio.wait_for(gate.reached.wait(), WAIT)
    editing = await outcome(world, api.status_update, post_id, "Launch day, edit A")
    gate.opened.set()
    assert (await deleting, editing) == (200, 409)
    assert [r.method for r in world.upstream.faults.requests[asked:]] == ["DELETE"]
    assert world.upstream.statuses(world.upstream_account) == []
    assert (await logged(world.gateway, post_id))[-1] == "post.deleted"
    await verified_by_cli(world.gateway)


async def test_an_edit_left_by_a_gateway_that_stopped_is_settled_by_another(
    world: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway stops answering once Mastodon has taken edit A, before recording it. Before:
    once its hold ran out, nothing brought the record in line until a later edit B did, and
    without one Mastodon kept A, which the log never held. Now the log held A before Mastodon
    was asked (``post.revising``); the post takes no other edit until A is settled; once the
    hold runs out, the other replica's publisher sends A again and records it as alice's
    (``recovered``). B then goes out as usual, and A's gateway, waking up, records nothing."""
    api, post_id = await published(world, "Launch day")
    gate = hold_first(monkeypatch, "edit", taken=True)
    async with started_gateway(db_url, policy_dir, clock) as other:
        there = client_of(other, await world.token("alice", "masto"))
        stalled = asyncio.ensure_future(outcome(world, api.status_update, post_id, "Launch day, edit A"))
        await asyncio.wait_for(gate.reached.wait(), WAIT)
        assert await logged(world.gateway, post_id) == [
            "post.submitted", "post.publishing", "post.published", "post.revising"]
        assert await outcome(world, there.status_update, post_id, "Launch day, edit B") == 409
        clock.advance(timedelta(minutes=2, seconds=1))  # past the publish lease, 120 s
        assert await outcome(world, there.status_update, post_id, "Launch day, edit B") == 409, "A first"
        await other.tick()
        [shown] = world.upstream.statuses(world.upstream_account)
        assert shown.text == (await world.run(there.status_source, post_id)).text == "Launch day, edit A"
        assert gate.calls == 2, "A sent once more"
        assert await outcome(world, there.status_update, post_id, "Launch day, edit B") == 200
        gate.opened.set()
        assert await stalled == 409
        [shown] = world.upstream.statuses(world.upstream_account)
        assert shown.text == (await world.run(there.status_source, post_id)).text == "Launch day, edit B"
    assert await logged(world.gateway, post_id) == [
        "post.submitted", "post.publishing", "post.published", "post.revising", "post.revised",
        "post.revising", "post.revised"]
    assert [e["data"].get("recovered") for e in await entries(world.gateway, post_id, "post.revised")] == [True, None]
    await verified_by_cli(world.gateway)


async def warned_over_hours(gw: Gateway, clock: ManualClock) -> tuple[list[tuple[Any, ...]], list[dict[str, Any]]]:
    """The publisher's rounds once a kept change's hold has run out, then two hours on, and two
    more: the warnings said (event, account, post, change), and every log line."""
    with capture_logs() as logs:
        for wait in (timedelta(minutes=2, seconds=1), timedelta(hours=2), timedelta(hours=2)):
            clock.advance(wait)
            await gw.tick()
    said = [(e["event"], e.get("account"), e.get("post_id"), e.get("change")) for e in logs
            if e["log_level"] == "warning"]
    return said, logs


def unanswered(monkeypatch: pytest.MonkeyPatch, name: str) -> Callable[[], None]:
    """``MastodonAdapter.<name>`` makes its change on Mastodon and loses the answer, until the
    function returned is called."""
    name = _CALLED.get(name, name)
    original: Callable[..., Awaitable[Any]] = getattr(MastodonAdapter, name)

    async def lost(adapter: MastodonAdapter, *args: Any, **kwargs: Any) -> Any:
        await original(adapter, *args, **kwargs)
        raise AdapterError(f"{name}: no answer within 30 s", retryable=True)

    monkeypatch.setattr(MastodonAdapter, name, lost)
    return lambda: monkeypatch.setattr(MastodonAdapter, name, original)


def moved_to_the_sandbox(policy_dir: Path) -> None:
    """``masto``'s policy file, rewritten to put the account on the sandbox (off Mastodon)."""
    write_policy(policy_dir, "masto", """
        account: masto
        platform: sandbox
        handle: "@brand"
        tier: direct
        owner: alice
        writers: [alice, carol]
    """)


OTHER_TOKEN = "mtok-other-instance-9a4c2e71"
"""The account's token on the second Mastodon server."""


@dataclass
class OtherServer:
    """A second Mastodon server ``masto``'s policy file was moved to, and what is on it."""

    upstream: FakeMastodon
    url: str
    strangers: Status
    """Someone else's status there, under the id the post has on the first server."""

    def changes(self) -> int:
        """How many edits and deletions of statuses it was asked for."""
        return sum(r.method in ("PUT", "DELETE") and r.path.startswith("/api/v1/statuses/")
                   for r in self.upstream.faults.requests)


@contextlib.asynccontextmanager
async def moved_to_another_server(
    policy_dir: Path, monkeypatch: pytest.MonkeyPatch, *, remote_id: str,
) -> AsyncIterator[OtherServer]:
    """``masto``'s policy file, rewritten to put the account on another Mastodon server (its
    instance and token there), where a stranger's status has the id ``remote_id``, the id of
    the post on the first server."""
    upstream = FakeMastodon(host="other.example")
    stranger = upstream.add_account("stranger", "mtok-stranger-0c3f")
    upstream.add_account("brand", OTHER_TOKEN)
    strangers = upstream.seed_status(stranger, "A stranger's words", created_at=upstream.clock.now())
    assert strangers.id == remote_id, "the two stand-ins number their statuses alike"
    server = TestServer(mastodon_app(upstream))
    await server.start_server()
    try:
        url = str(server.make_url("")).rstrip("/")
        monkeypatch.setenv("BRAND_OTHER_TOKEN", OTHER_TOKEN)
        write_masto_policy(policy_dir, url, handle="@brand@other.example", credentials="env:BRAND_OTHER_TOKEN")
        yield OtherServer(upstream=upstream, url=url, strangers=strangers)
    finally:
        await server.close()


async def refused(world: World, api: Mastodon, post_id: str, change: str) -> str:
    """Alice's app deletes (``change``: or edits) the post and is refused, 409: what it was told."""
    if change == "delete":
        call: Callable[..., Any] = api.status_delete
        args: tuple[Any, ...] = (post_id,)
    else:
        call, args = api.status_update, (post_id, "Launch day, edited")
    with pytest.raises(MastodonAPIError) as answer:
        await world.run(call, *args)
    assert answer.value.args[1] == 409, answer.value
    return str(answer.value)


async def left_published(gw: Gateway, post_id: str) -> None:
    """The record still says the post is published as it went out, no change kept nor logged,
    and the log verifies."""
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state, version, held_change FROM posts WHERE id = ?", post_id)
    assert row is not None and (row["state"], row["version"], row["held_change"]) == ("published", 1, None)
    assert (await logged(gw, post_id))[-1] == "post.published"
    await verified_by_cli(gw)


async def entries(gw: Gateway, post_id: str, kind: str) -> list[dict[str, Any]]:
    """The post's log entries of one kind, in order."""
    async with gw.app[DB].read() as txn:
        rows = await txn.fetchall("SELECT entry FROM log_entries WHERE post_id = ? AND type = ? ORDER BY idx",
                                  post_id, kind)
    return [json.loads(bytes(r["entry"])) for r in rows]


def puts(world: World) -> int:
    """How many edits Mastodon was asked for."""
    return sum(r.method == "PUT" for r in world.upstream.faults.requests)


async def test_an_edit_the_platform_did_not_answer_is_settled_once_its_lease_runs_out(
    world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon takes edit A and its answer is lost: Byline cannot know whether A is out, so it
    keeps the post held for A, lest edit B overtake it on its way. Once the lease runs out the
    publisher settles A (sent again, recorded), and B goes out after it."""
    api, post_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "edit")
    assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 503
    answered()
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day, edit A"]
    assert await outcome(world, api.status_update, post_id, "Launch day, edit B") == 409
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    assert (await world.run(api.status_source, post_id)).text == "Launch day, edit A"
    assert await outcome(world, api.status_update, post_id, "Launch day, edit B") == 200
    [shown] = world.upstream.statuses(world.upstream_account)
    assert shown.text == (await world.run(api.status_source, post_id)).text == "Launch day, edit B"
    assert (await logged(world.gateway, post_id)).count("post.revised") == 2
    await verified_by_cli(world.gateway)


async def test_an_unrecorded_edit_the_policy_no_longer_allows_is_undone(
    world: World, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon takes edit A, its answer is lost, and before the lease runs out the account
    turns co-signed: A would now need an approval. The publisher sends the words recorded
    before back to Mastodon and logs that the revision failed; record, log and Mastodon say
    "Launch day", and the log, which held A from before Mastodon had it, verifies."""
    api, post_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "edit")
    assert await outcome(world, api.status_update, post_id, "Launch day, and buy our coin") == 503
    answered()
    policy = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
    (policy_dir / "masto.yaml").write_text(
        policy.replace("tier: direct", "tier: co-signed\napprovals:\n  required: 1\n  from: [bob]\n"),
        encoding="utf-8")
    await world.gateway.sync_policies()
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    [shown] = world.upstream.statuses(world.upstream_account)
    assert shown.text == (await world.run(api.status_source, post_id)).text == "Launch day"
    assert (await logged(world.gateway, post_id))[-2:] == ["post.revising", "post.revision_failed"]
    [failed] = await entries(world.gateway, post_id, "post.revision_failed")
    assert (failed["actor"], failed["data"]["version"]) == ("system", 2)
    assert "words recorded before were sent back" in failed["data"]["error"]
    await verified_by_cli(world.gateway)


async def test_an_unrecorded_alt_text_edit_the_policy_no_longer_allows_is_undone_with_its_alt_text(
    world: World, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As above, for an edit that gave the toot's picture new alt text as well: the publisher
    sends back the words and the alt text recorded before, so Mastodon shows "A cat" again, as
    the record does, and the log verifies."""
    api = await world.client("alice", "masto")
    media = await world.run(api.media_post, PNG, mime_type="image/png", description="A cat")
    post_id = str((await world.run(api.status_post, "Launch day", media_ids=[media])).id)
    await world.gateway.tick()
    answered = unanswered(monkeypatch, "edit")
    change = api.generate_media_edit_attributes(media, description="A cat, and buy our coin")
    assert await outcome(world, functools.partial(api.status_update, media_attributes=[change]), post_id,
                         "Launch day") == 503
    answered()
    [shown] = world.upstream.statuses(world.upstream_account)
    assert [world.upstream.media[m].description for m in shown.media_ids] == ["A cat, and buy our coin"]
    policy = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
    (policy_dir / "masto.yaml").write_text(
        policy.replace("tier: direct", "tier: co-signed\napprovals:\n  required: 1\n  from: [bob]\n"),
        encoding="utf-8")
    await world.gateway.sync_policies()
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    [shown] = world.upstream.statuses(world.upstream_account)
    assert [world.upstream.media[m].description for m in shown.media_ids] == ["A cat"]
    assert [m.description for m in (await world.run(api.status, post_id)).media_attachments] == ["A cat"]
    assert len(shown.media_edits) == 2
    assert (await logged(world.gateway, post_id))[-2:] == ["post.revising", "post.revision_failed"]
    await verified_by_cli(world.gateway)


async def test_an_unrecorded_edit_waits_out_a_platform_that_is_down(
    world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The publisher settles edit A while Mastodon fails (503): nothing is recorded and the post
    stays held for A, for another lease; the next try, Mastodon back, records A. Nothing lost,
    and no other edit slips in between."""
    api, post_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "edit")
    assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 503
    answered()
    clock.advance(timedelta(minutes=2, seconds=1))
    world.upstream.faults.fail_next(method="PUT", path="/api/v1/statuses/")
    await world.gateway.tick()
    assert (await world.run(api.status_source, post_id)).text == "Launch day"
    assert await outcome(world, api.status_update, post_id, "Launch day, edit B") == 409
    await world.gateway.tick()
    assert (await world.run(api.status_source, post_id)).text == "Launch day", "held until the lease runs out"
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    [shown] = world.upstream.statuses(world.upstream_account)
    assert shown.text == (await world.run(api.status_source, post_id)).text == "Launch day, edit A"
    assert (await logged(world.gateway, post_id))[-2:] == ["post.revising", "post.revised"]
    await verified_by_cli(world.gateway)


async def test_an_unrecorded_delete_is_settled(
    world: World, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mastodon deletes the post and the answer is lost: the record still says published, and
    no edit may go out meanwhile (it would find nothing there). Once the lease runs out the
    publisher deletes it again (Mastodon's 404 counts as deleted) and records it as alice's,
    naming the policy she asked under."""
    api, post_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "delete")
    assert await outcome(world, api.status_delete, post_id) == 503
    answered()
    assert world.upstream.statuses(world.upstream_account) == []
    assert await recorded_state(world.gateway, post_id) == "published"
    assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 409
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    assert await recorded_state(world.gateway, post_id) == "deleted"
    [deleted] = await entries(world.gateway, post_id, "post.deleted")
    in_force = world.gateway.app[REGISTRY].get("masto")
    assert in_force is not None
    assert (deleted["actor"], deleted["data"]["recovered"], deleted["data"]["policy_sha256"]) == (
        "alice", True, in_force.sha256)
    assert puts(world) == 0
    await verified_by_cli(world.gateway)


def rewrite_policy(policy_dir: Path, old: str, new: str) -> None:
    """Change the masto policy file as its admin would."""
    policy = (policy_dir / "masto.yaml").read_text(encoding="utf-8")
    assert old in policy
    (policy_dir / "masto.yaml").write_text(policy.replace(old, new), encoding="utf-8")


@pytest.mark.parametrize("change", ["bob joins the writers", "carol leaves them"])
async def test_an_unrecorded_delete_names_the_policy_that_judges_it(
    world: World, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, change: str,
) -> None:
    """Carol's delete of her toot is made on Mastodon and not recorded, and the account's policy
    changes. Settled ten minutes later (the platform down meanwhile), the deletion names the
    policy in force, under which carol may still delete it, so the verifier does not take it
    for one under a policy long gone. Settled within the grace after a change that took her
    role away, it names the policy she asked under, which judges it."""
    api = await world.client("carol", "masto")
    post_id = str((await world.run(api.status_post, "Launch day")).id)
    await world.gateway.tick()
    asked_under = world.gateway.app[REGISTRY].get("masto")
    answered = unanswered(monkeypatch, "delete")
    assert await outcome(world, api.status_delete, post_id) == 503
    answered()
    if change == "bob joins the writers":
        rewrite_policy(policy_dir, "writers: [alice, carol]", "writers: [alice, carol, bob]")
    else:
        rewrite_policy(policy_dir, "writers: [alice, carol]", "writers: [alice]")
    await world.gateway.sync_policies()
    in_force = world.gateway.app[REGISTRY].get("masto")
    assert asked_under is not None and in_force is not None and in_force.sha256 != asked_under.sha256
    if change == "bob joins the writers":
        world.upstream.faults.fail_next(4, method="DELETE", path="/api/v1/statuses/")
        for _ in range(4):  # ten minutes of a platform down
            clock.advance(timedelta(minutes=2, seconds=31))
            await world.gateway.tick()
            assert await recorded_state(world.gateway, post_id) == "published"
    clock.advance(timedelta(minutes=2, seconds=1))
    await world.gateway.tick()
    assert await recorded_state(world.gateway, post_id) == "deleted"
    [deleted] = await entries(world.gateway, post_id, "post.deleted")
    named = in_force if change == "bob joins the writers" else asked_under
    assert (deleted["actor"], deleted["data"]["policy_sha256"]) == ("carol", named.sha256)
    await verified_by_cli(world.gateway)


async def test_two_gateways_settle_an_unrecorded_edit_once(
    world: World, db_url: str, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both replicas' publishers find edit A's hold run out at the same moment: one takes it
    over and settles it, the other leaves it. A is sent once more, and recorded once."""
    api, post_id = await published(world, "Launch day")
    answered = unanswered(monkeypatch, "edit")
    assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 503
    answered()
    asked = puts(world)
    clock.advance(timedelta(minutes=2, seconds=1))
    async with started_gateway(db_url, policy_dir, clock) as other:
        await asyncio.gather(world.gateway.tick(), other.tick())
    assert puts(world) == asked + 1
    assert (await logged(world.gateway, post_id))[-2:] == ["post.revising", "post.revised"]
    assert (await world.run(api.status_source, post_id)).text == "Launch day, edit A"
    await verified_by_cli(world.gateway)


async def test_an_edit_the_platform_refused_lets_go_of_the_post(
    world: World,
) -> None:
    """Mastodon answers an edit with an error (503): the log says the revision sent failed,
    in Byline's words, and the next edit goes out at once."""
    api, post_id = await published(world, "Launch day")
    world.upstream.faults.fail_next(method="PUT", path="/api/v1/statuses/")
    assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 503
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day"]
    [failed] = await entries(world.gateway, post_id, "post.revision_failed")
    assert failed["data"]["error"] == "the platform did not take the edit (HTTP 503)"
    edited = await world.run(api.status_update, post_id, "Launch day, fixed")
    assert edited.content == "<p>Launch day, fixed</p>"
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day, fixed"]
    assert (await logged(world.gateway, post_id))[3:] == [
        "post.revising", "post.revision_failed", "post.revising", "post.revised"]
    await verified_by_cli(world.gateway)


@pytest.mark.parametrize("change", ["edit", "delete"])
@pytest.mark.parametrize("lost", ["policy", "platform", "server", "credential"])
async def test_an_unrecorded_change_its_account_cannot_settle_is_said_once_and_settled_once_it_can(
    world: World, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, lost: str, change: str,
) -> None:
    """Alice's edit (or deletion) is made on Mastodon and not recorded, and then ``masto``'s
    policy file is removed (or moved to the sandbox, or to another Mastodon server where a
    stranger's status has the post's id, or its token can no longer be read): its account
    cannot settle the change here. The publisher says so once (``post_change_stranded``, naming the
    account and the post, not the token), counts it in ``/metrics`` and ``/readyz`` (which stays
    200), sends nothing anywhere, and is quiet at later rounds hours apart; once the account is
    back, the very next round settles it (the edit sent again and recorded, the deletion
    recorded), though its wait had an hour to run, and the
    log verifies. (Before: nothing said or counted, the change looked at and left every tick;
    moved to another server, the change was sent there, to the stranger's status.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    [status] = world.upstream.statuses(world.upstream_account)
    answered = unanswered(monkeypatch, change)
    if change == "edit":
        assert await outcome(world, api.status_update, post_id, "Launch day, edit A") == 503
    else:
        assert await outcome(world, api.status_delete, post_id) == 503
    answered()
    policy = policy_dir / "masto.yaml"
    written = policy.read_text(encoding="utf-8")
    async with contextlib.AsyncExitStack() as moves:
        other = None
        if lost == "policy":
            policy.unlink()
        elif lost == "platform":
            moved_to_the_sandbox(policy_dir)
        elif lost == "server":
            other = await moves.enter_async_context(
                moved_to_another_server(policy_dir, monkeypatch, remote_id=status.id))
        else:
            monkeypatch.delenv("BRAND_MASTODON_TOKEN")
        await gw.sync_policies()
        sent = len(world.upstream.faults.requests)
        said, logs = await warned_over_hours(gw, clock)
        assert said == [("post_change_stranded", "masto", post_id, "revise" if change == "edit" else "delete")], logs
        assert UPSTREAM_TOKEN not in repr(logs) and OTHER_TOKEN not in repr(logs)
        assert (await recorded_state(gw, post_id), len(world.upstream.faults.requests)) == ("published", sent)
        if other is not None:
            assert other.changes() == 0
            assert (other.strangers.text, other.strangers.deleted) == ("A stranger's words", False)
        assert value(await scrape(gw), "byline_post_changes_stranded") == 1
        ready = await gw.client.get("/readyz")
        assert (ready.status, (await ready.json())["post_changes_stranded"]) == (200, {"masto": 1})

        if lost == "credential":
            monkeypatch.setenv("BRAND_MASTODON_TOKEN", UPSTREAM_TOKEN)
        else:
            policy.write_text(written, encoding="utf-8")
            await gw.sync_policies()
        await gw.tick()
    if change == "edit":
        [revised] = await entries(gw, post_id, "post.revised")
        assert (revised["actor"], revised["data"]["recovered"]) == ("alice", True)
        assert (await world.run(api.status_source, post_id)).text == "Launch day, edit A"
    else:
        assert await recorded_state(gw, post_id) == "deleted"
    assert value(await scrape(gw), "byline_post_changes_stranded") == 0
    assert (await (await gw.client.get("/readyz")).json())["post_changes_stranded"] == {}
    await verified_by_cli(gw)


@pytest.mark.parametrize("change", ["delete", "edit"])
async def test_a_post_on_a_platform_its_account_has_left_is_not_changed_on_the_new_one(
    world: World, policy_dir: Path, change: str,
) -> None:
    """Alice's post went out on Mastodon; then ``masto``'s policy file moves the account to the
    sandbox. Her app's delete or edit of that post is refused, 409, saying where the post is:
    Byline holds no credential for Mastodon now, and the post's id would name another post, or
    none, on the sandbox. Nothing is sent anywhere, the record still says published, and the log
    verifies. (Before: the sandbox was asked to delete it, said it was gone, and the record and
    the log said deleted while the post stood on Mastodon; an edit was refused only because the
    sandbox edits nothing, 422.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    moved_to_the_sandbox(policy_dir)
    await gw.sync_policies()
    sent = len(world.upstream.faults.requests)
    said = await refused(world, api, post_id, change)
    assert "went out on mastodon" in said and "now on sandbox" in said
    assert len(world.upstream.faults.requests) == sent
    await left_published(gw, post_id)


@pytest.mark.parametrize("change", ["delete", "edit"])
async def test_a_post_on_a_mastodon_server_its_account_has_left_is_not_changed_on_the_new_one(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch, change: str,
) -> None:
    """Alice's post went out on one Mastodon server; then ``masto``'s policy file moves the
    account to another Mastodon server, where a stranger's status has the id the post has on
    the first. Her app's delete or edit of the post is refused, 409, saying which server the
    post is on: the new server is asked nothing, the stranger's status stands as it was, the
    post stands on the first server, the record still says published, and the log verifies.
    (Before: the new server was asked to delete or edit its status of that id, answered 404,
    and the deletion was recorded and logged while the post stood on the first server.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    [status] = world.upstream.statuses(world.upstream_account)
    async with moved_to_another_server(policy_dir, monkeypatch, remote_id=status.id) as other:
        await gw.sync_policies()
        said = await refused(world, api, post_id, change)
        assert f"went out on mastodon at {world.upstream_url}" in said and f"now on mastodon at {other.url}" in said
        assert other.changes() == 0
        assert (other.strangers.text, other.strangers.deleted) == ("A stranger's words", False)
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day"]
    await left_published(gw, post_id)


async def test_a_move_between_mastodon_servers_is_told_apart_when_the_old_policy_no_longer_validates(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's post went out on one Mastodon server; then the gateway's settings let credentials
    come only from variables named ``BRAND_OTHER_…`` (``BYLINE_CREDENTIAL_ENV``), and ``masto``'s
    policy file moves the account to another server with such a token. The policy the post went
    out under (its token in ``BRAND_MASTODON_TOKEN``) no longer validates here, but its instance
    still says where the post is: her app's deletion is refused, 409, naming that server, and the
    new server is asked nothing. (Before: a policy that no longer validated told only its
    platform, and the deletion went to the new server under the old server's status id.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    [status] = world.upstream.statuses(world.upstream_account)
    registry = gw.app[REGISTRY]
    assert registry.rules is not None
    monkeypatch.setattr(registry, "rules", dataclasses.replace(registry.rules, env_prefixes=("BRAND_OTHER_",)))
    async with moved_to_another_server(policy_dir, monkeypatch, remote_id=status.id) as other:
        await gw.sync_policies()
        assert registry.policies["masto"].policy.instance == other.url
        said = await refused(world, api, post_id, "delete")
        assert f"went out on mastodon at {world.upstream_url}" in said and f"now on mastodon at {other.url}" in said
        assert other.changes() == 0
        assert (other.strangers.text, other.strangers.deleted) == ("A stranger's words", False)
    await left_published(gw, post_id)


INTERN_TOKEN = "mtok-intern-51ab7c"
"""A token of another account on the same Mastodon server."""


async def still_standing(world: World, post_id: str) -> None:
    """The post stands on Mastodon, the record says published with no change kept, no deletion
    is logged, and the log verifies."""
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day"]
    async with world.gateway.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state, held_change FROM posts WHERE id = ?", post_id)
    assert row is not None and (row["state"], row["held_change"]) == ("published", None)
    assert "post.deleted" not in await logged(world.gateway, post_id)
    await verified_by_cli(world.gateway)


async def test_a_post_is_not_deleted_as_gone_when_the_token_names_another_account_on_its_server(
    world: World, policy_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's post went out on Mastodon as ``brand``; then ``masto``'s policy file names a
    token of another account on the same server (a slip, or a handover). Mastodon deletes only
    the token's own statuses and answers any other with 404, as it answers for one gone: her
    app's deletion is refused with the platform's answer, saying the status is another
    account's, the post stands, the record says published, and the log verifies. (Before: the
    404 was taken for "gone", and the post was recorded and logged deleted while it stood.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    world.upstream.add_account("intern", INTERN_TOKEN)
    monkeypatch.setenv("INTERN_MASTODON_TOKEN", INTERN_TOKEN)
    # A handover: the file names the intern's handle too (a token swapped under the brand's
    # handle holds the account before anything is sent, tests/test_credential_names_account.py).
    write_masto_policy(policy_dir, world.upstream_url, handle="@intern@mastodon.example",
                       credentials="env:INTERN_MASTODON_TOKEN")
    await gw.sync_policies()
    with pytest.raises(MastodonAPIError) as answer:
        await world.run(api.status_delete, post_id)
    assert answer.value.args[1] == 503, answer.value
    assert "another account's" in str(answer.value) and INTERN_TOKEN not in str(answer.value)
    await still_standing(world, post_id)


async def test_a_kept_deletion_settled_with_a_token_of_another_account_is_let_go_of_not_recorded(
    world: World, policy_dir: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice's deletion never reached Mastodon, its answer unknown (no answer in time), so it is
    kept; before the publisher settles it, ``masto``'s policy file names a token of another
    account on the same server. Mastodon answers the deletion 404; the status is read, still
    there: the deletion is let go of (``change_refused``), the post stands, the record says
    published, and the log verifies. (Before: recorded and logged deleted while it stood.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")

    async def no_answer(adapter: MastodonAdapter, remote_id: str, *, url: str | None, author: str | None,
                        visibility: str | None = None) -> None:
        raise AdapterError("delete: no answer within 30 s", retryable=True)

    original = MastodonAdapter.delete_published
    monkeypatch.setattr(MastodonAdapter, "delete_published", no_answer)
    assert await outcome(world, api.status_delete, post_id) == 503
    monkeypatch.setattr(MastodonAdapter, "delete_published", original)
    world.upstream.add_account("intern", INTERN_TOKEN)
    monkeypatch.setenv("INTERN_MASTODON_TOKEN", INTERN_TOKEN)
    # A handover: the file names the intern's handle too (a token swapped under the brand's
    # handle holds the account before anything is sent, tests/test_credential_names_account.py).
    write_masto_policy(policy_dir, world.upstream_url, handle="@intern@mastodon.example",
                       credentials="env:INTERN_MASTODON_TOKEN")
    await gw.sync_policies()
    with capture_logs() as logs:
        clock.advance(timedelta(minutes=2, seconds=1))
        await gw.tick()
    refused = [e for e in logs if e["event"] == "change_refused"]
    assert len(refused) == 1 and "another account's" in refused[0]["error"], logs
    await still_standing(world, post_id)


async def test_a_deletion_of_a_post_gone_from_mastodon_with_a_token_that_cannot_read_is_refused_naming_the_scope(
    world: World,
) -> None:
    """Alice's post went out on Mastodon and was then deleted there (on the instance's own
    pages); brand's token was given the scopes the README used to list, without
    ``read:statuses``. Her app's deletion meets DELETE 404 (gone, or another account's) and a
    read that Mastodon refuses for scope (403): Byline cannot tell which, so it refuses (503)
    saying the token lacks read:statuses, and neither records nor logs the post deleted; the
    log verifies. Once the application has the scope, the same deletion goes through. (Before:
    the stand-in let the read through, and a real instance's 403 reached the app bare.)"""
    gw = world.gateway
    api, post_id = await published(world, "Launch day")
    [status] = world.upstream.statuses(world.upstream_account)
    status.deleted = True
    world.upstream.scope_token(UPSTREAM_TOKEN, "read:accounts", "write:statuses", "write:media")
    with pytest.raises(MastodonAPIError) as answer:
        await world.run(api.status_delete, post_id)
    assert answer.value.args[1] == 503, answer.value
    assert "the token lacks the scope read:statuses" in str(answer.value), answer.value
    assert UPSTREAM_TOKEN not in str(answer.value)
    assert world.upstream.faults.count("GET", f"/api/v1/statuses/{status.id}") == 1
    async with gw.app[DB].read() as txn:
        row = await txn.fetchone("SELECT state, held_change FROM posts WHERE id = ?", post_id)
    assert row is not None and (row["state"], row["held_change"]) == ("published", None)
    assert "post.deleted" not in await logged(gw, post_id)
    await verified_by_cli(gw)
    world.upstream.scope_token(UPSTREAM_TOKEN, "read:accounts", "read:statuses", "write:statuses")
    await world.run(api.status_delete, post_id)
    assert await recorded_state(gw, post_id) == "deleted"
    await verified_by_cli(gw)
