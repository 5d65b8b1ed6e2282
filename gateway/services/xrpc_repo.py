"""The repository side of the XRPC surface: posts go in through the policy, reads go through.

* ``createRecord`` of an ``app.bsky.feed.post`` submits a post (``PostService.submit``) and
  answers the record's future address: ``at://<did>/app.bsky.feed.post/<rkey>`` with the same
  record key the Bluesky adapter will write it under (the ``rkey`` the client gave, a TID, kept
  with the post; else ``rkey_for`` of the post id; a key one of the account's posts has already
  is refused as a PDS refuses a record that exists, with a 500), and the CID
  of the record as it will be written (for a Bluesky account, built by its adapter exactly as
  publishing builds it). The CID is exact when the post goes out unchanged within five minutes;
  a post that waits (delay, approval) is written with the time it goes out, so its record and
  CID differ then, and a client reads the real one back (``getRecord``) once it is out.
* A reply names its parent by address: one of the account's posts Byline has not written yet
  waits for it (below); any other is read from the account's PDS as the reply is written, and
  a reply to an address that holds no post is refused with ``getRecord``'s ``RecordNotFound``
  (a PDS takes it, and the words written there later would be what it answers, which its
  approvers never saw). The parent's CID then is kept (``reply_to_cid``): deleted, or written
  again under its key, before the reply goes out, the reply fails instead.
* ``deleteRecord`` of such a record takes the post back while it waits (cancel) and deletes it
  once published. A client's key is looked up (``post_record_keys``); derived keys are not
  stored: the account's posts are searched newest first for the one whose derived key matches,
  which is quick for the posts clients delete (recent ones).
* ``applyWrites`` does the same for several creates and deletes, in order; Byline has no
  transaction across posts, so a refused write stops the batch and says which writes stand
  (keys and gates are checked for the whole batch before any post is in). A Bluesky app sends a
  thread in one call, each post under a key of its own and replying to the one before by its
  address: that reply waits for its parent as any reply to a post not out yet does
  (``reply_to_post``), and goes out pointing at the parent as it was written. A threadgate or
  postgate created with a post (same key) is kept with it and written in its commit when it
  goes out (``xrpc_gates``).
* A threadgate or postgate of a post already out, created, replaced (``putRecord``, an
  ``applyWrites#update``) or deleted under its key, as the Bluesky app does to hide a reply or
  to close replies and quotes: checked, written to the PDS at once under the account's session
  (several in one ``applyWrites``), and each change logged as ``post.gates_changed``
  (``_gates``). It may be made by a writer or the owner, on a post Byline published and has not
  deleted; a post still waiting keeps the gates it was sent with. ``putRecord`` writes nothing
  else: a post is not edited, and another record is refused as the relay refuses a write.
* Writes of other records (likes, follows, profile), and calls that would change the account,
  its credentials or its identity, are refused: every write goes through the policy, and the
  policy governs posts. Direct messages, service tokens and moderation tools are refused too.
* The reads in ``RELAYED_QUERIES`` (with GET) and ``uploadBlob`` are relayed to the account's
  PDS under the account's own session, with only the request headers in ``RELAYED_HEADERS``;
  every other method is refused and never reaches the PDS. A PDS routes method names whatever
  their case, so names are matched exactly as the lexicons write them, and another spelling
  of a method Byline knows is refused as such. For an account on another platform there is
  no PDS: ``getAuthorFeed`` and ``getPosts`` are answered from Byline's own record of what it
  published (``xrpc_reads``), and the other reads with ``MethodNotImplemented``.
* Embeds (images, link cards, quotes) are checked against their lexicons and written as the
  client built them; ``uploadBlob``'s blobs are kept by Byline until the post goes out
  (``xrpc_embeds``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Final

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from adapters.base import AdapterError, OutboundPost
from adapters.bluesky import (
    POST_COLLECTION,
    AtUri,
    BlueskyAdapter,
    XrpcRawResponse,
    XrpcStream,
    blob_cid,
    created_at_for,
    fitting_facets,
    is_tid,
    iso_datetime,
    key_refused,
    link_facets,
    may_be_derived,
    parse_datetime,
    post_record,
    quoted_ref,
    record_cid,
    rkey_for,
)
from gateway.audit.appender import LogTxn
from gateway.audit.gates import gate_settings
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.loader import LoadedPolicy
from gateway.services.announcements import record_url
from gateway.services.gate_intents import GateIntents
from gateway.services.identities import AccountHeld
from gateway.services.image_metadata import STRIPPED_TYPES, MalformedImage, displayed_size, stripped
from gateway.services.media_types import detected_type
from gateway.services.platforms import Platforms
from gateway.services.posts import PostOptions, PostService, PostView, Published, new_post_id
from gateway.services.published import PublishedPosts
from gateway.services.reply_targets import ReplyTargets
from gateway.services.xrpc_embeds import MAX_BLOB_BYTES, BlobRef, EmbedError, check_embed
from gateway.services.xrpc_facets import FacetError, check_facets, kept_facets
from gateway.services.xrpc_gates import GATES, GateError, check_gate
from gateway.services.xrpc_reads import OWN_READS, XrpcReads
from gateway.services.xrpc_sessions import AccountId, XrpcSession, XrpcSessions, xrpc_error
from gateway.storage import media as media_sql
from gateway.storage import posts as posts_sql
from gateway.storage import xrpc as sql
from gateway.storage.db import Database, Row

logger = structlog.get_logger("byline.xrpc")

MAX_WRITES: Final = 200
_SEARCH_PAGE: Final = 500
_CREATE: Final = "com.atproto.repo.applyWrites#create"
_UPDATE: Final = "com.atproto.repo.applyWrites#update"
_DELETE: Final = "com.atproto.repo.applyWrites#delete"
_SELF_LABELS: Final = "com.atproto.label.defs#selfLabels"
_CREATE_CALL: Final = "createRecord"
_PUT_CALL: Final = "putRecord"
_DELETE_CALL: Final = "deleteRecord"
_CALLS: Final = {_CREATE: _CREATE_CALL, _UPDATE: _PUT_CALL, _DELETE: _DELETE_CALL}
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_RECORD_KEY = re.compile(r"^[A-Za-z0-9._:~-]{1,512}$")
_UNPUBLISHED: Final = frozenset({"held", "scheduled", "publishing", "suggested"})
_CANCELLABLE: Final = frozenset({State.HELD, State.SCHEDULED, State.SUGGESTED, State.FAILED})
_GONE: Final = frozenset(
    {State.CANCELLED, State.DELETED, State.REJECTED, State.EXPIRED, State.DISMISSED}
)

RELAYED_QUERIES: Final = frozenset({
    # The reads Bluesky clients make, relayed with GET only, by these exact names. Left out on
    # purpose: anything that hands out or lists credentials (getServiceAuth, listAppPasswords,
    # getAccountInviteCodes, getRecommendedDidCredentials), direct messages (chat.bsky.*),
    # moderation and administration, unstable methods (app.bsky.unspecced.*), and whole-repo
    # exports. Preferences are read (clients need them to start) but never written.
    "app.bsky.actor.getPreferences", "app.bsky.actor.getProfiles", "app.bsky.actor.getSuggestions",
    "app.bsky.actor.searchActors", "app.bsky.actor.searchActorsTypeahead",
    "app.bsky.feed.describeFeedGenerator", "app.bsky.feed.getActorFeeds", "app.bsky.feed.getActorLikes",
    "app.bsky.feed.getAuthorFeed", "app.bsky.feed.getFeed", "app.bsky.feed.getFeedGenerator",
    "app.bsky.feed.getFeedGenerators", "app.bsky.feed.getLikes", "app.bsky.feed.getListFeed",
    "app.bsky.feed.getPostThread", "app.bsky.feed.getPosts", "app.bsky.feed.getQuotes",
    "app.bsky.feed.getRepostedBy", "app.bsky.feed.getSuggestedFeeds", "app.bsky.feed.getTimeline",
    "app.bsky.feed.searchPosts",
    "app.bsky.graph.getActorStarterPacks", "app.bsky.graph.getBlocks", "app.bsky.graph.getFollowers",
    "app.bsky.graph.getFollows", "app.bsky.graph.getKnownFollowers", "app.bsky.graph.getList",
    "app.bsky.graph.getListBlocks", "app.bsky.graph.getListMutes", "app.bsky.graph.getLists",
    "app.bsky.graph.getMutes", "app.bsky.graph.getRelationships", "app.bsky.graph.getStarterPack",
    "app.bsky.graph.getStarterPacks", "app.bsky.graph.getSuggestedFollowsByActor",
    "app.bsky.graph.searchStarterPacks",
    "app.bsky.labeler.getServices",
    "app.bsky.notification.getPreferences", "app.bsky.notification.getUnreadCount",
    "app.bsky.notification.listNotifications",
    "com.atproto.identity.resolveDid", "com.atproto.identity.resolveHandle",
    "com.atproto.identity.resolveIdentity",
    "com.atproto.label.queryLabels",
    "com.atproto.repo.describeRepo", "com.atproto.repo.getRecord", "com.atproto.repo.listRecords",
    "com.atproto.sync.getBlob",
})
"""Reads relayed to the account's PDS; ``app.bsky.actor.getProfile`` is relayed by its own handler."""

