"""X adapter: API v2 with an OAuth 2 user-context access token.

Options: ``api`` (base URL, default ``https://api.x.com``), ``timeout`` (seconds per request,
default 30), ``lookback_minutes`` (how far back ``find_existing`` looks when it does not know
when the post was first attempted, default 360).

Exactly once
------------
X has no idempotency key, so a create whose answer was lost can only be recognised on the
timeline. The adapter keeps, per idempotency key, when it first sent the post and whether a
tweet may exist for it (a request went out and was not definitely refused). Then:

* ``publish`` of a key that may already exist calls ``find_existing`` first and returns what
  it finds instead of posting again;
* when X refuses a create with 403 "You are not allowed to create a Tweet with duplicate
  content.", ``publish`` calls ``find_existing`` and returns the match. On a retry the search
  starts at the first attempt; on a first attempt (an earlier process may have crashed after
  sending) it covers the lookback window. With no match the refusal is final.

``find_existing`` reads ``GET /2/users/:id/tweets`` with ``start_time`` = first attempt minus
``CLOCK_SKEW`` (2 minutes), ``max_results=100``, ``exclude=retweets``, at most ``MAX_PAGES``
pages, and picks the *oldest* tweet whose text equals the post's text and whose reply target
and number of media equal the post's. X rewrites text: every URL becomes a t.co link and
``&``, ``<``, ``>`` are HTML-escaped; so the tweet's text is compared after replacing each
``entities.urls[].url`` with its ``expanded_url`` (dropping media links), unescaping, NFC
normalisation and collapsing whitespace. The first attempt is the ``since`` argument (an
extension of the ``Adapter`` protocol, for a gateway that knows it after a restart), or the
time this adapter object first sent the key, or ``now - lookback_minutes``.

Rate limits
-----------
An endpoint has a 15-minute window per user (``x-rate-limit-limit``/``-remaining``/``-reset``),
and a create has 24-hour caps too, per user and per app (``x-user-limit-24hour-*``,
``x-app-limit-24hour-*``). X answers 429 when any of them is used up, with the 15-minute
headers whatever the window, so the wait is the latest reset among the windows whose
``-remaining`` is 0 (the 15-minute reset only when a 429 names none). Until then the endpoint
rests: a call raises a retryable 429 ``AdapterError`` with that wait and sends nothing, which
the publisher takes as a deferral, not a failure of the post.

Length is checked locally with twitter-text's v3 rules before anything is sent (see
``weighted_length``). Media: images only, through ``POST /2/media/upload`` with alt text via
``POST /2/media/metadata``; other types are refused before any request. Content warnings and
non-public visibility do not exist on X; such posts are refused rather than published openly.
"""

from __future__ import annotations

import base64
import html
import importlib.util
import json
import re
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import oauthlib.oauth1
import re2

from adapters._http import (
    Clock,
    HttpClient,
    HttpResponse,
    check_base_url,
    float_option,
    parse_epoch,
    parse_retry_after,
    seconds_until,
    utc_now,
)
from adapters.base import (
    NO_GATES,
    AccountInfo,
    AdapterConfig,
    AdapterError,
    Carries,
    MediaItem,
    OutboundPost,
    ProfileLine,
    PublishResult,
    ready,
    with_line,
)

PLATFORM = "x"

MAX_DESCRIPTION = 160
"""Characters of a profile description (``POST /1.1/account/update_profile``)."""

DEFAULT_API = "https://api.x.com"

MAX_WEIGHTED_LENGTH = 280
"""twitter-text v3 ``maxWeightedTweetLength``."""

CLOCK_SKEW = timedelta(minutes=2)
"""Tolerance between our clock and X's when searching from the first attempt."""

MAX_PAGES = 5
"""Pages of 100 tweets ``find_existing`` reads at most."""

PAGE_SIZE = 100
"""The largest ``max_results`` of the user timeline."""

MAX_MEDIA = 4
"""Images per tweet."""

DUPLICATE_CONTENT = "duplicate content"
"""What X's 403 detail says when it refuses a text it has seen from this user."""

