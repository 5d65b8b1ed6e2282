"""Mastodon adapter: client API v1 (media v2) over the gateway's shared aiohttp session.

Options: ``instance`` (base URL, required), ``timeout`` (seconds per request, default 30),
``max_characters`` (the instance's status limit, default 500), ``lookback_minutes`` (how far
back ``find_existing`` looks when it does not know when the post was first attempted,
default 360), ``media_poll_interval`` / ``media_poll_timeout`` (seconds, default 1 / 120),
``image_size_limit`` / ``video_size_limit`` (bytes an instance takes less than, default the
stock 16 MB / 99 MB).

Media
-----
Each attachment is uploaded with ``POST /api/v2/media`` before the status is created. The
instance answers 200 when it processed the file at once (images, since Mastodon 4.0) and 202
while the full-size file is processed in the background (video and audio; every file before
4.0); then ``GET /api/v1/media/:id`` answers 206 until processing ends, 200 when the file is
ready and 422 when processing failed. The status is created only once every file is ready. A
file the instance could not process is a final error: sending the same bytes again fails the
same way. What a stock instance is documented to refuse (a type outside its supported list, a
file not smaller than its limit, a description over 1500 characters, a video or audio file
beside any other) is refused here before any request.

Exactly once
------------
Every ``POST /api/v1/statuses`` carries ``Idempotency-Key: <post.idempotency_key>``, the same
on every retry. Mastodon keeps the key (scoped to the account) for one hour and answers a
repeat with the status it already made, so inside that hour a retry after a lost answer is
simply another ``publish``. Past the hour the key is forgotten and a resend would make a
second status; so when this adapter has sent the key before and that attempt may have
created a status (it succeeded, or failed without a definite refusal: no answer, 5xx, 408),
and the first attempt is older than ``IDEMPOTENCY_WINDOW`` (55 minutes, a margin under the
hour), ``publish`` first calls ``find_existing`` and returns what it finds.

``find_existing`` never posts: it only reads the account's statuses (the token needs
``read:statuses``; without it the lookup fails as the credential's fault, naming the scope,
and nothing is sent). The rule: page through
``GET /api/v1/accounts/:id/statuses?limit=40&exclude_reblogs=true`` (newest first, at most
``MAX_PAGES`` pages, stopping at the first status older than the threshold) and pick the
*oldest* status that

* was created at or after the threshold: the first attempt minus ``CLOCK_SKEW`` (2 minutes,
  for the difference between our clock and the instance's);
* has the same text: the status ``content`` with its HTML removed, compared with the post's
  text after both are NFC-normalised, remote mentions shortened (``@a@b.example`` is shown
  as ``@a``) and every run of whitespace made one space;
* has the same ``spoiler_text`` (empty when none), the same ``in_reply_to_id`` and the same
  number of media attachments.

The first attempt is, in order: the ``since`` argument; the time this adapter object first
sent the key; otherwise ``now - lookback_minutes``. After a crash only the first and last
exist, so the gateway should pass ``since`` when it knows it (``OutboundPost`` has no field
for the first attempt's time yet; the keyword is an extension of the ``Adapter`` protocol).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import regex
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from adapters._http import (
    Clock,
    HttpClient,
    HttpResponse,
    check_base_url,
    float_option,
    moved_base,
    parse_retry_after,
    parse_timestamp,
    seconds_until,
    utc_now,
)
from adapters.base import (
    NO_GATES,
    PUBLIC_VISIBILITIES,
    AccountInfo,
    AdapterConfig,
    AdapterError,
    Carries,
    MediaItem,
    OutboundPost,
    ProfileLine,
    PublishResult,
    ScopeCheck,
    ascii_grapheme_count,
    ready,
)

PLATFORM = "mastodon"

MAX_PROFILE_FIELDS = 4
"""Profile metadata fields on a stock instance (``Account::DEFAULT_FIELDS_SIZE``)."""

MAX_FIELD_CHARACTERS = 255
"""A profile field's name and value, each, on a stock instance (the update_credentials docs)."""

IDEMPOTENCY_WINDOW = timedelta(minutes=55)
"""How long after the first attempt a resend is trusted to dedupe (Mastodon keeps keys 1 h)."""

CLOCK_SKEW = timedelta(minutes=2)
"""Tolerance between our clock and the instance's when comparing ``created_at``."""

MAX_PAGES = 5
"""Pages of 40 statuses ``find_existing`` reads at most: 200 statuses."""

PAGE_SIZE = 40
"""The largest page ``GET /api/v1/accounts/:id/statuses`` serves."""
PAGE_TRIES = 4
"""How often one page of the lookup is asked before the lookup fails."""
PAGE_WAIT_MAX = 5.0
"""A 429 asking to wait longer than this (seconds) fails the lookup: the scheduler retries later."""

VISIBILITIES = frozenset({"public", "unlisted", "private", "direct"})
"""The documented values of ``visibility``."""

MAX_MEDIA = 4
"""Attachments per status on a stock instance."""

