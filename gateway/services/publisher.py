"""The scheduler and publisher: due posts go out once, through restarts and crashes.

A due post is *claimed* (``scheduled`` → ``publishing``, with a lease and its idempotency key,
and a log entry) before any request leaves. If the gateway dies mid-publish, the lease runs
out and the post is claimed again on the recovery path: the adapter first looks on the
platform for the post made with that key, and only publishes when it is not there. The same
key goes with every attempt, and with a later version that sends the same words and content
(``claim_key``); a later version whose own words and content are those sent, where only the
policy's disclosure line around them changed, sends again what was sent, with its key. So a
platform that honours the key cannot make a second copy. A post
the policy in force would not let out (it changed while the post lay claimed: more approvals
asked, an approver gone, its author no longer writing) is claimed again only to be looked for
(``looks_only`` in its entry): found, it is recorded published (``found``), as it cannot be
taken back; not found, it is held for a decision under that policy, never sent.

A reply written before its parent went out (``PostOptions.reply_to_post``) is claimed only once
the parent is out, and goes out as a reply to the parent's platform id: until then it waits,
scheduled, looking again when the parent may be out; if the parent ends without going out, the
reply fails, saying why, rather than go out on its own. Only such replies read their parent:
other posts are claimed as before. (A parent that ends for good cancels its waiting replies in
the transaction that ends it, and one retried retries those that failed for it:
``posts.cancel_waiting_replies`` and ``posts.retry_waiting_replies``; what is left here is a
reply whose parent failed, or one written as its parent ended.)

Each tick also sets off the settling of published posts' changes (an edit, a deletion) whose
gateway stopped between the platform's answer and their record: their hold ran out, as a
claim's lease does, with the change kept beside it (``gateway.services.published``). The
settling runs beside the claims, one round at a time, so a platform slow to answer a settlement
never holds up a post due.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from adapters.base import Adapter, AdapterError, MediaItem, OutboundPost, PublishResult
from gateway.audit.appender import Appender, LogTxn, post_chain
from gateway.audit.gates import sent_gates
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import Action, State, transition
from gateway.metrics import NOT_SCRAPED, Metrics
from gateway.policy.engine import Role, roles
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.policy.models import Tier
from gateway.services.announcements import is_announcement, record_url
from gateway.services.authorization import (
    AUTHOR_LOST_ROLE,
    POLICY_CHANGED,
    account_cause,
    decided_again,
    disclosure_cause,
    hold_expired,
    needs_approvals,
    recovery_cause,
)
from gateway.services.content import content_sha256, sends_focus, stored_content_sha256
from gateway.services.identities import AccountHeld
from gateway.services.outgoing import idempotency_key, sends, text_sha256
from gateway.services.platforms import Platforms, checks_scopes, credential_being_written
from gateway.services.posts import ADOPTIONS_FOLLOWED, expire_hold, redecide, unchanged_between
from gateway.storage import media as media_sql
from gateway.storage import policies as policy_sql
from gateway.storage import posts as sql
from gateway.storage.db import Database, DatabaseUnavailable, Txn, unavailable
from gateway.tasks import cancel_task, run_every
from gateway.types import from_micros, iso

logger = structlog.get_logger("byline.publisher")

_SECOND = 1_000_000
_CLAIM_PAGE = 256
"""Due posts claimed together: one query picks them (and locks them, on PostgreSQL), one
transaction claims them, and their entries go into one of the appender's batches."""
_IN_FLIGHT = 2048
"""Claimed posts not yet settled, at most: all the publisher holds in memory; the rest of the
due posts wait in the database, read a page at a time."""
_PER_ACCOUNT = 32
"""Claimed posts of one account not yet settled, at most: they go out one at a time, and the
lease of each runs while it waits its turn."""
_PUBLISHED_GROUP = 512
"""Posts recorded published by one work, at most."""
_PARENT_WAIT = _SECOND
"""How long after its parent's time (or now, while the parent is being sent) a reply due
before its parent looks again: a publish takes a moment, and the reply goes out after it."""
_UNDECIDED_WAIT = 60 * _SECOND
"""How long a reply due before its parent looks again while the parent waits for a decision
(held, or a suggestion): it has no time to wait for, and a look is one read of one row."""
_AWAITING_MOST = 10_000
"""Replies remembered here as waiting for a parent, at most (see ``Publisher._awaiting``)."""


_NOT_YET = "-"
"""No reload set off for an account yet (no hash is this)."""


def claim_key(row: sql.PostRecord, *, text: str, content: str | None, recovering: bool) -> str:
    """The idempotency key a claim of ``row`` sends ``text`` and ``content`` with: the key of
    what is sent, not of the row's version.

    A recovered claim is the claim before it taken up again: its key. A claim that sends the
    same words and content as the claim that chose the row's key sends that key again: a post
    held after its recovery looked for it and missed it (the platform's lookup lagging behind
    what it took), approved again as a new version, or a post retried after a failure whose
    outcome was open. A platform that took the first send then gives that post back (Mastodon's
    ``Idempotency-Key``, the sandbox; an adapter keeping attempts by key looks first) rather
    than make a second copy. Other words or content (an edit) are another post to the platform,
    and take the version's key, new with the version: a platform must not give back the old
    words as if they were the new. (A post whose own words and content are still those the
    claim before it sent, where only the policy's disclosure line around them changed since, is
    the same post: it sends the words that claim sent, with their key, as a recovered claim
    does: ``recovering``; see ``_Claims.add``.)"""
    if row.idempotency_key is not None and (
        recovering or (row.published_text == text and row.sent_content == (content or ""))
    ):
        return row.idempotency_key
    return idempotency_key(row.id, row.version)


def public_failure(error: AdapterError) -> str:
    """What the public log says of an attempt that failed: the kind of failure, in Byline's
    words, and the platform's status. Not the platform's answer, nor a message built on it: a
    platform may quote the post back (what it replies to, a word it refused), and a post that
    never goes out keeps its words from the public. The post's people read the whole of it as
    the post's last error, and the webhooks and emails about it carry that."""
    if error.auth_failed:
        what = "the platform refused the account's credential"
    elif error.status == 429:
        what = "the platform asked to slow down"
    elif error.status is not None and (error.status >= 500 or error.status == 408):
        what = "the platform failed"
    elif error.status is not None:
        what = "the platform refused the post"
    elif error.retryable:
        what = "the platform could not be reached, or Byline could not send it yet"
    else:
        what = "Byline could not send it"
    return f"{what} (HTTP {error.status})" if error.status is not None else what


def backoff_seconds(attempt: int) -> float:
    """How long to wait before attempt ``attempt + 1``: 5 s doubling, at most an hour."""
    return float(min(5 * 2 ** max(attempt - 1, 0), 3600))


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A post this publisher now owns until its lease runs out."""

    post_id: str
    account: str
    version: int
    text: str
    options: dict[str, Any]
    key: str
    attempt: int
    recovering: bool
    first_attempt_at: int
    announcement: bool = False
    """The policy file's announcement of a change of voice (see ``gateway.services.announcements``)."""
    content: str | None = None
    """What it carries besides its words, as the claim records it (``gateway.services.content``):
    what is sent must be that."""
    content_salt: str | None = None
    """The salt its content is hashed with (the post's, kept in the database only)."""
    content_scheme: int | None = None
    """How its content is hashed (the post's, ``PostRecord.content_scheme``)."""
    claimed: float = field(default_factory=time.perf_counter)
    """When it was claimed (``time.perf_counter``), for the publish latency metric."""
    looks_only: dict[str, str] | None = None
    """A recovered claim the policy in force would not let go out (``recovery_cause``): it is
    looked for on the platform and recorded published if it is there (it cannot be taken back),
    else held for this cause; never sent."""