IMAGE_TYPES = frozenset(
    {"image/jpeg", "image/bmp", "image/png", "image/webp", "image/pjpeg", "image/tiff"}
)
"""The ``media_type`` values ``POST /2/media/upload`` documents for ``tweet_image``."""

_DEFAULT_LOOKBACK_MINUTES = 360.0
_ATTEMPTS_KEPT = 10_000
_MAX_ALT_TEXT = 1000

# twitter-text v3 configuration: weights in 1/100 of a character.
_SCALE = 100
_DEFAULT_WEIGHT = 200
_RANGES = ((0x0000, 0x10FF), (0x2000, 0x200D), (0x2010, 0x201F), (0x2032, 0x2037))
_URL_WEIGHT = 23 * _SCALE


_EMOJI_CORE = (
    "[\U0001f000-\U0001faff\u2190-\u21ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u27bf"
    "\u2900-\u297f\u2b00-\u2bff\u3030\u303d\u3297\u3299\u00a9\u00ae\u203c\u2049\u2122\u2139]"
)
_EMOJI_TAIL = "(?:[\ufe0e\ufe0f])?(?:[\U0001f3fb-\U0001f3ff])?(?:\u20e3)?"
_EMOJI_RE = re.compile(
    "[\U0001f1e6-\U0001f1ff]{2}"  # a flag: two regional indicators
    "|[0-9#*]\ufe0f?\u20e3"  # a keycap
    f"|{_EMOJI_CORE}{_EMOJI_TAIL}"
    "(?:[\U000e0020-\U000e007e]+\U000e007f)?"  # tag sequence (subdivision flags)
    f"(?:\u200d{_EMOJI_CORE}{_EMOJI_TAIL})*"  # ZWJ sequence
)
_WHITESPACE_RE = re.compile(r"\s+")
_LINE_ENDINGS = re.compile(r"\r\n|\r")
_TWEET_ID_RE = re.compile(r"[0-9]{1,19}")


def _code_point_weight(ch: str) -> int:
    cp = ord(ch)
    for start, end in _RANGES:
        if start <= cp <= end:
            return _SCALE
    return _DEFAULT_WEIGHT


def _text_weight(text: str) -> int:
    total = 0
    position = 0
    for match in _EMOJI_RE.finditer(text):
        chunk = text[position : match.start()]
        total += sum(_code_point_weight(ch) for ch in chunk)
        # emojiParsingEnabled: a whole emoji sequence weighs the default weight once, except
        # the plain keycap digits / symbols below U+2000, which stay as their code points.
        emoji = match.group(0)
        if len(emoji) == 1 and ord(emoji) < 0x2000:
            total += _code_point_weight(emoji)
        else:
            total += _DEFAULT_WEIGHT
        position = match.end()
    return total + sum(_code_point_weight(ch) for ch in text[position:])


# URLs, as twitter-text finds them. twitter-text-parser (the Python port of X's twitter-text)
# builds its URL pattern for Python's backtracking ``re``, and on text such as "a.a.a.a…" it
# takes quadratic time: 2,000 characters cost five seconds. So the same rules are written
# here for RE2, which runs in linear time, and only twitter-text's lists of top-level
# domains are taken from the library. The rules (twitter-text's ``extractUrlsWithIndices``):
# a URL follows the start of the text or a character other than a letter, digit, @, $ or #;
# an optional scheme; a domain whose last label is a known TLD and is not followed by a
# letter, digit, @, + or -; then an optional port, path and query with twitter-text's
# character classes. A URL without a scheme must follow none of - _ . / and its domain is
# taken in ASCII and Latin letters only. The domain must convert to IDNA (labels of 1–63
# characters) and the whole URL must be at most 4096 characters with its scheme.
# tests/test_lengths.py compares the counts with twitter-text-parser's own on ordinary text.


