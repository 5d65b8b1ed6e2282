"""Posts: the only code that changes them.

Each public method checks who is asking against the policy in force, then submits one work to
the appender. Inside the work the post is read again, the lifecycle is asked, the row is
updated with a compare-and-set on its state and version, and the event is appended: all in
one transaction, so two approvers (or two replicas) racing cannot both win.
"""

from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Concatenate, Final, ParamSpec, Protocol, TypeVar

import structlog

from gateway.audit.appender import Appender, LogTxn, Work, post_chain
from gateway.audit.gates import CHANGES_PER_HOUR, budget_wait
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import Action, State, transition
from gateway.metrics import NOT_SCRAPED, Metrics
from gateway.policy.engine import (
    Act,
    Decision,
    Outcome,
    Reason,
    Role,
    check_rules,
    decide,
    disclosed_text,
    gate_for,
    may,
    publish_time,
    roles,
)
from gateway.policy.loader import LoadedPolicy, PolicyFileError, PolicyRegistry, platform_server, written_server
from gateway.policy.models import Policy, Tier
from gateway.policy.text import is_blank, published_length
from gateway.services.authorization import (
    Approved,
    authorize,
    check_account_binding,
    check_approvers_left,
    check_no_words,
    check_not_expired,
    check_version,
    counted_for,
    given_as,
    hold_expired,
    redecision_cause,
    retry_cause,
    visible_accounts,
)
from gateway.services.content import (
    as_carried,
    content_sha256,
    new_content_salt,
    reason_sha256,
    scheme_for,
    stored_content,
)
from gateway.services.outgoing import (
    Claims,
    outgoing_sha256,
    outgoing_text,
    reads_last_claim,
    text_sha256,
    with_disclosure,
)
from gateway.services.platforms import carries
from gateway.services.scopes import Caller as Caller  # where it is defined, out of this heavy module
from gateway.storage import gate_intents as intents_sql
from gateway.storage import log as log_sql
from gateway.storage import media as media_sql
from gateway.storage import policies as policy_sql
from gateway.storage import posts as sql
from gateway.storage.db import Database, DatabaseUnavailable, Row, Txn, together
from gateway.storage.posts import PostRecord
from gateway.types import UNSECRET, AccountName, LogIndex, Micros, PostId, UserName, duration_micros, iso, to_micros

logger = structlog.get_logger("byline.posts")


@dataclass(frozen=True, kw_only=True)
class PostOptions:
    """Platform options a post can carry."""

    reply_to: str | None = None
    """The platform's id of the status this one replies to."""
    reply_to_post: str | None = None
    """The post of the same account this one replies to, when that post had not gone out yet
    as the reply was written: the publisher sends the reply only once its parent is out, to
    the parent's platform id (written into ``reply_to`` when it claims the reply), and fails it
    if the parent fails (see ``gateway.services.publisher``); a parent that ends for good
    cancels it (:func:`cancel_waiting_replies`), and one retried retries it
    (:func:`retry_waiting_replies`)."""
    answers_post: str | None = None
    """For a reply to a post not yet out (``reply_to_post``): that post, followed into the post a
    suggestion was adopted as, and ``answers_version`` its version, as they stood when the reply
    was written or last edited: the words its approvers approved an answer to. As with a quote
    (``quote_of_version``), the publisher sends the reply only if its parent went out at that
    version, and fails it, saying why, if its parent went out with other words (edited since)."""
    answers_version: int | None = None
    reply_to_url: str | None = None
    """The address of the platform's status ``reply_to`` names, and ``reply_to_account`` its
    author's handle, as the platform gave them when the reply was written (Mastodon answers
    the lookup Byline makes before taking a reply): what its approvers are shown, since an id
    alone says nothing of what the words answer. Shown, never sent: the reply goes to the id."""
    reply_to_account: str | None = None
    reply_to_text: str | None = None
    """The words of the status ``reply_to`` names, as plain text, as the platform gave them when
    the reply was written (a Mastodon status's HTML read as text, a Bluesky record's text, the
    words of a post of the account's out already), bounded (``reply_targets.WORDS_KEPT``); or,
    where they could not be read, why (``reply_to_unread``): what the reply answers, for its
    approvers to read. Kept with the reply, never read again as its card is shown; shown, never
    sent."""
    reply_to_unread: str | None = None
    reply_to_warning: str | None = None
    """The content warning the status ``reply_to`` names carried when the reply was written (a
    Mastodon status's ``spoiler_text``, the self-labels of a Bluesky record), bounded as its
    words are: shown to its approvers before the words, as the platform shows it."""
    reply_to_boost: str | None = None
    """Where ``reply_to`` names a boost (a Mastodon reblog, whose own words are none), the
    handle of whoever boosted it: ``reply_to_text``, ``reply_to_account`` and ``reply_to_url``
    are then the boosted status's, as Mastodon apps show a boost."""
    reply_to_cid: str | None = None
    """The CID of the Bluesky record ``reply_to`` names, as its PDS held it when the reply was
    written (``gateway.services.xrpc_repo``): the reply goes out to that record or not at all."""
    quote_of_post: str | None = None
    """The post of the same account this one quotes (a Bluesky embed), when that post had not
    gone out yet as the quote was written, and ``quote_of_version`` its version then: the
    words the quote's approvers saw it quote. As a reply waits for its parent, the publisher
    sends the quote only once that post is out, and fails it, saying why, if that post went
    out with other words (edited since) or failed to go out (``gateway.services.publisher``);
    a quoted post that ends for good cancels it at once (:func:`cancel_waiting_replies`)."""
    quote_of_version: int | None = None
    quote_text: str | None = None
    """The words of the post a Bluesky quote shows, as its approvers are shown them: the record
    its CID names, read from the account's PDS when the quote was written, or for a post of
    the account's not yet out (``quote_of_post``) its words at ``quote_of_version``; with its
    author's handle where the PDS vouched for it (``quote_account``) and where to read it in the
    Bluesky app (``quote_url``). Kept with the quote as ``reply_to_account`` is with a reply,
    never read again as its card is shown; shown, never sent: the embed names the record."""
    quote_account: str | None = None
    quote_url: str | None = None
    spoiler_text: str | None = None
    sensitive: bool = False
    language: str | None = None
    visibility: str | None = None
    media_ids: tuple[str, ...] = ()
    """Uploaded media (``storage/media.py``) the publisher attaches, in order."""
    created_at: str | None = None
    """The creation time a client gave the post (RFC 3339), for platforms that record one."""
    embed: Mapping[str, Any] | None = None
    """An embed a client built (Bluesky's ``app.bsky.embed.*``, as JSON), written as given;
    the blobs it refers to are among ``media_ids``."""
    self_labels: Mapping[str, Any] | None = None
    """Self-labels a client gave the post (Bluesky's ``com.atproto.label.defs#selfLabels``, as
    JSON), written as given."""
    facets: Mapping[str, Any] | None = None
    """Rich-text facets a client built, with the bytes they were made for
    (``gateway.services.xrpc_facets.kept_facets``): written as given while the words hold."""
    record_key: str | None = None
    """The record key a client chose for the post (a Bluesky app names each post of a thread by
    a TID of its own): it is written under that key, and found by it, instead of the key derived
    from its id."""
    gates: Mapping[str, Mapping[str, Any]] | None = None
    """Records a client built to go with the post, by collection: its interaction settings
    (Bluesky's ``app.bsky.feed.threadgate`` and ``app.bsky.feed.postgate``, as JSON), written
    with it, as given, when it goes out, and never without it."""
    media_attributes: Mapping[str, Sequence[str | None]] | None = None
    """A pending revision's new alt text and focal point of its published post's pictures, by
    upload: ``[description, focus]`` (Mastodon's ``media_attributes[]`` of the edit held). Held
    with its words, read by the rules and shown to its approvers as the pictures would be, hashed
    in its ``content_sha256`` as they go out (``gateway.services.content.as_carried``), and given
    to the uploads only when the revision is released: never options of a published post."""

    @classmethod
    def from_json(cls, stored: Mapping[str, Any]) -> PostOptions:
        """The options as ``to_json`` stored them."""
        return cls(**{**stored, "media_ids": tuple(stored.get("media_ids", ()))})

    def to_json(self) -> dict[str, Any]:
        """The options that are set."""
        out: dict[str, Any] = {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in self.__dict__.items() if v is not None and v is not False and v != ()
        }
        return out


_STORED_AS: Final = {outcome: State(outcome.value).value for outcome in Outcome}
"""The state a new post is stored in for each outcome, as its row and its entry write it."""
REPLY_AWAITED: Final = (State.HELD, State.SCHEDULED, State.PUBLISHING, State.SUGGESTED)
"""States of a post a reply may wait for: it goes out later, by itself or once decided."""
ADOPTIONS_FOLLOWED: Final = 4
"""A post a reply or a quote waits for that was a suggestion is the post it was adopted into
(followed so far, at most: a chain longer than this is no thread Byline made)."""
REPLY_PARENT_STATES: Final = frozenset({*REPLY_AWAITED, State.PUBLISHED})
"""States of a post a new reply may name: waiting, or out."""


def unchanged_between(versions: Iterable[tuple[int, Hashable]], answered: int, now: int) -> bool:
    """Whether a post at version ``now`` still has what version ``answered`` had (``versions``:
    each version's number and what it carries, its words and what goes with them), every
    version between kept and none with other words: a decision again makes a new version of the
    same. The one rule by which a reply's approvals answer its parent's words, as the publisher
    holds the reply and its card says."""
    kept = [what for version, what in versions if answered <= version <= now]
    return answered <= now and len(kept) == now - answered + 1 and len(set(kept)) == 1


REPLY_NOT_FOUND: Final = "The post you are trying to reply to does not appear to exist."
"""The answer (404, in Mastodon's words) to a reply to a post that is not there, or that its
writer may not see."""

PUBLISH_AT_HORIZON: Final = timedelta(days=365)
"""How far ahead a post may be scheduled: a year, as far as a posting calendar plans."""
PUBLISH_AT_LEEWAY: Final = timedelta(minutes=1)
"""How much sooner than the cooling-off delay allows a ``publish_at`` may ask and still be taken
(for the earliest time): a tool that asks for "in ten minutes" on a ten-minute account sends a
time already a moment old when it arrives."""


_EMBED_WORDS: Final = ("alt", "title", "description")
"""The keys of a Bluesky embed whose strings a reader sees: an image's alt text, a link card's
title and description (a quoted post is its own author's, judged where it was posted)."""


_REPLY_KEPT: Final = ("reply_to", "reply_to_post", "reply_to_url", "reply_to_account", "reply_to_text",
                       "reply_to_unread", "reply_to_warning", "reply_to_boost", "reply_to_cid",
                       "answers_post", "answers_version")
"""The options that say what a reply answers: its thread's, kept by every edit."""


def _reply_kept(current: Mapping[str, Any]) -> dict[str, Any]:
    """The options that say what a post replies to (:data:`_REPLY_KEPT`), as an edit keeps them."""
    return {k: current.get(k) for k in _REPLY_KEPT}


async def _answers(txn: Txn, options: Mapping[str, Any]) -> dict[str, Any]:
    """The post and version a reply to a post not yet out answers now (``PostOptions.answers_post``
    and ``answers_version``): its parent as it stands, followed into the post a suggestion was
    adopted as, as the publisher follows it. Nothing for a post that is no such reply, or one
    already claimed (``reply_to``: it went out, or is going out, where its parent went)."""
    parent_id = options.get("reply_to_post")
    if not isinstance(parent_id, str) or options.get("reply_to"):
        return {}
    parent = await sql.get_post(txn, parent_id)
    for _ in range(ADOPTIONS_FOLLOWED):
        if parent is None or parent.state != State.ADOPTED.value or parent.adopted_into is None:
            break
        parent = await sql.get_post(txn, parent.adopted_into)
    return {} if parent is None else {"answers_post": parent.id, "answers_version": parent.version}


def _quoted_shown(current: Mapping[str, Any], embed: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a post's quote shows as its approvers were shown it (``PostOptions.quote_text`` and
    its author and address), kept through an edit that quotes the same embed; dropped by one
    that quotes something else or nothing, which would otherwise show words it no longer quotes."""
    keep = embed is not None and embed == current.get("embed")
    return {k: current.get(k) if keep else None for k in ("quote_text", "quote_account", "quote_url")}


def _embed_words(embed: Any, depth: int = 0) -> list[str]:
    """The strings a reader sees in an embed (``_EMBED_WORDS``), at any depth it nests them
    (images inside a quote with media): an embed's JSON is bounded when it is read."""
    if depth > 8:
        return []
    if isinstance(embed, Mapping):
        found = [v for k, v in embed.items() if k in _EMBED_WORDS and isinstance(v, str)]
        for key, value in embed.items():
            if key != "record" and isinstance(value, Mapping | list):
                found += _embed_words(value, depth + 1)
        return found
    if isinstance(embed, list):
        return [w for item in embed for w in _embed_words(item, depth + 1)]
    return []


def _check_publish_at(publish_at: datetime, *, now: datetime, policy: LoadedPolicy) -> None:
    """A 422 naming ``publish_at`` when it is past, beyond the horizon, or sooner than the
    account's cooling-off delay allows (saying the earliest time): a time asked for is kept or
    refused, never moved further than the leeway without a word."""
    if publish_at < now:
        raise BylineError(Code.VALIDATION, "publish_at is in the past", field="publish_at")
    latest = now + PUBLISH_AT_HORIZON
    if publish_at > latest:
        shown = iso(to_micros(latest))
        raise BylineError(
            Code.VALIDATION, f"publish_at may be at most {PUBLISH_AT_HORIZON.days} days ahead: {shown} at the latest",
            field="publish_at", latest=shown,
        )
    earliest = now + policy.policy.delay
    if publish_at < earliest - PUBLISH_AT_LEEWAY:
        shown = iso(to_micros(earliest))
        raise BylineError(
            Code.VALIDATION,
            f"publish_at is sooner than the cooling-off delay of {policy.policy.account} allows: "
            f"{shown} at the earliest",
            field="publish_at", earliest=shown,
        )


@dataclass(frozen=True, kw_only=True)
class Published:
    """A published post someone may act on, with the policy in force for its account."""

    record: PostRecord
    loaded: LoadedPolicy
    lease_until: Micros | None = None
    """Until when this gateway holds the post for its change on the platform
    (``PostService.hold``, ``hold_revision``, or ``take_over`` to settle one left unrecorded);
    None while it does not."""


