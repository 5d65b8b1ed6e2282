"""The Mastodon client API over the gateway: what an unmodified Mastodon app can do here.

An app acts as one managed account (its token is bound to it). Every write becomes a gateway
post and goes through the account's policy like any other; reads of the gateway's own posts
show where they are in their life; the reads in ``RELAYED_READS`` are passed through to the
account's Mastodon instance with the account's real token, which the app never sees, and every
other call (a follow, a favourite, a profile change, administration…) is refused. Accounts on
other platforms answer the listed reads with empty lists, or 404, as a quiet Mastodon would.

Ids of statuses made here are the gateway's post ids. The HTTP layer (``http/mastodon/``)
parses and renders; the decisions are here.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, unquote

import structlog

from adapters.base import AdapterError
from gateway.audit.appender import LogTxn
from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.engine import disclosed_text, publish_time, roles
from gateway.policy.loader import LoadedPolicy, PolicyRegistry
from gateway.services.content import as_carried, sends_focus
from gateway.services.identity import Identity, hash_token
from gateway.services.image_metadata import MalformedImage, displayed_size, stripped
from gateway.services.media_types import detected_type
from gateway.services.platforms import Platforms, carries
from gateway.services.posts import Caller, PostOptions, PostService, PostView, new_post_id
from gateway.services.published import PublishedPosts
from gateway.services.reply_targets import NONE, SHOWN_URL, RawReader, ReplyTargets
from gateway.storage import idempotency as idem_sql
from gateway.storage import media as media_sql
from gateway.storage import oauth as oauth_sql
from gateway.storage import posts as posts_sql
from gateway.storage import queue as queue_sql
from gateway.storage.db import Database, DatabaseUnavailable
from gateway.types import duration_micros, to_micros

logger = structlog.get_logger("byline.mastodon")

IDEMPOTENCY_TTL = timedelta(hours=1)
"""How long a key is remembered: Mastodon keeps them for an hour."""

SCHEDULE_MIN_OFFSET = timedelta(minutes=5)
"""Mastodon refuses a ``scheduled_at`` sooner than this."""

MAX_MEDIA = 4
"""Attachments per status on a stock Mastodon."""

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
"""Uploads every media-capable adapter can carry."""

# Platforms whose adapter carries ``OutboundPost.media``, and the largest file each takes: a
# stock Mastodon takes images smaller than 16 MB (``less_than``), Bluesky blobs up to 1 MB.
MEDIA_LIMITS = {"mastodon": 16 * 1024 * 1024 - 1, "bluesky": 1_000_000}

TOKEN_APP = "byline-token"
"""What stands for the app of a token made with ``byline token create`` (no app registered it)."""

MISSING_AVATAR = "/avatars/original/missing.png"
"""Where Mastodon shows the picture of an account that has none (apps take the name to mean
"no picture"); Byline serves one there too, for the accounts it shows itself."""

MISSING_HEADER = "/headers/original/missing.png"
"""Where Mastodon shows the header of an account that has none."""

_ON_GATEWAY = ("url", "uri", "avatar", "avatar_static", "header", "header_static")
"""The URLs of an Account entity that may name a path on this gateway (``_local_account``)."""

PENDING = (State.HELD, State.SCHEDULED, State.SUGGESTED)
"""States in which a post is "scheduled" as a Mastodon app sees it: not out yet, still editable."""


_GONE = (State.CANCELLED, State.DELETED)
"""States in which a status is gone for the app that made it, as a deleted Mastodon status."""

_ACCOUNT_TTL_SECONDS = 300.0

RELAYED_READS: tuple[str, ...] = (
    # The reads Mastodon apps make, relayed with GET only, matched against the path's decoded
    # segments exactly (case, no empty, "." or ".." segment, no encoded slash). Left out on
    # purpose: administration, direct messages (conversations), the app's and the push
    # subscription's credentials, and streams that never end. The gateway answers
    # verify_credentials, instance, statuses, scheduled_statuses and media itself.
    r"/api/v1/timelines/(home|public)", r"/api/v1/timelines/tag/\w+", r"/api/v1/timelines/list/[0-9]+",
    r"/api/v1/notifications", r"/api/v1/notifications/([0-9]+|unread_count|policy)",
    r"/api/v2/notifications", r"/api/v2/notifications/(unread_count|policy)",
    r"/api/v2/notifications/[\w-]+(/accounts)?", r"/api/v1/markers",
    r"/api/v1/accounts/[0-9]+", r"/api/v1/accounts/[0-9]+/(statuses|followers|following|featured_tags|lists)",
    r"/api/v1/accounts/(relationships|familiar_followers|lookup|search)",
    r"/api/v1/statuses", r"/api/v1/statuses/[0-9]+",
    r"/api/v1/statuses/[0-9]+/(context|reblogged_by|favourited_by|history|source)",
    r"/api/v1/polls/[0-9]+", r"/api/v1/tags/\w+", r"/api/v2/search", r"/api/v1/directory",
    r"/api/v1/instance/(peers|activity|rules|extended_description|translation_languages|languages|"
    r"domain_blocks)",
    r"/api/v1/(custom_emojis|announcements|preferences|favourites|bookmarks|follow_requests|mutes|blocks|"
    r"domain_blocks|endorsements|featured_tags|followed_tags|lists|filters)",
    r"/api/v1/featured_tags/suggestions", r"/api/v1/lists/[0-9]+(/accounts)?",
    r"/api/v1/trends(/(tags|statuses|links))?", r"/api/v2/filters(/[0-9]+)?", r"/api/v2/suggestions",
)
"""Client API reads passed through to the account's instance; every other call is refused."""

_RELAYED = re.compile("|".join(f"(?:{pattern})" for pattern in RELAYED_READS))
_POLICY_GOVERNS = "every write goes through the account's policy, and the policy governs posts"

# Reads an account on a platform other than Mastodon answers with an empty list.
_EMPTY_LISTS = re.compile(
    r"^/api/v1/(timelines/.+|notifications|favourites|bookmarks|lists|filters|statuses|"
    r"custom_emojis|announcements|follow_requests|mutes|blocks|domain_blocks|endorsements|"
    r"featured_tags|followed_tags|trends(/.*)?|accounts/relationships|accounts/familiar_followers|"
    r"accounts/[^/]+/(statuses|followers|following|featured_tags|lists)|instance/(rules|peers|activity))$"
    r"|^/api/v2/(filters|suggestions)$"
)
_NO_ONE = {"pending_requests_count": 0, "pending_notifications_count": 0}
_QUIET_ANSWERS: dict[str, Any] = {
    # Reads an account on a platform other than Mastodon answers as a quiet instance would,
    # each in its entity's shape (apps built for Mastodon 4.3 ask them at start-up: the grouped
    # notifications, their unread count, the notification policy), with Mastodon's defaults.
    "/api/v1/preferences": {
        "posting:default:visibility": "public", "posting:default:sensitive": False,
        "posting:default:language": None, "reading:expand:media": "default",
        "reading:expand:spoilers": False,
    },
    "/api/v1/markers": {},
    "/api/v2/notifications": {"accounts": [], "statuses": [], "notification_groups": []},
    "/api/v1/notifications/unread_count": {"count": 0},
    "/api/v2/notifications/unread_count": {"count": 0},
    "/api/v1/notifications/policy": {
        "filter_not_following": False, "filter_not_followers": False, "filter_new_accounts": False,
        "filter_private_mentions": True, "summary": _NO_ONE,
    },
    "/api/v2/notifications/policy": {
        "for_not_following": "accept", "for_not_followers": "accept", "for_new_accounts": "accept",
        "for_private_mentions": "filter", "for_limited_accounts": "filter", "summary": _NO_ONE,
    },
    "/api/v2/search": {"accounts": [], "statuses": [], "hashtags": []},
    "/api/v1/instance/translation_languages": {},
}


