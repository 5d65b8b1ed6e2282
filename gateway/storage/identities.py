"""SQL for the platform account each account was last found publishing as (``platform_identities``).

Public identifiers only (see ``gateway.services.identities.PlatformIdentity``): never a
credential, nor anything made from one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gateway.storage.db import Txn


@dataclass(frozen=True, slots=True)
class Spoke:
    """A platform account as kept: what identifies it (each a tuple of strings), how it is named."""

    keys: frozenset[tuple[str, ...]]
    handle: str
    asked_at: str
    partial: bool


async def spoke_as(txn: Txn, account: str) -> Spoke | None:
    """The platform account ``account`` was last found publishing as; None: never yet."""
    row = await txn.fetchone(
        "SELECT keys, handle, asked_at, partial FROM platform_identities WHERE account = ?", account)
    if row is None:
        return None
    keys = frozenset(tuple(str(part) for part in key) for key in json.loads(row["keys"]))
    return Spoke(keys=keys, handle=str(row["handle"]), asked_at=str(row["asked_at"]), partial=bool(row["partial"]))


async def first_spoke_as(txn: Txn, account: str, spoke: Spoke, *, at: int) -> Spoke:
    """``spoke`` kept as the account ``account`` publishes as, unless one is kept already (by
    another gateway meanwhile): the one kept."""
    await txn.execute(
        "INSERT INTO platform_identities (account, keys, handle, asked_at, partial, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO NOTHING", account, *_values(spoke), at)
    kept = await spoke_as(txn, account)
    assert kept is not None
    return kept


async def now_spoke_as(txn: Txn, account: str, spoke: Spoke, *, at: int) -> None:
    """``spoke`` kept as the account ``account`` publishes as, in place of any kept before."""
    await txn.execute(
        "INSERT INTO platform_identities (account, keys, handle, asked_at, partial, recorded_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account) DO UPDATE SET keys = excluded.keys, "
        "handle = excluded.handle, asked_at = excluded.asked_at, partial = excluded.partial, "
        "recorded_at = excluded.recorded_at", account, *_values(spoke), at)


def _values(spoke: Spoke) -> tuple[str, str, str, int]:
    return json.dumps(sorted(list(key) for key in spoke.keys)), spoke.handle, spoke.asked_at, int(spoke.partial)
