"""A change of a published post's threadgate or postgate never stays on the PDS unlogged: it is
written down before the PDS is asked (an intent), and one neither logged nor put back by its
request (the put-back refused, the gateway gone) is put back by a reconciler. Through Byline,
with the real ``atproto`` SDK, to a real PDS, on both databases."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from atproto import Client, models
from atproto_client.exceptions import AtProtocolError
from structlog.testing import capture_logs

from adapters.base import AdapterError
from adapters.bluesky import BlueskyAdapter, XrpcRawResponse
from gateway.appkeys import DB
from gateway.clock import ManualClock, now_micros
from gateway.services.gate_intents import GateIntents
from gateway.services.posts import PostService
from gateway.storage import gate_intents as intents_sql
from gateway.storage.db import DatabaseUnavailable
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_gates import (
    _both_gates,
    _carols_post,
    clients,
    clock,
    gate_entries,
    gw,
    recording_fails,
    threadgate,
    xrpc_login,
)
from tests.clients.test_atproto_threads import POSTGATE, THREADGATE, pds_record, run, xrpc
from tests.conftest import Gateway, started_gateway
from tests.platforms.bluesky.fixture import BlueskyPds
from tests.test_metrics import scrape, value

__all__ = ["clients", "clock", "gw"]  # the gate tests' fixtures, for these tests too

LEASE = timedelta(seconds=120)  # the settings' publish_lease_seconds, which holds an intent


class Outage:
    """The PDS taking one write (the change), then away (``how``: answering 503, or not
    reachable at all) until it is ``back``; the writes each gateway sends, counted."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
        self.how = how
        self.down = self.struck = False
        self.writes: list[list[tuple[str, str, str, Any]]] = []
        write_gates, gate_record = BlueskyAdapter.write_gates, BlueskyAdapter.gate_record

        async def writing(adapter: BlueskyAdapter, writes: Any, **kwargs: Any) -> XrpcRawResponse:
            self.writes.append(list(writes))
            if self.down:
                if self.how == "unreachable":
                    raise AdapterError("bluesky: cannot connect to the PDS", retryable=True)
                return XrpcRawResponse(status=503, headers={}, body=b'{"error":"NotEnoughResources"}')
            answer = await write_gates(adapter, writes, **kwargs)
            if not self.struck:
                self.struck = self.down = True  # gone right after taking the change
            return answer

        async def reading(adapter: BlueskyAdapter, remote_id: str, collection: str) -> Any:
            if self.down and self.how == "unreachable":
                raise AdapterError("bluesky: cannot connect to the PDS", retryable=True)
            return await gate_record(adapter, remote_id, collection)

        monkeypatch.setattr(BlueskyAdapter, "write_gates", writing)
        monkeypatch.setattr(BlueskyAdapter, "gate_record", reading)

    def back(self) -> None:
        """The PDS answers again."""
        self.down = False


async def intents(gw: Gateway) -> list[intents_sql.GateIntent]:
    """The intents stored now."""
    async with gw.app[DB].read() as txn:
        return await intents_sql.due(txn, now=2**62, limit=100)


async def refused_closing(carol: Client, did: str, rkey: str, post_uri: str) -> tuple[int, str | None, str]:
    """Carol closes replies to her post (its threadgate put with no one allowed), and is refused:
    the status, the XRPC error and its message."""
    with pytest.raises(AtProtocolError) as refused:
        await run(carol.com.atproto.repo.put_record, models.ComAtprotoRepoPutRecord.Data(
            repo=did, collection=THREADGATE, rkey=rkey, record=threadgate(post_uri, allow=[])))
    response = refused.value.response
    assert response is not None
    return response.status_code, getattr(response.content, "error", None), getattr(response.content, "message", "")


async def put_back_and_nothing_kept(pds: BlueskyPds, gw: Gateway, uri: str, held: dict[str, Any] | None) -> None:
    """The gate at ``uri`` is back as it was (``held``), no intent is left, the log has no change
    of a gate, and the real verifier accepts the log."""
    assert await pds_record(pds, uri) == held
    assert (await intents(gw), await gate_entries(gw)) == ([], [])
    await verified_by_cli(gw)


async def left_unlogged(
    pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch, how: str,
) -> tuple[str, str, dict[str, Any], dict[str, Any], Outage]:
    """Carol closes replies on her post; the PDS takes it, the log cannot record it (the database
    away), and the PDS is away as the gate is put back: the app gets 503 and the change stays on
    the PDS. The post's id, its threadgate's address, what the PDS held before and holds now,
    and the outage (still on)."""
    did, carol, _, post_uri, rkey, post_id = await _carols_post(pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(pds, gate_uri)
    assert held is not None
    outage = Outage(monkeypatch, how)
    with monkeypatch.context() as patched, capture_logs() as logs:
        recording_fails(gw, patched, "database")
        said = await refused_closing(carol, did, rkey, post_uri)
    assert said[:2] == (503, "NotEnoughResources")
    assert [e["event"] for e in logs if e["event"] == "xrpc_gate_left"] == ["xrpc_gate_left"], logs
    changed = await pds_record(pds, gate_uri)
    assert changed is not None and changed["value"]["allow"] == [] and changed["cid"] != held["cid"]
    return post_id, gate_uri, held, changed, outage


@pytest.mark.parametrize("how", ["refusing", "unreachable"])
async def test_a_gate_change_neither_logged_nor_put_back_is_put_back_once_the_pds_is_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch, how: str,
) -> None:
    """The log cannot record carol's change, and the PDS refuses (503) or cannot be reached
    for the put-back: the change stays on the PDS, written down. The reconciler tries while
    the PDS is away (left, a warning) and waits before the next try; once the PDS is back and
    that wait is over, it puts the threadgate back (same CID as before) and drops the intent.
    The log holds no change and verifies. (Before: the change stayed on the PDS for good, with
    nothing in the log, and a warning the only trace.)"""
    post_id, gate_uri, held, _, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, how)
    [left] = await intents(gw)
    assert (left.post_id, left.collection, left.held, left.actor) == (post_id, THREADGATE, held["value"], "carol")

    assert value(await scrape(gw), "byline_gate_changes_left") == 1
    with capture_logs() as logs:
        assert await gw.reconcile() == 0  # the PDS still away
    assert [e["event"] for e in logs if e["event"] == "xrpc_gate_left"] == ["xrpc_gate_left"], logs
    assert await gw.reconcile() == 0, "waits before trying again"
    assert value(await scrape(gw), "byline_gate_changes_left") == 1
    outage.back()
    clock.advance(timedelta(seconds=5))
    assert await gw.reconcile() == 1
    assert await pds_record(bluesky_pds, gate_uri) == held
    assert await intents(gw) == []
    assert value(await scrape(gw), "byline_gate_changes_left") == 0
    assert await gate_entries(gw) == []
    await verified_by_cli(gw)