@dataclass(frozen=True, kw_only=True)
class ClientAuth:
    """An app's caller: a person acting as one account, through one token."""

    caller: Caller
    account: str
    token_hash: str = field(repr=False)
    app_name: str | None
    client_id: str | None = None
    """The registered app the token was issued to; None for a token made with ``byline token``."""


@dataclass(frozen=True, kw_only=True)
class StatusForm:
    """A new status as a Mastodon app sends it, parsed."""

    status: str
    in_reply_to_id: str | None = None
    spoiler_text: str | None = None
    sensitive: bool = False
    visibility: str | None = None
    language: str | None = None
    scheduled_at: datetime | None = None
    media_ids: tuple[str, ...] = ()
    poll: bool = False
    quote: bool = False
    """A ``quoted_status_id`` was given (Mastodon 4.5's quote posts)."""


@dataclass(frozen=True, kw_only=True)
class EditForm:
    """An edit as a Mastodon app sends it: omitted fields keep (or, for the spoiler, clear)."""

    status: str
    spoiler_text: str | None = None
    sensitive: bool | None = None
    language: str | None = None
    media_ids: tuple[str, ...] | None = None
    poll: bool = False
    media_attributes: tuple[tuple[str, MediaEdit], ...] = ()
    """``media_attributes[]`` (Mastodon 4.1): new alt text or focal point of the status's uploads,
    by id, made in the same new version as the rest of the edit."""
    quoted_status_id: str | None = None
    quote_approval_policy: str | None = None


@dataclass(frozen=True, kw_only=True)
class Upload:
    """One uploaded file."""

    data: bytes = field(repr=False)
    mime_type: str
    """As the app declared it (or ""): only reported; the bytes decide (``detected_type``)."""
    description: str | None
    focus: tuple[float, float] | None = None


@dataclass(frozen=True, kw_only=True)
class MediaEdit:
    """``PUT /api/v1/media/:id``: None keeps a value as it is; an empty description clears it."""

    description: str | None = None
    focus: tuple[float, float] | None = None


@dataclass(frozen=True, kw_only=True)
class StatusView:
    """A gateway post with what rendering it as a Status needs."""

    post: PostView
    account: dict[str, Any]
    media: list[dict[str, Any]]
    app_name: str | None
    scheduled: bool = False
    """Answer with a ScheduledStatus: the app asked with ``scheduled_at``."""
    app_id: str | None = None
    """The numeric id of the app the caller's token belongs to (``numeric_id`` of its client id,
    or of ``TOKEN_APP``)."""
    due_at: int | None = None
    """When the post goes out: its ``publish_at`` once it has one; for a post waiting for a
    decision (held or suggested), when it would go out if released now (the cooling-off from
    now, or the time the writer asked for if later). A ScheduledStatus must have a time."""
    in_reply_to_id: str | None = None
    """The status it replies to as the app knows it: Byline's id when Byline made that post,
    else the platform's id, as the post's ``reply_to`` keeps it."""
    pending: PostView | None = None
    """The pending revision of this published post that the app's edit just made or changed
    (``byline.pending_revision``): the words waiting for their approvals or their time."""


@runtime_checkable
class StreamReader(Protocol):
    """An adapter that can follow its instance's streaming API as the account (the Mastodon adapter)."""

    def stream_events(self, stream: Sequence[str]) -> AsyncIterator[tuple[str, str]]:
        """The instance's events of one stream, ``(event, payload)``, until the connection ends."""
        ...


