"""The Mastodon streaming API over the gateway: what an app hears live, and who may hear it.

Where events come from: Byline's own record. Every change of a post is a log entry, whichever
process or replica made it, so an open stream follows the log from where it stood when the
stream opened and turns the entries about its account's posts into Mastodon's events, as the
REST API renders the post at that moment:

- ``post.published``: ``update``, when the post actually goes out (a delayed, co-signed or
  scheduled post minutes or hours after the app sent it), not when it was submitted;
- ``post.revised`` (a published post edited): ``status.update``;
- ``post.deleted`` (a published post deleted on its platform): ``delete``, with the id.

A stream learns that the log grew from the change watcher (``gateway.services.live``): one
read of the log's size a second in each process while anyone listens, at once on PostgreSQL
when the database says the log grew (``gateway.services.wakeups``). That works across workers
and replicas on both databases; on SQLite an event from another process arrives within the
watcher's interval.

For an account on Mastodon, a stream also hears its instance's own events (others' posts in
the home timeline, notifications…), relayed from one connection per account and stream to the
instance's streaming API (``gateway.services.instance_streams``), merged with Byline's own and
without the instance's copy of a post Byline published (the app hears that once, by Byline's
id). For accounts on other platforms the streams that would carry an instance's events are
accepted and stay quiet, as Byline's REST answers for the same reads are a quiet instance's; a
list stream is refused there (they have no lists), as Mastodon refuses a list that is not the
account's.

Who may listen is checked as the REST API checks it (``MastodonService.authenticate``: the
token, its account binding, its person's role on the account), with each stream's scope as the
streaming server asks it, and again at every event and every keepalive: a stream ends once its
token is revoked or its person's role is gone. The instance's events alone (the log not grown,
the policies not changed) are told on a check made within ``CHECK_STANDS_SECONDS``, so that a
busy instance costs a stream one read of its token a second, not one an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final, TypeVar

import structlog

from gateway.clock import Clock, now_micros
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.services.instance_streams import Heard, InstanceStreams
from gateway.services.live import ChangeWatcher, Listener
from gateway.services.mastodon import ClientAuth, MastodonService, StatusView
from gateway.services.posts import PostView
from gateway.storage import streams as sql
from gateway.storage.db import Database, unavailable

logger = structlog.get_logger("byline.streaming")

T = TypeVar("T")

STREAMS_PER_TOKEN: Final = 8
"""Open streams (WebSockets and event streams) one token may have at once: an app in a few
windows, each with a socket or two."""
STREAMS_PER_ACCOUNT: Final = 64
"""Open streams of one account's tokens at once: its people's apps on their devices."""
STREAMS_IN_ALL: Final = 1000
"""Open streams one process serves at once (apart from the live pages')."""
SUBSCRIPTIONS_PER_SOCKET: Final = 32
"""Streams one WebSocket may subscribe to at once."""
HEARD_MOST: Final = 500
"""The instance's events one stream keeps untold at most."""
ENTRIES_PER_READ: Final = 100
"""Log entries one stream reads at a time: a burst of posts is sent in rounds."""
CHECK_STANDS_SECONDS: Final = 1
"""How long (by the gateway's clock) a stream's check of its token stands for the instance's
events alone. Once the log is seen to grow (a revocation it records, Byline's own events),
the policies change, or a keepalive is due, the token is checked again at once; a token
revoked or expired without a log entry stops hearing the instance within this."""

EVENTS: Final[Mapping[str, str]] = {
    "post.published": "update", "post.revised": "status.update", "post.deleted": "delete",
}
"""The log entries an account's ``user`` stream hears, and the event each becomes."""

_STATUS_STREAMS = frozenset({
    "user", "public", "public:media", "public:local", "public:local:media", "public:remote",
    "public:remote:media", "hashtag", "hashtag:local", "list", "direct",
})
_SCOPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(_STATUS_STREAMS, "read:statuses"), "user:notification": "read:notifications",
}
"""Every stream Mastodon has, and the scope it asks (``read`` covers both)."""

