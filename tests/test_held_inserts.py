"""New posts held in the log writer's transaction and inserted together (``Txn.defer``): on
PostgreSQL the posts a batch's works store go in with one statement before the next one, each
checked against its policy in force as it would have been alone; one refused fails its own
work, not the work whose statement inserted it, and the rest commit. SQLite inserts each at once
(no round trip to save), with the same outcomes. Both databases, through the real appender."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from gateway.audit.appender import Appender, LogTxn
from gateway.clock import ManualClock
from gateway.storage import posts as sql
from gateway.storage.db import Database
from gateway.types import AccountName, Micros, PostId, UserName


class Moved(Exception):
    """What a refused work's caller meets (the services raise ``PolicyMoved``)."""


def _post(post_id: str) -> sql.PostRecord:
    return sql.PostRecord(id=PostId(post_id), account=AccountName("acct"), author=UserName("alice"),
                          state="scheduled", version=1, text=f"words of {post_id}", created_at=Micros(1),
                          updated_at=Micros(1), options={"visibility": "public"}, publish_at=Micros(1))


def _store(post_id: str, sha: str) -> Any:
    """A work storing a new post under the policy ``sha``, as ``PostService`` does: held where
    the transaction holds, refused with :class:`Moved` where ``sha`` is not in force."""
    async def work(ltx: LogTxn) -> str:
        error = Moved(post_id)
        if not await sql.insert_new_post(ltx.txn, _post(post_id), policy_sha256=sha, held=(ltx.work, error)):
            raise error
        await ltx.append("test.stored", actor="alice", account="acct", post=post_id, data={})
        return post_id
    return work


async def _set_policy(ltx: LogTxn) -> str:
    await ltx.txn.execute("UPDATE policy_heads SET sha256 = ? WHERE account = ?", "p2", "acct")
    await ltx.append("test.policy", actor="admin", account="acct", data={})
    return "p2"


async def _count(ltx: LogTxn) -> int:
    row = await ltx.txn.fetchone("SELECT count(*) AS n FROM posts")
    assert row is not None
    return int(row["n"])


async def _stored(db: Database) -> dict[str, tuple[str, ...]]:
    async with db.read() as txn:
        posts = {r["id"]: (r["text"], r["state"]) for r in await txn.fetchall("SELECT id, text, state FROM posts")}
        versions = {r["post_id"]: r["text"] for r in await txn.fetchall("SELECT post_id, text FROM post_versions")}
    return {post_id: (*row, versions[post_id]) for post_id, row in posts.items()}


@asynccontextmanager
async def appender_for_acct(db: Database) -> AsyncIterator[Appender]:
    """``acct``'s policy head at p1, and the log writer running with room for 64 works a batch;
    stopped after."""
    async with db.write() as txn:
        await txn.execute("INSERT INTO policy_heads (account, sha256, summary, updated_at) VALUES (?, ?, ?, ?)",
                          "acct", "p1", "{}", 0)
    appender = Appender(db, ManualClock(), max_batch=64)
    await appender.start()
    try:
        yield appender
    finally:
        await appender.stop()


async def _in_one_batch(db: Database, works: list[Any]) -> tuple[list[Any], int]:
    async with appender_for_acct(db) as appender:
        outcomes = await asyncio.gather(*(appender.submit(w) for w in works), return_exceptions=True)
    return outcomes, appender.batches


async def test_a_refused_post_fails_its_own_work_and_the_rest_commit(db: Database) -> None:
    """Stored under p1; the policy moved to p2 (its statement inserts what was held first, as
    p1 was still in force); one stored under p1 after that (refused), one under p2; a read whose
    statement inserts those two sees the refusal land on the work that stored it, and counts,
    when the batch runs again without it, the three posts stored."""
    outcomes, batches = await _in_one_batch(db, [
        _store("a", "p1"), _set_policy, _store("c", "p1"), _store("d", "p2"), _count,
    ])
    assert batches == 1
    assert outcomes[:2] == ["a", "p2"]
    assert isinstance(outcomes[2], Moved) and outcomes[2].args == ("c",)
    assert outcomes[3:] == ["d", 2]
    assert await _stored(db) == {
        "a": ("words of a", "scheduled", "words of a"), "d": ("words of d", "scheduled", "words of d"),
    }


async def test_posts_held_to_the_end_of_the_batch_are_checked_and_stored(db: Database) -> None:
    """No statement after them: the batch's end inserts what is held, and a refusal there fails
    its work alone."""
    outcomes, batches = await _in_one_batch(db, [_store("a", "p1"), _store("b", "p0"), _store("c", "p1")])
    assert batches == 1
    assert outcomes[0] == "a" and outcomes[2] == "c"
    assert isinstance(outcomes[1], Moved) and outcomes[1].args == ("b",)
    assert set(await _stored(db)) == {"a", "c"}


async def test_a_held_insert_the_database_refuses_fails_the_works_that_held_it(db: Database) -> None:
    """Two works storing one id: the statement inserting them together fails (on PostgreSQL the
    transaction is then aborted, and the next work's read meets that), so both works that held
    it fail, and the read, run again, does not; on SQLite the second insert fails alone."""
    outcomes, _ = await _in_one_batch(db, [_store("a", "p1"), _store("a", "p1"), _count])
    if db.dialect == "postgresql":
        assert all(isinstance(o, Exception) and "duplicate key" in str(o) for o in outcomes[:2]), outcomes
        assert outcomes[2] == 0
        assert await _stored(db) == {}
    else:
        assert outcomes[0] == "a" and isinstance(outcomes[1], Exception) and outcomes[2] == 1
        assert set(await _stored(db)) == {"a"}