def _tld_pattern(name: str) -> re.Pattern[str]:
    """twitter-text's compiled list of top-level domains ``name`` (``valid_gtld``,
    ``valid_cctld``), read from its one-line module without importing the package: the
    package's ``__init__`` compiles every other rule it has and loads its emoji list through
    pkg_resources, a third of a second that every `byline` command paid at start for two
    lists."""
    package = importlib.util.find_spec("twitter_text")
    assert package is not None and package.submodule_search_locations, "twitter-text-parser is not installed"
    path = Path(next(iter(package.submodule_search_locations))) / "regexp" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_byline_twitter_text_{name}", path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pattern = getattr(module, name)
    assert isinstance(pattern, re.Pattern), (path, pattern)
    return pattern



def _tlds() -> str:
    names: list[str] = []
    for compiled in (_tld_pattern("valid_gtld"), _tld_pattern("valid_cctld")):
        # "(?:(?:tld|tld|…)(?=[^0-9a-zA-Z@+-]|$))": the list without twitter-text's lookahead.
        inner = compiled.pattern.removeprefix("(?:(?:").split(")(?=", 1)[0]
        names += inner.split("|")
    names.sort(key=len, reverse=True)
    return "|".join(re.escape(name) for name in names)


_LATIN = (
    r"\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{FF}\x{100}-\x{24F}\x{253}\x{254}\x{256}\x{257}"
    r"\x{259}\x{25B}\x{263}\x{268}\x{26F}\x{272}\x{289}\x{28B}\x{2BB}\x{300}-\x{36F}"
    r"\x{1E00}-\x{1EFF}"
)
_CYRILLIC = r"\x{400}-\x{4FF}"
_SPACES = (
    r"\x{09}-\x{0D}\x{20}\x{85}\x{A0}\x{1680}\x{180E}\x{2000}-\x{200A}\x{2028}\x{2029}"
    r"\x{202F}\x{205F}\x{3000}"
)
_INVALID = r"\x{FFFE}\x{FEFF}\x{FFFF}"
_DIRECTIONAL = r"\x{202A}-\x{202E}\x{61C}\x{200E}\x{200F}\x{2066}-\x{2069}"
_DOMAIN_CHAR = rf"[^!'#%&()*+,\\\-./:;<=>?@\[\]^_{{|}}~$/{_SPACES}{_INVALID}{_DIRECTIONAL}]"
_TLD = rf"(?:{_tlds()}|xn--[\-0-9a-z]+)"
_UNICODE_DOMAIN = (
    rf"(?:(?:{_DOMAIN_CHAR}(?:[_-]|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.)*"
    rf"(?:(?:{_DOMAIN_CHAR}(?:-|{_DOMAIN_CHAR})*)?{_DOMAIN_CHAR}\.){_TLD}"
)
_ASCII_DOMAIN = rf"(?:[\-a-z0-9{_LATIN}]+\.)+{_TLD}"
_NOT_BEFORE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789@＠$#＃\ufffe\ufeff\uffff")
_NOT_BEFORE_BARE = frozenset("-_./")


@dataclass(frozen=True)
class UrlRules:
    """One reading of twitter-text's URL rules: which schemes, and what a path may hold."""

    schemes: str
    bare_domains: bool
    path_char: str
    path_end: str
    query_char: str
    query_end: str

    def compile(self) -> Any:
        """The RE2 pattern: the URL, and what must follow its TLD (the character before it is
        checked apart, so that ``finditer`` needs no overlapping matches)."""
        parens = rf"\((?:{self.path_char}+|(?:{self.path_char}*\({self.path_char}+\){self.path_char}*))\)"
        segment = (
            rf"(?:{self.path_char}*(?:{parens}{self.path_char}*)*(?:{self.path_end}|{parens}))"
            rf"|(?:@{self.path_char}+/)"
        )
        path = rf"/(?:{segment})*"
        query = rf"\?{self.query_char}*{self.query_end}"
        tail = rf":[0-9]+(?:{path})?(?:{query})?|{path}(?:{query})?|{query}"
        bare = rf"|(?P<bare>{_ASCII_DOMAIN})" if self.bare_domains else ""
        options = re2.Options()
        options.max_mem = 64 << 20
        return re2.compile(
            rf"(?i)(?P<url>(?:(?P<scheme>{self.schemes})(?P<domain>{_UNICODE_DOMAIN}){bare})"
            rf"(?:{tail}|$|(?P<stop>[^0-9a-zA-Z@+\-])))",
            options,
        )


