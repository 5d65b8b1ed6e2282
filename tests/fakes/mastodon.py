"""A strict local Mastodon: the statuses, media and accounts API methods Byline uses.

``create_app(fake)`` builds an ``aiohttp.web.Application`` around a ``FakeMastodon``, whose
attributes hold what was published (``statuses()``) and whose ``faults`` and ``clock``
drive failures and time from tests.

Documented rules it enforces, and where they are written:

* docs.joinmastodon.org/methods/accounts/#update_credentials (``PATCH``): ``fields_attributes``
  is a hash of ``{name, value}`` that replaces the profile's fields; at most 4 fields, each
  name and value at most 255 characters, else 422 ``{"error": "Validation failed: Fields is
  too long (maximum is 4 characters)"}`` (Rails' length message, as Mastodon answers it) or
  ``Fields name``/``Fields value is too long (maximum is 255 characters)``; what is not sent is
  left as it was. ``verify_credentials`` shows them as written under ``source.fields``.

* Scopes, per method, as Mastodon's controllers check them with Doorkeeper and the API docs
  list them ("OAuth: User token + write:statuses"): each token has a set of scopes (by default
  ``DEFAULT_SCOPES``, what the README tells admins to give the application), and a parent scope
  (``read``, ``write``) covers its children. Creating, editing and deleting a status needs
  ``write:statuses``; reading one (``GET /api/v1/statuses/:id``, ``GET /api/v1/statuses``) and
  an account's statuses (``GET /api/v1/accounts/:id/statuses``) needs ``read:statuses`` when a
  token is sent (``authorize_if_got_token!``: without one, public statuses are shown); media,
  upload and ``GET /api/v1/media/:id`` alike, ``write:media``; ``verify_credentials``
  ``read:accounts`` (or ``profile``, since 4.3), ``update_credentials`` ``write:accounts``.
  A known token without the scope is answered 403 ``{"error": "This action is outside the
  authorized scopes"}`` (``Api::BaseController#doorkeeper_forbidden_render_options``).
* docs.joinmastodon.org/methods/statuses/#create ("Post a new status"):
  - ``Authorization: Bearer <user_token>`` is required; a missing, unknown, revoked or
    expired token is answered 401 ``{"error": "The access token is invalid"}`` (the
    documented 401 body, also on /methods/accounts/#verify_credentials and /methods/media).
  - ``status`` is required unless ``media_ids`` is given; blank text without media is 422
    ``{"error": "Validation failed: Text can't be blank"}`` (the documented 422 body).
  - ``media_ids`` and ``poll`` exclude each other.
  - ``visibility`` is one of ``public``, ``unlisted``, ``private``, ``direct``.
  - ``language`` is an ISO 639-1 code. (Mastodon itself silently drops an unknown code —
    ``PostStatusService#language_from_option`` returns nil — the stand-in answers 422 so that
    a wrong code from an adapter fails a test instead of vanishing.)
  - ``scheduled_at`` must be at least 5 minutes in the future; a scheduled post returns a
    ScheduledStatus instead of a Status.
  - ``in_reply_to_id`` must name an existing status the account may see (404 otherwise, as
    ``StatusesController#set_thread`` does).
  - Form data parameters: both form-encoded (``application/x-www-form-urlencoded`` and
    ``multipart/form-data``, arrays as ``media_ids[]``) and JSON bodies are accepted, as
    Rails' parameter parsing does for every API method.
  - ``Idempotency-Key``: "prevent duplicate submissions of the same status … stored for up
    to 1 hour": the same key from the same account within an hour returns the status made
    the first time (``PostStatusService`` keys Redis by account id and key, TTL 3600 s).
* Status length (``app/validators/status_length_validator.rb``): the spoiler text plus the
  text, counted in grapheme clusters, with every URL counted as 23 characters and a remote
  mention ``@user@domain`` as ``@user``, must not exceed 500: otherwise 422
  ``Validation failed: Text character limit of 500 exceeded``.
* docs.joinmastodon.org/methods/statuses/#edit: ``PUT`` replaces text, spoiler (cleared when
  omitted), sensitivity and language of one's own status, and sets ``edited_at``.
* docs.joinmastodon.org/methods/statuses/#get and #delete: 404 ``{"error": "Record not
  found"}`` for unknown statuses (and for other accounts' statuses on delete; private ones
  are hidden from others); delete returns the status with its source ``text``.
* docs.joinmastodon.org/methods/accounts/#statuses: newest first, ``limit`` default 20 and
  max 40, ``max_id`` / ``since_id`` / ``min_id``, ``exclude_reblogs``; 404 for an unknown
  account.
* docs.joinmastodon.org/methods/media/#v2 and #get, with the limits of Mastodon 4.x
  (``app/models/media_attachment.rb``, ``Api::V2::MediaController``, ``Api::V1::MediaController``):
  - ``file`` is required, as multipart form data, with a MIME type among
    ``MediaAttachment.supported_mime_types`` (``MEDIA_MIME_TYPES``); any other is 422
    ``Validation failed: File content type is invalid, File is invalid``.
  - A file must be smaller than ``IMAGE_LIMIT`` (16 MB) if it is an image and ``VIDEO_LIMIT``
    (99 MB) if video or audio: Paperclip's ``less_than``, so exactly 16 MB is refused too, with
    422 ``Validation failed: File file size must be less than 16 MB``. A body over 99 MB never
    reaches Rails: the proxy in front (nginx ``client_max_body_size 99m``) answers 413.
  - ``description`` is at most 1500 characters (422 ``Validation failed: Description is too
    long (maximum is 1500 characters)``).
  - ``focus`` is ``"x,y"``, two floats in [-1, 1], shown as ``meta.focus``; anything else is
    refused here (Mastodon would store a wrong one as it reads it).
  - 200 with the MediaAttachment when the file is processed at once (images, since 4.0); 202
    with the MediaAttachment and ``url: null`` while the full-size file is processed in the
    background (video and audio always; any file while ``media_processing_polls`` is set, as
    before 4.0). Processing that fails at once is 500 ``Error processing thumbnail for
    uploaded media``, and nothing is stored.
  - ``GET /api/v1/media/:id``: 206 with the MediaAttachment while processing, 200 once done,
    422 ``Error processing thumbnail for uploaded media`` once processing failed; 404 for an
    upload of another account or already attached to a status.
  - A status refuses media not processed (still processing, or failed), more than 4 files,
    and a video or audio file together with any other (``PostStatusService#validate_media!``).
* docs.joinmastodon.org/api/rate-limits: every answer carries ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset`` (an ISO 8601 time); 300 requests per
  account per 5 minutes, then 429 ``{"error": "Too many requests"}``
  (docs.joinmastodon.org/methods/accounts, 429 example).
* docs.joinmastodon.org/methods/streaming (the streaming server, ``streaming/index.js``): the
  WebSocket at ``/api/v1/streaming`` takes the token as ``Authorization: Bearer``, as the
  ``access_token`` query parameter or as ``Sec-WebSocket-Protocol`` (echoed back); none is 401
  ``{"error": "Missing access token"}``, one not known 401 ``{"error": "Invalid access
  token"}``, both before the upgrade. ``?stream=`` and ``{"type": "subscribe", "stream": …}``
  name the streams it knows (``user``, ``user:notification``, ``public`` and its ``:local`` /
  ``:remote`` / ``:media`` kinds, ``hashtag`` and ``hashtag:local`` with ``tag``, ``list`` with
  ``list``, ``direct``); any other is ``{"error": "Unknown stream type", "status": 400}`` on the
  socket, which stays open. A stream the token's scopes do not cover (``read``, or
  ``read:notifications`` for ``user:notification`` and ``read:statuses`` for every other:
  ``checkScopes``) is ``{"error": "Access token does not have the required scopes", "status":
  401}`` on the socket, which stays open too. Events are ``{"stream": [...], "event": …, "payload": "<JSON text>"}``;
  a status the account posts, edits or deletes is told on its own ``user`` stream (``update``,
  ``status.update``, ``delete`` with the id), as Mastodon's home feed tells one's own posts. A
  revoked token's sockets are closed. ``/api/v1/streaming/health`` answers ``OK``. With
  ``streaming_url`` set, the main host answers both paths with a 301 to the streaming server's
  own host, as ``Api::V1::StreamingController`` does.
* entities/Status: ids are strings of digits, ``content`` is HTML (paragraphs in ``<p>``,
  line breaks ``<br />``, links split into ``invisible``/``ellipsis`` spans, remote mentions
  shown as ``@user``), ``created_at`` an ISO 8601 time with milliseconds and ``Z``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiDictProxy

from tests.fakes._faults import FakeClock, Faults, drop_connection

MAX_CHARS = 500
URL_PLACEHOLDER = "x" * 23
IDEMPOTENCY_TTL = timedelta(hours=1)
SCHEDULE_MIN_OFFSET = timedelta(minutes=5)
RATE_LIMIT = 300
RATE_WINDOW = timedelta(minutes=5)
VISIBILITIES = ("public", "unlisted", "private", "direct")
MAX_PROFILE_FIELDS = 4
"""Profile metadata fields an account may have (update_credentials: "By default, max 4 fields")."""
MAX_FIELD_CHARACTERS = 255
"""Characters of a field's name or value ("… and 255 characters per property/value")."""
MAX_MEDIA = 4
IMAGE_MIME_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "image/avif"}
)
VIDEO_MIME_TYPES = frozenset({"video/webm", "video/mp4", "video/quicktime", "video/ogg"})
AUDIO_MIME_TYPES = frozenset({
    "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave", "audio/ogg",
    "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac", "audio/aac", "audio/m4a",
    "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf",
})
MEDIA_MIME_TYPES = IMAGE_MIME_TYPES | VIDEO_MIME_TYPES | AUDIO_MIME_TYPES
IMAGE_LIMIT = 16 * 1024 * 1024
VIDEO_LIMIT = 99 * 1024 * 1024
MAX_DESCRIPTION = 1500
PROXY_BODY_LIMIT = 99 * 1024 * 1024
PROCESSING_ERROR = "Error processing thumbnail for uploaded media"
OUTSIDE_SCOPES = "This action is outside the authorized scopes"
"""Mastodon's answer (403) to a token without the scope a method needs."""
DEFAULT_SCOPES = frozenset({"read:accounts", "read:statuses", "write:statuses", "write:media", "write:accounts"})
"""A token's scopes unless a test narrows them: what the README tells admins to give."""
READ_STATUSES = ("read", "read:statuses")
WRITE_STATUSES = ("write", "write:statuses")
WRITE_MEDIA = ("write", "write:media")
READ_ACCOUNTS = ("profile", "read", "read:accounts")
WRITE_ACCOUNTS = ("write", "write:accounts")

