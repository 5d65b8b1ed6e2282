"""The sandbox platform's writes: posts sent at once are written together, one transaction a
batch, and still one post per idempotency key, whether the key came twice in one batch or was
stored before. Both databases."""

from __future__ import annotations

import asyncio
import json

from adapters.base import OutboundPost
from gateway.clock import ManualClock
from gateway.services.sandbox import SandboxTimeline
from gateway.storage.db import Database


def _post(key: str, text: str, **extra: str) -> OutboundPost:
    return OutboundPost(post_id=key, idempotency_key=key, text=text, **extra)  # type: ignore[arg-type]


async def test_posts_sent_at_once_are_one_post_per_key(db: Database) -> None:
    """Forty posts sent at once, one key twice and one key stored before: thirty-nine new posts,
    the repeated key answered with one post, the stored key with the post made before."""
    timeline = SandboxTimeline(db, ManualClock())
    before = await timeline.create(account="acct", post=_post("k-old", "Made before"))
    posts = [_post(f"k{n}", f"Post {n}", language="en") for n in range(39)]
    posts += [_post("k7", "Post 7 sent again"), _post("k-old", "Made before, sent again")]
    records = await asyncio.gather(*(timeline.create(account="acct", post=p) for p in posts))
    assert records[39] == records[7] and records[40] == before
    assert len({r.remote_id for r in records}) == 40
    async with db.read() as txn:
        rows = await txn.fetchall("SELECT id, account, text, options, idempotency_key FROM sandbox_posts")
    stored = {r["idempotency_key"]: r for r in rows}
    assert sorted(stored) == sorted([f"k{n}" for n in range(39)] + ["k-old"])
    assert (stored["k7"]["text"], stored["k-old"]["text"]) == ("Post 7", "Made before")
    assert json.loads(stored["k3"]["options"]) == {"language": "en"}
    assert {r.remote_id: r.account for r in records} == {r["id"]: "acct" for r in rows}