async def test_a_batch_and_a_deletion_neither_logged_nor_put_back_are_put_back_once_the_pds_is_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol closes replies and quotes in one batch (the threadgate replaced, a postgate
    created); the log cannot record it and the PDS is away for the put-back. Once it is back,
    the reconciler puts the threadgate back and deletes the postgate. Then she deletes the
    threadgate, and the same happens: the reconciler writes the record again as it was (same
    CID). Nothing is left, nothing logged, and the log verifies."""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    replies_uri, quotes_uri = f"at://{did}/{THREADGATE}/{rkey}", f"at://{did}/{POSTGATE}/{rkey}"
    held = await pds_record(bluesky_pds, replies_uri)
    assert held is not None

    with monkeypatch.context() as patched:
        outage = Outage(patched, "refusing")
        recording_fails(gw, patched, "database")
        with pytest.raises(AtProtocolError):
            await run(carol.com.atproto.repo.apply_writes, _both_gates(did, post_uri, rkey))
        assert (await pds_record(bluesky_pds, replies_uri) or {})["value"]["allow"] == []
        assert await pds_record(bluesky_pds, quotes_uri) is not None
        assert len(await intents(gw)) == 2
        outage.back()
        assert await gw.reconcile() == 2
    assert (await pds_record(bluesky_pds, replies_uri), await pds_record(bluesky_pds, quotes_uri)) == (held, None)

    with monkeypatch.context() as patched:
        outage = Outage(patched, "unreachable")
        recording_fails(gw, patched, "database")
        with pytest.raises(AtProtocolError):
            await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
                repo=did, collection=THREADGATE, rkey=rkey))
        assert await pds_record(bluesky_pds, replies_uri) is None
        outage.back()
        assert await gw.reconcile() == 1
    await put_back_and_nothing_kept(bluesky_pds, gw, replies_uri, held)


async def test_a_gate_change_whose_gateway_dies_before_logging_it_is_put_back_by_the_next_at_start(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A gateway writes carol's change of her threadgate to the PDS and dies before the log
    records it (its task ends there: nothing after the PDS's answer runs). Once the change's
    lease has run out, a gateway started on the same database puts the threadgate back as it
    starts (same CID), and drops the intent; the log holds no change and verifies. (Before:
    the change stayed on the PDS, and nothing anywhere said so.)"""
    did, _, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    assert held is not None

    async def killed(*_: object, **__: object) -> None:
        raise asyncio.CancelledError  # the process going, right after the PDS's answer

    async with started_gateway(db_url, policy_dir, clock) as doomed:
        token = await xrpc_login(doomed, "carol", did)
        with monkeypatch.context() as patched:
            patched.setattr(PostService, "record_gates_changed", killed)
            with pytest.raises((aiohttp.ClientError, json.JSONDecodeError)):
                await xrpc(doomed, "com.atproto.repo.putRecord", token, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])})
    changed = await pds_record(bluesky_pds, gate_uri)
    assert changed is not None and changed["value"]["allow"] == []
    assert await gw.reconcile() == 0, "its lease has not run out: its gateway may still be at it"
    assert await pds_record(bluesky_pds, gate_uri) == changed

    clock.advance(LEASE)
    async with started_gateway(db_url, policy_dir, clock) as restarted:
        for _ in range(200):
            if await intents(restarted) == []:
                break
            await asyncio.sleep(0.05)
        assert await intents(restarted) == []
        assert await pds_record(bluesky_pds, gate_uri) == held
        assert await gate_entries(restarted) == []
        await verified_by_cli(restarted)