@dataclass(slots=True)
class _Published:
    """Posts the platform took, recorded published together by one work: a group fills until
    its work starts to run (or it is full), and the posts taken meanwhile wait in the next.
    One work for many, where it was one each: on PostgreSQL their compare-and-sets are one
    statement, and claims in the appender's queue no longer wait behind a work a post."""

    posts: list[tuple[Claim, PublishResult, bool]] = field(default_factory=list)
    """Each post, what the platform answered, and whether it was found there (``find_existing``)."""
    started: bool = False
    recorded: asyncio.Future[set[str]] = field(init=False)
    """The ids of the posts recorded published, once the work's batch has committed."""


@dataclass(frozen=True, slots=True)
class _Parent:
    """Where the post a reply names (``reply_to_post``), or a quote (``quote_of_post``), stands:
    out, with its platform id, and the post and version that went out; still to go out, with
    when to look again; or ended without going out, with why."""

    remote_id: str | None = None
    look_again_at: int | None = None
    ended: str | None = None
    went_out: tuple[str, int] | None = None


async def _parent_of(txn: Txn, row: sql.PostRecord, parent_id: str, *, now: int,
                     does: str = "replies to", this: str = "this reply") -> _Parent:
    """Where the parent of the reply ``row`` stands (see :class:`_Parent`); ``does`` and ``this``
    say it of a quote: ``"quotes"``, ``"this quote"``."""
    parent = await sql.get_post(txn, parent_id)
    for _ in range(ADOPTIONS_FOLLOWED):
        if parent is None or parent.state != State.ADOPTED.value or parent.adopted_into is None:
            break
        parent = await sql.get_post(txn, parent.adopted_into)  # the suggestion as its writer took it up
    if parent is None or parent.account != row.account:
        return _Parent(ended=f"the post it {does}, {parent_id}, is not a post of {row.account}")
    state = State(parent.state)
    if state is State.PUBLISHED and parent.remote_id:
        return _Parent(remote_id=parent.remote_id, went_out=(parent.id, parent.version))
    if state is State.SCHEDULED and parent.publish_at is not None:
        return _Parent(look_again_at=max(int(parent.publish_at), now) + _PARENT_WAIT)
    if state is State.PUBLISHING:
        return _Parent(look_again_at=now + _PARENT_WAIT)
    if state in (State.HELD, State.SUGGESTED, State.SCHEDULED):
        return _Parent(look_again_at=now + _UNDECIDED_WAIT)
    if state is State.FAILED:
        return _Parent(ended=f"the post it {does}, {parent.id}, failed to go out ({parent.last_error}): "
                             + ("retrying it retries this one too" if this == "this reply" else
                                f"retry {this} once it is out"))
    if state is State.DELETED:
        return _Parent(ended=f"the post it {does}, {parent.id}, was deleted")
    return _Parent(ended=f"the post it {does}, {parent.id}, was {state.value} and will not go out: "
                         f"{this} does not go out without it")


async def _words_kept(txn: Txn, went_out: tuple[str, int] | None, answered: tuple[Any, Any]) -> bool:
    """Whether a parent that went out as ``went_out`` (post, version) went out with the words a
    reply answers (``answered``: the post and version it recorded): that post, at that version
    or a later one with the same words and what goes with them (a decision again makes a new
    version of the same), none between with other words."""
    if went_out is None or went_out[0] != answered[0] or type(answered[1]) is not int \
            or not answered[1] <= went_out[1]:
        return False
    rows = await sql.versions(txn, went_out[0])
    return unchanged_between(((r["version"], (r["text"], r["options"], r["media"])) for r in rows),
                             answered[1], went_out[1])


@dataclass(frozen=True, slots=True)
class _Page:
    """What one claim of a page of due posts did."""

    handled: int = 0
    """Held posts expired, and due posts tried."""
    more: bool = False
    """The page came full and claimed some: more may be due at once."""
    deferred: bool = False
    """Due posts were left for when publishes under way settle (their account had its fill)."""


