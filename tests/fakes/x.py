"""A strict local X API v2: create, look up, list and delete tweets; users/me; image upload.

``create_app(fake)`` builds an ``aiohttp.web.Application`` around a ``FakeX``, whose
attributes hold what was published (``tweets()``) and whose ``faults`` and ``clock`` drive
failures and time from tests.

Documented rules it enforces, and where they are written:

* docs.x.com/x-api/posts/create-or-edit-post (``POST /2/tweets``, formerly
  developer.x.com/en/docs/twitter-api/tweets/manage-tweets/api-reference/post-tweets):
  - ``Authorization: Bearer <user token>`` is required (OAuth 2.0 user context); without a
    known token: 401 ``{"title": "Unauthorized", "type": "about:blank", "status": 401,
    "detail": "Unauthorized"}``.
  - The body is JSON: any other content type is 400 "Requests with bodies must have
    content-type of application/json." (the answer quoted in abraham/twitteroauth#1082).
  - Only the documented body fields are accepted (``text``, ``reply``, ``media``, ``poll``,
    ``quote_tweet_id``, ``reply_settings``, …, and within ``reply`` and ``media`` only their
    documented fields): anything else is 400 problem+json with type
    ``https://api.twitter.com/2/problems/invalid-request``, title "Invalid Request" and
    detail "One or more parameters to your request was invalid." (the v2 error format, see
    developer.x.com/en/support/x-api/error-troubleshooting). The wording of ``message`` is
    the stand-in's own.
  - ``media`` excludes ``poll`` and ``quote_tweet_id``; ``media.media_ids`` holds 1–4 ids
    of media the user uploaded; ids are strings matching ``^[0-9]{1,19}$``, as are
    ``reply.in_reply_to_tweet_id`` and every tweet id the stand-in issues.
  - ``reply_settings`` is one of ``following``, ``mentionedUsers``, ``subscribers``,
    ``verified``.
  - Text must not weigh more than 280 by twitter-text's v3 configuration
    (developer.x.com/en/docs/counting-characters): NFC, code points in U+0000–U+10FF,
    U+2000–U+200D, U+2010–U+201F, U+2032–U+2037 weigh 1, others 2, an emoji sequence 2,
    every URL 23, bare domains such as example.com included (counted with
    twitter-text-parser, the port of the library X counts with). Too long: 403 "Tweet needs
    to be a bit shorter." (error 186 of X's error index, which corresponds to HTTP 403).
  - The same text from the same user within ``duplicate_window`` (24 h here; X does not
    publish its window) is 403 problem+json ``{"detail": "You are not allowed to create a
    Tweet with duplicate content.", "type": "about:blank", "title": "Forbidden", "status":
    403}`` (the body quoted in akrherz/iembot#163).
  - Replying to a tweet that does not exist or was deleted is 403 "You attempted to reply
    to a Tweet that is deleted or not visible to you."
  - Success is 201 ``{"data": {"id", "text", "edit_history_tweet_ids"}}``.
* Stored text is served as X serves it: URLs replaced by ``https://t.co/…`` links listed in
  ``entities.urls`` with their ``expanded_url``, attached media as a trailing t.co link with
  a ``media_key``, and ``&``, ``<``, ``>`` HTML-escaped.
* docs.x.com/x-api/posts/user-posts-timeline-by-user-id (``GET /2/users/:id/tweets``):
  ``max_results`` 5–100 (default 10), ``start_time`` / ``end_time`` as
  ``YYYY-MM-DDTHH:mm:ssZ``, ``exclude`` of ``replies``/``retweets``, ``tweet.fields`` from
  the documented list, ``pagination_token``; unknown query parameters are 400 ("The query
  parameter [x] is not one of […]", the wording quoted on twittercommunity.com/t/151746).
  Newest first; ``meta`` has ``result_count``, ``newest_id``, ``oldest_id``, ``next_token``.
* ``DELETE /2/tweets/:id``: 200 ``{"data": {"deleted": true}}``
  (developer.x.com/…/delete-tweets-id). The docs do not say what deleting a missing tweet
  answers; the stand-in answers 404 problem+json of type ``…/problems/resource-not-found``.
* ``GET /2/tweets/:id``: a missing tweet is 200 with an ``errors`` array of
  ``resource-not-found`` problems, the v2 partial-error form.
* ``GET /2/users/me``: ``{"data": {"id", "name", "username"}}``.
* API v1.1 ``GET account/verify_credentials.json`` and ``POST account/update_profile.json``:
  OAuth 1.0a user context only (the HMAC-SHA1 signature is checked; otherwise 401 code 32
  "Could not authenticate you."); a ``description`` over 160 characters is 403 code 120.
* docs.x.com/x-api/media/upload-media (``POST /2/media/upload``): JSON with ``media``
  (base64) and ``media_category`` required, ``media_category`` one of ``tweet_image``,
  ``dm_image``, ``subtitles``, ``media_type`` from the documented list; and
  docs.x.com/x-api/media/create-media-metadata: ``{"id", "metadata": {"alt_text":
  {"text"}}}``, alt text at most 1000 characters.
* docs.x.com/fundamentals/rate-limits: every answer carries ``x-rate-limit-limit``,
  ``x-rate-limit-remaining`` and ``x-rate-limit-reset`` (epoch seconds) for its endpoint,
  per user per 15-minute window (``POST /2/tweets`` 100, ``DELETE`` 50, as documented);
  past the limit: 429.
* Writes are capped per 24 hours as well (``DAILY_LIMITS``, a test may lower them in
  ``daily_limits``): ``POST /2/tweets`` 10,000 per app (the rate-limit table) and 2,400 per
  user (help.x.com/en/rules-and-policies/x-limits: "2,400 posts per day", every client
  counted). Its answers also carry ``x-user-limit-24hour-limit``/``-remaining``/``-reset``
  and ``x-app-limit-24hour-limit``/``-remaining``/``-reset`` (epoch seconds), the headers X
  sends on creates; past either cap: 429 with ``…-24hour-remaining: 0`` and that window's
  reset, while ``x-rate-limit-remaining`` may well be above 0 (the 15-minute window is not
  the one used up). Each window starts at its first request; every request counts toward
  the 15-minute window, only those let through toward the 24-hour ones.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import string
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web
from oauthlib.oauth1 import Client
from oauthlib.oauth1.rfc5849 import signature, utils

from tests.fakes._faults import FakeClock, Faults, drop_connection

with warnings.catch_warnings():
    # twitter-text-parser reads its emoji list through pkg_resources, deprecated by newer
    # setuptools with a warning at import.
    warnings.simplefilter("ignore", DeprecationWarning)
    warnings.simplefilter("ignore", UserWarning)
    import twitter_text

MAX_WEIGHT = 280 * 100
PROBLEMS = "https://api.twitter.com/2/problems/"
INVALID_DETAIL = "One or more parameters to your request was invalid."
DUPLICATE = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG = "Tweet needs to be a bit shorter."
RATE_WINDOW = timedelta(minutes=15)
DAILY_WINDOW = timedelta(hours=24)
DAILY_LIMITS = {"POST /2/tweets": (2400, 10_000)}
"""Per 24 hours: (per user, per app)."""
RATE_LIMITS = {
    "POST /2/tweets": 100,
    "DELETE /2/tweets/:id": 50,
    "GET /2/tweets/:id": 900,
    "GET /2/users/me": 75,
    "GET /2/users/:id/tweets": 900,
    "POST /2/media/upload": 500,
    "POST /2/media/metadata": 500,
}

TWEET_FIELDS = frozenset({
    "card_uri", "community_id", "direct_message_deep_link", "edit_options",
    "for_super_followers_only", "geo", "made_with_ai", "media", "nullcast", "paid_partnership",
    "poll", "quote_tweet_id", "reply", "reply_settings", "share_with_followers", "text",
})
REPLY_FIELDS = frozenset({"in_reply_to_tweet_id", "exclude_reply_user_ids",
                          "auto_populate_reply_metadata"})
MEDIA_FIELDS = frozenset({"media_ids", "tagged_user_ids"})
REPLY_SETTINGS = frozenset({"following", "mentionedUsers", "subscribers", "verified"})
TIMELINE_PARAMS = frozenset({
    "since_id", "until_id", "max_results", "pagination_token", "exclude", "start_time",
    "end_time", "tweet.fields", "expansions", "media.fields", "poll.fields", "user.fields",
    "place.fields",
})
TWEET_FIELD_VALUES = frozenset({
    "article", "attachments", "author_id", "card_uri", "community_id", "context_annotations",
    "conversation_id", "created_at", "display_text_range", "edit_controls",
    "edit_history_tweet_ids", "entities", "geo", "id", "in_reply_to_user_id", "lang",
    "media_metadata", "non_public_metrics", "note_tweet", "organic_metrics",
    "possibly_sensitive", "promoted_metrics", "public_metrics", "referenced_tweets",
    "reply_settings", "scopes", "source", "text", "withheld",
})
UPLOAD_FIELDS = frozenset({"media", "media_category", "media_type", "additional_owners",
                           "shared"})
MEDIA_CATEGORIES = frozenset({"tweet_image", "dm_image", "subtitles"})
MEDIA_TYPES = frozenset({"text/srt", "text/vtt", "image/jpeg", "image/bmp", "image/png",
                         "image/webp", "image/pjpeg", "image/tiff"})

_ID_RE = re.compile(r"^[0-9]{1,19}$")
_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?Z$")
_URL_RE = re.compile(r"(?:https?://|www\.)[^\s<>\"]+", re.IGNORECASE)
_URL_TRAILING = ".,:;!?'\")]}"


@dataclass
class User:
    """An X user and its tokens."""

    id: str
    username: str
    name: str
    tokens: set[str] = field(default_factory=set)
    description: str = ""
    oauth1: tuple[str, str, str, str] | None = None
    """OAuth 1.0a user context: consumer key and secret, access token and secret."""


@dataclass
class Tweet:
    """A tweet as stored: the text exactly as posted."""

    id: str
    author_id: str
    text: str
    created_at: datetime
    in_reply_to: str | None = None
    media_ids: list[str] = field(default_factory=list)
    deleted: bool = False


@dataclass
class Upload:
    """An uploaded image."""

    id: str
    owner_id: str
    size: int
    media_type: str | None
    alt_text: str | None = None


class Problem(Exception):
    """Raised inside handlers; becomes a problem+json answer."""

    def __init__(self, status: int, title: str, detail: str, *, type_: str = "about:blank",
                 errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.body: dict[str, Any] = {"title": title, "detail": detail, "type": type_}
        if errors is not None:
            self.body["errors"] = errors
        else:
            self.body["status"] = status


def invalid(message: str, parameters: dict[str, Any] | None = None) -> Problem:
    """The v2 400 answer for a malformed request."""
    return Problem(400, "Invalid Request", INVALID_DETAIL, type_=PROBLEMS + "invalid-request",
                   errors=[{"parameters": parameters or {}, "message": message}])


def forbidden(detail: str) -> Problem:
    """A 403 refusal of an understood request."""
    return Problem(403, "Forbidden", detail)


# -- weighted length (twitter-text itself, apart from the adapter's RE2 reading of its rules) --


def weighted_length(text: str) -> int:
    """twitter-text v3 weight of ``text``, in hundredths of a character.

    twitter-text-parser is the Python port of the library X counts with. The adapter and the
    gateway cannot use it on untrusted text (its URL pattern takes quadratic time), so they
    count with their own RE2 patterns; the stand-in counting with the library is what checks
    them.
    """
    return twitter_text.parse_tweet(text).weightedLength * 100


X_DESCRIPTION_LIMIT = 160
"""Characters of a profile description (``POST /1.1/account/update_profile``)."""


# -- the stand-in ----------------------------------------------------------------------------


class FakeX:
    """The stand-in's state and test controls."""

    def __init__(self) -> None:
        self.clock = FakeClock()
        self.faults = Faults()
        self.users: dict[str, User] = {}
        self.uploads: dict[str, Upload] = {}
        self.duplicate_window = timedelta(hours=24)
        self._tweets: dict[str, Tweet] = {}
        self._rate: dict[tuple[str, str], tuple[datetime, int]] = {}
        self.daily_limits = dict(DAILY_LIMITS)
        """Per endpoint, requests per 24 hours: (per user, per app)."""
        self._daily: dict[tuple[str, str], tuple[datetime, int]] = {}
        self._ids = itertools.count(1_900_000_000_000_000_001, 4096)
        self._short: dict[str, str] = {}

    # -- test controls -------------------------------------------------------------------------

    def add_user(self, username: str, token: str) -> User:
        """Create a user whose OAuth 2 user access token is ``token``."""
        user = User(id=str(2_244_994_945 + len(self.users)), username=username,
                    name=username.title(), tokens={token})
        self.users[user.id] = user
        return user

    def revoke_token(self, token: str) -> None:
        """Make ``token`` invalid, as revoking or expiry does."""
        for user in self.users.values():
            user.tokens.discard(token)

    expire_token = revoke_token

    def tweets(self, user: User | None = None, *, include_deleted: bool = False
               ) -> list[Tweet]:
        """Published tweets, oldest first."""
        return [t for t in self._tweets.values()
                if (user is None or t.author_id == user.id)
                and (include_deleted or not t.deleted)]

    def tweet(self, tweet_id: str) -> Tweet | None:
        """One stored tweet, deleted or not."""
        return self._tweets.get(tweet_id)

    def seed_tweet(self, user: User, text: str, *, created_at: datetime,
                   in_reply_to: str | None = None) -> Tweet:
        """Store a tweet directly, e.g. an identical one posted long ago."""
        tweet = Tweet(id=self._next_id(), author_id=user.id, text=text, created_at=created_at,
                      in_reply_to=in_reply_to)
        self._tweets[tweet.id] = tweet
        return tweet

    # -- internals ------------------------------------------------------------------------------

    def _next_id(self) -> str:
        return str(next(self._ids))

    def user_for(self, request: web.Request) -> User:
        """The user whose bearer token authorises ``request``."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token:
            for user in self.users.values():
                if token in user.tokens:
                    return user
        raise Problem(401, "Unauthorized", "Unauthorized")

    def count(self, user: User, endpoint: str) -> dict[str, str]:
        """Count one request against the endpoint's windows: its 15-minute one, and the
        per-user and per-app 24-hour ones of a write; their headers."""
        headers: dict[str, str] = {}
        key = (user.id, endpoint)
        self._rate[key] = self._window(self._rate, key, RATE_LIMITS[endpoint], RATE_WINDOW,
                                       "x-rate-limit", headers)
        over = self._rate[key][1] > RATE_LIMITS[endpoint]
        counted: dict[tuple[str, str], tuple[datetime, int]] = {}
        if endpoint in self.daily_limits:
            for (who, limit), prefix in zip(((user.id, self.daily_limits[endpoint][0]),
                                             ("app", self.daily_limits[endpoint][1])),
                                            ("x-user-limit-24hour", "x-app-limit-24hour"), strict=True):
                counted[(who, endpoint)] = self._window(self._daily, (who, endpoint), limit,
                                                        DAILY_WINDOW, prefix, headers)
                over |= counted[(who, endpoint)][1] > limit
        if over:
            raise RateLimited(headers)
        self._daily.update(counted)
        return headers

    def _window(self, windows: dict[tuple[str, str], tuple[datetime, int]], key: tuple[str, str],
                limit: int, length: timedelta, prefix: str, headers: dict[str, str]
                ) -> tuple[datetime, int]:
        """A window with one more request in it (its start, its count); sets its headers."""
        now = self.clock.now()
        start, used = windows.get(key, (now, 0))
        if now - start >= length:
            start, used = now, 0
        used += 1
        headers[f"{prefix}-limit"] = str(limit)
        headers[f"{prefix}-remaining"] = str(max(0, limit - used))
        headers[f"{prefix}-reset"] = str(int((start + length).timestamp()))
        return start, used

    def short_link(self, url: str) -> str:
        """The t.co link X would use for ``url``."""
        if url not in self._short:
            alphabet = string.ascii_letters + string.digits
            n = len(self._short) + 1
            code = ""
            while n:
                n, r = divmod(n, len(alphabet))
                code = alphabet[r] + code
            self._short[url] = "https://t.co/" + code.rjust(10, "a")
        return self._short[url]

    def render(self, tweet: Tweet, fields: set[str]) -> dict[str, Any]:
        """A Tweet object with the requested ``tweet.fields``."""
        text, urls = self._served_text(tweet)
        entity: dict[str, Any] = {"id": tweet.id, "text": text,
                                  "edit_history_tweet_ids": [tweet.id]}
        if "created_at" in fields:
            entity["created_at"] = tweet.created_at.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        if "author_id" in fields:
            entity["author_id"] = tweet.author_id
        if "entities" in fields and urls:
            entity["entities"] = {"urls": urls}
        if "attachments" in fields and tweet.media_ids:
            entity["attachments"] = {"media_keys": [f"3_{m}" for m in tweet.media_ids]}
        if "referenced_tweets" in fields and tweet.in_reply_to:
            entity["referenced_tweets"] = [{"type": "replied_to", "id": tweet.in_reply_to}]
        if "in_reply_to_user_id" in fields and tweet.in_reply_to:
            parent = self._tweets.get(tweet.in_reply_to)
            if parent is not None:
                entity["in_reply_to_user_id"] = parent.author_id
        return entity

    def _served_text(self, tweet: Tweet) -> tuple[str, list[dict[str, Any]]]:
        out = ""
        urls: list[dict[str, Any]] = []
        position = 0
        for match in _URL_RE.finditer(tweet.text):
            url = match.group(0).rstrip(_URL_TRAILING)
            out += _escape(tweet.text[position : match.start()])
            expanded = url if "://" in url else "http://" + url
            short = self.short_link(expanded)
            urls.append({"start": len(out), "end": len(out) + len(short), "url": short,
                         "expanded_url": expanded, "display_url": url.split("://")[-1]})
            out += short
            position = match.start() + len(url)
        out += _escape(tweet.text[position:])
        for media_id in tweet.media_ids:
            short = self.short_link(f"https://x.com/i/media/{media_id}")
            out += " " + short
            urls.append({"start": len(out) - len(short), "end": len(out), "url": short,
                         "expanded_url": f"https://x.com/i/web/status/{tweet.id}/photo/1",
                         "display_url": "pic.x.com/" + media_id, "media_key": f"3_{media_id}"})
        return out, urls


class RateLimited(Exception):
    """The endpoint's window is used up."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("rate limited")
        self.headers = headers