X_URLS = UrlRules(
    schemes="https?://",
    bare_domains=True,
    path_char=rf"[a-z{_CYRILLIC}0-9!*';:=+,.$/%#\[\]\-\x{{2013}}_~@|&{_LATIN}]",
    path_end=rf"[+\-a-z{_CYRILLIC}0-9=_#/{_LATIN}]",
    query_char=r"[a-z0-9!?*'@();:&=+$/%#\[\]\-_.,~|]",
    query_end=r"[a-z0-9\-_&=#/]",
)
"""X's URLs: http(s) and bare domains (twitter-text's defaults)."""

_X_URL_PATTERN = X_URLS.compile()
_URL_PATTERNS: dict[UrlRules, Any] = {X_URLS: _X_URL_PATTERN}
_MAX_URL_LENGTH = 4096
_DEFAULT_SCHEME = "https://"


def find_urls(text: str, rules: UrlRules = X_URLS) -> list[tuple[int, int]]:
    """The ``(start, end)`` code point spans of the URLs in ``text``, in order."""
    pattern = _URL_PATTERNS.get(rules)
    if pattern is None:
        pattern = _URL_PATTERNS.setdefault(rules, rules.compile())
    spans: list[tuple[int, int]] = []
    groups = pattern.groupindex
    for match in pattern.finditer(text):
        start = match.start(groups["url"])
        stopped = match.group("stop") is not None
        end = match.start(groups["stop"]) if stopped else match.end(groups["url"])
        bare = match.group("bare") if rules.bare_domains else None
        before = text[start - 1] if start else ""
        if before in _NOT_BEFORE or (bare is not None and before in _NOT_BEFORE_BARE):
            continue
        domain = bare if bare is not None else match.group("domain")
        try:
            ascii_domain = domain.encode("idna")
        except UnicodeError:
            continue
        # twitter-text's own sum: the scheme (https:// when absent) counts once more.
        scheme = match.group("scheme") or _DEFAULT_SCHEME
        if len(scheme) + end - start + len(ascii_domain) - len(domain) > _MAX_URL_LENGTH:
            continue
        spans.append((start, end))
    return spans


def weighted_length(text: str) -> float:
    """The length of ``text`` in characters as X counts it (twitter-text config v3).

    After NFC normalisation: code points in U+0000–U+10FF, U+2000–U+200D, U+2010–U+201F and
    U+2032–U+2037 weigh 1, all others 2 (so most CJK and emoji count 2); an emoji sequence
    (ZWJ, skin tone, flag, keycap) counts 2 once; every URL counts 23.
    """
    text = _LINE_ENDINGS.sub("\n", unicodedata.normalize("NFC", text))
    total = 0
    position = 0
    for start, end in find_urls(text):
        total += _text_weight(text[position:start]) + _URL_WEIGHT
        position = end
    total += _text_weight(text[position:])
    return total / _SCALE


def normalize_for_match(text: str) -> str:
    """The form in which a posted text and a tweet's restored text are compared."""
    text = unicodedata.normalize("NFC", text)
    return _WHITESPACE_RE.sub(" ", text).strip()


def restored_text(tweet: dict[str, Any]) -> str:
    """A tweet's text as it was posted: t.co links expanded, media links dropped, unescaped."""
    text = _str(tweet.get("text")) or ""
    entities = tweet.get("entities")
    urls = entities.get("urls") if isinstance(entities, dict) else None
    if isinstance(urls, list):
        for entity in urls:
            if not isinstance(entity, dict):
                continue
            short = _str(entity.get("url"))
            if not short:
                continue
            if entity.get("media_key"):
                # The link X appends for attached media is not part of what was typed.
                text = text.replace(short, "")
            else:
                text = text.replace(short, _str(entity.get("expanded_url")) or short)
    return html.unescape(text)