ISO_639_1 = frozenset(
    """aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu
    cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho
    hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv
    kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr
    nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq
    sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi vo wa wo xh
    yi yo za zh zu""".split()  # noqa: SIM905 - the table reads better as text
)

_URL_RE = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?'\")]}"
_MENTION_RE = re.compile(r"(?<![\w/=])@(\w+(?:[\w.-]*\w)?)(?:@([\w.-]*\w))?")
_FALSE_VALUES = {"false", "0", "f", "off", ""}


@dataclass
class Account:
    """A local account and its tokens."""

    id: str
    username: str
    display_name: str
    tokens: set[str] = field(default_factory=set)
    note: str = ""
    fields: list[dict[str, str]] = field(default_factory=list)
    """Profile metadata, as the account wrote it (``source.fields``): ``name`` and ``value``."""


@dataclass
class Media:
    """An uploaded attachment."""

    id: str
    account_id: str
    mime_type: str
    description: str | None
    size: int
    pending_polls: int
    """How many more ``GET /api/v1/media/:id`` answer 206 before processing ends."""
    fails: bool = False
    """Processing ends in failure."""
    status_id: str | None = None
    focus: tuple[float, float] | None = None
    data: bytes = b""
    """The file's bytes, as uploaded."""

    @property
    def kind(self) -> str:
        """The MediaAttachment ``type``."""
        if self.mime_type in VIDEO_MIME_TYPES:
            return "video"
        if self.mime_type in AUDIO_MIME_TYPES:
            return "audio"
        return "gifv" if self.mime_type == "image/gif" else "image"

    @property
    def processed(self) -> bool:
        """Processing ended well: the full-size file has its URL."""
        return self.pending_polls <= 0 and not self.fails

    @property
    def failed(self) -> bool:
        """Processing ended in failure."""
        return self.pending_polls <= 0 and self.fails


@dataclass
class Status:
    """A published status, as stored."""

    id: str
    account_id: str
    text: str
    spoiler_text: str
    sensitive: bool
    visibility: str
    language: str | None
    in_reply_to_id: str | None
    media_ids: list[str]
    created_at: datetime
    idempotency_key: str | None = None
    deleted: bool = False
    edited_at: datetime | None = None
    media_edits: list[dict[str, dict[str, Any]]] = field(default_factory=list)
    """Each edit's ``media_attributes`` as applied, by media id: what changed, and how often."""
    edits: list[str] = field(default_factory=list)
    """Each edit's text, in order: how often the status was edited, and to what."""
    reblog_of: str | None = None
    """The id of the status this one boosts (a reblog: no words of its own)."""