STREAMED_QUERIES: Final = frozenset({"com.atproto.sync.getBlob"})
"""Relayed reads whose answer may be large (a blob: an image, a video), passed on as it arrives
(``XrpcRepo.relay_stream``) instead of held whole."""

RELAYED_PROCEDURES: Final = frozenset({
    # Clients upload an image before the post that shows it. A blob no record refers to is
    # kept by the PDS only for a while and then dropped: an upload publishes nothing.
    "com.atproto.repo.uploadBlob",
})
"""The one write relayed to the account's PDS."""

RELAYED_HEADERS: Final = ("Accept", "Accept-Language", "Content-Type", "atproto-accept-labelers")
"""Request headers a relayed call carries; every other is dropped. ``atproto-proxy`` above all:
it names the service the PDS forwards the call to with a token signed for the account, and the
client must not choose that. ``atproto-accept-labelers`` only picks whose labels the answer
shows, and stays."""

_BY_LOWER: Final = {name.lower(): name for name in RELAYED_QUERIES | RELAYED_PROCEDURES}

# Why other methods are not relayed (the first prefix that matches, in lower case, decides).
_NOT_RELAYED: Final = (
    ("chat.bsky.", "a posting tool does not get the account's direct messages"),
    ("tools.ozone.", "moderation tools are not for posting tools"),
    ("com.atproto.admin.", "administration is not for posting tools"),
    ("com.atproto.server.getserviceauth", "a service token would act for the account without Byline"),
)
_WRITE_NOT_RELAYED: Final = (
    "it would change the account, its credentials or its repository outside its policy: every write "
    "goes through the account's policy, and the policy governs posts"
)
_READ_NOT_RELAYED: Final = "it is not one of the reads Byline relays"


class _Lenient(BaseModel):
    # Lexicon objects are open: fields Byline does not know are accepted (and not written).
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True, strict=True)


class StrongRef(_Lenient):
    """``com.atproto.repo.strongRef``."""

    uri: str = Field(max_length=8192)
    cid: str = Field(max_length=256)


class ReplyRef(_Lenient):
    """``app.bsky.feed.post#replyRef``."""

    root: StrongRef
    parent: StrongRef


class SelfLabel(_Lenient):
    """One ``com.atproto.label.defs#selfLabel``."""

    val: str = Field(max_length=128)


class SelfLabels(_Lenient):
    """``com.atproto.label.defs#selfLabels``."""

    values: list[SelfLabel] = Field(max_length=10)


class PostRecord(_Lenient):
    """The parts of an ``app.bsky.feed.post`` record that Byline reads."""

    type_: str | None = Field(default=None, alias="$type")
    text: str = Field(max_length=100_000)
    created_at: str = Field(alias="createdAt", max_length=64)
    langs: list[str] | None = Field(default=None, max_length=3)
    reply: ReplyRef | None = None
    labels: SelfLabels | None = None
    embed: dict[str, Any] | None = None
    facets: list[Any] | None = None


def _invalid(message: str) -> BylineError:
    return xrpc_error(Code.VALIDATION, "InvalidRequest", message)


def _invalid_record(message: str) -> BylineError:
    return _invalid(f"Invalid {POST_COLLECTION} record: {message}")


def _check_replies(session: XrpcSession, posts: list[tuple[str | None, PostRecord]]) -> None:
    """Refuse a post of a batch (or a single post under a key of its own) that replies to
    itself or to a post of the batch written after it: it could only go out before its parent,
    to a parent the PDS does not have yet."""
    prefix = f"at://{session.did}/{POST_COLLECTION}/"
    at = {rkey: n for n, (rkey, _) in enumerate(posts) if rkey is not None}
    for n, (_, record) in enumerate(posts):
        if record.reply is None:
            continue
        for part, ref in (("parent", record.reply.parent), ("root", record.reply.root)):
            later = at.get(ref.uri.removeprefix(prefix)) if ref.uri.startswith(prefix) else None
            if later is not None and later >= n:
                raise _invalid_record(
                    f"reply.{part} names {'this post itself' if later == n else 'a post written after it'}: "
                    "a post replies to one written before it")


def parse_post_record(value: Any) -> PostRecord:
    """A post record as a client sent it, or the error a PDS gives for it."""
    if not isinstance(value, dict):
        raise _invalid_record("Record must be an object")
    try:
        record = PostRecord.model_validate(value)
    except ValidationError as exc:
        summary = "; ".join(
            f"{'/'.join(str(p) for p in err['loc']) or 'record'}: {err['msg']}" for err in exc.errors()
        )
        raise _invalid_record(summary) from None
    if record.type_ not in (None, POST_COLLECTION):
        raise _invalid_record(f"Record/$type must be {POST_COLLECTION}")
    if parse_datetime(record.created_at) is None:
        raise _invalid_record("Record/createdAt must be an RFC 3339 datetime with a time zone")
    for lang in record.langs or []:
        if not _LANG.match(lang):
            raise _invalid_record(f"Record/langs: {lang!r} is not a language tag")
    if record.reply is not None and not record.reply.parent.uri.startswith("at://"):
        raise _invalid_record("Record/reply/parent/uri must be an at:// URI")
    if record.labels is not None and record.labels.model_extra and \
            record.labels.model_extra.get("$type", _SELF_LABELS) != _SELF_LABELS:
        raise _invalid_record(f"Record/labels/$type must be {_SELF_LABELS}")
    if record.embed is not None:
        try:
            check_embed(record.embed)
        except EmbedError as exc:
            raise _invalid_record(f"Record/{exc}") from None
    if record.facets is not None:
        try:
            check_facets(record.facets, record.text)
        except FacetError as exc:
            raise _invalid_record(f"Record/{exc}") from None
    return record


def _check_rkey(rkey: str) -> None:
    """Refuse a record key a PDS refuses for a post, as it words it: posts are keyed by TIDs."""
    if not _RECORD_KEY.match(rkey) or rkey in (".", ".."):
        raise _invalid(f"Invalid record key (got {json.dumps(rkey)})")
    if not is_tid(rkey):
        raise _invalid(f"Invalid record key for {POST_COLLECTION}: Invalid TID string (got {json.dumps(rkey)})")
    if key_refused(rkey):
        raise _invalid("Unacceptable slur in record key")


def _exists(session: XrpcSession, rkey: str, why: str) -> BylineError:
    """A record key taken already: a PDS answers a create where a record exists with a 500."""
    return xrpc_error(
        Code.CONFLICT, "InternalServerError",
        f"Record already exists: at://{session.did}/{POST_COLLECTION}/{rkey} ({why}); "
        "a new post needs a new rkey",
    )