_PATHS: Final[Mapping[str, str]] = {
    "user": "user", "user/notification": "user:notification", "public": "public", "public/local": "public:local",
    "public/remote": "public:remote", "hashtag": "hashtag", "hashtag/local": "hashtag:local", "list": "list",
    "direct": "direct",
}
"""The server-sent-events paths below ``/api/v1/streaming/``, and the stream each names."""

MISSING_TOKEN = "Missing access token"
INVALID_TOKEN = "Invalid access token"
NO_SCOPE = "Access token does not have the required scopes"
UNKNOWN_STREAM = "Unknown stream type"


@dataclass(frozen=True, kw_only=True)
class Subscription:
    """One stream an app asked for."""

    name: str
    tag: str | None = None
    list_id: str | None = None

    @property
    def stream(self) -> list[str]:
        """The ``stream`` an event names, as Mastodon names it: ``["hashtag", "cats"]``."""
        if self.tag is not None:
            return [self.name, self.tag]
        if self.list_id is not None:
            return [self.name, self.list_id]
        return [self.name]

    @property
    def key(self) -> tuple[str, ...]:
        """What makes two subscriptions one (a second subscribe to it changes nothing)."""
        return tuple(self.stream)


@dataclass(frozen=True, kw_only=True)
class StreamEvent:
    """One event for a stream. Byline's own (``stream`` None: the ``user`` stream's): ``status``
    for ``update`` and ``status.update``, None for ``delete`` (whose payload is the id). The
    instance's: ``stream`` names the stream it came from, ``payload`` is as the instance sent it."""

    event: str
    post_id: str
    status: StatusView | None
    stream: tuple[str, ...] | None = None
    payload: str | None = None
    heard_as: int = 0
    """The instance's: how many times its feed had forgotten its stream when it was heard
    (:meth:`Feed.forget`). Once that changes, the event is of an account's old credential."""


class Ending(StrEnum):
    """Why a stream ends, each told to the app as its protocol tells it (a WebSocket's close code)."""

    STOPPING = "the gateway is stopping"
    REVOKED = "the token no longer reads this account"
    BROKEN = "the database is not answering; reconnect in a moment"


class StreamEnded(Exception):
    """The stream must end: the gateway is stopping, its token no longer reads the account
    (revoked, expired, its person's role gone), or the database it follows is not answering."""

    def __init__(self, why: Ending) -> None:
        super().__init__(why.value)
        self.why = why


def stream_of_path(path: str, query: Mapping[str, str]) -> str:
    """The stream a server-sent-events path names (``user/notification``: ``user:notification``;
    ``public`` with ``only_media``: ``public:media``); 400 for any other path."""
    name = _PATHS.get(path)
    if name is None:
        raise BylineError(Code.BAD_REQUEST, UNKNOWN_STREAM)
    if name.startswith("public") and _truthy(query.get("only_media")):
        name += ":media"
    return name


def _truthy(value: str | None) -> bool:
    """A flag as the streaming server reads one: anything but nothing and its words for false."""
    return bool(value) and value not in ("0", "f", "F", "false", "FALSE", "off", "OFF")