@dataclass
class ScheduledStatus:
    """A status waiting for its ``scheduled_at``."""

    id: str
    account_id: str
    scheduled_at: datetime
    params: dict[str, Any]


STREAMS = frozenset({
    "user", "user:notification", "public", "public:media", "public:local", "public:local:media", "public:remote",
    "public:remote:media", "hashtag", "hashtag:local", "list", "direct",
})
"""The streams Mastodon's streaming server knows."""
STREAM_SCOPES = "Access token does not have the required scopes"
"""The streaming server's refusal (401, on the socket) of a stream the token's scopes do not cover."""


@dataclass
class StreamSocket:
    """One open streaming WebSocket: whose, with which token, and its subscriptions."""

    ws: web.WebSocketResponse
    account_id: str
    token: str
    streams: set[tuple[str, ...]] = field(default_factory=set)


class MastodonError(Exception):
    """Raised inside handlers; becomes ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FakeMastodon:
    """The stand-in's state and test controls."""

    def __init__(self, *, host: str = "mastodon.example") -> None:
        self.host = host
        self.clock = FakeClock()
        self.faults = Faults()
        self.accounts: dict[str, Account] = {}
        self.media: dict[str, Media] = {}
        self.scheduled: dict[str, ScheduledStatus] = {}
        self.media_processing_polls = 0
        """How many ``GET /api/v1/media/:id`` answer 206 before an upload is processed; any
        upload is then answered 202 (video and audio always are, with at least one 206)."""
        self.media_processing_failures = 0
        """How many of the next uploads fail to process: at once (500) if processed at once,
        else when their processing ends (GET answers 422)."""
        self.stream_sockets: list[StreamSocket] = []
        """The streaming WebSockets open now."""
        self.streaming_url: str | None = None
        """The streaming server's own base URL (``ws://host:port``), when it has a host of its
        own: the main host then redirects ``/api/v1/streaming`` there, as Mastodon does."""
        self._closing: set[asyncio.Task[bool]] = set()
        self.stream_connections: list[tuple[str, tuple[str, ...]]] = []
        """Every streaming WebSocket opened: the account's id and the streams named as it opened."""
        self.token_scopes: dict[str, frozenset[str]] = {}
        """Each token's scopes where a test chose them; any other token has ``DEFAULT_SCOPES``."""
        self.profile_urls = True
        """Whether an Account entity carries its profile ``url``; False: a Mastodon-compatible
        server (some forks) that leaves it out."""
        self.anonymous_reads = True
        """Whether a status is shown to a reader without a token; False: a server that answers
        them 404 (Pleroma's ``restrict_unauthenticated``)."""
        self._statuses: dict[str, Status] = {}
        self._idempotency: dict[tuple[str, str], tuple[str, datetime]] = {}
        self._rate: dict[str, tuple[datetime, int]] = {}
        self._ids = itertools.count(110_000_000_000_000_001)

    # -- test controls -------------------------------------------------------------------------

    def add_account(self, username: str, token: str, *, scopes: frozenset[str] = DEFAULT_SCOPES) -> Account:
        """Create an account whose access token is ``token``, with ``scopes``."""
        account = Account(id=str(len(self.accounts) + 1), username=username,
                          display_name=username.title(), tokens={token})
        self.accounts[account.id] = account
        self.token_scopes[token] = scopes
        return account

    def scope_token(self, token: str, *scopes: str) -> None:
        """Give ``token`` these scopes and no others, as an application registered with them."""
        self.token_scopes[token] = frozenset(scopes)

    def revoke_token(self, token: str) -> None:
        """Make ``token`` invalid, as revoking or expiry does (its streams are closed)."""
        for account in self.accounts.values():
            account.tokens.discard(token)
        for open_socket in self.stream_sockets:
            if open_socket.token == token and not open_socket.ws.closed:
                closing = asyncio.get_running_loop().create_task(open_socket.ws.close(code=1008))
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)

    async def notify(self, account: Account, notification: dict[str, Any]) -> int:
        """Tell ``account`` a notification, as Mastodon does: on its ``user`` and
        ``user:notification`` streams; how many sockets heard it."""
        payload = json.dumps(notification)
        return (await self.emit(account, ("user",), "notification", payload)
                + await self.emit(account, ("user:notification",), "notification", payload))

    async def emit(self, account: Account, stream: tuple[str, ...], event: str, payload: str | None) -> int:
        """Send one event to ``account``'s sockets subscribed to ``stream``; how many were sent it."""
        sent = 0
        for open_socket in list(self.stream_sockets):
            if open_socket.account_id == account.id and stream in open_socket.streams and not open_socket.ws.closed:
                message: dict[str, Any] = {"stream": list(stream), "event": event}
                if payload is not None:
                    message["payload"] = payload
                await open_socket.ws.send_str(json.dumps(message))
                sent += 1
        return sent

    async def drop_streams(self) -> None:
        """Cut every streaming connection, as a restart of the streaming server does."""
        for open_socket in list(self.stream_sockets):
            await open_socket.ws.close(code=1001, message=b"going away")

    def render_notification(self, kind: str, *, by: Account, status: Status | None = None) -> dict[str, Any]:
        """A Notification entity (``mention``, ``favourite``, ``follow``…)."""
        return {
            "id": self._next_id(), "type": kind, "created_at": _iso(self.clock.now()),
            "account": self.render_account(by),
            "status": None if status is None else self.render_status(status),
        }

    expire_token = revoke_token

    def statuses(self, account: Account | None = None, *,
                 include_deleted: bool = False) -> list[Status]:
        """Published statuses, oldest first."""
        return [
            s for s in self._statuses.values()
            if (account is None or s.account_id == account.id)
            and (include_deleted or not s.deleted)
        ]

    def status(self, status_id: str) -> Status | None:
        """One stored status, deleted or not."""
        return self._statuses.get(status_id)

    def seed_status(self, account: Account, text: str, *, created_at: datetime,
                    in_reply_to_id: str | None = None, spoiler_text: str = "") -> Status:
        """Store a status directly, e.g. an identical post made long ago."""
        status = Status(
            id=self._next_id(), account_id=account.id, text=text, spoiler_text=spoiler_text,
            sensitive=False, visibility="public", language=None, in_reply_to_id=in_reply_to_id,
            media_ids=[], created_at=created_at,
        )
        self._statuses[status.id] = status
        return status

    def seed_reblog(self, account: Account, of: Status, *, created_at: datetime) -> Status:
        """Store ``account``'s boost of ``of``: a status of its own id, with no words, whose
        ``reblog`` is ``of`` (as Mastodon answers ``GET /api/v1/statuses/:id`` for it)."""
        status = self.seed_status(account, "", created_at=created_at)
        status.reblog_of = of.id
        return status

    # -- internals ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return str(next(self._ids))

    def _account_for(self, request: web.Request, *, required: bool, scopes: tuple[str, ...]) -> Account | None:
        """The token's account (None without a token, where ``required`` is not set); 401 for a
        token not known, 403 for one with none of ``scopes`` (Doorkeeper's check: any one will do)."""
        header = request.headers.get("Authorization")
        if header is None:
            if required:
                raise MastodonError(401, "The access token is invalid")
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token:
            for account in self.accounts.values():
                if token in account.tokens:
                    self._count_request(account)
                    if not self.token_scopes.get(token, DEFAULT_SCOPES) & set(scopes):
                        raise MastodonError(403, OUTSIDE_SCOPES)
                    return account
        raise MastodonError(401, "The access token is invalid")

    def _count_request(self, account: Account) -> None:
        now = self.clock.now()
        start, used = self._rate.get(account.id, (now, 0))
        if now - start >= RATE_WINDOW:
            start, used = now, 0
        self._rate[account.id] = (start, used + 1)
        if used + 1 > RATE_LIMIT:
            raise MastodonError(429, "Too many requests")

    def rate_headers(self, request: web.Request) -> dict[str, str]:
        """The X-RateLimit-* headers for whoever sent ``request``."""
        now = self.clock.now()
        remaining = RATE_LIMIT
        reset = now + RATE_WINDOW
        token = request.headers.get("Authorization", "").partition(" ")[2]
        for account in self.accounts.values():
            if token and token in account.tokens and account.id in self._rate:
                start, used = self._rate[account.id]
                remaining = max(0, RATE_LIMIT - used)
                reset = start + RATE_WINDOW
        return {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": _iso(reset),
        }

    def _visible(self, status: Status, viewer: Account | None) -> bool:
        if status.deleted:
            return False
        if status.visibility in ("private", "direct"):
            return viewer is not None and viewer.id == status.account_id
        return True

    def render_status(self, status: Status, *, with_source: bool = False) -> dict[str, Any]:
        """The Status entity."""
        account = self.accounts[status.account_id]
        in_reply_to_account = None
        if status.in_reply_to_id and status.in_reply_to_id in self._statuses:
            in_reply_to_account = self._statuses[status.in_reply_to_id].account_id
        entity: dict[str, Any] = {
            "id": status.id,
            "created_at": _iso(status.created_at),
            "in_reply_to_id": status.in_reply_to_id,
            "in_reply_to_account_id": in_reply_to_account,
            "sensitive": status.sensitive,
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": status.language,
            "uri": f"https://{self.host}/users/{account.username}/statuses/{status.id}",
            "url": f"https://{self.host}/@{account.username}/{status.id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": _iso(status.edited_at) if status.edited_at else None,
            "content": render_content(status.text, self.host),
            "reblog": None if status.reblog_of is None else self.render_status(self._statuses[status.reblog_of]),
            "application": {"name": "Byline", "website": None},
            "account": self.render_account(account),
            "media_attachments": [self.render_media(self.media[m]) for m in status.media_ids],
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }
        if status.reblog_of is not None:  # a boost: its own address, no words of its own
            entity["uri"] = entity["url"] = f"https://{self.host}/users/{account.username}/statuses/{status.id}/activity"
            entity["content"] = ""
        if with_source:
            entity["text"] = status.text
        return entity

    def render_account(self, account: Account) -> dict[str, Any]:
        """The Account entity (without ``url`` where ``profile_urls`` is False)."""
        entity = {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.display_name,
            "locked": False,
            "bot": True,
            "url": f"https://{self.host}/@{account.username}",
            "note": account.note,
            "fields": [{"name": f["name"], "value": f["value"], "verified_at": None} for f in account.fields],
            "statuses_count": len(self.statuses(account)),
        }
        if not self.profile_urls:
            del entity["url"]
        return entity

    def render_media(self, media: Media) -> dict[str, Any]:
        """The MediaAttachment entity; ``url`` is null until processed."""
        return {
            "id": media.id,
            "type": media.kind,
            "url": f"https://files.{self.host}/original/{media.id}" if media.processed else None,
            "preview_url": f"https://files.{self.host}/small/{media.id}",
            "remote_url": None,
            "description": media.description,
            "blurhash": None,
            "meta": {"focus": {"x": media.focus[0], "y": media.focus[1]}} if media.focus else {},
        }


