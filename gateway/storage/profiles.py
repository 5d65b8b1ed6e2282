"""SQL for profile bylines: one row for each change of an account's byline, by policy version.

A row is queued (``pending``) in the transaction that records the policy version causing it,
so exactly one exists however many gateways saw the change; queuing a newer one supersedes
the account's older ones still pending. A gateway claims a due row (``sending``, with a
lease) with a compare-and-set, sets the line on the platform, and marks it ``done`` with the
text it set, or puts it back (``pending``, later) with the platform's reason. A claim whose
gateway died runs out of lease and is claimed again: setting the same line twice is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.storage.db import Row, Txn

PENDING, SENDING, DONE, SUPERSEDED = "pending", "sending", "done", "superseded"


@dataclass(frozen=True, slots=True)
class Update:
    """One queued change of an account's byline; ``template`` None removes the line."""

    account: str
    version: int
    platform: str
    template: str | None
    voice: str | None
    state: str
    attempts: int
    text: str | None
    last_error: str | None


_COLUMNS = "account, version, platform, template, voice, state, attempts, text, last_error"


def _update(r: Row) -> Update:
    return Update(account=r["account"], version=int(r["version"]), platform=r["platform"], template=r["template"],
                  voice=r["voice"], state=r["state"], attempts=int(r["attempts"]), text=r["text"],
                  last_error=r["last_error"])


async def last(txn: Txn, account: str) -> Update | None:
    """The account's latest queued change, whatever its state."""
    row = await txn.fetchone(
        f"SELECT {_COLUMNS} FROM profile_updates WHERE account = ? ORDER BY version DESC LIMIT 1", account)
    return None if row is None else _update(row)


async def queue(
    txn: Txn, *, account: str, version: int, platform: str, template: str | None, voice: str | None, at: int,
) -> None:
    """Queue a change of the byline for policy ``version``, superseding older ones not yet sent."""
    await txn.execute(
        "UPDATE profile_updates SET state = ? WHERE account = ? AND state = ? AND version < ?",
        SUPERSEDED, account, PENDING, version,
    )
    await txn.execute(
        "INSERT INTO profile_updates (account, version, platform, template, voice, state, next_at, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        account, version, platform, template, voice, PENDING, at, at,
    )


async def due(txn: Txn, *, now: int, limit: int = 50) -> list[Update]:
    """Changes to send now: pending and due, or claimed by a gateway whose lease ran out."""
    rows = await txn.fetchall(
        f"SELECT {_COLUMNS} FROM profile_updates WHERE (state = ? AND next_at <= ?) "
        "OR (state = ? AND lease_until <= ?) ORDER BY next_at, account LIMIT ?",
        PENDING, now, SENDING, now, limit,
    )
    return [_update(r) for r in rows]


async def claim(txn: Txn, update: Update, *, now: int, lease_until: int) -> bool:
    """Take a due change for this gateway until ``lease_until``; False when another took it."""
    count = await txn.execute(
        "UPDATE profile_updates SET state = ?, lease_until = ?, attempts = attempts + 1 "
        "WHERE account = ? AND version = ? AND ((state = ? AND next_at <= ?) OR (state = ? AND lease_until <= ?))",
        SENDING, lease_until, update.account, update.version, PENDING, now, SENDING, now,
    )
    return _rowcount(count) == 1


async def done(txn: Txn, update: Update, *, text: str, lease_until: int, at: int) -> bool:
    """Mark a claimed change set, with its text; False when the claim was lost meanwhile."""
    count = await txn.execute(
        "UPDATE profile_updates SET state = ?, text = ?, last_error = NULL, lease_until = NULL, done_at = ? "
        "WHERE account = ? AND version = ? AND state = ? AND lease_until = ?",
        DONE, text, at, update.account, update.version, SENDING, lease_until,
    )
    return _rowcount(count) == 1


async def retry(txn: Txn, update: Update, *, error: str, next_at: int, lease_until: int) -> bool:
    """Put a claimed change back, to be tried at ``next_at``, with the platform's reason."""
    count = await txn.execute(
        "UPDATE profile_updates SET state = ?, last_error = ?, next_at = ?, lease_until = NULL "
        "WHERE account = ? AND version = ? AND state = ? AND lease_until = ?",
        PENDING, error, next_at, update.account, update.version, SENDING, lease_until,
    )
    return _rowcount(count) == 1


async def previous_texts(txn: Txn, account: str) -> list[str]:
    """The texts Byline set on the account's profile before, newest first."""
    rows = await txn.fetchall(
        "SELECT text FROM profile_updates WHERE account = ? AND state = ? AND text IS NOT NULL "
        "ORDER BY version DESC LIMIT 20", account, DONE,
    )
    return [str(r["text"]) for r in rows]


async def failing(txn: Txn) -> dict[str, str]:
    """Accounts whose byline is waiting after a refusal, with the platform's reason."""
    rows = await txn.fetchall(
        "SELECT account, last_error FROM profile_updates WHERE state IN (?, ?) AND last_error IS NOT NULL",
        PENDING, SENDING,
    )
    return {str(r["account"]): str(r["last_error"]) for r in rows}


def _rowcount(result: object) -> int:
    return int(result) if isinstance(result, int) else 0
