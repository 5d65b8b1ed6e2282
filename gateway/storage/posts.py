"""SQL for posts, their versions and their approvals."""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gateway.storage.db import DatabaseUnavailable, Row, Txn
from gateway.storage.policies import head_sha256
from gateway.types import AccountName, Micros, PostId, UserName

_POST_COLUMNS = (
    "id", "account", "author", "state", "version", "text", "options", "reasons", "approvers",
    "required", "requested_at", "publish_at", "expires_at", "suggested_by", "adopted_from",
    "adopted_into", "idempotency_key", "remote_id", "remote_url", "published_text", "attempts",
    "last_error", "lease_until", "first_attempt_at", "created_at", "updated_at", "editors", "content_salt",
    "content_scheme", "sent_content", "revises", "remote_author",
)
# A post's content salt is drawn once, when it is stored: its versions' hashes are compared with
# its claims', which must hash with the same one. A new post holds no change (``held_change``).
_UPDATABLE = frozenset(_POST_COLUMNS) - {"id", "account", "created_at", "content_salt", "content_scheme", "revises"} \
    | {"held_change"}


@dataclass(frozen=True, slots=True, kw_only=True)
class PostRecord:
    """One stored post, its JSON columns parsed and its numbers as numbers.

    What storage gives the services in place of a row: the columns keep their stored names, so a
    change's keys (``compare_and_set``) and the record's attributes read alike.
    """

    id: PostId
    account: AccountName
    author: UserName
    state: str
    version: int
    text: str
    created_at: Micros
    updated_at: Micros
    # The rest as a new post's row has them (the schema's defaults).
    options: Mapping[str, Any] = field(default_factory=dict)
    reasons: tuple[Mapping[str, Any], ...] = ()
    approvers: tuple[UserName, ...] = ()
    required: int = 0
    editors: tuple[UserName, ...] = ()
    requested_at: Micros | None = None
    publish_at: Micros | None = None
    expires_at: Micros | None = None
    suggested_by: UserName | None = None
    adopted_from: PostId | None = None
    adopted_into: PostId | None = None
    idempotency_key: str | None = None
    remote_id: str | None = None
    remote_url: str | None = None
    remote_author: str | None = None
    """The platform's id of the account the post went out as, as its answer said (migration 25)."""
    published_text: str | None = None
    attempts: int = 0
    last_error: str | None = None
    lease_until: Micros | None = None
    first_attempt_at: Micros | None = None
    content_salt: str | None = None
    """The 16 random bytes (hex) its ``content_sha256`` hashes with (``gateway.services.content``),
    kept here and never in the log; None for posts stored before there was one."""
    content_scheme: int | None = None
    """How its ``content_sha256`` is made (``gateway.services.content.CONTENT_SCHEME``), fixed
    when it is stored; None for posts stored before there was a scheme."""
    sent_content: str | None = None
    """What the claim that chose its ``idempotency_key`` sent besides its words (``published_text``):
    that claim's ``content_sha256``, or '' where it sent nothing else; None before any claim
    (or for a post claimed before this was kept)."""
    held_change: Mapping[str, Any] | None = None
    """The change a published post is held for on its platform (:func:`hold_published`), kept
    until it is recorded or let go of; None while it is held for none."""
    revises: PostId | None = None
    """The published post this one is a pending revision of (new words its policy holds, as it
    would a new post's); None for every other post."""


def _micros(value: Any) -> Micros | None:
    return None if value is None else Micros(int(value))


def _record(row: Row) -> PostRecord:
    return PostRecord(
        id=PostId(row["id"]), account=AccountName(row["account"]), author=UserName(row["author"]),
        state=row["state"], version=int(row["version"]), text=row["text"],
        options=json.loads(row["options"]), reasons=tuple(json.loads(row["reasons"])),
        approvers=tuple(UserName(a) for a in json.loads(row["approvers"])), required=int(row["required"]),
        editors=tuple(UserName(e) for e in json.loads(row["editors"])),
        requested_at=_micros(row["requested_at"]), publish_at=_micros(row["publish_at"]),
        expires_at=_micros(row["expires_at"]),
        suggested_by=None if row["suggested_by"] is None else UserName(row["suggested_by"]),
        adopted_from=None if row["adopted_from"] is None else PostId(row["adopted_from"]),
        adopted_into=None if row["adopted_into"] is None else PostId(row["adopted_into"]),
        idempotency_key=row["idempotency_key"], remote_id=row["remote_id"], remote_url=row["remote_url"],
        remote_author=row["remote_author"], published_text=row["published_text"], attempts=int(row["attempts"]),
        last_error=row["last_error"],
        lease_until=_micros(row["lease_until"]), first_attempt_at=_micros(row["first_attempt_at"]),
        created_at=Micros(int(row["created_at"])), updated_at=Micros(int(row["updated_at"])),
        content_salt=row["content_salt"],
        content_scheme=None if row["content_scheme"] is None else int(row["content_scheme"]),
        sent_content=row["sent_content"],
        held_change=None if row["held_change"] is None else json.loads(row["held_change"]),
        revises=None if row["revises"] is None else PostId(row["revises"]),
    )


