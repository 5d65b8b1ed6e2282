"""SQL for the public side: an account's policy events, the posts that went out, and the
searches of the audit page. Everything here reads; what may be shown is decided by the service."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.storage.db import Row, Txn

WENT_OUT = "('published', 'deleted')"
"""The states of posts the public may see: published, or published and then deleted."""

# Post ids are decimal strings; ordered as numbers by their length first, on both databases.
_NEWEST_FIRST = "ORDER BY LENGTH(id) DESC, id DESC"
_OLDER_THAN = "(LENGTH(id) < LENGTH(?) OR (LENGTH(id) = LENGTH(?) AND id < ?))"


async def policy_entries(txn: Txn, account: str) -> list[Row]:
    """Every policy event of one account (loaded, changed, removed), oldest first."""
    return await txn.fetchall(
        "SELECT idx, entry FROM log_entries WHERE chain = ? ORDER BY idx", f"policy:{account}"
    )


async def public_post_ids(txn: Txn, account: str, *, limit: int, before: str | None) -> list[str]:
    """Ids of an account's posts that went out, newest first, older than ``before`` if given."""
    where = f"account = ? AND state IN {WENT_OUT}"
    args: list[object] = [account]
    if before is not None:
        where += f" AND {_OLDER_THAN}"
        args += [before, before, before]
    rows = await txn.fetchall(f"SELECT id FROM posts WHERE {where} {_NEWEST_FIRST} LIMIT ?", *args, limit)
    return [str(r["id"]) for r in rows]


async def post_entries(txn: Txn, post_ids: Sequence[str]) -> list[Row]:
    """Every log entry about any of these posts, in log order."""
    if not post_ids:
        return []
    marks = ", ".join("?" for _ in post_ids)
    return await txn.fetchall(
        f"SELECT idx, entry, post_id FROM log_entries WHERE post_id IN ({marks}) ORDER BY idx", *post_ids
    )


async def committed_texts(txn: Txn, indexes: Sequence[int]) -> dict[int, str | None]:
    """The committed text of each of these entries that has one (None once erased)."""
    if not indexes:
        return {}
    marks = ", ".join("?" for _ in indexes)
    rows = await txn.fetchall(f"SELECT idx, text FROM log_texts WHERE idx IN ({marks})", *indexes)
    return {int(r["idx"]): r["text"] for r in rows}


async def public_post_by_url(txn: Txn, url: str) -> list[str]:
    """The post that went out at this platform URL (or with this remote id), if any."""
    rows = await txn.fetchall(
        f"SELECT id FROM posts WHERE (remote_url = ? OR remote_id = ?) AND state IN {WENT_OUT} "
        f"{_NEWEST_FIRST} LIMIT 10",
        url, url,
    )
    return [str(r["id"]) for r in rows]


async def public_post_by_remote(txn: Txn, *, remote_id: str | None = None, id_suffix: str | None = None,
                                 url_prefix: str | None = None) -> list[str]:
    """Posts that went out with this remote id (or one ending in ``id_suffix``), their platform
    URL starting with ``url_prefix`` if given: a post found from another form of its address."""
    where, args = [f"state IN {WENT_OUT}"], []
    if remote_id is not None:
        where.append("remote_id = ?")
        args.append(remote_id)
    if id_suffix is not None:
        # LIKE's wildcards in the suffix only widen the match: the service checks the ending.
        where.append("remote_id LIKE ?")
        args.append(f"%{id_suffix}")
    if url_prefix is not None:
        where.append("remote_url LIKE ?")
        args.append(f"{url_prefix}%")
    rows = await txn.fetchall(
        f"SELECT id, remote_id, remote_url FROM posts WHERE {' AND '.join(where)} {_NEWEST_FIRST} LIMIT 10", *args)
    return [str(r["id"]) for r in rows
            if (id_suffix is None or str(r["remote_id"]).endswith(id_suffix))
            and (url_prefix is None or str(r["remote_url"] or "").startswith(url_prefix))]


async def public_post(txn: Txn, post_id: str) -> list[str]:
    """The post with this id, if it went out."""
    rows = await txn.fetchall(f"SELECT id FROM posts WHERE id = ? AND state IN {WENT_OUT}", post_id)
    return [str(r["id"]) for r in rows]


async def public_posts_of_person(txn: Txn, person: str, *, limit: int) -> list[str]:
    """Posts that went out and that ``person`` had a part in, newest first: wrote, suggested,
    edited or approved, or did anything else the log records of them (changed who may reply to
    or quote it, deleted it), found by the log's ``actor`` column and its index.

    Editors are a JSON list: matched roughly here, and exactly by the service from the log.
    """
    rows = await txn.fetchall(
        f"SELECT id FROM posts WHERE state IN {WENT_OUT} AND (author = ? OR suggested_by = ? OR editors LIKE ? "
        "OR id IN (SELECT post_id FROM approvals WHERE approver = ? AND decision = 'approve') "
        "OR id IN (SELECT post_id FROM log_entries WHERE actor = ? AND post_id IS NOT NULL)) "
        f"{_NEWEST_FIRST} LIMIT ?",
        person, person, f'%"{person}"%', person, person, limit,
    )
    return [str(r["id"]) for r in rows]


async def known_accounts(txn: Txn, account: str) -> bool:
    """Whether the log has any policy event of this account."""
    row = await txn.fetchone(
        "SELECT idx FROM log_entries WHERE chain = ? ORDER BY idx LIMIT 1", f"policy:{account}"
    )
    return row is not None
