"""The figures the metrics page reads at scrape: each an indexed lookup or count."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.storage.db import Txn


@dataclass(frozen=True, kw_only=True)
class Gauges:
    """What the database says now."""

    due: int
    """Scheduled posts whose ``publish_at`` has come."""
    log_size: int
    checkpoint_size: int
    checkpoint_at: int | None
    """When the latest checkpoint was signed (microseconds), None when none was."""
    gate_changes_left: int = 0
    """Changes of posts' gates neither logged nor put back by their request: the reconcilers'."""
    gate_changes_stranded: int = 0
    """Of those, the ones whose account cannot put them back here (no policy, no credential)."""
    post_changes_stranded: int = 0
    """Edits and deletions of published posts kept with their hold whose account cannot settle
    them here (no policy, another platform, no credential)."""


async def gauges(txn: Txn, *, now: int) -> Gauges:
    """The due queue's depth (over the ``posts_due`` index), the log's size, the latest checkpoint,
    the gate changes left to the reconcilers, and the posts' changes stranded."""
    due = await txn.fetchone(
        "SELECT count(*) AS n FROM posts WHERE state = 'scheduled' AND publish_at <= ?", now
    )
    state = await txn.fetchone("SELECT size FROM log_state WHERE id = 1")
    latest = await txn.fetchone("SELECT size, created_at FROM log_checkpoints ORDER BY size DESC LIMIT 1")
    # Over ``gate_intents_due``; a claimed one (its put-back failing, or stranded) is left until it is settled.
    left = await txn.fetchone(
        "SELECT count(*) AS n, count(CASE WHEN status = 'stranded' THEN 1 END) AS stranded FROM gate_intents "
        "WHERE lease_until <= ? OR status IN ('reconciling', 'stranded')", now
    )
    # Over ``posts_held_change``: the few posts that hold a change.
    stranded = await txn.fetchone(
        "SELECT count(*) AS n FROM posts WHERE held_change IS NOT NULL AND change_stranded IS NOT NULL"
    )
    return Gauges(
        due=int(due["n"]) if due is not None else 0,
        log_size=int(state["size"]) if state is not None else 0,
        checkpoint_size=int(latest["size"]) if latest is not None else 0,
        checkpoint_at=int(latest["created_at"]) if latest is not None else None,
        gate_changes_left=int(left["n"]) if left is not None else 0,
        gate_changes_stranded=int(left["stranded"]) if left is not None else 0,
        post_changes_stranded=int(stranded["n"]) if stranded is not None else 0,
    )