@dataclass(frozen=True, kw_only=True)
class Raw:
    """A read answered as the instance answered it (or as a quiet instance would)."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Limits:
    """What an app may send for its account: shown in the instance entity."""

    max_characters: int
    max_media: int
    media_types: tuple[str, ...]
    media_bytes: int


@functools.lru_cache(maxsize=4096)  # an account's or app's, in every status answered
def numeric_id(name: str) -> str:
    """A stable numeric id for something that has a name but no Mastodon id."""
    return str(int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:7], "big"))


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _check_platform_takes(platform: str, form: StatusForm) -> None:
    """422 for a status the account's platform would refuse when it went out, said now rather
    than as a failed post later: what its adapter says the platform's posts cannot carry (every
    Bluesky and X post is public, and X has no content warnings: the hidden words would show
    openly)."""
    takes = carries(platform)
    if not takes.keeps_visibility(form.visibility):
        raise BylineError(Code.VALIDATION, f"Validation failed: every {takes.name} post is public: "
                                           f"visibility {form.visibility} cannot be honoured")
    if not takes.keeps_content_warning(form.spoiler_text):
        raise BylineError(Code.VALIDATION, f"Validation failed: {takes.name} has no content warnings: "
                                           "the hidden words would show openly")



class MastodonService:
    """Mastodon client API calls, each for one authenticated app."""

    def __init__(
        self, *, db: Database, posts: PostService, published: PublishedPosts, identity: Identity,
        policies: PolicyRegistry, platforms: Platforms, clock: Clock, replies: ReplyTargets,
    ) -> None:
        self._db = db
        self._replies = replies
        self._posts = posts
        self._published = published
        self._identity = identity
        self._policies = policies
        self._platforms = platforms
        self._clock = clock
        # account -> (expires, policy hash, entity, whether Byline built it rather than the instance)
        self._accounts: dict[str, tuple[float, str, dict[str, Any], bool]] = {}

    # -- who is calling ------------------------------------------------------------------

    async def authenticate(self, token: str | None, *, scope: str | None, or_scope: str | None = None) -> ClientAuth:
        """The app's caller, bound to one account, allowed ``scope`` (or ``or_scope``, where
        Mastodon takes either); or 401/403. ``scope=None`` checks no scope: the streaming API
        checks each stream's when it is asked for (``gateway.services.streaming``)."""
        if not token:
            await self._identity.authenticate(token)  # says what is missing, as it says it
        assert token is not None
        token_hash = hash_token(token)
        caller, app = await self._identity.authenticate_app(token, token_hash=token_hash)  # one read: with its app
        if scope is not None and not caller.may(scope) and (or_scope is None or not caller.may(or_scope)):
            raise BylineError(Code.FORBIDDEN, "This action is outside the authorized scopes")
        account = caller.account
        if account is None:
            mine = [n for n, lp in sorted(self._policies.policies.items()) if roles(lp.policy, caller.user)]
            if len(mine) != 1:
                raise BylineError(
                    Code.FORBIDDEN,
                    f"This token is not bound to an account and {caller.user} has {len(mine)}: "
                    "sign in through the app (it asks which account), or make a token with "
                    "byline token create --user NAME --account ACCOUNT",
                )
            account = mine[0]
        loaded = self._policies.get(account)
        if loaded is None:
            raise BylineError(Code.FORBIDDEN, f"The account {account} is no longer managed by this gateway")
        if caller.account is not None and not roles(loaded.policy, caller.user):
            # A token outlives a role: once the policy names its person no more, it reads nothing
            # of the account's (its timelines, notifications, follow requests go out under the
            # account's own credential) and writes nothing, as a new sign-in would not be offered it.
            raise BylineError(Code.FORBIDDEN, f"{caller.user} no longer has a role on {account}")
        return ClientAuth(caller=Caller(user=caller.user, account=account, scopes=caller.scopes), account=account,
                          token_hash=token_hash, app_name=app.name if app else None,
                          client_id=app.client_id if app else None)

    async def maybe_authenticate(self, token: str | None) -> ClientAuth | None:
        """The caller if the token is good for reading, else None (public endpoints)."""
        if not token:
            return None
        try:
            return await self.authenticate(token, scope="read")
        except DatabaseUnavailable:
            raise  # the token is not known to be bad: answered as no token, it would get no account's limits
        except BylineError:
            return None

    def _loaded(self, auth: ClientAuth) -> LoadedPolicy:
        return self._posts.policy(auth.account)

    def platform(self, auth: ClientAuth) -> str:
        """The platform of the caller's account (``mastodon``, ``sandbox``…)."""
        return self._loaded(auth).policy.platform

    def limits(self, auth: ClientAuth | None) -> Limits:
        """The instance limits an app sees: its account's, less the disclosure line it adds."""
        if auth is None:
            return Limits(max_characters=500, max_media=MAX_MEDIA, media_types=tuple(sorted(MEDIA_TYPES)),
                          media_bytes=MEDIA_LIMITS["mastodon"])
        policy = self._loaded(auth).policy
        suffix = len(disclosed_text(policy, author=auth.caller.user, text=""))
        media_bytes = MEDIA_LIMITS.get(policy.platform, 0)
        return Limits(max_characters=max(1, policy.text_limit - suffix),
                      max_media=MAX_MEDIA if media_bytes else 0,
                      media_types=tuple(sorted(MEDIA_TYPES)) if media_bytes else (),
                      media_bytes=media_bytes)

    # -- the account as the platform shows it ------------------------------------------------

    async def account(self, auth: ClientAuth, *, with_source: bool = False) -> dict[str, Any]:
        """The managed account as an Account entity (a CredentialAccount ``with_source``)."""
        loaded = self._loaded(auth)
        key = loaded.sha256
        cached = self._accounts.get(auth.account)
        if cached is not None and cached[0] > time.monotonic() and cached[1] == key:
            entity, built = dict(cached[2]), cached[3]
        else:
            fetched, built = await self._fetch_account(loaded)
            self._accounts[auth.account] = (time.monotonic() + _ACCOUNT_TTL_SECONDS, key, fetched, built)
            entity = dict(fetched)
        if built:
            # No instance counts the account's statuses for Byline (Bluesky's session, X and the
            # sandbox give no figure), so they are Byline's own: the posts it published there that
            # are still up, read fresh, as the cached entity would show a count minutes old.
            async with self._db.read() as txn:
                entity["statuses_count"] = await queue_sql.published_count(txn, auth.account)
        source = entity.pop("source", None)
        entity.pop("role", None)
        if with_source:
            entity["source"] = source or {
                "privacy": "public", "sensitive": False, "language": None, "note": "",
                "fields": [], "follow_requests_count": 0,
            }
        return entity

    async def _fetch_account(self, loaded: LoadedPolicy) -> tuple[dict[str, Any], bool]:
        """The account's entity, and whether Byline built it (``False``: the instance's own)."""
        policy = loaded.policy
        try:
            adapter = self._platforms.adapter_for(loaded)
            if isinstance(adapter, RawReader):
                status, _, body = await adapter.get_raw("/api/v1/accounts/verify_credentials")
                entity = json.loads(body) if status == 200 else None
                if isinstance(entity, dict) and isinstance(entity.get("id"), str):
                    return _addressed(entity, policy.account), False
                logger.warning("account_not_fetched", account=policy.account, status=status)
            else:
                info = await adapter.verify_credentials()
                return _local_account(policy.account, handle=info.handle or policy.handle,
                                      display_name=info.display_name, url=info.url), True
        except (AdapterError, BylineError, ValueError) as exc:
            logger.warning("account_not_fetched", account=policy.account,
                           error=getattr(exc, "message", type(exc).__name__))
        return _local_account(policy.account, handle=policy.handle, display_name=None, url=None), True

    # -- statuses --------------------------------------------------------------------------

    async def post(self, auth: ClientAuth, form: StatusForm, *, idempotency_key: str | None) -> StatusView:
        """``POST /api/v1/statuses``: a new gateway post for the app's account.

        With an ``Idempotency-Key``, the key is remembered in the transaction that stores the
        post, so a retry within the hour gets the same status, and a request that died (with
        its gateway, or its database) before its post was stored left nothing behind: its
        retry makes the post, once. Two requests with one key at once make one post; the other
        gets it too."""
        kind = "scheduled" if form.scheduled_at is not None else "status"
        if not idempotency_key:
            return await self._submit(auth, form, kind)
        key = _Remembered(token_hash=auth.token_hash, key_hash=_key_hash(idempotency_key), kind=kind,
                          at=now_micros(self._clock), ttl=duration_micros(IDEMPOTENCY_TTL))
        found = await self._remembered(auth, key)
        if found is not None:
            return found
        try:
            return await self._submit(auth, form, kind, remember=key)
        except _KeyUsed:
            found = await self._remembered(auth, key)
            if found is None:  # its hour ran out meanwhile: no longer this key's post
                raise BylineError(Code.CONFLICT, "This Idempotency-Key was just used: try again") from None
            return found

    async def _remembered(self, auth: ClientAuth, key: _Remembered) -> StatusView | None:
        """The status this key made within the hour, if any."""
        async with self._db.read() as txn:
            row = await idem_sql.get(txn, token_hash=key.token_hash, key_hash=key.key_hash)
        if row is None or row["post_id"] is None or int(row["created_at"]) < key.stale_before:
            return None
        return await self._view(auth, row["post_id"], scheduled=row["kind"] == "scheduled")

    async def _submit(
        self, auth: ClientAuth, form: StatusForm, kind: str, *, remember: _Remembered | None = None,
    ) -> StatusView:
        if form.poll:
            raise BylineError(Code.VALIDATION, "Validation failed: Byline does not carry polls")
        if form.quote:
            # Left unread, the post would go out without what it quotes: its words alone, which
            # may mean something else.
            raise BylineError(Code.VALIDATION, "Validation failed: Byline does not carry quote posts")
        if form.scheduled_at is not None and form.scheduled_at - self._clock.now() < SCHEDULE_MIN_OFFSET:
            raise BylineError(
                Code.VALIDATION, "Validation failed: Scheduled at The scheduled date must be in the future"
            )
        _check_platform_takes(self._loaded(auth).policy.platform, form)
        uploads = await self._media_for(auth, form.media_ids)
        replies = await self._reply_target(auth, form.in_reply_to_id)
        spoiler_text = form.spoiler_text or None
        if replies is NONE:  # built at once: ``replace`` reads every field again, for each status
            options = PostOptions(spoiler_text=spoiler_text, sensitive=form.sensitive, language=form.language,
                                  visibility=form.visibility, media_ids=form.media_ids)
        else:
            options = replace(replies, spoiler_text=spoiler_text, sensitive=form.sensitive, language=form.language,
                              visibility=form.visibility, media_ids=form.media_ids)
        post = await self._posts.submit(auth.caller, account=auth.account, text=form.status,
                                        publish_at=form.scheduled_at, options=options,
                                        alongside=_steps(_attaching(form.media_ids, read=uploads),
                                                         _remembering(remember)),
                                        history=False)
        return await self._render(auth, post, scheduled=kind == "scheduled")

    async def _reply_target(self, auth: ClientAuth, reply_to: str | None) -> PostOptions:
        """What a reply replies to, as the options that say it (``ReplyTargets``): an
        ``in_reply_to_id`` Byline gave is its post, any other a status on the platform; a post
        of Byline's that another account made, or that ended without going out, is not found,
        as Mastodon answers a reply to a status that is not there."""
        if not reply_to:
            return NONE
        found = await self._replies.of_post(auth.caller, auth.account, reply_to)
        return found if found is not None else await self._replies.on_platform(auth.account, reply_to)

    async def _media_for(self, auth: ClientAuth, media_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        """The caller's uploads by id, none taken yet (or taken by a post that ended: the media of
        a status deleted, which an app's delete and redraft sends again, as Mastodon frees them);
        else a 422 naming the first that is not.

        Only a first look, to refuse early: the post takes them with a compare-and-set in the
        transaction that stores it (``_attaching``), where a race for one is decided.
        """
        if not media_ids:
            return []
        if len(media_ids) > MAX_MEDIA:
            raise BylineError(Code.VALIDATION, f"Validation failed: Cannot attach more than {MAX_MEDIA} files")
        async with self._db.read() as txn:
            rows = {r["id"]: r for r in await media_sql.info(txn, list(media_ids))}
            taken = sorted({r["post_id"] for r in rows.values() if r["post_id"] is not None})
            ended = await media_sql.ended_posts(txn, taken)
        for media_id in media_ids:
            row = rows.get(media_id)
            if row is None or row["account"] != auth.account or row["user_name"] != auth.caller.user \
                    or row["post_id"] not in (None, *ended):
                raise BylineError(Code.VALIDATION, _media_refused(media_id))
        return [dict(rows[m]) for m in media_ids]

    async def _own_post(self, auth: ClientAuth, post_id: str, *, history: bool = False) -> PostView | None:
        """The gateway post with this id in the app's account, or None; with its versions and
        log events only when ``history`` (a Status shows neither: half the reading, for every
        status an app reads and every event a stream sends)."""
        if not post_id.isdigit() or len(post_id) > 24:
            return None
        try:
            post = await self._posts.view(Caller(user=auth.caller.user), post_id, history=history)
        except BylineError as exc:
            if exc.code in (Code.NOT_FOUND, Code.FORBIDDEN, Code.UNKNOWN_ACCOUNT):
                return None
            raise
        return post if post.account == auth.account else None

    async def status(self, auth: ClientAuth, post_id: str, *, base: str) -> StatusView | Raw:
        """``GET /api/v1/statuses/:id``: a gateway post as it stands, or a platform status."""
        post = await self._own_post(auth, post_id)
        if post is None:
            return await self.passthrough(auth, f"/api/v1/statuses/{post_id}", "", base=base)
        if State(post.state) in _GONE:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        pending = await self.pending_revisions(auth, [post])
        return await self._render(auth, post, pending=pending.get(post.id))

    async def pending_revisions(
        self, auth: ClientAuth, posts: Sequence[PostView | posts_sql.PostRecord],
    ) -> Mapping[str, PostView]:
        """The pending revision of each published post of ``posts`` the caller may see, by the
        post's id, read in one query for them all: each status names its own
        (``byline.pending_revision``), as the answer to its edit did, wherever an app reads it."""
        return await self._posts.pending_revisions(Caller(user=auth.caller.user), posts)

    async def _view(self, auth: ClientAuth, post_id: str, *, scheduled: bool = False) -> StatusView:
        post = await self._own_post(auth, post_id)
        if post is None:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return await self._render(auth, post, scheduled=scheduled)

    async def edit(self, auth: ClientAuth, post_id: str, form: EditForm) -> StatusView:
        """``PUT /api/v1/statuses/:id``: a new version while the post is not out yet, or an
        edit on the platform once it is (``PostService.revision`` says when that is allowed).

        Mastodon's rules for omitted fields: no ``spoiler_text`` clears it, no ``sensitive``
        or ``language`` keeps it.
        """
        post = await self._own_post(auth, post_id)
        if post is None or State(post.state) in _GONE:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        if form.poll:
            raise BylineError(Code.VALIDATION, "Validation failed: Byline does not carry polls")
        # Byline carries no quote posts: a status of Byline's quotes nothing, and an edit cannot
        # make it quote one. Its quote policy is taken and not applied, as with a new status
        # (``status_form`` reads none): apps send their default with every status and every edit
        # (Mastodon's web app does), and refusing it would refuse each of their edits.
        if form.quoted_status_id is not None:
            raise BylineError(Code.VALIDATION, "Validation failed: this status quotes no status, and an "
                                               "edit cannot make it quote one (Byline does not carry quote posts)")
        state = State(post.state)
        if state is not State.PUBLISHED and state not in PENDING:
            raise BylineError(
                Code.INVALID_TRANSITION,
                f"This post is {post.state}: Byline edits a post while it is held, scheduled or "
                "suggested, and once it is published",
                state=post.state,
            )
        current = dict(post.options)
        media_ids = tuple(current.get("media_ids", ()))
        added: tuple[str, ...] = ()
        uploads: list[dict[str, Any]] = []
        if form.media_ids is not None and form.media_ids != media_ids:
            if state is State.PUBLISHED:
                raise BylineError(Code.VALIDATION, "Validation failed: the media of a published post stay as they are")
            _check_pictures_not_in_record(post)
            if len(form.media_ids) > MAX_MEDIA:
                raise BylineError(Code.VALIDATION, f"Validation failed: Cannot attach more than {MAX_MEDIA} files")
            added = tuple(m for m in form.media_ids if m not in media_ids)
            uploads = await self._media_for(auth, added)
            media_ids = form.media_ids
        redescribed = await self._redescribed(auth, post, form.media_attributes, keeps=media_ids)
        options = PostOptions(**{
            **current, "spoiler_text": form.spoiler_text or None,
            "sensitive": current.get("sensitive", False) if form.sensitive is None else form.sensitive,
            "language": form.language or current.get("language"), "media_ids": media_ids,
        })
        if state is State.PUBLISHED:
            # New alt text and focal points go to the platform with the words, in its edit
            # (Mastodon's ``media_attributes[]``); where the platform has no edit, the edit is
            # refused as a whole. A focal point is never taken away (none sent keeps it, here as
            # on Mastodon), so what the platform keeps is what the record says.
            # Words its policy would not publish at once wait as the post's pending revision.
            # The answer is this status, as Mastodon's is the status edited: apps put it in
            # place of the one they showed, by its id (another id would be a second status in
            # their timelines, one the platform never showed). It says what the platform shows,
            # the published words, and names the edit waiting (``byline.pending_revision``).
            revised = await self._published.revise(
                auth.caller, post_id, text=form.status, options=options,
                redescribed=tuple((m, d, f) for m, (d, f) in redescribed.items()), held=True)
            if revised.revises != post.id:
                return await self._render(auth, revised)  # made at once: the post's new version
            published = await self._own_post(auth, post_id)
            assert published is not None, "a post with a pending revision is published"
            return await self._render(auth, published, pending=revised)
        changed = options.to_json() != current
        if redescribed and not changed and not added and form.status == post.text:
            async with self._db.read() as txn:
                before = {r["id"]: r["description"] for r in await media_sql.info(txn, list(redescribed))}
            if all(before.get(m) == d for m, (d, _) in redescribed.items()) \
                    and await self._refocused_in_place(post_id, post.version, redescribed):
                return await self._render(auth, post)  # the same post: its uploads read anew
        # Only the uploads the edit adds are taken: those it keeps are the post's already or, on a
        # post adopted from a suggestion, the suggestion's, which keeps them so that their
        # suggester can no longer change what the writer adopted.
        edited = await self._posts.edit(auth.caller, post_id, text=form.status,
                                        options=options if changed else None,
                                        alongside=_redescribing(_attaching(added, read=uploads), redescribed),
                                        described={m: d for m, (d, _) in redescribed.items()})
        return await self._render(auth, edited)

    async def _redescribed(
        self, auth: ClientAuth, post: PostView, attributes: tuple[tuple[str, MediaEdit], ...], *,
        keeps: tuple[str, ...],
    ) -> dict[str, tuple[str | None, str | None]]:
        """What ``media_attributes[]`` of an edit changes: the new (description, focus) of each
        upload whose alt text or focal point it changes, as ``describe`` reads a change. Each must
        name an upload of this status that the edit keeps (else 422, before anything changes);
        a later entry for the same upload wins, as it would on Mastodon. Of a published post with
        a pending revision, a change is read against the alt text and focal point that revision
        holds, where it holds any: so that setting them back to the published ones is a change."""
        if not attributes:
            return {}
        ids = list(dict.fromkeys(media_id for media_id, _ in attributes))
        async with self._db.read() as txn:
            rows = {r["id"]: dict(r) for r in await media_sql.info(txn, ids)}
            pending = await posts_sql.open_revision(txn, post.id) if State(post.state) is State.PUBLISHED else None
        held = {} if pending is None else PostOptions.from_json(pending.options).media_attributes or {}
        for media_id, (description, focus) in held.items():
            if media_id in rows:
                rows[media_id] |= {"description": description, "focus": focus}
        attached = tuple(post.options.get("media_ids", ()))
        found: dict[str, tuple[str | None, str | None]] = {}
        for media_id, change in attributes:
            row = rows.get(media_id)
            if row is None or media_id not in attached or media_id not in keeps \
                    or row["post_id"] != post.id or row["account"] != auth.account:
                raise BylineError(Code.VALIDATION,
                                  f"Validation failed: Media {media_id} is not attached to this status")
            description, focus = found.get(media_id, (row["description"], row["focus"]))
            found[media_id] = (description if change.description is None else (change.description or None),
                               focus if change.focus is None else _focus_text(change.focus))
        changed = {m: new for m, new in found.items() if new != (rows[m]["description"], rows[m]["focus"])}
        if any(description != rows[m]["description"] for m, (description, _) in changed.items()):
            _check_alt_not_in_record(post)
        return changed

    async def delete(self, auth: ClientAuth, post_id: str) -> StatusView:
        """``DELETE /api/v1/statuses/:id``: cancel a post not out yet, or delete it on the platform."""
        post = await self._own_post(auth, post_id)
        if post is None or State(post.state) in _GONE:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        if State(post.state) is State.PUBLISHED:
            done = await self._published.delete(auth.caller, post_id)
        else:
            done = await self._posts.cancel(auth.caller, post_id)
        return await self._render(auth, done)

    async def own_post(self, auth: ClientAuth, post_id: str, *, history: bool = False) -> PostView | None:
        """The gateway post with this id in the app's account, if the caller may see it; else
        None (a status Byline did not make, to be asked of the platform). Its versions and log
        events only with ``history``."""
        return await self._own_post(auth, post_id, history=history)

    async def render(self, auth: ClientAuth, post: PostView, *, scheduled: bool = False,
                     account: dict[str, Any] | None = None, pending: PostView | None = None) -> StatusView:
        """A post with what rendering it as a Status (or a ScheduledStatus) needs; ``account``,
        the account's entity read once for a list of them (its count of statuses is a read);
        ``pending``, its pending revision (:meth:`pending_revisions`)."""
        return await self._render(auth, post, scheduled=scheduled, account=account, pending=pending)

    async def pending_one(self, auth: ClientAuth, post_id: str) -> StatusView:
        """``GET /api/v1/scheduled_statuses/:id``."""
        post = await self._own_post(auth, post_id)
        if post is None or State(post.state) not in PENDING or post.author != auth.caller.user:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return await self._render(auth, post, scheduled=True)

    async def cancel_pending(self, auth: ClientAuth, post_id: str) -> None:
        """``DELETE /api/v1/scheduled_statuses/:id``: the pencil stage's cancel."""
        await self.pending_one(auth, post_id)
        await self._posts.cancel(auth.caller, post_id)

    async def _render(self, auth: ClientAuth, post: PostView, *, scheduled: bool = False,
                      account: dict[str, Any] | None = None, pending: PostView | None = None) -> StatusView:
        media_ids = list(post.options.get("media_ids", ()))
        rows: dict[str, dict[str, Any]] = {}
        if media_ids:  # most statuses have none: no transaction (on PostgreSQL, round trips) for them
            async with self._db.read() as txn:
                rows = {r["id"]: dict(r) for r in as_carried(post.options, await media_sql.info(txn, media_ids))}
        due_at: int | None = post.publish_at
        if due_at is None and State(post.state) in PENDING:
            loaded = self._policies.get(post.account)
            if loaded is not None:
                due_at = max(to_micros(publish_time(loaded.policy, self._clock.now(), None)),
                             int(post.requested_at or 0))
        reply_to = post.options.get("reply_to_post") or post.options.get("reply_to")
        if isinstance(reply_to, str) and "reply_to_post" not in post.options:
            # A reply keeps its parent's platform id; the app knows a parent Byline made by Byline's id.
            async with self._db.read() as txn:
                parent = await posts_sql.with_remote_id(txn, account=post.account, remote_id=reply_to)
            reply_to = parent.id if parent is not None else reply_to
        return StatusView(post=post, account=account or await self.account(auth), app_name=auth.app_name,
                          media=[rows[m] for m in media_ids if m in rows], scheduled=scheduled,
                          app_id=numeric_id(auth.client_id or TOKEN_APP), due_at=due_at,
                          in_reply_to_id=reply_to if isinstance(reply_to, str) else None, pending=pending)

    async def application(self, auth: ClientAuth) -> dict[str, Any]:
        """``GET /api/v1/apps/verify_credentials``: the app the token was issued to, as registered
        (its secret never); for a token made with ``byline token``, Byline itself, with the
        token's scopes."""
        row = None
        if auth.client_id is not None:
            async with self._db.read() as txn:
                row = await oauth_sql.get_app(txn, auth.client_id)
        if row is None:
            scopes = sorted(auth.caller.scopes) if auth.caller.scopes is not None else ["read", "write"]
            return {"id": numeric_id(TOKEN_APP), "name": auth.app_name or "Byline token", "website": None,
                    "scopes": scopes, "redirect_uris": []}
        return {"id": numeric_id(row["client_id"]), "name": row["name"], "website": row["website"],
                "scopes": str(row["scopes"]).split(), "redirect_uris": list(json.loads(row["redirect_uris"]))}

    # -- media -----------------------------------------------------------------------------

    async def upload(self, auth: ClientAuth, upload: Upload) -> dict[str, Any]:
        """``POST /api/v2/media``: keep a file for a post of this account, if its platform takes media."""
        limit = self.limits(auth)
        if not limit.media_bytes:
            platform = self._loaded(auth).policy.platform
            raise BylineError(Code.VALIDATION, f"Validation failed: {auth.account} is on {platform}, "
                                               "which takes no media through Byline")
        # The content decides, as on Mastodon: a part sent without a type, or as
        # application/octet-stream, is what its bytes are, and a declared type they contradict
        # is not believed (what is stored and sent on is the detected type).
        mime_type = detected_type(upload.data)
        if mime_type not in MEDIA_TYPES:
            logger.info("upload_refused", account=auth.account, declared=upload.mime_type[:100], detected=mime_type)
            raise BylineError(Code.VALIDATION, "Validation failed: File content type is invalid, File is invalid")
        if len(upload.data) > limit.media_bytes:
            raise BylineError(Code.VALIDATION, f"Validation failed: File file size must be at most "
                                               f"{limit.media_bytes} bytes")
        # What is kept, hashed (the digest the log and approvals bind) and sent is the picture
        # without what it says about who took it, where and with what.
        try:
            data = await asyncio.to_thread(stripped, upload.data, mime_type)  # up to 16 MiB: off the loop
            shown = displayed_size(data, mime_type)  # a header walk, bounded as the stripper bounds one
        except MalformedImage as exc:
            logger.info("upload_refused", account=auth.account, detected=mime_type, reason=str(exc))
            raise BylineError(Code.VALIDATION, f"Validation failed: File is invalid: {exc}") from None
        media_id = new_post_id()
        digest = hashlib.sha256(data).hexdigest()
        async with self._db.write() as txn:
            await media_sql.insert(txn, media_id=media_id, account=auth.account, user=auth.caller.user,
                                   mime_type=mime_type, description=upload.description,
                                   data=data, digest=digest, at=now_micros(self._clock),
                                   focus=_focus_text(upload.focus), shown=shown)
            rows = await media_sql.info(txn, [media_id])
        return dict(rows[0])

    async def media_info(self, auth: ClientAuth, media_id: str) -> dict[str, Any]:
        """``GET /api/v1/media/:id``: an upload of this caller."""
        async with self._db.read() as txn:
            rows = await media_sql.info(txn, [media_id])
        if not rows or rows[0]["account"] != auth.account or rows[0]["user_name"] != auth.caller.user:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return dict(rows[0])

    async def describe(self, auth: ClientAuth, media_id: str, change: MediaEdit) -> dict[str, Any]:
        """``PUT /api/v1/media/:id``: new alt text or focal point for one of the caller's uploads.

        Mastodon takes this only before the upload is attached to a status; Byline also while
        the post it is attached to has not gone out (held, scheduled or suggested), so that the
        alt text and crop that go out are the ones the person set last. Either is a change to
        what the post publishes (the alt text is read as its words are; the focal point decides
        what a reader sees of the picture in every preview), so it is made as an edit of the
        post: a new version in the same transaction, logged as ``post.edited`` (naming the
        upload: ``described`` for new alt text, ``refocused`` for a new focal point), with the
        edit's consequences: approvals given before it no longer count, a scheduled post that
        needed them goes back to its approvers, the cooling-off starts again. Once the post is
        out, the upload is not found, as on Mastodon. Once the post ended (deleted, cancelled,
        rejected…), its uploads are free again, as Mastodon frees a deleted status's media for
        its redraft, and the uploader describes them as any unattached upload, before the
        redraft takes them (the post that ended keeps its own in its versions). A new focal point alone of a
        post for a platform that has none (Bluesky, X) changes nothing it publishes: it is kept
        on the upload, and the post stays as it is (:meth:`_refocused_in_place`). New alt text
        of a post written as a Bluesky record is refused (422): it goes out in the record's embed
        (:func:`_check_alt_not_in_record`).
        """
        row = await self.media_info(auth, media_id)
        new_description = row["description"] if change.description is None else (change.description or None)
        new_focus = row["focus"] if change.focus is None else _focus_text(change.focus)
        if (new_description, new_focus) == (row["description"], row["focus"]):
            return row
        post_id = row["post_id"]
        free = post_id is None
        if not free:
            async with self._db.read() as txn:
                free = bool(await media_sql.ended_posts(txn, [post_id]))
        if free:
            # A post's end is final: the compare-and-set on the owner is left to catch a redraft.
            async with self._db.write() as txn:
                if await media_sql.describe(txn, media_id, post_id=post_id, description=new_description,
                                            focus=new_focus):
                    return dict((await media_sql.info(txn, [media_id]))[0])
            # Attached by a status meanwhile: that post's rules apply now.
            return await self.describe(auth, media_id, change)
        post = await self._own_post(auth, post_id)
        if post is None or State(post.state) not in PENDING:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        named: dict[str, Any] = {}
        if new_description != row["description"]:
            _check_alt_not_in_record(post)
            named["described"] = [media_id]
        if new_focus != row["focus"]:
            named["refocused"] = [media_id]
        if "described" not in named and await self._refocused_in_place(
                post_id, post.version, {media_id: (new_description, new_focus)}):
            return await self.media_info(auth, media_id)

        async def redescribe(ltx: LogTxn, edited: str) -> dict[str, Any]:
            if not await media_sql.describe(ltx.txn, media_id, post_id=edited, description=new_description,
                                            focus=new_focus):
                raise BylineError(Code.CONFLICT, "the upload changed meanwhile; reload it and try again")
            return named

        await self._posts.edit(auth.caller, post_id, text=post.text, alongside=redescribe,
                               described={media_id: new_description}, of_version=post.version)
        return await self.media_info(auth, media_id)

    async def _refocused_in_place(
        self, post_id: str, version: int, changes: Mapping[str, tuple[str | None, str | None]],
    ) -> bool:
        """Give uploads of a post not out yet new focal points (``changes``: upload to its alt
        text, unchanged, and focal point) without a new version, where the post is hashed and
        sent without focal points (stored for a platform that has none): what its approvers
        approved is still what it publishes. False, changing nothing, for any other post, or
        one that has moved on from ``version``; 409 where an upload left the post meanwhile."""
        async with self._db.write() as txn:
            record = await posts_sql.get_post(txn, post_id)
            if record is None or sends_focus(record.content_scheme) or record.version != version \
                    or State(record.state) not in PENDING:
                return False
            for media_id, (description, focus) in changes.items():
                if not await media_sql.describe(txn, media_id, post_id=post_id, description=description, focus=focus):
                    raise BylineError(Code.CONFLICT, "the upload changed meanwhile; reload it and try again")
        logger.info("media_refocused", account=record.account, post_id=post_id, media_ids=sorted(changes))
        return True

    async def media_file(self, media_id: str, digest: str) -> tuple[str, bytes]:
        """An upload's bytes, for the app's preview; the URL carries its content digest."""
        async with self._db.read() as txn:
            rows = await media_sql.data(txn, [media_id])
        # compare_digest refuses str with non-ASCII characters, and the URL's part may have any.
        if not rows or not digest.isascii() or not hmac.compare_digest(rows[0]["digest"], digest):
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return rows[0]["mime_type"], bytes(rows[0]["data"])

    # -- reads passed through --------------------------------------------------------------

    async def passthrough(self, auth: ClientAuth, path: str, query: str, *, base: str,
                          method: str = "GET") -> Raw:
        """A listed read: from the account's Mastodon instance, or a quiet local answer.
        Anything else is refused (``relayed_path``)."""
        path = relayed_path(method, path)
        loaded = self._loaded(auth)
        if loaded.policy.platform != "mastodon":
            return await self._local_read(auth, path, base)
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, RawReader):
            raise BylineError(Code.NOT_FOUND, "Record not found")
        try:
            status, headers, body = await adapter.get_raw(path, query)
        except ValueError:
            raise BylineError(Code.NOT_FOUND, "Record not found") from None
        except AdapterError as exc:
            logger.warning("passthrough_failed", account=auth.account, path=path, error=exc.message)
            raise BylineError(Code.UNAVAILABLE, "Remote data could not be fetched") from None
        if status == 401:
            # The account's own credential was refused: the app's token is fine, so it must not
            # hear 401 (it would sign the person out). An admin has to fix the credential.
            self._platforms.mark(auth.account, "the platform refused the account's credential")
            raise BylineError(Code.UNAVAILABLE, "Remote data could not be fetched")
        out = {k: v for k, v in headers.items()
               if k.lower() in ("link", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset")}
        instance = (loaded.policy.instance or "").rstrip("/")
        for name in [k for k in out if k.lower() == "link"]:
            # Pagination links name the instance; the app must come back here instead.
            out[name] = out[name].replace(instance + "/api/", base + "/api/")
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            # The Mastodon API answers JSON only. Anything else (an HTML page, a script, an SVG
            # from a hostile or broken instance) served under Byline's origin would run there,
            # beside its sign-in and approval pages: it is not passed on.
            logger.warning("passthrough_not_json", account=auth.account, path=path, status=status,
                           content_type=content_type[:100])
            raise BylineError(Code.UNAVAILABLE, "Remote data could not be fetched")
        return Raw(status=status, body=body, content_type="application/json", headers=out)

    # -- the instance's live events ---------------------------------------------------------

    def instance_stream(self, account: str, stream: Sequence[str]) -> AsyncIterator[tuple[str, str]] | None:
        """The account's instance's live events of ``stream`` as the account, with the account's
        own credential (which stays here), or None when the account is not on Mastodon."""
        loaded = self._posts.policy(account)
        if loaded.policy.platform != "mastodon":
            return None
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, StreamReader):
            return None
        return adapter.stream_events(stream)

    def instance_identity(self, account: str) -> str | None:
        """What the account's instance is followed with now (its instance and credential, as a
        digest, never the credential), or None once the account is gone from the policies in
        force or is not on Mastodon."""
        loaded = self._policies.get(account)
        if loaded is None or loaded.policy.platform != "mastodon":
            return None
        return self._platforms.credential_of(loaded)

    def instance_username(self, account: str) -> str:
        """The account's username on its instance, from its handle (``@brand@host``: ``brand``),
        as the instance's own statuses name it in ``account.acct``."""
        return self._posts.policy(account).policy.handle.lstrip("@").partition("@")[0]

    def credential_refused(self, account: str) -> None:
        """The instance refused the account's own credential on its streaming API: shown to the
        admin as a REST read refused is (an app's stream carries on with Byline's own events)."""
        self._platforms.mark(account, "the platform refused the account's credential")

    async def made_here(self, account: str, remote_id: str) -> bool:
        """Whether the instance's status ``remote_id`` is a post Byline made for the account."""
        async with self._db.read() as txn:
            return await posts_sql.with_remote_id(txn, account=account, remote_id=remote_id) is not None

    async def _local_read(self, auth: ClientAuth, path: str, base: str) -> Raw:
        if _EMPTY_LISTS.match(path):
            return Raw(status=200, body=b"[]")
        if path in _QUIET_ANSWERS:
            return Raw(status=200, body=json.dumps(_QUIET_ANSWERS[path]).encode())
        entity = await self.account(auth)
        if path == f"/api/v1/accounts/{entity['id']}":
            return Raw(status=200, body=json.dumps(account_at(entity, base)).encode())
        raise BylineError(Code.NOT_FOUND, "Record not found")


@dataclass(frozen=True, kw_only=True)
class _Remembered:
    """An Idempotency-Key to remember with the post it makes."""

    token_hash: str
    key_hash: str
    kind: str
    at: int
    ttl: int

    @property
    def stale_before(self) -> int:
        """A use of the key older than this is forgotten: the key may make a new post."""
        return self.at - self.ttl


class _KeyUsed(Exception):
    """The key made a post within the hour (another request with it got there first)."""


Step = Callable[[LogTxn, str], Awaitable[None]]


def _steps(*steps: Step | None) -> Step | None:
    """Several steps in the transaction that stores a post, in order (None where none is given)."""
    given = [step for step in steps if step is not None]
    if not given:
        return None

    async def each(ltx: LogTxn, post_id: str) -> None:
        for step in given:
            await step(ltx, post_id)

    return each


def _remembering(key: _Remembered | None) -> Step | None:
    """The step that remembers an Idempotency-Key with its post, in the post's transaction: a
    live use of the key by another request refuses this post (:class:`_KeyUsed`), so nothing
    of it is stored."""
    if key is None:
        return None

    async def remember(ltx: LogTxn, post_id: str) -> None:
        if not await idem_sql.remember(ltx.txn, token_hash=key.token_hash, key_hash=key.key_hash, kind=key.kind,
                                       post_id=post_id, at=key.at, stale_before=key.stale_before):
            raise _KeyUsed

    return remember


def _attaching(
    media_ids: tuple[str, ...], *, read: Sequence[Mapping[str, Any]] = ()
) -> Callable[[LogTxn, str], Awaitable[None]] | None:
    """The step that gives a post its uploads, in the transaction that stores it (or its new
    version); an upload gone or another post's meanwhile refuses the change (422), so nothing of
    it is stored.

    ``read``: the uploads not yet any post's, as they were read before the rules ran. Their alt
    text may be changed (``PUT /api/v1/media/:id``) until the post takes them, so one whose alt
    text is no longer the one read refuses the change too (409): what the rules did not read
    does not go out with the post."""
    if not media_ids:
        return None
    described = {row["id"]: row["description"] for row in read}

    async def attach(ltx: LogTxn, post_id: str) -> None:
        refused = await media_sql.attach(ltx.txn, list(media_ids), post_id=post_id)
        if refused:
            raise BylineError(Code.VALIDATION, _media_refused(refused[0]))
        if described:
            now = {row["id"]: row["description"] for row in await media_sql.info(ltx.txn, list(described))}
            if now != described:
                raise BylineError(Code.CONFLICT, "An upload's alt text changed while the post was being checked: "
                                                 "send the post again")

    return attach


def _redescribing(
    attach: Step | None, redescribed: Mapping[str, tuple[str | None, str | None]],
) -> Callable[[LogTxn, str], Awaitable[Mapping[str, Any] | None]] | None:
    """The edit's steps in the transaction of its new version: ``attach`` (the uploads it adds),
    then the new alt text and focal points of ``media_attributes[]``, each a compare-and-set on
    the upload still being the post's. What it returns names the uploads in ``post.edited``, as
    ``PUT /api/v1/media/:id`` names them (``described``, ``refocused``)."""
    if not redescribed:
        return attach

    async def redescribe(ltx: LogTxn, post_id: str) -> Mapping[str, Any]:
        if attach is not None:
            await attach(ltx, post_id)
        before = {r["id"]: r for r in await media_sql.info(ltx.txn, list(redescribed))}
        named: dict[str, list[str]] = {}
        for media_id, (description, focus) in redescribed.items():
            row = before.get(media_id)
            if row is None or not await media_sql.describe(ltx.txn, media_id, post_id=post_id,
                                                           description=description, focus=focus):
                raise BylineError(Code.CONFLICT, "an upload changed meanwhile; reload it and try again")
            if description != row["description"]:
                named.setdefault("described", []).append(media_id)
            if focus != row["focus"]:
                named.setdefault("refocused", []).append(media_id)
        return named

    return redescribe


def _focus_text(point: tuple[float, float] | None) -> str | None:
    """A focal point as stored: "x,y"."""
    return None if point is None else f"{point[0]!r},{point[1]!r}"


def _check_alt_not_in_record(post: PostView) -> None:
    """Refuse new alt text for an upload of a post written as a Bluesky record (through XRPC):
    its alt text goes out in the record's embed, exactly as its client wrote it (the record's CID,
    answered at ``createRecord``, is computed over it), never from the upload. Changed on the
    upload, the approvers would see alt text that never goes out."""
    if post.options.get("embed") is not None:
        raise BylineError(Code.VALIDATION, (
            "Validation failed: the alt text of a post written as a Bluesky record (through XRPC) goes out "
            "in its record's embed, as its client wrote it, not from its upload: delete the post "
            "(com.atproto.repo.deleteRecord) and write it again with the new alt text"
        ))


def _check_pictures_not_in_record(post: PostView) -> None:
    """Refuse other uploads for a post written as a Bluesky record (through XRPC): the pictures
    that go out are those its record's embed names, exactly as its client wrote it (the
    adapter sends no upload the embed does not name); an upload added would be shown to the
    approvers and never go out, one taken away would still go out in the embed."""
    if post.options.get("embed") is not None:
        raise BylineError(Code.VALIDATION, (
            "Validation failed: the pictures of a post written as a Bluesky record (through XRPC) go out "
            "in its record's embed, as its client wrote it, not from its media: delete the post "
            "(com.atproto.repo.deleteRecord) and write it again with the pictures it is to show"
        ))


def _media_refused(media_id: str) -> str:
    return f"Validation failed: Media {media_id} not found or already attached to another post"


def relayed_path(method: str, raw_path: str) -> str:
    """The path to pass through for a listed read, in its canonical encoding; else a refusal.

    Matched on the decoded segments, exactly as written: an instance (Rails) squeezes double
    slashes and decodes what it routes, so no other spelling may slip past the list.
    """
    shown = raw_path[:200]
    if method != "GET":
        raise BylineError(Code.FORBIDDEN, f"Byline does not relay {method} {shown}: {_POLICY_GOVERNS}; "
                                          "only listed reads reach the account's instance")
    segments = _segments(raw_path)
    if segments is None or _RELAYED.fullmatch("/" + "/".join(segments)) is None:
        raise BylineError(Code.FORBIDDEN, f"Byline does not relay GET {shown}: only listed reads, written "
                                          f"as listed, reach the account's instance; {_POLICY_GOVERNS}")
    return "/" + "/".join(quote(segment, safe="") for segment in segments)


def _segments(raw_path: str) -> list[str] | None:
    """The decoded segments of a path, or ``None`` if any is empty, a dot, or hides a separator."""
    if not raw_path.startswith("/"):
        return None
    try:
        segments = [unquote(segment, errors="strict") for segment in raw_path[1:].split("/")]
    except UnicodeDecodeError:
        return None
    for segment in segments:
        if segment in ("", ".", "..") or "/" in segment or "\\" in segment or not segment.isprintable():
            return None
    return segments


def account_at(entity: dict[str, Any], base: str) -> dict[str, Any]:
    """An Account entity as an app is shown it: the paths on this gateway it names (an account
    Byline shows itself, ``_local_account``) made absolute under ``base``, where the app reaches
    the gateway. An instance's entity names none, and is given back as it is."""
    own = {key: base + value for key in _ON_GATEWAY
           if isinstance(value := entity.get(key), str) and value.startswith("/")}
    return {**entity, **own} if own else entity


def _addressed(entity: dict[str, Any], account: str) -> dict[str, Any]:
    """The instance's Account entity, with the account's public page here for its ``url`` where
    the instance gave no web address (a Mastodon-compatible server that leaves it out): apps
    decode it as a URL (Ice Cubes), and one missing drops the account and every status showing
    it, as for an account Byline builds (``_local_account``)."""
    url = entity.get("url")
    if isinstance(url, str) and SHOWN_URL.fullmatch(url):
        return entity
    return {**entity, "url": "/@" + quote(account, safe="")}


def _local_account(account: str, *, handle: str, display_name: str | None, url: str | None) -> dict[str, Any]:
    """An Account entity for an account whose platform is not Mastodon."""
    acct = (handle or account).lstrip("@")
    username = acct.split("@")[0] or account
    page = "/@" + quote(account, safe="")
    return {
        "id": numeric_id(account), "username": username, "acct": acct,
        "display_name": display_name or username, "locked": False, "bot": False,
        "discoverable": None, "group": False, "created_at": "1970-01-01T00:00:00.000Z",
        # Every URL an absolute one, as Mastodon gives it: an app written in Swift (Ice Cubes)
        # decodes them as URLs, and "" is none, so the whole account, and every status showing
        # it, fails to decode. With no address of its own, the account is its public page here.
        "note": "", "url": url or page, "uri": url or page, "avatar": MISSING_AVATAR,
        "avatar_static": MISSING_AVATAR, "header": MISSING_HEADER, "header_static": MISSING_HEADER,
        "followers_count": 0, "following_count": 0,
        "statuses_count": 0, "last_status_at": None, "emojis": [], "fields": [],
        "indexable": False, "hide_collections": None, "noindex": True, "roles": [],
    }
