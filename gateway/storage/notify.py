"""SQL for notifications: the notifier's cursor over the log, and the deliveries it owes.

A delivery is ``pending`` (due at ``next_at``), ``sending`` (claimed by one replica until
``lease_until``), ``delivered`` or ``failed`` (given up). Every change of state is a
compare-and-set on the state and the attempt count, so two replicas never both own one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.storage.db import Row, Txn

PENDING = "pending"
SENDING = "sending"
DELIVERED = "delivered"
FAILED = "failed"


@dataclass(frozen=True, kw_only=True)
class NewDelivery:
    """A webhook call or an email owed for one log entry."""

    msg_id: str
    channel: str  # "webhook" | "email"
    account: str | None
    target: str  # the webhook's URL or the email address
    credential: str | None  # the webhook secret's reference (env:NAME or file:PATH), never its value
    event_type: str
    log_idx: int
    payload: str


@dataclass(frozen=True, kw_only=True)
class Delivery(NewDelivery):
    """A delivery as stored, with its attempts so far."""

    state: str
    attempts: int
    next_at: int
    last_status: int | None
    last_error: str | None
    created_at: int
    delivered_at: int | None


_COLUMNS = (
    "msg_id, channel, account, target, credential, event_type, log_idx, payload, state, attempts, "
    "next_at, last_status, last_error, created_at, delivered_at"
)


def _delivery(row: Row) -> Delivery:
    return Delivery(
        msg_id=row["msg_id"], channel=row["channel"], account=row["account"], target=row["target"],
        credential=row["credential"], event_type=row["event_type"], log_idx=int(row["log_idx"]),
        payload=row["payload"], state=row["state"], attempts=int(row["attempts"]), next_at=int(row["next_at"]),
        last_status=None if row["last_status"] is None else int(row["last_status"]),
        last_error=row["last_error"], created_at=int(row["created_at"]),
        delivered_at=None if row["delivered_at"] is None else int(row["delivered_at"]),
    )


async def cursor(txn: Txn, *, lock: bool = False) -> int:
    """The index of the next log entry the notifier has not read; with ``lock``, held (on
    PostgreSQL, ``FOR UPDATE``: a second replica waits here, then sees the cursor moved; SQLite
    has one writer already)."""
    sql = "SELECT next_idx FROM notify_cursor WHERE id = 1"
    if lock and txn.dialect == "postgresql":
        sql += " FOR UPDATE"
    row = await txn.fetchone(sql)
    assert row is not None, "notify_cursor row missing: migrations did not run"
    return int(row["next_idx"])


async def advance_cursor(txn: Txn, *, was: int, to: int, at: int) -> bool:
    """Move the cursor from ``was`` to ``to``; False when someone else moved it first."""
    return await txn.execute(
        "UPDATE notify_cursor SET next_idx = ?, updated_at = ? WHERE id = 1 AND next_idx = ?", to, at, was
    ) == 1


async def log_entries_from(txn: Txn, start: int, *, limit: int) -> list[Row]:
    """Up to ``limit`` log entries from index ``start`` on, in order, with the text each commits to."""
    return await txn.fetchall(
        "SELECT e.idx, e.entry, t.text FROM log_entries e LEFT JOIN log_texts t ON t.idx = e.idx "
        "WHERE e.idx >= ? ORDER BY e.idx LIMIT ?",
        start, limit,
    )


async def insert_deliveries(txn: Txn, deliveries: Sequence[NewDelivery], *, at: int) -> int:
    """Add deliveries, due now; one whose id exists already is left as it is. How many were added."""
    added = 0
    for d in deliveries:
        added += await txn.execute(
            "INSERT INTO notify_deliveries (msg_id, channel, account, target, credential, event_type, log_idx, "
            "payload, state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) "
            "ON CONFLICT (msg_id) DO NOTHING",
            d.msg_id, d.channel, d.account, d.target, d.credential, d.event_type, d.log_idx, d.payload,
            PENDING, at, at,
        )
    return added


async def due(txn: Txn, *, now: int, limit: int) -> list[Delivery]:
    """Deliveries due now, and those whose sender's lease ran out (it died mid-way), oldest first."""
    rows = await txn.fetchall(
        f"SELECT {_COLUMNS} FROM notify_deliveries WHERE (state = ? AND next_at <= ?) "
        "OR (state = ? AND lease_until <= ?) ORDER BY next_at, msg_id LIMIT ?",
        PENDING, now, SENDING, now, limit,
    )
    return [_delivery(r) for r in rows]


async def claim(txn: Txn, d: Delivery, *, now: int, lease_until: int) -> bool:
    """Take a due delivery for one attempt; False when another sender took it or it changed."""
    return await txn.execute(
        "UPDATE notify_deliveries SET state = ?, attempts = attempts + 1, lease_until = ? "
        "WHERE msg_id = ? AND state = ? AND attempts = ? "
        "AND ((state = ? AND next_at <= ?) OR (state = ? AND lease_until <= ?))",
        SENDING, lease_until, d.msg_id, d.state, d.attempts, PENDING, now, SENDING, now,
    ) == 1


async def settle(
    txn: Txn, msg_id: str, *, attempt: int, state: str, next_at: int | None, status: int | None,
    error: str | None, at: int,
) -> bool:
    """Record the outcome of attempt ``attempt``; False when the claim was lost meanwhile (its
    lease ran out and another sender took it)."""
    changes: dict[str, Any] = {"state": state, "lease_until": None, "last_status": status, "last_error": error}
    if next_at is not None:
        changes["next_at"] = next_at
    if state == DELIVERED:
        changes["delivered_at"] = at
    sets = ", ".join(f"{k} = ?" for k in changes)
    return await txn.execute(
        f"UPDATE notify_deliveries SET {sets} WHERE msg_id = ? AND state = ? AND attempts = ?",
        *changes.values(), msg_id, SENDING, attempt,
    ) == 1


async def deliveries(txn: Txn, *, log_idx: int | None = None) -> list[Delivery]:
    """Every delivery (of one log entry), in the order they were made."""
    if log_idx is None:
        rows = await txn.fetchall(f"SELECT {_COLUMNS} FROM notify_deliveries ORDER BY log_idx, msg_id")
    else:
        rows = await txn.fetchall(
            f"SELECT {_COLUMNS} FROM notify_deliveries WHERE log_idx = ? ORDER BY msg_id", log_idx
        )
    return [_delivery(r) for r in rows]
