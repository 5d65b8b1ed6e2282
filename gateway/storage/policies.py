"""SQL for the policy history: one row a recorded version, and each account's version in force.

``policy_versions`` holds every version an account's policy went through, numbered from 1 in
the order they were recorded (a removal is a version too, with no file); ``policy_heads`` the
one in force. Every gateway sharing the database reads the policy in force from here, so the
replicas enforce one policy whatever their own files say at the moment (see
``gateway.services.policies``).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from gateway.storage.db import Txn


@dataclass(frozen=True, slots=True)
class Head:
    """An account's policy in force: its version, the file's SHA-256 and name, its summary."""

    account: str
    version: int
    sha256: str
    file: str | None
    summary: str
    has_text: bool = True
    """Whether the version's file text is recorded (versions recorded before texts were kept lack it)."""


async def heads(txn: Txn) -> dict[str, Head]:
    """Every account's policy in force."""
    rows = await txn.fetchall(
        "SELECT h.account, h.version, h.sha256, h.file, h.summary, v.body IS NOT NULL AS has_text "
        "FROM policy_heads h LEFT JOIN policy_versions v ON v.account = h.account AND v.version = h.version"
    )
    return {r["account"]: Head(r["account"], int(r["version"]), r["sha256"], r["file"], r["summary"],
                               bool(r["has_text"])) for r in rows}


async def head_sha256(txn: Txn, account: str) -> str | None:
    """The SHA-256 of the policy in force for ``account``; None when it has none."""
    row = await txn.fetchone("SELECT sha256 FROM policy_heads WHERE account = ?", account)
    return None if row is None else str(row["sha256"])


async def head_sha256s(txn: Txn, accounts: Collection[str]) -> dict[str, str | None]:
    """:func:`head_sha256` of each of ``accounts``, in one statement."""
    if not accounts:
        return {}
    names = sorted(accounts)
    rows = await txn.fetchall(
        f"SELECT account, sha256 FROM policy_heads WHERE account IN ({', '.join('?' for _ in names)})", *names)
    found: dict[str, str | None] = dict.fromkeys(names)
    found.update((str(r["account"]), str(r["sha256"])) for r in rows)
    return found


async def last_version(txn: Txn, account: str) -> int:
    """The number of the account's last recorded version (0 when it has none)."""
    row = await txn.fetchone("SELECT max(version) AS v FROM policy_versions WHERE account = ?", account)
    return int(row["v"]) if row is not None and row["v"] is not None else 0


async def summary_before(txn: Txn, account: str, version: int) -> str | None:
    """The summary recorded with the account's version before ``version`` (a removal's is the
    summary of the policy it removed); None when ``version`` is its first."""
    row = await txn.fetchone(
        "SELECT summary FROM policy_versions WHERE account = ? AND version < ? ORDER BY version DESC LIMIT 1",
        account, version,
    )
    return None if row is None else str(row["summary"])


@dataclass(frozen=True, slots=True)
class Recorded:
    """What the database holds of one version of an account's policy file."""

    platform: str | None
    """The platform its summary names (None: none)."""
    file: str | None
    body: str | None
    """Its text (None: recorded before texts were kept)."""


async def recorded(txn: Txn, account: str, sha256: str) -> Recorded | None:
    """The account's last recorded version with this hash; None when none was recorded with it."""
    row = await txn.fetchone(
        "SELECT summary, file, body FROM policy_versions WHERE account = ? AND sha256 = ? "
        "ORDER BY version DESC LIMIT 1", account, sha256,
    )
    if row is None:
        return None
    summary = json.loads(row["summary"])
    platform = summary.get("platform") if isinstance(summary, dict) else None
    return Recorded(platform=platform if isinstance(platform, str) else None, file=row["file"],
                    body=None if row["body"] is None else str(row["body"]))


async def ever_recorded(txn: Txn, account: str, sha256: str) -> bool:
    """Whether a file with this SHA-256 was ever a version of the account's policy."""
    row = await txn.fetchone(
        "SELECT 1 AS one FROM policy_versions WHERE account = ? AND sha256 = ? LIMIT 1", account, sha256
    )
    return row is not None


async def bodies(txn: Txn, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The recorded text of each (account, SHA-256) asked for that has one."""
    found: dict[tuple[str, str], str] = {}
    for account, sha256 in wanted:
        row = await txn.fetchone(
            "SELECT body FROM policy_versions WHERE account = ? AND sha256 = ? AND body IS NOT NULL "
            "ORDER BY version DESC LIMIT 1", account, sha256,
        )
        if row is not None:
            found[(account, sha256)] = str(row["body"])
    return found


async def record(
    txn: Txn, *, account: str, version: int, sha256: str | None, file: str | None, body: str | None,
    summary: str, at: int,
) -> None:
    """Record a version (a removal when ``sha256`` is None) and make it the one in force.

    The primary key (account, version) refuses a second record of one version: two gateways
    that both saw the same change cannot both record it."""
    await txn.execute(
        "INSERT INTO policy_versions (account, version, sha256, file, body, summary, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", account, version, sha256, file, body, summary, at,
    )
    await txn.execute("DELETE FROM policy_heads WHERE account = ?", account)
    if sha256 is not None:
        await txn.execute(
            "INSERT INTO policy_heads (account, sha256, summary, updated_at, version, file) VALUES (?, ?, ?, ?, ?, ?)",
            account, sha256, summary, at, version, file,
        )


async def ever_notifying(txn: Txn) -> bool:
    """Whether any version recorded (in force or not) may name webhooks: its text mentions
    ``notify`` (versions whose text is not kept are not seen)."""
    row = await txn.fetchone("SELECT 1 AS one FROM policy_versions WHERE body LIKE '%notify%' LIMIT 1")
    return row is not None


async def keep_body(txn: Txn, *, account: str, sha256: str, body: str) -> None:
    """Keep the text of a version recorded before texts were kept (the files still had it)."""
    await txn.execute(
        "UPDATE policy_versions SET body = ? WHERE account = ? AND sha256 = ? AND body IS NULL", body, account, sha256
    )