def _escape(text: str) -> str:
    # X escapes exactly these three in the text field.
    return escape(text, quote=False)


def _problem_response(status: int, body: dict[str, Any],
                      headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), headers=headers,
                        content_type="application/problem+json")


def _data(payload: dict[str, Any], *, status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers=headers)


async def _json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise invalid("Requests with bodies must have content-type of application/json.")
    try:
        body = json.loads(await request.read())
    except ValueError:
        raise invalid("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def _unknown(body: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    for name in body:
        if name not in allowed:
            raise invalid(f"The `{where}{name}` field is not allowed in this request.",
                          {f"{where}{name}": [json.dumps(body[name])]})


def _id_list(value: Any, name: str, *, low: int, high: int) -> list[str]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise invalid(f"The `{name}` field must be an array of {low} to {high} ids.")
    for item in value:
        if not isinstance(item, str) or not _ID_RE.match(item):
            raise invalid(f"The `{name}` value [{item}] does not match ^[0-9]{{1,19}}$.")
    return list(value)


FAKE_KEY = web.AppKey("fake_x", FakeX)


def create_app(fake: FakeX | None = None) -> web.Application:
    """An aiohttp application serving ``fake`` (a new one if none is given)."""
    fake = fake or FakeX()

    def render_fault(status: int) -> web.Response:
        titles = {500: "Internal Server Error", 502: "Bad Gateway",
                  503: "Service Unavailable", 504: "Gateway Timeout"}
        title = titles.get(status, "Error")
        return _problem_response(status, {"title": title, "detail": title,
                                          "type": "about:blank", "status": status})

    def render_rate_limit(retry_after: float, send_retry_after: bool) -> web.Response:
        reset = fake.clock.now() + timedelta(seconds=retry_after)
        headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0",
                   "x-rate-limit-reset": str(int(reset.timestamp()))}
        if send_retry_after:
            headers["retry-after"] = str(int(retry_after))
        return _problem_response(429, {"title": "Too Many Requests",
                                       "detail": "Too Many Requests", "type": "about:blank",
                                       "status": 429}, headers)

    @web.middleware
    async def errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except Problem as exc:
            return _problem_response(exc.status, exc.body)
        except RateLimited as exc:
            return _problem_response(429, {"title": "Too Many Requests",
                                           "detail": "Too Many Requests",
                                           "type": "about:blank", "status": 429}, exc.headers)
        except web.HTTPNotFound:
            return _problem_response(404, {"title": "Not Found Error", "detail":
                                           "Sorry, that page does not exist",
                                           "type": PROBLEMS + "resource-not-found",
                                           "status": 404})

    async def create_tweet(request: web.Request) -> web.StreamResponse:
        user = fake.user_for(request)
        headers = fake.count(user, "POST /2/tweets")
        body = await _json_object(request)
        _unknown(body, TWEET_FIELDS, "")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            raise invalid("The `text` field must be a string.")
        media_ids: list[str] = []
        if "media" in body:
            media = body["media"]
            if not isinstance(media, dict):
                raise invalid("The `media` field must be an object.")
            _unknown(media, MEDIA_FIELDS, "media.")
            media_ids = _id_list(media.get("media_ids"), "media.media_ids", low=1, high=4)
            if "poll" in body or "quote_tweet_id" in body:
                raise invalid("The `media` field is mutually exclusive with `poll` and "
                              "`quote_tweet_id`.")
            for media_id in media_ids:
                upload = fake.uploads.get(media_id)
                if upload is None or upload.owner_id != user.id:
                    raise invalid(f"Your media IDs are invalid: [{media_id}].")
        in_reply_to = None
        if "reply" in body:
            reply = body["reply"]
            if not isinstance(reply, dict):
                raise invalid("The `reply` field must be an object.")
            _unknown(reply, REPLY_FIELDS, "reply.")
            target = reply.get("in_reply_to_tweet_id")
            if not isinstance(target, str) or not _ID_RE.match(target):
                raise invalid("The `reply.in_reply_to_tweet_id` field must match "
                              "^[0-9]{1,19}$.")
            parent = fake.tweet(target)
            if parent is None or parent.deleted:
                raise forbidden("You attempted to reply to a Tweet that is deleted or not "
                                "visible to you.")
            in_reply_to = target
        if "reply_settings" in body and body["reply_settings"] not in REPLY_SETTINGS:
            raise invalid(f"The `reply_settings` value [{body['reply_settings']}] is not one "
                          f"of [{', '.join(sorted(REPLY_SETTINGS))}].")
        text = text or ""
        if not text.strip() and not media_ids:
            raise invalid("The `text` field is required when no media is attached.")
        if weighted_length(text) > MAX_WEIGHT:
            raise forbidden(TOO_LONG)
        now = fake.clock.now()
        for other in fake.tweets(user):
            if other.text == text and now - other.created_at < fake.duplicate_window:
                raise forbidden(DUPLICATE)

        tweet = Tweet(id=fake._next_id(), author_id=user.id, text=text, created_at=now,
                      in_reply_to=in_reply_to, media_ids=media_ids)
        fake._tweets[tweet.id] = tweet
        if fake.faults.take_drop():
            return drop_connection(request)
        served = fake.render(tweet, set())
        return _data({"data": served}, status=201, headers=headers)

    async def delete_tweet(request: web.Request) -> web.Response:
        user = fake.user_for(request)
        headers = fake.count(user, "DELETE /2/tweets/:id")
        tweet_id = request.match_info["id"]
        if not _ID_RE.match(tweet_id):
            raise invalid(f"The `id` query parameter value [{tweet_id}] does not match "
                          "^[0-9]{1,19}$")
        tweet = fake.tweet(tweet_id)
        if tweet is None or tweet.deleted:
            raise Problem(404, "Not Found Error", f"Could not find tweet with id: [{tweet_id}].",
                          type_=PROBLEMS + "resource-not-found")
        if tweet.author_id != user.id:
            raise forbidden("You are not allowed to delete this Tweet.")
        tweet.deleted = True
        return _data({"data": {"deleted": True}}, headers=headers)

    async def get_tweet(request: web.Request) -> web.Response:
        user = fake.user_for(request)
        headers = fake.count(user, "GET /2/tweets/:id")
        tweet_id = request.match_info["id"]
        if not _ID_RE.match(tweet_id):
            raise invalid(f"The `id` query parameter value [{tweet_id}] does not match "
                          "^[0-9]{1,19}$")
        tweet = fake.tweet(tweet_id)
        if tweet is None or tweet.deleted:
            return _data({"errors": [{
                "value": tweet_id, "detail": f"Could not find tweet with id: [{tweet_id}].",
                "title": "Not Found Error", "resource_type": "tweet", "parameter": "id",
                "resource_id": tweet_id, "type": PROBLEMS + "resource-not-found",
            }]}, headers=headers)
        fields = set(request.query.get("tweet.fields", "").split(",")) - {""}
        return _data({"data": fake.render(tweet, fields)}, headers=headers)

    async def users_me(request: web.Request) -> web.Response:
        user = fake.user_for(request)
        headers = fake.count(user, "GET /2/users/me")
        return _data({"data": {"id": user.id, "name": user.name, "username": user.username}},
                     headers=headers)

    async def user_tweets(request: web.Request) -> web.Response:
        viewer = fake.user_for(request)
        headers = fake.count(viewer, "GET /2/users/:id/tweets")
        query = request.query
        for name in query:
            if name not in TIMELINE_PARAMS:
                raise invalid(f"The query parameter [{name}] is not one of "
                              f"[{','.join(sorted(TIMELINE_PARAMS))}]", {name: [query[name]]})
        user_id = request.match_info["id"]
        if not _ID_RE.match(user_id):
            raise invalid(f"The `id` query parameter value [{user_id}] does not match "
                          "^[0-9]{1,19}$")
        max_results = 10
        if "max_results" in query:
            try:
                max_results = int(query["max_results"])
            except ValueError:
                max_results = -1
            if not 5 <= max_results <= 100:
                raise invalid(f"The `max_results` query parameter value "
                              f"[{query['max_results']}] is not between 5 and 100")
        bounds: dict[str, datetime] = {}
        for name in ("start_time", "end_time"):
            if name in query:
                raw = query[name]
                if not _TIME_RE.match(raw):
                    raise invalid(f"Invalid '{name}':'{raw}'. '{name}' must be "
                                  "YYYY-MM-DDTHH:mm:ssZ")
                bounds[name] = datetime.fromisoformat(raw)
        excluded = set(query.get("exclude", "").split(",")) - {""}
        if not excluded <= {"replies", "retweets"}:
            raise invalid(f"The `exclude` query parameter value [{query['exclude']}] is not "
                          "one of [replies,retweets]")
        fields = set(query.get("tweet.fields", "").split(",")) - {""}
        if not fields <= TWEET_FIELD_VALUES:
            bad = sorted(fields - TWEET_FIELD_VALUES)[0]
            raise invalid(f"The `tweet.fields` query parameter value [{bad}] is not one of "
                          f"[{','.join(sorted(TWEET_FIELD_VALUES))}]")
        owner = fake.users.get(user_id)
        if owner is None:
            return _data({"errors": [{
                "value": user_id, "detail": f"Could not find user with id: [{user_id}].",
                "title": "Not Found Error", "resource_type": "user", "parameter": "id",
                "resource_id": user_id, "type": PROBLEMS + "resource-not-found",
            }]}, headers=headers)
        found = [t for t in fake.tweets(owner)
                 if ("start_time" not in bounds or t.created_at >= bounds["start_time"])
                 and ("end_time" not in bounds or t.created_at <= bounds["end_time"])
                 and not ("replies" in excluded and t.in_reply_to)]
        found.sort(key=lambda t: int(t.id), reverse=True)
        offset = 0
        if "pagination_token" in query:
            try:
                offset = int(query["pagination_token"], 16)
            except ValueError:
                raise invalid("The `pagination_token` query parameter value is invalid"
                              ) from None
        page = found[offset : offset + max_results]
        if not page:
            return _data({"meta": {"result_count": 0}}, headers=headers)
        meta: dict[str, Any] = {"result_count": len(page), "newest_id": page[0].id,
                                "oldest_id": page[-1].id}
        if offset + max_results < len(found):
            meta["next_token"] = format(offset + max_results, "x")
        return _data({"data": [fake.render(t, fields) for t in page], "meta": meta},
                     headers=headers)

    async def upload_media(request: web.Request) -> web.Response:
        user = fake.user_for(request)
        headers = fake.count(user, "POST /2/media/upload")
        body = await _json_object(request)
        _unknown(body, UPLOAD_FIELDS, "")
        raw = body.get("media")
        if not isinstance(raw, str) or not raw:
            raise invalid("The `media` field is required.")
        category = body.get("media_category")
        if category not in MEDIA_CATEGORIES:
            raise invalid(f"The `media_category` value [{category}] is not one of "
                          f"[{', '.join(sorted(MEDIA_CATEGORIES))}].")
        media_type = body.get("media_type")
        if media_type is not None and media_type not in MEDIA_TYPES:
            raise invalid(f"The `media_type` value [{media_type}] is not one of "
                          f"[{', '.join(sorted(MEDIA_TYPES))}].")
        try:
            data = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("The `media` field is not valid base64.") from None
        upload = Upload(id=fake._next_id(), owner_id=user.id, size=len(data),
                        media_type=media_type)
        fake.uploads[upload.id] = upload
        return _data({"data": {"id": upload.id, "media_key": f"3_{upload.id}",
                               "size": upload.size, "expires_after_secs": 86400,
                               "processing_info": {"state": "succeeded"}}}, headers=headers)

    async def media_metadata(request: web.Request) -> web.Response:
        user = fake.user_for(request)
        headers = fake.count(user, "POST /2/media/metadata")
        body = await _json_object(request)
        _unknown(body, frozenset({"id", "metadata"}), "")
        media_id = body.get("id")
        upload = fake.uploads.get(media_id) if isinstance(media_id, str) else None
        if upload is None or upload.owner_id != user.id:
            raise invalid(f"Your media IDs are invalid: [{media_id}].")
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            raise invalid("The `metadata` field must be an object.")
        alt = metadata.get("alt_text")
        if alt is not None:
            text = alt.get("text") if isinstance(alt, dict) else None
            if not isinstance(text, str) or len(text) > 1000:
                raise invalid("The `metadata.alt_text.text` field must be a string of at "
                              "most 1000 characters.")
            upload.alt_text = text
        return _data({"data": {"id": upload.id, "associated_metadata": metadata}},
                     headers=headers)

    app = web.Application(
        middlewares=[errors_middleware, fake.faults.middleware(render_fault, render_rate_limit)]
    )
    app[FAKE_KEY] = fake
    app.router.add_post("/2/tweets", create_tweet)
    app.router.add_delete("/2/tweets/{id}", delete_tweet)
    app.router.add_get("/2/tweets/{id}", get_tweet)
    app.router.add_get("/2/users/me", users_me)
    app.router.add_get("/2/users/{id}/tweets", user_tweets)
    app.router.add_post("/2/media/upload", upload_media)
    app.router.add_post("/2/media/metadata", media_metadata)
    app.router.add_get("/1.1/account/verify_credentials.json", v1_verify_credentials)
    app.router.add_post("/1.1/account/update_profile.json", v1_update_profile)
    return app