def _x_detail(body: Any, text: str) -> str | None:
    if not isinstance(body, dict):
        return None
    parts: list[str] = []
    for key in ("detail", "title"):
        value = body.get(key)
        if isinstance(value, str) and value and value not in parts:
            parts.append(value)
            break
    errors = body.get("errors")
    if isinstance(errors, list):
        for error in errors[:3]:
            if not isinstance(error, dict):
                continue
            message = error.get("message") or error.get("detail")
            if isinstance(message, str) and message and message not in parts:
                parts.append(message)
    return "; ".join(parts) or None


@dataclass
class _Attempt:
    """What this adapter object knows about one idempotency key."""

    first_at: datetime
    sends: int = 0
    may_exist: bool = False
    """A create was sent and not definitely refused: a tweet may exist for this key."""


class XAdapter:
    """Publishes to one X account. See the module docstring for exactly-once."""

    platform = PLATFORM
    carries = Carries(name="X", public_only=True, content_warnings=False, focal_points=False)

    def __init__(self, config: AdapterConfig, *, clock: Clock | None = None) -> None:
        self._account = config.account
        self._base_url = check_base_url(
            config.options.get("api", DEFAULT_API), option="api", platform=PLATFORM
        )
        self._clock = clock or utc_now
        self._lookback = timedelta(
            minutes=float_option(
                config, "lookback_minutes", _DEFAULT_LOOKBACK_MINUTES, platform=PLATFORM
            )
        )
        self._http = HttpClient.for_account(
            config, platform=PLATFORM, base_url=self._base_url, clock=self._clock, detail=_x_detail
        )
        self._attempts: OrderedDict[str, _Attempt] = OrderedDict()
        self._user_id: str | None = None
        self._profile_secret = config.profile_secret
        # Per endpoint: when an exhausted rate-limit window resets. Sending before then only
        # earns another 429 and counts against the app.
        self._exhausted_until: dict[str, datetime] = {}

    def __repr__(self) -> str:
        return f"XAdapter(account={self._account!r}, api={self._base_url!r})"

    # -- publish ---------------------------------------------------------------------------

    async def publish(self, post: OutboundPost) -> PublishResult:
        """Create the tweet, unless an earlier attempt of this post already did."""
        self._check_locally(post)
        attempt = self._attempts.get(post.idempotency_key)
        if attempt is None:
            attempt = self._remember(post.idempotency_key, self._clock())
        elif attempt.may_exist:
            existing = await self.find_existing(post, since=attempt.first_at)
            if existing is not None:
                return existing

        media_ids = [await self._upload(item) for item in post.media]
        body: dict[str, Any] = {"text": post.text}
        if post.reply_to:
            body["reply"] = {"in_reply_to_tweet_id": post.reply_to}
        if media_ids:
            body["media"] = {"media_ids": media_ids}

        await ready(post)
        path = "/2/tweets"
        attempt.sends += 1
        attempt.may_exist = True
        response = await self._send("POST", path, json_body=body)
        if response.status in (200, 201):
            return self._created(response, path)
        error = self._classify("POST", path, response)
        if response.status == 403 and DUPLICATE_CONTENT in (error.detail or "").lower():
            # Either our own earlier attempt landed (answer lost, or a crash before it was
            # recorded) or the account really posted this text before. Only the timeline
            # can tell which.
            retried = attempt.sends > 1
            since = attempt.first_at if retried else self._clock() - self._lookback
            existing = await self.find_existing(post, since=since)
            if existing is not None:
                return existing
            attempt.may_exist = False
            raise error
        # Only a transport failure or a 5xx leaves the outcome open; 429 and 4xx mean no.
        attempt.may_exist = error.retryable and response.status != 429
        raise error

    def _check_locally(self, post: OutboundPost) -> None:
        """Refuse, without a request, what X is documented to refuse or cannot represent."""
        if not post.text.strip() and not post.media:
            raise self._http.error("a tweet needs text or media", retryable=False)
        length = weighted_length(post.text)
        if length > MAX_WEIGHTED_LENGTH:
            raise self._http.error(
                f"text weighs {length:g} characters, over X's {MAX_WEIGHTED_LENGTH} "
                "(most CJK and emoji count 2, URLs 23)",
                retryable=False,
            )
        if not self.carries.keeps_content_warning(post.spoiler_text):
            raise self._http.error(
                f"{self.carries.name} has no content warnings; refusing to publish the hidden text openly",
                retryable=False,
            )
        if not self.carries.keeps_gates(post.gates):
            raise self._http.error(NO_GATES.format(name=self.carries.name), retryable=False)
        if not self.carries.keeps_visibility(post.visibility):
            raise self._http.error(
                f"{self.carries.name} posts are public; visibility {post.visibility!r} cannot be honoured",
                retryable=False,
            )
        if len(post.media) > MAX_MEDIA:
            raise self._http.error(
                f"{len(post.media)} attachments, at most {MAX_MEDIA} images allowed",
                retryable=False,
            )
        for item in post.media:
            if item.mime_type.split(";")[0].strip().lower() not in IMAGE_TYPES:
                raise self._http.error(
                    f"media type {item.mime_type!r} is not supported for X (images only: "
                    f"{', '.join(sorted(IMAGE_TYPES))})",
                    retryable=False,
                )
            if item.description and len(item.description) > _MAX_ALT_TEXT:
                raise self._http.error(
                    f"alt text longer than {_MAX_ALT_TEXT} characters", retryable=False
                )

    def _remember(self, key: str, now: datetime) -> _Attempt:
        attempt = _Attempt(first_at=now)
        self._attempts[key] = attempt
        while len(self._attempts) > _ATTEMPTS_KEPT:
            self._attempts.popitem(last=False)
        return attempt

    def _created(self, response: HttpResponse, path: str) -> PublishResult:
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        tweet_id = _str(data.get("id")) if isinstance(data, dict) else None
        if not tweet_id or not _is_tweet_id(tweet_id):
            # Created or not, we cannot tell from this answer: retry, which searches first.
            raise self._http.error(
                f"POST {path} answered {response.status} without a tweet id",
                retryable=True, status=response.status, detail=response.text,
            )
        return PublishResult(remote_id=tweet_id, url=_tweet_url(tweet_id))

    async def _upload(self, item: MediaItem) -> str:
        """Upload one image with ``POST /2/media/upload``; attach its alt text if any."""
        path = "/2/media/upload"
        response = await self._send(
            "POST",
            path,
            json_body={
                "media": base64.b64encode(item.data).decode("ascii"),
                "media_category": "tweet_image",
                "media_type": item.mime_type.split(";")[0].strip().lower(),
            },
        )
        if response.status not in (200, 201):
            raise self._classify("POST", path, response)
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        media_id = _str(data.get("id")) if isinstance(data, dict) else None
        if not media_id:
            raise self._http.error(f"POST {path} answered without a media id", retryable=True)
        if item.description:
            meta_path = "/2/media/metadata"
            meta = await self._send(
                "POST",
                meta_path,
                json_body={"id": media_id, "metadata": {"alt_text": {"text": item.description}}},
            )
            if meta.status not in (200, 201):
                raise self._classify("POST", meta_path, meta)
        return media_id

    # -- find_existing ---------------------------------------------------------------------

    async def find_existing(
        self, post: OutboundPost, *, since: datetime | None = None
    ) -> PublishResult | None:
        """Look for a tweet this post already made (rule in the module docstring)."""
        now = self._clock()
        if since is None:
            attempt = self._attempts.get(post.idempotency_key)
            known = attempt.first_at if attempt else post.first_attempt_at
            since = known if known is not None else now - self._lookback
        start = min(since - CLOCK_SKEW, now - CLOCK_SKEW)
        user_id = await self._own_user_id()
        want = normalize_for_match(post.text)
        path = f"/2/users/{quote(user_id, safe='')}/tweets"
        params = {
            "max_results": str(PAGE_SIZE),
            "start_time": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "exclude": "retweets",
            "tweet.fields": "created_at,entities,referenced_tweets,attachments",
        }
        found: tuple[int, str] | None = None
        for _ in range(MAX_PAGES):
            response = await self._send("GET", path, params=params)
            if response.status != 200:
                raise self._classify("GET", "/2/users/:id/tweets", response)
            body = response.json()
            tweets = body.get("data") if isinstance(body, dict) else None
            for tweet in tweets if isinstance(tweets, list) else []:
                if not isinstance(tweet, dict):
                    continue
                tweet_id = _str(tweet.get("id"))
                if not tweet_id or not _is_tweet_id(tweet_id):
                    continue
                if not _same_shape(tweet, post):
                    continue
                if normalize_for_match(restored_text(tweet)) != want:
                    continue
                # Tweet ids grow with time: the smallest is the first one this post made.
                if found is None or int(tweet_id) < found[0]:
                    found = (int(tweet_id), tweet_id)
            meta = body.get("meta") if isinstance(body, dict) else None
            token = _str(meta.get("next_token")) if isinstance(meta, dict) else None
            if not token:
                break
            params = {**params, "pagination_token": token}
        if found is None:
            return None
        return PublishResult(remote_id=found[1], url=_tweet_url(found[1]))

    async def _own_user_id(self) -> str:
        if self._user_id is None:
            self._user_id = (await self.verify_credentials()).remote_id
        return self._user_id

    # -- delete, verify_credentials ----------------------------------------------------------

    async def delete(self, remote_id: str) -> None:
        """Delete the tweet; one that is already gone counts as deleted."""
        if not _is_tweet_id(remote_id):
            raise self._http.error(f"{remote_id!r} is not a tweet id", retryable=False)
        path = f"/2/tweets/{remote_id}"
        response = await self._send("DELETE", path)
        if response.status == 404:
            return
        if response.status != 200:
            raise self._classify("DELETE", "/2/tweets/:id", response)
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or data.get("deleted") is not True:
            raise self._http.error(
                "DELETE /2/tweets/:id answered 200 but did not confirm the deletion",
                retryable=True, status=200, detail=response.text,
            )

    async def verify_credentials(self) -> AccountInfo:
        """Ask X whose token this is (``GET /2/users/me``)."""
        path = "/2/users/me"
        response = await self._send("GET", path)
        if response.status != 200:
            raise self._classify("GET", path, response)
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        user_id = _str(data.get("id")) if isinstance(data, dict) else None
        username = _str(data.get("username")) if isinstance(data, dict) else None
        if not isinstance(data, dict) or not user_id or not username:
            raise self._http.error(f"GET {path} answered without id or username",
                                   retryable=True)
        self._user_id = user_id
        return AccountInfo(
            remote_id=user_id,
            handle=username,
            display_name=_str(data.get("name")) or None,
            url=f"https://x.com/{username}",
        )

    # -- the profile byline ----------------------------------------------------------------------

    async def set_profile_line(self, line: ProfileLine) -> None:
        """Keep one line of the profile description: read it (``GET
        /1.1/account/verify_credentials.json``), change that line only, and send the description
        back (``POST /1.1/account/update_profile.json``, nothing else of the profile). Both calls
        take OAuth 1.0a user context only, signed here (oauthlib, HMAC-SHA1) with the keys in
        ``profile_secret``; X's OAuth 2 token cannot change a profile."""
        keys = self._oauth1_keys()
        client = oauthlib.oauth1.Client(
            keys["consumer_key"], client_secret=keys["consumer_secret"],
            resource_owner_key=keys["token"], resource_owner_secret=keys["token_secret"],
        )
        read = "/1.1/account/verify_credentials.json"
        _, headers, _ = client.sign(self._base_url + read, http_method="GET")
        response = await self._http.request("GET", read, headers=headers)
        if response.status != 200:
            raise self._classify("GET", read, response)
        user = response.json()
        current = user.get("description") if isinstance(user, dict) else None
        if not isinstance(current, str):
            raise self._http.error(f"GET {read} answered without a description", retryable=True)
        description = with_line(current, line)
        if description == current:
            return
        if len(description) > MAX_DESCRIPTION:
            raise self._http.error(
                f"the description with the byline would be {len(description)} characters; X takes at most "
                f"{MAX_DESCRIPTION}", retryable=False)
        write = "/1.1/account/update_profile.json"
        body = urlencode({"description": description})
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        _, headers, _ = client.sign(self._base_url + write, http_method="POST", body=body, headers=form)
        response = await self._http.request("POST", write, data=body.encode(), headers=headers)
        if response.status != 200:
            raise self._classify("POST", write, response)

    def _oauth1_keys(self) -> dict[str, str]:
        try:
            keys = json.loads(self._profile_secret) if self._profile_secret else None
        except ValueError:
            keys = None
        names = ("consumer_key", "consumer_secret", "token", "token_secret")
        if not isinstance(keys, dict) or not all(isinstance(keys.get(n), str) and keys[n] for n in names):
            raise self._http.error(
                "the profile needs OAuth 1.0a user keys: JSON with consumer_key, consumer_secret, token and "
                "token_secret", retryable=False)
        return {n: str(keys[n]) for n in names}

    # -- transport and rate limits --------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpResponse:
        """Send unless the endpoint's window is known to be exhausted; note its headers."""
        endpoint = f"{method} {_template(path)}"
        now = self._clock()
        until = self._exhausted_until.get(endpoint)
        if until is not None:
            if until > now:
                raise self._http.error(
                    f"{endpoint}: rate limit exhausted until {until.isoformat()}",
                    retryable=True, retry_after=seconds_until(until, now), status=429,
                )
            del self._exhausted_until[endpoint]
        response = await self._http.request(method, path, json_body=json_body, params=params)
        reset = _used_up_until(response)
        if reset is not None:
            self._exhausted_until[endpoint] = reset
        return response

    def _classify(self, method: str, path: str, response: HttpResponse) -> AdapterError:
        retry_after = None
        if response.status == 429 or response.status >= 500:
            now = self._clock()
            retry_after = parse_retry_after(response.headers.get("retry-after"), now)
            reset = _used_up_until(response) if response.status == 429 else None
            if reset is not None:
                retry_after = max(retry_after or 0.0, seconds_until(reset, now))
        return self._http.classify(method, path, response, retry_after=retry_after)