_BIGINT_COLUMNS = frozenset({
    "version", "required", "requested_at", "publish_at", "expires_at", "attempts", "lease_until",
    "first_attempt_at", "created_at", "updated_at", "content_scheme",
})
"""The columns of ``posts`` that are numbers (the rest are text): their PostgreSQL types."""

# A JSON column's text: the empty ones, which most rows hold, as ``json.dumps`` writes them,
# without the encoder's calls (every new post stores four, and its first version two).


def _object_text(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value)) if value else "{}"


def _list_text(values: Collection[Any]) -> str:
    return json.dumps(list(values)) if values else "[]"


def _objects_text(values: Collection[Mapping[str, Any]]) -> str:
    return json.dumps([dict(v) for v in values]) if values else "[]"


# How a record's JSON columns are stored, as text.
_AS_JSON: Mapping[str, Callable[[Any], str]] = {
    "options": _object_text,
    "reasons": _objects_text,
    "approvers": _list_text,
    "editors": _list_text,
}
_VALUES = operator.attrgetter(*_POST_COLUMNS)
_JSON_COLUMNS = tuple((n, _AS_JSON[c]) for n, c in enumerate(_POST_COLUMNS) if c in _AS_JSON)


def _columns(post: PostRecord) -> list[Any]:
    """A record's values in the order of ``_POST_COLUMNS``, its JSON columns as text."""
    values = list(_VALUES(post))  # one call for the thirty, where a getattr each was thirty
    for n, as_json in _JSON_COLUMNS:
        values[n] = as_json(values[n])
    return values


_INSERT = f"INSERT INTO posts ({', '.join(_POST_COLUMNS)}) VALUES ({', '.join('?' for _ in _POST_COLUMNS)})"
# On PostgreSQL, a new post only under its policy in force, with its first version, in one statement.
# Parameters in a SELECT list have no type of their own: each is cast to its column's.
_INSERT_IN_FORCE = (
    f"WITH post AS (INSERT INTO posts ({', '.join(_POST_COLUMNS)}) SELECT "
    + ", ".join(f"?::{'bigint' if c in _BIGINT_COLUMNS else 'text'}" for c in _POST_COLUMNS)
    + " WHERE EXISTS (SELECT 1 FROM policy_heads WHERE account = ? AND sha256 = ?) RETURNING id) "
    "INSERT INTO post_versions (post_id, version, text, editor, created_at, options, media) "
    "SELECT id, 1, ?::text, ?::text, ?::bigint, ?::text, ?::text FROM post"
)


async def insert_post(txn: Txn, post: PostRecord) -> None:
    """Insert a new post's row."""
    await txn.execute(_INSERT, *_columns(post))


async def insert_new_post(
    txn: Txn, post: PostRecord, *, policy_sha256: str, media: Sequence[Mapping[str, Any]] = (),
    held: tuple[Any, Exception] | None = None,
) -> bool:
    """Insert a new post and its first version (with the post's options, and ``media``: its
    uploads' alt texts, see :func:`insert_version`), only while ``policy_sha256`` is its
    account's policy in force (``policy_heads``); False when another is, and nothing was inserted.

    On PostgreSQL the check and both rows are one statement, a round trip where three were,
    each one the log writer's batch waited for in turn; on SQLite three statements, each a
    few microseconds in the gateway's own process.

    ``held``, a tag and the error to refuse it with: on PostgreSQL the post (without ``media``)
    may be held (``Txn.defer``) and inserted with the other new posts held before the
    transaction's next statement, in one statement for them all. True then; should its policy
    prove not in force, the error is in ``txn.refused`` under the tag (the caller's work
    fails, and its batch runs again without it: ``gateway.audit.sequencer``)."""
    if held is not None and not media and txn.defer(_insert_held, (post, policy_sha256, *held)):
        return True
    if txn.dialect != "postgresql":
        if await head_sha256(txn, post.account) != policy_sha256:
            return False
        await insert_post(txn, post)
        await insert_version(txn, post_id=post.id, version=1, text=post.text, editor=post.author, at=post.created_at,
                             options=post.options, media=media)
        return True
    count = await txn.execute(_INSERT_IN_FORCE, *_columns(post), post.account, policy_sha256, post.text,
                              post.author, post.created_at, _object_text(post.options), _objects_text(media))
    return count == 1