def _options(record: PostRecord) -> PostOptions:
    created = parse_datetime(record.created_at)
    assert created is not None  # parse_post_record checked it
    return PostOptions(
        reply_to=record.reply.parent.uri if record.reply else None,
        sensitive=bool(record.labels and record.labels.values),
        language=record.langs[0] if record.langs else None,
        # Normalised to the form a PDS surely accepts; the CID is computed over this form.
        created_at=iso_datetime(created),
        self_labels=record.model_dump(by_alias=True, exclude_unset=True)["labels"] if record.labels else None,
        facets=kept_facets(record.facets, record.text) if record.facets else None,
    )


def _attaching(media_ids: tuple[str, ...]) -> Callable[[LogTxn, str], Awaitable[None]]:
    """The step that gives a post the kept blobs its embed shows, in the transaction that
    stores it; a blob another post took meanwhile refuses the post, and nothing of it is stored."""

    async def attach(ltx: LogTxn, post_id: str) -> None:
        refused = await media_sql.attach(ltx.txn, list(media_ids), post_id=post_id)
        if refused:
            raise _invalid_record(f"Record/embed: another post took the blob kept as {refused[0]} meanwhile")

    return attach


def _json(status: int, body: dict[str, Any]) -> XrpcRawResponse:
    return XrpcRawResponse(
        status=status, headers={"Content-Type": "application/json"},
        body=json.dumps(body, ensure_ascii=False).encode("utf-8"),
    )