_LIMIT_WINDOWS = ("x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour")
"""The rate-limit windows X reports: per 15 minutes, and a create's per user and per app a day."""


def _used_up_until(response: HttpResponse) -> datetime | None:
    """When the endpoint may be called again, if the answer says a window is used up: the
    latest reset among those whose remaining is 0; after a 429 that names none, the
    15-minute reset. ``None`` when nothing is used up."""
    resets = [
        reset for prefix in _LIMIT_WINDOWS
        if response.headers.get(f"{prefix}-remaining") == "0"
        and (reset := parse_epoch(response.headers.get(f"{prefix}-reset"))) is not None
    ]
    if not resets and response.status == 429:
        reset = parse_epoch(response.headers.get("x-rate-limit-reset"))
        resets = [reset] if reset is not None else []
    return max(resets, default=None)


def _same_shape(tweet: dict[str, Any], post: OutboundPost) -> bool:
    replied_to = None
    references = tweet.get("referenced_tweets")
    if isinstance(references, list):
        for ref in references:
            if isinstance(ref, dict) and ref.get("type") == "replied_to":
                replied_to = _str(ref.get("id"))
            if isinstance(ref, dict) and ref.get("type") == "retweeted":
                return False
    if replied_to != (post.reply_to or None):
        return False
    attachments = tweet.get("attachments")
    keys = attachments.get("media_keys") if isinstance(attachments, dict) else None
    return (len(keys) if isinstance(keys, list) else 0) == len(post.media)


def _is_tweet_id(value: str) -> bool:
    return _TWEET_ID_RE.fullmatch(value) is not None


def _template(path: str) -> str:
    """``/2/tweets/123`` -> ``/2/tweets/:id``: rate limits are per endpoint, not per id."""
    return re.sub(r"/[0-9]+(?=/|$)", "/:id", path)


def _tweet_url(tweet_id: str) -> str:
    # The /i/web/ form resolves without knowing the username.
    return f"https://x.com/i/web/status/{tweet_id}"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