_INSERT_MANY_IN_FORCE = (
    "WITH given AS (SELECT * FROM unnest("
    + ", ".join(f"?::{'bigint' if c in _BIGINT_COLUMNS else 'text'}[]" for c in _POST_COLUMNS)
    + ", ?::text[]) AS g(" + ", ".join(_POST_COLUMNS) + ", policy_sha256)), "
    f"post AS (INSERT INTO posts ({', '.join(_POST_COLUMNS)}) SELECT {', '.join(_POST_COLUMNS)} FROM given g "
    "WHERE EXISTS (SELECT 1 FROM policy_heads h WHERE h.account = g.account AND h.sha256 = g.policy_sha256) "
    "RETURNING id) "
    "INSERT INTO post_versions (post_id, version, text, editor, created_at, options, media) "
    "SELECT g.id, 1, g.text, g.author, g.created_at, g.options, '[]' FROM given g JOIN post ON post.id = g.id "
    "RETURNING post_id"
)
"""On PostgreSQL, new posts held by :func:`insert_new_post`, each only under its policy in force,
with their first versions (no uploads), in one statement: the ids of those inserted."""


async def _insert_held(txn: Txn, held: list[Any]) -> dict[Any, Exception]:
    """Insert the posts held by :func:`insert_new_post` (``Txn.defer``): the tags of those whose
    policy is no longer in force, each with its error. An error of the statement itself (other
    than the database gone, which is every work's) is each held post's."""
    columns = [_columns(post) for post, *_ in held]
    try:
        rows = await txn.fetchall(_INSERT_MANY_IN_FORCE, *(list(c) for c in zip(*columns, strict=True)),
                                  [sha for _, sha, _, _ in held])
    except DatabaseUnavailable:
        raise
    except Exception as exc:
        return {tag: exc for _, _, tag, _ in held}
    inserted = {row["post_id"] for row in rows}
    return {tag: refused for post, _, tag, refused in held if post.id not in inserted}


async def get_post(txn: Txn, post_id: str) -> PostRecord | None:
    """One post."""
    row = await txn.fetchone("SELECT * FROM posts WHERE id = ?", post_id)
    return None if row is None else _record(row)


async def compare_and_set(
    txn: Txn, post_id: str, *, state: str, version: int, changes: dict[str, Any], lease_until: int | None = None,
) -> bool:
    """Update a post only if it is still in ``state`` at ``version`` (and, given ``lease_until``,
    still held with that lease: :func:`hold_published`); True when it was."""
    bad = set(changes) - _UPDATABLE
    if bad:
        raise ValueError(f"not updatable: {sorted(bad)}")
    cols = tuple(sorted(changes))
    count = await txn.execute(
        _cas_statement(cols, held=lease_until is not None),
        *[changes[c] for c in cols], post_id, state, version, *(() if lease_until is None else (lease_until,)),
    )
    return count == 1


@functools.lru_cache(maxsize=256)  # a few sets of columns change: a claim's, a publication's, an edit's…
def _cas_statement(cols: tuple[str, ...], *, held: bool) -> str:
    """:func:`compare_and_set`'s statement for these columns (checked updatable by the caller)."""
    sets = ", ".join(f"{c} = ?" for c in cols)
    return f"UPDATE posts SET {sets} WHERE id = ? AND state = ? AND version = ?{' AND lease_until = ?' if held else ''}"


async def hold_published(
    txn: Txn, post_id: str, *, version: int, now: int, until: int, change: Mapping[str, Any],
) -> bool:
    """Hold a published post at ``version`` until ``until`` for one change on its platform (an
    edit or its deletion), kept with the hold (``held_change``), unless another holds it: True
    when held. A published post's lease is NULL but while it is held (the publisher clears it
    once the post is out). A hold that ran out with no change kept (a Byline before kept none)
    may be taken; one whose change is still kept is taken only to settle that change
    (:func:`take_over`), never for another."""
    count = await txn.execute(
        "UPDATE posts SET lease_until = ?, held_change = ?, change_stranded = NULL WHERE id = ? "
        "AND state = 'published' AND version = ? AND held_change IS NULL AND (lease_until IS NULL OR lease_until <= ?)",
        until, json.dumps(dict(change)), post_id, version, now,
    )
    return count == 1


async def let_go(txn: Txn, post_id: str, *, lease_until: int) -> bool:
    """End a hold of :func:`hold_published` that made no change, and forget its change; False
    when it was not held with that lease any more."""
    count = await txn.execute(
        "UPDATE posts SET lease_until = NULL, held_change = NULL WHERE id = ? AND state = 'published' "
        "AND lease_until = ?",
        post_id, lease_until,
    )
    return count == 1


async def changes_due(txn: Txn, *, now: int, limit: int) -> list[PostRecord]:
    """Published posts whose hold ran out with its change kept: changes whose gateway stopped
    (or lost its database) before recording them, soonest run out first."""
    rows = await txn.fetchall(
        "SELECT * FROM posts WHERE held_change IS NOT NULL AND lease_until <= ? ORDER BY lease_until, id LIMIT ?",
        now, limit,
    )
    return [_record(r) for r in rows]