class _Claims:
    """The claims of one claiming transaction: each post checked (and its rate limit applied)
    as it is added, then their compare-and-sets together (``posts.compare_and_set_many``: one
    statement on PostgreSQL for a page, where it was a round trip a post) and an entry each,
    in the order added."""

    def __init__(self, publisher: Publisher, ltx: LogTxn) -> None:
        self._lease = publisher._lease
        self._policies = publisher._policies
        self._ltx = ltx
        self._planned: list[tuple[Claim, sql.Change, str]] = []  # with its policy file's hash
        self._accounts: set[str] = set()  # of the claims planned, not yet written
        self._made: list[Claim] = []
        self._heads: dict[str, str | None] = {}
        """Each account's policy in force as recorded (``policy_heads``), read once a transaction."""
        self.moved: dict[str, str | None] = {}
        """Accounts whose recorded policy (here, by its hash) is not the one in force here (another
        gateway recorded another version since this one last reloaded): none of their posts is
        claimed here."""
        self.failed: list[str] = []
        """The accounts of the replies failed here because their parent ended, one a post."""
        self.waiting: list[tuple[str, str, int, int]] = []
        """The replies postponed here for their parent: (reply, parent, the time it was put at,
        and when)."""

    async def add(self, row: sql.PostRecord) -> bool:
        """Check one post and plan its claim: its lease, its key and its entry. False when it
        is not to go out now (no longer due, no policy in force, rate-limited)."""
        ltx = self._ltx
        post_id = row.id
        state = State(row.state)
        due = state is State.SCHEDULED and row.publish_at is not None and row.publish_at <= ltx.now
        stale = state is State.PUBLISHING and (row.lease_until or 0) <= ltx.now
        if not (due or stale):
            return False  # someone else got it, or it was edited or cancelled meanwhile
        loaded = self._policies.get(row.account)
        if loaded is None:
            return False  # the account's policy was removed: nothing may go out under it
        if not await self._in_force(row.account, loaded.sha256):
            # Another gateway recorded another version (the account made co-signed, say) and
            # this one has not reloaded yet. The change's own work passed by a post that was with
            # its platform then (deferred since), or whose claim lay stranded: judged here under
            # the version replaced, it would go out as that version lets it, on one person's
            # word. Left as it is; the publisher puts the recorded version in force and it is
            # decided under that one (held for a co-signer, where it asks for one).
            self.moved[row.account] = self._heads.get(row.account)
            return False
        announcement = is_announcement(row.author)  # the policy file's own post: it answers to no writer's role
        if due and not announcement and Role.WRITER not in roles(loaded.policy, row.author) and not decided_again(row):
            # The author lost their role in a reload not yet recorded: the reload's own work
            # holds the post for someone who still has one, who then decides. Unless it was
            # sent before and deferred (the platform failed it): the reload's work may have
            # passed it by while it was publishing, and it would wait here for a decision no one
            # is asked for. Held for one now, as that work would have.
            if row.first_attempt_at is not None:
                await redecide(ltx, row, loaded=loaded, cause=AUTHOR_LOST_ROLE)
            return False
        # Released by approvals (on a co-signed account, or held by a rule on another): who
        # approved, and the text each approved. A post never held is not read for them.
        approved = await sql.approvers_of(ltx.txn, post_id, row.version) if not announcement and (
            loaded.policy.tier is Tier.COSIGNED or row.required > 0) else None
        if due and approved is not None and (cause := account_cause(loaded, row, approved)):
            # Approved while the policy spoke as another platform account (the reload that
            # decides such posts again passed it by: a replica behind the policy, a race): words
            # approved for one account never go out on another. Held, for approvals given for this one.
            await redecide(ltx, row, loaded=loaded, cause=cause)
            return False
        if due and approved is not None and needs_approvals(loaded, row, approved):
            # Released under another policy (an approval decided on the one a change had just
            # replaced, say): nothing goes out on a co-signed account without the approvals its
            # policy asks for now, nor a post held by a rule on another tier on the release of
            # someone the policy no longer names. Held for them, as the change's own work would have.
            await redecide(ltx, row, loaded=loaded, cause=POLICY_CHANGED)
            return False
        options = dict(row.options)
        parent_id = options.get("reply_to_post")
        reply: dict[str, Any] = {}
        if due and isinstance(parent_id, str) and not options.get("reply_to"):
            # A reply written before its parent went out: it goes out after the parent, to where
            # the parent went, and never on its own. Once claimed it keeps that platform id
            # (``reply_to``), so a deferral or a recovery sends it to the same place.
            parent = await _parent_of(ltx.txn, row, parent_id, now=ltx.now)
            if parent.look_again_at is not None:
                if await sql.postpone(ltx.txn, post_id, until=parent.look_again_at, at=ltx.now):
                    self.waiting.append((post_id, parent_id, parent.look_again_at, ltx.now))
                return False
            answered = (options.get("answers_post"), options.get("answers_version"))
            if parent.ended is None and answered[0] is not None and \
                    not await _words_kept(ltx.txn, parent.went_out, answered):
                # As a quote: its approvals were given for an answer to the words its parent had
                # at that version (a reply stored before Byline kept it is not held to one).
                went_id, went_version = parent.went_out or (parent_id, None)
                parent = _Parent(ended=(
                    f"the post it replies to, {parent_id}, went out as {went_id} version {went_version}, not with "
                    f"the words of {answered[0]} version {answered[1]} that this reply's approvers saw it answer: "
                    "write the reply again for them to see what it answers now"))
            if parent.ended is not None:
                await self._fail(row, parent.ended)
                return False
            options["reply_to"] = parent.remote_id
            reply = {"options": json.dumps(options)}
        quoted_id = options.get("quote_of_post")
        if due and isinstance(quoted_id, str) and row.first_attempt_at is None:
            # A quote written before the post it quotes went out: it goes out after it, and only
            # if that post went out with the words its approvers saw it quote (its version then);
            # edited since, those approvals were given for other words. Sent once, it was checked.
            quoted = await _parent_of(ltx.txn, row, quoted_id, now=ltx.now, does="quotes", this="this quote")
            if quoted.look_again_at is not None:
                if await sql.postpone(ltx.txn, post_id, until=quoted.look_again_at, at=ltx.now):
                    self.waiting.append((post_id, quoted_id, quoted.look_again_at, ltx.now))
                return False
            bound = (quoted_id, options.get("quote_of_version"))
            if quoted.ended is None and quoted.went_out != bound:
                went_id, went_version = quoted.went_out or (quoted_id, None)
                quoted = _Parent(ended=(
                    f"the post it quotes, {quoted_id}, went out as {went_id} version {went_version}, not with "
                    f"the words of its version {bound[1]} that this quote's approvers saw it quote: write the "
                    "quote again for them to see what it quotes now"))
            if quoted.ended is not None:
                await self._fail(row, quoted.ended)
                return False
        rate = loaded.policy.rate_limit
        if rate is not None and row.first_attempt_at is None:
            if row.account in self._accounts:
                await self._write()  # the count below sees the account's claims before this one
            window = rate.seconds * _SECOND
            count, first = await sql.recent_attempts(ltx.txn, account=row.account, since=ltx.now - window)
            if count >= rate.count and first is not None:
                # The account has used its allowance: wait until the oldest send leaves the window.
                await sql.postpone(ltx.txn, post_id, until=first + window + 1, at=ltx.now)
                return False
        content = await stored_content_sha256(ltx.txn, options, salt=row.content_salt, scheme=row.content_scheme)

        async def carried() -> str | None:
            return content

        # What it sends: its words with the disclosure line the policy asks for, or what its last
        # claim sent, sent again (``outgoing.sends``).
        text, again = await sends(ltx.txn, row, loaded.policy, content=carried, stale=stale)
        looks_only = None
        if stale:
            # Claimed again after its publisher died: the policy may have changed while it lay
            # there, and nothing goes out that the policy in force would not let out (see
            # ``recovery_cause``). Claimed all the same, to look for it on its platform.
            looks_only = recovery_cause(loaded, row, approved or {}, sends=text_sha256(text))
        elif approved is not None and (cause := disclosure_cause(loaded, row, approved, sends=text_sha256(text))):
            # Approved for other words than it would send (the policy's disclosure line changed
            # since, and the change's own work passed it by): its approvers approve what goes out.
            await redecide(ltx, row, loaded=loaded, cause=cause)
            return False
        version = row.version
        key = claim_key(row, text=text, content=content, recovering=again)
        # A lease that ran out (its publisher died, or was cut off) is no attempt that failed:
        # claiming the post again does not use up its retry budget, only a platform's refusal does.
        attempt = row.attempts if stale else row.attempts + 1
        change = sql.Change(post_id, row.state, version, {
            "state": str(transition(state, Action.CLAIM)), "attempts": attempt,
            "lease_until": ltx.now + self._lease, "idempotency_key": key,
            "published_text": text, "sent_content": content or "", "updated_at": ltx.now,
            "first_attempt_at": row.first_attempt_at or ltx.now, **reply,
        })
        claim = Claim(post_id=post_id, account=row.account, version=version, text=text,
                      options=options, key=key, attempt=attempt,
                      recovering=stale, first_attempt_at=int(row.first_attempt_at or ltx.now),
                      announcement=announcement, content_salt=row.content_salt,
                      content_scheme=row.content_scheme, looks_only=looks_only, content=content)
        self._planned.append((claim, change, loaded.sha256))
        self._accounts.add(row.account)
        return True

    async def _in_force(self, account: str, sha256: str) -> bool:
        """Whether ``sha256`` is the account's policy in force as recorded in the database, where
        every gateway sharing it records its changes: one indexed read an account a transaction."""
        if account not in self._heads:
            self._heads[account] = await policy_sql.head_sha256(self._ltx.txn, account)
        return self._heads[account] == sha256

    async def read_heads(self, accounts: Collection[str]) -> None:
        """Read the recorded policies of ``accounts`` at once (a page's), for :meth:`add`: one
        statement a page, where it was one an account."""
        self._heads.update(await policy_sql.head_sha256s(self._ltx.txn, set(accounts) - set(self._heads)))

    def known_in_force(self, account: str, sha256: str) -> None:
        """Take ``sha256`` as the account's recorded policy without reading it: the caller's
        transaction checks it itself (a new post is stored only under the version in force)."""
        self._heads[account] = sha256

    async def _fail(self, row: sql.PostRecord, reason: str) -> None:
        """Fail a due reply whose parent ended without going out (or a quote whose quoted post did,
        or went out with other words), saying why: its author sees it, and may retry it once the
        parent is out."""
        ltx = self._ltx
        new_state = transition(State(row.state), Action.FAIL)
        if await sql.compare_and_set(ltx.txn, row.id, state=row.state, version=row.version, changes={
            "state": new_state.value, "last_error": reason, "lease_until": None, "updated_at": ltx.now,
        }):
            await ltx.append("post.failed", actor="system", account=row.account, post=row.id,
                             data={"state": new_state.value, "error": reason, "attempt": row.attempts,
                                   "reply_to_post": row.options.get("reply_to_post")})
            self.failed.append(row.account)

    async def made(self, *, stored: bool = False) -> list[Claim]:
        """Write the claims planned; those made, in the order added (a post changed meanwhile
        is left out). ``stored``: the posts were stored already claimed (:meth:`changes`), so
        only their entries are written."""
        await self._write(stored=stored)
        return self._made

    @property
    def changes(self) -> Mapping[str, Any]:
        """What the one claim planned sets of its post's row: stored with a post not yet
        stored (:meth:`Publisher.plan`), it is claimed without a statement of its own."""
        (_, change, _), = self._planned
        return change.changes

    async def record(self, ltx: LogTxn, *, stored: bool) -> Claim | None:
        """The one claim planned, written (``ltx`` is the transaction it was planned in): the
        claim for :meth:`Publisher.send`, or None where its post changed meanwhile."""
        assert ltx is self._ltx
        made = await self.made(stored=stored)
        return made[0] if made else None

    async def _write(self, *, stored: bool = False) -> None:
        planned, self._planned = self._planned, []
        self._accounts.clear()
        if not planned:
            return
        ltx = self._ltx
        done = ({change.post_id for _, change, _ in planned} if stored
                else await sql.compare_and_set_many(ltx.txn, [change for _, change, _ in planned]))
        for claim, _, sha256 in planned:
            if claim.post_id not in done:
                continue
            data: dict[str, Any] = {
                "attempt": claim.attempt, "version": claim.version, "idempotency_key": claim.key,
                "recovering": claim.recovering, "text_hash": ltx.commit_text(claim.text), "policy_sha256": sha256,
                "content_sha256": claim.content,
                # Checked in this transaction: the policy it names is the account's version in
                # force as recorded (``_Claims._in_force``), so the log's last policy record for the
                # account before this entry is that policy, and the verifier allows no grace.
                "policy_in_force": True,
            }
            if "reply_to_post" in claim.options:  # the platform id its parent went out with
                data["reply_to"] = claim.options.get("reply_to")
            if "gates" in claim.options and (gates := sent_gates(claim.options["gates"])):
                data["gates"] = gates  # who may reply or quote, as the public card says it
            if claim.looks_only is not None:  # why it is looked for and not sent
                data["looks_only"] = claim.looks_only["rule"]
            await ltx.append("post.publishing", actor="system", account=claim.account, post=claim.post_id,
                             data=data)
            self._made.append(claim)


