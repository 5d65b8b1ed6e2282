"""Bluesky adapter: AT Protocol XRPC calls to the account's PDS over the shared aiohttp session.

Options: ``pds`` (the PDS base URL, required, e.g. ``https://bsky.social``), ``timeout``
(seconds per request, default 30), ``app_url`` (where post links point, default
``https://bsky.app``). ``AdapterConfig.handle`` is the account's handle and ``secret`` its
app password.

Sessions
--------
``com.atproto.server.createSession`` is called on first use; the access and refresh JWTs are
kept in memory only. A call answered with ``ExpiredToken``/``InvalidToken`` (400) or 401 is
retried once after ``com.atproto.server.refreshSession``, or after a new ``createSession`` when
the refresh token is refused too. If the credential still does not work the error has
``auth_failed=True``. No secret or token ever appears in an exception, a log line or ``repr``.

Exactly once
------------
The record key is derived from ``post.post_id`` alone (:func:`rkey_for`), so every attempt to
publish one post writes to the same ``at://<did>/app.bsky.feed.post/<rkey>``. The PDS refuses
to create a record where one exists (it answers 500), so a resend cannot make a second post.
Whenever ``createRecord`` did not clearly succeed (any error other than an auth or rate-limit
answer, including a connection dropped after the PDS may have written the record) the adapter
reads that key back with ``getRecord`` and, if the record is there, returns it as the result.
A post with media is looked up before its images are uploaded, so a retry does not upload
them again. ``find_existing`` is the same ``getRecord``. If the post's text changed between
attempts, the record first written stays (one Byline post is at most one Bluesky post).

Post keys are TIDs (lexicon ``"key": "tid"``), and the PDS checks the syntax: 13 characters of
base32-sortable, the first one of ``234567abcdefghij``. The 64-bit value encoded is built from
SHA-256 of the post id: 10 bits of "clock id" and a microsecond timestamp inside a fixed window
in 2023, so the key is valid, never claims a future time, and has 55 bits of hash (a collision
between two posts of one account is about 1 in 10^7 after 100,000 posts). The PDS also refuses
keys containing one family of slurs; a key that would match is re-derived with a counter.

Mapping of the post
-------------------
* ``text`` → ``text`` (at most 300 graphemes and 3000 UTF-8 bytes, checked before any call),
  with rich-text facets for ``http(s)://`` links and ``@handle`` mentions (the handle resolved
  with ``com.atproto.identity.resolveHandle``; a handle that does not resolve stays plain
  text). Facet offsets are UTF-8 byte offsets.
* ``language`` → ``langs: [language]``.
* ``reply_to`` (an ``at://`` URI) → ``reply`` with the parent's URI and CID and the thread
  root (the parent's own root when the parent is itself a reply).
* ``media`` → uploaded with ``com.atproto.repo.uploadBlob`` and embedded as
  ``app.bsky.embed.images`` (images only, at most 4, each at most 1,000,000 bytes, the
  description as alt text).
* Content warnings: Bluesky has no spoiler text and no self-label that hides a post's text
  (``!warn`` is ignored by the app when the author sets it). So ``spoiler_text`` is kept where
  readers see it first: the text becomes ``"CW: <spoiler_text>\\n\\n<text>"`` (and counts
  towards the limit). When the post has media and either ``sensitive`` or ``spoiler_text``,
  the post gets the self-label ``graphic-media``: the app blurs its images behind a warning
  (the default setting) as Mastodon does with sensitive media. ``graphic-media`` is the
  neutral choice; we do not know whether the content is sexual. Text-only posts get no label:
  a label would claim something about media the post does not have.
* ``visibility``: every Bluesky post is public. ``None``, ``public`` and ``unlisted`` are
  published; any other value (``private``, ``direct``) is refused rather than made public.
* ``idempotency_key`` is not sent: the record key already plays its part.
* ``created_at`` → ``createdAt`` when it is within five minutes of the time of publishing;
  otherwise (and when it is absent) ``createdAt`` is the time of publishing. The app sorts
  timelines by the earlier of ``createdAt`` and the time it saw the post, so a post that
  waited for approval must not claim the time it was written, or it would be buried below
  everything posted meanwhile.

Records and CIDs
----------------
:func:`post_record` builds the record from its parts, :meth:`BlueskyAdapter.preview_record`
builds it as :meth:`BlueskyAdapter.publish` will (facets, reply references, ``createdAt``),
without writing anything, and :func:`record_cid` gives the CID the PDS will give that
record. A post published within five minutes of its ``created_at``, with its text unchanged,
gets exactly the CID its preview had.

Relaying
--------
:meth:`BlueskyAdapter.xrpc_raw` relays any other XRPC call to the PDS under the account's
own session and returns the PDS's answer as it came; the gateway decides which calls may go.

Errors
------
Connection errors, timeouts and 5xx are retryable; 429 is retryable with ``retry_after`` from
``Retry-After`` or ``ratelimit-reset`` (epoch seconds); 401 and refused tokens after one
refresh are ``auth_failed``; 400 ``InvalidRequest`` and other 4xx are final, with the PDS's
message in ``detail``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
import libipld
import regex
from yarl import URL

from adapters.base import (
    AccountInfo,
    AdapterConfig,
    AdapterError,
    MediaItem,
    OutboundPost,
    PublishResult,
)

PLATFORM: Final = "bluesky"
POST_COLLECTION: Final = "app.bsky.feed.post"
MAX_GRAPHEMES: Final = 300
MAX_TEXT_BYTES: Final = 3000
MAX_IMAGES: Final = 4
MAX_IMAGE_BYTES: Final = 1_000_000
DEFAULT_TIMEOUT_SECONDS: Final = 30.0
DEFAULT_APP_URL: Final = "https://bsky.app"
SENSITIVE_MEDIA_LABEL: Final = "graphic-media"
PUBLIC_VISIBILITIES: Final = frozenset({"public", "unlisted"})
CREATED_AT_MAX_AGE_SECONDS: Final = 300.0

_log = logging.getLogger(__name__)

# Error names with which a PDS says the token (not the request) is the problem.
_TOKEN_ERRORS: Final = frozenset(
    {"ExpiredToken", "InvalidToken", "AuthenticationRequired", "AuthMissing"}
)
# What an XRPC method name looks like; anything else is never put into a PDS URL.
_NSID_RE: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]*(\.[a-zA-Z0-9-]+){2,}$")
# Headers a relayed call carries to the PDS, and back from it. Authorization is never
# relayed: the PDS sees the account's own session, the client sees none of it.
_RELAYED_REQUEST_HEADERS: Final = (
    "Content-Type", "Accept", "Accept-Language", "atproto-accept-labelers", "atproto-proxy",
)
_RELAYED_RESPONSE_HEADERS: Final = (
    "Content-Type", "Content-Language", "atproto-content-labelers", "atproto-repo-rev",
    "Retry-After", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
    "ratelimit-policy",
)
# Errors with which createSession says the account cannot log in until someone acts.
_LOGIN_REFUSED: Final = frozenset(
    {"AuthenticationRequired", "AccountTakedown", "AccountDeactivated", "AuthFactorTokenRequired"}
)


# ---- record keys -----------------------------------------------------------------------------

_TID_ALPHABET: Final = "234567abcdefghijklmnopqrstuvwxyz"
_TID_RE: Final = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
_RKEY_EPOCH_US: Final = 1_672_531_200_000_000  # 2023-01-01T00:00:00Z
_RKEY_WINDOW_BITS: Final = 45  # 2**45 µs ≈ 1.1 years
# The one family of the PDS's record-key slur patterns that base32-sortable characters can
# spell inside a key; the others are anchored at word boundaries, so the whole 13-character
# key would have to be the word, which a hash does not produce.
_RKEY_REFUSED: Final = re.compile(r"n[il1oa4][gq]{2}")


def rkey_for(post_id: str) -> str:
    """The TID record key that every attempt to publish ``post_id`` uses."""
    for attempt in range(1000):
        seed = f"byline/bluesky/rkey/v1\x00{post_id}\x00{attempt}".encode()
        bits = int.from_bytes(hashlib.sha256(seed).digest()[:8], "big")
        micros = _RKEY_EPOCH_US + (bits >> (64 - _RKEY_WINDOW_BITS))
        value = (micros << 10) | (bits & 0x3FF)
        rkey = "".join(_TID_ALPHABET[(value >> (5 * i)) & 31] for i in range(12, -1, -1))
        if not _RKEY_REFUSED.search(rkey):
            return rkey
    raise AssertionError("unreachable: no acceptable record key")  # pragma: no cover


def is_tid(value: str) -> bool:
    """Whether ``value`` has the syntax of a TID (what the PDS demands of post keys)."""
    return bool(_TID_RE.match(value))


# ---- graphemes -------------------------------------------------------------------------------

# The regex library's \X is UAX #29's extended grapheme cluster, kept current with Unicode,
# which is what Bluesky's 300-character limit counts.
_GRAPHEME: Final = regex.compile(r"\X")


def grapheme_count(text: str) -> int:
    """User-perceived characters in ``text``, as Bluesky counts them (UAX #29 clusters)."""
    return sum(1 for _ in _GRAPHEME.finditer(text))


# ---- rich text -------------------------------------------------------------------------------

_LINK_RE: Final = re.compile(r"(?<![^\s(])https?://[^\s]+", re.IGNORECASE)
_MENTION_RE: Final = re.compile(r"(?<![^\s(])@([a-zA-Z0-9][a-zA-Z0-9.-]*[a-zA-Z0-9])")
_HANDLE_RE: Final = re.compile(
    r"^([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$"
)
_TRAILING_PUNCTUATION: Final = ".,;:!?\"'"


@dataclass(frozen=True)
class Span:
    """A piece of the text: code point offsets, and the URL or handle it stands for."""

    start: int
    end: int
    value: str


def find_links(text: str) -> list[Span]:
    """The ``http(s)://`` URLs in ``text``, without trailing punctuation."""
    spans = []
    for match in _LINK_RE.finditer(text):
        url = match.group(0)
        # Punctuation ending a sentence, and a ")" closing a parenthesis the URL did not
        # open, belong to the text around the link.
        while url and (
            url[-1] in _TRAILING_PUNCTUATION or (url[-1] == ")" and url.count("(") < url.count(")"))
        ):
            url = url[:-1]
        if urlsplit(url).hostname:
            spans.append(Span(match.start(), match.start() + len(url), url))
    return spans


def find_mentions(text: str) -> list[Span]:
    """The ``@handle`` mentions in ``text`` (the span includes the ``@``; value is the handle)."""
    spans = []
    for match in _MENTION_RE.finditer(text):
        handle = match.group(1)
        if _HANDLE_RE.match(handle):
            spans.append(Span(match.start(), match.end(), handle.lower()))
    return spans


def _byte_index(text: str, span: Span) -> dict[str, int]:
    # Facet offsets count UTF-8 bytes, not code points.
    start = len(text[: span.start].encode("utf-8"))
    return {"byteStart": start, "byteEnd": start + len(text[span.start : span.end].encode("utf-8"))}


def link_facets(text: str) -> list[dict[str, Any]]:
    """The rich-text facets of the links in ``text`` (no lookups needed), in text order."""
    return [
        {"index": _byte_index(text, span),
         "features": [{"$type": "app.bsky.richtext.facet#link", "uri": span.value}]}
        for span in find_links(text)
    ]


# ---- records ---------------------------------------------------------------------------------


def post_record(
    *,
    text: str,
    created_at: str,
    language: str | None = None,
    facets: list[dict[str, Any]] | None = None,
    reply: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ``app.bsky.feed.post`` record without media, from its parts."""
    record: dict[str, Any] = {"$type": POST_COLLECTION, "text": text, "createdAt": created_at}
    if facets:
        record["facets"] = facets
    if language:
        record["langs"] = [language]
    if reply:
        record["reply"] = reply
    return record


def record_cid(record: dict[str, Any]) -> str:
    """The CID a PDS gives ``record``: CIDv1, DAG-CBOR, SHA-256 (records without blobs)."""
    digest = hashlib.sha256(libipld.encode_dag_cbor(record)).digest()
    return libipld.encode_cid(bytes((0x01, 0x71, 0x12, 0x20)) + digest)


def iso_datetime(moment: datetime) -> str:
    """``moment`` as Bluesky writes times: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_datetime(value: str) -> datetime | None:
    """An RFC 3339 time with a zone (``Z`` or an offset), or ``None``."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def created_at_for(post: OutboundPost, now: datetime) -> str:
    """The ``createdAt`` of ``post`` published at ``now`` (see "Mapping of the post")."""
    if post.created_at:
        given = parse_datetime(post.created_at)
        if given is not None and abs((now - given).total_seconds()) <= CREATED_AT_MAX_AGE_SECONDS:
            return post.created_at
    return iso_datetime(now)


# ---- the adapter -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Login:
    """One PDS session. The JWTs are bearer credentials: kept out of ``repr``."""

    did: str
    handle: str
    access_jwt: str = field(repr=False)
    refresh_jwt: str = field(repr=False)


@dataclass(frozen=True)
class XrpcRawResponse:
    """A relayed call's answer, as the PDS gave it (only the relayable headers kept)."""

    status: int
    headers: dict[str, str]
    body: bytes


RELAY_CHUNK_BYTES: Final = 64 * 1024
"""The most of a streamed answer held at once while it is passed on."""


@dataclass(frozen=True)
class XrpcStream:
    """A relayed call's answer whose body is passed on as it arrives (a blob), never held whole.
    ``chunks`` raises ``AdapterError`` when the PDS breaks off."""

    status: int
    headers: dict[str, str]
    chunks: AsyncIterator[bytes]


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


class _XrpcError(Exception):
    """A non-2xx XRPC answer, before it is classified."""

    def __init__(self, nsid: str, status: int, error: str, message: str, retry_after: float | None):
        super().__init__(f"{nsid}: {status} {error}")
        self.nsid = nsid
        self.status = status
        self.error = error
        self.message = message
        self.retry_after = retry_after

    @property
    def token_refused(self) -> bool:
        """Whether the PDS refused the credential rather than the request."""
        return self.status == 401 or (self.status == 400 and self.error in _TOKEN_ERRORS)


def _refuses_token(answer: XrpcRawResponse) -> bool:
    """Whether a relayed call was refused for its session rather than for what it asked."""
    if answer.status == 401:
        return True
    if answer.status != 400:
        return False
    try:
        error = json.loads(answer.body).get("error")
    except (ValueError, AttributeError):
        return False
    return error in _TOKEN_ERRORS


def _parse_retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(0.0, when.timestamp() - time.time())
    reset = headers.get("ratelimit-reset")
    if reset:
        try:
            return max(0.0, float(reset) - time.time())
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class _AtUri:
    repo: str
    collection: str
    rkey: str

    @classmethod
    def parse(cls, uri: str) -> _AtUri:
        parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
        if len(parts) != 3 or not all(parts):
            raise AdapterError(
                f"bluesky: {uri!r} is not an at://<repo>/<collection>/<rkey> URI",
                retryable=False,
            )
        return cls(parts[0], parts[1], parts[2])


class BlueskyAdapter:
    """Publishes to one Bluesky account through its PDS. See the module docstring."""

    platform = PLATFORM

    def __init__(self, config: AdapterConfig) -> None:
        if config.session is None:
            raise ValueError("bluesky: the adapter needs the gateway's shared session")
        pds = config.options.get("pds", "").rstrip("/")
        parts = urlsplit(pds)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("bluesky: option 'pds' must be the PDS base URL (https://...)")
        self._config = config
        self._http = config.session
        self._pds = pds
        self._app_url = config.options.get("app_url", DEFAULT_APP_URL).rstrip("/")
        try:
            seconds = float(config.options.get("timeout", DEFAULT_TIMEOUT_SECONDS))
        except ValueError:
            raise ValueError("bluesky: option 'timeout' must be a number of seconds") from None
        self._timeout = aiohttp.ClientTimeout(total=seconds)
        self._login: _Login | None = None
        self._login_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"BlueskyAdapter(account={self._config.account!r}, pds={self._pds!r})"

    # ---- the Adapter protocol ----------------------------------------------------------------

    async def publish(self, post: OutboundPost) -> PublishResult:
        """Create the post under its derived record key, or return it if it is already there."""
        text = self._full_text(post)
        self._check_publishable(post, text)
        login = await self._ensure_login()
        rkey = rkey_for(post.post_id)
        if post.media:
            # Uploading the images again would be wasted work if an earlier attempt got through.
            existing = await self._get_post(rkey)
            if existing is not None:
                return existing
        try:
            record = await self._record(post, text)
        except AdapterError:
            if not post.reply_to:
                raise
            # A retry of a reply whose parent has since gone is still the post made before.
            existing = await self._get_post(rkey)
            if existing is None:
                raise
            return existing
        if post.media:
            record["embed"] = await self._embed_images(post.media)
            if post.sensitive or post.spoiler_text:
                record["labels"] = {
                    "$type": "com.atproto.label.defs#selfLabels",
                    "values": [{"val": SENSITIVE_MEDIA_LABEL}],
                }
        body = {"repo": login.did, "collection": POST_COLLECTION, "rkey": rkey, "record": record}
        try:
            created = await self._authed("POST", "com.atproto.repo.createRecord", json_body=body)
        except AdapterError as exc:
            if exc.auth_failed or exc.status == 429:
                raise
            # The record may exist: written by an earlier attempt (the PDS then answers 500),
            # or by this one before the connection dropped. Either way it is the post.
            try:
                existing = await self._get_post(rkey)
            except AdapterError:
                existing = None
            if existing is None:
                raise
            _log.info("bluesky: post %s was already published as %s", post.post_id, existing)
            return existing
        uri = str(created.get("uri", ""))
        return self._result(uri)

    async def preview_record(self, post: OutboundPost) -> dict[str, Any]:
        """The record ``publish`` would write for ``post`` (media left out), writing nothing."""
        text = self._full_text(post)
        self._check_publishable(post, text)
        return await self._record(post, text)

    async def xrpc_raw(
        self,
        method: str,
        nsid: str,
        *,
        query: str = "",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> XrpcRawResponse:
        """Relay one XRPC call to the PDS under the account's own session.

        ``query`` is the already-encoded query string; of ``headers`` only content negotiation
        and the AT Protocol's own headers are sent on. The PDS's answer comes back whatever
        its status; a refused session is refreshed once and the call sent again. Raises
        ``AdapterError`` only when no answer came (or the account cannot log in).
        """
        if method not in ("GET", "POST") or not _NSID_RE.match(nsid):
            raise AdapterError(f"bluesky: cannot relay {method} {nsid!r}", retryable=False)
        given = {name.lower(): value for name, value in (headers or {}).items()}
        sent = {
            name: given[name.lower()] for name in _RELAYED_REQUEST_HEADERS if name.lower() in given
        }
        login = await self._ensure_login()
        for attempt in range(2):
            answer = await self._relay(method, nsid, query, body, sent, login.access_jwt)
            if attempt == 0 and _refuses_token(answer):
                login = await self._refresh(login)
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def xrpc_stream(
        self, nsid: str, *, query: str = "", headers: dict[str, str] | None = None,
    ) -> AsyncIterator[XrpcStream]:
        """Relay one GET to the PDS under the account's session, as ``xrpc_raw`` does, with its
        body passed on in chunks of at most ``RELAY_CHUNK_BYTES`` while the caller reads them
        inside the context: a blob (an image, a video) is never held whole. An error answer is
        small and read whole, so that a refused session is refreshed and the call sent again."""
        if not _NSID_RE.match(nsid):
            raise AdapterError(f"bluesky: cannot relay GET {nsid!r}", retryable=False)
        given = {name.lower(): value for name, value in (headers or {}).items()}
        sent = {
            name: given[name.lower()] for name in _RELAYED_REQUEST_HEADERS if name.lower() in given
        }
        url = URL(f"{self._pds}/xrpc/{nsid}" + (f"?{query}" if query else ""), encoded=True)
        login = await self._ensure_login()
        async with AsyncExitStack() as open_answers:
            for attempt in range(2):
                try:
                    response = await open_answers.enter_async_context(self._http.request(
                        "GET", url, headers={**sent, "Authorization": f"Bearer {login.access_jwt}"},
                        timeout=self._timeout, allow_redirects=False,
                    ))
                    error = await response.read() if response.status >= 300 else None
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise AdapterError(
                        f"bluesky: {nsid} did not complete: {type(exc).__name__}", retryable=True,
                        detail=self._scrub(str(exc)) or None,
                    ) from None
                kept = {
                    name: value for name in _RELAYED_RESPONSE_HEADERS
                    if (value := response.headers.get(name)) is not None
                }
                if error is not None and attempt == 0 and _refuses_token(
                    XrpcRawResponse(status=response.status, headers=kept, body=error)
                ):
                    login = await self._refresh(login)
                    continue
                chunks = _once(error) if error is not None else self._chunks(nsid, response)
                yield XrpcStream(status=response.status, headers=kept, chunks=chunks)
                return

    async def _chunks(self, nsid: str, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(RELAY_CHUNK_BYTES):
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdapterError(f"bluesky: {nsid} broke off: {type(exc).__name__}", retryable=True) from None

    async def find_existing(self, post: OutboundPost) -> PublishResult | None:
        """The post made for ``post.post_id``, read back by its derived record key, or None."""
        return await self._get_post(rkey_for(post.post_id))

    async def delete(self, remote_id: str) -> None:
        """Delete the post with this at:// URI; a post that is already gone counts as deleted."""
        uri = _AtUri.parse(remote_id)
        if uri.collection != POST_COLLECTION:
            raise AdapterError(f"bluesky: {remote_id} is not a post", retryable=False)
        login = await self._ensure_login()
        if uri.repo not in (login.did, login.handle):
            raise AdapterError(
                f"bluesky: {remote_id} belongs to another account than {login.handle}",
                retryable=False,
            )
        body = {"repo": login.did, "collection": POST_COLLECTION, "rkey": uri.rkey}
        try:
            await self._authed("POST", "com.atproto.repo.deleteRecord", json_body=body)
        except AdapterError as exc:
            if exc.status == 400 and exc.detail and exc.detail.startswith("RecordNotFound"):
                return
            raise

    async def verify_credentials(self) -> AccountInfo:
        """Who the app password logs in as, asked of the PDS (not answered from memory)."""
        answer = await self._authed("GET", "com.atproto.server.getSession")
        did = str(answer.get("did", ""))
        handle = str(answer.get("handle", ""))
        return AccountInfo(
            remote_id=did,
            handle=handle,
            url=f"{self._app_url}/profile/{handle or did}",
        )

    # ---- building the record -----------------------------------------------------------------

    @staticmethod
    def _full_text(post: OutboundPost) -> str:
        if post.spoiler_text:
            return f"CW: {post.spoiler_text}\n\n{post.text}"
        return post.text

    @staticmethod
    def _check_publishable(post: OutboundPost, text: str) -> None:
        if post.visibility is not None and post.visibility not in PUBLIC_VISIBILITIES:
            raise AdapterError(
                f"bluesky: every Bluesky post is public; refusing a post meant to be "
                f"{post.visibility!r}",
                retryable=False,
            )
        graphemes = grapheme_count(text)
        if graphemes > MAX_GRAPHEMES:
            raise AdapterError(
                f"bluesky: the text is {graphemes} characters long; Bluesky allows at most "
                f"{MAX_GRAPHEMES}",
                retryable=False,
            )
        size = len(text.encode("utf-8"))
        if size > MAX_TEXT_BYTES:
            raise AdapterError(
                f"bluesky: the text is {size} bytes in UTF-8; Bluesky allows at most "
                f"{MAX_TEXT_BYTES}",
                retryable=False,
            )
        if len(post.media) > MAX_IMAGES:
            raise AdapterError(
                f"bluesky: {len(post.media)} attachments; Bluesky allows at most {MAX_IMAGES}",
                retryable=False,
            )
        for item in post.media:
            if not item.mime_type.startswith("image/"):
                raise AdapterError(
                    f"bluesky: only images can be attached, not {item.mime_type}",
                    retryable=False,
                )
            if len(item.data) > MAX_IMAGE_BYTES:
                raise AdapterError(
                    f"bluesky: an image of {len(item.data)} bytes is larger than the "
                    f"{MAX_IMAGE_BYTES} bytes Bluesky accepts",
                    retryable=False,
                )

    async def _record(self, post: OutboundPost, text: str) -> dict[str, Any]:
        facets = await self._facets(text)
        reply = await self._reply_ref(post.reply_to) if post.reply_to else None
        return post_record(
            text=text, created_at=created_at_for(post, datetime.now(UTC)),
            language=post.language, facets=facets, reply=reply,
        )

    async def _facets(self, text: str) -> list[dict[str, Any]]:
        facets = [(facet["index"]["byteStart"], facet) for facet in link_facets(text)]
        resolved: dict[str, str | None] = {}
        for span in find_mentions(text):
            if span.value not in resolved:
                resolved[span.value] = await self._resolve_handle(span.value)
            did = resolved[span.value]
            if did is None:
                continue
            index = _byte_index(text, span)
            feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
            facets.append((index["byteStart"], {"index": index, "features": [feature]}))
        return [facet for _, facet in sorted(facets, key=lambda item: item[0])]

    async def _resolve_handle(self, handle: str) -> str | None:
        try:
            answer = await self._xrpc(
                "GET", "com.atproto.identity.resolveHandle", params={"handle": handle}
            )
        except _XrpcError as exc:
            if exc.status == 400:
                return None  # no such handle: leave the mention as plain text
            raise self._classify(exc) from None
        did = answer.get("did")
        return did if isinstance(did, str) and did.startswith("did:") else None

    async def _reply_ref(self, parent_uri: str) -> dict[str, Any]:
        uri = _AtUri.parse(parent_uri)
        if uri.collection != POST_COLLECTION:
            raise AdapterError(f"bluesky: can only reply to posts, not {parent_uri}", retryable=False)
        try:
            parent = await self._xrpc(
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": uri.repo, "collection": uri.collection, "rkey": uri.rkey},
            )
        except _XrpcError as exc:
            if exc.status == 400 and exc.error == "RecordNotFound":
                raise AdapterError(
                    f"bluesky: the post replied to, {parent_uri}, does not exist",
                    retryable=False,
                    status=exc.status,
                    detail=self._detail(exc),
                ) from None
            raise self._classify(exc) from None
        parent_ref = {"uri": str(parent.get("uri", "")), "cid": str(parent.get("cid", ""))}
        if not parent_ref["uri"] or not parent_ref["cid"]:
            raise AdapterError(
                f"bluesky: the PDS gave no uri/cid for {parent_uri}", retryable=True
            )
        value = parent.get("value")
        reply = value.get("reply") if isinstance(value, dict) else None
        root = reply.get("root") if isinstance(reply, dict) else None
        if isinstance(root, dict) and isinstance(root.get("uri"), str) and root.get("cid"):
            root_ref = {"uri": root["uri"], "cid": str(root["cid"])}
        else:
            root_ref = parent_ref
        return {"root": root_ref, "parent": parent_ref}

    async def _embed_images(self, media: tuple[MediaItem, ...]) -> dict[str, Any]:
        images = []
        for item in media:
            answer = await self._authed(
                "POST", "com.atproto.repo.uploadBlob", data=item.data, content_type=item.mime_type
            )
            blob = answer.get("blob")
            if not isinstance(blob, dict):
                raise AdapterError("bluesky: uploadBlob answered without a blob", retryable=True)
            images.append({"alt": item.description or "", "image": blob})
        return {"$type": "app.bsky.embed.images", "images": images}

    # ---- reading back ------------------------------------------------------------------------

    async def _get_post(self, rkey: str) -> PublishResult | None:
        login = await self._ensure_login()
        try:
            answer = await self._xrpc(
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": login.did, "collection": POST_COLLECTION, "rkey": rkey},
            )
        except _XrpcError as exc:
            if exc.status == 400 and exc.error == "RecordNotFound":
                return None
            raise self._classify(exc) from None
        return self._result(str(answer.get("uri", "")))

    def _result(self, uri: str) -> PublishResult:
        at = _AtUri.parse(uri)
        handle = self._login.handle if self._login else self._config.handle
        return PublishResult(
            remote_id=uri,
            url=f"{self._app_url}/profile/{quote(handle or at.repo)}/post/{quote(at.rkey)}",
        )

    # ---- sessions ----------------------------------------------------------------------------

    async def _ensure_login(self) -> _Login:
        login = self._login
        if login is not None:
            return login
        async with self._login_lock:
            if self._login is None:
                self._login = await self._create_session()
            return self._login

    async def _create_session(self) -> _Login:
        try:
            answer = await self._xrpc(
                "POST",
                "com.atproto.server.createSession",
                json_body={
                    "identifier": self._config.handle.removeprefix("@"),
                    "password": self._config.secret,
                },
            )
        except _XrpcError as exc:
            if exc.status == 401 or (exc.status == 400 and exc.error in _LOGIN_REFUSED):
                raise AdapterError(
                    f"bluesky: the PDS refused the app password for {self._config.handle}",
                    retryable=False,
                    auth_failed=True,
                    status=exc.status,
                    detail=self._detail(exc),
                ) from None
            raise self._classify(exc) from None
        return self._login_from(answer)

    async def _refresh(self, stale: _Login) -> _Login:
        """A working session after ``stale`` was refused: refreshed, or else made anew."""
        async with self._login_lock:
            if self._login is not None and self._login is not stale:
                return self._login  # another task already replaced it
            try:
                answer = await self._xrpc(
                    "POST", "com.atproto.server.refreshSession", token=stale.refresh_jwt
                )
                login = self._login_from(answer)
                _log.debug("bluesky: refreshed the session of %s", self._config.handle)
            except _XrpcError as exc:
                if exc.status >= 500 or exc.status == 429:
                    raise self._classify(exc) from None
                login = await self._create_session()
                _log.debug("bluesky: made a new session for %s", self._config.handle)
            self._login = login
            return login

    def _login_from(self, answer: dict[str, Any]) -> _Login:
        try:
            return _Login(
                did=str(answer["did"]),
                handle=str(answer.get("handle") or self._config.handle),
                access_jwt=str(answer["accessJwt"]),
                refresh_jwt=str(answer["refreshJwt"]),
            )
        except KeyError as exc:
            raise AdapterError(
                f"bluesky: the PDS's session answer lacks {exc.args[0]}", retryable=True
            ) from None

    # ---- HTTP --------------------------------------------------------------------------------

    async def _authed(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        """An XRPC call with the access token; one refresh and retry if the token is refused."""
        login = await self._ensure_login()
        for attempt in range(2):
            try:
                return await self._xrpc(
                    method,
                    nsid,
                    params=params,
                    json_body=json_body,
                    data=data,
                    content_type=content_type,
                    token=login.access_jwt,
                )
            except _XrpcError as exc:
                if not exc.token_refused:
                    raise self._classify(exc) from None
                if attempt == 1:
                    raise AdapterError(
                        f"bluesky: {nsid} refused the session of {self._config.handle} "
                        "even after logging in again",
                        retryable=False,
                        auth_failed=True,
                        status=exc.status,
                        detail=self._detail(exc),
                    ) from None
                login = await self._refresh(login)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _xrpc(
        self,
        method: str,
        nsid: str,
        *,
        params: dict[str, str] | None = None,
        json_body: dict[str, Any] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """One XRPC request: the decoded JSON answer, or ``_XrpcError`` for a non-2xx status."""
        headers: dict[str, str] = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        body: bytes | None = None
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        elif data is not None:
            body = data
            headers["Content-Type"] = content_type or "application/octet-stream"
        url = f"{self._pds}/xrpc/{nsid}"
        try:
            async with self._http.request(
                method, url, params=params, data=body, headers=headers, timeout=self._timeout
            ) as response:
                raw = await response.read()
                status = response.status
                retry_after = _parse_retry_after(response.headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdapterError(
                f"bluesky: {nsid} did not complete: {type(exc).__name__}",
                retryable=True,
                detail=self._scrub(str(exc)) or None,
            ) from None
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = None
        if 200 <= status < 300:
            if not isinstance(answer, dict):
                raise AdapterError(
                    f"bluesky: {nsid} answered {status} with a body that is not JSON",
                    retryable=status >= 500,
                    status=status,
                )
            return answer
        error = message = ""
        if isinstance(answer, dict):
            error = str(answer.get("error") or "")
            message = str(answer.get("message") or "")
        elif raw:
            message = raw[:200].decode("utf-8", "replace")
        raise _XrpcError(nsid, status, error or f"HTTP {status}", message, retry_after)

    async def _relay(
        self, method: str, nsid: str, query: str, body: bytes | None, headers: dict[str, str],
        token: str,
    ) -> XrpcRawResponse:
        url = URL(f"{self._pds}/xrpc/{nsid}" + (f"?{query}" if query else ""), encoded=True)
        try:
            async with self._http.request(
                method, url, data=body, headers={**headers, "Authorization": f"Bearer {token}"},
                timeout=self._timeout, allow_redirects=False,
            ) as response:
                raw = await response.read()
                kept = {
                    name: value for name in _RELAYED_RESPONSE_HEADERS
                    if (value := response.headers.get(name)) is not None
                }
                return XrpcRawResponse(status=response.status, headers=kept, body=raw)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise AdapterError(
                f"bluesky: {nsid} did not complete: {type(exc).__name__}",
                retryable=True,
                detail=self._scrub(str(exc)) or None,
            ) from None

    def _classify(self, exc: _XrpcError) -> AdapterError:
        detail = self._detail(exc)
        if exc.status == 429:
            return AdapterError(
                f"bluesky: {exc.nsid} was rate limited",
                retryable=True,
                retry_after=exc.retry_after,
                status=429,
                detail=detail,
            )
        if exc.status >= 500:
            return AdapterError(
                f"bluesky: {exc.nsid} failed on the PDS ({exc.status})",
                retryable=True,
                retry_after=exc.retry_after,
                status=exc.status,
                detail=detail,
            )
        if exc.token_refused:
            return AdapterError(
                f"bluesky: {exc.nsid} refused the credential of {self._config.handle}",
                retryable=False,
                auth_failed=True,
                status=exc.status,
                detail=detail,
            )
        what = "was refused"
        if "grapheme too big" in exc.message or "string too big" in exc.message:
            what = "was refused: the text is too long for Bluesky"
        return AdapterError(
            f"bluesky: {exc.nsid} {what} ({exc.status} {exc.error})",
            retryable=False,
            status=exc.status,
            detail=detail,
        )

    def _detail(self, exc: _XrpcError) -> str:
        return self._scrub(f"{exc.error}: {exc.message}" if exc.message else exc.error)

    def _scrub(self, text: str) -> str:
        """``text`` with every credential this adapter holds blanked out."""
        secrets = [self._config.secret]
        if self._login is not None:
            secrets += [self._login.access_jwt, self._login.refresh_jwt]
        for secret in secrets:
            if secret:
                text = text.replace(secret, "[redacted]")
        return text
