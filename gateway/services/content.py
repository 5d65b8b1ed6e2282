"""What a post sends besides its words, as one hash the log can compare.

The log commits to a post's words (its text) at every version and to the words each claim
sends, so an auditor sees that what went out is what was approved. A post also carries what is
not words of its text but reaches its readers as much: its uploads (their bytes and alt text),
its content warning, its visibility, a Bluesky embed, its language, and each upload's focal
point (where a preview crops the picture, so what a reader sees of it). Each version
and each claim (``post.submitted``, ``post.edited``, ``post.revised``, ``post.publishing``)
records ``content_sha256``: the SHA-256 of those, canonical (RFC 8785), or null when the post
carries none of them. The verifier names a claim whose content is not its version's: an image
or an alt text changed in the database after the approvers saw it, say.

The log is public, and a post that never went out keeps what it carried private: the content
itself is kept beside each version in the database (``post_versions``), never in the log, and
the hash is salted with 16 random bytes drawn for the post when it is stored (``posts.content_salt``,
never in the log either), so that nobody can confirm a guess of a draft's picture or alt text by
hashing candidates. Every version and claim of one post hash with its one salt, so they still
compare equal when the content is the same. Posts stored before there was a salt hash without one.

What a post replies to is hashed too: the post of Byline's it waits for (``reply_to_post``),
or else the platform's status it answers (``reply_to``). Left out: the platform id of a parent
that had not gone out when the reply was written (it is learnt only when the reply is claimed,
and the claim records it on its own), and the uploads' ids (their content stands for them).

How a post's hash is made is fixed when it is stored (``posts.content_scheme``): posts stored
before focal points and reply targets were hashed (``None``) are hashed without them for as
long as they live, so that the claim of a version stored before the upgrade still compares
equal with it. A post stored for a platform that has no focal point (Bluesky, X) is hashed
without its uploads' focal points (``NO_FOCAL_POINTS``), and goes out without them whatever
its account's platform is by then: a new focal point changes nothing it publishes, so it is
no new version for its approvers (``MastodonService.describe``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final

from gateway.audit import canonical
from gateway.storage import media as media_sql
from gateway.storage.db import Row, Txn

_NOT_CONTENT = frozenset({"reply_to", "reply_to_post", "media_ids"})
"""What a post stored before there was a scheme leaves out of its hash."""

CONTENT_SCHEME: Final = 1
"""How the hash of a post stored now is made: its uploads' focal points and where it replies
count (``posts.content_scheme``)."""

NO_FOCAL_POINTS: Final = 2
"""As ``CONTENT_SCHEME``, without focal points: a post stored for a platform that has none,
which is sent out without them."""


def scheme_for(*, focal_points: bool) -> int:
    """How the hash of a post stored now for a platform that has focal points, or not, is made."""
    return CONTENT_SCHEME if focal_points else NO_FOCAL_POINTS


def sends_focus(scheme: int | None) -> bool:
    """Whether a post hashed by ``scheme`` sends its uploads' focal points (each one that is
    set): all but those stored for a platform that has none."""
    return scheme != NO_FOCAL_POINTS


def new_content_salt() -> str:
    """A new post's content salt: 16 random bytes, in hex."""
    return secrets.token_bytes(16).hex()


def content_sha256(
    options: Mapping[str, Any], uploads: Sequence[Row | Mapping[str, Any]] = (), *, salt: str | None = None,
    scheme: int | None = CONTENT_SCHEME,
) -> str | None:
    """The hash of what a post with ``options`` carries besides its words, with the post's
    ``salt`` (None only for a post stored before it had one); ``uploads``: the rows of its
    ``media_ids`` (any order; an id with no row counts as none). None when it carries nothing
    but its words. ``scheme``: the post's (``PostRecord.content_scheme``)."""
    if scheme is None:
        left_out: frozenset[str] = _NOT_CONTENT
    elif options.get("reply_to_post") is not None:
        left_out = frozenset({"media_ids", "reply_to"})  # learnt at its claim, which records it
    else:
        left_out = frozenset({"media_ids"})
    # A pending revision's new alt text is hashed as it goes out, in its pictures: so its hash is
    # the one its release records of the published post's pictures, redescribed.
    carried = {k: v for k, v in options.items() if k not in left_out and k != HELD_MEDIA}
    ids = options.get("media_ids") or ()
    if not carried and not ids:
        return None
    rows = {row["id"]: row for row in as_carried(options, uploads)}
    media = [_medium(rows[m], focus=scheme is not None and sends_focus(scheme)) if m in rows else None for m in ids]
    hashed: dict[str, Any] = {"media": media, "options": carried}
    if salt is not None:
        hashed["salt"] = salt
    return hashlib.sha256(canonical.dumps(hashed)).hexdigest()