def _pds_answer(answer: XrpcRawResponse) -> dict[str, Any]:
    """The PDS's JSON answer to a write; its refusal as the error it gave (a 4xx, and the 500
    of a record that exists, by its own name), else ``UpstreamFailure``."""
    try:
        body = json.loads(answer.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        body = {}
    if answer.status == 200:
        return body
    name, message = body.get("error"), body.get("message")
    name = name if isinstance(name, str) and name else "InvalidRequest"
    message = message if isinstance(message, str) and message else f"the PDS answered {answer.status}"
    if answer.status == 400:
        raise xrpc_error(Code.VALIDATION, name, message)
    if answer.status == 500:
        raise xrpc_error(Code.CONFLICT, "InternalServerError", message)
    raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", f"the PDS answered {answer.status}: {message}")


@dataclass(frozen=True, kw_only=True)
class _Write:
    """One parsed write of ``applyWrites``: a post's create (``record``, with the key its client
    chose, if any, and the gates sent for it), a gate's create (``gate``, under its post's key),
    or a post's delete (``rkey`` alone)."""

    record: PostRecord | None = None
    rkey: str | None = None
    gate: tuple[str, Any] | None = None
    call: str = _CREATE_CALL
    """For a gate: the record call it is (``createRecord``, ``putRecord``, ``deleteRecord``)."""
    gates: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class _GateChange:
    """A change of a published post's threadgate or postgate, checked: the post, who may make
    it, and the record to write (None to delete it)."""

    call: str
    collection: str
    gated: Published
    remote_id: str
    value: dict[str, Any] | None


class Turns:
    """One lock a key, made when first wanted and dropped once nobody holds or waits for it
    (a lock a post ever changed would be kept for ever)."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def each(self, keys: list[str]) -> AsyncIterator[None]:
        """Hold the lock of each of ``keys``, taken in the order given: sorted, two holders of
        overlapping keys take them in the same order, so neither waits on the other for ever."""
        wanted: list[str] = []
        held: list[str] = []
        try:
            for key in keys:
                lock, users = self._locks.get(key, (asyncio.Lock(), 0))
                self._locks[key] = (lock, users + 1)
                wanted.append(key)
                await lock.acquire()
                held.append(key)
            yield
        finally:
            for key in reversed(wanted):
                lock, users = self._locks[key]
                if key in held:
                    lock.release()
                if users > 1:
                    self._locks[key] = (lock, users - 1)
                else:
                    del self._locks[key]


class XrpcRepo:
    """Post records through the policy; everything else relayed to the account's PDS."""

    def __init__(
        self,
        *,
        db: Database,
        posts: PostService,
        published: PublishedPosts,
        platforms: Platforms,
        sessions: XrpcSessions,
        clock: Clock,
        intents: GateIntents,
    ) -> None:
        self._db = db
        self._intents = intents
        self._posts = posts
        self._published = published
        self._platforms = platforms
        self._replies = ReplyTargets(db=db, posts=posts, platforms=platforms)
        self._sessions = sessions
        self._clock = clock
        self._gate_turns = Turns()
        self._reads = XrpcReads(posts=posts, sessions=sessions, find=self._find, public_url=platforms.public_url)

    # -- writes -----------------------------------------------------------------------------

    async def create_record(
        self, session: XrpcSession, *, repo: str, collection: str, rkey: str | None,
        record: Any, swap_commit: str | None,
    ) -> dict[str, Any]:
        """``createRecord``: a post submitted through the policy; its future uri and cid. Of a
        threadgate or postgate, under the key of a post already out: written now (``_gates``)."""
        loaded = self._own_repo(session, repo)
        if swap_commit is not None:
            raise _invalid("swapCommit is not supported: a post is written when its policy lets it go")
        if collection in GATES:
            return await self._gates(session, loaded, [(1, _CREATE_CALL, collection, rkey, record)])
        self._check_collection(collection)
        parsed = parse_post_record(record)
        if rkey is not None:
            _check_rkey(rkey)
            await self._check_free(session, [rkey])
            _check_replies(session, [(rkey, parsed)])
        return await self._create(session, loaded, parsed, rkey=rkey)

    async def put_record(
        self, session: XrpcSession, *, repo: str, collection: str, rkey: str, record: Any,
        swap_record: str | None,
    ) -> dict[str, Any]:
        """``putRecord``: of a threadgate or postgate under the key of a post already out, as
        the Bluesky app changes who may reply (or hides a reply) and who may quote: written now
        (``_gates``). Posts are not edited, and nothing else is written."""
        loaded = self._own_repo(session, repo)
        if collection == POST_COLLECTION:
            raise _invalid("Bluesky posts are not edited: delete the post and write a new one")
        if collection not in GATES:
            refusal = relay_refusal("POST", "com.atproto.repo.putRecord")
            assert refusal is not None
            raise refusal
        return await self._gates(session, loaded, [(1, _PUT_CALL, collection, rkey, record)],
                                 swap_record=swap_record)

    async def delete_record(
        self, session: XrpcSession, *, repo: str, collection: str, rkey: str, swap_record: str | None = None,
    ) -> dict[str, Any]:
        """``deleteRecord``: a waiting post is taken back, a published one deleted; a threadgate
        or postgate of a post already out is deleted now (``_gates``)."""
        loaded = self._own_repo(session, repo)
        if collection in GATES:
            return await self._gates(session, loaded, [(1, _DELETE_CALL, collection, rkey, None)],
                                     swap_record=swap_record)
        self._check_collection(collection)
        if swap_record is not None:
            raise _invalid("swapRecord is not supported for posts by Byline")
        await self._delete(session, rkey)
        return {}

    async def apply_writes(self, session: XrpcSession, *, repo: str, writes: list[Any]) -> dict[str, Any]:
        """``applyWrites``: post creates and deletes, in order."""
        loaded = self._own_repo(session, repo)
        if not writes:
            raise _invalid("writes must not be empty")
        if len(writes) > MAX_WRITES:
            raise _invalid(f"Too many writes. Max: {MAX_WRITES}")
        parsed = [self._parse_write(n, write) for n, write in enumerate(writes, start=1)]
        new_keys = {w.rkey for w in parsed if w.record is not None}
        changes = [(n, w) for n, w in enumerate(parsed, start=1)
                   if w.gate is not None and (w.call != _CREATE_CALL or w.rkey not in new_keys)]
        if changes:
            if len(changes) < len(parsed):
                n, write = changes[0]
                raise _invalid(
                    f"writes/{n}: Byline writes an {write.gate[0] if write.gate else 'interaction setting'} only "
                    "with its post, created in the same applyWrites under the same rkey, or, for a post "
                    "already out, on its own (putRecord, deleteRecord, or an applyWrites of such changes only)"
                )
            return await self._gates(session, loaded, [
                (n, w.call, w.gate[0], w.rkey, w.gate[1]) for n, w in changes if w.gate is not None
            ], batch=True)
        parsed = self._with_gates(session, loaded, parsed)
        # Checked before any post is in: a PDS writes all of a batch or none of it.
        await self._check_free(session, [w.rkey for w in parsed if w.record is not None and w.rkey is not None])
        await self._check_posts(session, loaded, parsed)
        results: list[dict[str, Any]] = []
        for n, write in enumerate(parsed, start=1):
            try:
                if write.record is not None:
                    created = await self._create(session, loaded, write.record, rkey=write.rkey, gates=write.gates)
                    results.append({"$type": "com.atproto.repo.applyWrites#createResult", **created})
                elif write.gate is not None:
                    # Kept with its post (above), written with it: its address and CID are known now.
                    collection, value = write.gate
                    results.append({
                        "$type": "com.atproto.repo.applyWrites#createResult",
                        "uri": f"at://{session.did}/{collection}/{write.rkey}", "cid": record_cid(value),
                        "validationStatus": "valid",
                    })
                else:
                    assert write.rkey is not None
                    await self._delete(session, write.rkey)
                    results.append({"$type": "com.atproto.repo.applyWrites#deleteResult"})
            except BylineError as exc:
                if n == 1:
                    raise
                raise BylineError(
                    exc.code,
                    f"write {n} of {len(parsed)} was refused ({n - 1} before it stand): {exc.message}",
                    **exc.details,
                ) from None
        return {"results": results}

    # -- interaction settings of posts already out ----------------------------------------------

    async def _gates(
        self, session: XrpcSession, loaded: LoadedPolicy, writes: list[tuple[int, str, str, Any, Any]], *,
        swap_record: str | None = None, batch: bool = False,
    ) -> dict[str, Any]:
        """Create, replace or delete the threadgates and postgates of published posts of the
        account, as the Bluesky app does once a post is out ("Edit interaction settings",
        "Hide reply"): each ``(n, call, collection, rkey, record)`` is checked first (a post
        Byline published and has not deleted, someone who may post on the account, the record
        against its lexicon, ``post`` naming that post), then all are written to the PDS under
        the account's session in one call, and each is recorded in the log
        (``post.gates_changed``). The answer is the PDS's. A refusal changes nothing, here or
        there; so does a change past the post's budget (``CHANGES_PER_HOUR``), refused as a PDS
        refuses one write too many: 429 ``RateLimitExceeded``, saying when. A change the log does
        not take, for whatever reason, is put back on the PDS (``_put_back``): none stays unlogged.
        Each is written down before the PDS is asked (``gate_intents``), so that one whose
        put-back fails, or whose gateway stops before the log takes it, is put back by a
        reconciler.
        A gate of a post
        still waiting is not changed: it goes out as it was sent with the post (its options are
        part of what was approved, ``content_sha256``)."""
        def where(n: int) -> str:
            return f"writes/{n}: " if batch else ""

        if loaded.policy.platform != "bluesky":
            n, _, collection, _, _ = writes[0]
            raise _invalid(
                f"{where(n)}{collection} sets who may reply or quote on Bluesky; {loaded.policy.account} "
                f"is on {loaded.policy.platform}: its posts go out with replies and quotes open to everybody"
            )
        changes = [await self._gate_change(session, where(n), call, collection, rkey, value)
                   for n, call, collection, rkey, value in writes]
        by_post = Counter(c.gated.record.id for c in changes)
        async with self._gate_turns.each(sorted(by_post)):
            # In turn per post, counted and written: two changes at once cannot both take its last one.
            for change in {c.gated.record.id: c for c in changes}.values():
                await self._posts.gates_budget(change.gated, adding=by_post[change.gated.record.id])
            return await self._write_gates(session, loaded, writes, changes, swap_record=swap_record, batch=batch)

    async def _write_gates(
        self, session: XrpcSession, loaded: LoadedPolicy, writes: list[tuple[int, str, str, Any, Any]],
        changes: list[_GateChange], *, swap_record: str | None, batch: bool,
    ) -> dict[str, Any]:
        """The checked ``changes`` written to the PDS and logged (see ``_gates``)."""
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, BlueskyAdapter):  # pragma: no cover - the platform says bluesky
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", "the account has no Bluesky adapter")
        try:
            # Who may reply to or quote the account's posts is the account's to say: not while
            # another policy file speaks for its platform account, as for its posts.
            await self._platforms.cleared(loaded, adapter=adapter)
        except AccountHeld as exc:
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure",
                             f"the {writes[0][2]} was not written: {exc.message}") from None
        except AdapterError as exc:
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None
        # Each gate's settled changes counted as the PDS is read: one logged or put back after it
        # may have changed the gate after the read, which then does not say what the log does
        # (``write_ahead``).
        turns = await self._intents.turns((c.gated.record.id, c.collection) for c in changes)
        try:
            # What each change replaces, read first: put back should the change not be kept.
            held = {(c.remote_id, c.collection): await adapter.gate(c.remote_id, c.collection) for c in changes}
        except AdapterError as exc:
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None
        # Written down before the PDS is asked, or not asked at all (the database's error): a
        # change that reaches the PDS and is then neither logged nor put back by this request
        # (the put-back refused, the gateway gone) is put back by a reconciler (``gate_intents``).
        stored = await self._intents.write_ahead(account=loaded.policy.account, actor=session.caller.user, changes=[
            (c.gated.record.id, c.remote_id, c.collection, held[(c.remote_id, c.collection)], c.value) for c in changes
        ], turns=turns)
        intents = [i.id for i in stored]
        # Where changes of before were left on a gate, what the log last said of it is what a
        # change not kept puts back (``GateIntents.write_ahead``).
        held |= {(i.remote_id, i.collection): i.held for i in stored}
        try:
            answer = await adapter.write_gates(
                [(c.call, c.remote_id, c.collection, c.value) for c in changes], swap_record=swap_record
            )
        except AdapterError as exc:
            # Sent, perhaps taken, not answered: the reconcilers find out, and put back what was.
            await self._intents.release(intents)
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None
        if 400 <= answer.status <= 500:
            # Refused by the PDS itself (its 500 names a record that exists): it writes all of a
            # call or none of it.
            await self._intents.drop(intents, account=loaded.policy.account)
        elif answer.status != 200:
            # A proxy's 502, 503, 504: the write may have been made. The reconcilers find out.
            await self._intents.release(intents)
        body = _pds_answer(answer)
        results = body.get("results") if batch else [body]
        if not isinstance(results, list) or len(results) != len(changes):
            results = [{}] * len(changes)  # written all the same; the log names no CID it was not given
        cids = [result.get("cid") if isinstance(result, dict) and change.value is not None else None
                for change, result in zip(changes, results, strict=True)]
        for n, (change, cid) in enumerate(zip(changes, cids, strict=True)):
            try:
                # Counted again as it is recorded, with those of its post still to come: another
                # gateway may have taken the post's last changes since ``gates_budget``.
                await self._posts.record_gates_changed(
                    session.caller, change.gated, collection=change.collection,
                    cid=cid if isinstance(cid, str) else None, settings=gate_settings(change.collection, change.value),
                    adding=sum(c.gated.record.id == change.gated.record.id for c in changes[n:]), intent=intents[n],
                )
            except Exception as exc:
                # Not in the log, so not kept, whatever kept the log from taking it (the caller's
                # role gone, the post deleted, the database away, a crash): a change that stayed
                # would be settings changed with no record of who changed them.
                refused = isinstance(exc, BylineError)  # else an outage or a crash, not a refusal
                gone = isinstance(exc, BylineError) and exc.code in (Code.INVALID_TRANSITION, Code.CONFLICT)
                (logger.info if refused else logger.warning)(
                    "xrpc_gate_not_recorded", post_id=change.gated.record.id, gate=change.collection,
                    error=exc.code.value if isinstance(exc, BylineError) else type(exc).__name__)
                unsettled = list(zip(changes[n:], intents[n:], strict=True))
                # Put back only with a claim on its intent won: a change of the same gate logged
                # meanwhile by another gateway says what to put back (its record, which this one
                # may have written too: same CID), and a reconciler that claimed it puts it back.
                # No claim (the database away): what this request found may be undone by then, and
                # a swap on its CID does not tell; its intents are the reconcilers' (written down).
                mine = await self._intents.claim(i for _, i in unsettled)
                if mine is None:
                    await self._intents.release(i for _, i in unsettled)
                else:
                    back = {(c.remote_id, c.collection): mine[i].held for c, i in unsettled if i in mine}
                    left = await self._put_back(adapter, changes, cids, n, back, gone=gone)
                    ours = [(c, i) for c, i in unsettled if i in mine]
                    await self._intents.drop((i for c, i in ours if (c.remote_id, c.collection) not in left),
                                             account=loaded.policy.account)
                    await self._intents.release(i for c, i in ours if (c.remote_id, c.collection) in left)
                if gone:
                    # Deleted while the gate was written: a gate left would rule a post that is gone.
                    raise _invalid(f"the post {change.remote_id} was deleted meanwhile; its {change.collection} "
                                   "is not kept") from None
                if type(exc) is BylineError:
                    raise BylineError(exc.code, f"{exc.message}: its {change.collection} is not kept",
                                      **exc.details) from None
                raise  # the database gone, or a crash: answered as any call that meets it
            logger.info("xrpc_gate_changed", post_id=change.gated.record.id, gate=change.collection,
                        call=change.call)
        return body

    async def _put_back(
        self, adapter: BlueskyAdapter, changes: list[_GateChange], cids: list[Any], n: int,
        held: dict[tuple[str, str], dict[str, Any] | None], *, gone: bool,
    ) -> set[tuple[str, str]]:
        """Undo on the PDS every change written and not recorded, from ``changes[n]`` on: each
        gate back as it was (``held``), or none where the post of ``changes[n]`` was deleted
        meanwhile (``gone``). A gate a recorded change set stays as the log says, and one the
        change left as it was (none there, none written) is not written again. The gates
        (post, collection) whose put-back the PDS did not take: left to the reconcilers."""
        recorded = {(c.remote_id, c.collection) for c in changes[:n]}
        written = {(c.remote_id, c.collection): (c.value, cid) for c, cid in zip(changes, cids, strict=True)}
        left: set[tuple[str, str]] = set()
        for key, before in held.items():
            if key in recorded:
                continue
            back_to = None if gone and key[0] == changes[n].remote_id else before
            value, cid = written[key]
            if back_to == value:
                continue
            if not await self._take_back(adapter, *key, back_to=back_to, over=cid if isinstance(cid, str) else None,
                                         created=value is None):
                left.add(key)
        return left

    async def _gate_change(
        self, session: XrpcSession, where: str, call: str, collection: str, rkey: Any, value: Any
    ) -> _GateChange:
        """One change of a published post's gate, checked (see ``_gates``), or its refusal."""
        if not isinstance(rkey, str):
            raise _invalid(f"{where}a {collection} goes with its post: give it the post's rkey")
        post_uri = f"at://{session.did}/{POST_COLLECTION}/{rkey}"
        missing = _invalid(
            f"{where}Could not locate record: {post_uri} is not a post made through Byline, and Byline "
            f"writes an {collection} only for its own posts"
        )
        row = await self._find(session.account, rkey)
        if row is None:
            raise missing
        try:
            gated = await self._posts.gateable(session.caller, row["id"])
        except BylineError as exc:
            if exc.code is Code.NOT_FOUND:
                raise missing from None
            if exc.code is not Code.INVALID_TRANSITION:
                raise BylineError(exc.code, f"{where}{exc.message}", **exc.details) from None
            state = exc.details.get("state")
            if state in _UNPUBLISHED or state == State.FAILED.value:
                raise _invalid(
                    f"{where}{post_uri} has not gone out yet ({state}): Byline writes an {collection} only with "
                    "its post, as sent with it in the same applyWrites; change it once the post is out"
                ) from None
            raise _invalid(f"{where}{post_uri} is {state}: it has no {collection} to change") from None
        if gated.record.remote_id != post_uri:
            raise _invalid(f"{where}{post_uri} went out as {gated.record.remote_id}: name the post by that address")
        checked: dict[str, Any] | None = None
        if call != _DELETE_CALL:
            try:
                checked = check_gate(collection, value, post_uri=post_uri)
            except GateError as exc:
                raise _invalid(f"{where}Invalid {collection} record: {exc}") from None
        return _GateChange(call=call, collection=collection, gated=gated, remote_id=post_uri, value=checked)

    async def _take_back(
        self, adapter: BlueskyAdapter, remote_id: str, collection: str, *, back_to: dict[str, Any] | None,
        over: str | None = None, created: bool = False,
    ) -> bool:
        """Best effort: the post's gate ``collection`` put back to ``back_to``, or deleted (None:
        a post deleted meanwhile, or one that had none), after a change that is not kept. Only
        over what the change wrote: the record with CID ``over``, or none where it deleted one
        (``created``: the old record is created again). Another gateway's change made since,
        recorded in the log, is not undone: the PDS refuses the swap, and it stays. False when
        the PDS did not take it (down, refusing, not answering): the change's intent is left to
        the reconcilers, which try again."""
        if created:
            call, swap = _CREATE_CALL, None
        else:
            call, swap = (_DELETE_CALL if back_to is None else _PUT_CALL), over
        try:
            answer = await adapter.write_gates([(call, remote_id, collection, back_to)], swap_record=swap)
        except AdapterError as exc:
            logger.warning("xrpc_gate_left", remote_id=remote_id, gate=collection, error=exc.message)
            return False
        if answer.status == 200:
            return True
        try:
            said = json.loads(answer.body)
        except ValueError:
            said = None
        if isinstance(said, dict) and said.get("error") == "InvalidSwap":
            # Not what the change wrote any more: changed since (by another gateway, which logged
            # it) or deleted with its post. Theirs stands.
            logger.info("xrpc_gate_changed_since", remote_id=remote_id, gate=collection)
            return True
        logger.warning("xrpc_gate_left", remote_id=remote_id, gate=collection,
                       error=f"the PDS answered {answer.status}: {answer.body[:200].decode('utf-8', 'replace')}")
        return False

    def _parse_write(self, n: int, write: Any) -> _Write:
        if not isinstance(write, dict):
            raise _invalid(f"writes/{n}: must be an object")
        kind = write.get("$type")
        collection = write.get("collection")
        rkey = write.get("rkey")
        # Looked up in sets below, where a list or an object would be a TypeError: worded as a
        # PDS's lexicon check words them (counting writes from 0).
        if not isinstance(kind, str):
            raise _invalid(f'Input/writes/{n - 1} must be an object which includes the "$type" property')
        if not isinstance(collection, str):
            raise _invalid(f"Input/writes/{n - 1}/collection must be a string")
        if kind in _CALLS and collection in GATES:
            if not isinstance(rkey, str):
                raise _invalid(f"writes/{n}: a {collection} goes with its post: give it the post's rkey")
            return _Write(rkey=rkey, gate=(collection, write.get("value")), call=_CALLS[kind])
        if kind == _UPDATE:
            raise _invalid(f"writes/{n}: Bluesky posts are not edited: delete the post and write a new one")
        if kind not in (_CREATE, _DELETE):
            raise _invalid(f"writes/{n}: $type must be {_CREATE}, {_UPDATE} or {_DELETE}")
        self._check_collection(collection)
        if kind == _DELETE:
            if not isinstance(rkey, str):
                raise _invalid(f"writes/{n}: rkey must be a string")
            return _Write(rkey=rkey)
        if rkey is not None:
            if not isinstance(rkey, str):
                raise _invalid(f"writes/{n}: rkey must be a string")
            _check_rkey(rkey)
        return _Write(record=parse_post_record(write.get("value")), rkey=rkey)

    def _with_gates(self, session: XrpcSession, loaded: LoadedPolicy, writes: list[_Write]) -> list[_Write]:
        """The batch with each gate checked and given to the post it goes with (the post created
        in the same batch under its key); the gates' own writes stay, for their answers."""
        posts: dict[str, int] = {}
        for n, write in enumerate(writes):
            if write.record is not None and write.rkey is not None:
                if write.rkey in posts:
                    raise _exists(session, write.rkey, f"writes/{n + 1} creates it a second time")
                posts[write.rkey] = n
        out = list(writes)
        for n, write in enumerate(writes, start=1):
            if write.gate is None:
                continue
            collection, value = write.gate
            assert write.rkey is not None
            at = posts.get(write.rkey)
            assert at is not None, "a gate without its post in the batch is a change (apply_writes)"
            if loaded.policy.platform != "bluesky":
                raise _invalid(
                    f"writes/{n}: {collection} sets who may reply or quote on Bluesky; {loaded.policy.account} "
                    f"is on {loaded.policy.platform}: post with replies and quotes open to everybody"
                )
            post_uri = f"at://{session.did}/{POST_COLLECTION}/{write.rkey}"
            try:
                checked = check_gate(collection, value, post_uri=post_uri)
            except GateError as exc:
                raise _invalid(f"writes/{n}: Invalid {collection} record: {exc}") from None
            post = out[at]
            if collection in post.gates:
                raise _exists(session, write.rkey, f"writes/{n} creates a second {collection} for it")
            out[at] = replace(post, gates={**post.gates, collection: checked})
            out[n - 1] = replace(write, gate=(collection, checked))
        return out

    async def _check_free(self, session: XrpcSession, rkeys: list[str]) -> None:
        """Refuse record keys a post of the account has already, as a PDS refuses a record
        where one exists."""
        if not rkeys:
            return
        async with self._db.read() as txn:
            taken = await sql.record_keys_taken(txn, account=session.account, rkeys=rkeys)
        for rkey in rkeys:
            if rkey in taken or await self._find(session.account, rkey) is not None:
                raise _exists(session, rkey, "a post made through Byline has it")

    async def _check_posts(self, session: XrpcSession, loaded: LoadedPolicy, writes: list[_Write]) -> None:
        """Refuse the batch, before any of its posts is in, for any post of it the policy or
        the platform would refuse (its words' length with the disclosure line, a rule that
        blocks it, an embed), a blob two of its posts show, and a reply to a post of the batch
        written after it, or to itself: the Bluesky app sends a thread in one ``applyWrites``,
        and half of one, published, would make its retry fail on keys already taken."""
        creates = [(n, w) for n, w in enumerate(writes, start=1) if w.record is not None]
        _check_replies(session, [(w.rkey, w.record) for _, w in creates if w.record is not None])
        batch = {f"at://{session.did}/{POST_COLLECTION}/{w.rkey}" for _, w in creates if w.rkey is not None}
        shown: set[str] = set()
        for n, write in creates:
            record = write.record
            assert record is not None
            try:
                parent = record.reply.parent.uri if record.reply is not None else None
                if parent is not None and parent not in batch and \
                        await self._unpublished_parent(session, parent) is None:
                    await self._parent_cid(loaded, parent)
                options = await self._with_embed(session, loaded, record, _options(record))
                if shown & set(options.media_ids):
                    raise _invalid_record("a blob shows in one post only: upload it again for another")
                shown.update(options.media_ids)
                await self._posts.check_submission(session.caller, account=session.account, text=record.text,
                                                   options=options)
            except BylineError as exc:
                if exc.code in (Code.TEXT_TOO_LONG, Code.TEXT_EMPTY, Code.VALIDATION) and "xrpc" not in exc.details:
                    exc = _invalid_record(exc.message)  # as createRecord answers it
                raise BylineError(exc.code, f"writes/{n}: {exc.message}; nothing of this batch was written",
                                  **exc.details) from None

    async def _create(
        self, session: XrpcSession, loaded: LoadedPolicy, record: PostRecord, *, rkey: str | None = None,
        gates: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        options = replace(_options(record), record_key=rkey, gates=dict(gates) if gates else None)
        if record.reply is not None:
            waited = await self._unpublished_parent(session, record.reply.parent.uri)
            if waited is not None:
                # A reply to a post of this account Byline answered for and has not written yet:
                # it goes out after it, to it, as the Mastodon API's replies do (see the
                # publisher); written now, the PDS would not find its parent.
                options = replace(options, reply_to=None, reply_to_post=waited)
            else:
                options = await self._parent(loaded, options)
        options = await self._with_embed(session, loaded, record, options)
        attach = _attaching(options.media_ids) if record.embed is not None else None

        async def alongside(ltx: LogTxn, post_id: str) -> None:
            # The key is the post's in the transaction that stores it: of two posts given one
            # key at once, the second is refused and nothing of it is stored.
            if rkey is not None and not await sql.keep_record_key(
                ltx.txn, account=session.account, rkey=rkey, post_id=post_id
            ):
                raise _exists(session, rkey, "a post made through Byline has it")
            if attach is not None:
                await attach(ltx, post_id)

        try:
            post = await self._posts.submit(
                session.caller, account=session.account, text=record.text, options=options,
                alongside=alongside,
            )
        except BylineError as exc:
            if exc.code in (Code.TEXT_TOO_LONG, Code.TEXT_EMPTY, Code.VALIDATION):
                raise _invalid_record(exc.message) from None
            raise
        logger.info("xrpc_post_submitted", post_id=post.id, state=post.state, client_rkey=rkey is not None)
        return {
            "uri": f"at://{session.did}/{POST_COLLECTION}/{rkey or rkey_for(post.id)}",
            "cid": await self._cid(loaded, post, options, record),
            "validationStatus": "valid",
        }

    async def _with_embed(
        self, session: XrpcSession, loaded: LoadedPolicy, record: PostRecord, options: PostOptions
    ) -> PostOptions:
        """``options`` with the record's embed and the kept copies of the blobs it shows; the
        error a PDS gives for an embed Byline does not carry."""
        if record.embed is None:
            return options
        if loaded.policy.platform != "bluesky":
            raise _invalid_record(
                f"Byline publishes embeds to Bluesky accounts only; {loaded.policy.account} is on "
                f"{loaded.policy.platform}: post the text alone"
            )
        media_ids = await self._blob_media(session, check_embed(record.embed))
        quote = quoted_ref(record.embed)
        waited = await self._unpublished_parent(session, quote[0]) if quote is not None else None
        if quote is not None and waited is None:
            options = await self._replies.bluesky_quoted(loaded, options, *quote)
        elif waited is not None:
            # A post of the account's not yet out is quoted at the address Byline answered for it:
            # the quote goes out after it, and only with the words it has now (its version),
            # which are those the quote's approvers see it quote (``PostOptions.quote_of_post``).
            async with self._db.read() as txn:
                quoted = await posts_sql.get_post(txn, waited)
                text = None if quoted is None else await posts_sql.version_text(txn, waited, quoted.version)
            if quoted is None or quoted.state not in _UNPUBLISHED:  # gone out or ended meanwhile
                raise _invalid_record(f"Record/embed: the post quoted, {waited}, is no longer waiting to go "
                                      "out: quote it again")
            # Its words as they are now, which the quote goes out with or not at all, for its
            # approvers to read: kept with the quote, as a published post's would be from the PDS.
            options = replace(options, quote_of_post=waited, quote_of_version=quoted.version, quote_text=text)
        return replace(options, embed=record.embed, media_ids=media_ids)

    async def _parent_cid(self, loaded: LoadedPolicy, uri: str) -> str | None:
        """The CID of the post a reply names, as the Bluesky account's PDS holds it now
        (``ReplyTargets.bluesky_cid``); ``None`` for an account on another platform."""
        if loaded.policy.platform != "bluesky":
            return None
        return await self._replies.bluesky_cid(loaded, uri)

    async def _parent(self, loaded: LoadedPolicy, options: PostOptions) -> PostOptions:
        """``options`` of a reply, with what it answers as the Bluesky account's PDS says
        (``ReplyTargets.bluesky_parent``); as they are for an account on another platform."""
        if loaded.policy.platform != "bluesky":
            return options
        return await self._replies.bluesky_parent(loaded, options)

    async def _unpublished_parent(self, session: XrpcSession, uri: str) -> str | None:
        """The post of the session's account, not yet out, that Byline answered ``uri`` for
        (its future address), if it is one."""
        try:
            parent = AtUri.parse(uri)
        except AdapterError:
            return None
        if parent.repo != session.did or parent.collection != POST_COLLECTION or not is_tid(parent.rkey):
            return None
        async with self._db.read() as txn:
            keyed = await sql.post_by_record_key(txn, account=session.account, rkey=parent.rkey)
            if keyed is not None:
                return str(keyed["id"]) if keyed["state"] in _UNPUBLISHED else None
            waiting = await sql.unpublished_ids(txn, account=session.account)
        return next((post_id for post_id in waiting if rkey_for(post_id) == parent.rkey), None)

    async def _blob_media(self, session: XrpcSession, blobs: tuple[BlobRef, ...]) -> tuple[str, ...]:
        """The kept copies (media ids, in the embed's order) of the blobs an embed shows: each
        uploaded through Byline by this person for this account, and no other post's yet."""
        if not blobs:
            return ()
        async with self._db.read() as txn:
            rows = await media_sql.unattached_by_digest(
                txn, account=session.account, user=session.caller.user,
                digests=sorted({blob.digest for blob in blobs}),
            )
        kept: dict[str, Row] = {}
        for row in rows:
            kept.setdefault(row["digest"], row)
        chosen: list[str] = []
        for blob in blobs:
            found = kept.get(blob.digest)
            if found is None:
                raise _invalid_record(
                    f"Record/embed: the blob {blob.cid} was not uploaded through Byline for "
                    f"{session.account} (upload it with com.atproto.repo.uploadBlob here, at most "
                    f"{MAX_BLOB_BYTES} bytes), or another post already shows it"
                )
            if (found["mime_type"], int(found["size"])) != (blob.mime_type, blob.size):
                raise _invalid_record(
                    f"Record/embed: the blob {blob.cid} is {found['mime_type']} of {found['size']} bytes, "
                    f"not {blob.mime_type} of {blob.size} bytes as the record says"
                )
            if found["id"] not in chosen:
                chosen.append(found["id"])
        return tuple(chosen)

    async def _keep_blob(self, session: XrpcSession, data: bytes, answer: XrpcRawResponse) -> None:
        """Keep a copy of a blob the PDS took, for the post that will show it (see
        ``xrpc_embeds``): the PDS may drop it before a waiting post goes out."""
        if answer.status != 200 or len(data) > MAX_BLOB_BYTES:
            return
        try:
            blob = json.loads(answer.body)["blob"]
            cid, mime_type = str(blob["ref"]["$link"]), str(blob["mimeType"])
        except (ValueError, KeyError, TypeError):
            return
        if cid != blob_cid(data):
            logger.warning("xrpc_blob_not_kept", cid=cid, reason="the PDS gave another CID")
            return
        media_id = new_post_id()
        async with self._db.write() as txn:
            await media_sql.insert(
                txn, media_id=media_id, account=session.account, user=session.caller.user,
                mime_type=mime_type, description=None, data=data,
                digest=hashlib.sha256(data).hexdigest(), at=now_micros(self._clock),
                shown=displayed_size(data, mime_type),
            )
        logger.info("xrpc_blob_kept", media_id=media_id, cid=cid, size=len(data))

    async def _cid(
        self, loaded: LoadedPolicy, post: PostView, options: PostOptions, record: PostRecord
    ) -> str:
        """The CID of the record this post will be written as (see the module docstring)."""
        outbound = OutboundPost(
            post_id=post.id, idempotency_key="", text=post.display_text,
            reply_to=options.reply_to or (record.reply.parent.uri if record.reply else None),
            sensitive=options.sensitive, language=options.language,
            created_at=options.created_at, embed=options.embed, self_labels=options.self_labels,
            facets=options.facets, record_url=record_url(self._platforms.public_url, post.id),
        )
        # A reply waiting for its parent has no preview: the PDS does not have the parent yet.
        if loaded.policy.platform == "bluesky" and options.reply_to_post is None:
            adapter = self._platforms.adapter_for(loaded)
            if isinstance(adapter, BlueskyAdapter):
                try:
                    return record_cid(await adapter.preview_record(outbound))
                except AdapterError as exc:
                    # The post is in; only its CID is then a best guess from what the client sent.
                    logger.warning("xrpc_preview_failed", post_id=post.id, error=exc.message)
        # As the adapter writes it (``reply_ref``): the client's strong refs, without the "$type"
        # keys a client may add; a reply to a post not written yet has no preview, only this.
        reply = {
            "root": {"uri": record.reply.root.uri, "cid": record.reply.root.cid},
            "parent": {"uri": record.reply.parent.uri, "cid": record.reply.parent.cid},
        } if record.reply else None
        guess = post_record(
            text=outbound.text, created_at=created_at_for(outbound, self._clock.now()),
            language=outbound.language, reply=reply,
            facets=fitting_facets(outbound.facets, outbound.text) or link_facets(outbound.text),
            embed=record.embed, labels=dict(options.self_labels) if options.self_labels else None,
            byline=outbound.record_url,
        )
        return record_cid(guess)

    async def _delete(self, session: XrpcSession, rkey: str) -> None:
        row = await self._find(session.account, rkey)
        missing = _invalid(
            f"Could not locate record: at://{session.did}/{POST_COLLECTION}/{rkey} "
            "is not a post made through Byline"
        )
        if row is None:
            raise missing
        try:
            post = await self._posts.view(session.caller, row["id"])
        except BylineError as exc:
            if exc.code is Code.NOT_FOUND:
                raise missing from None
            raise
        state = State(post.state)
        if state in _CANCELLABLE:
            await self._posts.cancel(session.caller, post.id)
        elif state is State.PUBLISHED:
            await self._published.delete(session.caller, post.id)
        elif state is State.ADOPTED:
            raise _invalid(
                f"this suggestion was adopted as post {post.adopted_into}, which is its writer's to delete"
            )
        elif state is State.PUBLISHING:
            raise _invalid("the post is being published right now; delete it again in a moment")
        elif state not in _GONE:
            raise AssertionError(f"unhandled state {state}")  # pragma: no cover
        # A post already gone is deleted: a PDS answers the same for a record that is not there.
        logger.info("xrpc_post_deleted", post_id=post.id, state=state.value)

    async def _find(self, account: str, rkey: str) -> Row | None:
        """The post of ``account`` whose record key is ``rkey``: the one its client gave it, or
        the one derived from its id (searched newest first)."""
        if not is_tid(rkey):
            return None
        async with self._db.read() as txn:
            keyed = await sql.post_by_record_key(txn, account=account, rkey=rkey)
        if keyed is not None or not may_be_derived(rkey):
            return keyed
        before: str | None = None
        while True:
            async with self._db.read() as txn:
                rows = await sql.post_ids_page(txn, account=account, before=before, limit=_SEARCH_PAGE)
            for row in rows:
                if rkey_for(row["id"]) == rkey:
                    return row
            if len(rows) < _SEARCH_PAGE:
                return None
            before = rows[-1]["id"]

    # -- reads ------------------------------------------------------------------------------

    async def profile(
        self, session: XrpcSession, *, actor: str, query: str, headers: dict[str, str]
    ) -> XrpcRawResponse:
        """``getProfile``: relayed for a Bluesky account; the account's own is always answered
        (clients fetch it at login, and a PDS without an AppView cannot give it)."""
        loaded = self._policy(session)
        ident = AccountId(did=session.did, handle=self._sessions.handle_of(loaded))
        own = self._sessions.names(loaded, ident, actor)
        if loaded.policy.platform == "bluesky":
            answer = await self._relay_bluesky(
                loaded, "GET", "app.bsky.actor.getProfile", query=query, body=None, headers=headers
            )
            if answer.status < 300 or not own:
                return answer
            return _json(200, await self._own_bluesky_profile(loaded, ident))
        if not own:
            return _json(400, {"error": "InvalidRequest", "message": "Profile not found"})
        return _json(200, {
            "did": ident.did, "handle": ident.handle,
            "displayName": loaded.policy.handle or loaded.policy.account,
            "description": f"{loaded.policy.account} on {loaded.policy.platform}, posting through Byline",
        })

    async def _own_bluesky_profile(self, loaded: LoadedPolicy, ident: AccountId) -> dict[str, Any]:
        profile: dict[str, Any] = {"did": ident.did, "handle": ident.handle}
        answer = await self._relay_bluesky(
            loaded, "GET", "com.atproto.repo.getRecord",
            query=f"repo={ident.did}&collection=app.bsky.actor.profile&rkey=self", body=None, headers={},
        )
        if answer.status == 200:
            try:
                value = json.loads(answer.body).get("value", {})
            except (ValueError, AttributeError):
                value = {}
            for key in ("displayName", "description"):
                if isinstance(value, dict) and isinstance(value.get(key), str):
                    profile[key] = value[key]
        return profile

    async def relay(
        self, session: XrpcSession, *, method: str, nsid: str, query: str, body: bytes | None,
        headers: dict[str, str],
    ) -> XrpcRawResponse:
        """A listed read (or an upload): relayed to the account's PDS under its own session.
        Anything else is refused."""
        refusal = relay_refusal(method, nsid)
        if refusal is not None:
            raise refusal
        loaded = self._policy(session)
        if loaded.policy.platform != "bluesky" and nsid in OWN_READS:
            return _json(200, await self._reads.answer(session, loaded, nsid, query))
        if loaded.policy.platform != "bluesky":
            raise xrpc_error(
                Code.FORBIDDEN, "MethodNotImplemented",
                f"Method Not Implemented: {loaded.policy.account} is on {loaded.policy.platform}, "
                "which has no PDS to relay to; Byline answers sessions and posts for it",
            )
        if nsid == "com.atproto.repo.uploadBlob" and body is not None:
            body = await asyncio.to_thread(_without_metadata, body)
        answer = await self._relay_bluesky(loaded, method, nsid, query=query, body=body, headers=headers)
        if nsid == "com.atproto.repo.uploadBlob" and body is not None:
            await self._keep_blob(session, body, answer)
        return answer

    @asynccontextmanager
    async def relay_stream(
        self, session: XrpcSession, *, nsid: str, query: str, headers: dict[str, str],
    ) -> AsyncIterator[XrpcStream]:
        """A read in ``STREAMED_QUERIES``, relayed like ``relay`` with its answer passed on as it
        arrives, inside the context. Its chunks raise the ``UpstreamFailure`` error when the PDS
        breaks off (by then the answer has begun)."""
        if nsid not in STREAMED_QUERIES:
            raise _invalid(f"{nsid} is not relayed as a stream")
        loaded = self._policy(session)
        if loaded.policy.platform != "bluesky":
            raise xrpc_error(
                Code.FORBIDDEN, "MethodNotImplemented",
                f"Method Not Implemented: {loaded.policy.account} is on {loaded.policy.platform}, "
                "which has no PDS to relay to; Byline answers sessions and posts for it",
            )
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, BlueskyAdapter):  # pragma: no cover - the platform says bluesky
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", "the account has no Bluesky adapter")
        try:
            async with adapter.xrpc_stream(nsid, query=query, headers=relayed_headers(headers)) as answer:
                yield XrpcStream(status=answer.status, headers=answer.headers, chunks=_upstream(answer.chunks))
        except AdapterError as exc:
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None

    async def _relay_bluesky(
        self, loaded: LoadedPolicy, method: str, nsid: str, *, query: str, body: bytes | None,
        headers: dict[str, str],
    ) -> XrpcRawResponse:
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, BlueskyAdapter):  # pragma: no cover - the platform says bluesky
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", "the account has no Bluesky adapter")
        try:
            return await adapter.xrpc_raw(method, nsid, query=query, body=body, headers=relayed_headers(headers))
        except AdapterError as exc:
            raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None

    # -- checks -----------------------------------------------------------------------------

    def _policy(self, session: XrpcSession) -> LoadedPolicy:
        try:
            return self._posts.policy(session.account)
        except BylineError:
            raise xrpc_error(
                Code.UNKNOWN_ACCOUNT, "AccountNotFound", f"the account {session.account} has no policy in force"
            ) from None

    def _own_repo(self, session: XrpcSession, repo: str) -> LoadedPolicy:
        loaded = self._policy(session)
        if repo.lower() not in (session.did.lower(), self._sessions.handle_of(loaded).lower()):
            # What a PDS answers when the repo is not the session's own.
            raise xrpc_error(
                Code.FORBIDDEN, "AuthenticationRequired",
                f"Authentication Required: this session writes to {session.did} only",
            )
        return loaded

    @staticmethod
    def _check_collection(collection: Any) -> None:
        if collection != POST_COLLECTION:
            raise _invalid(
                f"Byline writes {POST_COLLECTION} records only, not {collection}: every write goes "
                "through the account's policy, and the policy governs posts"
            )