class Publisher:
    """Expires stale holds and publishes due posts; runs in the background of every replica."""

    def __init__(
        self,
        *,
        db: Database,
        appender: Appender,
        policies: PolicyRegistry,
        platforms: Platforms,
        clock: Clock,
        interval: float = 0.5,
        lease_seconds: float = 120.0,
        inline_attempts: int = 3,
        inline_wait_max: float = 5.0,
        probe_seconds: float = 60.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        metrics: Metrics = NOT_SCRAPED,
    ) -> None:
        self._metrics = metrics
        self._db = db
        self._appender = appender
        self._policies = policies
        self._platforms = platforms
        self._clock = clock
        self._interval = interval
        self._lease = int(lease_seconds * _SECOND)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._leases: asyncio.Task[None] | None = None
        self._scopes: asyncio.Task[None] | None = None
        self._inflight: set[str] = set()
        self._account_locks: dict[str, asyncio.Lock] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._claimed: dict[str, int] = {}  # account -> its claims not yet settled
        self._published: _Published | None = None  # the group the next post taken joins
        self._inline_attempts = inline_attempts
        self._inline_wait_max = inline_wait_max
        self._sleep = sleep
        self._probe_every = int(probe_seconds * _SECOND)
        self._last_probe: dict[str, int] = {}
        self._refused_for: dict[str, str] = {}
        """Accounts marked unhealthy because a post was refused for a permission their
        credential lacks (403: it signs in, it may not post): what they were marked with. Only a
        post tells that mended, not a probe of who the credential is (:meth:`_probe`)."""
        self._replies_due = False  # replies were brought forward since run_once last looked
        self.refresh_policies: Callable[[], Awaitable[object]] | None = None
        """Reloads the policies and puts the recorded versions in force (``PolicyService.sync``):
        set once both exist. Run when a claim finds another gateway recorded another version."""
        self._reloaded_for: dict[str, str | None] = {}
        """The recorded version (its hash) each account's posts last set off a reload for."""
        self.settle: Callable[[], Awaitable[object]] | None = None
        """Settles the changes of published posts left unrecorded (``PublishedPosts.settle``):
        set once both exist, each built with what the other needs."""
        self._settling: asyncio.Task[None] | None = None
        self._awaiting: dict[str, dict[str, tuple[int, int]]] = {}
        """Replies this publisher postponed for a parent, by parent: {reply: (the time it was put
        at, when)}. When this publisher records the parent published, they are brought forward at
        once, so that a thread goes out part after part rather than a look apart; a parent
        published elsewhere (another replica) leaves them to their time."""

    def wake(self) -> None:
        """Look for due work now rather than at the next tick."""
        self._wake.set()

    async def start(self) -> None:
        """Start the background loop (posts that came due while down go out now)."""
        self._task = asyncio.create_task(self._loop(), name="byline-publisher")
        self._leases = run_every(self._lease / _SECOND / 3, self.keep_leases, name="byline-publisher-leases",
                                 failed="publisher_leases_failed")
        self._scopes = run_every(self._probe_every / _SECOND, self.check_scopes, name="byline-scope-checks",
                                 failed="scope_checks_failed")

    async def check_scopes(self) -> int:
        """Once a minute, ask each account's platform whether its credential can do what Byline
        needs (``Platforms.check_scopes``: on Mastodon, a token's scopes; any platform whose
        adapter has a ``scope_check``, ``adapters.base.ScopeChecking``), so that a token lacking
        one is shown on the account's health now, not when a recovery or a deletion needs it.
        Each account's question is asked beside the others'; one platform that does not answer
        leaves its accounts' health as it was. How many accounts were asked."""
        policies = dict(self._policies.policies)
        self._platforms.forget_scopes(policies)

        async def ask(loaded: LoadedPolicy) -> None:
            try:
                await self._platforms.check_scopes(loaded)
            except (AdapterError, BylineError) as exc:
                logger.warning("scope_check_failed", account=loaded.policy.account,
                               error=getattr(exc, "message", str(exc)))

        # Only where the platform's adapter can say it: no other account's credential is read for it.
        asked = [loaded for loaded in policies.values() if checks_scopes(loaded.policy.platform)]
        await asyncio.gather(*(ask(loaded) for loaded in asked))
        return len(asked)

    async def keep_leases(self) -> int:
        """Extend the leases of the posts claimed here and not yet settled, a third of a lease
        before they would run out: a claim waiting behind its account's earlier posts (each
        sent in turn, some riding out a platform's errors) is not taken for one whose publisher
        died, and claimed again elsewhere."""
        held = sorted(self._inflight)
        if not held:
            return 0
        now = now_micros(self._clock)
        async with self._db.write() as txn:
            return await sql.keep_leases(txn, held, until=now + self._lease, now=now)

    async def stop(self) -> None:
        """Stop the loop; a publish in flight keeps its lease and is recovered later."""
        await cancel_task(self._leases)
        self._leases = None
        await cancel_task(self._scopes)
        self._scopes = None
        await cancel_task(self._task)
        self._task = None
        await cancel_task(self._settling)
        self._settling = None
        for task in list(self._sending):
            await cancel_task(task)

    async def _loop(self) -> None:
        while True:
            page = _Page()
            try:
                page = await self._tick()
                if page.more:  # more is likely due: go on once there is room
                    await self._room()
                    continue
                pause = await self._pause()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if unavailable(exc):  # no bug: the next tick tries again
                    logger.warning("publisher_tick_failed", error="database_unavailable")
                else:
                    logger.exception("publisher_tick_failed")
                pause = self._interval
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait({woken, *(self._sending if page.deferred else ())}, timeout=pause,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                woken.cancel()
            self._wake.clear()

    async def _pause(self) -> float:
        """Seconds until the next post falls due, the interval at most: a post goes out when it
        is due, not up to an interval later."""
        async with self._db.read() as txn:
            at = await sql.next_due_time(txn)
        now = now_micros(self._clock)
        if at is None or at <= now:  # nothing waits, or what is due could not be claimed now
            return self._interval
        return min(self._interval, max(0.01, (at - now) / _SECOND))

    async def run_once(self) -> int:
        """Expire stale holds, then claim the due posts page by page and publish them; return
        how many were handled, once every publish under way has settled, and the replies their
        going out made due (a thread) have gone out too."""
        handled = 0
        while True:
            self._replies_due = False
            while True:
                page = await self._tick()
                handled += page.handled
                if page.more:
                    await self._room()
                elif page.deferred and self._sending:
                    await asyncio.wait(list(self._sending), return_when=asyncio.FIRST_COMPLETED)
                else:
                    break
            while self._sending:
                await asyncio.wait(list(self._sending))
            if self._settling is not None:
                await asyncio.wait([self._settling])
            if not self._replies_due:
                return handled

    async def _room(self) -> None:
        """Wait until fewer than ``_IN_FLIGHT`` claims are unsettled."""
        while len(self._sending) >= _IN_FLIGHT:
            await asyncio.wait(list(self._sending), return_when=asyncio.FIRST_COMPLETED)

    def _settle_changes(self) -> None:
        """Set off a round of settling published posts' unrecorded changes, unless one is under way."""
        if self.settle is None or (self._settling is not None and not self._settling.done()):
            return
        self._settling = asyncio.create_task(self._settle_round(), name="byline-settle")

    async def _settle_round(self) -> None:
        assert self.settle is not None
        try:
            await self.settle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next tick tries again
            if unavailable(exc):
                logger.warning("settle_failed", error="database_unavailable")
            else:
                logger.exception("settle_failed")

    async def _tick(self) -> _Page:
        """Set off the settling of unrecorded changes, expire stale holds, claim one page of due
        posts and set their publishing off."""
        self._settle_changes()
        self._platforms.forget_gone()
        now = now_micros(self._clock)
        async with self._db.read() as txn:
            stale = await sql.expired_holds(txn, now=now, limit=500)
            unhealthy = set(self._platforms.unhealthy)
            waiting = await sql.due_accounts(txn, now=now, accounts=unhealthy) if unhealthy else set()
        held = set()
        for account in unhealthy:
            if account not in waiting or not await self._probe(account, now):
                held.add(account)  # its posts wait until its credential works again
        for row in stale:
            try:
                account, replies = await self._appender.submit(self._expire_work(row["id"]))
            except DatabaseUnavailable:
                raise  # the next tick tries again: not each of up to 500 in turn, unsaid
            except BylineError:  # decided or changed meanwhile: no longer expiring
                continue
            loaded = self._policies.get(account)
            self._metrics.post_event(loaded, "post.expired", State.EXPIRED)
            for _ in range(replies):
                self._metrics.post_event(loaded, "post.cancelled", State.CANCELLED)
        limit = min(_CLAIM_PAGE, _IN_FLIGHT - len(self._sending))
        if limit <= 0:
            return _Page(handled=len(stale), more=True)
        read, picked, claims, failed, waiting, moved = await self._appender.submit(
            self._claim_page_work(limit=limit, skip=held))
        again = await self._put_in_force(moved) if moved else False
        for account in failed:
            self._metrics.publish_failed(self._policies.get(account), gave_up=True)
        for reply, parent, until, at in waiting:
            if len(self._awaiting) < _AWAITING_MOST:
                self._awaiting.setdefault(parent, {})[reply] = (until, at)
        for claim in claims:
            self._start(claim)
        return _Page(handled=len(stale) + picked, more=(read == limit and bool(claims)) or again,
                     deferred=picked < read)

    async def _put_in_force(self, moved: dict[str, str | None]) -> bool:
        """Put in force here the versions another gateway recorded for the accounts ``moved``
        (a reload), whose posts were left unclaimed for it; whether any account's policy here
        changed, so that its posts are looked at again at once, under the version now in force.
        A recorded version this gateway could not put in force (its text does not validate here)
        is not tried again each tick: its posts are left to the gateways that can, and this one
        reloads for the account again once another version is recorded (or at its own reloads)."""
        accounts = {a for a, head in moved.items() if self._reloaded_for.get(a, _NOT_YET) != head}
        if self.refresh_policies is None or not accounts:
            return False
        self._reloaded_for.update((a, moved[a]) for a in accounts)
        before = {a: getattr(self._policies.get(a), "sha256", None) for a in accounts}
        logger.info("policy_moved_elsewhere", accounts=sorted(accounts))
        await self.refresh_policies()
        changed = {a for a, sha in before.items() if getattr(self._policies.get(a), "sha256", None) != sha}
        for account in changed:  # put in force: a later version (or this one again) may reload again
            self._reloaded_for.pop(account, None)
        return bool(changed)

    def send(self, claim: Claim) -> None:
        """Set a claim :meth:`claim` made on its way, once it has committed."""
        if self._task is not None:
            self._start(claim)
        else:  # stopped since: its lease runs out and it is claimed again
            self._metrics.post_event(self._policies.get(claim.account), "post.publishing", State.PUBLISHING)

    def _start(self, claim: Claim) -> None:
        """Set a claim committed here on its way: after the account's claims before it, one
        request at a time (see :meth:`_send_in_turn`)."""
        self._metrics.post_event(self._policies.get(claim.account), "post.publishing", State.PUBLISHING)
        self._inflight.add(claim.post_id)
        self._claimed[claim.account] = self._claimed.get(claim.account, 0) + 1
        task = asyncio.create_task(self._send_in_turn(claim), name=f"byline-publish-{claim.post_id}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def plan(self, ltx: LogTxn, row: sql.PostRecord, *, policy_sha256: str) -> _Claims | None:
        """Plan the claim of a post due the moment it is stored, in the transaction that stores
        it (a direct-tier post, or a delayed one with no delay), and write nothing: the caller
        stores the post with the claim's :attr:`~_Claims.changes` (or sets them on the row it
        stored) and then has the claim :meth:`~_Claims.record`-ed; :meth:`send` takes it to its
        platform once that commits, without waiting for a page of claims. Checked as a page's
        claims are (:class:`_Claims`); ``None``, leaving it to the next page, where a page
        does more than a claim: the publisher is not running here, the post replies to one of
        the account's own, the account has a rate limit or its credential is failing, or this
        publisher has its fill of claims, or the policy in force here is no longer the one the
        post was decided under (``policy_sha256``). The publisher's own state is only read: the
        work may run again."""
        if (self._task is None or row.state != State.SCHEDULED or "reply_to_post" in row.options
                or row.account in self._platforms.unhealthy or len(self._sending) >= _IN_FLIGHT
                or self._claimed.get(row.account, 0) >= _PER_ACCOUNT):
            return None
        loaded = self._policies.get(row.account)
        # Another policy put in force here since the post was decided (a change to co-signed,
        # say): the post is not stored under it either (``insert_new_post``), and is decided
        # again. Planned under it, the claim would judge, and try to hold, a post not yet stored.
        if loaded is None or loaded.sha256 != policy_sha256 or loaded.policy.rate_limit is not None:
            return None
        claims = _Claims(self, ltx)
        # Stored in this transaction only while ``policy_sha256`` is the account's recorded
        # version (``posts.insert_new_post``), or the work runs again: no read of its own here,
        # where a direct post's speed is counted.
        claims.known_in_force(row.account, policy_sha256)
        return claims if await claims.add(row) else None

    async def _claim_one(self, ltx: LogTxn, row: sql.PostRecord) -> Claim | None:
        """One post's claim, checked and written as a page's claims are (:class:`_Claims`)."""
        claims = _Claims(self, ltx)
        await claims.add(row)
        made = await claims.made()
        return made[0] if made else None

    async def _probe(self, account: str, now: int) -> bool:
        """Ask the platform, at most once a minute, whether an account's credential works again,
        and whether it is still held for publishing as the same account as another's
        (``Platforms.cleared``)."""
        if now - self._last_probe.get(account, -self._probe_every) < self._probe_every:
            return False
        self._last_probe[account] = now
        loaded = self._policies.get(account)
        if loaded is None:
            return False
        try:
            # Held for another account's credential, its own is known to work: not asked again
            # each minute (X allows few of these questions a day).
            await self._platforms.cleared(loaded, fresh=not self._platforms.held_here(account))
            # Held by the scope check (a token that cannot publish): asked that again, not taken
            # for mended at its identity alone. Any other problem is asked only as before.
            if self._platforms.scope_held(account) and await self._platforms.check_scopes(loaded) is not None:
                return False
        except AccountHeld as exc:
            logger.warning("account_still_held", account=account, problem=exc.message)
            return False
        except (AdapterError, BylineError) as exc:
            logger.warning("credential_still_failing", account=account,
                           error=getattr(exc, "message", str(exc)))
            return False
        refused_for = self._refused_for.pop(account, None)
        if refused_for is not None and self._platforms.unhealthy.get(account) == refused_for:
            # It signs in, but what its post was refused for is asked only by a post: the
            # account's posts try again, and its health says the problem until one goes out.
            self._refused_for[account] = refused_for
            logger.info("credential_tried_by_a_post", account=account)
            return True
        logger.info("credential_works_again", account=account)
        self._platforms.mark(account, None)
        return True

    def _expire_work(self, post_id: str) -> Any:
        async def work(ltx: LogTxn) -> tuple[str, int]:
            row = await sql.get_post(ltx.txn, post_id)
            if row is None or not hold_expired(row, now=ltx.now):
                raise BylineError(Code.CONFLICT, "no longer expiring")
            return row.account, await expire_hold(ltx, row)

        return work

    def _claim_page_work(self, *, limit: int, skip: set[str]) -> Any:
        """Claim up to ``limit`` due posts in one transaction: what it read, how many it tried,
        and its claims, in the order they were due. It leaves posts already in flight here,
        and those of accounts with ``_PER_ACCOUNT`` claims unsettled, for a later page."""
        inflight = frozenset(self._inflight)
        claimed = dict(self._claimed)

        async def work(
            ltx: LogTxn,
        ) -> tuple[int, int, list[Claim], list[str], list[tuple[str, str, int, int]], dict[str, str | None]]:
            rows = await sql.claimable(ltx.txn, now=ltx.now, limit=limit, skip_accounts=skip)
            taken = dict(claimed)  # the work may run again: it changes nothing of the publisher's
            picked, claims = 0, _Claims(self, ltx)
            await claims.read_heads({row.account for row in rows})
            for row in rows:
                if row.id in inflight or taken.get(row.account, 0) >= _PER_ACCOUNT:
                    continue
                picked += 1
                if await claims.add(row):
                    taken[row.account] = taken.get(row.account, 0) + 1
            return len(rows), picked, await claims.made(), claims.failed, claims.waiting, claims.moved

        return work

    async def _send_in_turn(self, claim: Claim) -> None:
        """Publish a claimed post after the account's claims before it (see :meth:`publish`).

        The account's next post is sent as soon as the platform has answered this one, while
        this one's outcome commits: still one request at a time, in order, and the commit's
        wait (one of the appender's batches) is not in every request's way."""
        turn = self._account_locks.setdefault(claim.account, asyncio.Lock())
        released = False

        def next_may_go() -> None:
            nonlocal released
            if not released:
                released = True
                turn.release()

        try:
            await turn.acquire()
            try:
                await self._send(claim, sent=next_may_go)
            finally:
                next_may_go()
        except asyncio.CancelledError:
            raise
        except Exception:  # its lease runs out and the recovery path takes it
            logger.exception("publish_settle_failed", post_id=claim.post_id, account=claim.account)
        finally:
            self._inflight.discard(claim.post_id)
            left = self._claimed.get(claim.account, 1) - 1
            if left > 0:
                self._claimed[claim.account] = left
            else:
                self._claimed.pop(claim.account, None)

    def _claim_work(self, post_id: str) -> Any:
        async def work(ltx: LogTxn) -> Claim | None:
            row = await sql.get_post(ltx.txn, post_id)
            return None if row is None else await self._claim_one(ltx, row)

        return work

    async def publish(self, post_id: str) -> None:
        """Claim one due post and get it onto its platform, or defer or fail it."""
        claim: Claim | None = await self._appender.submit(self._claim_work(post_id))
        if claim is None:
            return
        self._metrics.post_event(self._policies.get(claim.account), "post.publishing", State.PUBLISHING)
        # One request at a time per account: a burst of approvals goes out in order and
        # cannot trip the platform's limits by itself.
        async with self._account_locks.setdefault(claim.account, asyncio.Lock()):
            await self._send(claim)

    async def _send(self, claim: Claim, *, sent: Callable[[], None] = lambda: None) -> None:
        """Publish a claimed post and record how it went; ``sent`` is called once the platform
        has answered (or failed), before the outcome is committed."""
        log = logger.bind(post_id=claim.post_id, account=claim.account, attempt=claim.attempt)
        loaded = self._policies.get(claim.account)
        budget = loaded.policy.retry_attempts if loaded else 0
        try:
            if loaded is None:
                raise AdapterError("the account has no policy in force", retryable=True)
            adapter = self._platforms.adapter_for(loaded)
            media = await self._media(claim) if claim.options.get("media_ids") else ()
            result: PublishResult | None = None
            if claim.recovering:
                result = await adapter.find_existing(self._outbound(claim, media=media))
                if result is not None:
                    log.info("publish_recovered", remote_id=result.remote_id)
            found = result is not None
            if result is None and claim.looks_only is None:
                # Not before looking for it: a post already out (a crash before it was recorded)
                # is recorded as it is, whatever is found of the account meanwhile.
                await self._platforms.cleared(loaded, adapter=adapter)
                # And again right before each request that publishes it (after its media went
                # up, after an inline wait): another policy file found meanwhile to speak for
                # the account (a reread, another account's check) stops it there. Known
                # already, it costs a lookup, no question to the platform.
                outbound = self._outbound(claim, media=media, ready=functools.partial(
                    self._platforms.cleared, loaded, adapter=adapter))
                result = await self._publish_with_retries(adapter, outbound)
        except AccountHeld as exc:
            # Another policy file may speak for the account: nothing goes out, and the post
            # waits, its budget untouched, for the probe to find the account clear again.
            sent()
            await self._settle_failure(
                claim, AdapterError(exc.message, retryable=True, retry_after=self._probe_every / _SECOND),
                retry_budget=budget, held=exc.public,
            )
            return
        except AdapterError as exc:
            sent()
            if claim.looks_only is not None and (exc.retryable or exc.auth_failed):
                self._look_again(claim, exc.message)
                return
            await self._settle_failure(claim, exc, retry_budget=budget)
            return
        except DatabaseUnavailable as exc:
            # Byline's own database went away (as the post's images were read, or as the sandbox
            # keeps it): nothing of the account's to mend, and not the post's fault. Tried again
            # after the first short wait, every time, its budget untouched; if even that cannot be written, its lease
            # runs out and it is recovered (looked for on the platform first).
            sent()
            if claim.looks_only is not None:
                self._look_again(claim, exc.message)
                return
            await self._settle_failure(claim, AdapterError(exc.message, retryable=True, retry_after=backoff_seconds(1)),
                                       retry_budget=budget, patient=True)
            return
        except BylineError as exc:  # the credential cannot be read: wait for an admin
            sent()
            if claim.looks_only is not None:
                self._look_again(claim, exc.message)
                return
            if credential_being_written(exc):
                # A credential file caught in the middle of its rewrite: read again in a moment,
                # the post's budget and the account's health untouched.
                await self._settle_failure(claim, AdapterError(
                    exc.message, retryable=True, retry_after=float(exc.details["retry_after"])),
                    retry_budget=budget, patient=True)
                return
            await self._settle_failure(
                claim, AdapterError(exc.message, retryable=True, auth_failed=True), retry_budget=budget
            )
            return
        except Exception as exc:
            sent()
            log.exception("publish_crashed")
            if claim.looks_only is not None:
                self._look_again(claim, f"unexpected error: {type(exc).__name__}")
                return
            await self._settle_failure(
                claim, AdapterError(f"unexpected error: {type(exc).__name__}", retryable=True),
                retry_budget=budget,
            )
            return
        sent()
        if result is None:  # looked for only (``Claim.looks_only``), and not there: not sent
            await self._hold_unsent(claim)
            return
        self._platforms.mark(claim.account, None)
        self._refused_for.pop(claim.account, None)
        await self._record_published(claim, result, found=found)
        self._metrics.published(loaded, time.perf_counter() - claim.claimed)
        log.info("published", remote_id=result.remote_id)
        if claim.post_id in self._awaiting:
            await self._bring_replies_forward(claim.post_id)

    def _outbound(self, claim: Claim, *, media: tuple[MediaItem, ...],
                  ready: Callable[[], Awaitable[None]] | None = None) -> OutboundPost:
        """What the adapter is asked to publish for ``claim``: its words, its options, its
        uploads (``media``) and the caller's last word (``ready``, see ``OutboundPost``)."""
        options = claim.options
        common: dict[str, Any] = dict(post_id=claim.post_id, idempotency_key=claim.key, text=claim.text, media=media,
                      first_attempt_at=from_micros(claim.first_attempt_at),
                      record_url=record_url(self._platforms.public_url, claim.post_id), ready=ready)
        if not options:  # most posts: every option as OutboundPost leaves it, without a lookup each
            return OutboundPost(**common)
        return OutboundPost(
            **common, reply_to=options.get("reply_to"), reply_to_cid=options.get("reply_to_cid"),
            spoiler_text=options.get("spoiler_text"),
            sensitive=bool(options.get("sensitive", False)), language=options.get("language"),
            visibility=options.get("visibility"), created_at=options.get("created_at"),
            embed=options.get("embed"), quotes_own_post="quote_of_post" in options,
            self_labels=options.get("self_labels"), facets=options.get("facets"),
            record_key=options.get("record_key"), gates=options.get("gates"),
        )

    def _look_again(self, claim: Claim, error: str) -> None:
        """A recovered claim only looked for (``Claim.looks_only``) whose platform could not say
        whether it has the post: left publishing, its lease to run out, and looked for again
        then. Not deferred: back among the due posts it could be left for a decision no one is
        asked for (an author who lost their role, whose post the policy change did not hold)."""
        logger.warning("recovery_lookup_failed", post_id=claim.post_id, account=claim.account, error=error)

    async def _hold_unsent(self, claim: Claim) -> None:
        """Hold a recovered claim that its platform does not have and the policy in force would
        not let go out (``Claim.looks_only``): decided again under that policy, as a pending
        post is when the policy changes (a new version, its approvers asked anew), with its
        entry; never sent. A post changed meanwhile, or an account left without a policy, is
        left as it is (its lease runs out, and it is looked at again)."""
        assert claim.looks_only is not None
        cause = claim.looks_only

        async def work(ltx: LogTxn) -> LoadedPolicy | None:
            loaded = self._policies.get(claim.account)
            row = await sql.get_post(ltx.txn, claim.post_id)
            if loaded is None or row is None or row.state != State.PUBLISHING.value or row.version != claim.version:
                return None
            await redecide(ltx, row, loaded=loaded, cause=cause)
            return loaded

        loaded = await self._appender.submit(work)
        if loaded is None:
            logger.warning("recovered_claim_not_held", post_id=claim.post_id, account=claim.account)
            return
        self._awaiting.pop(claim.post_id, None)
        logger.info("recovered_claim_held", post_id=claim.post_id, account=claim.account, cause=cause["rule"])
        self._metrics.post_event(loaded, "post.redecided", State.HELD)

    async def _bring_replies_forward(self, parent_id: str) -> None:
        """The replies waiting here for a parent just recorded published are due now: each only
        while it is as it was put to wait (an edit since restarts its cooling-off, which may end
        after the parent went out, and keeps its own time)."""
        waiting = self._awaiting.pop(parent_id, {})

        async def work(ltx: LogTxn) -> None:
            # Through the appender, as every other change of a post's row is: no lock taken
            # here can wait on one its batch holds (no log entry: the state does not change).
            for reply, (until, at) in waiting.items():
                await sql.bring_forward(ltx.txn, reply, expected=until, since=at, until=ltx.now)

        try:
            await self._appender.submit(work)
        except Exception as exc:  # they go out at the time they were put at
            logger.warning("replies_not_brought_forward", parent=parent_id, error=type(exc).__name__)
            return
        self._replies_due = True
        self.wake()

    async def _media(self, claim: Claim) -> tuple[MediaItem, ...]:
        """The uploads a post carries, in its order: as its claim recorded them (their bytes, alt
        text and focal point), or the post fails, saying so, rather than send what nobody approved."""
        media_ids = claim.options["media_ids"]
        async with self._db.read() as txn:
            rows = await media_sql.data(txn, list(media_ids))
        found = {row["id"]: row for row in rows}
        missing = [m for m in media_ids if m not in found]
        if missing:
            raise AdapterError(f"media {', '.join(missing)} is no longer stored", retryable=False)
        if any(hashlib.sha256(row["data"]).hexdigest() != row["digest"] for row in rows) \
                or content_sha256(claim.options, rows, salt=claim.content_salt,
                                  scheme=claim.content_scheme) != claim.content:
            raise AdapterError("its media changed after it was claimed: not what was approved", retryable=False)
        return tuple(
            # A post hashed without focal points sends none: what its approvers approved had none.
            MediaItem(data=bytes(found[m]["data"]), mime_type=found[m]["mime_type"],
                      description=found[m]["description"],
                      focus=found[m]["focus"] if sends_focus(claim.content_scheme) else None)
            for m in media_ids
        )

    async def _publish_with_retries(self, adapter: Adapter, post: OutboundPost) -> PublishResult:
        """Ride out short blips (a dropped connection, a 502, a 429 asking for a few seconds)
        in place; anything longer goes back to the scheduler, which moves ``publish_at``."""
        short = self._inline_wait_max

        def worth_waiting(exc: BaseException) -> bool:
            return (
                isinstance(exc, AdapterError) and exc.retryable and not exc.auth_failed
                and (exc.retry_after is None or exc.retry_after <= short)
            )

        def delay(exc: BaseException | None, attempt: int) -> float:
            if isinstance(exc, AdapterError) and exc.retry_after is not None:
                return exc.retry_after
            return float(min(short, 0.2 * 2 ** (attempt - 1)))

        # The first attempt on its own: nearly every post goes out at once, and a retrying loop
        # set up for each was a twentieth of a post's CPU. A failure worth waiting for then
        # goes on exactly as it did in the loop: counted, waited for, tried again.
        try:
            return await adapter.publish(post)
        except Exception as exc:
            if self._inline_attempts <= 1 or not worth_waiting(exc):
                raise
            first = exc
        self._metrics.retried_inline(adapter.platform)
        await self._sleep(delay(first, 1))
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._inline_attempts - 1),
            wait=lambda state: delay(state.outcome.exception() if state.outcome else None, state.attempt_number + 1),
            retry=retry_if_exception(worth_waiting),
            before_sleep=lambda _: self._metrics.retried_inline(adapter.platform),
            sleep=self._sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await adapter.publish(post)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _record_published(self, claim: Claim, result: PublishResult, *, found: bool = False) -> None:
        """Record that the platform took a post: with the others it took while the last ones
        were being recorded, in one work (see :class:`_Published`). Raises a conflict when the
        post was no longer publishing at the claimed version."""
        group = self._published
        # A group whose work has ended without running (its batch failed: the database went
        # away) takes no more posts: they would wait for an answer given already, an error.
        if group is None or group.started or group.recorded.done() or len(group.posts) >= _PUBLISHED_GROUP:
            group = self._published = _Published()
            group.recorded = self._appender.submit(self._published_work(group))
            # Its error is each caller's to raise; with every caller gone, it is not left unread.
            group.recorded.add_done_callback(lambda done: done.cancelled() or done.exception())
        group.posts.append((claim, result, found))
        # Shielded: one caller cancelled (the gateway stopping) leaves the others' answer be.
        if claim.post_id not in await asyncio.shield(group.recorded):
            raise BylineError(Code.CONFLICT, "post changed while publishing")

    def _published_work(self, group: _Published) -> Any:
        async def work(ltx: LogTxn) -> set[str]:
            group.started = True  # the posts the platform takes from now on go in the next group
            # Only a post still publishing at the claimed version may be marked published, and the
            # compare-and-set says whether it is: no read first.
            new_state = transition(State.PUBLISHING, Action.PUBLISHED).value
            publishing = State.PUBLISHING.value
            heads: dict[str, tuple[int, bytes] | None] = {}
            recorded = await sql.compare_and_set_many(ltx.txn, [
                sql.Change(claim.post_id, publishing, claim.version, {
                    "state": new_state, "remote_id": result.remote_id, "remote_url": result.url,
                    "remote_author": result.author,
                    "lease_until": None, "last_error": None, "updated_at": ltx.now,
                })
                for claim, result, _ in group.posts
            ], heads=heads)
            # The posts' chains' last entries, read by the same statement (PostgreSQL).
            ltx.heads_read({post_chain(post_id): head for post_id, head in heads.items()})
            for claim, result, found in group.posts:
                if claim.post_id in recorded:
                    data: dict[str, Any] = {"remote_id": result.remote_id, "url": result.url,
                                            "version": claim.version, "attempt": claim.attempt}
                    if found:  # out already, from a claim before this one: what a recovery found
                        data["found"] = True
                    await ltx.append("post.published", actor="system", account=claim.account, post=claim.post_id,
                                     data=data)
            return recorded

        return work

    async def _settle_failure(self, claim: Claim, error: AdapterError, *, retry_budget: int,
                              patient: bool = False, held: str | None = None) -> None:
        """Defer a post the platform did not take, or fail it once its retry budget is spent;
        ``patient``: a failure not the post's (nor the platform's) that spends none of it.
        ``held``: Byline held the post back before sending it (the account is marked already),
        and this is what the public log says of it; the claim is not counted among its attempts."""
        detail = error.message if not error.detail else f"{error.message}: {error.detail}"
        if held is not None:
            patient = True
        elif error.auth_failed:
            self._platforms.mark(claim.account, detail)
            if error.status == 403:  # it signs in, and lacks a permission: a probe does not tell it mended
                self._refused_for[claim.account] = detail
        elif claim.announcement:
            # Shown with the account's health; the account's posts are not held by it: the next
            # one due finds the credential working (the publisher's probe) and goes out.
            self._platforms.mark(claim.account, f"the platform refused a voice-change announcement: {detail}")
        # A broken credential holds the account's posts until it works again, and a platform
        # asking us to slow down (429) is not the post's fault: neither burns the retry budget.
        patient = patient or error.auth_failed or error.status == 429
        give_up = not error.retryable or (not patient and claim.attempt >= retry_budget)
        if error.auth_failed:
            give_up = False
        delay = error.retry_after if error.retry_after is not None else backoff_seconds(claim.attempt)
        if error.auth_failed:
            delay = max(delay, 300.0)

        async def work(ltx: LogTxn) -> None:
            row = await sql.get_post(ltx.txn, claim.post_id)
            assert row is not None
            state = State(row.state)
            if give_up:
                new_state = transition(state, Action.FAIL)
                changes: dict[str, Any] = {"state": new_state.value, "last_error": detail,
                                           "lease_until": None, "updated_at": ltx.now}
                data: dict[str, Any] = {"state": new_state.value, "error": held or public_failure(error),
                                        "attempt": claim.attempt}
                event = "post.failed"
            else:
                new_state = transition(state, Action.DEFER)
                at = ltx.now + int(delay * _SECOND)
                changes = {"state": new_state.value, "last_error": detail, "publish_at": at,
                           "lease_until": None, "updated_at": ltx.now}
                if patient:
                    # Not the post's failure (Byline held it back, the platform asked to slow
                    # down, the credential broke, Byline's own database went away): the claim's
                    # attempt is given back, so the wait leaves the whole budget for the
                    # platform's refusals of the post, as "patient" promises.
                    changes["attempts"] = claim.attempt if claim.recovering else claim.attempt - 1
                data = {"state": new_state.value, "error": held or public_failure(error), "attempt": claim.attempt,
                        "retry_at": iso(at), "credentials": "failed" if error.auth_failed else None}
                event = "post.deferred"
            if not await sql.compare_and_set(
                ltx.txn, claim.post_id, state=row.state, version=claim.version, changes=changes
            ):
                raise BylineError(Code.CONFLICT, "post changed while publishing")
            await ltx.append(event, actor="system", account=claim.account, post=claim.post_id,
                             data=data)

        logger.warning("publish_failed", post_id=claim.post_id, account=claim.account,
                       error=detail, gave_up=give_up)
        if give_up:  # its replies find that out at their time
            self._awaiting.pop(claim.post_id, None)
        await self._appender.submit(work)
        self._metrics.publish_failed(self._policies.get(claim.account), gave_up=give_up)