@dataclass(eq=False)
class Feed:
    """One open stream of an account's events: a WebSocket (with any subscriptions) or one
    server-sent-events stream."""

    streams: MastodonStreams
    listener: Listener
    auth: ClientAuth
    token: str = field(repr=False)
    cursor: int
    behind: bool = False
    """A read failed: the next round reads again, changed or not."""
    following: set[tuple[str, ...]] = field(default_factory=set)
    """The streams whose instance events this feed hears."""
    checked: tuple[int, int | None, int] | None = None
    """When its token was last found to read the account (the clock's microseconds), with the
    log's size and the policies' generation as that check began."""
    _heard: deque[Heard] = field(default_factory=lambda: deque(maxlen=HEARD_MOST))
    _forgotten: Counter[tuple[str, ...]] = field(default_factory=Counter)
    """How many times each stream's events were forgotten (:meth:`forget`)."""

    def heard(self, item: Heard) -> None:
        """One of the instance's events, told at the next round (the oldest dropped past
        ``HEARD_MOST`` untold: an app that takes nothing must not hold Byline's memory)."""
        self._heard.append(item)
        self.listener.wake()

    def ended(self) -> None:
        """The instance's stream ended for good (the account gone): the token is checked again
        at once, and the stream ends if it no longer reads the account."""
        self.listener.wake()

    def forget(self, stream: tuple[str, ...]) -> None:
        """Drop the instance's events of ``stream`` not told yet: heard on a connection made with
        a credential (or an instance) the account no longer has, as another platform account.
        Those already taken, and waiting in the app's connection to be written (a batch whose
        writes to a slow app may each wait up to a keepalive), are not written either
        (:meth:`still_told`)."""
        kept = [h for h in self._heard if h.stream != stream]
        self._heard.clear()
        self._heard.extend(kept)
        self._forgotten[stream] += 1

    def still_told(self, event: StreamEvent) -> bool:
        """Whether an event taken from the feed may still be written to the app: each is asked
        just before its write, as a batch may wait long on a slow app's socket. Not one of the
        instance's heard before its stream was forgotten (:meth:`forget`: the credential it
        was heard with is no longer the account's); Byline's own, always."""
        return event.stream is None or event.payload is None or event.heard_as == self._forgotten[event.stream]

    def _relayed(self) -> list[StreamEvent]:
        # The instance's user stream carries notifications too: told only to a token that may
        # read them, as the streaming server asks read:notifications of them on any stream.
        notices = self.auth.caller.may("read:notifications")
        out = [StreamEvent(event=h.event, post_id="", status=None, stream=h.stream, payload=h.payload,
                           heard_as=self._forgotten[h.stream])
               for h in self._heard if notices or h.event != "notification"]
        self._heard.clear()
        return out

    async def next(self, seconds: float) -> list[StreamEvent]:
        """The events since the last call, waiting up to ``seconds`` for some ([] if none came).
        Raises :class:`StreamEnded` when the stream must end; the token is checked again each
        time (for the instance's events alone, at most once in ``CHECK_STANDS_SECONDS``: see
        :meth:`MastodonStreams.vouches`), so a revoked token, a lost role or the database gone
        ends the stream within ``seconds``."""
        changed = await self.listener.wait(seconds)
        if self.listener.closing:
            raise StreamEnded(Ending.STOPPING)
        if not (changed and self._heard and self.streams.vouches(self)):
            # Shielded, as every read a stream makes: one stopped mid-read still ends its
            # transaction and hands its connection back clean.
            await asyncio.shield(self.streams.still_reads(self))
        # The instance's events are taken only after the last wait: one heard on a connection
        # found meanwhile to be made with the account's old credential is dropped (forget).
        if not changed and not self.behind:
            return self._relayed()
        size = self.streams.watcher.size
        if self._heard and not self.behind and size is not None and size <= self.cursor:
            # Woken by the instance's events, the log as it was: no read of it for each of them.
            # (Had it grown unseen, the watcher wakes the feed again when it reads the new size.)
            return self._relayed()
        try:
            events = await asyncio.shield(self.streams.events_for(self))
            self.behind = False
            return events + self._relayed()
        except BylineError as exc:
            logger.warning("stream_read_failed", account=self.auth.account, error=exc.code.value)
        except Exception as exc:
            if not unavailable(exc):
                raise
            raise broken(account=self.auth.account) from None
        self.behind = True  # the cursor stayed: the next round reads what this one could not
        return self._relayed()


def broken(**bound: object) -> StreamEnded:
    """The end of a stream that met the database gone (any stream: an app's, a page's). Carried
    on, it would keep sending its keepalives over a stream that hears nothing, and its reader,
    told nothing, would wait on it for as long as the outage lasts; ended, the reader reconnects
    (refused 503 with ``Retry-After`` until the database answers) and reloads what it missed, as
    Mastodon's apps do on reconnecting and as Byline's pages do. ``bound``: what the log line
    says of the stream."""
    logger.warning("stream_ended", reason="database_unavailable", **bound)
    return StreamEnded(Ending.BROKEN)


async def answered(read: Awaitable[T], **bound: object) -> T:
    """What a stream's ``read`` gives, or :class:`StreamEnded` (:attr:`Ending.BROKEN`) when the
    database does not answer it. Shielded, as every read a stream makes: one stopped mid-read
    still ends its transaction and hands its connection back clean."""
    try:
        return await asyncio.shield(read)
    except Exception as exc:
        if unavailable(exc):
            raise broken(**bound) from None
        raise


