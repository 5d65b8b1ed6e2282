"""SQL for media uploaded by client apps, kept until the post that carries it is published.

A post names its media by id in its options; the publisher reads the bytes by those ids, so a
post and its media become due together. ``post_id`` is the one post an upload belongs to: it is
set in the transaction that stores the post, and only while it is empty (or its post has ended,
``ENDED``), so a client cannot attach one upload to a second post, by mistake or by racing itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from gateway.storage.db import Row, Txn

_INFO = "id, account, user_name, mime_type, description, focus, size, width, height, digest, post_id, created_at"
ENDED: Final = ("deleted", "cancelled")
"""States of a post whose uploads another post may take: deleted on its platform, or cancelled
before it went out (what an app's ``DELETE /api/v1/statuses/:id`` leaves), never to go out again."""
_ENDED_MARKS: Final = ", ".join("?" for _ in ENDED)


async def insert(
    txn: Txn, *, media_id: str, account: str, user: str, mime_type: str, description: str | None,
    data: bytes, digest: str, at: int, focus: str | None = None, shown: tuple[int, int] | None = None,
) -> None:
    """Store one upload; ``digest`` names its content in the URL its preview is served at,
    ``shown`` is the width and height it is shown at, where known."""
    width, height = shown or (None, None)
    await txn.execute(
        "INSERT INTO media (id, account, user_name, mime_type, description, focus, data, size, width, height, "
        "digest, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        media_id, account, user, mime_type, description, focus, data, len(data), width, height, digest, at,
    )


async def describe(
    txn: Txn, media_id: str, *, post_id: str | None, description: str | None, focus: str | None,
) -> bool:
    """Set an upload's description and focal point, only while it still belongs to ``post_id``
    (None: to no post), a compare-and-set: False when it was taken (or gone) meanwhile."""
    owner = "post_id IS NULL" if post_id is None else "post_id = ?"
    changed = await txn.execute(
        f"UPDATE media SET description = ?, focus = ? WHERE id = ? AND {owner}",
        description, focus, media_id, *([] if post_id is None else [post_id]),
    )
    return bool(changed)


async def info(txn: Txn, media_ids: list[str]) -> list[Row]:
    """Uploads by id, without their bytes, in no particular order."""
    if not media_ids:
        return []
    return await txn.fetchall(
        f"SELECT {_INFO} FROM media WHERE id IN ({', '.join('?' for _ in media_ids)})", *media_ids
    )


async def data(txn: Txn, media_ids: list[str]) -> list[Row]:
    """Uploads by id with their bytes, in no particular order."""
    if not media_ids:
        return []
    return await txn.fetchall(
        "SELECT id, mime_type, description, focus, digest, data FROM media "
        f"WHERE id IN ({', '.join('?' for _ in media_ids)})",
        *media_ids,
    )


async def attach(txn: Txn, media_ids: list[str], *, post_id: str) -> list[str]:
    """Give these uploads to ``post_id``, each only if no other post has it (a compare-and-set
    on ``post_id``): the ids it could not take, gone or another post's, in the order given.

    Run it in the transaction that stores the post, and refuse the post if any is returned:
    two posts racing for one upload then cannot both have it. An upload of a post that ended
    (:data:`ENDED`) is free again, as Mastodon frees a deleted status's media for the status
    an app writes again from it (delete and redraft).
    """
    if not media_ids:
        return []
    marks = ", ".join("?" for _ in media_ids)
    taken = await txn.execute(
        f"UPDATE media SET post_id = ? WHERE (post_id IS NULL OR post_id = ? OR EXISTS (SELECT 1 FROM posts p "
        f"WHERE p.id = media.post_id AND p.state IN ({_ENDED_MARKS}))) AND id IN ({marks})",
        post_id, post_id, *ENDED, *media_ids,
    )
    if taken == len(set(media_ids)):
        return []
    rows = await txn.fetchall(f"SELECT id FROM media WHERE post_id = ? AND id IN ({marks})", post_id, *media_ids)
    mine = {row["id"] for row in rows}
    return [media_id for media_id in media_ids if media_id not in mine]


async def ended_posts(txn: Txn, post_ids: Sequence[str]) -> set[str]:
    """Those of ``post_ids`` that ended (:data:`ENDED`): their uploads are free for another post."""
    if not post_ids:
        return set()
    rows = await txn.fetchall(
        f"SELECT id FROM posts WHERE id IN ({', '.join('?' for _ in post_ids)}) AND state IN ({_ENDED_MARKS})",
        *post_ids, *ENDED,
    )
    return {row["id"] for row in rows}


async def unattached_by_digest(txn: Txn, *, account: str, user: str, digests: list[str]) -> list[Row]:
    """Uploads of ``user`` for ``account`` with these content digests that no post has taken,
    newest first, without their bytes (a Bluesky embed names its blobs by content)."""
    if not digests:
        return []
    return await txn.fetchall(
        f"SELECT {_INFO} FROM media WHERE account = ? AND user_name = ? AND post_id IS NULL "
        f"AND digest IN ({', '.join('?' for _ in digests)}) ORDER BY created_at DESC, id DESC",
        account, user, *digests,
    )