async def take_over(txn: Txn, post_id: str, *, lease_until: int, now: int, until: int) -> bool:
    """Hold until ``until`` a published post whose hold (``lease_until``, as read) ran out with
    its change kept, to settle that change: True for the one gateway that does. A change that
    was stranded is so no longer: should it be again, that is said again."""
    count = await txn.execute(
        "UPDATE posts SET lease_until = ?, change_stranded = NULL WHERE id = ? AND state = 'published' "
        "AND held_change IS NOT NULL "
        "AND lease_until = ? AND lease_until <= ?",
        until, post_id, lease_until, now,
    )
    return count == 1


async def strand_change(txn: Txn, post_id: str, *, lease_until: int, now: int, until: int) -> bool | None:
    """Leave the kept change of a published post whose hold (``lease_until``, as read) ran out
    until ``until`` at the latest, marked stranded (see schema version 21): True when it was
    not stranded before, False when it was, None when another gateway took it meanwhile."""
    where = "WHERE id = ? AND state = 'published' AND held_change IS NOT NULL AND lease_until = ? AND lease_until <= ?"
    if await txn.execute(f"UPDATE posts SET lease_until = ?, change_stranded = ? {where} AND change_stranded IS NULL",
                         until, now, post_id, lease_until, now) == 1:
        return True
    if await txn.execute(f"UPDATE posts SET lease_until = ? {where} AND change_stranded IS NOT NULL",
                         until, post_id, lease_until, now) == 1:
        return False
    return None


_STRANDED = "FROM posts WHERE held_change IS NOT NULL AND change_stranded IS NOT NULL"
"""The kept changes marked stranded: few rows, found through the ``posts_held_change`` index."""


async def stranded_changes(txn: Txn) -> list[PostRecord]:
    """The published posts whose kept change is stranded, by account."""
    return [_record(r) for r in await txn.fetchall(f"SELECT * {_STRANDED} ORDER BY account, id")]


async def stranded_change_counts(txn: Txn) -> dict[str, int]:
    """How many kept changes are stranded, by account."""
    rows = await txn.fetchall(f"SELECT account, count(*) AS n {_STRANDED} GROUP BY account ORDER BY account")
    return {r["account"]: int(r["n"]) for r in rows}


async def release_stranded_change(txn: Txn, post_id: str, *, lease_until: int, now: int) -> bool:
    """Make a stranded change (its hold ``lease_until``, as read) due at ``now``, for the
    publisher's next look: True unless another gateway did first."""
    return await txn.execute(
        "UPDATE posts SET lease_until = ? WHERE id = ? AND lease_until = ? AND held_change IS NOT NULL "
        "AND change_stranded IS NOT NULL", now, post_id, lease_until,
    ) == 1


@dataclass(frozen=True, slots=True)
class Change:
    """One post's compare-and-set (:func:`compare_and_set_many`): its changes, made only if it
    is still in ``state`` at ``version``."""

    post_id: str
    state: str
    version: int
    changes: Mapping[str, Any]


async def compare_and_set_many(
    txn: Txn, changes: Sequence[Change], *, heads: dict[str, tuple[int, bytes] | None] | None = None,
) -> set[str]:
    """:func:`compare_and_set` for many posts; the ids of those changed.

    On PostgreSQL the changes that set the same columns go in one statement (their values as
    arrays), a round trip to the server for them all rather than one a post: what a page of
    claims or a group of outcomes costs the log writer, which waits for every trip in turn.
    On SQLite one statement each, as before: the appender's statements run in the gateway's
    own process there, a trip costs nothing.

    ``heads``, on PostgreSQL: filled, by the same statement, with the last log entry (index
    and leaf hash, or None) of each changed post's chain, for ``LogTxn.heads_read``: the log
    writer need not look them up in a round trip of its own while the batch holds the tree's
    lock. Nothing is filled in on SQLite, where that lookup costs no trip.
    """
    if txn.dialect != "postgresql":
        return {c.post_id for c in changes if await compare_and_set(
            txn, c.post_id, state=c.state, version=c.version, changes=dict(c.changes))}
    by_columns: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        bad = set(change.changes) - _UPDATABLE
        if bad:
            raise ValueError(f"not updatable: {sorted(bad)}")
        by_columns.setdefault(tuple(sorted(change.changes)), []).append(change)
    done: set[str] = set()
    for cols, group in by_columns.items():
        arrays: list[list[Any]] = [[c.post_id for c in group], [c.state for c in group],
                                   [c.version for c in group]]
        arrays += [[c.changes[col] for c in group] for col in cols]
        types = ["text", "text", "bigint", *("bigint" if col in _BIGINT_COLUMNS else "text" for col in cols)]
        names = ["at_id", "at_state", "at_version", *(f"to_{col}" for col in cols)]
        unnest = ", ".join(f"?::{t}[]" for t in types)
        sets = ", ".join(f"{col} = v.to_{col}" for col in cols)
        rows = await txn.fetchall(
            f"UPDATE posts SET {sets} FROM unnest({unnest}) AS v({', '.join(names)}) "
            "WHERE posts.id = v.at_id AND posts.state = v.at_state AND posts.version = v.at_version "
            "RETURNING posts.id" + (_CHAIN_HEAD if heads is not None else ""),
            *arrays,
        )
        done.update(str(r["id"]) for r in rows)
        if heads is not None:
            for r in rows:
                heads[str(r["id"])] = None if r["head_idx"] is None else (int(r["head_idx"]), bytes(r["head_leaf"]))
    return done