URL_WEIGHT = 23
"""Characters every URL counts as, whatever its length (``StatusLengthValidator``)."""

IMAGE_MIME_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/heic", "image/heif", "image/webp", "image/avif"}
)
LARGER_MIME_TYPES = frozenset({
    "video/webm", "video/mp4", "video/quicktime", "video/ogg",
    "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wave", "audio/vnd.wave", "audio/ogg",
    "audio/vorbis", "audio/mpeg", "audio/mp3", "audio/webm", "audio/flac", "audio/aac", "audio/m4a",
    "audio/x-m4a", "audio/mp4", "audio/3gpp", "video/x-ms-asf",
})
"""Video and audio types (``MediaAttachment#larger_media_format?``): the larger size limit."""

MAX_DESCRIPTION = 1500
"""Characters of alt text a stock instance keeps (``MediaAttachment::MAX_DESCRIPTION_LENGTH``)."""

PROCESSING_ERROR = "Error processing thumbnail for uploaded media"
"""What an instance answers for a file it could not process (``Api::V1::MediaController``)."""

OUTSIDE_SCOPES = "This action is outside the authorized scopes"
"""What an instance answers (403) to a token without the scope a method needs
(``Api::BaseController#doorkeeper_forbidden_render_options``)."""

STREAM_SCOPES = "Access token does not have the required scopes"
"""What Mastodon's streaming server sends on the socket (``{"error": …, "status": 401}``) for a
stream the token's scopes do not cover (``streaming/index.js``, ``checkScopes``)."""

READ_ACCOUNTS = "read:accounts"
READ_STATUSES = "read:statuses"
WRITE_STATUSES = "write:statuses"
WRITE_MEDIA = "write:media"
WRITE_ACCOUNTS = "write:accounts"
"""The scopes this adapter's calls need (each covered by its parent, ``read`` or ``write``)."""

_DEFAULT_MAX_CHARACTERS = 500.0
_DEFAULT_LOOKBACK_MINUTES = 360.0
_DEFAULT_POLL_INTERVAL = 1.0
_DEFAULT_POLL_TIMEOUT = 120.0
_DEFAULT_IMAGE_LIMIT = float(16 * 1024 * 1024)
_DEFAULT_VIDEO_LIMIT = float(99 * 1024 * 1024)
_ATTEMPTS_KEPT = 10_000

# Mastodon counts only URLs with a scheme (Extractor with extract_url_without_protocol off).
_URL_RE = re.compile(r"https?://[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?'\")]}"
# ``@user@domain`` counts, and is displayed, as ``@user``.
_REMOTE_MENTION_RE = re.compile(r"(?<![\w/=])@(\w+(?:[\w.-]*\w)?)@[\w.-]*\w", re.UNICODE)
_WHITESPACE_RE = re.compile(r"\s+")
_GRAPHEME = regex.compile(r"\X")
# What ``get_raw`` may fetch: an absolute, percent-encoded client API path, nothing that could
# name another host (``//host``) or leave the API (dot segments are refused separately).
_STREAMING_PATH = "/api/v1/streaming"
_RAW_PATH = re.compile(r"^/api/v[12]/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*$")


def countable_text(text: str) -> str:
    """The text as Mastodon measures it: each URL as 23 characters, remote mentions short."""
    if "://" not in text and "@" not in text:  # no URL (each has a scheme) and no mention: as it is
        return text

    def url(match: re.Match[str]) -> str:
        found = match.group(0)
        stripped = found.rstrip(_URL_TRAILING)
        return "x" * URL_WEIGHT + found[len(stripped) :]

    return _REMOTE_MENTION_RE.sub(r"@\1", _URL_RE.sub(url, text))


def grapheme_length(text: str) -> int:
    """User-perceived characters as Mastodon counts them (``mb_chars.grapheme_length``, Ruby's
    ``\\X``): Unicode extended grapheme clusters, by the ``regex`` library's ``\\X``."""
    if text.isascii():
        return ascii_grapheme_count(text)
    return sum(1 for _ in _GRAPHEME.finditer(text))


def status_length(text: str, spoiler_text: str | None) -> int:
    """The length Mastodon checks against its limit: spoiler plus countable text."""
    return grapheme_length((spoiler_text or "") + countable_text(text))


class _TextExtractor(HTMLParser):
    """Collects the text of a status' HTML ``content``, paragraphs and breaks as newlines."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._paragraphs = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")
        elif tag == "p":
            if self._paragraphs:
                self.parts.append("\n\n")
            self._paragraphs += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_data(self, data: str) -> None:
        # Link text is split into "invisible" and "ellipsis" spans; their data joined is the
        # whole URL, so keeping all data restores what was typed.
        self.parts.append(data)


def html_to_text(content: str) -> str:
    """The plain text of a status' HTML ``content``."""
    parser = _TextExtractor()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts)


def normalize_for_match(text: str) -> str:
    """The form in which a posted text and a status' stripped content are compared."""
    text = unicodedata.normalize("NFC", text)
    text = _REMOTE_MENTION_RE.sub(r"@\1", text)
    return _WHITESPACE_RE.sub(" ", text).strip()


