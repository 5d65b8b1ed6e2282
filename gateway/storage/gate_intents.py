"""SQL for the changes of published posts' gates written down before they go to the PDS.

A row is stored before the change is written (``status`` 'pending', held by its request until
``lease_until``); it goes in the transaction that logs the change (:func:`settle`), or once the
change is put back. A row left behind is claimed by one reconciler (:func:`claim`: a
compare-and-set on its lease, which a dead reconciler's claim also runs out of) and dropped by
that claim alone (:func:`drop`), or left for a later round (:func:`back_off`), or for its
account to be back (:func:`strand`, then :func:`release_stranded`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.lifecycle import State
from gateway.storage.db import Row, Txn

PENDING = "pending"
"""Held by the request that wrote it: logged and dropped, or put back and dropped, by it."""
RECONCILING = "reconciling"
"""Claimed by a reconciler, which puts the change back (or finds it needs no putting back)."""
STRANDED = "stranded"
"""Left by a reconciler that could not put it back for want of its account (no policy in force on
Bluesky, no credential it can read, or one that signs in to another account than the post's):
released by :func:`release_stranded` once there is one."""

TAKEN = "taken"
"""Why :func:`settle_logged` did not settle: a reconciler has claimed the intent, or it is gone."""
BUSY = "busy"
"""Why :func:`settle_logged` did not settle: another change of the gate is being put back."""

_COLUMNS = ("id, account, post_id, remote_id, collection, held, written, actor, status, claimed_by, attempts, "
            "lease_until, created_at")


@dataclass(frozen=True, kw_only=True)
class GateIntent:
    """One change of a published post's gate, written down before the PDS is asked."""

    id: str
    account: str
    post_id: str
    remote_id: str
    """The post's at:// address."""
    collection: str
    held: dict[str, Any] | None
    """The gate the PDS held before the change (None: none)."""
    written: dict[str, Any] | None
    """The gate the change writes (None: it deletes it)."""
    actor: str
    status: str = PENDING
    claimed_by: str | None = None
    attempts: int = 0
    lease_until: int
    created_at: int


def _intent(row: Row) -> GateIntent:
    return GateIntent(
        id=row["id"], account=row["account"], post_id=row["post_id"], remote_id=row["remote_id"],
        collection=row["collection"], held=json.loads(row["held"]), written=json.loads(row["written"]),
        actor=row["actor"], status=row["status"], claimed_by=row["claimed_by"], attempts=int(row["attempts"]),
        lease_until=int(row["lease_until"]), created_at=int(row["created_at"]),
    )


async def insert(txn: Txn, intents: Sequence[GateIntent]) -> None:
    """Store the intents of one request, all of them or none (one transaction)."""
    await txn.executemany(
        f"INSERT INTO gate_intents ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(i.id, i.account, i.post_id, i.remote_id, i.collection, json.dumps(i.held), json.dumps(i.written),
          i.actor, i.status, i.claimed_by, i.attempts, i.lease_until, i.created_at) for i in intents],
    )


async def _settled(txn: Txn, where: str, *args: Any) -> int:
    """Delete the intents ``where`` says, each gate's turn counted (:func:`turn`): how many. Taken
    in the account's turn (:func:`lock_gates`), so that two transactions counting the same gates
    never wait for each other's rows in turn."""
    rows = await txn.fetchall(f"DELETE FROM gate_intents WHERE {where} RETURNING post_id, collection", *args)
    for post_id, collection in sorted({(r["post_id"], r["collection"]) for r in rows}):
        # Not of a deleted post: its count was pruned with it (:func:`prune_turns`), and no
        # change of its gates is written down any more (``GateIntents.write_ahead``).
        await txn.execute(
            "INSERT INTO gate_turns (post_id, collection, turn) "
            "SELECT ?, ?, 1 WHERE NOT EXISTS (SELECT 1 FROM posts WHERE id = ? AND state = ?) "
            "ON CONFLICT (post_id, collection) DO UPDATE SET turn = gate_turns.turn + 1",
            post_id, collection, post_id, State.DELETED.value,
        )
    return len(rows)


async def prune_turns(txn: Txn, account: str, post_id: str) -> int:
    """Forget the counts of a post's gates as its deletion is recorded (in that transaction):
    how many. Safe once it is deleted, and then only: no change of its gates is written down
    any more (``GateIntents.write_ahead`` reads it deleted after the counts), so no request
    compares a count of it again, and one that read a count before finds the post deleted, not a
    count gone back to what it read. Taken in the account's turn (:func:`lock_gates`): a change
    of before dropped meanwhile (:func:`_settled`) counts before the pruning or reads the post
    deleted and counts nothing, never a count made again after it."""
    await lock_gates(txn, account)
    return await txn.execute("DELETE FROM gate_turns WHERE post_id = ?", post_id)