_CHAIN_HEAD = "".join(
    f", (SELECT e.{column} FROM log_entries e WHERE e.chain = 'post:' || posts.id "
    f"ORDER BY e.idx DESC LIMIT 1) AS {name}"
    for column, name in (("idx", "head_idx"), ("leaf_hash", "head_leaf"))
)
"""The last log entry of each changed post's chain (``sequencer.post_chain``), read from the
(chain, idx) index as ``log.chain_heads`` reads it: its index and leaf hash, one column each."""


async def insert_version(
    txn: Txn, *, post_id: str, version: int, text: str, editor: str, at: int, options: Mapping[str, Any],
    media: Sequence[Mapping[str, Any]] = (),
) -> None:
    """Record one version of a post: its text, its options (as ``posts.options`` holds them)
    and ``media``, its uploads as they were ({"id", "description", "focus"} each, in order): what it
    carries besides its words is kept here, not in the public log."""
    await txn.execute(
        "INSERT INTO post_versions (post_id, version, text, editor, created_at, options, media) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        post_id, version, text, editor, at, _object_text(options), _objects_text(media),
    )


async def set_version_media(txn: Txn, *, post_id: str, version: int, media: Sequence[Mapping[str, Any]]) -> None:
    """Keep the uploads a version just took (their ids, alt texts and focal points), in the transaction that
    stored it: a new post takes its uploads after its row is in."""
    await txn.execute("UPDATE post_versions SET media = ? WHERE post_id = ? AND version = ?",
                      json.dumps([dict(m) for m in media]), post_id, version)


async def versions(txn: Txn, post_id: str) -> list[Row]:
    """Every version of a post, oldest first; ``options`` and ``media`` are JSON text, or NULL
    for a version recorded before they were kept (the log's entries of the time carry its options)."""
    return await txn.fetchall(
        "SELECT version, text, editor, created_at, options, media FROM post_versions WHERE post_id = ? "
        "ORDER BY version",
        post_id,
    )


async def version_text(txn: Txn, post_id: str, version: int) -> str | None:
    """The words of one version of a post; None where it has no such version."""
    row = await txn.fetchone("SELECT text FROM post_versions WHERE post_id = ? AND version = ?", post_id, version)
    return None if row is None else str(row["text"])


class Given(NamedTuple):
    """What an approval was given for: the hash of the text that goes out (``text_sha256``) and
    the platform account the policy then spoke as (``speaks_as``, "" on the sandbox); each None
    for an approval given before it was kept."""

    text_sha256: str | None
    speaks_as: str | None


async def insert_decision(
    txn: Txn, *, post_id: str, version: int, approver: str, decision: str, reason: str | None, at: int,
    text_sha256: str | None = None, speaks_as: str | None = None,
) -> bool:
    """Record an approval or rejection (``text_sha256``: the hash of the text an approval was
    given for, as it goes out; ``speaks_as``: the platform account the policy in force speaks
    as); False when this person already decided this version."""
    existing = await txn.fetchone(
        "SELECT decision FROM approvals WHERE post_id = ? AND version = ? AND approver = ?",
        post_id, version, approver,
    )
    if existing is not None:
        return False
    await txn.execute(
        "INSERT INTO approvals (post_id, version, approver, decision, reason, created_at, text_sha256, speaks_as) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        post_id, version, approver, decision, reason, at, text_sha256, speaks_as,
    )
    return True


async def replace_approval_of_other_words(
    txn: Txn, *, post_id: str, version: int, approver: str, decision: str, reason: str | None, at: int,
    text_sha256: str, speaks_as: str,
) -> bool:
    """Replace ``approver``'s approval of this version with this decision, where that approval
    was given for other words than ``text_sha256`` (the text that goes out now) or for another
    platform account than ``speaks_as``: it no longer counts, and its approver decides on what
    does. False where there is no such approval (none, a rejection, or an approval of this very
    text for this account: decided already). A compare-and-set on what it was given for: two
    such decisions racing cannot both replace it."""
    count = await txn.execute(
        "UPDATE approvals SET decision = ?, reason = ?, created_at = ?, text_sha256 = ?, speaks_as = ? "
        "WHERE post_id = ? AND version = ? AND approver = ? AND decision = 'approve' "
        "AND ((text_sha256 IS NOT NULL AND text_sha256 <> ?) OR (speaks_as IS NOT NULL AND speaks_as <> ?))",
        decision, reason, at, text_sha256, speaks_as, post_id, version, approver, text_sha256, speaks_as,
    )
    return count == 1