# -- content rendering ---------------------------------------------------------------------


def render_content(text: str, host: str) -> str:
    """Status text as Mastodon's TextFormatter renders it: paragraphs, breaks, links."""
    paragraphs = [p for p in re.split(r"\n\n+", text.strip()) if p]
    rendered = []
    for paragraph in paragraphs:
        lines = [_render_line(line, host) for line in paragraph.split("\n")]
        rendered.append("<p>" + "<br />".join(lines) + "</p>")
    return "".join(rendered)


def _render_line(line: str, host: str) -> str:
    out: list[str] = []
    position = 0
    for match in _URL_RE.finditer(line):
        url = match.group(0).rstrip(_URL_TRAILING)
        out.append(_render_mentions(line[position : match.start()], host))
        out.append(_render_link(url))
        position = match.start() + len(url)
    out.append(_render_mentions(line[position:], host))
    return "".join(out)


def _render_link(url: str) -> str:
    scheme, _, rest = url.partition("://")
    prefix = scheme + "://"
    if len(rest) > 30:
        visible = f'<span class="ellipsis">{escape(rest[:30])}</span>'
        tail = f'<span class="invisible">{escape(rest[30:])}</span>'
    else:
        visible = f'<span class="">{escape(rest)}</span>'
        tail = '<span class="invisible"></span>'
    return (
        f'<a href="{escape(url)}" target="_blank" rel="nofollow noopener noreferrer">'
        f'<span class="invisible">{escape(prefix)}</span>{visible}{tail}</a>'
    )


def _render_mentions(text: str, host: str) -> str:
    out: list[str] = []
    position = 0
    for match in _MENTION_RE.finditer(text):
        user, domain = match.group(1), match.group(2) or host
        out.append(escape(text[position : match.start()]))
        out.append(
            f'<span class="h-card" translate="no"><a href="https://{escape(domain)}/@'
            f'{escape(user)}" class="u-url mention">@<span>{escape(user)}</span></a></span>'
        )
        position = match.end()
    out.append(escape(text[position:]))
    return "".join(out)


