"""The public reads the words of the versions of a post that went out, and no others.

A post's earlier drafts (a version edited away while it was held, or one its co-signers never
saw go out) stay withheld from the public once the post is published: their words and salts go
to the account's people and to auditors only. Words sent to the platform as an edit of the
published post went out, and are public.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateway.appkeys import CHECKPOINTS
from gateway.audit.entry import text_commitment
from gateway.clock import ManualClock
from tests.audit.logtools import byline_in_process
from tests.clients.test_published_races import published
from tests.clients.world import World
from tests.conftest import Gateway, started_gateway

DRAFT = "launch is on 12 March, price $49"
SENT = "launch soon"


async def _texts(gw: Gateway, user: str | None) -> dict[str, dict[str, Any]]:
    """``/log/texts`` over the whole log as ``user`` reads it (None: the public), by hash."""
    status, body = await gw.call(user, "GET", f"/log/texts?start=0&end={await gw.log_size()}")
    assert status == 200, body
    return {t["hash"]: t for t in body["texts"]}


async def _entries(gw: Gateway, post_id: str) -> list[dict[str, Any]]:
    """The post's log entries as anyone reads them: their type, version and text hash."""
    status, body = await gw.call(None, "GET", f"/log/entries?start=0&end={await gw.log_size()}")
    assert status == 200, body
    found = []
    for e in body["entries"]:
        entry = json.loads(base64.b64decode(e["leaf"]))
        if entry.get("post") == post_id:
            found.append({"type": entry["type"], "version": entry["data"].get("version"),
                          "hash": entry["data"].get("text_hash")})
    return found


async def _withheld_by_verifier(gw: Gateway) -> int:
    """``byline audit verify --url`` against ``gw``: it must pass; how many texts it counts withheld."""
    await gw.app[CHECKPOINTS].sign_now()
    url = str(gw.client.make_url("")).rstrip("/")
    result = await byline_in_process("audit", "verify", "--key", gw.app[CHECKPOINTS].verifier_key(), "--url", url,
                                     "--no-state", "--no-progress", "--workers", "1")
    assert result.code == 0, result.text
    counted = re.search(r"(\d+) texts checked, (\d+) erased, (\d+) withheld from the public", result.text)
    assert counted is not None, result.text
    return int(counted[3])


async def test_a_draft_edited_away_before_the_post_went_out_stays_withheld(
    db_url: str, policy_dir: Path, clock: ManualClock
) -> None:
    """Carol's co-signed post, held with v1 (a date and a price), edited while held to v2 and
    published: the public reads v2's words and not v1's (nor its salt), on /log/texts, the
    public pages and `byline audit who`; bob (an approver) and erin (an auditor) still read v1;
    the verifier passes, counting v1 withheld."""
    async with started_gateway(db_url, policy_dir, clock, auditors="erin") as gw:
        post = await gw.submit("carol", "cosigned", DRAFT)
        status, body = await gw.call("carol", "PATCH", f"/v1/posts/{post['id']}", {"text": SENT})
        assert status == 200, body
        for approver in ("bob", "dave"):
            assert (await gw.act(approver, post["id"], "approve"))[0] == 200
        clock.advance(timedelta(minutes=2))
        await gw.tick()
        assert (await gw.get("carol", post["id"]))["state"] == "published"

        entries = await _entries(gw, post["id"])
        [v1] = [e["hash"] for e in entries if e["type"] == "post.submitted"]
        [v2] = [e["hash"] for e in entries if e["type"] == "post.edited"]
        [claim] = [e["hash"] for e in entries if e["type"] == "post.publishing"]
        public = await _texts(gw, None)
        assert public[v1] == {"hash": v1, "salt": None, "text": None, "withheld": True}
        assert public[v2]["text"] == SENT and not public[v2]["withheld"]
        assert public[claim]["text"] == f"{SENT}\n\n—carol"
        assert text_commitment(SENT, bytes.fromhex(public[v2]["salt"])) == v2
        assert all(DRAFT not in str(t["text"]) for t in public.values())
        for page in ("/@cosigned", f"/audit?kind=post&q={post['id']}", "/audit?kind=account&q=cosigned",
                     "/@cosigned/voice.atom"):
            resp = await gw.client.get(page)
            assert resp.status == 200, page
            shown = await resp.text()
            assert "12 March" not in shown and "$49" not in shown, page
        assert "launch soon" in await (await gw.client.get("/@cosigned")).text()
        url = str(gw.client.make_url("")).rstrip("/")
        told = await byline_in_process("audit", "who", "--post", post["id"], "--url", url)
        assert told.code == 0 and "carol" in told.text and "12 March" not in told.text, told.text

        for user in ("bob", "erin"):
            theirs = await _texts(gw, user)
            assert theirs[v1]["text"] == DRAFT and not theirs[v1]["withheld"], user
            assert text_commitment(DRAFT, bytes.fromhex(theirs[v1]["salt"])) == v1
        assert (await _texts(gw, "alice"))[v1]["text"] == DRAFT  # the account's owner
        assert await _withheld_by_verifier(gw) == 1


async def test_a_published_post_edited_on_mastodon_shows_both_versions(world: World) -> None:
    """Alice's direct post on Mastodon, edited after it went out: both versions went out (the
    platform shows its edit history), and the public reads both; the verifier withholds none."""
    gw = world.gateway
    api, status_id = await published(world, "Launch day")
    await world.run(api.status_update, status_id, "Launch day, doors at nine")
    assert [s.text for s in world.upstream.statuses(world.upstream_account)] == ["Launch day, doors at nine"]

    entries = await _entries(gw, status_id)
    assert [e["type"] for e in entries] == [
        "post.submitted", "post.publishing", "post.published", "post.revising", "post.revised"]
    public = await _texts(gw, None)
    said = [public[e["hash"]]["text"] for e in entries if e["hash"] is not None]
    assert said == ["Launch day", "Launch day", "Launch day, doors at nine", "Launch day, doors at nine"]
    assert await _withheld_by_verifier(gw) == 0

