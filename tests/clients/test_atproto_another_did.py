"""A kept change of a Bluesky post (a deletion whose answer was lost, a gate change neither
logged nor put back) while the account's credential signs in to another account (another DID)
than the post's: stranded, said once and counted, not tried at every lease, and settled in the
first round once the credential is the post's account's again. Through Byline, with the real
``atproto`` SDK, to a real PDS, on both databases."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from atproto import Client
from structlog.testing import capture_logs

from adapters.base import AdapterError
from adapters.bluesky import BlueskyAdapter
from gateway.clock import ManualClock
from tests.audit.logtools import verified_by_cli
from tests.clients.test_atproto_gate_intents import intents, left_unlogged, put_back_and_nothing_kept
from tests.clients.test_atproto_gates import _carols_post, clients, clock, gw, xrpc_login
from tests.clients.test_atproto_threads import POST, pds_record, xrpc
from tests.clients.test_published_races import recorded_state, warned_over_hours
from tests.conftest import Gateway
from tests.platforms.bluesky.fixture import BlueskyPds
from tests.test_metrics import scrape, value

__all__ = ["clients", "clock", "gw"]  # the gate tests' fixtures, for these tests too


class Credential:
    """``skygates``'s policy file, turned to sign in as bob.test (another DID than carol.test's,
    where its posts are) and back."""

    def __init__(self, pds: BlueskyPds, policy_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.file = policy_dir / "skygates.yaml"
        self.written = self.file.read_text(encoding="utf-8")
        self.bob = pds.account("bob.test")
        self.carol = pds.account("carol.test")
        monkeypatch.setenv("BOB_BSKY_APP_PASSWORD", self.bob.app_password)

    async def to_bob(self, gw: Gateway) -> None:
        """The file names bob.test and bob's app password."""
        moved = self.written.replace(f"handle: {self.carol.handle}", f"handle: {self.bob.handle}").replace(
            "env:CAROL_BSKY_APP_PASSWORD", "env:BOB_BSKY_APP_PASSWORD")
        assert moved != self.written
        self.file.write_text(moved, encoding="utf-8")
        assert await gw.sync_policies() == ["skygates"]

    async def back(self, gw: Gateway) -> None:
        """The file as it was: carol.test again."""
        self.file.write_text(self.written, encoding="utf-8")
        assert await gw.sync_policies() == ["skygates"]

    def secrets(self) -> tuple[str, str]:
        """The two app passwords, which nothing may show."""
        return self.bob.app_password, self.carol.app_password


async def test_a_kept_deletion_with_a_credential_of_another_did_is_stranded_then_settled_once_it_is_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, policy_dir: Path, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol deletes her post; the PDS deletes it and the answer is lost (502), so the deletion
    is kept. ``skygates`` then signs in as bob.test. The publisher says once that the change is
    stranded (``post_change_stranded``, naming the account and the post, no password), counts it
    in ``/metrics`` and ``/readyz``, and is quiet at rounds hours apart, the post still
    published in the record. Once the file is carol's again, the very next round records the
    deletion, and the log verifies. (Before: ``change_not_settled`` at every lease, nothing
    telling it from a PDS that is away, and an hour's wait once the credential was put back.)"""
    did, _, _, post_uri, rkey, post_id = await _carols_post(bluesky_pds, gw, clients)
    credential = Credential(bluesky_pds, policy_dir, monkeypatch)
    delete = BlueskyAdapter.delete

    async def lost(adapter: BlueskyAdapter, remote_id: str) -> None:
        await delete(adapter, remote_id)
        raise AdapterError("bluesky: no answer within 30 s", retryable=True)

    carol = await xrpc_login(gw, "carol", did)
    with monkeypatch.context() as patched:
        patched.setattr(BlueskyAdapter, "delete", lost)
        status, answer = await xrpc(gw, "com.atproto.repo.deleteRecord", carol,
                                    {"repo": did, "collection": POST, "rkey": rkey})
    assert (status, answer["error"]) == (502, "UpstreamFailure"), answer
    assert (await pds_record(bluesky_pds, post_uri), await recorded_state(gw, post_id)) == (None, "published")

    await credential.to_bob(gw)
    said, logs = await warned_over_hours(gw, clock)
    assert said == [("post_change_stranded", "skygates", post_id, "delete")], logs
    [stranded] = [e for e in logs if e["event"] == "post_change_stranded"]
    assert post_uri in stranded["reason"] and "another account" in stranded["reason"], stranded
    assert not any(secret in repr(logs) for secret in credential.secrets())
    assert await recorded_state(gw, post_id) == "published"
    assert value(await scrape(gw), "byline_post_changes_stranded") == 1
    ready = await gw.client.get("/readyz")
    assert (ready.status, (await ready.json())["post_changes_stranded"]) == (200, {"skygates": 1})

    await credential.back(gw)
    await gw.tick()
    assert await recorded_state(gw, post_id) == "deleted"
    assert value(await scrape(gw), "byline_post_changes_stranded") == 0
    assert (await (await gw.client.get("/readyz")).json())["post_changes_stranded"] == {}
    await verified_by_cli(gw)


async def test_a_gate_change_left_with_a_credential_of_another_did_is_stranded_then_put_back_once_it_is_back(
    bluesky_pds: BlueskyPds, gw: Gateway, clock: ManualClock, policy_dir: Path, clients: list[Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Carol's change of her threadgate is neither logged nor put back, and ``skygates`` then
    signs in as bob.test: the reconciler says once that it is stranded (``gate_change_stranded``),
    counts it apart, writes nothing to bob's repo or carol's, and is quiet at tries hours apart.
    Once the file is carol's again, the very next round puts the threadgate back, and nothing is
    left. (Before: ``xrpc_gate_left`` at every try, as for a PDS away.)"""
    post_id, gate_uri, held, changed, outage = await left_unlogged(bluesky_pds, gw, clients, monkeypatch, "refusing")
    outage.back()
    [left] = await intents(gw)
    credential = Credential(bluesky_pds, policy_dir, monkeypatch)
    await credential.to_bob(gw)
    writes = len(outage.writes)
    with capture_logs() as logs:
        for wait in (timedelta(0), timedelta(hours=2), timedelta(hours=2)):
            clock.advance(wait)
            assert await gw.reconcile() == 0
    said = [(e["event"], e["account"], e["post_id"], e["remote_id"]) for e in logs if e["log_level"] == "warning"]
    assert said == [("gate_change_stranded", "skygates", post_id, left.remote_id)], logs
    assert not any(secret in repr(logs) for secret in credential.secrets())
    assert (await pds_record(bluesky_pds, gate_uri), len(outage.writes)) == (changed, writes)
    bobs_gate = gate_uri.replace(bluesky_pds.account("carol.test").did, credential.bob.did)
    assert await pds_record(bluesky_pds, bobs_gate) is None
    samples = await scrape(gw)
    assert (value(samples, "byline_gate_changes_left"), value(samples, "byline_gate_changes_stranded")) == (1, 1)

    await credential.back(gw)
    assert await gw.reconcile() == 1
    await put_back_and_nothing_kept(bluesky_pds, gw, gate_uri, held)
    assert value(await scrape(gw), "byline_gate_changes_stranded") == 0