# -- length --------------------------------------------------------------------------------


def countable_length(text: str, spoiler_text: str) -> int:
    """StatusLengthValidator's count: graphemes of spoiler + text, URLs 23, mentions short."""

    def url(match: re.Match[str]) -> str:
        raw = match.group(0)
        kept = raw.rstrip(_URL_TRAILING)
        return URL_PLACEHOLDER + raw[len(kept) :]

    countable = _URL_RE.sub(url, text)
    countable = _MENTION_RE.sub(lambda m: "@" + m.group(1), countable)
    return _graphemes(spoiler_text + countable)


def _graphemes(text: str) -> int:
    # A small segmenter of its own (not the adapter's): marks, selectors, skin tones, tags
    # and ZWJ continuations join the cluster before them; regional indicators pair up.
    clusters = 0
    join_next = False
    pending_flag = False
    last = ""
    for ch in text:
        cp = ord(ch)
        extend = (
            unicodedata.category(ch).startswith("M")
            or 0xFE00 <= cp <= 0xFE0F
            or 0x1F3FB <= cp <= 0x1F3FF
            or 0xE0020 <= cp <= 0xE007F
            or cp in (0x200D, 0x20E3)
        )
        if join_next or (extend and clusters) or (last == "\r" and ch == "\n"):
            join_next = cp == 0x200D
            last = ch
            continue
        if 0x1F1E6 <= cp <= 0x1F1FF and pending_flag:
            pending_flag = False
            last = ch
            continue
        pending_flag = 0x1F1E6 <= cp <= 0x1F1FF
        clusters += 1
        last = ch
    return clusters


# -- request parsing -----------------------------------------------------------------------


async def _params(request: web.Request) -> dict[str, Any]:
    """Form data parameters from a JSON, urlencoded or multipart body, arrays as lists."""
    if request.content_type == "application/json":
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise MastodonError(400, "Error while parsing request body") from None
        if not isinstance(body, dict):
            raise MastodonError(400, "Error while parsing request body")
        return body
    form: MultiDictProxy[Any] = await request.post()
    params: dict[str, Any] = {}
    for key in form:
        values = form.getall(key)
        if key.endswith("[]"):
            params[key[:-2]] = [str(v) for v in values]
        elif key.startswith("poll[options]"):
            params.setdefault("poll", {}).setdefault("options", []).extend(map(str, values))
        elif key.startswith("poll["):
            params.setdefault("poll", {})[key[5:-1]] = str(values[-1])
        else:
            params[key] = values[-1]
    return params


_ATTRIBUTE = re.compile(r"^fields_attributes\[([^\]]*)\]\[(name|value)\]$")


async def _profile_params(request: web.Request) -> dict[str, Any]:
    """update_credentials' parameters: as JSON, or as form data with the nested
    ``fields_attributes[i][name]`` keys Rails reads into a hash."""
    if request.content_type == "application/json":
        return await _params(request)
    form: MultiDictProxy[Any] = await request.post()
    params: dict[str, Any] = {}
    for key in form:
        value = form.getall(key)[-1]
        if (match := _ATTRIBUTE.match(key)) is not None:
            params.setdefault("fields_attributes", {}).setdefault(match.group(1), {})[match.group(2)] = str(value)
        elif isinstance(value, str):
            params[key] = value
    return params


def _focus(value: Any) -> tuple[float, float] | None:
    """``focus`` as Mastodon's ``MediaAttachment#focus=`` reads it: ``"x,y"``, two floats in
    [-1, 1] (the API docs); anything else is refused here, so a sender cannot pass a wrong one."""
    if not isinstance(value, str) or not value:
        return None
    parts = value.split(",")
    try:
        x, y = (float(p) for p in parts)
    except ValueError:
        raise MastodonError(422, "Validation failed: Focus is invalid") from None
    if not (-1 <= x <= 1 and -1 <= y <= 1):
        raise MastodonError(422, "Validation failed: Focus is invalid")
    return x, y