@dataclass(frozen=True, kw_only=True)
class Revision(Published):
    """New words for a published post that the policy would publish at once: the text as
    written, as it goes out (with its disclosure), the version it becomes, and its options."""

    text: str
    shown: str
    version: int
    options: PostOptions
    seen: tuple[str | None, ...] = ()
    """What a reader sees of it besides its text (``PostService._words_seen``), as the rules read it."""
    redescribed: tuple[tuple[str, str | None, str | None], ...] = ()
    """The new alt text and focal point it gives pictures of the post: (upload, description, focus)."""
    pictures: tuple[tuple[str | None, str | None], ...] | None = None
    """With ``redescribed``: every picture's alt text and focal point as the revision leaves them,
    in the post's order, as the platform's edit sends them (``OutboundPost.redescribed``)."""
    pending: PostRecord | None = None
    """The pending revision (a post of its own, ``PostRecord.revises``) whose approvals or
    cooling-off let these words out, as it was when released; None for an edit its policy
    publishes at once."""

    @property
    def line(self) -> dict[str, str]:
        """What the entries sending and recording it say it shows besides its words
        (``disclosure_line``: the line ``shown`` adds after them, "" for none), so that the
        verifier rebuilds the words that went out from the words approved, as it does a claim's;
        nothing for a ``shown`` that is not the words and a line (the verifier names it)."""
        line = shown_line(self.text, self.shown)
        return {} if line is None else {"disclosure_line": line}


def shown_line(text: str, shown: str) -> str | None:
    """The disclosure line ``shown`` adds after ``text`` ("" for none: ``disclosed_text``), or
    None where ``shown`` is not ``text`` with a line after it."""
    if shown == text:
        return ""
    line = shown.removeprefix(text + "\n\n")
    return line if line != shown and line else None


def _redescribing(change: Mapping[str, Any]) -> tuple[tuple[str, str | None, str | None], ...]:
    """The new alt text and focal points a kept revision (``posts.held_change``) gives pictures."""
    media = change.get("media") or {}
    return tuple((str(m), d, f) for m, (d, f) in media.items())


async def _pictures(
    txn: Txn, options: Mapping[str, Any] | PostOptions, redescribed: tuple[tuple[str, str | None, str | None], ...],
    *, always: bool = False,
) -> tuple[tuple[str | None, str | None], ...] | None:
    """Every picture's (alt text, focal point) as a revision giving them ``redescribed`` leaves
    them, in the post's order; None when it gives none (and not ``always``)."""
    if not redescribed and not always:
        return None
    kept = options.to_json() if isinstance(options, PostOptions) else options
    rows = {r["id"]: r for r in await _redescribed_rows(txn, kept, redescribed)}
    return tuple((rows[m]["description"], rows[m]["focus"]) for m in kept.get("media_ids") or () if m in rows)


async def _redescribed_rows(
    txn: Txn, options: Mapping[str, Any], redescribed: tuple[tuple[str, str | None, str | None], ...],
) -> list[dict[str, Any]]:
    """The rows of a post's uploads as a revision leaves them: with its new alt text and focal points."""
    changes = {m: (d, f) for m, d, f in redescribed}
    rows = [dict(r) for r in await media_sql.info(txn, list(options.get("media_ids") or ()))]
    for row in rows:
        if row["id"] in changes:
            row["description"], row["focus"] = changes[row["id"]]
    return rows