async def approvals(txn: Txn, post_id: str) -> list[Row]:
    """Every decision on a post, all versions, oldest first."""
    return await txn.fetchall(
        "SELECT version, approver, decision, reason, created_at FROM approvals "
        "WHERE post_id = ? ORDER BY created_at, approver",
        post_id,
    )


async def approvers_of(txn: Txn, post_id: str, version: int) -> dict[str, Given]:
    """Who approved this version of a post, each with what they approved it for (:class:`Given`)."""
    rows = await txn.fetchall(
        "SELECT approver, text_sha256, speaks_as FROM approvals "
        "WHERE post_id = ? AND version = ? AND decision = 'approve'",
        post_id, version,
    )
    return {r["approver"]: Given(r["text_sha256"], r["speaks_as"]) for r in rows}


async def approvers_of_posts(txn: Txn, versions: Mapping[str, int]) -> dict[str, dict[str, Given]]:
    """:func:`approvers_of` for many posts in one read (``versions``: each post's id, and the
    version whose approvals are wanted): what a page of held posts shows, by post id; a post
    with none is left out."""
    if not versions:
        return {}
    ids = list(versions)
    rows = await txn.fetchall(
        "SELECT post_id, version, approver, text_sha256, speaks_as FROM approvals "
        f"WHERE post_id IN ({', '.join('?' for _ in ids)}) AND decision = 'approve'",
        *ids,
    )
    out: dict[str, dict[str, Given]] = {}
    for r in rows:
        if int(r["version"]) == versions[r["post_id"]]:
            out.setdefault(r["post_id"], {})[r["approver"]] = Given(r["text_sha256"], r["speaks_as"])
    return out


async def pending_posts(txn: Txn, account: str) -> list[PostRecord]:
    """An account's posts that have not gone out and may still: held, scheduled or suggested."""
    rows = await txn.fetchall(
        "SELECT * FROM posts WHERE account = ? AND state IN ('held', 'scheduled', 'suggested') ORDER BY id",
        account,
    )
    return [_record(r) for r in rows]


async def list_posts(
    txn: Txn, *, accounts: list[str], state: str | None, limit: int, before: str | None
) -> list[PostRecord]:
    """Newest posts first for some accounts, optionally in one state."""
    if not accounts:
        return []
    where = [f"account IN ({', '.join('?' for _ in accounts)})"]
    args: list[Any] = list(accounts)
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if before is not None:
        where.append("id < ?")
        args.append(before)
    args.append(limit)
    rows = await txn.fetchall(
        f"SELECT * FROM posts WHERE {' AND '.join(where)} ORDER BY created_at DESC, id DESC LIMIT ?",
        *args,
    )
    return [_record(r) for r in rows]


def _id_beyond(op: str, bound: str) -> tuple[str, list[Any]]:
    """``id <op> bound`` as numbers: post ids are digits without leading zeros, kept as text, so
    a shorter id is a smaller one and ids of one length compare as text."""
    digits = bound.lstrip("0") or "0"
    return f"(LENGTH(id) {op} ? OR (LENGTH(id) = ? AND id {op} ?))", [len(digits), len(digits), digits]


async def posts_by_id(
    txn: Txn, *, account: str, states: Collection[str], limit: int, above: str | None = None,
    below: str | None = None, oldest_first: bool = False, author: str | None = None,
) -> list[PostRecord]:
    """Up to ``limit`` of an account's posts in ``states`` (and by ``author``), with ids strictly
    between ``above`` and ``below`` compared as numbers: newest first, or ``oldest_first``.
    What a Mastodon list pages by (``max_id``, ``since_id``, ``min_id``)."""
    if not states or limit <= 0:
        return []
    names = sorted(states)
    where = [f"account = ? AND state IN ({', '.join('?' for _ in names)})"]
    args: list[Any] = [account, *names]
    if author is not None:
        where.append("author = ?")
        args.append(author)
    for op, bound in ((">", above), ("<", below)):
        if bound is not None:
            clause, values = _id_beyond(op, bound)
            where.append(clause)
            args += values
    order = "ASC" if oldest_first else "DESC"
    rows = await txn.fetchall(
        f"SELECT * FROM posts WHERE {' AND '.join(where)} ORDER BY LENGTH(id) {order}, id {order} LIMIT ?",
        *args, limit,
    )
    return [_record(r) for r in rows]