def _media_changes(status: Status, params: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """An edit's ``media_attributes[]`` (4.1+), checked before anything changes: what each
    changes of the status's media, by id. As Mastodon's ``UpdateStatusService``, they count only
    with ``media_ids`` (without, the media stay as they are, attributes and all); stricter than
    it, ``media_ids`` must be the status's own media in their order (Byline never changes which
    pictures a published status has, so anything else is a bug of the sender's), and each
    attribute must name one of them. Description and focus are checked as the upload checks them."""
    if "media_ids" not in params:
        return {}
    media_ids = params.get("media_ids") or []
    if not isinstance(media_ids, list) or [str(m) for m in media_ids] != status.media_ids:
        raise MastodonError(422, "Validation failed: media_ids must be the status's media")
    attributes = params.get("media_attributes") or []
    if not isinstance(attributes, list) or not all(isinstance(a, dict) for a in attributes):
        raise MastodonError(422, "Validation failed: media_attributes must be an array of objects")
    changes: dict[str, dict[str, Any]] = {}
    for attribute in attributes:
        media_id = str(attribute.get("id"))
        if media_id not in status.media_ids:
            raise MastodonError(422, f"Validation failed: Media {media_id} is not attached to this status")
        change = changes.setdefault(media_id, {})
        if "description" in attribute:
            description = _text(attribute["description"], "Description")
            if description is not None and len(description) > MAX_DESCRIPTION:
                raise MastodonError(422, "Validation failed: Description is too long (maximum is "
                                         f"{MAX_DESCRIPTION} characters)")
            change["description"] = description
        if "focus" in attribute:
            change["focus"] = _focus(attribute["focus"])
    return {m: c for m, c in changes.items() if c}


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() not in _FALSE_VALUES


def _text(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MastodonError(422, f"Validation failed: {name} must be a string")
    return value


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# -- application ---------------------------------------------------------------------------

FAKE_KEY = web.AppKey("fake_mastodon", FakeMastodon)


def create_app(fake: FakeMastodon | None = None) -> web.Application:
    """An aiohttp application serving ``fake`` (a new one if none is given)."""
    fake = fake or FakeMastodon()

    def error_response(status: int, message: str, headers: Mapping[str, str] | None = None
                       ) -> web.Response:
        return web.json_response({"error": message}, status=status, headers=headers)

    def render_fault(status: int) -> web.Response:
        if status in (502, 503, 504):
            # What the reverse proxy in front of Puma answers: HTML, not JSON.
            return web.Response(status=status, content_type="text/html",
                                text=f"<html><body><h1>{status}</h1></body></html>")
        return error_response(status, "We're sorry, but something went wrong on our end.")

    def render_rate_limit(retry_after: float, send_retry_after: bool) -> web.Response:
        reset = fake.clock.now() + timedelta(seconds=retry_after)
        headers = {
            "X-RateLimit-Limit": str(RATE_LIMIT),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _iso(reset),
        }
        if send_retry_after:
            headers["Retry-After"] = str(int(retry_after))
        return error_response(429, "Too many requests", headers)

    @web.middleware
    async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except MastodonError as exc:
            response = error_response(exc.status, exc.message)
        except web.HTTPNotFound:
            response = error_response(404, "Record not found")
        except web.HTTPMethodNotAllowed:
            response = error_response(405, "Method not allowed")
        if not response.prepared:
            for name, value in fake.rate_headers(request).items():
                # A rate-limit fault already set its own (exhausted) values.
                response.headers.setdefault(name, value)
        return response

    async def create_status(request: web.Request) -> web.StreamResponse:
        account = fake._account_for(request, required=True, scopes=WRITE_STATUSES)
        assert account is not None
        params = await _params(request)
        thread_id = _text(params.get("in_reply_to_id"), "In reply to")
        if thread_id:
            thread = fake.status(thread_id)
            if thread is None or not fake._visible(thread, account):
                raise MastodonError(404, "The post you are trying to reply to does not "
                                         "appear to exist.")
        key = request.headers.get("Idempotency-Key")
        now = fake.clock.now()
        if key:
            remembered = fake._idempotency.get((account.id, key))
            if remembered is not None and now - remembered[1] < IDEMPOTENCY_TTL:
                existing = fake.status(remembered[0])
                if existing is not None:
                    return web.json_response(fake.render_status(existing))

        text = _text(params.get("status"), "Status") or ""
        spoiler = _text(params.get("spoiler_text"), "Spoiler text") or ""
        media_ids = params.get("media_ids") or []
        if not isinstance(media_ids, list) or not all(isinstance(m, str | int) for m in
                                                      media_ids):
            raise MastodonError(422, "Validation failed: media_ids must be an array")
        media_ids = [str(m) for m in media_ids]
        poll = params.get("poll")
        if media_ids and poll:
            raise MastodonError(422, "Cannot attach files to a post with a poll")
        if len(media_ids) > MAX_MEDIA:
            raise MastodonError(422, f"Cannot attach more than {MAX_MEDIA} files")
        for media_id in media_ids:
            media = fake.media.get(media_id)
            if media is None or media.account_id != account.id or media.status_id is not None:
                raise MastodonError(
                    422, f"Media {media_id} not found or already attached to another post"
                )
            if not media.processed:
                raise MastodonError(422, "Cannot attach files that have not finished "
                                         "processing. Try again in a moment!")
        if len(media_ids) > 1 and any(fake.media[m].kind in ("video", "audio") for m in media_ids):
            raise MastodonError(422, "Cannot attach a video to a post that already contains "
                                     "images")
        visibility = _text(params.get("visibility"), "Visibility") or "public"
        if visibility not in VISIBILITIES:
            raise MastodonError(422, "Validation failed: Visibility is not included in the "
                                     "list")
        language = _text(params.get("language"), "Language")
        if language is not None and language not in ISO_639_1:
            raise MastodonError(422, "Validation failed: Language is not an ISO 639-1 code")
        if not text.strip() and not media_ids:
            raise MastodonError(422, "Validation failed: Text can't be blank")
        if countable_length(text, spoiler) > MAX_CHARS:
            raise MastodonError(422, f"Validation failed: Text character limit of {MAX_CHARS} "
                                     "exceeded")
        scheduled_raw = _text(params.get("scheduled_at"), "Scheduled at")
        if scheduled_raw:
            scheduled_at = _parse_time(scheduled_raw)
            if scheduled_at is None:
                raise MastodonError(422, "Validation failed: Scheduled at is invalid")
            if scheduled_at - now < SCHEDULE_MIN_OFFSET:
                raise MastodonError(422, "Validation failed: Scheduled at The scheduled date "
                                         "must be in the future")
            scheduled = ScheduledStatus(
                id=fake._next_id(), account_id=account.id, scheduled_at=scheduled_at,
                params={"text": text, "visibility": visibility, "media_ids": media_ids or None,
                        "spoiler_text": spoiler or None, "idempotency": key},
            )
            fake.scheduled[scheduled.id] = scheduled
            return web.json_response({
                "id": scheduled.id, "scheduled_at": _iso(scheduled_at),
                "params": scheduled.params, "media_attachments": [],
            })

        status = Status(
            id=fake._next_id(), account_id=account.id, text=text, spoiler_text=spoiler,
            sensitive=_boolean(params.get("sensitive")), visibility=visibility,
            language=language, in_reply_to_id=thread_id or None, media_ids=media_ids,
            created_at=now, idempotency_key=key,
        )
        fake._statuses[status.id] = status
        for media_id in media_ids:
            fake.media[media_id].status_id = status.id
        if key:
            fake._idempotency[(account.id, key)] = (status.id, now)
        await fake.emit(account, ("user",), "update", json.dumps(fake.render_status(status)))
        if fake.faults.take_drop():
            return drop_connection(request)
        return web.json_response(fake.render_status(status))

    async def get_status(request: web.Request) -> web.Response:
        viewer = fake._account_for(request, required=False, scopes=READ_STATUSES)
        status = fake.status(request.match_info["id"])
        if status is None or not fake._visible(status, viewer) or (viewer is None and not fake.anonymous_reads):
            raise MastodonError(404, "Record not found")
        return web.json_response(fake.render_status(status))

    async def get_statuses(request: web.Request) -> web.Response:
        # docs.joinmastodon.org/methods/statuses/#index (4.3): those of ``id[]`` found and
        # visible, in the order asked; the others are left out.
        viewer = fake._account_for(request, required=False, scopes=READ_STATUSES)
        asked = list(dict.fromkeys(request.query.getall("id[]", [])))
        if len(asked) > 20:  # DEFAULT_STATUSES_LIMIT: Mastodon::ValidationError
            raise MastodonError(422, "Mastodon::ValidationError")
        found = [fake.status(status_id) for status_id in asked]
        return web.json_response([fake.render_status(s) for s in found if s is not None and fake._visible(s, viewer)])

    async def edit_status(request: web.Request) -> web.Response:
        # docs.joinmastodon.org/methods/statuses/#edit: own statuses only (404 otherwise);
        # spoiler_text omitted clears it, sensitive and language omitted keep theirs.
        account = fake._account_for(request, required=True, scopes=WRITE_STATUSES)
        assert account is not None
        status = fake.status(request.match_info["id"])
        if status is None or status.deleted or status.account_id != account.id:
            raise MastodonError(404, "Record not found")
        params = await _params(request)
        text = _text(params.get("status"), "Status") or ""
        spoiler = _text(params.get("spoiler_text"), "Spoiler text") or ""
        if not text.strip() and not status.media_ids:
            raise MastodonError(422, "Validation failed: Text can't be blank")
        if countable_length(text, spoiler) > MAX_CHARS:
            raise MastodonError(422, f"Validation failed: Text character limit of {MAX_CHARS} exceeded")
        language = _text(params.get("language"), "Language")
        if language is not None and language not in ISO_639_1:
            raise MastodonError(422, "Validation failed: Language is not an ISO 639-1 code")
        changes = _media_changes(status, params)
        for media_id, change in changes.items():
            media = fake.media[media_id]
            media.description = change.get("description", media.description)
            media.focus = change.get("focus", media.focus)
        if changes:
            status.media_edits.append(changes)
        status.text, status.spoiler_text = text, spoiler
        status.edits.append(text)
        if "sensitive" in params:
            status.sensitive = _boolean(params.get("sensitive"))
        status.language = language or status.language
        status.edited_at = fake.clock.now()
        await fake.emit(account, ("user",), "status.update", json.dumps(fake.render_status(status)))
        return web.json_response(fake.render_status(status))

    async def delete_status(request: web.Request) -> web.Response:
        account = fake._account_for(request, required=True, scopes=WRITE_STATUSES)
        assert account is not None
        status = fake.status(request.match_info["id"])
        if status is None or status.deleted or status.account_id != account.id:
            raise MastodonError(404, "Record not found")
        status.deleted = True
        await fake.emit(account, ("user",), "delete", status.id)
        return web.json_response(fake.render_status(status, with_source=True))

    async def verify_credentials(request: web.Request) -> web.Response:
        account = fake._account_for(request, required=True, scopes=READ_ACCOUNTS)
        assert account is not None
        entity = fake.render_account(account)
        entity["source"] = {"privacy": "public", "sensitive": False, "language": "",
                            "note": account.note,
                            "fields": [{"name": f["name"], "value": f["value"], "verified_at": None}
                                       for f in account.fields]}
        return web.json_response(entity)

    async def update_credentials(request: web.Request) -> web.Response:
        # docs.joinmastodon.org/methods/accounts/#update_credentials: fields_attributes is a hash
        # keyed by integers cast to strings, each {name, value}; it replaces the whole set
        # (Account#fields_attributes=), a blank name drops that field, and anything but a hash
        # leaves no fields at all. By default at most 4 fields and 255 characters a name or value.
        account = fake._account_for(request, required=True, scopes=WRITE_ACCOUNTS)
        assert account is not None
        params = await _profile_params(request)
        if "note" in params:
            account.note = _text(params["note"], "Note") or ""
        if "display_name" in params:
            account.display_name = _text(params["display_name"], "Display name") or ""
        if "fields_attributes" in params:
            given = params["fields_attributes"]
            fields: list[dict[str, str]] = []
            if isinstance(given, dict):
                for attr in given.values():
                    if not isinstance(attr, dict):
                        raise MastodonError(422, "Validation failed: Fields is invalid")
                    name = _text(attr.get("name"), "Fields name") or ""
                    value = _text(attr.get("value"), "Fields value") or ""
                    if not name.strip():
                        continue
                    fields.append({"name": name.strip(), "value": value.strip()})
            if len(fields) > MAX_PROFILE_FIELDS:
                raise MastodonError(
                    422, f"Validation failed: Fields is too long (maximum is {MAX_PROFILE_FIELDS} characters)")
            for f in fields:
                for part in ("name", "value"):
                    if len(f[part]) > MAX_FIELD_CHARACTERS:
                        raise MastodonError(
                            422, f"Validation failed: Fields {part} is too long "
                                 f"(maximum is {MAX_FIELD_CHARACTERS} characters)")
            account.fields = fields
        entity = fake.render_account(account)
        entity["source"] = {"privacy": "public", "sensitive": False, "language": "", "note": account.note,
                            "fields": [dict(f, verified_at=None) for f in account.fields]}
        return web.json_response(entity)

    async def account_statuses(request: web.Request) -> web.Response:
        viewer = fake._account_for(request, required=False, scopes=READ_STATUSES)
        account = fake.accounts.get(request.match_info["id"])
        if account is None:
            raise MastodonError(404, "Record not found")
        try:
            limit = int(request.query.get("limit", "20"))
        except ValueError:
            limit = 20
        limit = max(1, min(limit, 40))
        found = [s for s in fake.statuses(account) if fake._visible(s, viewer)]
        found.sort(key=lambda s: int(s.id), reverse=True)
        if "max_id" in request.query:
            found = [s for s in found if int(s.id) < _int(request.query["max_id"])]
        if "since_id" in request.query:
            found = [s for s in found if int(s.id) > _int(request.query["since_id"])]
        if "min_id" in request.query:
            newer = [s for s in found if int(s.id) > _int(request.query["min_id"])]
            found = sorted(newer, key=lambda s: int(s.id))[:limit]
            found.sort(key=lambda s: int(s.id), reverse=True)
        page = found[:limit]
        return web.json_response([fake.render_status(s) for s in page])

    async def upload_media(request: web.Request) -> web.Response:
        account = fake._account_for(request, required=True, scopes=WRITE_MEDIA)
        assert account is not None
        if not request.content_type.startswith("multipart/"):
            raise MastodonError(422, "Validation failed: File content type is invalid, File "
                                     "is invalid")
        if (request.content_length or 0) > PROXY_BODY_LIMIT:
            return web.Response(status=413, content_type="text/html",
                                text="<html><body><h1>413 Request Entity Too Large</h1></body></html>")
        form = await request.post()
        upload = form.get("file")
        mime_type = upload.content_type.split(";")[0].strip().lower() \
            if isinstance(upload, web.FileField) and upload.content_type else ""
        if not isinstance(upload, web.FileField) or mime_type not in MEDIA_MIME_TYPES:
            raise MastodonError(422, "Validation failed: File content type is invalid, File "
                                     "is invalid")
        data = upload.file.read()
        larger = mime_type in VIDEO_MIME_TYPES or mime_type in AUDIO_MIME_TYPES
        limit = VIDEO_LIMIT if larger else IMAGE_LIMIT
        if len(data) >= limit:
            raise MastodonError(422, f"Validation failed: File file size must be less than "
                                     f"{limit // (1024 * 1024)} MB")
        description = form.get("description")
        description = description if isinstance(description, str) else None
        if description is not None and len(description) > MAX_DESCRIPTION:
            raise MastodonError(422, "Validation failed: Description is too long (maximum is "
                                     f"{MAX_DESCRIPTION} characters)")
        point = _focus(form.get("focus"))
        polls = max(fake.media_processing_polls, 1 if larger else 0)
        fails = fake.media_processing_failures > 0
        if fails:
            fake.media_processing_failures -= 1
            if polls == 0:
                # Processed at once, inside the create: the record is rolled back with it.
                raise MastodonError(500, PROCESSING_ERROR)
        media = Media(
            id=fake._next_id(), account_id=account.id, mime_type=mime_type,
            description=description, size=len(data), pending_polls=polls, fails=fails, focus=point, data=data,
        )
        fake.media[media.id] = media
        status = 202 if polls > 0 else 200
        return web.json_response(fake.render_media(media), status=status)

    async def get_media(request: web.Request) -> web.Response:
        account = fake._account_for(request, required=True, scopes=WRITE_MEDIA)
        assert account is not None
        media = fake.media.get(request.match_info["id"])
        if media is None or media.account_id != account.id or media.status_id is not None:
            raise MastodonError(404, "Record not found")
        if media.failed:
            raise MastodonError(422, PROCESSING_ERROR)
        if media.pending_polls > 0:
            entity = fake.render_media(media)
            media.pending_polls -= 1
            return web.json_response(entity, status=206)
        return web.json_response(fake.render_media(media))

    def stream_of(message: Mapping[str, Any]) -> tuple[str, ...] | str:
        """The stream a subscription names, or the streaming server's refusal."""
        name = message.get("stream")
        if not isinstance(name, str) or name not in STREAMS:
            return "Unknown stream type"
        if name.startswith("hashtag"):
            tag = message.get("tag")
            return (name, tag) if isinstance(tag, str) and tag else "Missing tag name parameter"
        if name == "list":
            list_id = message.get("list")
            return (name, list_id) if isinstance(list_id, str) and list_id else "Missing list name parameter"
        return (name,)

    async def subscribed(ws: web.WebSocketResponse, token: str, message: Mapping[str, Any]) -> tuple[str, ...] | None:
        """The stream a subscription names, once the streaming server lets the token have it;
        None once its refusal is sent (``checkScopes``: ``read``, or the stream's own scope)."""
        wanted = stream_of(message)
        if isinstance(wanted, str):
            await ws.send_str(json.dumps({"error": wanted, "status": 400}))
            return None
        needed = "read:notifications" if wanted[0] == "user:notification" else "read:statuses"
        if not fake.token_scopes.get(token, DEFAULT_SCOPES) & {"read", needed}:
            await ws.send_str(json.dumps({"error": STREAM_SCOPES, "status": 401}))
            return None
        return wanted

    def moved(request: web.Request) -> None:
        if fake.streaming_url and fake.streaming_url.partition("://")[2] != request.host:
            # Api::V1::StreamingController: the streaming server elsewhere, 301 there.
            raise web.HTTPMovedPermanently(f"{fake.streaming_url}{request.path_qs}")

    async def streaming_health(request: web.Request) -> web.Response:
        moved(request)
        return web.Response(text="OK", content_type="text/plain")

    async def streaming(request: web.Request) -> web.StreamResponse:
        moved(request)
        header = request.headers.get("Authorization", "")
        protocol = request.headers.get("Sec-WebSocket-Protocol", "").strip()
        token = (header.partition(" ")[2] if header.lower().startswith("bearer ") else "") \
            or request.query.get("access_token", "") or protocol
        if not token:
            raise MastodonError(401, "Missing access token")
        account = next((a for a in fake.accounts.values() if token in a.tokens), None)
        if account is None:
            raise MastodonError(401, "Invalid access token")
        ws = web.WebSocketResponse(protocols=(token,) if protocol == token else (), heartbeat=30)
        if not ws.can_prepare(request).ok:
            raise MastodonError(400, "Expected a WebSocket connection")
        await ws.prepare(request)
        open_socket = StreamSocket(ws=ws, account_id=account.id, token=token)
        if "stream" in request.query and (first := await subscribed(ws, token, request.query)) is not None:
            open_socket.streams.add(first)
        fake.stream_connections.append((account.id, tuple(sorted(":".join(k) for k in open_socket.streams))))
        fake.stream_sockets.append(open_socket)
        try:
            async for message in ws:
                if token not in account.tokens:
                    break
                try:
                    body = json.loads(message.data) if message.type is WSMsgType.TEXT else None
                except ValueError:
                    body = None
                if not isinstance(body, dict) or body.get("type") not in ("subscribe", "unsubscribe"):
                    continue
                if body["type"] == "subscribe":
                    if (wanted := await subscribed(ws, token, body)) is not None:
                        open_socket.streams.add(wanted)
                elif isinstance(left := stream_of(body), str):
                    await ws.send_str(json.dumps({"error": left, "status": 400}))
                else:
                    open_socket.streams.discard(left)
        finally:
            fake.stream_sockets.remove(open_socket)
        return ws

    app = web.Application(
        middlewares=[errors_middleware, fake.faults.middleware(render_fault, render_rate_limit)],
        client_max_size=PROXY_BODY_LIMIT + 1024 * 1024,
    )
    app[FAKE_KEY] = fake
    app.router.add_post("/api/v1/statuses", create_status)
    app.router.add_get("/api/v1/statuses", get_statuses)
    app.router.add_get("/api/v1/statuses/{id}", get_status)
    app.router.add_put("/api/v1/statuses/{id}", edit_status)
    app.router.add_delete("/api/v1/statuses/{id}", delete_status)
    app.router.add_get("/api/v1/accounts/verify_credentials", verify_credentials)
    app.router.add_patch("/api/v1/accounts/update_credentials", update_credentials)
    app.router.add_get("/api/v1/accounts/{id}/statuses", account_statuses)
    app.router.add_post("/api/v2/media", upload_media)
    app.router.add_get("/api/v1/media/{id}", get_media)
    app.router.add_get("/api/v1/streaming", streaming)
    app.router.add_get("/api/v1/streaming/health", streaming_health)
    return app


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise MastodonError(422, "Validation failed: id must be numeric") from None