def _without_metadata(blob: bytes) -> bytes:
    """A blob as it goes to the PDS, which keeps it as sent and serves it to anyone: a picture
    (by its bytes, whatever type the client declared) without the metadata that says who took
    it, where and with what (``image_metadata``); anything else (a video…) as it came."""
    mime_type = detected_type(blob)
    if mime_type not in STRIPPED_TYPES:
        return blob
    try:
        return stripped(blob, mime_type)
    except MalformedImage as exc:
        raise xrpc_error(Code.VALIDATION, "InvalidRequest",
                         f"the blob is not a well-formed {mime_type}: {exc}") from None


async def _upstream(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in chunks:
            yield chunk
    except AdapterError as exc:
        raise xrpc_error(Code.UNAVAILABLE, "UpstreamFailure", exc.message) from None


def relayed_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Of a client's request headers, those a relayed call may carry (``RELAYED_HEADERS``)."""
    given = {name.lower(): value for name, value in headers.items()}
    return {name: given[name.lower()] for name in RELAYED_HEADERS if name.lower() in given}


def misspelt(nsid: str, canonical: str) -> BylineError:
    """The answer to a method named in another spelling than its own."""
    return _invalid(
        f"{nsid} is not the method's name: XRPC method names are matched as written; call {canonical}"
    )


def relay_refusal(method: str, nsid: str) -> BylineError | None:
    """Why a call must not be relayed to the account's PDS, as the error to answer; or ``None``."""
    if nsid in RELAYED_QUERIES:
        return None if method == "GET" else _invalid(f"Incorrect HTTP method ({method}) expected GET")
    if nsid in RELAYED_PROCEDURES:
        return None if method == "POST" else _invalid(f"Incorrect HTTP method ({method}) expected POST")
    lowered = nsid.lower()
    canonical = _BY_LOWER.get(lowered)
    if canonical is not None:
        return misspelt(nsid, canonical)
    why = next((why for prefix, why in _NOT_RELAYED if lowered.startswith(prefix)), None)
    if why is None:
        why = _WRITE_NOT_RELAYED if method == "POST" else _READ_NOT_RELAYED
    return xrpc_error(Code.FORBIDDEN, "MethodNotImplemented", f"Byline does not relay {nsid}: {why}")