async def replies_in(
    txn: Txn, *, account: str, remote_ids: Collection[str], key: str = "reply_to",
    states: Collection[str] = (),
) -> list[PostRecord]:
    """An account's posts that reply to any of ``remote_ids`` (their ``options.reply_to``), or,
    with ``key="reply_to_post"``, to any of these posts of Byline's not yet out when written;
    only those in ``states``, when given (then only those states' rows are read, by the
    ``posts_account`` index: the few posts not yet out, not all the account ever made)."""
    found: list[PostRecord] = []
    names = sorted(states)
    in_states = f" AND state IN ({', '.join('?' for _ in names)})" if names else ""
    for remote_id in sorted(remote_ids):
        # The options are JSON text: find candidates by their words, then keep exact matches.
        pattern = "%" + json.dumps({key: remote_id})[1:-1].replace("\\", "\\\\").replace(
            "%", "\\%").replace("_", "\\_") + "%"
        rows = await txn.fetchall(
            f"SELECT * FROM posts WHERE account = ?{in_states} AND options LIKE ? ESCAPE '\\' "
            "ORDER BY LENGTH(id), id",
            account, *names, pattern,
        )
        found += [r for r in map(_record, rows) if r.options.get(key) == remote_id]
    return found


async def adopted_into(txn: Txn, *, account: str, post_id: str) -> list[str]:
    """The suggestions of ``account`` adopted into ``post_id``: a reply written to one of them
    waits on the post it became (``adopted`` rows only, by the ``posts_account`` index)."""
    rows = await txn.fetchall(
        "SELECT id FROM posts WHERE account = ? AND state = 'adopted' AND adopted_into = ? ORDER BY id",
        account, post_id,
    )
    return [str(r["id"]) for r in rows]


async def with_remote_id(txn: Txn, *, account: str, remote_id: str) -> PostRecord | None:
    """The account's post published with this platform id, if Byline made it."""
    row = await txn.fetchone(
        "SELECT * FROM posts WHERE account = ? AND remote_id = ? ORDER BY id LIMIT 1", account, remote_id
    )
    return None if row is None else _record(row)


async def due_posts(txn: Txn, *, now: int, limit: int) -> list[Row]:
    """Scheduled posts whose time has come, and publishes whose lease ran out."""
    return await txn.fetchall(
        "SELECT id, account, state, version FROM posts WHERE ((state = 'scheduled' AND publish_at <= ?) "
        "OR (state = 'publishing' AND lease_until <= ?)) AND revises IS NULL ORDER BY publish_at, id LIMIT ?",
        now, now, limit,
    )


async def claimable(
    txn: Txn, *, now: int, limit: int, skip_accounts: Collection[str] = ()
) -> list[PostRecord]:
    """Up to ``limit`` posts to claim now, earliest due first: publishes whose lease ran out, then
    scheduled posts whose time has come; none of ``skip_accounts``.

    Run in the transaction that claims them. On PostgreSQL the rows are locked for it, and rows
    another transaction holds (an approval, another replica's claim) are skipped rather than
    waited for; SQLite's one writer gives the same guarantee by itself. Each part reads the
    ``posts_due`` index in its order, so a page costs the same with ten or a million posts due.
    """
    skip = ""
    skipped: list[Any] = []
    if skip_accounts:
        skipped = sorted(skip_accounts)
        skip = f" AND account NOT IN ({', '.join('?' for _ in skipped)})"
    lock = " FOR UPDATE SKIP LOCKED" if txn.dialect == "postgresql" else ""
    rows = await txn.fetchall(
        f"SELECT * FROM posts WHERE state = 'publishing' AND lease_until <= ? AND revises IS NULL{skip} "
        f"ORDER BY publish_at, id LIMIT ?{lock}",
        now, *skipped, limit,
    )
    if len(rows) < limit:
        rows += await txn.fetchall(
            f"SELECT * FROM posts WHERE state = 'scheduled' AND publish_at <= ? AND revises IS NULL{skip} "
            f"ORDER BY publish_at, id LIMIT ?{lock}",
            now, *skipped, limit - len(rows),
        )
    return [_record(r) for r in rows]


async def due_accounts(txn: Txn, *, now: int, accounts: Collection[str]) -> set[str]:
    """Which of ``accounts`` have a post due now (scheduled, or its lease run out)."""
    if not accounts:
        return set()
    names = sorted(accounts)
    marks = ", ".join("?" for _ in names)
    rows = await txn.fetchall(
        f"SELECT DISTINCT account FROM posts WHERE account IN ({marks}) AND revises IS NULL AND ("
        "(state = 'scheduled' AND publish_at <= ?) OR (state = 'publishing' AND lease_until <= ?))",
        *names, now, now,
    )
    return {r["account"] for r in rows}


OPEN_REVISION_STATES = ("held", "scheduled", "publishing")
"""Where a pending revision is while it may still change its published post: waiting for its
approvals or its time, or on its way to the platform."""


async def open_revision(txn: Txn, post_id: str) -> PostRecord | None:
    """The pending revision of the published post ``post_id``, if it has one (it has one at most)."""
    row = await txn.fetchone(
        "SELECT * FROM posts WHERE revises = ? AND state IN ('held', 'scheduled', 'publishing') ORDER BY id LIMIT 1",
        post_id,
    )
    return None if row is None else _record(row)