class MastodonStreams:
    """Opens streams for apps, says which streams they may subscribe to, and reads their events."""

    def __init__(self, *, db: Database, mastodon: MastodonService, watcher: ChangeWatcher, clock: Clock,
                 instance: InstanceStreams | None = None) -> None:
        self._db = db
        self._mastodon = mastodon
        self.watcher = watcher
        self._clock = clock
        self.instance = instance or InstanceStreams(mastodon)
        self._per_account: Counter[str] = Counter()
        self._policies_seen = 0
        """Moves each time other policies are put in force: every check made before stands no more."""

    def policies_changed(self) -> None:
        """Other policies are in force: each stream checks its token again at its next event
        (a role may be gone), and the connections to instances are looked at again."""
        self._policies_seen += 1
        self.instance.policies_changed()

    def vouches(self, feed: Feed) -> bool:
        """Whether the feed's last check of its token still stands for the instance's events:
        made within ``CHECK_STANDS_SECONDS``, with the log and the policies as they are now."""
        if feed.checked is None:
            return False
        at, size, seen = feed.checked
        return (size == self.watcher.size and seen == self._policies_seen
                and now_micros(self._clock) - at < CHECK_STANDS_SECONDS * 1_000_000)

    async def connect(self, token: str | None) -> ClientAuth:
        """The caller of a stream, with no scope asked yet (each stream asks its own), bound to
        its account as for the REST API; 401 as the streaming server words it for a token
        missing or not known, 403 for one bound to no account it may read."""
        if not token:
            raise BylineError(Code.UNAUTHENTICATED, MISSING_TOKEN)
        try:
            return await self._mastodon.authenticate(token, scope=None)
        except BylineError as exc:
            if exc.code is Code.UNAUTHENTICATED:
                raise BylineError(Code.UNAUTHENTICATED, INVALID_TOKEN) from None
            raise

    def subscription(
        self, auth: ClientAuth, name: object, *, tag: object = None, list_id: object = None,
    ) -> Subscription:
        """A stream the caller may listen to, with its parameters; else a refusal worded as the
        streaming server words it (400 for a stream or parameter that is not one, 401 for a
        scope the token lacks or a list that is not the account's)."""
        if not isinstance(name, str) or name not in _SCOPES:
            raise BylineError(Code.BAD_REQUEST, UNKNOWN_STREAM)
        if not auth.caller.may(_SCOPES[name]):
            raise BylineError(Code.UNAUTHENTICATED, NO_SCOPE)
        if name.startswith("hashtag"):
            if not isinstance(tag, str) or not tag.strip() or len(tag) > 100:
                raise BylineError(Code.BAD_REQUEST, "Missing tag name parameter")
            return Subscription(name=name, tag=tag.strip())
        if name == "list":
            if not isinstance(list_id, str) or not list_id:
                raise BylineError(Code.BAD_REQUEST, "Missing list name parameter")
            if self._mastodon.platform(auth) != "mastodon" or not list_id.isdigit() or len(list_id) > 24:
                # Lists are the instance's: an account elsewhere has none to stream.
                raise BylineError(Code.UNAUTHENTICATED, "Not authorized to stream this list")
            return Subscription(name=name, list_id=list_id)
        return Subscription(name=name)

    @contextlib.asynccontextmanager
    async def open(self, auth: ClientAuth, token: str) -> AsyncIterator[Feed]:
        """A feed for one stream of the caller's, from the log as it stands now, for as long as
        the stream is open; 429 past ``STREAMS_PER_TOKEN`` of its token's or
        ``STREAMS_PER_ACCOUNT`` of its account's, 503 once the gateway is stopping."""
        if self._per_account[auth.account] >= STREAMS_PER_ACCOUNT:
            raise BylineError(Code.TOO_MANY_REQUESTS, "Too many streams are open for this account", retry_after=30)
        self._per_account[auth.account] += 1
        try:
            async with self.watcher.listen(f"token:{auth.token_hash}") as listener:
                async with self._db.read() as txn:
                    start = await sql.log_size(txn)
                logger.info("stream_opened", account=auth.account, user=auth.caller.user)
                feed = Feed(streams=self, listener=listener, auth=auth, token=token, cursor=start)
                try:
                    yield feed
                finally:
                    for stream in list(feed.following):
                        self.unfollow(feed, stream)
        finally:
            self._per_account[auth.account] -= 1
            if self._per_account[auth.account] <= 0:
                del self._per_account[auth.account]

    def follow(self, feed: Feed, sub: Subscription) -> None:
        """The feed hears the instance's events of ``sub`` too (for an account on Mastodon)."""
        if sub.key in feed.following:
            return
        try:
            platform = self._mastodon.platform(feed.auth)
        except BylineError:
            # The account gone since the feed's token was last checked: checked again now, the
            # stream ends as one whose token no longer reads the account.
            feed.listener.wake()
            return
        if platform == "mastodon":
            feed.following.add(sub.key)
            self.instance.join(feed.auth.account, sub.key, feed)

    def unfollow(self, feed: Feed, stream: tuple[str, ...]) -> None:
        """The feed no longer hears the instance's events of ``stream``."""
        if stream in feed.following:
            feed.following.discard(stream)
            self.instance.leave(feed.auth.account, stream, feed)

    async def still_reads(self, feed: Feed) -> None:
        """Raises :class:`StreamEnded` once the feed's token no longer reads its account (revoked,
        expired, its person's role gone, or its account no longer managed here), or once the
        database does not answer the check."""
        began = (now_micros(self._clock), self.watcher.size, self._policies_seen)
        try:
            auth = await self._mastodon.authenticate(feed.token, scope=None)
        except BylineError as exc:
            if exc.code in (Code.UNAUTHENTICATED, Code.FORBIDDEN):
                logger.info("stream_ended", account=feed.auth.account, reason=exc.code.value)
                raise StreamEnded(Ending.REVOKED) from None
            return  # any other refusal of a check says nothing against the token: the next one asks again
        except Exception as exc:
            if unavailable(exc):
                raise broken(account=feed.auth.account) from None
            raise
        if auth.account != feed.auth.account:
            # A token bound to no account reads its person's only account: now another one.
            raise StreamEnded(Ending.REVOKED)
        feed.auth = auth
        feed.checked = began

    async def events_for(self, feed: Feed) -> list[StreamEvent]:
        """The events of the feed's account since its cursor, rendered as the REST API renders
        the post now; the cursor moves past them. A post the caller may not see is left out, and
        so is an ``update`` for a post no longer out (deleted since: its ``delete`` follows)."""
        auth = feed.auth
        async with self._db.read() as txn:
            end, rows = await sql.account_entries(txn, account=auth.account, start=feed.cursor,
                                                  types=tuple(EVENTS), limit=ENTRIES_PER_READ)
        told: list[tuple[str, str, PostView]] = []
        for row in rows:
            event, post_id = EVENTS[str(row["type"])], row["post_id"]
            if not isinstance(post_id, str):
                continue
            post = await self._mastodon.own_post(auth, post_id)
            if post is not None and (event == "delete" or State(post.state) is State.PUBLISHED):
                told.append((event, post_id, post))
        # The edit waiting on each status (``byline.pending_revision``), as GET names it: one
        # read for the lot, as a page of statuses reads it; so is the account's count.
        shown = [post for event, _, post in told if event != "delete"]
        pending = await self._mastodon.pending_revisions(auth, shown) if shown else {}
        account = await self._mastodon.account(auth) if shown else None
        out = [
            StreamEvent(event=event, post_id=post_id, status=None) if event == "delete" else
            StreamEvent(event=event, post_id=post_id, status=await self._mastodon.render(
                auth, post, account=account, pending=pending.get(post.id)))
            for event, post_id, post in told
        ]
        feed.cursor = end
        if len(rows) == ENTRIES_PER_READ:
            feed.listener.wake()  # maybe more than one read's worth: the rest at the next round
        return out

    async def close(self) -> None:
        """End every stream (the gateway is stopping)."""
        await self.instance.close()
        await self.watcher.close()