async def turn(txn: Txn, post_id: str, collection: str) -> int:
    """How many changes of the gate have been settled (logged, put back, or found needing
    neither): one whose count moved since a request read the gate may have changed it meanwhile."""
    row = await txn.fetchone("SELECT turn FROM gate_turns WHERE post_id = ? AND collection = ?", post_id, collection)
    return int(row["turn"]) if row is not None else 0


async def settle(txn: Txn, intent_id: str) -> bool:
    """Drop an intent its request still holds (put back by it, or never sent); False when a
    reconciler has claimed it (the request ran past its lease) or it is gone."""
    return await _settled(txn, "id = ? AND (status = ? OR claimed_by = ?)", intent_id, PENDING, intent_id) == 1


async def settle_logged(txn: Txn, intent_id: str) -> str | None:
    """Drop an intent its request still holds, in the transaction that logs its change, with the
    changes of the gate it took over (:func:`drop_taken`): None, or why not (:data:`TAKEN`,
    :data:`BUSY`). Every other change of the gate still on its way (another request's, another
    gateway's) is to put back, should its request not log it, what the log now says (this
    change's record), not what it found: a put-back of what it found would undo this logged
    change (the two wrote the same record, same CID, or this one reached the PDS first). That is
    a compare-and-set on each (still pending): one whose put-back has begun makes this change wait
    (:data:`BUSY`)."""
    row = await txn.fetchone(f"SELECT {_COLUMNS} FROM gate_intents WHERE id = ? AND status = ?", intent_id, PENDING)
    if row is None:
        return TAKEN
    logged = _intent(row)
    # Until this commits, no change of the account's gates is written down (:func:`lock_gates`):
    # one written after the read below would hold what the log said before this change.
    await lock_gates(txn, logged.account)
    for other in await of_gate(txn, logged.post_id, logged.collection):
        if other.id == intent_id or (other.status == RECONCILING and other.claimed_by == intent_id):
            continue
        if other.status != PENDING or await txn.execute(
            "UPDATE gate_intents SET held = ? WHERE id = ? AND status = ?", json.dumps(logged.written), other.id,
            PENDING,
        ) != 1:
            return BUSY
    # Its request's still, checked again as it is dropped: on PostgreSQL a reconciler may have
    # claimed it (the lease run out) since the read above, and put it back already.
    if await _settled(txn, "id = ? AND status = ?", intent_id, PENDING) != 1:
        return TAKEN
    await drop_taken(txn, intent_id)
    return None


GATE_LOCK = "byline-gate-intents:"
"""Named, with the account and the schema, in the advisory lock of an account's gate changes."""


async def lock_gates(txn: Txn, account: str) -> None:
    """Hold, until ``txn`` ends, the turn of the account's gate changes: taken by the transaction
    that writes intents down (``GateIntents.write_ahead``) before it reads those already stored,
    and by the one that logs a change (:func:`settle_logged`) before it moves theirs. So a change
    written down as another is logged is either moved by it or reads it logged, never neither.
    Taken too by every transaction that drops intents, which counts their gates' turns
    (:func:`turn`): one a batch of the log is counting waits for the whole batch.
    On PostgreSQL an advisory lock (READ COMMITTED lets an insert slip between the logging
    transaction's read and its commit); SQLite's writer lock is one already. One lock for all of
    an account's gates, not one a gate: a request that writes down several takes one turn, so it
    never holds one while it waits for another that a batch of the log holds."""
    if txn.dialect == "postgresql":
        await txn.fetchone("SELECT pg_advisory_xact_lock(hashtext(?), hashtext(? || current_schema())) AS locked",
                           GATE_LOCK, account)


async def claim_own(txn: Txn, intent_id: str, *, until: int) -> GateIntent | None:
    """Its request's claim on an intent, to put its change back: the intent as it is now (what it
    is to put back, as :func:`settle_logged` of another change may have moved it), or None where
    a reconciler has claimed it (the request ran past its lease) or it is gone. A compare-and-set
    on its status, against :func:`settle_logged`'s: the put-back, or the other change logged."""
    return await _as_now(txn, intent_id, await txn.execute(
        "UPDATE gate_intents SET status = ?, claimed_by = ?, lease_until = ? WHERE id = ? AND status = ?",
        RECONCILING, intent_id, until, intent_id, PENDING,
    ))


async def _as_now(txn: Txn, intent_id: str, claimed: int) -> GateIntent | None:
    """The intent as it is now where the claim that came before took it (``claimed``: its row count)."""
    row = await txn.fetchone(f"SELECT {_COLUMNS} FROM gate_intents WHERE id = ?", intent_id) if claimed == 1 else None
    return _intent(row) if row is not None else None


async def release(txn: Txn, intent_id: str, *, now: int) -> bool:
    """Hand an intent its request could not put back to the reconcilers at once (pending again)."""
    return await txn.execute(
        "UPDATE gate_intents SET status = ?, claimed_by = NULL, lease_until = ? "
        "WHERE id = ? AND (status = ? OR claimed_by = ?) AND lease_until > ?",
        PENDING, now, intent_id, PENDING, intent_id, now,
    ) == 1