async def open_revisions(txn: Txn, post_ids: Sequence[str]) -> list[PostRecord]:
    """:func:`open_revision` of each of the published posts ``post_ids``, in one read: what a
    page of statuses names beside each (``byline.pending_revision``); a post with none is left out."""
    if not post_ids:
        return []
    rows = await txn.fetchall(
        f"SELECT * FROM posts WHERE revises IN ({', '.join('?' for _ in post_ids)}) "
        "AND state IN ('held', 'scheduled', 'publishing') ORDER BY id",
        *post_ids,
    )
    return [_record(r) for r in rows]


async def revisions_due(txn: Txn, *, now: int, limit: int) -> list[PostRecord]:
    """Pending revisions approved (or past their cooling-off) whose time has come: each is made by
    editing its published post on the platform (``PublishedPosts.release``), never published as
    a post of its own, so the publisher's claims leave them out."""
    rows = await txn.fetchall(
        "SELECT * FROM posts WHERE revises IS NOT NULL AND state = 'scheduled' AND publish_at <= ? "
        "ORDER BY publish_at, id LIMIT ?",
        now, limit,
    )
    return [_record(r) for r in rows]


async def expired_holds(txn: Txn, *, now: int, limit: int) -> list[Row]:
    """Held posts past their approval deadline."""
    return await txn.fetchall(
        "SELECT id, state, version FROM posts WHERE state = 'held' AND expires_at <= ? "
        "ORDER BY expires_at, id LIMIT ?",
        now, limit,
    )


async def next_due_time(txn: Txn) -> int | None:
    """The earliest time the scheduler has something to do."""
    row = await txn.fetchone(
        "SELECT MIN(t) AS t FROM ("
        " SELECT MIN(publish_at) AS t FROM posts WHERE state = 'scheduled'"
        " UNION ALL SELECT MIN(lease_until) FROM posts WHERE state = 'publishing'"
        " UNION ALL SELECT MIN(expires_at) FROM posts WHERE state = 'held') AS due"
    )
    return int(row["t"]) if row and row["t"] is not None else None


async def recent_attempts(txn: Txn, *, account: str, since: int) -> tuple[int, int | None]:
    """How many posts of an account were first sent to the platform after ``since``, and the
    earliest of those times: what a rate limit counts."""
    row = await txn.fetchone(
        "SELECT COUNT(*) AS n, MIN(first_attempt_at) AS first FROM posts "
        "WHERE account = ? AND first_attempt_at > ?",
        account, since,
    )
    if row is None:
        return 0, None
    return int(row["n"]), (int(row["first"]) if row["first"] is not None else None)


async def postpone(txn: Txn, post_id: str, *, until: int, at: int) -> bool:
    """Move a scheduled post's time later without changing its state (a rate limit's wait)."""
    return await txn.execute(
        "UPDATE posts SET publish_at = ?, updated_at = ? WHERE id = ? AND state = 'scheduled'",
        until, at, post_id,
    ) == 1


async def bring_forward(txn: Txn, post_id: str, *, expected: int, since: int, until: int) -> bool:
    """Move a scheduled post's time earlier, to ``until``, only while it is still as a wait left
    it at ``since``: scheduled for ``expected`` and not changed since. An edit since restarts a
    cooling-off, and keeps the wait's time where that is later, so the time alone would not tell."""
    return await txn.execute(
        "UPDATE posts SET publish_at = ?, updated_at = ? WHERE id = ? AND state = 'scheduled' AND publish_at = ? "
        "AND updated_at = ?",
        until, until, post_id, expected, since,
    ) == 1


async def keep_leases(txn: Txn, post_ids: Sequence[str], *, until: int, now: int) -> int:
    """Extend the leases of posts this publisher still holds (publishing, lease not yet run
    out: no other can have claimed them); the number extended."""
    if not post_ids:
        return 0
    marks = ", ".join("?" for _ in post_ids)
    if txn.dialect == "postgresql":
        # A post another transaction holds now (the log writer recording it published) is left
        # for the next round, a third of a lease later, rather than waited for: waiting while
        # holding the rows it had extended, this and the log writer, holding its own and
        # waiting for one of those, were a deadlock (found by ``bench.scheduler``: the server
        # broke it by failing the log writer's record of a hundred published posts).
        return await txn.execute(
            f"UPDATE posts SET lease_until = ? WHERE id IN (SELECT id FROM posts WHERE id IN ({marks}) "
            "AND state = 'publishing' AND lease_until > ? FOR UPDATE SKIP LOCKED)",
            until, *post_ids, now,
        )
    return await txn.execute(
        f"UPDATE posts SET lease_until = ? WHERE id IN ({marks}) AND state = 'publishing' AND lease_until > ?",
        until, *post_ids, now,
    )
