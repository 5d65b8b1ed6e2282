"""What a post sends besides its words, as one hash the log can compare.

The log commits to a post's words (its text) at every version and to the words each claim
sends, so an auditor sees that what went out is what was approved. A post also carries what is
not words of its text but reaches its readers as much: its uploads (their bytes and alt text),
its content warning, its visibility, a Bluesky embed, its language. Each version
and each claim (``post.submitted``, ``post.edited``, ``post.revised``, ``post.publishing``)
records ``content_sha256``: the SHA-256 of those, canonical (RFC 8785), or null when the post
carries none of them. The verifier names a claim whose content is not its version's: an image
or an alt text changed in the database after the approvers saw it, say.

Left out: where the post replies (a reply to a post not out yet learns its parent's platform id
only when it is claimed, and the claim records it on its own), the uploads' ids (their
content stands for them), and their focal points (where a preview crops an image: set while the
post waits without making a new version, as it goes out with no words of the post).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from gateway.audit import canonical
from gateway.storage import media as media_sql
from gateway.storage.db import Row, Txn

_NOT_CONTENT = frozenset({"reply_to", "reply_to_post", "media_ids"})


def content_sha256(options: Mapping[str, Any], uploads: Sequence[Row | Mapping[str, Any]] = ()) -> str | None:
    """The hash of what a post with ``options`` carries besides its words; ``uploads``: the rows
    of its ``media_ids`` (any order; an id with no row counts as none). None when it carries
    nothing but its words."""
    carried = {k: v for k, v in options.items() if k not in _NOT_CONTENT}
    ids = options.get("media_ids") or ()
    if not carried and not ids:
        return None
    rows = {row["id"]: row for row in uploads}
    media = [
        [rows[m]["digest"], rows[m]["description"]] if m in rows else None
        for m in ids
    ]
    return hashlib.sha256(canonical.dumps({"media": media, "options": carried})).hexdigest()


async def stored_content_sha256(txn: Txn, options: Mapping[str, Any]) -> str | None:
    """:func:`content_sha256` of a post's options, its uploads as ``txn`` reads them."""
    ids = options.get("media_ids") or ()
    rows = await media_sql.info(txn, list(ids)) if ids else []
    return content_sha256(options, rows)