def _v1_error(status: int, code: int, message: str) -> web.Response:
    """API v1.1's error body: ``{"errors": [{"code", "message"}]}``."""
    return web.json_response({"errors": [{"code": code, "message": message}]}, status=status)


async def _oauth1_user(fake: FakeX, request: web.Request, body: str) -> User | None:
    """The user whose OAuth 1.0a keys signed ``request`` (HMAC-SHA1 over the method, the URL and
    every query, body and oauth parameter, as RFC 5849 says), or None."""
    header = request.headers.get("Authorization", "")
    if not header.startswith("OAuth "):
        return None
    oauth = {k: utils.unescape(v) for k, v in utils.parse_authorization_header(header)}
    params = signature.collect_parameters(
        uri_query=request.query_string, body=body if request.content_type.endswith("urlencoded") else "",
        headers={"Authorization": header}, exclude_oauth_signature=True,
    )
    base = signature.signature_base_string(
        request.method, signature.base_string_uri(str(request.url)), signature.normalize_parameters(params))  # type: ignore[arg-type]  # the stub says dict; it takes the list collect_parameters gives
    for user in fake.users.values():
        if user.oauth1 is None or (oauth.get("oauth_consumer_key"), oauth.get("oauth_token")) != (
                user.oauth1[0], user.oauth1[2]):
            continue
        keys = Client(user.oauth1[0], client_secret=user.oauth1[1], resource_owner_key=user.oauth1[2],
                      resource_owner_secret=user.oauth1[3])
        expected = signature.sign_hmac_sha1_with_client(base, keys)
        if oauth.get("oauth_signature_method") == "HMAC-SHA1" and oauth.get("oauth_signature") == expected:
            return user
    return None