def _as_approved(
    pending: PostRecord | None, options: Mapping[str, Any], rows: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """What an entry of a revision released by its pending revision ``pending`` says of what it
    sends besides its words (``revision_content_sha256``): hashed with the pending revision's
    salt and scheme, not its published post's, so that the verifier can compare it with the
    content hash logged for the version the approvers approved. Without it, a log could send
    another content warning or visibility than they saw, and nothing would tell."""
    if pending is None:
        return {}
    return {"revision_content_sha256": content_sha256(options, rows, salt=pending.content_salt,
                                                      scheme=pending.content_scheme)}


_ID_LOW_BITS: Final = 20
_ids_given = threading.Lock()
_last_id = 0


async def _within_gates_budget(txn: Txn, post_id: str, *, now: int, adding: int) -> None:
    """Refused, 429, where ``adding`` more changes of the post's interaction settings at ``now``
    would pass its budget (see :meth:`PostService.gates_budget`), as the log read in ``txn``
    counts them."""
    times = await log_sql.post_entry_times(txn, post_id, "post.gates_changed", since=now - 3600 * 1_000_000)
    try:
        wait = budget_wait(times, now=now, adding=adding)
    except ValueError as exc:
        raise BylineError(Code.BAD_REQUEST, f"post {post_id}: {exc}") from None
    if wait is None:
        return
    raise BylineError(
        Code.TOO_MANY_REQUESTS,
        f"Rate Limit Exceeded: who may reply to or quote post {post_id} changed "
        f"{len(times)} times in the last hour, and it may change {CHANGES_PER_HOUR} times an hour; "
        f"try again in {wait} seconds",
        retry_after=wait, rate_limit={"limit": CHANGES_PER_HOUR, "window": 3600, "reset": now // 1_000_000 + wait},
    )


class PolicyMoved(Exception):
    """The policy a decision was made under is no longer the account's version in force: raised
    in the work, so that nothing of it is stored, and the decision made again."""


class NeverReleased(Exception):
    """A pending revision that no approval or wait can let out any more (its post no longer
    published, its account now on a platform that does not edit posts): ``why``, in its
    author's words, which :meth:`PostService.fail_revision` records, with the policy it was
    decided under (``policy_sha256``), which the verifier judges it by."""

    def __init__(self, why: str, *, policy_sha256: str) -> None:
        super().__init__(why)
        self.why = why
        self.policy_sha256 = policy_sha256


_P = ParamSpec("_P")
_T = TypeVar("_T")
_POLICY_TRIES: Final = 3


def _under_policy_in_force(
    method: Callable[Concatenate[PostService, _P], Awaitable[_T]],
) -> Callable[Concatenate[PostService, _P], Awaitable[_T]]:
    """Run a decision again, with the versions in force put in force here first, when the one
    it was made under was replaced meanwhile (by a reload here, or by another gateway)."""

    @functools.wraps(method)
    async def decided(self: PostService, /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        for _ in range(_POLICY_TRIES):
            try:
                return await method(self, *args, **kwargs)
            except PolicyMoved:
                await self._refresh_policies()
        raise BylineError(Code.UNAVAILABLE, "the account's policy is changing: try again in a moment")

    return decided


def new_post_id() -> str:
    """A time-ordered numeric id, as Mastodon clients expect: milliseconds, then 20 bits.

    The first id of a millisecond starts at a random point of the lower half of those bits (so
    that replicas, each counting its own, rarely meet), and every later one in this process is
    one more than the last, so no two of its ids are ever the same, however many posts arrive
    in one millisecond (random bits alone met often: a thousand submissions at once).
    """
    global _last_id
    # The random start only spreads replicas apart; ids are no secret (they count milliseconds).
    candidate = (time.time_ns() // 1_000_000) << _ID_LOW_BITS | UNSECRET.getrandbits(_ID_LOW_BITS - 1)
    with _ids_given:
        candidate = max(candidate, _last_id + 1)
        _last_id = candidate
    return str(candidate)


class PlannedClaim(Protocol):
    """A claim of a post due the moment it is stored, planned in the transaction that stores
    it (:meth:`AtOnce.plan`)."""

    @property
    def changes(self) -> Mapping[str, Any]:
        """What the claim sets of the post's row."""

    async def record(self, ltx: LogTxn, *, stored: bool) -> Any | None:
        """Write the claim in ``ltx``: only its entry where the post was ``stored`` with
        :attr:`changes`, else first their compare-and-set on its row. What :meth:`AtOnce.send`
        takes, or ``None`` where the post changed meanwhile."""


class AtOnce(Protocol):
    """What takes a post due the moment it is stored straight to its platform: the publisher."""

    async def plan(self, ltx: LogTxn, post: PostRecord, *, policy_sha256: str) -> PlannedClaim | None:
        """Plan the claim of ``post``, decided under the policy ``policy_sha256``, in the
        transaction that stores it, writing nothing, or ``None`` to leave it to the publisher's
        next page of due posts."""

    def send(self, claim: Any) -> None:
        """Set a claim recorded by :meth:`PlannedClaim.record` on its way, once its
        transaction has committed."""


_SERVERS_APART: Final = frozenset({"mastodon"})
"""Platforms whose servers each number their own posts: a post's id names it on its own server
only. A Bluesky post's id names its account's repository (its DID), which moves with the account
from one PDS to another (and the adapter refuses a post of another DID); X is one server."""


@dataclass(frozen=True, slots=True)
class WentOut:
    """Where a published post went out: its platform, and for a platform whose servers each
    number their own posts (Mastodon) the server (its instance, as :func:`platform_server`
    writes it); ``server`` None where that is not known (the policy's text was recorded before
    texts were kept): then only the platform is compared."""

    platform: str
    server: str | None = None

    @classmethod
    def of(cls, policy: Policy) -> WentOut:
        """Where a post of an account under ``policy`` goes out now."""
        return cls(platform=policy.platform,
                   server=platform_server(policy) if policy.platform in _SERVERS_APART else None)

    def left(self, policy: Policy) -> bool:
        """Whether an account under ``policy`` is no longer where the post is: on another
        platform, or on another server of it."""
        now = WentOut.of(policy)
        return now.platform != self.platform or (self.server is not None and now.server != self.server)

    def __str__(self) -> str:
        return self.platform if self.server is None else f"{self.platform} at {self.server}"


@dataclass(kw_only=True)
class PostService:
    """Submit, edit, approve, reject, cancel, adopt, dismiss and read posts, and record what
    ``PublishedPosts`` did to published ones."""

    db: Database
    appender: Appender
    policies: PolicyRegistry
    clock: Clock
    wake_publisher: Callable[[], None] = lambda: None
    """Tells the publisher a post may be due sooner than it planned for."""
    at_once: AtOnce | None = None
    """Claims a new post that is due at once as it is stored (the direct tier's path): one
    transaction fewer a post, and no wait for the publisher's next look."""
    auditors: frozenset[str] = frozenset()
    """People who may read every account's posts, and never act on them."""
    metrics: Metrics = NOT_SCRAPED
    """Counts each change once it has committed."""
    refresh_policies: Callable[[], Awaitable[object]] | None = None
    """Puts in force here the versions recorded in the database (``PolicyService.sync``)."""

    # -- helpers --------------------------------------------------------------------------

    def policy(self, account: str) -> LoadedPolicy:
        """The policy in force for ``account``, or 404."""
        loaded = self.policies.get(account)
        if loaded is None:
            raise BylineError(Code.UNKNOWN_ACCOUNT, f"no account named {account!r}")
        return loaded

    def _check_text(
        self, loaded: LoadedPolicy, *, author: str, text: Any, editors: Sequence[str] = (),
        suggested_by: str | None = None, options: PostOptions | None = None,
    ) -> str:
        """The text, or a 422: not a string, blank (but for a post that shows uploads or an
        embed, as Mastodon and Bluesky take a picture alone), or too long as published (with a
        disclosure naming everyone whose words go out)."""
        if not isinstance(text, str):
            raise BylineError(Code.VALIDATION, "text must be a string", field="text")
        if is_blank(text) and not (options is not None and (options.media_ids or options.embed is not None)):
            # Zero-width spaces, joiners, bidi marks and the like show nothing either.
            raise BylineError(Code.TEXT_EMPTY, "text is empty: write something to post", field="text")
        shown = disclosed_text(loaded.policy, author=author, text=text, editors=editors, suggested_by=suggested_by)
        platform = loaded.policy.platform
        limit = loaded.policy.text_limit
        length = published_length(platform, shown)
        if length > limit:
            raise BylineError(
                Code.TEXT_TOO_LONG,
                f"text is {length} characters as {platform} counts them; the limit for this account is {limit}",
                field="text",
                limit=limit,
                length=length,
            )
        return text

    async def _load(self, ltx: LogTxn, post_id: str) -> PostRecord:
        post = await sql.get_post(ltx.txn, post_id)
        if post is None:
            raise BylineError(Code.NOT_FOUND, f"no post {post_id}")
        return post

    async def _cas(self, ltx: LogTxn, post: PostRecord, new_state: State, **changes: Any) -> None:
        changes["state"] = new_state.value
        changes.setdefault("updated_at", ltx.now)
        ok = await sql.compare_and_set(
            ltx.txn, post.id, state=post.state, version=post.version, changes=changes
        )
        if not ok:
            raise BylineError(Code.CONFLICT, "the post changed meanwhile; reload it and try again")

    def _authorize(self, caller: Caller, post: PostRecord, act: Act) -> LoadedPolicy:
        return authorize(self.policies.get(post.account), caller, post, act)

    async def _check_in_force(self, ltx: LogTxn, loaded: LoadedPolicy) -> None:
        """Raise :class:`PolicyMoved` unless ``loaded`` is the account's version in force, as
        recorded in the database (where every gateway sharing it records its changes)."""
        if await policy_sql.head_sha256(ltx.txn, loaded.policy.account) != loaded.sha256:
            raise PolicyMoved(loaded.policy.account)

    async def _authorized(self, ltx: LogTxn, caller: Caller, post: PostRecord, act: Act) -> LoadedPolicy:
        """:meth:`_authorize` inside a work, under the version in force only."""
        loaded = self._authorize(caller, post, act)
        await self._check_in_force(ltx, loaded)
        return loaded

    async def _refresh_policies(self) -> None:
        if self.refresh_policies is not None:
            await self.refresh_policies()

    async def _row(self, post_id: str) -> PostRecord:
        async with self.db.read() as txn:
            post = await sql.get_post(txn, post_id)
        if post is None:
            raise BylineError(Code.NOT_FOUND, f"no post {post_id}")
        return post

    # -- submission ----------------------------------------------------------------------

    @_under_policy_in_force
    async def check_submission(
        self, caller: Caller, *, account: str, text: Any, options: PostOptions | None = None,
    ) -> None:
        """Refuse, as :meth:`submit` would, a post it would refuse, storing nothing of it (a
        post a rule blocks is recorded refused, as submitting it records): for a client's
        batch of posts, all checked before any is in."""
        await self._decide_submission(caller, account=account, text=text, publish_at=None, options=options)

    async def _decide_submission(
        self, caller: Caller, *, account: str, text: Any, publish_at: datetime | None, options: PostOptions | None,
    ) -> tuple[LoadedPolicy, str, Decision]:
        """Who may post, the words as they go out, and what the policy decides for them; the
        error a refused post answers with (a post a rule blocks recorded refused first)."""
        check_account_binding(caller, account)
        loaded = self.policy(account)
        policy = loaded.policy
        held_by = roles(policy, caller.user)
        if Role.WRITER in held_by:
            suggestion = False
        elif Role.SUGGESTER in held_by:
            suggestion = True
        else:
            raise BylineError(
                Code.FORBIDDEN, f"{caller.user} may not write or suggest for {account}"
            )
        text = self._check_text(loaded, author=caller.user, text=text, options=options)
        now = self.clock.now()
        if publish_at is not None:
            _check_publish_at(publish_at, now=now, policy=loaded)
        decision = decide(
            policy, author=caller.user, text=text, now=now, requested=publish_at, suggestion=suggestion,
            seen=await self._words_seen(options),
        )
        if isinstance(decision, Reason):
            await self._record_refusal(caller, loaded, text, decision)
            raise rule_blocked(decision)
        return loaded, text, decision

    @_under_policy_in_force
    async def submit(
        self,
        caller: Caller,
        *,
        account: str,
        text: Any,
        publish_at: datetime | None = None,
        options: PostOptions | None = None,
        alongside: Callable[[LogTxn, str], Awaitable[None]] | None = None,
        history: bool = True,
    ) -> PostView:
        """A new post: refused (422), or held, scheduled or suggested per the policy.

        ``alongside`` runs in the transaction that stores the post, given its id, for a change
        that must commit with it or not at all (the Mastodon API attaches the post's uploads
        there); a ``BylineError`` it raises refuses the post and nothing of it is stored.
        ``history``: whether the view returned has the post's versions and log events (see
        :meth:`view`).
        """
        loaded, text, decision = await self._decide_submission(
            caller, account=account, text=text, publish_at=publish_at, options=options)
        at_once = self.at_once
        work = self._submit_work(
            author=caller.user, loaded=loaded, text=text, decision=decision,
            requested=publish_at, options=options or PostOptions(), suggested_by=None,
            adopted_from=None, alongside=alongside, at_once=at_once,
        )
        post, claim = await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.submitted", decision.outcome)
        if claim is not None and at_once is not None:
            at_once.send(claim)
        else:
            self.wake_publisher()
        if history:
            return await self.view(caller, post.id)
        # The post as it was stored, not read back: a new post has no approvals yet, and what
        # happened to it since (the publisher may have taken it up already) is for a later look.
        return self._shown(caller, post, GoingOut(text=with_disclosure(post, loaded.policy)), decisions=[])

    async def _words_seen(
        self, options: PostOptions | None, *, described: Mapping[str, str | None] | None = None
    ) -> tuple[str | None, ...]:
        """What a reader sees of a post besides its text, which the rules read as they read the
        text: its content warning, its uploads' descriptions (alt text; ``described`` gives new
        ones not stored yet), and a Bluesky embed's alt texts and link card."""
        if options is None:
            return ()
        seen: list[str | None] = [options.spoiler_text]
        if options.media_ids:
            async with self.db.read() as txn:
                rows = as_carried(options.to_json(), await media_sql.info(txn, list(options.media_ids)))
            changed = described or {}
            seen += [changed.get(row["id"], row["description"]) for row in rows]
        if options.embed is not None:
            seen += _embed_words(options.embed)
        return tuple(seen)

    async def _record_refusal(
        self, caller: Caller, loaded: LoadedPolicy, text: str, reason: Reason
    ) -> None:
        async def work(ltx: LogTxn) -> None:
            await ltx.append(
                "post.refused",
                actor=caller.user,
                account=loaded.policy.account,
                data={"text_hash": ltx.commit_text(text), "rule": reason.rule,
                      "reason": reason.reason, "policy_sha256": loaded.sha256},
            )

        await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.refused", "none")

    def _submit_work(
        self,
        *,
        author: str,
        loaded: LoadedPolicy,
        text: str,
        decision: Decision,
        requested: datetime | None,
        options: PostOptions,
        suggested_by: str | None,
        adopted_from: str | None,
        alongside: Callable[[LogTxn, str], Awaitable[None]] | None = None,
        at_once: AtOnce | None = None,
        revises: PostRecord | None = None,
    ) -> Work[tuple[PostRecord, Any | None]]:
        """The work that stores a new post: the post as stored, and, given ``at_once``, its
        claim where it is due at once (see :meth:`submit`). ``revises``: the published post whose
        pending revision it is (:meth:`revision`), whose editors it keeps, as its words go out
        under the same disclosure line."""
        policy = loaded.policy
        post_id = new_post_id()

        async def work(ltx: LogTxn) -> tuple[PostRecord, Any | None]:
            state = _STORED_AS[decision.outcome]
            gate = decision.gate
            expires = (
                ltx.now + duration_micros(gate.expire_after) if gate else None
            )
            publish_at = to_micros(decision.publish_at) if decision.publish_at else None
            # The policy may have changed (here or on another gateway) while the post was being
            # decided: then nothing is stored, and it is decided again under the version in force.
            if options.reply_to_post is not None:
                # Its parent was found waiting or out when the reply was read; ended since (a
                # cancel that committed meanwhile, here or on another gateway), its end took the
                # replies it knew of with it, and this one would wait for it for ever.
                parent = await sql.get_post(ltx.txn, options.reply_to_post)
                if parent is None or State(parent.state) not in REPLY_PARENT_STATES:
                    raise BylineError(Code.NOT_FOUND, REPLY_NOT_FOUND, verbatim=True)
                # The words of its parent its approvers approve an answer to: that parent's version
                # now. Only for such a reply: a post that answers none of the account's own goes
                # on as it came (a copy of its options is some thirty calls on a direct post's path).
                written = replace(options, **await _answers(ltx.txn, options.to_json()))
            else:
                written = options
            # Its fields kept, for the row stored claimed below: one record made, not one copied.
            fields: dict[str, Any] = dict(
                id=PostId(post_id), account=AccountName(policy.account), author=UserName(author), state=state,
                version=1, text=text, options=written.to_json(),
                reasons=tuple(r.to_json() for r in decision.reasons) if decision.reasons else (),
                approvers=tuple(UserName(a) for a in gate.approvers) if gate else (),
                required=gate.required if gate else 0, requested_at=to_micros(requested) if requested else None,
                publish_at=publish_at, expires_at=None if expires is None else Micros(expires),
                suggested_by=None if suggested_by is None else UserName(suggested_by),
                adopted_from=None if adopted_from is None else PostId(adopted_from),
                created_at=Micros(ltx.now), updated_at=Micros(ltx.now), content_salt=new_content_salt(),
                content_scheme=scheme_for(focal_points=carries(policy.platform).focal_points),
            )
            if revises is not None:
                await _check_revisable(ltx.txn, revises.id)
                fields.update(revises=revises.id, editors=revises.editors)
            post = PostRecord(**fields)
            # Due at once, it is claimed in this transaction. Without uploads, whose rows the claim
            # reads once they are the post's, it is stored claimed: one statement, not two, in
            # the log writer's batch, whose round trips on PostgreSQL each batch waits for in turn.
            early = None if at_once is None or options.media_ids else await at_once.plan(
                ltx, post, policy_sha256=loaded.sha256)
            stored = post if early is None else PostRecord(**{**fields, **early.changes})
            # Held, where nothing of this work's needs it stored before the batch's next statement
            # (no uploads to attach): it goes in with the other new posts of the batch, in one
            # statement on PostgreSQL, where each was a round trip the batch waited for.
            held = None if alongside is not None or options.media_ids or revises is not None else (
                ltx.work, PolicyMoved(policy.account))
            if not await sql.insert_new_post(ltx.txn, stored, policy_sha256=loaded.sha256, held=held):
                raise PolicyMoved(policy.account)
            if alongside is not None:
                await alongside(ltx, post_id)  # its uploads are the post's from here
            content, media = await stored_content(ltx.txn, post.options, salt=post.content_salt,
                                                  scheme=post.content_scheme)
            if media:
                await sql.set_version_media(ltx.txn, post_id=post_id, version=1, media=media)
            # Its id is new (the post's row is made in this transaction, or the work fails): its
            # chain has no entry to link to, and needs no lookup when the batch is sealed.
            ltx.heads_read({post_chain(post_id): None})
            await ltx.append(
                "post.submitted",
                actor=author,
                account=policy.account,
                post=post_id,
                data={
                    "version": 1,
                    "text_hash": ltx.commit_text(text),
                    "state": state,
                    "reasons": [r.to_json() for r in decision.reasons] if decision.reasons else [],
                    "approvers": list(gate.approvers) if gate else [],
                    "required": gate.required if gate else 0,
                    "publish_at": None if publish_at is None else iso(publish_at),
                    "expires_at": None if expires is None else iso(expires),
                    "suggested_by": suggested_by,
                    "adopted_from": adopted_from,
                    "policy_sha256": loaded.sha256,
                    # What it carries besides its words is kept beside its version, not here: the
                    # log is public, and a post that never goes out keeps its content warning
                    # and alt texts as private as its words.
                    "content_sha256": content,
                    # The post not yet out it replies to: what the thread's end is checked by.
                    **({"reply_to_post": options.reply_to_post} if options.reply_to_post else {}),
                    # And the post and version its approvers approve an answer to.
                    **({"answers_post": written.answers_post, "answers_version": written.answers_version}
                       if written.answers_post else {}),
                    # The post not yet out it quotes, and its version: the words its approvers saw quoted.
                    **({"quote_of_post": options.quote_of_post, "quote_of_version": options.quote_of_version}
                       if options.quote_of_post else {}),
                    # The published post whose words it would replace, once approved or due.
                    **({"revises": revises.id} if revises is not None else {}),
                },
            )
            if early is not None:
                return post, await early.record(ltx, stored=True)
            late = None if at_once is None or not options.media_ids else await at_once.plan(
                ltx, post, policy_sha256=loaded.sha256)
            return post, None if late is None else await late.record(ltx, stored=False)

        return work

    # -- changes -------------------------------------------------------------------------

    @_under_policy_in_force
    async def edit(
        self, caller: Caller, post_id: str, *, text: Any, options: PostOptions | None = None,
        alongside: Callable[[LogTxn, str], Awaitable[Mapping[str, Any] | None]] | None = None,
        described: Mapping[str, str | None] | None = None, of_version: int | None = None,
    ) -> PostView:
        """A new version of the text (and, when given, its options) while held, scheduled or
        suggested; rules run again, over what a reader will see of it (``described``: new
        descriptions of its uploads, which ``alongside`` stores). ``alongside`` is as for
        ``submit``; what it returns is added to the ``post.edited`` entry (the Mastodon API
        names an upload whose alt text the edit changed). ``of_version``: the version whose text
        ``text`` keeps (a change of an upload alone): 409 if the post has moved on since, rather
        than the later version's words be written over."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.EDIT)
        editors = post.editors
        showing = options or PostOptions.from_json(post.options)  # the edit's options, or the ones it keeps
        text = self._check_text(
            loaded, author=post.author, text=text, suggested_by=post.suggested_by,
            editors=[*editors, caller.user] if caller.user != post.author else editors, options=showing,
        )
        check_approvers_left(loaded, caller, post)
        policy = loaded.policy
        verdict = check_rules(policy, text, *await self._words_seen(showing, described=described))
        if verdict.blocked_by is not None:
            raise rule_blocked(verdict.blocked_by)
        now = self.clock.now()

        async def work(ltx: LogTxn) -> State:
            current = await self._load(ltx, post_id)
            in_force = await self._authorized(ltx, caller, current, Act.EDIT)
            check_approvers_left(in_force, caller, current)
            state = State(current.state)
            transition(state, Action.EDIT)
            if of_version is not None and current.version != of_version:
                # The text given is that version's: written over a later one, its words would go.
                raise BylineError(Code.CONFLICT, "the post changed meanwhile; reload it and try again",
                                  version=current.version)
            version = current.version + 1
            changes: dict[str, Any] = {"text": text, "version": version}
            editors = current.editors
            if caller.user != current.author and caller.user not in editors:
                # Their words go out too: the disclosure names them and they no longer approve.
                changes["editors"] = json.dumps([*editors, caller.user])
            # Where a reply goes is its thread's, never an edit's: an app's edit passes the options
            # it read, and the publisher may have claimed the reply since (writing where its
            # parent went) and been asked to come back later; the options it read would have it
            # wait for its parent again, and be cancelled with it once sent.
            # What it answers, as its approvers were shown it, goes with where it goes.
            given = None if options is None else replace(
                options, **_reply_kept(current.options),
                quote_of_post=current.options.get("quote_of_post"),
                quote_of_version=current.options.get("quote_of_version"),
                # What the quote shows, as read when it was written: kept while it quotes the same.
                **_quoted_shown(current.options, options.embed))
            # A reply to a post not yet out answers its parent as it stands now, as its approvers
            # see it beside the edit they are asked to approve.
            answers = await _answers(ltx.txn, current.options)
            kept = {**(given.to_json() if given is not None else current.options), **answers}
            if given is not None or answers:
                changes["options"] = json.dumps(kept)
            new_state = state
            gated: dict[str, Any] = {}
            old_reasons = [dict(r) for r in current.reasons]
            new_reasons = [r.to_json() for r in verdict.holds]
            if state is State.SCHEDULED and (verdict.holds or current.required > 0):
                # What approvers approved is not this text: it goes back to them.
                new_state = transition(state, Action.REHOLD)
                gate = gate_for(policy, current.author)
                if not verdict.holds:
                    # Said as it is: an edit of an upload's alt text or crop keeps the words, and an
                    # approver told the text changed would look for a change of words, and find none.
                    what = ("The text changed after it was approved" if text != current.text else
                            "What goes out with its words (an upload's alt text or crop, or an option) "
                            "changed after it was approved")
                    new_reasons = [{"rule": "edited-after-approval", "action": "hold", "reason": what}]
                changes.update(
                    approvers=json.dumps(list(gate.approvers)),
                    required=gate.required,
                    publish_at=None,
                    expires_at=ltx.now + duration_micros(gate.expire_after),
                )
                gated = {"approvers": list(gate.approvers), "required": gate.required}
            elif state is State.SCHEDULED:
                # The cooling-off window starts again for the new words.
                at = max(to_micros(publish_time(policy, now, None)), int(current.publish_at or 0))
                changes["publish_at"] = at
            if state is State.HELD:
                # Once held, a post stays held: editing out the flagged words does not skip
                # the second look. Earlier approvals were for the old version and no longer count.
                new_reasons = old_reasons + [r for r in new_reasons if r not in old_reasons]
            changes["reasons"] = json.dumps(new_reasons)
            await self._cas(ltx, current, new_state, **changes)
            alongside_data = await alongside(ltx, post_id) if alongside is not None else None
            content, media = await stored_content(ltx.txn, kept, salt=current.content_salt,
                                                  scheme=current.content_scheme)
            # the CAS checked the old version; the row now carries the new one
            await sql.insert_version(ltx.txn, post_id=post_id, version=version, text=text,
                                     editor=caller.user, at=ltx.now, options=kept, media=media)
            await ltx.append(
                "post.edited",
                actor=caller.user,
                account=current.account,
                post=post_id,
                data={"version": version, "text_hash": ltx.commit_text(text),
                      "state": new_state.value, "reasons": new_reasons,
                      "publish_at": iso(changes.get("publish_at", current.publish_at)),
                      # The hold's deadline: a new one where the edit held the post again.
                      "expires_at": iso(changes.get("expires_at", current.expires_at)),
                      "policy_sha256": in_force.sha256, **gated,
                      # An edit that gives the options names the post it now replies to, or none.
                      **({"reply_to_post": given.reply_to_post} if given is not None else {}),
                      # And, for a reply to one not yet out, that post's version it answers now.
                      **({"reply_to_post": current.options["reply_to_post"], **answers} if answers else {}),
                      "content_sha256": content, **(alongside_data or {})},
            )
            return new_state

        self.metrics.post_event(loaded, "post.edited", await self.appender.submit(work))
        self.wake_publisher()
        return await self.view(caller, post_id)

    @_under_policy_in_force
    async def approve(self, caller: Caller, post_id: str, *, version: int | None) -> PostView:
        """One approval of the version the approver saw; the one that reaches the required count
        of approvers who wrote none of it schedules the post."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.APPROVE)
        seen = check_version(post, version)
        check_no_words(loaded, caller, post)
        now = self.clock.now()

        async def work(ltx: LogTxn) -> State:
            current = await self._load(ltx, post_id)
            # Decided again inside the transaction: the post or the policy may have changed since.
            in_force = await self._authorized(ltx, caller, current, Act.APPROVE)
            version = check_version(current, seen)
            check_no_words(in_force, caller, current)
            check_not_expired(current, now=ltx.now)
            policy = in_force.policy
            state = State(current.state)
            # Given for the text that goes out, as the approver's card shows it (the words with
            # the disclosure line of the policy in force): it counts for that text only.
            sends = await outgoing_sha256(ltx.txn, current, policy)
            await _decide(ltx, post_id=post_id, version=version, approver=caller.user, decision="approve",
                          reason=None, sends=sends, speaks_as=given_as(in_force))
            count = len(counted_for(in_force, current, await sql.approvers_of(ltx.txn, post_id, version), sends))
            required = current.required
            # ``text_bound``: this approval counts for the text with the disclosure line of the
            # policy it names only (the verifier holds it to that: ``Replay._approved``).
            data: dict[str, Any] = {"version": version, "count": count, "required": required,
                                    "policy_sha256": in_force.sha256, "text_bound": True}
            if count >= required:
                requested = current.requested_at
                at = max(int(to_micros(publish_time(policy, now, None))), int(requested or 0))
                new_state = transition(state, Action.RELEASE)
                await self._cas(ltx, current, new_state, publish_at=at, expires_at=None)
                data.update(state=State.SCHEDULED.value, publish_at=iso(at), expires_at=None)
            else:
                new_state = transition(state, Action.APPROVE)
                await self._cas(ltx, current, new_state)
                data["state"] = State.HELD.value
            await ltx.append("post.approved", actor=caller.user, account=current.account,
                             post=post_id, data=data)
            return new_state

        self.metrics.post_event(loaded, "post.approved", await self.appender.submit(work))
        self.wake_publisher()
        return await self.view(caller, post_id)

    @_under_policy_in_force
    async def reject(
        self, caller: Caller, post_id: str, *, version: int | None, reason: str | None
    ) -> PostView:
        """One approver's rejection of the version they saw ends a held post: a co-signer's veto."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.REJECT)
        seen = check_version(post, version)

        async def work(ltx: LogTxn) -> int:
            current = await self._load(ltx, post_id)
            in_force = await self._authorized(ltx, caller, current, Act.REJECT)
            version = check_version(current, seen)
            new_state = transition(State(current.state), Action.REJECT)
            # Of the text that goes out now, as the approver's card shows it: one who approved
            # other words (the disclosure line changed since) may still refuse these.
            await _decide(ltx, post_id=post_id, version=version, approver=caller.user, decision="reject",
                          reason=reason, sends=await outgoing_sha256(ltx.txn, current, in_force.policy),
                          speaks_as=given_as(in_force))
            await self._cas(ltx, current, new_state, expires_at=None)
            # The reason stays with the decision: the log is public, the post never goes out, and
            # a reason may well quote its words. The entry holds a salted hash of it.
            await ltx.append("post.rejected", actor=caller.user, account=current.account,
                             post=post_id, data={"version": version,
                                                 "reason_sha256": reason_sha256(reason, salt=current.content_salt),
                                                 "state": new_state.value, "policy_sha256": in_force.sha256})
            return await cancel_waiting_replies(ltx, current, new_state)

        replies = await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.rejected", State.REJECTED)
        self._count_cancelled_replies(loaded, replies)
        return await self.view(caller, post_id)

    @_under_policy_in_force
    async def _simple(
        self, /, caller: Caller, post_id: str, act: Act, action: Action, event: str,
        data: dict[str, Any] | None = None, *, reason: tuple[str, str | None] | None = None, **changes: Any,
    ) -> PostView:
        """``reason``: the decision (``dismiss``) and the reason given for it, kept with the
        post's decisions and only as a salted hash in the entry (see :meth:`reject`)."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, act)

        async def work(ltx: LogTxn) -> tuple[State, int]:
            current = await self._load(ltx, post_id)
            in_force = await self._authorized(ltx, caller, current, act)
            new_state = transition(State(current.state), action)
            await self._cas(ltx, current, new_state, **changes)
            said = dict(data or {})
            if reason is not None:
                decision, words = reason
                if words:
                    await sql.insert_decision(ltx.txn, post_id=post_id, version=current.version,
                                              approver=caller.user, decision=decision, reason=words, at=ltx.now)
                said["reason_sha256"] = reason_sha256(words, salt=current.content_salt)
            await ltx.append(event, actor=caller.user, account=current.account, post=post_id,
                             data={"state": new_state.value, **said, "policy_sha256": in_force.sha256})
            return new_state, await cancel_waiting_replies(ltx, current, new_state)

        new_state, replies = await self.appender.submit(work)
        self.metrics.post_event(loaded, event, new_state)
        self._count_cancelled_replies(loaded, replies)
        return await self.view(caller, post_id)

    def _count_cancelled_replies(self, loaded: LoadedPolicy | None, replies: int) -> None:
        for _ in range(replies):
            self.metrics.post_event(loaded, "post.cancelled", State.CANCELLED)

    async def cancel(self, caller: Caller, post_id: str) -> PostView:
        """The author takes a post back before it is out: the pencil stage."""
        return await self._simple(caller, post_id, Act.CANCEL, Action.CANCEL, "post.cancelled")

    async def dismiss(self, caller: Caller, post_id: str, *, reason: str | None) -> PostView:
        """A writer declines a suggestion."""
        return await self._simple(
            caller, post_id, Act.DISMISS, Action.DISMISS, "post.dismissed", reason=("dismiss", reason)
        )

    async def retry(self, caller: Caller, post_id: str) -> PostView:
        """Put a failed post back in the queue, to publish now; held first, in the same
        transaction, when the policy now in force asks for what it has not had (see
        :func:`retry_cause`): a post that failed on a direct account does not go out alone
        once the account is co-signed."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.RETRY)
        now = Micros(to_micros(self.clock.now()))

        async def work(ltx: LogTxn) -> tuple[State, list[State]]:
            current = await self._load(ltx, post_id)
            in_force = await self._authorized(ltx, caller, current, Act.RETRY)
            new_state = transition(State(current.state), Action.RETRY)
            if current.revises is not None:  # a failed pending revision: its post must still take it
                await _check_revisable(ltx.txn, current.revises)
            await self._cas(ltx, current, new_state, publish_at=now, attempts=0, last_error=None)
            await ltx.append("post.retried", actor=caller.user, account=current.account, post=post_id,
                             data={"state": new_state.value, "policy_sha256": in_force.sha256})
            current = replace(current, state=new_state.value, publish_at=now, attempts=0, last_error=None)
            approved, sends = await _approvals_and_text(ltx, current, in_force)
            cause = retry_cause(in_force, current, approved, sends=sends)
            if cause is not None:
                new_state = await redecide(ltx, current, loaded=in_force, cause=cause)
            return new_state, await retry_waiting_replies(ltx, current, loaded=in_force)

        new_state, replies = await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.retried", new_state)
        for state in replies:
            self.metrics.post_event(loaded, "post.retried", state)
        self.wake_publisher()
        return await self.view(caller, post_id)

    @_under_policy_in_force
    async def adopt(self, caller: Caller, post_id: str, *, version: int | None, text: Any | None) -> PostView:
        """A writer takes up the version of a suggestion they read: a new post by the writer,
        crediting the suggester. An adopted post may go out at once, so the suggester's edit
        made while the writer read is refused as an approver's would be (409), not adopted."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.ADOPT)
        seen = check_version(post, version)
        words = post.text if text is None else text
        options = PostOptions.from_json(post.options)
        words = self._check_text(loaded, author=caller.user, text=words, suggested_by=post.author, options=options)
        now = self.clock.now()
        decision = decide(
            loaded.policy, author=caller.user, text=words, now=now, requested=None, suggestion=False,
            seen=await self._words_seen(options),
        )
        if isinstance(decision, Reason):
            raise rule_blocked(decision)
        create = self._submit_work(
            author=caller.user, loaded=loaded, text=words, decision=decision, requested=None,
            options=options, suggested_by=post.author, adopted_from=post_id,
        )

        async def work(ltx: LogTxn) -> str:
            current = await self._load(ltx, post_id)
            in_force = await self._authorized(ltx, caller, current, Act.ADOPT)
            # The words and options read above are this version's: the suggestion changed since is no
            # longer what the writer adopts.
            adopted = check_version(current, seen)
            new_state = transition(State(current.state), Action.ADOPT)
            new_id = (await create(ltx))[0].id
            await self._cas(ltx, current, new_state, adopted_into=new_id)
            await ltx.append("post.adopted", actor=caller.user, account=current.account,
                             post=post_id, data={"state": new_state.value, "into": new_id, "version": adopted,
                                                 "policy_sha256": in_force.sha256})
            return new_id

        new_id = await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.adopted", State.ADOPTED)
        self.metrics.post_event(loaded, "post.submitted", decision.outcome)
        self.wake_publisher()
        return await self.view(caller, new_id)

    # -- published posts: the record side of what ``PublishedPosts`` does on the platform ------

    async def deletable(self, caller: Caller, post_id: str) -> Published:
        """A published post ``caller`` may delete on its platform, or the error they should see."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.DELETE)
        transition(State(post.state), Action.DELETE)
        await self._still_on_its_platform(post, loaded, what="delete")
        return Published(record=post, loaded=loaded)

    _HELD = ("the post is being edited or deleted on its platform just now, or changed meanwhile: reload it "
             "and try again in a moment")

    async def hold(self, caller: Caller, published: Published, *, lease: timedelta) -> Published:
        """Hold a published post for its deletion on its platform, so that changes of one post
        reach the platform one at a time, each recorded before the next is sent, on every
        gateway sharing the database: the post's lease, a compare-and-set at the version the
        deletion was decided from, with the deletion kept beside it (who asked, under which
        policy). Another change meanwhile hears 409 and reaches nothing. The record of the
        deletion ends the hold (:meth:`record_deleted`); a deletion the platform refused lets go
        of it (:meth:`let_go`). Should the gateway stop between the platform's answer and the
        record, the deletion stays kept once the lease runs out, and the publisher settles it
        (``PublishedPosts.settle``): deleted on the platform again, which is safe, and recorded.

        No log entry: a deletion puts no words out. Until it is recorded the log says the post
        is out, as it was the moment before."""
        now = now_micros(self.clock)
        until = Micros(now + duration_micros(lease))
        change = {"change": "delete", "actor": caller.user, "policy_sha256": published.loaded.sha256}
        async with self.db.write() as txn:
            held = await sql.hold_published(txn, published.record.id, version=published.record.version,
                                            now=now, until=until, change=change)
        if not held:
            raise BylineError(Code.CONFLICT, self._HELD, retryable=True)
        return replace(published, lease_until=until)

    async def hold_revision(self, caller: Caller, revision: Revision, *, lease: timedelta) -> Revision:
        """Hold a published post for its revision on the platform, as :meth:`hold` does for a
        deletion, and say so in the log before the platform is asked (``post.revising``): the
        version, the words (as every version's, a salted hash) and what it carries, under the
        policy it was decided on, which must still be the account's in force. The log then holds
        every word the platform may show before the platform can show it, whatever becomes of
        the gateway on the way. The revision is kept beside the hold, so that, recorded or not,
        it is settled: recorded (:meth:`record_revised`), or failed (:meth:`let_go`), by this
        gateway or, once the hold runs out, by the publisher of any gateway."""
        post_id = revision.record.id
        kept = revision.options.to_json()
        change: dict[str, Any] = {"change": "revise", "actor": caller.user, "version": revision.version,
                                  "text": revision.text, "options": kept, "policy_sha256": revision.loaded.sha256}
        if revision.redescribed:
            change["media"] = {m: [d, f] for m, d, f in revision.redescribed}
        pending = revision.pending
        approved: dict[str, Any] = {} if pending is None else {"revision": pending.id}
        # The words as approved, disclosure line and all: a settlement sends these again, whatever
        # line the account's policy has by then.
        change |= approved | ({} if pending is None else {"shown": revision.shown})

        async def work(ltx: LogTxn) -> Micros:
            current = await self._load(ltx, post_id)
            await self._check_in_force(ltx, revision.loaded)
            until = Micros(ltx.now + duration_micros(lease))
            if not await sql.hold_published(ltx.txn, post_id, version=revision.record.version, now=ltx.now,
                                            until=until, change=change):
                raise BylineError(Code.CONFLICT, self._HELD, retryable=True)
            if pending is not None:
                # Its approvals are spent on this edit: taken at the version they approved, or not at all.
                await _move_pending(ltx, pending, State.SCHEDULED, Action.CLAIM)
            # What it carries as the platform is to show it: with the new alt text and focal points.
            rows = await _redescribed_rows(ltx.txn, kept, revision.redescribed)
            content = content_sha256(kept, rows, salt=current.content_salt, scheme=current.content_scheme)
            await ltx.append("post.revising", actor=caller.user, account=current.account, post=post_id,
                             data={"version": revision.version, "text_hash": ltx.commit_text(revision.text),
                                   "state": State.PUBLISHED.value, "remote_id": current.remote_id,
                                   "content_sha256": content, "policy_sha256": revision.loaded.sha256,
                                   **approved, **_as_approved(pending, kept, rows), **revision.line})
            return until

        try:
            until = await self.appender.submit(work)
        except PolicyMoved:
            raise BylineError(Code.UNAVAILABLE, "the account's policy changed as the edit was decided: try again "
                              "in a moment", retryable=True) from None
        self.metrics.post_event(revision.loaded, "post.revising", State.PUBLISHED)
        return replace(revision, lease_until=until)

    async def let_go(self, published: Published, *, why: str) -> None:
        """End the hold of a change the platform did not make (``why``, in Byline's words: the
        public log's, for a revision), and forget the change: the post takes the next one at
        once. A revision sent says it failed (``post.revision_failed``), the platform showing
        the words recorded before. Nothing, should the hold have been taken over meanwhile (it
        ran out, and the publisher settles the change)."""
        if published.lease_until is None:
            return
        lease_until, post = published.lease_until, published.record
        kept = post.held_change or {}  # what a settlement took over; the change's own gateway has it in hand
        version = published.version if isinstance(published, Revision) else (
            kept.get("version") if kept.get("change") == "revise" else None)
        pending = published.pending.id if isinstance(published, Revision) and published.pending else (
            kept.get("revision"))
        if version is None:  # a deletion: nothing in the log to settle
            async with self.db.write() as txn:
                await sql.let_go(txn, post.id, lease_until=lease_until)
            return

        async def work(ltx: LogTxn) -> bool:
            if not await sql.let_go(ltx.txn, post.id, lease_until=lease_until):
                return False
            named: dict[str, Any] = {}
            row = None if pending is None else await sql.get_post(ltx.txn, str(pending))
            if row is not None and row.state == State.PUBLISHING.value:
                # The pending revision failed with it: its author may retry it, or cancel it.
                await _move_pending(ltx, row, State.PUBLISHING, Action.FAIL, last_error=why)
                named["revision"] = row.id
            await ltx.append("post.revision_failed", actor="system", account=post.account, post=post.id,
                             data={"version": version, "state": State.PUBLISHED.value,
                                   "remote_id": post.remote_id, "error": why, **named})
            return True

        if await self.appender.submit(work):
            self.metrics.post_event(published.loaded, "post.revision_failed", State.PUBLISHED)

    async def record_deleted(self, caller: Caller, post_id: str) -> PostView:
        """Record that a published post was deleted on its platform; the record of it stays,
        and whoever held it for a change holds it no more.

        Recorded even when the hold ran out meanwhile: the platform has deleted the post, and
        the deletion is all the post was held for (the publisher, settling it meanwhile, sent it
        again). Already recorded by that settlement, it is not recorded twice."""
        await self._record_deleted(caller.user, post_id)
        return await self.view(caller, post_id)

    async def _record_deleted(self, actor: str, post_id: str, *, settled: Published | None = None) -> bool:
        """Record a deletion made on the platform (``settled``: by the publisher, settling one
        its gateway did not record, which names the policy it was asked under); False when it
        had been recorded already."""

        async def work(ltx: LogTxn) -> tuple[str, int] | None:
            current = await self._load(ltx, post_id)
            if current.state == State.DELETED.value:
                return None
            new_state = transition(State(current.state), Action.DELETE)
            await self._cas(ltx, current, new_state, lease_until=None, held_change=None)
            if current.remote_id is not None and current.remote_id.startswith("at://"):
                # Only a Bluesky post has gates whose changes are counted; gone, it needs them no more.
                await intents_sql.prune_turns(ltx.txn, current.account, post_id)
            data: dict[str, Any] = {"state": new_state.value, "remote_id": current.remote_id}
            if settled is not None:
                # Named by the policy in force where the asker may still delete under it: one
                # settled long after a change that left them that right (the platform down for
                # a while) is no deletion under a policy gone. Else by the one it was asked under,
                # which judges it, with the verifier's grace for a change a gateway had not seen.
                in_force = settled.loaded
                still = may(in_force.policy, actor, Act.DELETE, author=current.author, approvers=current.approvers)
                asked_under = (current.held_change or {}).get("policy_sha256")
                data |= {"policy_sha256": in_force.sha256 if still else asked_under, "recovered": True}
            await ltx.append("post.deleted", actor=actor, account=current.account, post=post_id, data=data)
            return current.account, await cancel_waiting_replies(ltx, current, new_state) + await _cancel_pending(
                ltx, post_id)

        recorded = await self.appender.submit(work)
        if recorded is None:
            return False
        account, replies = recorded
        self.metrics.post_event(self.policies.get(account), "post.deleted", State.DELETED)
        self._count_cancelled_replies(self.policies.get(account), replies)
        return True

    # -- changes whose gateway stopped before recording them: the publisher settles them ----

    async def changes_due(self, *, limit: int) -> list[PostRecord]:
        """Published posts whose hold ran out with its change kept (:meth:`hold`,
        :meth:`hold_revision`): their gateway stopped, or lost its database, on the way."""
        async with self.db.read() as txn:
            return await sql.changes_due(txn, now=now_micros(self.clock), limit=limit)

    async def take_over(self, post: PostRecord, *, lease: timedelta) -> Published | None:
        """Hold ``post`` (one of :meth:`changes_due`) to settle its change, as the one gateway
        that does: None when another took it first, or while its account has no policy in
        force (nothing reaches its platform then; the change waits)."""
        loaded = self.policies.get(post.account)
        if loaded is None or post.lease_until is None:
            return None
        now = now_micros(self.clock)
        until = Micros(now + duration_micros(lease))
        async with self.db.write() as txn:
            if not await sql.take_over(txn, post.id, lease_until=post.lease_until, now=now, until=until):
                return None
        return Published(record=replace(post, lease_until=until), loaded=loaded, lease_until=until)

    async def went_out_on(self, post: PostRecord) -> WentOut | None:
        """Where ``post`` went out: the platform, and the server, of the policy its last claim
        was made under (``post.publishing``), as recorded; None when the database does not know
        it (a post claimed before claims named their policy)."""
        async with self.db.read() as txn:
            claim = await log_sql.last_claim(txn, post.id)
            sha256 = claim.get("policy_sha256") if claim is not None else None
            if not isinstance(sha256, str):
                return None
            version = await policy_sql.recorded(txn, post.account, sha256)
        if version is None or version.platform is None:
            return None
        server = None
        if version.platform in _SERVERS_APART and version.body is not None:
            # Read from the text alone, not validated again: one valid when recorded may be
            # refused by this gateway's settings now (a credential's reference, say), and its
            # instance still says where its posts went out.
            # A text that is no YAML mapping (never recorded so) leaves the platform alone compared.
            with contextlib.suppress(PolicyFileError):
                server = written_server(version.body, name=version.file or f"{post.account}.yaml")
        return WentOut(platform=version.platform, server=server)

    async def _still_on_its_platform(self, post: PostRecord, loaded: LoadedPolicy, *, what: str) -> None:
        """Refuse (409) a change of a published ``post`` whose account has moved to another
        platform, or another server of it, since it went out: its id there would name another
        post, or none, and the record would say the post was changed where it is not. Byline
        holds no credential for where it is now."""
        went = await self.went_out_on(post)
        if went is not None and went.left(loaded.policy):
            raise BylineError(
                Code.CONFLICT,
                f"post {post.id} went out on {went}, and {post.account} is now on {WentOut.of(loaded.policy)}: "
                f"Byline cannot {what} it there; {what} it on {went} itself",
                platform=went.platform, **({"server": went.server} if went.server is not None else {}),
            )

    async def strand_change(self, post: PostRecord, *, wait: timedelta) -> bool | None:
        """Leave the kept change of ``post`` (one of :meth:`changes_due`) for ``wait`` at most,
        stranded: its account cannot settle it here (``PublishedPosts.settle``). True when it
        was not stranded before, False when it was, None when another gateway took it."""
        if post.lease_until is None:
            return None
        now = now_micros(self.clock)
        async with self.db.write() as txn:
            return await sql.strand_change(txn, post.id, lease_until=post.lease_until, now=now,
                                           until=now + duration_micros(wait))

    async def stranded_changes(self) -> list[PostRecord]:
        """The published posts whose kept change is stranded."""
        async with self.db.read() as txn:
            return await sql.stranded_changes(txn)

    async def stranded_change_counts(self) -> dict[str, int]:
        """How many kept changes wait for each account to be able to settle them here."""
        async with self.db.read() as txn:
            return await sql.stranded_change_counts(txn)

    async def release_stranded_change(self, post: PostRecord) -> bool:
        """Make a stranded change due now, its account able to settle it again."""
        if post.lease_until is None:
            return False
        async with self.db.write() as txn:
            return await sql.release_stranded_change(txn, post.id, lease_until=post.lease_until,
                                                     now=now_micros(self.clock))

    @_under_policy_in_force
    async def settling(self, held: Published) -> Revision | None:
        """The revision ``held`` was kept for, as the policy in force decides it now: to be sent
        again and recorded as its author's, if it would still publish the words at once (its
        author writing, no rule holding them, no approvals, no wait); None if not, and the words
        recorded before go back to the platform instead. Decided under the version in force, as
        :meth:`revision` is."""
        post = held.record
        change = post.held_change or {}
        loaded = self.policies.get(post.account)
        if loaded is None:
            raise BylineError(Code.UNAVAILABLE, f"{post.account} has no policy in force", retryable=True)
        options = PostOptions.from_json(change.get("options") or {})
        try:
            text = self._check_text(loaded, author=post.author, text=change.get("text"), editors=post.editors,
                                    suggested_by=post.suggested_by, options=options)
        except BylineError:
            return None  # too long for the policy in force, say
        redescribed = _redescribing(change)
        seen = await self._words_seen(options, described={m: d for m, d, _ in redescribed} or None)
        async with self.db.read() as txn:
            if await policy_sql.head_sha256(txn, post.account) != loaded.sha256:
                raise PolicyMoved(post.account)
            pictures = await _pictures(txn, options, redescribed)
        pending = await self._approved_pending(change)
        if change.get("actor") != post.author or (
                pending is None and self._not_at_once(loaded, post, text=text, seen=seen) is not None):
            return None
        # A pending revision's words go out as they were approved and sent (kept with the change; a
        # change kept before it was, under its own disclosure line, naming whoever wrote into it).
        # Only as the words and a line after them, as the log says what went out (``Revision.line``).
        kept_shown = change.get("shown") if pending is not None else None
        shown = disclosed_text(loaded.policy, author=post.author, text=text,
                               editors=post.editors if pending is None else pending.editors,
                               suggested_by=post.suggested_by)
        if isinstance(kept_shown, str) and shown_line(text, kept_shown) is not None:
            shown = kept_shown
        return Revision(record=post, loaded=loaded, lease_until=held.lease_until, text=text, shown=shown,
                        version=post.version + 1, options=options, seen=seen, redescribed=redescribed,
                        pictures=pictures, pending=pending)

    async def _approved_pending(self, change: Mapping[str, Any]) -> PostRecord | None:
        """The pending revision a kept change was released for, while it is on its way (its
        approvals counted as it was released, as a claim's are): sent again as those words,
        which its approvers approved, whatever the policy in force would decide for them anew."""
        named = change.get("revision")
        if not isinstance(named, str):
            return None
        async with self.db.read() as txn:
            pending = await sql.get_post(txn, named)
        if pending is None or pending.state != State.PUBLISHING.value or pending.text != change.get("text"):
            return None
        return pending

    async def pictures_before(self, held: Published) -> tuple[tuple[str | None, str | None], ...] | None:
        """The alt text and focal points the pictures of ``held`` had before the revision kept with
        it, to be sent back with the words recorded before; None when that revision changed none."""
        post = held.record
        if not _redescribing(post.held_change or {}):
            return None
        async with self.db.read() as txn:
            return await _pictures(txn, post.options, (), always=True)

    async def settle_deleted(self, held: Published) -> None:
        """Record the deletion ``held`` was kept for, made on the platform again by the publisher,
        as asked by whoever asked it (recorded once): a deletion cannot be taken back, so it is
        recorded whatever the policy in force says now, naming the policy it is judged by."""
        actor = str((held.record.held_change or {}).get("actor") or held.record.author)
        await self._record_deleted(actor, held.record.id, settled=held)

    async def gateable(self, caller: Caller, post_id: str) -> Published:
        """A published post whose interaction settings (who may reply, who may quote) ``caller``
        may change on its platform, or the error they should see: anyone who may post on the
        account (a writer, the owner), on every tier, since they are settings, not words."""
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.GATE)
        if post.state != State.PUBLISHED.value:
            raise BylineError(Code.INVALID_TRANSITION, f"post {post_id} is {post.state}, not published",
                              state=post.state)
        return Published(record=post, loaded=loaded)

    async def gates_budget(self, gated: Published, *, adding: int) -> None:
        """Refused (429, saying when to try again) when ``adding`` more changes of the post's
        interaction settings would pass its budget, ``CHANGES_PER_HOUR`` in any hour, as its
        ``post.gates_changed`` entries count them: each change is a write to the platform and a
        line on the post's public card. Counted from the log, so a restart forgets nothing.
        Checked again as each is recorded (:meth:`record_gates_changed`), where another
        gateway's changes of the post meanwhile count too."""
        async with self.db.read() as txn:
            await _within_gates_budget(txn, gated.record.id, now=now_micros(self.clock), adding=adding)

    @_under_policy_in_force
    async def record_gates_changed(
        self, caller: Caller, gated: Published, *, collection: str, cid: str | None, settings: dict[str, Any],
        adding: int = 1, intent: str | None = None,
    ) -> None:
        """Record that the platform now holds the record ``collection`` with this CID under the
        published post's key (``cid`` None: it holds none), and what it says (``settings``, as
        ``gateway.audit.gates.gate_settings`` sums it up, for the public pages and webhooks).
        The CID is the PDS's own digest of the record, which anyone can compare with it; the
        record itself stays out of the log (see README, *post.gates_changed*). Refused, recording
        nothing, for a post that is no longer published (deleted meanwhile: its caller takes the
        gate back off), and, 403, for a caller the policy in force no longer lets change it (one
        reloaded since the change was checked: its caller puts the gate back as it was), and, 429,
        for one past the post's budget with ``adding`` changes (this one and those of its batch
        still to record), counted in the transaction that records it: two gateways that each
        let a change in under :meth:`gates_budget` at once cannot both take its last one.
        ``intent``: the change as written down before the PDS was asked, dropped in the same
        transaction (``gateway.services.gate_intents``); refused, 503, where a reconciler has
        taken it meanwhile (the request ran past its lease): the change is being put back; and
        where another change of the gate (another gateway's) is being put back at that moment."""
        post_id = gated.record.id

        async def work(ltx: LogTxn) -> LoadedPolicy:
            current = await self._load(ltx, post_id)
            if current.state != State.PUBLISHED.value:
                raise BylineError(Code.INVALID_TRANSITION, f"post {post_id} is {current.state}, not published",
                                  state=current.state)
            try:
                in_force = await self._authorized(ltx, caller, current, Act.GATE)
            except BylineError as exc:
                if exc.code not in (Code.NOT_FOUND, Code.FORBIDDEN, Code.NO_POLICY):
                    raise
                # The caller made the change, so the post is no secret to them: whether they lost
                # every role or only this one, they hear why it is not kept.
                raise BylineError(
                    Code.FORBIDDEN,
                    f"{caller.user} may no longer change who may reply to or quote {current.remote_id} under "
                    f"the policy of {current.account} in force", action=Act.GATE.value,
                ) from None
            # Published to published: the compare-and-set orders this entry against a deletion
            # recorded at once, so the log never shows settings changed on a post already gone.
            await self._cas(ltx, current, State.PUBLISHED)
            await _within_gates_budget(ltx.txn, post_id, now=ltx.now, adding=adding)
            # Changes of this gate left unlogged before it, which it took over, are dropped: it
            # stands over them; those still on their way put back this one should theirs not be kept.
            unsettled = await intents_sql.settle_logged(ltx.txn, intent) if intent is not None else None
            if unsettled == intents_sql.TAKEN:
                raise BylineError(Code.UNAVAILABLE, f"the change of post {post_id}'s {collection} took longer than "
                                  "Byline holds it open, and is being put back", retryable=True)
            if unsettled == intents_sql.BUSY:
                raise BylineError(Code.UNAVAILABLE, f"another change of post {post_id}'s {collection} is being put "
                                  "back; try again in a moment", xrpc="NotEnoughResources", retryable=True)
            await ltx.append("post.gates_changed", actor=caller.user, account=current.account, post=post_id,
                             data={"gate": collection, "cid": cid, "settings": settings,
                                   "remote_id": current.remote_id,
                                   "state": State.PUBLISHED.value, "policy_sha256": in_force.sha256})
            return in_force

        self.metrics.post_event(await self.appender.submit(work), "post.gates_changed", State.PUBLISHED)

    @_under_policy_in_force
    async def revision(
        self, caller: Caller, post_id: str, *, text: Any, options: PostOptions | None = None,
        redescribed: tuple[tuple[str, str | None, str | None], ...] = (),
        held: Callable[[LoadedPolicy], object] | None = None,
    ) -> Revision | PostView:
        """The author's new words for a published post, if the policy would publish them at once;
        ``redescribed``: new alt text and focal points of its pictures (upload, description, focus),
        which go with the words, judged as they are.

        The new words go through the policy as a new post would, and the edit is made at once
        only if they would go out at once: no block, no hold, no approvals, no cooling-off.
        Anything else would let an edit skip what the policy asks of a post. Given ``held`` (which
        refuses a platform that cannot edit a published post), such words are stored as the
        post's pending revision (:meth:`_pending_revision`), a post of their own that waits for
        exactly what a new post of those words would, and its view is returned; without it they
        are refused (422), as before pending revisions were.

        Decided under the account's version in force, as recorded in the database: the platform
        takes the words before anything is recorded, so a gateway whose files are behind (another
        replica recorded the account turning co-signed) must not decide under the policy it held.
        """
        post = await self._row(post_id)
        loaded = self._authorize(caller, post, Act.VIEW)
        if post.state != State.PUBLISHED.value:
            raise BylineError(Code.INVALID_TRANSITION, f"cannot revise a post that is {post.state}",
                              state=post.state)
        if caller.user != post.author:
            raise BylineError(Code.FORBIDDEN, f"{caller.user} may not edit this post", action="edit")
        await self._still_on_its_platform(post, loaded, what="edit")
        chosen = options or PostOptions.from_json(post.options)
        text = self._check_text(loaded, author=post.author, text=text, editors=post.editors,
                                suggested_by=post.suggested_by, options=chosen)
        policy = loaded.policy
        # The rules read the new alt text as they read the words.
        seen = await self._words_seen(chosen, described={m: d for m, d, _ in redescribed} or None)
        decision = self._as_new(loaded, post, text=text, seen=seen)
        refused = self._not_at_once(loaded, post, text=text, seen=seen, decided=decision)
        async with self.db.read() as txn:
            pending = await sql.open_revision(txn, post.id)
        if refused is not None or pending is not None:
            if held is None or isinstance(decision, Reason) or decision.outcome not in _HOLDABLE:
                raise refused or BylineError(Code.CONFLICT, _PENDING_ELSEWHERE, pending=pending and pending.id)
            held(loaded)
            return await self._pending_revision(caller, post, loaded, text=text, options=chosen, decision=decision,
                                                pending=pending, redescribed=redescribed)
        async with self.db.read() as txn:
            if await policy_sql.head_sha256(txn, post.account) != loaded.sha256:
                raise PolicyMoved(post.account)
            pictures = await _pictures(txn, chosen, redescribed)
        shown = disclosed_text(policy, author=post.author, text=text, editors=post.editors,
                               suggested_by=post.suggested_by)
        return Revision(record=post, loaded=loaded, text=text, shown=shown, version=post.version + 1,
                        options=chosen, seen=seen, redescribed=redescribed, pictures=pictures)

    async def _pending_revision(
        self, caller: Caller, post: PostRecord, loaded: LoadedPolicy, *, text: str, options: PostOptions,
        decision: Decision, pending: PostRecord | None,
        redescribed: tuple[tuple[str, str | None, str | None], ...] = (),
    ) -> PostView:
        """Store new words of a published post that its policy holds as its pending revision: a
        post of their own that names the post it revises, held, scheduled, approved, rejected,
        cancelled or expired as any post is, and, once released, made by editing the published
        post (``PublishedPosts.release``). A post has one pending revision at most: a second edit
        while one waits edits that one, as an edit of a held post does (its approvals start
        again), so approvers never weigh two versions of one post against each other. ``pending``:
        the one it has, as just read (the transaction that stores a new one reads again).
        ``redescribed``: new alt text and focal points of the post's pictures, held with the words
        (``PostOptions.media_attributes``); a second edit keeps those the first gave, save those it
        gives anew, as the pictures stay as they are on Mastodon unless an edit names them."""
        held_media = {} if pending is None else dict(PostOptions.from_json(pending.options).media_attributes or {})
        held_media |= {m: [d, f] for m, d, f in redescribed}
        options = replace(options, media_attributes=held_media or None)
        if pending is not None:
            if pending.state == State.PUBLISHING.value:
                raise BylineError(Code.CONFLICT, _PENDING_SENT, retryable=True, pending=pending.id)
            return await self.edit(caller, pending.id, text=text, options=options)
        work = self._submit_work(
            author=post.author, loaded=loaded, text=text, decision=decision, requested=None, options=options,
            suggested_by=post.suggested_by, adopted_from=None, revises=post,
        )
        stored, _ = await self.appender.submit(work)
        self.metrics.post_event(loaded, "post.submitted", decision.outcome)
        self.wake_publisher()
        return await self.view(caller, stored.id)

    async def revisions_due(self, *, limit: int) -> list[PostRecord]:
        """Pending revisions whose approvals or cooling-off let them out now (oldest due first)."""
        async with self.db.read() as txn:
            return await sql.revisions_due(txn, now=now_micros(self.clock), limit=limit)

    @_under_policy_in_force
    async def approved_revision(self, pending: PostRecord) -> Revision | None:
        """The revision of its published post that ``pending`` (one of :meth:`revisions_due`) lets
        out, with exactly the words its approvers approved (its text with the disclosure line
        they were shown); None while it may not go out yet: its account without a policy in
        force, or its approvals no longer counting for that text (a policy change decides it
        again, held: ``redecide_pending``). Raises :class:`NeverReleased` where its post is no
        longer published."""
        loaded = self.policies.get(pending.account)
        if loaded is None or pending.revises is None:
            return None
        async with self.db.read() as txn:
            if await policy_sql.head_sha256(txn, pending.account) != loaded.sha256:
                raise PolicyMoved(pending.account)
            post = await sql.get_post(txn, pending.revises)
            sends = await outgoing_sha256(txn, pending, loaded.policy)
            approved = await sql.approvers_of(txn, pending.id, pending.version)
        if post is None or post.state != State.PUBLISHED.value or post.remote_id is None:
            raise NeverReleased(f"post {pending.revises} is no longer published: there is nothing to edit",
                                policy_sha256=loaded.sha256)
        if len(counted_for(loaded, pending, approved, sends)) < pending.required:
            return None
        held = PostOptions.from_json(pending.options)
        # Its new alt text and focal points go to the pictures with the words, as a revision made
        # at once gives them: never options of the published post.
        redescribed = tuple((str(m), d, f) for m, (d, f) in (held.media_attributes or {}).items())
        options = replace(held, media_attributes=None)
        async with self.db.read() as txn:
            pictures = await _pictures(txn, options, redescribed)
        shown = disclosed_text(loaded.policy, author=pending.author, text=pending.text, editors=pending.editors,
                               suggested_by=pending.suggested_by)
        return Revision(record=post, loaded=loaded, text=pending.text, shown=shown, version=post.version + 1,
                        options=options, seen=await self._words_seen(held), redescribed=redescribed,
                        pictures=pictures, pending=pending)

    async def fail_revision(self, pending: PostRecord, never: NeverReleased) -> bool:
        """Fail the due pending revision ``pending``, which can never be made (``never``), saying
        why (its ``last_error``, and the system's ``post.failed``, naming the post it revises and
        the policy it was decided under, by which the verifier tells it was so): its author sees
        why, and the publisher stops taking it up. False where it changed meanwhile (edited,
        cancelled, taken by another gateway): nothing is written."""
        why = never.why

        async def work(ltx: LogTxn) -> bool:
            new_state = transition(State(pending.state), Action.FAIL)
            if not await sql.compare_and_set(ltx.txn, pending.id, state=pending.state, version=pending.version,
                                             changes={"state": new_state.value, "last_error": why,
                                                      "updated_at": ltx.now}):
                return False
            await ltx.append("post.failed", actor="system", account=pending.account, post=pending.id,
                             data={"state": new_state.value, "version": pending.version, "error": why,
                                   "revises": pending.revises, "policy_sha256": never.policy_sha256})
            return True

        failed = await self.appender.submit(work)
        loaded = self.policies.get(pending.account)
        if failed and loaded is not None:
            self.metrics.post_event(loaded, "post.failed", State.FAILED)
        return failed

    def _as_new(
        self, loaded: LoadedPolicy, post: PostRecord, *, text: str, seen: tuple[str | None, ...],
        now: datetime | None = None,
    ) -> Decision | Reason:
        """What ``loaded`` decides for ``text`` as new words of ``post`` at ``now`` (the clock's,
        by default), as for a new post of them."""
        policy = loaded.policy
        return decide(policy, author=post.author, text=text, now=now or self.clock.now(), requested=None,
                      suggestion=Role.WRITER not in roles(policy, post.author), seen=seen)

    def _not_at_once(
        self, loaded: LoadedPolicy, post: PostRecord, *, text: str, seen: tuple[str | None, ...],
        decided: Decision | Reason | None = None,
    ) -> BylineError | None:
        """Why ``loaded`` would not publish ``text`` as new words of ``post`` at once (a rule
        blocks or holds it, it needs approvals or waits, its author no longer writes), or None."""
        policy = loaded.policy
        now = self.clock.now()
        # Decided at the moment it is judged by: a decision a moment earlier is due a moment
        # before ``now``, never after it.
        decision = decided if decided is not None else self._as_new(loaded, post, text=text, seen=seen, now=now)
        if isinstance(decision, Reason):
            return rule_blocked(decision)
        if decision.outcome is not Outcome.SCHEDULED or (decision.publish_at or now) > now:
            return BylineError(
                Code.VALIDATION,
                f"the policy of {policy.account} would not publish these words at once "
                f"({'; '.join(r.reason for r in decision.reasons) or policy.tier.value}): "
                "delete the post and post it again",
                reasons=[r.to_json() for r in decision.reasons],
            )
        return None

    async def record_revised(self, caller: Caller, revision: Revision, *, recovered: bool = False) -> PostView:
        """Record a revision made on the platform: the record keeps every version, and the log
        says who revised it, under which policy it was decided, and, when the account's policy
        changed during the platform's call to one that would not have published the new words
        at once, that too (``policy_changed``: the policy then in force, null for none).

        The platform has the new words by now, whatever the policy in force says: the record
        must say what is out there, so the revision is recorded all the same, never refused
        here. It names the policy it was decided under, which the verifier judges it by, as it
        judges every action a gateway decided a moment before a change it had not seen yet.

        Recorded only while ``revision`` still holds the post (:meth:`hold_revision`), which the
        record ends: a hold that ran out and was taken over (the platform took longer than the
        lease) is a conflict, and nothing is recorded here: the publisher that took it settles
        the same revision. ``recovered``: recorded by that settlement, which says so."""
        post_id, text, version, chosen = (
            revision.record.id, revision.text, revision.version, revision.options
        )
        assert revision.lease_until is not None, "a revision is recorded by the change that held the post"

        async def work(ltx: LogTxn) -> str | None:
            current = await self._load(ltx, post_id)
            account = current.account
            changed: dict[str, str | None] = {}
            head = await policy_sql.head_sha256(ltx.txn, account)
            # A pending revision's approvals let it out under the policy that counted them.
            if head != revision.loaded.sha256 and revision.pending is None:
                in_force = self.policies.get(account)
                if in_force is None or in_force.sha256 != head or self._not_at_once(
                    in_force, current, text=text, seen=revision.seen
                ) is not None:
                    changed = {"policy_changed": head}
            kept = chosen.to_json()
            for media_id, description, focus in revision.redescribed:
                if not await media_sql.describe(ltx.txn, media_id, post_id=post_id, description=description,
                                                focus=focus):
                    logger.warning("revised_upload_gone", account=account, post_id=post_id, media_id=media_id)
            pending = None if revision.pending is None else await self._load(ltx, revision.pending.id)
            # Whoever wrote words into its pending revision wrote the post's words from now on: named
            # by its disclosure line (as the words went out), and no approver of its next revision.
            wrote = {} if pending is None else {"editors": json.dumps(list(pending.editors))}
            if not await sql.compare_and_set(
                ltx.txn, post_id, state=State.PUBLISHED.value, version=revision.record.version,
                lease_until=revision.lease_until, changes={
                    "text": text, "version": version, "published_text": revision.shown,
                    "options": json.dumps(kept), "lease_until": None, "held_change": None, "updated_at": ltx.now,
                    **wrote,
                },
            ):
                logger.warning("revision_hold_lost", account=account, post_id=post_id, version=version)
                raise BylineError(
                    Code.CONFLICT, "the platform took longer than the post's hold to take this edit: Byline "
                    "settles it on its own in a moment (recorded, or the words before sent back); reload the post",
                )
            content, media = await stored_content(ltx.txn, kept, salt=current.content_salt,
                                                  scheme=current.content_scheme)
            await sql.insert_version(ltx.txn, post_id=post_id, version=version, text=text,
                                     editor=caller.user, at=ltx.now, options=kept, media=media)
            approved: dict[str, Any] = {}
            if pending is not None:
                await _move_pending(ltx, pending, State.PUBLISHING, Action.APPLY)
                approved["revision"] = pending.id
                approved |= _as_approved(pending, kept, await _redescribed_rows(ltx.txn, kept, ()))
            await ltx.append("post.revised", actor=caller.user, account=account, post=post_id,
                             data={"version": version, "text_hash": ltx.commit_text(text),
                                   "state": State.PUBLISHED.value, "remote_id": current.remote_id,
                                   "content_sha256": content, "policy_sha256": revision.loaded.sha256,
                                   **changed, **approved, **revision.line,
                                   **({"recovered": True} if recovered else {})})
            return changed["policy_changed"] if changed else revision.loaded.sha256

        in_force = await self.appender.submit(work)
        if in_force != revision.loaded.sha256:
            logger.warning("revised_after_policy_change", account=revision.record.account, post_id=post_id,
                           decided_under=revision.loaded.sha256, in_force=in_force)
        self.metrics.post_event(revision.loaded, "post.revised", State.PUBLISHED)
        return await self.view(caller, post_id)

    # -- reading -------------------------------------------------------------------------

    async def view(self, caller: Caller, post_id: str, *, history: bool = True) -> PostView:
        """A post with its decisions and reasons, and with its versions and log events unless
        not ``history`` (what a Mastodon status shows needs neither: half the reading)."""
        async with self.db.read(quick=True) as txn:
            # A post's own rows, by its id: a quick read (on SQLite, on the event loop's thread);
            # what the caller may not see is read and dropped.
            if history:
                post, decisions, versions, entries = await together(
                    txn, sql.get_post(txn, post_id), sql.approvals(txn, post_id), sql.versions(txn, post_id),
                    log_sql.post_entries(txn, post_id),
                )
            else:
                post, decisions = await together(txn, sql.get_post(txn, post_id), sql.approvals(txn, post_id))
                versions = entries = None
            if post is None:
                raise BylineError(Code.NOT_FOUND, f"no post {post_id}")
            # Its last claim is among its entries, where they are read: not read again.
            claims = None if entries is None or not reads_last_claim(post) else {
                post.id: log_sql.last_claim_among(entries)}
            now = await going_out(txn, post, self.policies.get(post.account), claims=claims)
        return self._shown(caller, post, now, decisions=decisions, versions=versions, entries=entries)

    async def reply_parent(self, user: str, account: str, parent_id: str) -> tuple[str | None, str | None] | None:
        """What a reply by ``user`` on ``account`` to Byline's post ``parent_id`` names: the
        parent's platform id once it is out (``reply_to``), or, while it has not gone out yet,
        the post itself (``reply_to_post``: the publisher sends the reply after it). None when
        Byline has no post of that id that ``user`` may see (a platform's own id, perhaps); 404
        when it is another account's, or ended without going out (cancelled, failed, deleted):
        a reply there could never go out where its writer meant it to."""
        try:
            post = await self.view(Caller(user=user), parent_id, history=False)
        except DatabaseUnavailable:
            # Not known now is no "not Byline's": the reply would name Byline's id to the platform.
            raise
        except BylineError:
            return None
        if post.account == account:
            state = State(post.state)
            if state is State.PUBLISHED and post.remote_id:
                return str(post.remote_id), None
            if state in REPLY_AWAITED:
                return None, post.id
        raise BylineError(Code.NOT_FOUND, REPLY_NOT_FOUND, verbatim=True)

    def _shown(self, caller: Caller, post: PostRecord, now: GoingOut, *, decisions: list[Row],
               versions: list[Row] | None = None, entries: list[Row] | None = None) -> PostView:
        """``post``'s view for ``caller``, who must be allowed to see it (or 403/404); ``now``:
        what it goes out with (:func:`going_out`)."""
        auditing = caller.user in self.auditors and caller.account is None
        loaded = self.policies.get(post.account)  # the one in force throughout: nothing here awaits
        if loaded is None and caller.user == post.author:
            # Without a policy in force, the post's author still sees what they wrote.
            check_account_binding(caller, post.account)
        elif not auditing:
            authorize(loaded, caller, post, Act.VIEW)
        return post_view(post, versions, decisions, entries, now)

    async def views(self, rows: Sequence[PostRecord]) -> list[PostView]:
        """The views of posts read already (a list's, a page of them), each as it goes out now
        under its account's policy (:func:`going_out`): for a caller who may see them all."""
        async with self.db.read() as txn:
            return await self._views_of(txn, rows)

    async def _views_of(self, txn: Txn, rows: Sequence[PostRecord]) -> list[PostView]:
        """:meth:`views` in ``txn``: the approvals of the held posts among ``rows``, and the last
        claims of those sent before that are not out (what they send again may be what that
        claim sent), each read in one query for them all, not one a post."""
        held: dict[str, int] = {r.id: r.version for r in rows if r.state == State.HELD.value}
        approved = await sql.approvers_of_posts(txn, held)
        claims = await log_sql.last_claims(txn, [r.id for r in rows if r.state not in _OUT and reads_last_claim(r)])
        return [
            post_view(r, None, None, None,
                      await going_out(txn, r, self.policies.get(r.account), approved=approved.get(r.id, {}),
                                      claims=claims))
            for r in rows
        ]

    async def pending_revisions(
        self, caller: Caller, posts: Sequence[PostView | PostRecord],
    ) -> dict[str, PostView]:
        """The pending revision of each published post among ``posts`` that ``caller`` may see,
        by the id of the post it revises: read in one query for them all (a page of statuses),
        not one a post. Shown to the people of the account beside the words the platform shows,
        as the answer to the edit names it; never to anyone the revision's own post hides from."""
        published = [p.id for p in posts if p.state == State.PUBLISHED.value]
        if not published:
            return {}
        async with self.db.read() as txn:
            seen = [r for r in await sql.open_revisions(txn, published) if self._may_view(caller, r)]
            views = await self._views_of(txn, seen) if seen else []
        return {v.revises: v for v in views if v.revises is not None}

    def _may_view(self, caller: Caller, post: PostRecord) -> bool:
        try:
            self._authorize(caller, post, Act.VIEW)
        except BylineError:
            return False
        return True

    async def list(
        self, caller: Caller, *, account: str | None, state: str | None, limit: int = 50,
        before: str | None = None,
    ) -> list[PostView]:
        """Posts the caller may see, newest first."""
        if state is not None and state not in State.__members__.values():
            raise BylineError(
                Code.VALIDATION, f"unknown state {state!r}", allowed=[s.value for s in State]
            )
        visible = visible_accounts(self.policies, caller)
        if account is not None:
            check_account_binding(caller, account)
            self.policy(account)  # 404 for an account with no policy
            if account not in visible:
                raise BylineError(Code.FORBIDDEN, f"{caller.user} has no role on {account}")
            accounts = [account]
        else:
            accounts = list(visible)
        async with self.db.read() as txn:
            rows = await sql.list_posts(txn, accounts=accounts, state=state, limit=limit, before=before)
            return await self._views_of(txn, rows)


async def _decide(
    ltx: LogTxn, *, post_id: str, version: int, approver: str, decision: str, reason: str | None, sends: str,
    speaks_as: str,
) -> None:
    """Record ``approver``'s decision on this version of a post, given for the text that goes out
    now (``sends``, its hash) on the platform account the policy in force speaks as
    (``speaks_as``: ``authorization.given_as``), or refuse it (409) where they decided on it
    already. An approval they gave for other words (the disclosure line changed while the post
    was held, and the reload's work, which asks for its approvals again, passed it by: a
    replica's reload racing the approval), or for another account, counts for none, so it does
    not stand in the way: it is replaced by this decision, which their entry records as any
    other. Else the post could wait for ever on an approver who may not approve what they are shown."""
    if await sql.insert_decision(ltx.txn, post_id=post_id, version=version, approver=approver, decision=decision,
                                 reason=reason, at=ltx.now, text_sha256=sends, speaks_as=speaks_as):
        return
    if not await sql.replace_approval_of_other_words(ltx.txn, post_id=post_id, version=version, approver=approver,
                                                     decision=decision, reason=reason, at=ltx.now,
                                                     text_sha256=sends, speaks_as=speaks_as):
        raise BylineError(Code.ALREADY_DECIDED, f"{approver} already decided on this version")


_HOLDABLE: Final = frozenset({Outcome.HELD, Outcome.SCHEDULED})
"""What a published post's new words may be decided as to wait as its pending revision: held
for approvals or a rule's second look, or scheduled after a cooling-off; never a suggestion (its
author no longer writes for the account)."""
_PENDING_ELSEWHERE: Final = ("an edit of this post is waiting for its approvals or its time: change that pending "
                              "edit, or cancel it, instead")
_PENDING_SENT: Final = "the pending edit of this post is being made on its platform just now: reload it in a moment"


async def _move_pending(ltx: LogTxn, pending: PostRecord, state: State, action: Action, **changes: Any) -> None:
    """Move a pending revision, found in ``state`` at its version, on by ``action`` in the
    transaction of the entry of its published post that says so (``post.revising``,
    ``post.revised``, ``post.revision_failed``, each naming it): a 409 if it changed meanwhile."""
    new_state = transition(State(pending.state), action)
    if pending.state != state.value or not await sql.compare_and_set(
        ltx.txn, pending.id, state=state.value, version=pending.version,
        changes={"state": new_state.value, "updated_at": ltx.now, **changes},
    ):
        raise BylineError(Code.CONFLICT, "the pending edit changed meanwhile; reload it and try again")


async def _cancel_pending(ltx: LogTxn, post_id: str) -> int:
    """Cancel the pending revision of a post being deleted: there is nothing left to edit. 1 if
    there was one waiting (held or scheduled), else 0; one on its way holds the post, which no
    deletion is recorded past."""
    pending = await sql.open_revision(ltx.txn, post_id)
    if pending is None or pending.state not in (State.HELD.value, State.SCHEDULED.value):
        return 0
    new_state = transition(State(pending.state), Action.CANCEL)
    if not await sql.compare_and_set(ltx.txn, pending.id, state=pending.state, version=pending.version,
                                     changes={"state": new_state.value, "expires_at": None, "updated_at": ltx.now}):
        raise BylineError(Code.CONFLICT, "the post changed meanwhile; reload it and try again")
    await ltx.append("post.cancelled", actor="system", account=pending.account, post=pending.id,
                     data={"state": new_state.value, "version": pending.version, "revises": post_id})
    return 1


async def _check_revisable(txn: Txn, post_id: str) -> None:
    """Refuse a pending revision of ``post_id`` unless the post is published and has none yet,
    read in the transaction that stores (or retries) it: one deleted meanwhile would be edited
    once approved, and a second pending revision would have approvers weigh two versions of it.
    Every work runs in a batch that holds the log's state locked (one batch at a time, on every
    gateway sharing the database), so no other gateway's revision slips in between."""
    post = await sql.get_post(txn, post_id)
    if post is None or post.state != State.PUBLISHED.value:
        raise BylineError(Code.INVALID_TRANSITION, f"post {post_id} is no longer published",
                          state=None if post is None else post.state)
    if await sql.open_revision(txn, post_id) is not None:
        raise BylineError(Code.CONFLICT, _PENDING_ELSEWHERE)


def rule_blocked(reason: Reason) -> BylineError:
    """The 422 for words a rule blocks, naming the rule and its reason for the person."""
    return BylineError(Code.RULE_BLOCKED, f"blocked by rule {reason.rule}: {reason.reason}",
                       rule=reason.rule, reason=reason.reason)


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionView:
    """One version of a post: its text, who wrote it when, and what it carried besides its words."""

    version: int
    text: str
    editor: UserName
    at: Micros
    options: Mapping[str, Any] | None = None
    """Its options (as ``PostRecord.options``); None for a version recorded before they were kept
    beside it (:func:`options_by_version` reads those from the log)."""
    media: tuple[Mapping[str, Any], ...] | None = None
    """Its uploads as they were, {"id", "description"} each, in order; None for a version
    recorded before they were kept."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionView:
    """One approval or rejection, of the version it names; ``current`` when that is the post's."""

    approver: UserName
    decision: str
    reason: str | None
    version: int
    at: Micros
    current: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class EventView:
    """One log entry about a post."""

    index: LogIndex
    type: str
    actor: str
    ts: str
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class PostView:
    """A post as the people who may see it see it: its record, the text as it goes out (with
    its disclosure) and the approvals it still needs; and, when read one at a time, its
    versions, decisions and log events. Each surface renders it in its own shape."""

    id: PostId
    account: AccountName
    author: UserName
    editors: tuple[UserName, ...]
    state: str
    text: str
    display_text: str
    version: int
    options: Mapping[str, Any]
    publish_at: Micros | None
    expires_at: Micros | None
    reasons: tuple[Mapping[str, Any], ...]
    approvers: tuple[UserName, ...]
    approvals_required: int
    approvals_needed: int
    approved_by: tuple[UserName, ...]
    """Who approved the text that goes out of a held post's version, and counts (see :func:`going_out`)."""
    remote_id: str | None
    remote_url: str | None
    suggested_by: UserName | None
    adopted_from: PostId | None
    adopted_into: PostId | None
    attempts: int
    last_error: str | None
    created_at: Micros
    updated_at: Micros
    versions: tuple[VersionView, ...] | None = None
    approvals: tuple[DecisionView, ...] | None = None
    events: tuple[EventView, ...] | None = None
    requested_at: Micros | None = None
    """The time the writer asked for, if any: a post released later never goes out before it."""
    sent_text: str | None = None
    """What an earlier send of a post not out went out with, where that is not ``display_text``
    (edited since it was sent, and the platform's answer then lost or a failure): its approvers
    approve ``display_text``, and are told what may be on the platform already."""
    revises: PostId | None = None
    """The published post this one is a pending revision of (``PostRecord.revises``), if any."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GoingOut:
    """What a post goes out with if it goes out now, read once for every surface that shows it
    (the native API, Mastodon's entities, the approvers' cards): its text (what its platform
    shows, once out), and who approved that very text of a held post's current version and
    counts (``authorization.counted_for``)."""

    text: str
    approved_by: tuple[UserName, ...] = ()


_OUT: Final = frozenset({State.PUBLISHED.value, State.DELETED.value})
"""The states of a post its platform showed: its text is what went out, not what would now."""


async def going_out(
    txn: Txn, post: PostRecord, loaded: LoadedPolicy | None, *, approved: Approved | None = None,
    claims: Claims | None = None,
) -> GoingOut:
    """What ``post`` goes out with now under ``loaded`` (:class:`GoingOut`). A post sent before
    and edited since goes out with its new words (``outgoing.sends``), not the words sent:
    approvers are shown what they approve. Approvals are read for a held post alone (no other
    shows them), unless given (``approved``: read for a page of posts at once, see
    :meth:`PostService.views`); with no policy in force, every approval of its version is taken
    as it stands. ``claims``: last claims read already (``outgoing.as_last_sent``)."""
    if post.state in _OUT and post.published_text is not None:
        text = post.published_text  # empty words sent (a picture alone) are what the platform shows
    elif loaded is None:
        text = post.published_text if post.published_text is not None else post.text
    else:
        text = await outgoing_text(txn, post, loaded.policy, claims=claims)
    if post.state != State.HELD.value:
        return GoingOut(text=text)
    if approved is None:
        approved = await sql.approvers_of(txn, post.id, post.version)
    names = list(approved) if loaded is None else counted_for(loaded, post, approved, text_sha256(text))
    return GoingOut(text=text, approved_by=tuple(UserName(a) for a in names))


def post_view(
    post: PostRecord,
    versions: list[Row] | None,
    decisions: list[Row] | None,
    entries: list[Row] | None,
    now: GoingOut,
) -> PostView:
    """A post's view from its record, and its versions, decisions and log entries when read;
    ``now``, what it goes out with (:func:`going_out`)."""
    version = post.version
    sent = post.published_text if post.state not in _OUT and post.published_text != now.text else None
    events = None
    if entries is not None:
        events = []
        # A rejection's or dismissal's reason is kept with the decision, not in the public log:
        # its people read it beside the entry, as the entry once carried it.
        said = {(d["approver"], int(d["version"]), d["decision"]): d["reason"] for d in decisions or ()}
        for e in entries:
            body = json.loads(bytes(e["entry"]))
            data = body["data"]
            decision = _REASONED.get(body["type"])
            if decision is not None and "reason_sha256" in data:
                version_of = data.get("version", post.version)
                data = {**data, "reason": said.get((body["actor"], int(version_of), decision))}
            events.append(EventView(index=LogIndex(int(e["idx"])), type=body["type"], actor=body["actor"],
                                    ts=body["ts"], data=data))
    return PostView(
        id=post.id, account=post.account, author=post.author, editors=post.editors, state=post.state,
        text=post.text, display_text=now.text, sent_text=sent, version=version, options=post.options,
        publish_at=post.publish_at, expires_at=post.expires_at, reasons=post.reasons,
        approvers=post.approvers, approvals_required=post.required, approved_by=now.approved_by,
        approvals_needed=max(0, post.required - len(now.approved_by)) if post.state == State.HELD.value else 0,
        remote_id=post.remote_id, remote_url=post.remote_url, suggested_by=post.suggested_by,
        adopted_from=post.adopted_from, adopted_into=post.adopted_into, attempts=post.attempts,
        last_error=post.last_error, created_at=post.created_at, updated_at=post.updated_at,
        requested_at=post.requested_at, revises=post.revises,
        versions=None if versions is None else tuple(
            VersionView(version=int(v["version"]), text=v["text"], editor=UserName(v["editor"]),
                        at=Micros(int(v["created_at"])),
                        options=None if v["options"] is None else json.loads(v["options"]),
                        media=None if v["media"] is None else tuple(json.loads(v["media"])))
            for v in versions
        ),
        approvals=None if decisions is None else tuple(
            DecisionView(approver=UserName(d["approver"]), decision=d["decision"], reason=d["reason"],
                         version=int(d["version"]), at=Micros(int(d["created_at"])),
                         current=int(d["version"]) == version)
            for d in decisions if d["decision"] in _APPROVALS
        ),
        events=None if events is None else tuple(events),
    )


_REASONED: Final = {"post.rejected": "reject", "post.dismissed": "dismiss"}
"""The entries whose reason is kept with the post's decisions, and the decision it is kept as."""
_APPROVALS: Final = frozenset({"approve", "reject"})
"""The decisions a post's approvals list: a dismissal's row only keeps its reason."""

_VERSIONED: Final = frozenset({"post.submitted", "post.edited", "post.revised", "post.redecided"})
"""Log events that make a version of a post."""


def options_by_version(post: PostView) -> dict[int, Mapping[str, Any]]:
    """The options each version of ``post`` had (read with its history, see
    :meth:`PostService.view`): kept beside the version, or, for a version recorded before they
    were, as the log's entries of the time carried them (an edit that changed none kept the
    ones before); the current version's are the post's own."""
    logged: dict[int, Mapping[str, Any]] = {}
    if any(v.options is None for v in post.versions or ()):
        current: Mapping[str, Any] = {}
        for event in post.events or ():
            if event.type not in _VERSIONED:
                continue
            options = event.data.get("options")
            if isinstance(options, Mapping):
                current = options
            version = event.data.get("version")
            if isinstance(version, int):
                logged[version] = current
    found: dict[int, Mapping[str, Any]] = {}
    before: Mapping[str, Any] = {}
    for v in post.versions or ():
        before = found[v.version] = v.options if v.options is not None else logged.get(v.version, before)
    if post.versions:
        found[post.version] = post.options
    return found


async def redecide_pending(
    ltx: LogTxn, *, account: str, loaded: LoadedPolicy | None, before: frozenset[str] | None,
    moved_account: bool = False,
) -> list[tuple[str, State]]:
    """Decide an account's pending posts again after its policy changed or went away, in the
    transaction that records the change: return the posts that moved (their id and new state).

    A post whose author lost the role they wrote it in is held for the approvers of the new
    policy (or its owner, where it names none); a post left without any policy stops where it
    is, held, until one is in force again, and is then held for a decision under it; a post
    scheduled without approvals on an account that now asks for them, or released by approvals
    that no longer count under it (an approver taken off, on any tier), is held for them. Nothing
    is cancelled: a person who still has a role decides. Each held post gets a new version with
    the same words, so approvals given before the change no longer count.

    A held post whose deadline has passed (the publisher's sweep not yet run) is not held
    anew: that would give an expired hold a new deadline, or none at all. It expires here, as
    the sweep would have (:func:`expire_hold`), and its state is ``expired``.

    ``moved_account``: the change points the account at another platform account (its
    summary's ``speaks_as``): a post on its way out on approvals or in a cooling-off, and a held
    one with approvals, was approved for the other, and is held anew (``redecision_cause``).
    """
    moved: list[tuple[str, State]] = []
    ended: set[str] = set()
    cosigned = loaded is not None and loaded.policy.tier is Tier.COSIGNED
    for post in await sql.pending_posts(ltx.txn, account):
        if post.id in ended:
            continue  # cancelled above with the hold it replies to: the row read is no more
        # Released by approvals (on a co-signed account, or held by a rule on another): they are
        # counted again under the new policy, where someone who released it may be gone; and
        # they, or a held post's, count only for the text it goes out with under it.
        released = post.state == State.SCHEDULED.value and (cosigned or post.required > 0)
        approved, sends = (await _approvals_and_text(ltx, post, loaded)
                           if loaded is not None and (released or post.state == State.HELD.value) else (None, None))
        cause = redecision_cause(loaded, post, before, approved, sends=sends, moved_account=moved_account)
        if cause is None:
            continue
        if hold_expired(post, now=ltx.now):
            replies = await _expire(ltx, post)
            moved.append((post.id, State.EXPIRED))
            moved.extend((reply, State.CANCELLED) for reply in replies)
            ended.update(replies)
        else:
            moved.append((post.id, await redecide(ltx, post, loaded=loaded, cause=cause)))
    return moved


async def _approvals_and_text(
    ltx: LogTxn, post: PostRecord, loaded: LoadedPolicy
) -> tuple[dict[str, sql.Given], str | None]:
    """Who approved ``post``'s current version, with what each approved it for, and the hash of the
    text it goes out with under ``loaded`` (None where no one approved it: nothing to compare)."""
    approved = await sql.approvers_of(ltx.txn, post.id, post.version)
    return approved, (await outgoing_sha256(ltx.txn, post, loaded.policy) if approved else None)


async def expire_hold(ltx: LogTxn, post: PostRecord) -> int:
    """Expire the held ``post``, whose deadline has passed, and cancel the replies waiting for
    it; how many replies. Raises a conflict where it changed since it was read."""
    return len(await _expire(ltx, post))


async def _expire(ltx: LogTxn, post: PostRecord) -> list[str]:
    """:func:`expire_hold`, saying which replies it cancelled."""
    new_state = transition(State(post.state), Action.EXPIRE)
    if not await sql.compare_and_set(
        ltx.txn, post.id, state=post.state, version=post.version,
        changes={"state": new_state.value, "updated_at": ltx.now},
    ):
        raise BylineError(Code.CONFLICT, "changed meanwhile")
    await ltx.append("post.expired", actor="system", account=post.account, post=post.id,
                     data={"state": new_state.value, "version": post.version})
    return await _cancel_replies(ltx, post, new_state)


async def redecide(
    ltx: LogTxn, post: PostRecord, *, loaded: LoadedPolicy | None, cause: dict[str, str]
) -> State:
    """Decide one post again for ``cause`` (see :func:`redecide_pending`); its new state."""
    account = post.account
    state = State(post.state)
    new_state = transition(state, Action.REDECIDE)
    reasons = [r for r in list(post.reasons) if r.get("rule") != "policy_removed"]
    reasons = [*reasons, cause] if cause not in reasons else reasons
    version = post.version
    changes: dict[str, Any] = {"state": new_state.value, "reasons": json.dumps(reasons),
                               "updated_at": ltx.now}
    if state is State.PUBLISHING:  # a recovered claim held, not sent: its lease ends here
        changes["lease_until"] = None
    data: dict[str, Any] = {"cause": cause["rule"], "state": new_state.value, "reasons": reasons}
    if loaded is None:
        changes.update(publish_at=None, expires_at=None)
    elif new_state is State.HELD:
        gate = gate_for(loaded.policy, post.author)
        version += 1
        changes.update(
            version=version, approvers=json.dumps(list(gate.approvers)), required=gate.required,
            publish_at=None, expires_at=ltx.now + duration_micros(gate.expire_after),
        )
        data.update(approvers=list(gate.approvers), required=gate.required)
        last = await sql.versions(ltx.txn, post.id)
        _, media = await stored_content(ltx.txn, post.options, salt=post.content_salt, scheme=post.content_scheme)
        await sql.insert_version(ltx.txn, post_id=post.id, version=version, text=post.text,
                                 editor=last[-1]["editor"] if last else post.author, at=ltx.now,
                                 options=post.options, media=media)
    if not await sql.compare_and_set(
        ltx.txn, post.id, state=post.state, version=post.version, changes=changes
    ):
        raise BylineError(Code.CONFLICT, "a post changed while its policy was being applied")
    data.update(version=version, policy_sha256=loaded.sha256 if loaded else None,
                expires_at=iso(changes.get("expires_at", post.expires_at)))
    await ltx.append("post.redecided", actor="policy-file", account=account, post=post.id, data=data)
    return new_state


ENDS_A_THREAD: Final = frozenset(
    {State.CANCELLED, State.REJECTED, State.EXPIRED, State.DISMISSED, State.DELETED}
)
"""The ends of a post after which the replies waiting for it to go out never can: it will not
go out (or is gone from its platform), and a reply does not go out without it."""
_WAITING: Final = (State.HELD.value, State.SCHEDULED.value, State.SUGGESTED.value, State.FAILED.value)


async def _waiting_on(
    ltx: LogTxn, *, account: str, post_id: str, states: Sequence[str], key: str = "reply_to_post",
) -> list[PostRecord]:
    """The posts of ``account`` in ``states`` that reply to ``post_id`` (or to a suggestion
    adopted into it) as a post not yet out, and have never been sent: they wait for it
    (``PostOptions.reply_to_post``; a reply once claimed has its parent's platform id in
    ``reply_to``, and waits for nothing). With ``key="quote_of_post"``, those that quote it
    (``PostOptions.quote_of_post``), never claimed: a quote once sent waits for nothing."""
    named = [post_id, *await sql.adopted_into(ltx.txn, account=account, post_id=post_id)]
    return [
        post for post in await sql.replies_in(ltx.txn, account=account, remote_ids=named, key=key, states=states)
        if (post.first_attempt_at is None if key == "quote_of_post" else not post.options.get("reply_to"))
    ]


async def cancel_waiting_replies(ltx: LogTxn, parent: PostRecord, ended: State) -> int:
    """Cancel the replies and quotes waiting for ``parent``, which has just ended as ``ended``
    (one of :data:`ENDS_A_THREAD`), in the transaction that ends it, and those waiting for
    them; how many.

    Held, scheduled, suggested, or failed because their parent had: none of them can go out
    now, and each would otherwise wait for a decision (an approver asked to approve a reply to
    nothing, or a quote of words that will never be out) or its time, and fail only then.
    Cancelled, not failed: a failed post may be retried, and a held one retried would skip its
    hold. The log's ``post.cancelled`` is the system's, naming the post it waited for
    (``reply_to_post`` or ``quote_of_post``, as the post names it) and saying why; the verifier
    checks that post ended, and its author is told (``gateway.services.notify``)."""
    return len(await _cancel_replies(ltx, parent, ended))


_WAITS_AS: Final = (("reply_to_post", "replies to", "this reply"), ("quote_of_post", "quotes", "this quote"))
"""How a post waits for one not yet out (its options' key), said of it: replies to it, or quotes it."""


async def _cancel_replies(ltx: LogTxn, parent: PostRecord, ended: State) -> list[str]:
    """:func:`cancel_waiting_replies`, saying which replies and quotes it cancelled."""
    if ended not in ENDS_A_THREAD:
        return []
    cancelled: list[str] = []
    ends = [(parent.id, ended)]
    while ends:
        post_id, how = ends.pop()
        for key, does, this in _WAITS_AS:
            for waiting in await _waiting_on(ltx, account=parent.account, post_id=post_id, states=_WAITING,
                                             key=key):
                reason = f"the post it {does}, {post_id}, was {how.value}: {this} does not go out without it"
                new_state = transition(State(waiting.state), Action.CANCEL)
                if not await sql.compare_and_set(
                    ltx.txn, waiting.id, state=waiting.state, version=waiting.version, changes={
                        "state": new_state.value, "last_error": reason, "expires_at": None, "updated_at": ltx.now,
                    },
                ):
                    continue  # changed meanwhile (another replica): the publisher fails it if it comes due
                await ltx.append("post.cancelled", actor="system", account=waiting.account, post=waiting.id,
                                 data={"state": new_state.value, "version": waiting.version,
                                       key: waiting.options.get(key), "reason": reason})
                cancelled.append(waiting.id)
                ends.append((waiting.id, new_state))
    return cancelled


async def retry_waiting_replies(ltx: LogTxn, parent: PostRecord, *, loaded: LoadedPolicy) -> list[State]:
    """Retry, with ``parent`` (retried in this transaction), the replies that failed because it
    had, and the replies that failed because those had; where each is left.

    A reply that fails where it waits, never sent (it has no ``reply_to``), failed for its
    parent alone (``gateway.services.publisher``): put back, it waits for the parent as it did
    before, and goes out after it, or fails again if the parent does. Each is retried as its
    author's retry would: held again, in this transaction, where the policy in force asks for
    approvals it has not had (:func:`retry_cause`), so nothing goes out without them. The log's
    ``post.retried`` is the system's, naming the parent; the verifier checks that the reply
    failed for it and that it is on its way out again."""
    retried: list[State] = []
    parents = [parent.id]
    while parents:
        post_id = parents.pop()
        for reply in await _waiting_on(ltx, account=parent.account, post_id=post_id, states=(State.FAILED.value,)):
            new_state = transition(State(reply.state), Action.RETRY)
            if not await sql.compare_and_set(ltx.txn, reply.id, state=reply.state, version=reply.version, changes={
                "state": new_state.value, "publish_at": ltx.now, "attempts": 0, "last_error": None,
                "updated_at": ltx.now,
            }):
                continue  # changed meanwhile: its author retries or cancels it
            await ltx.append("post.retried", actor="system", account=reply.account, post=reply.id,
                             data={"state": new_state.value, "reply_to_post": reply.options.get("reply_to_post"),
                                   "policy_sha256": loaded.sha256})
            reply = replace(reply, state=new_state.value, publish_at=Micros(ltx.now), attempts=0, last_error=None)
            approved, sends = await _approvals_and_text(ltx, reply, loaded)
            cause = retry_cause(loaded, reply, approved, sends=sends)
            if cause is not None:
                new_state = await redecide(ltx, reply, loaded=loaded, cause=cause)
            retried.append(new_state)
            parents.append(reply.id)
    return retried