async def test_a_gate_change_that_cannot_be_written_down_is_not_sent(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Byline's database is away as carol's change is written down: the app gets 503
    ``NotEnoughResources``, nothing is written to the PDS (the threadgate it held, same CID),
    and nothing is stored or logged. (Before: the change went to the PDS first.)"""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    outage = Outage(monkeypatch, "refusing")
    before = await gw.snapshot()

    async def away(*_: object, **__: object) -> None:
        raise DatabaseUnavailable()

    monkeypatch.setattr(intents_sql, "insert", away)
    said = await refused_closing(carol, did, rkey, post_uri)
    assert said[:2] == (503, "NotEnoughResources")
    assert outage.writes == []
    assert await pds_record(bluesky_pds, gate_uri) == held
    assert (await gw.snapshot(), await gate_entries(gw), await intents(gw)) == (before, [], [])
    await verified_by_cli(gw)


@pytest.mark.parametrize("lost", ["reset", "proxy"])
async def test_a_gate_change_the_pds_took_without_answering_is_put_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clients: list[Client], monkeypatch: pytest.MonkeyPatch, lost: str,
) -> None:
    """The PDS takes carol's change of her threadgate, and its answer is lost on the way (the
    connection reset, or a proxy in front answering 503): the app gets 502 ``UpstreamFailure``
    (nothing is logged: the change is not known to be made), and the reconciler finds the
    change on the PDS and puts the threadgate back (same CID). (Before: the change stayed on
    the PDS, unlogged.)"""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    write_gates = BlueskyAdapter.write_gates

    async def answer_lost(adapter: BlueskyAdapter, writes: Any, **kwargs: Any) -> XrpcRawResponse:
        await write_gates(adapter, writes, **kwargs)
        if lost == "proxy":
            return XrpcRawResponse(status=503, headers={}, body=b"Service Unavailable")
        raise AdapterError("bluesky: the connection was reset", retryable=True)

    with monkeypatch.context() as patched:
        patched.setattr(BlueskyAdapter, "write_gates", answer_lost)
        said = await refused_closing(carol, did, rkey, post_uri)
    assert said[:2] == (502, "UpstreamFailure")
    assert (await pds_record(bluesky_pds, gate_uri) or {})["value"]["allow"] == []
    assert await gw.reconcile() == 1
    await put_back_and_nothing_kept(bluesky_pds, gw, gate_uri, held)


async def test_a_gate_change_recorded_after_its_lease_ran_out_is_not_logged_and_is_put_back_once(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's change reaches the PDS, and its request is so slow to record it that its lease
    runs out and a reconciler puts the threadgate back first. The record then finds its
    intent taken and is refused: the app gets 502 saying so, the log holds no change, and the PDS holds
    the threadgate as before (the request's own put-back does not undo it twice); the log
    verifies. Never both logged and put back."""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    record = PostService.record_gates_changed
    reconciled: list[int] = []

    async def slow(self: PostService, *args: Any, **kwargs: Any) -> None:
        clock.advance(LEASE)
        reconciled.append(await gw.reconcile())
        await record(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(PostService, "record_gates_changed", slow)
        said = await refused_closing(carol, did, rkey, post_uri)
    assert said[:2] == (502, "UpstreamFailure")
    assert reconciled == [1]
    assert said[2].endswith(
        f"took longer than Byline holds it open, and is being put back: its {THREADGATE} is not kept")
    await put_back_and_nothing_kept(bluesky_pds, gw, gate_uri, held)


async def test_two_gateways_reconciling_one_change_put_it_back_once(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change left on the PDS unlogged, the PDS back: two gateways on one database reconcile
    at once. One claims the change and puts the threadgate back, in one write; the other
    leaves it. The log holds no change and verifies."""
    async with started_gateway(db_url, policy_dir, clock) as second:
        _, gate_uri, held, _, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
        outage.back()
        sent = len(outage.writes)
        settled = await asyncio.gather(gw.reconcile(), second.reconcile())
        assert sorted(settled) == [0, 1]
        assert len(outage.writes) - sent == 1
        assert await pds_record(bluesky_pds, gate_uri) == held
        assert await intents(gw) == []
        assert await gate_entries(gw) == []
        await verified_by_cli(second)


async def test_a_reconcilers_claim_dropped_by_its_death_is_taken_over_after_its_lease(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reconciler claims the change left on the PDS and dies before putting it back. No other
    takes it while its claim holds; once the claim's lease has run out, the next round puts the
    threadgate back and drops the intent."""
    _, gate_uri, held, changed, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    outage.back()
    [left] = await intents(gw)
    now = now_micros(clock)
    async with gw.app[DB].write() as txn:
        assert await intents_sql.claim(txn, left.id, token="dead", now=now, until=now + 120_000_000)
    assert await gw.reconcile() == 0
    assert await pds_record(bluesky_pds, gate_uri) == changed
    clock.advance(LEASE)
    assert await gw.reconcile() == 1
    assert await pds_record(bluesky_pds, gate_uri) == held
    assert await intents(gw) == []


async def test_a_gate_changed_since_by_a_logged_change_is_left_as_it_is(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change left on the PDS unlogged; before the reconciler comes to it, carol changes the
    threadgate again through Byline, and that change is logged: it stands over the first, whose
    intent goes with it, and the reconciler finds nothing to put back. The log holds the one
    change, with the CID the PDS holds, and verifies."""
    post_id, gate_uri, _, _, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    outage.back()
    did, rkey = gate_uri.removeprefix("at://").split("/")[0], gate_uri.rsplit("/", 1)[1]
    token = await xrpc_login(gw, "carol", did)
    mentions = [{"$type": f"{THREADGATE}#mentionRule"}]
    status, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, {
        "repo": did, "collection": THREADGATE, "rkey": rkey,
        "record": threadgate(f"at://{did}/app.bsky.feed.post/{rkey}", allow=mentions)})
    assert status == 200, answer
    assert await intents(gw) == []
    clock.advance(LEASE)
    assert await gw.reconcile() == 0
    now = await pds_record(bluesky_pds, gate_uri)
    assert now is not None and (now["cid"], now["value"]["allow"]) == (answer["cid"], mentions)
    assert await intents(gw) == []
    assert await gate_entries(gw) == [("carol", post_id, THREADGATE, answer["cid"])]
    await verified_by_cli(gw)


@pytest.mark.parametrize("lost", ["policy", "credential"])
async def test_a_gate_change_whose_account_is_gone_is_said_once_and_put_back_as_soon_as_it_is_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, policy_dir: Path, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch, lost: str,
) -> None:
    """A change left on the PDS unlogged, and then ``skygates``'s policy file is removed (or its
    credential can no longer be read): the reconciler cannot put it back. It says so once
    (``gate_change_stranded``, naming the account and the post, not the credential), counts it
    apart in ``/metrics`` and ``/readyz``, and stays quiet at later tries; once the account is
    back, the very next round puts the threadgate back, though its wait had an hour to run.
    (Before: an ``xrpc_gate_left`` every try, hours apart, nothing telling it apart from a PDS
    that is away, and an hour's wait after the account came back.)"""
    post_id, gate_uri, held, changed, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    outage.back()
    [left] = await intents(gw)
    policy_file = policy_dir / "skygates.yaml"
    written = policy_file.read_text(encoding="utf-8")
    password = bluesky_pds.account("carol.test").app_password
    if lost == "policy":
        policy_file.unlink()
        await gw.sync_policies()
    else:
        monkeypatch.delenv("CAROL_BSKY_APP_PASSWORD")
    with capture_logs() as logs:
        for wait in (timedelta(0), timedelta(hours=2), timedelta(hours=2)):
            clock.advance(wait)
            assert await gw.reconcile() == 0
    said = [e for e in logs if e["log_level"] == "warning"]
    assert [(e["event"], e["account"], e["post_id"], e["remote_id"]) for e in said] == [
        ("gate_change_stranded", "skygates", post_id, left.remote_id)], logs
    assert password not in repr(logs)
    assert await pds_record(bluesky_pds, gate_uri) == changed
    samples = await scrape(gw)
    assert (value(samples, "byline_gate_changes_left"), value(samples, "byline_gate_changes_stranded")) == (1, 1)
    ready = await gw.client.get("/readyz")
    assert (ready.status, (await ready.json())["gate_changes_stranded"]) == (200, {"skygates": 1})

    if lost == "policy":
        policy_file.write_text(written, encoding="utf-8")
        await gw.sync_policies()
    else:
        monkeypatch.setenv("CAROL_BSKY_APP_PASSWORD", password)
    assert await gw.reconcile() == 1
    await put_back_and_nothing_kept(bluesky_pds, gw, gate_uri, held)
    samples = await scrape(gw)
    assert (value(samples, "byline_gate_changes_left"), value(samples, "byline_gate_changes_stranded")) == (0, 0)
    assert (await (await gw.client.get("/readyz")).json())["gate_changes_stranded"] == {}


async def _left_deleting(pds: BlueskyPds, gw: Gateway, carol: Client, did: str, rkey: str,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Carol takes her threadgate off; the PDS takes it, the log cannot record it and the PDS is
    away for the put-back: the deletion stays on the PDS, written down; then the PDS is back."""
    with monkeypatch.context() as patched:
        outage = Outage(patched, "refusing")
        recording_fails(gw, patched, "database")
        with pytest.raises(AtProtocolError):
            await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
                repo=did, collection=THREADGATE, rkey=rkey))
        outage.back()
    assert await pds_record(pds, f"at://{did}/{THREADGATE}/{rkey}") is None


async def test_a_change_made_again_and_logged_is_not_put_back_by_the_reconciler(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's deletion of her threadgate is left on the PDS unlogged (503 to her app); once the
    PDS is back, she takes it off again, and this time it is logged (200). The reconciler then
    leaves the PDS as the log says: no threadgate. The log holds the one deletion and verifies.
    (Before: the reconciler found what the first deletion wrote, none, and wrote the old
    threadgate again over the logged deletion: her app, the log and the public pages said replies
    were open to everybody, and the PDS kept them closed to all but followers.)"""
    did, carol, _, _, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    await _left_deleting(bluesky_pds, gw, carol, did, rkey, monkeypatch)
    clock.advance(timedelta(seconds=1))
    await run(carol.com.atproto.repo.delete_record, models.ComAtprotoRepoDeleteRecord.Data(
        repo=did, collection=THREADGATE, rkey=rkey))
    assert await gate_entries(gw) == [("carol", post_id, THREADGATE, None)]
    clock.advance(LEASE)
    await gw.reconcile()
    assert await pds_record(bluesky_pds, gate_uri) is None
    assert await intents(gw) == []
    await verified_by_cli(gw)


async def test_two_changes_left_unlogged_are_both_put_back_whichever_comes_first(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol closes replies, and then takes the threadgate off; the PDS takes each, and neither
    is logged nor put back by its request. The reconciler puts back the threadgate the log knows
    (same CID), nothing else stays, and the log holds no change and verifies. (Before: the older
    change, come to first, was found changed since and dropped; the newer one then put back the
    older one's closed replies, left on the PDS unlogged for good.)"""
    did, carol, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    with monkeypatch.context() as patched:
        outage = Outage(patched, "refusing")
        recording_fails(gw, patched, "database")
        assert (await refused_closing(carol, did, rkey, post_uri))[:2] == (503, "NotEnoughResources")
        outage.back()
    clock.advance(timedelta(seconds=1))
    await _left_deleting(bluesky_pds, gw, carol, did, rkey, monkeypatch)
    clock.advance(LEASE)
    for _ in range(3):
        await gw.reconcile()
    await put_back_and_nothing_kept(bluesky_pds, gw, gate_uri, held)


async def test_a_change_of_a_gate_being_put_back_is_refused_until_it_is_settled(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change left on the PDS unlogged is claimed by a reconciler, which has not put it back
    yet; carol changes the threadgate meanwhile: 503 ``NotEnoughResources`` (try again), nothing
    goes to the PDS, nothing is logged. Once the claim runs out, the change is put back, and
    carol's next try is made and logged. (Before: her change went to the PDS, and the
    reconciler's put-back could then undo it over its log entry.)"""
    post_id, gate_uri, held, changed, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    outage.back()
    [left] = await intents(gw)
    now = now_micros(clock)
    async with gw.app[DB].write() as txn:
        assert await intents_sql.claim(txn, left.id, token="busy", now=now, until=now + 120_000_000)
    did, rkey = gate_uri.removeprefix("at://").split("/")[0], gate_uri.rsplit("/", 1)[1]
    token = await xrpc_login(gw, "carol", did)
    sent = len(outage.writes)
    status, answer = await xrpc(gw, "com.atproto.repo.deleteRecord", token,
                                {"repo": did, "collection": THREADGATE, "rkey": rkey})
    assert (status, answer.get("error")) == (503, "NotEnoughResources"), answer
    assert (len(outage.writes) - sent, await pds_record(bluesky_pds, gate_uri)) == (0, changed)
    assert await gate_entries(gw) == []
    clock.advance(LEASE)
    assert await gw.reconcile() == 1
    assert await pds_record(bluesky_pds, gate_uri) == held
    status, answer = await xrpc(gw, "com.atproto.repo.deleteRecord", token,
                                {"repo": did, "collection": THREADGATE, "rkey": rkey})
    assert status == 200, answer
    assert await pds_record(bluesky_pds, gate_uri) is None
    assert (await intents(gw), await gate_entries(gw)) == ([], [("carol", post_id, THREADGATE, None)])
    await verified_by_cli(gw)


def carol_unlogged(meanwhile: Callable[[], Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """``PostService.record_gates_changed`` for carol's change: ``meanwhile`` runs, then the log
    fails (the database away); anyone else's is recorded."""
    record = PostService.record_gates_changed

    async def unlogged(self: PostService, caller: Any, *args: Any, **kwargs: Any) -> None:
        if caller.user != "carol":
            return await record(self, caller, *args, **kwargs)
        await meanwhile()
        raise DatabaseUnavailable()

    return unlogged


async def carol_refused_meanwhile(
    gw: Gateway, monkeypatch: pytest.MonkeyPatch, token: str, body: dict[str, Any], *,
    writing: Callable[..., Awaitable[XrpcRawResponse]], unlogged: Callable[..., Awaitable[None]],
) -> None:
    """Carol's change (the putRecord ``body``) through ``gw``, its PDS writes and its record
    patched (``writing``, ``unlogged``): her app gets 503 ``NotEnoughResources``."""
    with monkeypatch.context() as patched:
        patched.setattr(BlueskyAdapter, "write_gates", writing)
        patched.setattr(PostService, "record_gates_changed", unlogged)
        status, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, body)
    assert (status, answer.get("error")) == (503, "NotEnoughResources"), answer


@pytest.mark.parametrize("order", ["same_record_after", "other_record_before"])
async def test_a_change_logged_by_another_gateway_is_not_undone_by_the_put_back_of_one_on_its_way(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch, order: str,
) -> None:
    """Carol closes replies through one gateway; while that change is on its way (written down,
    its lease running), alice changes the threadgate through another gateway, and hers is
    logged (200): the very record carol's wrote, after it (same CID), or another one, before
    carol's reached the PDS. Carol's then cannot be logged (503), and its put-back puts the
    threadgate back to what the log now says: the PDS holds alice's record with the CID the log
    names, nothing is left for the reconciler to undo, and the log verifies. (Before: carol's
    put-back, a swap on the CID her change wrote, put the threadgate of before over alice's
    logged change: the log said one thing, the PDS another.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    closed = threadgate(post_uri, allow=[])
    theirs = closed if order == "same_record_after" else threadgate(
        post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])
    write_gates = BlueskyAdapter.write_gates
    alices: list[tuple[int, Any]] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def alice_changes() -> None:
            if not alices:  # once, as carol's change is on its way; alice's own goes through
                alices.append((0, None))  # before her call: its own record goes through this
                alices[0] = await xrpc(second, "com.atproto.repo.putRecord", alice, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": theirs})

        async def writing(adapter: BlueskyAdapter, writes: Any, **kwargs: Any) -> XrpcRawResponse:
            if order == "other_record_before":
                await alice_changes()
            return await write_gates(adapter, writes, **kwargs)

        await carol_refused_meanwhile(gw, monkeypatch, token, {
            "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed,
        }, writing=writing, unlogged=carol_unlogged(alice_changes))
        [(status, logged)] = alices
        assert status == 200, logged
        now = await pds_record(bluesky_pds, gate_uri)
        assert now is not None and (now["cid"], now["value"]) == (logged["cid"], theirs)
        assert await gate_entries(gw) == [("alice", post_id, THREADGATE, logged["cid"])]
        assert await intents(gw) == []
        clock.advance(LEASE)
        assert await gw.reconcile() == 0
        assert (await pds_record(bluesky_pds, gate_uri) or {}).get("cid") == logged["cid"]
        await verified_by_cli(second)


@pytest.mark.parametrize("meanwhile", ["nothing", "same_record_logged"])
async def test_a_change_whose_database_is_away_at_its_claim_is_left_to_the_reconciler(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch, meanwhile: str,
) -> None:
    """Carol closes replies through one gateway; the PDS takes it, and its database goes away
    before the change is logged: it can neither log it nor claim its intent. Meanwhile (or not)
    alice closes replies through another gateway, the very record carol's wrote (same CID), and
    hers is logged (200). Carol's app gets 503, and her request leaves the threadgate as it is
    (it cannot know what the log now says). Once the database is back and the lease has run
    out, the reconciler settles carol's intent: it puts the threadgate of before back where
    nothing was logged, and leaves alice's logged record. The PDS holds what the log says, no
    intent is left, and the log verifies. (Before: carol's request put back what it had found,
    a swap on the CID it wrote, over alice's logged change: the log said replies were closed,
    the PDS that they were open, and the reconciler found it 'changed since'.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    closed = threadgate(post_uri, allow=[])
    alices: list[tuple[int, Any]] = []
    db, gone = gw.app[DB], asyncio.Event()
    write = db.write

    def writing() -> Any:
        if gone.is_set():
            raise DatabaseUnavailable()
        return write()

    monkeypatch.setattr(db, "write", writing)  # carol's gateway's database: away while ``gone``

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def database_goes() -> None:
            if meanwhile == "same_record_logged":
                alices.append(await xrpc(second, "com.atproto.repo.putRecord", alice, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed}))
            gone.set()

        try:
            await carol_refused_meanwhile(gw, monkeypatch, token, {
                "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed,
            }, writing=BlueskyAdapter.write_gates, unlogged=carol_unlogged(database_goes))
        finally:
            gone.clear()  # back
        now = await pds_record(bluesky_pds, gate_uri)
        assert now is not None and now["value"] == closed, "left as it is while the database is away"
        logged: list[tuple[str, str, str, str | None]] = []
        if meanwhile == "same_record_logged":
            [(status, answer)] = alices
            assert (status, answer["cid"]) == (200, now["cid"]), answer
            logged = [("alice", post_id, THREADGATE, answer["cid"])]
        [left] = await intents(gw)
        assert left.written == closed and left.held == (closed if logged else held["value"])
        assert await gw.reconcile() == 0, "its lease has not run out"
        clock.advance(LEASE)
        assert await gw.reconcile() == 1
        assert await pds_record(bluesky_pds, gate_uri) == (now if logged else held)
        assert (await intents(gw), await gate_entries(gw)) == ([], logged)
        await verified_by_cli(second)


@pytest.mark.parametrize("order", ["same_record_before_it", "other_record_over_it"])
async def test_a_change_logged_on_another_gateway_as_one_is_put_back_leaves_the_pds_as_the_log_says(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch, order: str,
) -> None:
    """Carol's change cannot be logged, and as its request puts the threadgate back, alice changes
    it through another gateway: the very record carol's wrote, written before the put-back, or
    another one, read while carol's stood and written over the put-back. Alice's is refused 503
    (try again), as a change is while a reconciler puts one back, and put back: the PDS holds the
    threadgate as before, the log no change, nothing is left, and the log verifies. (Before:
    alice's change was logged, and carol's put-back, a swap on the same CID, undid it; or alice's
    put back what she had read, carol's change, unlogged.)"""
    did, _, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    closed = threadgate(post_uri, allow=[])
    theirs = closed if order == "same_record_before_it" else threadgate(
        post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])
    write_gates = BlueskyAdapter.write_gates
    alices: list[tuple[int, Any]] = []
    carols: list[int] = []
    alices_call: list[asyncio.Future[None]] = []
    alice_writing, put_back = asyncio.Event(), asyncio.Event()
    if order == "same_record_before_it":
        put_back.set()

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def alice_changes() -> None:
            alices.append((0, None))  # before her call: her own writes come through this too
            alices[0] = await xrpc(second, "com.atproto.repo.putRecord", alice, {
                "repo": did, "collection": THREADGATE, "rkey": rkey, "record": theirs})

        async def writing(adapter: BlueskyAdapter, writes: Any, **kwargs: Any) -> XrpcRawResponse:
            if not carols:
                carols.append(id(adapter))  # carol's gateway's
            if id(adapter) != carols[0]:  # alice's, read and written down as carol's stood
                if not put_back.is_set():
                    alice_writing.set()
                    await put_back.wait()  # and written over carol's put-back
                return await write_gates(adapter, writes, **kwargs)
            carols.append(1)
            if len(carols) == 2:  # carol's change
                return await write_gates(adapter, writes, **kwargs)
            if order == "same_record_before_it":
                await alice_changes()
                return await write_gates(adapter, writes, **kwargs)
            answer = await write_gates(adapter, writes, **kwargs)
            put_back.set()
            await alices_call[0]  # carol's put-back under way all the while alice's is logged
            return answer

        async def alice_reads_and_writes_it_down() -> None:
            if order == "other_record_over_it":
                alices_call.append(asyncio.ensure_future(alice_changes()))
                await alice_writing.wait()

        await carol_refused_meanwhile(gw, monkeypatch, token, {
            "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed,
        }, writing=writing, unlogged=carol_unlogged(alice_reads_and_writes_it_down))
        [(status, refused)] = alices
        assert (status, refused.get("error")) == (503, "NotEnoughResources"), refused
        await put_back_and_nothing_kept(bluesky_pds, second, gate_uri, held)
        clock.advance(LEASE)
        assert await gw.reconcile() == 0
        assert await pds_record(bluesky_pds, gate_uri) == held


async def written_down_or_waiting(gw: Gateway, written: asyncio.Event, entered: asyncio.Event) -> None:
    """Return once a change sent to ``gw`` is written down (``written``), or waits for its turn to
    be: on PostgreSQL, skygates' gate lock in this test's schema not granted (another test's
    locks are other schemas'); on SQLite, it has come to write itself down (``entered``), and
    the writer lock is the logging transaction's."""
    async def waiting() -> None:
        if gw.app[DB].dialect == "sqlite":
            await entered.wait()
            return
        while True:
            async with gw.app[DB].read() as txn:
                row = await txn.fetchone(
                    "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2 "
                    "AND classid = hashtext(?)::oid AND objid = hashtext(? || current_schema())::oid",
                    intents_sql.GATE_LOCK, "skygates")
            if row is not None and row["n"] > 0:
                return
            await asyncio.sleep(0.01)

    ways = [asyncio.ensure_future(written.wait()), asyncio.ensure_future(waiting())]
    done, pending = await asyncio.wait(ways, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    for way in pending:
        way.cancel()
    assert done, "the change was neither written down nor waiting to be after 30 s"


async def test_a_change_written_down_as_another_is_logged_puts_back_what_the_log_says(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice closes replies through another gateway; her change's log transaction has read the
    changes of the threadgate on their way (none but hers) and moved them, and has not committed,
    when carol changes the threadgate through this one. Carol's waits for the account's turn to
    be written down, until alice's is logged; it then finds alice's logged since it read the PDS
    and is refused, 503 (try again). The PDS holds alice's logged record, with the CID the log
    names; nothing is left, the reconciler undoes nothing, and the log verifies. (Before, on
    PostgreSQL: carol's was written down in that very moment, read alice's, still stored, and
    held what it held, the threadgate of before; the log then took alice's, and carol's, not
    logged, put the threadgate of before back over it.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    closed = threadgate(post_uri, allow=[])
    carols_record = threadgate(post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])
    settle_logged, insert, write_ahead = intents_sql.settle_logged, intents_sql.insert, GateIntents.write_ahead
    written, entered = asyncio.Event(), asyncio.Event()
    carols: list[asyncio.Future[tuple[int, Any]]] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def carol_meanwhile(txn: Any, intent_id: str) -> str | None:
            unsettled = await settle_logged(txn, intent_id)
            if not carols:  # alice's, read and moved, not committed: carol's change comes now
                carols.append(asyncio.ensure_future(xrpc(gw, "com.atproto.repo.putRecord", token, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": carols_record})))
                await written_down_or_waiting(gw, written, entered)
            return unsettled

        async def inserting(txn: Any, intents: Any) -> None:
            await insert(txn, intents)
            if carols:
                written.set()

        async def nothing() -> None:
            return None

        async def writing_down(self: GateIntents, **kwargs: Any) -> Any:
            if carols:
                entered.set()
            return await write_ahead(self, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(intents_sql, "settle_logged", carol_meanwhile)
            patched.setattr(intents_sql, "insert", inserting)
            patched.setattr(GateIntents, "write_ahead", writing_down)
            patched.setattr(PostService, "record_gates_changed", carol_unlogged(nothing))
            status, logged = await xrpc(second, "com.atproto.repo.putRecord", alice, {
                "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed})
            assert status == 200, logged
            carols_status, carols_answer = await carols[0]
        assert (carols_status, carols_answer.get("error")) == (503, "NotEnoughResources"), carols_answer
        now = await pds_record(bluesky_pds, gate_uri)
        assert now is not None and (now["cid"], now["value"]) == (logged["cid"], closed)
        assert (await intents(gw), await gate_entries(gw)) == ([], [("alice", post_id, THREADGATE, logged["cid"])])
        clock.advance(LEASE)
        assert await gw.reconcile() == 0
        assert (await pds_record(bluesky_pds, gate_uri) or {}).get("cid") == logged["cid"]
        await verified_by_cli(second)


async def test_a_reconciler_puts_back_what_a_change_logged_between_its_read_and_its_claim_says(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol closes replies through this gateway, and her request stalls before the log (its
    lease running); alice writes the very same record through another gateway, and hers waits at
    the log. Carol's lease runs out; the reconciler reads her change, and before it claims it,
    alice's is logged (200), which moves what carol's puts back to alice's record. The
    reconciler puts back what the change says once claimed, not what it read: it finds the gate
    as it is to be and leaves it; carol's request, come back, gets 503. The PDS holds alice's
    record with the CID the log names, nothing is left, and the log verifies. (Without the
    reconciler's read after its claim: it put the threadgate of before over alice's logged one.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    closed = threadgate(post_uri, allow=[])
    body = {"repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed}
    record, due = PostService.record_gates_changed, intents_sql.due
    alice_at_log, alice_go = asyncio.Event(), asyncio.Event()
    alices: list[asyncio.Future[tuple[int, Any]]] = []
    settled: list[int] = []
    outcomes: list[str] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def reading(txn: Any, **kwargs: Any) -> list[intents_sql.GateIntent]:
            found = await due(txn, **kwargs)
            if found and not alice_go.is_set():  # read by the reconciler, not yet claimed: alice's is logged now
                alice_go.set()
                status, logged = await alices[0]
                assert status == 200, logged
            return found

        async def carol_stalls() -> None:
            clock.advance(timedelta(seconds=1))
            alices.append(asyncio.ensure_future(xrpc(second, "com.atproto.repo.putRecord", alice, body)))
            await alice_at_log.wait()
            clock.advance(LEASE - timedelta(seconds=1))  # carol's lease out, alice's not
            with monkeypatch.context() as patched, capture_logs() as logs:
                patched.setattr(intents_sql, "due", reading)
                settled.append(await gw.reconcile())
            outcomes.extend(e["outcome"] for e in logs if e["event"] == "xrpc_gate_reconciled")

        async def recording(self: PostService, caller: Any, *args: Any, **kwargs: Any) -> None:
            if caller.user == "carol":
                await carol_stalls()
                raise DatabaseUnavailable()
            alice_at_log.set()
            await alice_go.wait()
            return await record(self, caller, *args, **kwargs)

        with monkeypatch.context() as patched:
            patched.setattr(PostService, "record_gates_changed", recording)
            carols, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, body)
        status, logged = await alices[0]
        assert status == 200, logged
        now = await pds_record(bluesky_pds, gate_uri)
        assert now is not None and (now["cid"], now["value"]) == (logged["cid"], closed)
        assert (settled, outcomes) == ([1], ["as_before"])
        assert (carols, answer.get("error")) == (503, "NotEnoughResources"), answer
        assert (await intents(gw), await gate_entries(gw)) == ([], [("alice", post_id, THREADGATE, logged["cid"])])
        await verified_by_cli(second)


async def test_a_change_logged_between_anothers_read_of_the_gate_and_its_note_is_not_undone(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol changes the threadgate through this gateway; right after her request has read what
    the PDS holds, alice closes replies through another gateway, and hers is logged (200), its
    note gone. Carol's, written down after, finds no change on its way, only the log grown since
    its read: what it read may be what the log no longer says, so it is refused, 503
    ``NotEnoughResources`` (try again), with nothing sent. The PDS holds alice's record with the
    CID the log names, nothing is left, and the log verifies. (Before: carol's held what it read,
    the threadgate of before, and, not logged, put it back over alice's logged one.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    closed = threadgate(post_uri, allow=[])
    carols_record = threadgate(post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])
    gate = BlueskyAdapter.gate
    alices: list[tuple[int, Any]] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def reading(adapter: BlueskyAdapter, remote_id: str, collection: str) -> Any:
            held = await gate(adapter, remote_id, collection)
            if not alices:  # carol's read; alice's own goes through this too
                alices.append((0, None))
                alices[0] = await xrpc(second, "com.atproto.repo.putRecord", alice, {
                    "repo": did, "collection": THREADGATE, "rkey": rkey, "record": closed})
            return held

        async def nothing() -> None:
            return None

        with monkeypatch.context() as patched:
            patched.setattr(BlueskyAdapter, "gate", reading)
            patched.setattr(PostService, "record_gates_changed", carol_unlogged(nothing))
            carols, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, {
                "repo": did, "collection": THREADGATE, "rkey": rkey, "record": carols_record})
        [(status, logged)] = alices
        assert status == 200, logged
        now = await pds_record(bluesky_pds, gate_uri)
        assert now is not None and (now["cid"], now["value"]) == (logged["cid"], closed)
        assert (carols, answer.get("error")) == (503, "NotEnoughResources"), answer
        assert (await intents(gw), await gate_entries(gw)) == ([], [("alice", post_id, THREADGATE, logged["cid"])])
        clock.advance(LEASE)
        assert await gw.reconcile() == 0
        await verified_by_cli(second)


async def test_a_change_a_reconciler_claims_as_it_is_being_logged_is_not_logged(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol closes replies; her change's log transaction has found her note still hers, and
    has not yet dropped it, when her lease runs out and a reconciler comes for it. On
    PostgreSQL the reconciler claims it and puts the threadgate back, and the log does not take
    carol's change (502, as for any request a reconciler overtook): the PDS holds the
    threadgate of before and the log no change. On SQLite the reconciler waits for the log's
    turn, and finds the change logged: the PDS holds carol's record and the log names it.
    Either way nothing is left, and the log verifies.
    (Before, on PostgreSQL: the log took carol's change all the same, over the put-back.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    assert held is not None
    lock_gates, due, record = intents_sql.lock_gates, intents_sql.due, PostService.record_gates_changed
    logging, read, dropping = asyncio.Event(), asyncio.Event(), asyncio.Event()
    reconciling: list[asyncio.Future[int]] = []
    sqlite = gw.app[DB].dialect == "sqlite"

    async def reconciler_meanwhile(txn: Any, account: str) -> None:
        if reconciling:  # PostgreSQL: the reconciler's, put back, to drop the note in the log's turn
            dropping.set()
        await lock_gates(txn, account)
        if logging.is_set() and not reconciling:  # carol's note found hers, not yet dropped
            clock.advance(LEASE)
            reconciling.append(asyncio.ensure_future(gw.reconcile()))
            # SQLite: the reconciler's claim waits for the writer, the log's until it commits.
            # PostgreSQL: it claims and puts back, then drops the note in the log's turn, or done.
            ways = [asyncio.ensure_future(read.wait() if sqlite else dropping.wait()), asyncio.shield(reconciling[0])]
            await asyncio.wait(ways, return_when=asyncio.FIRST_COMPLETED)
            ways[0].cancel()

    async def reading(txn: Any, **kwargs: Any) -> list[intents_sql.GateIntent]:
        found = await due(txn, **kwargs)
        read.set()
        return found

    async def recording(self: PostService, *args: Any, **kwargs: Any) -> None:
        logging.set()
        return await record(self, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(intents_sql, "lock_gates", reconciler_meanwhile)
        patched.setattr(intents_sql, "due", reading)
        patched.setattr(PostService, "record_gates_changed", recording)
        token = await xrpc_login(gw, "carol", did)
        status, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, {
            "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])})
        settled = await reconciling[0]
    now = await pds_record(bluesky_pds, gate_uri)
    assert now is not None
    if sqlite:
        assert (status, settled) == (200, 0), answer
        assert await gate_entries(gw) == [("carol", post_id, THREADGATE, answer["cid"])]
        assert now["cid"] == answer["cid"]
    else:
        assert (now, await gate_entries(gw)) == (held, [])
        assert (status, answer.get("error"), settled) == (502, "UpstreamFailure", 1), answer
    assert await intents(gw) == []
    await verified_by_cli(gw)


async def test_a_change_read_off_the_pds_before_it_was_put_back_is_not_written_again(
    bluesky_pds: BlueskyPds, gw: Gateway, db_url: str, policy_dir: Path, clock: ManualClock,
    clients: list[Client], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Alice closes replies through another gateway; the PDS takes it and it waits at the log,
    when carol's change of the threadgate reads the PDS (alice's record). Alice's is then not
    logged (503) and put back, its note dropped; carol's, written down after, finds no change on
    its way, but one settled since its read, and is refused, 503 ``NotEnoughResources`` (try
    again), with nothing sent. The PDS holds the threadgate of before, the log no change, and
    it verifies. (Before: carol's held alice's record, read off the PDS, and, not logged
    either, wrote it back: closed replies that no entry of the log names.)"""
    did, _, _, post_uri, rkey, _ = await _carols_post(bluesky_pds, gw, clients)
    gate_uri = f"at://{did}/{THREADGATE}/{rkey}"
    held = await pds_record(bluesky_pds, gate_uri)
    gate = BlueskyAdapter.gate
    at_log, carol_read = asyncio.Event(), asyncio.Event()
    alices: list[asyncio.Future[tuple[int, Any]]] = []

    async with started_gateway(db_url, policy_dir, clock) as second:
        token, alice = await xrpc_login(gw, "carol", did), await xrpc_login(second, "alice", did)

        async def reading(adapter: BlueskyAdapter, remote_id: str, collection: str) -> Any:
            found = await gate(adapter, remote_id, collection)
            if at_log.is_set() and not carol_read.is_set():  # carol's, as alice's waits at the log
                carol_read.set()
                await alices[0]
            return found

        async def unlogged(self: PostService, caller: Any, *args: Any, **kwargs: Any) -> None:
            if caller.user == "alice":
                at_log.set()
                await carol_read.wait()
            raise DatabaseUnavailable()

        with monkeypatch.context() as patched:
            patched.setattr(BlueskyAdapter, "gate", reading)
            patched.setattr(PostService, "record_gates_changed", unlogged)
            alices.append(asyncio.ensure_future(xrpc(second, "com.atproto.repo.putRecord", alice, {
                "repo": did, "collection": THREADGATE, "rkey": rkey, "record": threadgate(post_uri, allow=[])})))
            await at_log.wait()
            carols, answer = await xrpc(gw, "com.atproto.repo.putRecord", token, {
                "repo": did, "collection": THREADGATE, "rkey": rkey,
                "record": threadgate(post_uri, allow=[{"$type": f"{THREADGATE}#mentionRule"}])})
        status, refused = await alices[0]
        assert await pds_record(bluesky_pds, gate_uri) == held
        assert (status, refused.get("error")) == (503, "NotEnoughResources"), refused
        assert (carols, answer.get("error")) == (503, "NotEnoughResources"), answer
        assert (await intents(gw), await gate_entries(gw)) == ([], [])
        clock.advance(LEASE)
        assert await gw.reconcile() == 0
        await verified_by_cli(second)