def _v1_user(user: User) -> dict[str, Any]:
    return {"id_str": user.id, "screen_name": user.username, "name": user.name, "description": user.description}


async def v1_verify_credentials(request: web.Request) -> web.Response:
    """``GET /1.1/account/verify_credentials.json``: OAuth 1.0a user context only."""
    user = await _oauth1_user(request.app[FAKE_KEY], request, "")
    if user is None:
        return _v1_error(401, 32, "Could not authenticate you.")
    return web.json_response(_v1_user(user))


async def v1_update_profile(request: web.Request) -> web.Response:
    """``POST /1.1/account/update_profile.json`` (developer.x.com/…/post-account-update_profile):
    OAuth 1.0a user context only (an OAuth 2 bearer token is refused); ``description`` at most
    160 characters, else 403 with code 120; what is not sent stays."""
    body = (await request.read()).decode()
    user = await _oauth1_user(request.app[FAKE_KEY], request, body)
    if user is None:
        return _v1_error(401, 32, "Could not authenticate you.")
    form = dict(parse_qsl(body, keep_blank_values=True)) if request.content_type.endswith("urlencoded") else {}
    form.update(request.query)
    if "description" in form:
        if len(form["description"]) > X_DESCRIPTION_LIMIT:
            return _v1_error(403, 120, "Account update failed: Description is too long (maximum is 160 characters).")
        user.description = form["description"]
    return web.json_response(_v1_user(user))