async def of_gate(txn: Txn, post_id: str, collection: str) -> list[GateIntent]:
    """The intents stored for one gate of a post, oldest first."""
    rows = await txn.fetchall(
        f"SELECT {_COLUMNS} FROM gate_intents WHERE post_id = ? AND collection = ? ORDER BY created_at, id",
        post_id, collection,
    )
    return [_intent(r) for r in rows]


async def take_over(txn: Txn, intent_id: str, *, by: str, now: int, until: int) -> bool:
    """A newer change of the same gate (intent ``by``) takes an intent left behind (its lease
    run out) from the reconcilers until ``until``: a compare-and-set on the lease, as a claim is."""
    return await txn.execute(
        "UPDATE gate_intents SET status = ?, claimed_by = ?, lease_until = ? WHERE id = ? AND lease_until <= ?",
        RECONCILING, by, until, intent_id, now,
    ) == 1


async def drop_taken(txn: Txn, by: str) -> int:
    """Drop the intents the change ``by`` took over (it is logged: it stands over theirs)."""
    return await _settled(txn, "claimed_by = ? AND status = ?", by, RECONCILING)


async def release_taken(txn: Txn, by: str, *, now: int) -> int:
    """Hand the intents the change ``by`` took over back to the reconcilers at once (it is not
    logged: what they wrote may still stand)."""
    return await txn.execute(
        "UPDATE gate_intents SET lease_until = ? WHERE claimed_by = ? AND status = ? AND lease_until > ?",
        now, by, RECONCILING, now,
    )


async def due(txn: Txn, *, now: int, limit: int) -> list[GateIntent]:
    """Intents whose lease has run out, oldest lease first (over ``gate_intents_due``)."""
    rows = await txn.fetchall(
        f"SELECT {_COLUMNS} FROM gate_intents WHERE lease_until <= ? ORDER BY lease_until, id LIMIT ?", now, limit
    )
    return [_intent(r) for r in rows]


async def claim(txn: Txn, intent_id: str, *, token: str, now: int, until: int) -> GateIntent | None:
    """Claim an intent whose lease has run out for ``token`` until ``until``: the intent as it is
    now (a logged change may have moved what it puts back since it was read, :func:`settle_logged`)
    for one claimant alone (compare-and-set on the lease, which the winner moves on), else None."""
    return await _as_now(txn, intent_id, await txn.execute(
        "UPDATE gate_intents SET status = ?, claimed_by = ?, lease_until = ?, attempts = attempts + 1 "
        "WHERE id = ? AND lease_until <= ?",
        RECONCILING, token, until, intent_id, now,
    ))


async def drop(txn: Txn, intent_id: str, *, token: str) -> bool:
    """Drop an intent claimed by ``token``; False when another claim has taken it since."""
    return await _settled(txn, "id = ? AND claimed_by = ? AND status = ?", intent_id, token, RECONCILING) == 1


async def back_off(txn: Txn, intent_id: str, *, token: str, until: int) -> bool:
    """Leave an intent claimed by ``token`` for a later round, after ``until``."""
    return await txn.execute(
        "UPDATE gate_intents SET lease_until = ? WHERE id = ? AND claimed_by = ? AND status = ?",
        until, intent_id, token, RECONCILING,
    ) == 1


async def strand(txn: Txn, intent_id: str, *, token: str, until: int) -> bool:
    """Leave an intent claimed by ``token`` until its account is back (or ``until`` at the latest)."""
    return await txn.execute(
        "UPDATE gate_intents SET status = ?, lease_until = ? WHERE id = ? AND claimed_by = ? AND status = ?",
        STRANDED, until, intent_id, token, RECONCILING,
    ) == 1


async def stranded_counts(txn: Txn) -> dict[str, int]:
    """How many intents wait for each account."""
    rows = await txn.fetchall(
        "SELECT account, count(*) AS n FROM gate_intents WHERE status = ? GROUP BY account ORDER BY account", STRANDED
    )
    return {r["account"]: int(r["n"]) for r in rows}


async def stranded(txn: Txn) -> list[GateIntent]:
    """The intents that wait for their accounts, by account."""
    rows = await txn.fetchall(f"SELECT {_COLUMNS} FROM gate_intents WHERE status = ? ORDER BY account, id", STRANDED)
    return [_intent(r) for r in rows]


async def release_stranded(txn: Txn, intent_id: str, *, now: int) -> bool:
    """Hand an intent that waits for its account to the reconcilers at once (its account can
    put it back now: one account's may be of several posts' accounts, as a credential changes)."""
    return await txn.execute(
        "UPDATE gate_intents SET lease_until = ? WHERE id = ? AND status = ? AND lease_until > ?",
        now, intent_id, STRANDED, now,
    ) == 1


async def count(txn: Txn) -> int:
    """How many intents are stored: changes not logged and not yet put back (and those on their way)."""
    row = await txn.fetchone("SELECT count(*) AS n FROM gate_intents")
    return int(row["n"]) if row is not None else 0