def _mastodon_detail(body: Any, text: str) -> str | None:
    if isinstance(body, dict):
        error = body.get("error")
        description = body.get("error_description")
        if isinstance(error, str) and error:
            return f"{error}: {description}" if isinstance(description, str) else error
    return None


@dataclass
class _Attempt:
    """What this adapter object knows about one idempotency key."""

    first_at: datetime
    may_exist: bool = False
    """A request was sent and not definitely refused: a status may exist for this key."""


class MastodonAdapter:
    """Publishes to one Mastodon account. See the module docstring for exactly-once."""

    platform = PLATFORM
    carries = Carries(name="Mastodon")

    def __init__(
        self,
        config: AdapterConfig,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        instance = config.options.get("instance", "")
        self._account = config.account
        self._base_url = check_base_url(instance, option="instance", platform=PLATFORM)
        self._clock = clock or utc_now
        self._sleep = sleep
        self._max_characters = int(
            float_option(config, "max_characters", _DEFAULT_MAX_CHARACTERS, platform=PLATFORM)
        )
        self._lookback = timedelta(
            minutes=float_option(
                config, "lookback_minutes", _DEFAULT_LOOKBACK_MINUTES, platform=PLATFORM
            )
        )
        self._poll_interval = float_option(
            config, "media_poll_interval", _DEFAULT_POLL_INTERVAL, platform=PLATFORM
        )
        self._poll_timeout = float_option(
            config, "media_poll_timeout", _DEFAULT_POLL_TIMEOUT, platform=PLATFORM
        )
        self._image_limit = int(
            float_option(config, "image_size_limit", _DEFAULT_IMAGE_LIMIT, platform=PLATFORM)
        )
        self._video_limit = int(
            float_option(config, "video_size_limit", _DEFAULT_VIDEO_LIMIT, platform=PLATFORM)
        )
        self._http = HttpClient.for_account(
            config, platform=PLATFORM, base_url=self._base_url, clock=self._clock, detail=_mastodon_detail
        )
        self._attempts: OrderedDict[str, _Attempt] = OrderedDict()
        self._account_id: str | None = None
        self._streaming_base: str | None = None
        """The streaming server's own base URL ("" for the instance's), once asked."""

    def __repr__(self) -> str:
        return f"MastodonAdapter(account={self._account!r}, instance={self._base_url!r})"

    # -- publish ---------------------------------------------------------------------------

    async def publish(self, post: OutboundPost) -> PublishResult:
        """Create the status (uploading media first); safe to call again with the same post."""
        self._check_locally(post)
        attempt = self._attempts.get(post.idempotency_key)
        now = self._clock()
        if attempt is None:
            attempt = self._remember(post.idempotency_key, now)
        elif attempt.may_exist and now - attempt.first_at >= IDEMPOTENCY_WINDOW:
            # The instance has forgotten the key: only a look at the timeline can tell
            # whether the earlier attempt landed.
            existing = await self.find_existing(post, since=attempt.first_at)
            if existing is not None:
                return existing

        media_ids = [await self._upload(item) for item in post.media]
        body: dict[str, Any] = {
            "status": post.text,
            "sensitive": post.sensitive,
        }
        if post.reply_to:
            body["in_reply_to_id"] = post.reply_to
        if post.spoiler_text:
            body["spoiler_text"] = post.spoiler_text
        if post.visibility:
            body["visibility"] = post.visibility
        if post.language:
            body["language"] = post.language
        if media_ids:
            body["media_ids"] = media_ids

        await ready(post)
        attempt.may_exist = True
        path = "/api/v1/statuses"
        response = await self._http.request(
            "POST", path, json_body=body, headers={"Idempotency-Key": post.idempotency_key}
        )
        if response.status != 200:
            error = self._classify("POST", path, response, scope=WRITE_STATUSES)
            # Only a 5xx or 408 leaves the outcome open; 429 and other 4xx mean nothing
            # was created. (A transport failure raised above and left may_exist set.)
            attempt.may_exist = error.retryable and response.status != 429
            raise error
        status = self._json_object(response, "POST", path)
        return self._result(status, "POST", path)

    def _check_locally(self, post: OutboundPost) -> None:
        """Refuse, without a request, what the instance is documented to refuse."""
        if not post.text.strip() and not post.media:
            raise self._http.error("a status needs text or media", retryable=False)
        length = status_length(post.text, post.spoiler_text)
        if length > self._max_characters:
            raise self._http.error(
                f"text is {length} characters, over the instance limit of "
                f"{self._max_characters} (URLs count 23, spoiler text counts)",
                retryable=False,
            )
        if not self.carries.keeps_gates(post.gates):
            raise self._http.error(NO_GATES.format(name=self.carries.name), retryable=False)
        if post.visibility is not None and post.visibility not in VISIBILITIES:
            raise self._http.error(
                f"visibility {post.visibility!r} is not one of {sorted(VISIBILITIES)}",
                retryable=False,
            )
        if len(post.media) > MAX_MEDIA:
            raise self._http.error(
                f"{len(post.media)} attachments, at most {MAX_MEDIA} allowed", retryable=False
            )
        for item in post.media:
            self._check_media(item)
        if len(post.media) > 1 and any(_mime(i) in LARGER_MIME_TYPES for i in post.media):
            raise self._http.error(
                "a video or audio file goes alone: Mastodon attaches it to no status with other files",
                retryable=False,
            )

    def _check_media(self, item: MediaItem) -> None:
        mime = _mime(item)
        if mime not in IMAGE_MIME_TYPES and mime not in LARGER_MIME_TYPES:
            raise self._http.error(f"Mastodon takes no files of type {mime or 'unknown'!r}", retryable=False)
        limit = self._video_limit if mime in LARGER_MIME_TYPES else self._image_limit
        if len(item.data) >= limit:
            raise self._http.error(
                f"the {mime} file of {len(item.data)} bytes is too large: the instance takes "
                f"files smaller than {limit} bytes",
                retryable=False,
            )
        if item.description is not None and len(item.description) > MAX_DESCRIPTION:
            raise self._http.error(
                f"alt text of {len(item.description)} characters, at most {MAX_DESCRIPTION} allowed",
                retryable=False,
            )

    def _remember(self, key: str, now: datetime) -> _Attempt:
        attempt = _Attempt(first_at=now)
        self._attempts[key] = attempt
        while len(self._attempts) > _ATTEMPTS_KEPT:
            self._attempts.popitem(last=False)
        return attempt

    async def _upload(self, item: MediaItem) -> str:
        """Upload one attachment with ``POST /api/v2/media`` and wait until it is processed."""
        form = aiohttp.FormData()
        # A stream, not bytes: aiohttp writes a large bytes body in one go, holding the loop.
        form.add_field("file", io.BytesIO(item.data), content_type=item.mime_type, filename=_filename(item))
        if item.description:
            form.add_field("description", item.description)
        if item.focus:
            form.add_field("focus", item.focus)
        path = "/api/v2/media"
        response = await self._http.request("POST", path, data=form)
        if response.status == 500 and self._http.detail_of(response) == PROCESSING_ERROR:
            raise self._unprocessable(item, None, response)
        if response.status not in (200, 202):
            raise self._classify("POST", path, response, scope=WRITE_MEDIA)
        media = self._json_object(response, "POST", path)
        media_id = media.get("id")
        if not isinstance(media_id, str) or not media_id:
            raise self._http.error(f"POST {path} answered without a media id", retryable=True)
        if response.status == 200:
            return media_id

        # 202: the full-size file is processed in the background; GET answers 206 until done.
        waited = 0.0
        get_path = f"/api/v1/media/{quote(media_id, safe='')}"
        while True:
            await self._sleep(self._poll_interval)
            waited += self._poll_interval
            response = await self._http.request("GET", get_path)
            if response.status == 200:
                return media_id
            if response.status == 422:
                # Api::V1::MediaController#check_processing: the background processing failed.
                raise self._unprocessable(item, media_id, response)
            if response.status != 206:
                raise self._classify("GET", "/api/v1/media/:id", response, scope=WRITE_MEDIA)
            if waited >= self._poll_timeout:
                raise self._http.error(
                    f"media {media_id} still processing after {waited:g} s", retryable=True
                )

    def _unprocessable(self, item: MediaItem, media_id: str | None, response: HttpResponse) -> AdapterError:
        """The instance could not process a file: final, the same bytes would fail again."""
        which = f"media {media_id}" if media_id else "the upload"
        return self._http.error(
            f"the instance could not process {which} ({_mime(item)}, {len(item.data)} bytes)",
            retryable=False, status=response.status, detail=self._http.detail_of(response),
        )

    # -- find_existing ---------------------------------------------------------------------

    async def _statuses_page(self, path: str, params: dict[str, str]) -> Any:
        """One page of the account's statuses, a page asked again after a passing error (a
        5xx, a dropped connection, a short 429): the lookup spans pages, and one error on any
        of them would otherwise fail the whole recovery, and with it the post."""
        retrying = AsyncRetrying(
            stop=stop_after_attempt(PAGE_TRIES),
            wait=wait_exponential(multiplier=0.2, max=2.0),
            retry=retry_if_exception(
                lambda exc: isinstance(exc, AdapterError) and exc.retryable and not exc.auth_failed
                and (exc.retry_after or 0) <= PAGE_WAIT_MAX
            ),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                response = await self._http.request("GET", path, params=params)
                if response.status != 200:
                    raise self._classify("GET", "/api/v1/accounts/:id/statuses", response, scope=READ_STATUSES)
                return response.json()
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def find_existing(
        self, post: OutboundPost, *, since: datetime | None = None
    ) -> PublishResult | None:
        """Look for a status this post already made (rule in the module docstring)."""
        if since is None:
            attempt = self._attempts.get(post.idempotency_key)
            known = attempt.first_at if attempt else post.first_attempt_at
            since = known if known is not None else self._clock() - self._lookback
        threshold = since - CLOCK_SKEW
        account_id = await self._own_account_id()
        want_text = normalize_for_match(post.text)
        want_spoiler = normalize_for_match(post.spoiler_text or "")
        path = f"/api/v1/accounts/{quote(account_id, safe='')}/statuses"
        found: dict[str, Any] | None = None
        found_at: datetime | None = None
        max_id: str | None = None
        for _ in range(MAX_PAGES):
            params = {"limit": str(PAGE_SIZE), "exclude_reblogs": "true"}
            if max_id:
                params["max_id"] = max_id
            page = await self._statuses_page(path, params)
            if not isinstance(page, list) or not page:
                break
            reached_older = False
            for status in page:
                if not isinstance(status, dict):
                    continue
                created = parse_timestamp(_str(status.get("created_at")))
                if created is None:
                    continue
                if created < threshold:
                    reached_older = True
                    continue
                if not self._matches(status, post, want_text, want_spoiler):
                    continue
                # Pages run newest first: the last match seen is the oldest, i.e. the first
                # status this post made.
                if found_at is None or created <= found_at:
                    found, found_at = status, created
            last = page[-1]
            max_id = _str(last.get("id")) if isinstance(last, dict) else None
            if reached_older or not max_id or len(page) < PAGE_SIZE:
                break
        if found is None:
            return None
        return self._result(found, "GET", path)

    @staticmethod
    def _matches(
        status: dict[str, Any], post: OutboundPost, want_text: str, want_spoiler: str
    ) -> bool:
        if status.get("reblog"):
            return False
        if _str(status.get("in_reply_to_id")) != (post.reply_to or None):
            return False
        if normalize_for_match(_str(status.get("spoiler_text")) or "") != want_spoiler:
            return False
        attachments = status.get("media_attachments")
        count = len(attachments) if isinstance(attachments, list) else 0
        if count != len(post.media):
            return False
        content = _str(status.get("content")) or ""
        return normalize_for_match(html_to_text(content)) == want_text

    async def _own_account_id(self) -> str:
        if self._account_id is None:
            self._account_id = (await self.verify_credentials()).remote_id
        return self._account_id

    # -- delete, verify_credentials ----------------------------------------------------------

    async def delete(self, remote_id: str) -> None:
        """Delete the status, where it went out is not known (see :meth:`delete_published`)."""
        await self.delete_published(remote_id, url=None)

    async def delete_published(
        self, remote_id: str, *, url: str | None, author: str | None = None, visibility: str | None = None,
    ) -> None:
        """Delete the status that went out at ``url``; one that is surely gone counts as deleted.

        Mastodon deletes only the token's own statuses and answers 404 for another account's
        as for one gone (``Status.where(account: current_account).find``): after a 404 the
        status is read, and one still there is refused (not retried), never counted as deleted.
        A read answered 404 too is proof the status is gone only if it was the token's account's
        own, which that account always sees: another's private status answers the same. It
        was, where ``author`` (the account the instance said it went out as) is the token's
        account's id, or else where ``url`` lies under the account's profile address
        (``/@name/…``, as the instance gives both). Where neither tells (a post recorded
        before its author was, on a server that gives no profile address), a status sent as
        ``visibility`` public or unlisted is gone for everyone if it is gone for anyone (a read
        without the token answers 404), provided the server shows such a status to anyone (one
        of the token's account's own, of the same visibility, read without the token, answers);
        otherwise the deletion is refused rather than recorded. A token without ``read:statuses``
        cannot read it: the deletion is then refused as the credential's fault (``auth_failed``),
        naming the scope."""
        path = f"/api/v1/statuses/{quote(remote_id, safe='')}"
        response = await self._http.request("DELETE", path)
        if response.status == 200:
            return
        if response.status != 404:
            raise self._classify("DELETE", "/api/v1/statuses/:id", response, scope=WRITE_STATUSES)
        read = await self._http.request("GET", path)
        if read.status == 404:
            if await self._own_status(url, author) or await self._gone_for_everyone(remote_id, visibility):
                return
            raise self._http.error(
                "DELETE /api/v1/statuses/:id answered 404 and the status cannot be read: it is gone, or "
                f"another account's that the token's may not see ({url or 'its address not recorded'} is not "
                "under the token's account's profile address); Byline cannot tell which, so records no deletion",
                retryable=False, status=404,
            )
        if read.status != 200:
            error = self._classify("GET", "/api/v1/statuses/:id", read, scope=READ_STATUSES)
            if error.auth_failed and read.status == 403:
                # Gone, or another account's: without read access nothing tells which, and a
                # guess either way would record a deletion that may not have happened.
                raise self._http.error(
                    "DELETE /api/v1/statuses/:id answered 404 (the status is gone, or another account's) "
                    f"and the token cannot read it to tell which: {self._lacks(READ_STATUSES)}",
                    retryable=False, auth_failed=True, status=403, detail=OUTSIDE_SCOPES,
                )
            raise error
        account = self._json_object(read, "GET", path).get("account")
        owner = (_str(account.get("acct")) or _str(account.get("id"))) if isinstance(account, dict) else None
        raise self._http.error(
            f"DELETE /api/v1/statuses/:id answered 404, and the status is still there: it is another "
            f"account's ({owner or 'unnamed'}) than the token's, which may not delete it",
            retryable=False, status=404,
        )

    async def _own_status(self, url: str | None, author: str | None) -> bool:
        """Whether a status that went out as ``author`` at ``url`` is the token's account's
        (asked now: the token may have come to be another account's since): its id is
        ``author``, or ``url`` lies under its profile address."""
        if not url and not author:
            return False
        me = await self.verify_credentials()
        if author is not None and me.remote_id == author:
            return True
        return bool(url and me.url and url.startswith(me.url.rstrip("/") + "/"))

    async def _gone_for_everyone(self, remote_id: str, visibility: str | None) -> bool:
        """Whether the status ``remote_id``, sent as ``visibility``, is shown to nobody: sent
        public or unlisted, which anyone may read while it is there, it answers 404 to a read
        without the token, and the server does show anyone such a status (one of the token's
        account's own, of the same visibility, read without the token, answers 200; a server
        that hides statuses from readers without an account, as some forks may, proves
        nothing). Whoever's account it was, its words are no longer out."""
        if visibility not in PUBLIC_VISIBILITIES:
            return False  # the account's default, or private: the token's account alone could see it
        path = f"/api/v1/statuses/{quote(remote_id, safe='')}"
        if (await self._http.request("GET", path, anonymous=True)).status != 404:
            return False
        me = self._account_id or (await self.verify_credentials()).remote_id
        own_path = f"/api/v1/accounts/{quote(me, safe='')}/statuses"
        listed = await self._http.request("GET", own_path, params={"limit": "40", "exclude_reblogs": "true"})
        statuses = listed.json() if listed.status == 200 else None
        if not isinstance(statuses, list):
            return False
        control = next((_str(s.get("id")) for s in statuses
                        if isinstance(s, dict) and s.get("visibility") == visibility and _str(s.get("id"))
                        and _str(s.get("id")) != remote_id), None)
        if control is None:
            return False  # nothing of the same visibility to show the server serves it without the token
        shown = await self._http.request("GET", f"/api/v1/statuses/{quote(control, safe='')}", anonymous=True)
        return shown.status == 200

    async def verify_credentials(self) -> AccountInfo:
        """Ask the instance whose token this is."""
        path = "/api/v1/accounts/verify_credentials"
        response = await self._http.request("GET", path)
        if response.status != 200:
            raise self._classify("GET", path, response, scope=READ_ACCOUNTS)
        account = self._json_object(response, "GET", path)
        account_id = _str(account.get("id"))
        acct = _str(account.get("acct")) or _str(account.get("username"))
        if not account_id or not acct:
            raise self._http.error(f"GET {path} answered without id or acct", retryable=True)
        self._account_id = account_id
        host = urlsplit(self._base_url).hostname or ""
        return AccountInfo(
            remote_id=account_id,
            handle=acct if "@" in acct else f"{acct}@{host}",
            display_name=_str(account.get("display_name")) or None,
            url=_str(account.get("url")),
        )

    async def scope_check(self) -> ScopeCheck:
        """What the token's scopes leave undone, asked without changing anything (Mastodon tells
        a plain access token's scopes nowhere; an application's, from 4.3, are not its token's).

        ``verify_credentials`` (``read:accounts``; a refusal raises, as it does there), then one
        status of the account's own (``read:statuses``, which a crash recovery and the check of
        a deletion answered 404 need: a warning, posts still go out). ``write:statuses`` is not
        asked ahead: the only question that tells it is a request to create a status, and an
        instance that took an empty one would publish it on the account. A token without it is
        named at its first post (the credential's fault, the post's budget untouched)."""
        account_id = (await self.verify_credentials()).remote_id
        path = f"/api/v1/accounts/{quote(account_id, safe='')}/statuses"
        warning = await self._lacking("GET", path, "/api/v1/accounts/:id/statuses", READ_STATUSES,
                                      ok=200, params={"limit": "1"})
        return ScopeCheck(
            warning=warning and (f"{warning}: posts go out, but a post's recovery after a crash and "
                                 "a deletion answered 404 cannot read the account's statuses"),
        )

    async def _lacking(self, method: str, path: str, shown: str, scope: str, *, ok: int, **kwargs: Any) -> str | None:
        """The words of a 403 for ``scope`` from one call, None for the answer ``ok``; raises for any other."""
        response = await self._http.request(method, path, **kwargs)
        if response.status == ok:
            return None
        error = self._classify(method, shown, response, scope=scope)
        if error.auth_failed and response.status == 403:
            return error.message
        raise error

    # -- the profile byline ----------------------------------------------------------------

    async def set_profile_line(self, line: ProfileLine) -> None:
        """Keep one profile metadata field (``PATCH /api/v1/accounts/update_credentials`` with
        ``fields_attributes``): the fields are read first (``source.fields`` of
        ``verify_credentials``, as the account wrote them) and sent back with only the
        gateway's field set or removed, since Mastodon replaces the whole set. Nothing else of
        the profile is sent, so nothing else changes."""
        path = "/api/v1/accounts/verify_credentials"
        response = await self._http.request("GET", path)
        if response.status != 200:
            raise self._classify("GET", path, response, scope=READ_ACCOUNTS)
        source = self._json_object(response, "GET", path).get("source")
        found = source.get("fields") if isinstance(source, dict) else None
        if not isinstance(found, list):
            raise self._http.error(f"GET {path} answered without source.fields", retryable=True)
        fields = [(str(f.get("name", "")), str(f.get("value", ""))) for f in found if isinstance(f, dict)]
        mine = {*line.previous_fields, *([line.field[0]] if line.field else [])}
        at = next((i for i, (name, _) in enumerate(fields) if name in mine), None)
        if line.field is None:
            if at is None:
                return
            del fields[at]
        elif at is not None:
            fields[at] = line.field
        elif len(fields) >= MAX_PROFILE_FIELDS:
            raise self._http.error(
                f"the profile already has {len(fields)} fields, the most Mastodon keeps: "
                "remove one for the byline", retryable=False,
            )
        else:
            fields.append(line.field)
        for name, value in fields:
            if len(name) > MAX_FIELD_CHARACTERS or len(value) > MAX_FIELD_CHARACTERS:
                raise self._http.error(
                    f"a profile field's name or value is over {MAX_FIELD_CHARACTERS} characters", retryable=False)
        # A hash keyed by position (an array would be read as no fields at all).
        body = {"fields_attributes": {str(i): {"name": n, "value": v} for i, (n, v) in enumerate(fields)}}
        if not fields:
            body = {"fields_attributes": {"0": {"name": "", "value": ""}}}  # a blank name: no field
        path = "/api/v1/accounts/update_credentials"
        response = await self._http.request("PATCH", path, json_body=body)
        if response.status != 200:
            raise self._classify("PATCH", path, response, scope=WRITE_ACCOUNTS)

    # -- edit ------------------------------------------------------------------------------

    async def edit(self, remote_id: str, post: OutboundPost) -> PublishResult:
        """Edit a published status (``PUT /api/v1/statuses/:id``, Mastodon 3.5+).

        Text, spoiler, sensitivity and language are replaced. ``media_ids`` is sent only with
        ``post.redescribed`` (new alt text or focal points, Mastodon 4.1's ``media_attributes[]``,
        which count only beside it): the status's own media, read from it, in its order, so that
        it keeps its attachments. Safe to repeat: the same edit twice leaves one result.
        """
        self._check_locally(post)
        body: dict[str, Any] = {
            "status": post.text, "sensitive": post.sensitive, "spoiler_text": post.spoiler_text or "",
        }
        if post.language:
            body["language"] = post.language
        path = f"/api/v1/statuses/{quote(remote_id, safe='')}"
        if post.redescribed is not None:
            body |= await self._media_attributes(path, post.redescribed)
        response = await self._http.request("PUT", path, json_body=body)
        if response.status != 200:
            raise self._classify("PUT", "/api/v1/statuses/:id", response, scope=WRITE_STATUSES)
        return self._result(self._json_object(response, "PUT", path), "PUT", path)

    async def _media_attributes(
        self, path: str, redescribed: tuple[tuple[str | None, str | None], ...],
    ) -> dict[str, Any]:
        """``media_ids`` and ``media_attributes`` of an edit giving the status's pictures this alt
        text and these focal points, in order: the instance's media ids are read from the status
        (Byline uploads a post's pictures in its order, and an edit of Byline's never changes them)."""
        response = await self._http.request("GET", path)
        if response.status != 200:
            raise self._classify("GET", "/api/v1/statuses/:id", response, scope=READ_STATUSES)
        attachments = self._json_object(response, "GET", path).get("media_attachments")
        ids = [_str(m.get("id")) for m in attachments if isinstance(m, dict)] if isinstance(attachments, list) else []
        if len(ids) != len(redescribed) or not all(ids):
            raise self._http.error(
                f"the status has {len(ids)} attachments on the instance, the edit names {len(redescribed)}",
                retryable=False,
            )
        attributes: list[dict[str, str]] = []
        for media_id, (description, focus) in zip(ids, redescribed, strict=True):
            assert media_id is not None  # checked above
            attribute = {"id": media_id, "description": description or ""}
            if focus is not None:
                attribute["focus"] = focus
            attributes.append(attribute)
        return {"media_ids": ids, "media_attributes": attributes}

    # -- reads passed through ----------------------------------------------------------------

    async def get_raw(self, path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
        """``GET`` one client API path (``/api/v1/…`` or ``/api/v2/…``) as this account.

        For a gateway that lets apps read the account's timelines: the status, the headers and
        the body as the instance answered them. ``path`` and ``query`` arrive percent-encoded
        and are sent as they are; the token goes only in the header, and an error raised here
        never contains it. A missing answer raises a retryable ``AdapterError``.
        """
        segments = path.lower().replace("%2e", ".").split("/")
        if not _RAW_PATH.match(path) or "." in segments or ".." in segments:
            raise ValueError(f"mastodon: not a client API path: {path[:80]!r}")
        target = f"{path}?{query}" if query else path
        response = await self._http.request("GET", target)
        return response.status, dict(response.headers), response.body

    # -- the instance's streaming API ------------------------------------------------------

    async def stream_events(self, stream: Sequence[str]) -> AsyncIterator[tuple[str, str]]:
        """The instance's live events of one stream as this account: ``(event, payload)`` as its
        streaming server sends them (the payload JSON text, or a deleted status's id), until the
        connection ends; ``stream`` as an event names it (``["user"]``, ``["hashtag", "cats"]``).

        One WebSocket at ``/api/v1/streaming`` with the token in the ``Authorization`` header,
        which the streaming server takes as it takes ``access_token`` (never in the URL). A
        refused or failed connection is an ``AdapterError`` (401: ``auth_failed``); a connection
        that ends simply ends the iteration, and the caller reconnects."""
        params = {"stream": stream[0]}
        if len(stream) > 1:
            params["list" if stream[0] == "list" else "tag"] = stream[1]
        if self._streaming_base is None:
            # Where the streaming server answers: an instance with a host of its own for it
            # redirects its paths there (not followed: the token goes only where this says). Asked once.
            health = await self._http.request("GET", _STREAMING_PATH + "/health")
            self._streaming_base = moved_base(health.status, health.headers, _STREAMING_PATH + "/health") or ""
        async with self._http.websocket(_STREAMING_PATH, query=urlencode(params),
                                        base=self._streaming_base or None) as socket:
            async for message in socket:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    body = json.loads(message.data)
                except ValueError:
                    continue
                if not isinstance(body, dict):
                    continue
                if body.get("error") == STREAM_SCOPES:
                    raise self._stream_refused(stream[0])
                event, payload = body.get("event"), body.get("payload")
                if isinstance(event, str) and isinstance(payload, str):
                    yield event, payload
                elif isinstance(event, str) and payload is None:
                    yield event, ""  # filters_changed carries no payload

    def _stream_refused(self, name: str) -> AdapterError:
        """The streaming server's refusal of a stream the token's scopes do not cover, naming the
        scope. Not the credential's fault (``auth_failed`` would hold the account's posts): only
        the stream is lost, and it is asked again after a pause."""
        scope = "read:notifications" if name == "user:notification" else READ_STATUSES
        return self._http.error(
            f"the streaming server refused the {name} stream: {self._lacks(scope)} (or read)",
            retryable=False, status=401, detail=STREAM_SCOPES,
        )

    # -- helpers -----------------------------------------------------------------------------

    def _classify(self, method: str, path: str, response: HttpResponse, *, scope: str) -> AdapterError:
        """The error of a call that needs ``scope``: a token without it is refused 403 with
        ``OUTSIDE_SCOPES``, which only an admin can mend (``auth_failed``: the account's posts
        wait, unspent, and its health says which scope), never the post's refusal."""
        if response.status == 403 and self._http.detail_of(response) == OUTSIDE_SCOPES:
            return self._http.error(
                f"{method} {path} answered 403: {self._lacks(scope)}",
                retryable=False, auth_failed=True, status=403, detail=OUTSIDE_SCOPES,
            )
        retry_after = None
        if response.status == 429 or response.status >= 500:
            now = self._clock()
            retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
            if retry_after is None and response.status == 429:
                reset = parse_timestamp(response.headers.get("X-RateLimit-Reset"))
                if reset is not None:
                    retry_after = seconds_until(reset, now)
        return self._http.classify(method, path, response, retry_after=retry_after)

    @staticmethod
    def _lacks(scope: str) -> str:
        return (f"the token lacks the scope {scope}; give the application {scope} on the instance "
                "(Preferences, Development) and use its new access token")

    def _json_object(self, response: HttpResponse, method: str, path: str) -> dict[str, Any]:
        body = response.json()
        if not isinstance(body, dict):
            # A 200 with a body we cannot read: the request may well have worked, so the
            # caller must treat the outcome as unknown and retry (idempotently).
            raise self._http.error(
                f"{method} {path} answered {response.status} without a JSON object",
                retryable=True, status=response.status, detail=response.text,
            )
        return body

    def _result(self, status: dict[str, Any], method: str, path: str) -> PublishResult:
        remote_id = _str(status.get("id"))
        if not remote_id:
            raise self._http.error(f"{method} {path} answered a status without id",
                                   retryable=True)
        account = status.get("account")
        return PublishResult(remote_id=remote_id, url=_str(status.get("url")),
                             author=_str(account.get("id")) if isinstance(account, dict) else None)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mime(item: MediaItem) -> str:
    return item.mime_type.split(";")[0].strip().lower()


def _filename(item: MediaItem) -> str:
    subtype = item.mime_type.partition("/")[2].split(";")[0].strip() or "bin"
    return f"upload.{subtype}"