HELD_MEDIA: Final = "media_attributes"
"""The option of a pending revision holding the new alt text and focal points of its published
post's pictures (``PostOptions.media_attributes``): ``{upload: [description, focus]}``."""


def as_carried(
    options: Mapping[str, Any], uploads: Sequence[Row | Mapping[str, Any]],
) -> list[Row | Mapping[str, Any]]:
    """The rows of a post's uploads as it carries them out: for a pending revision, with the alt
    text and focal points it holds (:data:`HELD_MEDIA`) in place of those they have now."""
    held = options.get(HELD_MEDIA) or {}
    if not held:
        return list(uploads)
    carried: list[Row | Mapping[str, Any]] = []
    for row in uploads:
        if row["id"] in held:
            description, focus = held[row["id"]]
            row = {**{k: row[k] for k in row.keys()}, "description": description, "focus": focus}  # noqa: SIM118
        carried.append(row)
    return carried


def _medium(row: Row | Mapping[str, Any], *, focus: bool) -> list[Any]:
    """One upload as hashed: its digest, its alt text, and its focal point where one is set."""
    item = [row["digest"], row["description"]]
    if focus and _focus(row) is not None:
        item.append(row["focus"])
    return item


def _focus(row: Row | Mapping[str, Any]) -> Any:
    """An upload row's focal point, None where it has none (or the row names none)."""
    # sqlite3.Row's ``in`` looks among its values, not its names: ``keys()`` is meant.
    return row["focus"] if "focus" in row.keys() else None  # noqa: SIM118


def reason_sha256(reason: str | None, *, salt: str | None) -> str | None:
    """The hash a rejection or dismissal records of its reason, in place of the reason: salted
    with the post's content salt, so that nobody reading the public log can confirm a guess of
    it (a reason may quote the words that never went out). None when no reason was given, or
    for a post stored before it had a salt (an unsalted hash of a short reason is a guess away
    from it); the reason itself is kept with the decision in the database."""
    if not reason or salt is None:
        return None
    return hashlib.sha256(canonical.dumps({"reason": reason, "salt": salt})).hexdigest()


def described(options: Mapping[str, Any], uploads: Sequence[Row | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A post's uploads as a version keeps them (``post_versions.media``): each one's id, alt
    text and focal point ("x,y", or None), in its order (an id with no row left out)."""
    rows = {row["id"]: row for row in uploads}
    return [{"id": m, "description": rows[m]["description"], "focus": _focus(rows[m])}
            for m in options.get("media_ids") or () if m in rows]


async def stored_content(
    txn: Txn, options: Mapping[str, Any], *, salt: str | None, scheme: int | None,
) -> tuple[str | None, list[dict[str, Any]]]:
    """:func:`content_sha256` of a post's options, its uploads as ``txn`` reads them, and those
    uploads as :func:`described`."""
    if not options:  # nearly every post: it carries nothing but its words, and no uploads
        return None, []
    ids = options.get("media_ids") or ()
    rows = as_carried(options, await media_sql.info(txn, list(ids)) if ids else [])
    return content_sha256(options, rows, salt=salt, scheme=scheme), described(options, rows)


async def stored_content_sha256(
    txn: Txn, options: Mapping[str, Any], *, salt: str | None, scheme: int | None,
) -> str | None:
    """:func:`content_sha256` of a post's options, its uploads as ``txn`` reads them."""
    return (await stored_content(txn, options, salt=salt, scheme=scheme))[0]
