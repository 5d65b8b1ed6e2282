"""The live events of a Mastodon account's own instance, relayed to the account's open streams.

For an account on Mastodon, an app's ``user`` stream (and ``user:notification``, ``public…``,
``hashtag…``, ``list``) also hears what happens on the instance: others' posts arriving in the
home timeline, notifications, edits, deletions, filters changed. Byline follows the instance's
streaming API as the account, with the account's credential, which never leaves Byline: ONE
connection per account and stream, shared by all of that account's open streams that asked
for it, opened with the first and closed with the last.

What is relayed, and how:

- the events ``update``, ``notification``, ``status.update``, ``delete`` and ``filters_changed``,
  with their payload exactly as the instance sent it, as the REST reads of the same timelines
  and notifications are relayed as the instance answers them (statuses by the instance's ids);
- not an ``update``, ``status.update`` or ``delete`` of a status that Byline itself published
  for the account: Byline's own log already tells those, by Byline's id, when the post goes out
  (``gateway.services.streaming``), so the instance's copy is dropped and the app hears the
  post once. A status by the account itself that Byline does not know yet (its publish may
  still be recording the instance's id) is held up to ``HOLD_SECONDS`` while Byline looks again;
- nothing else (conversations, announcements: the REST relay leaves direct messages out too).

The instance failing (refusing, dropping the connection, not answering), or the account's
credential unreadable for a while (its secret being replaced), never ends an app's stream: the
connection is tried again after a pause that doubles from ``BACKOFF_FIRST`` up to
``BACKOFF_MOST`` seconds, and Byline's own events keep flowing meanwhile. Logs name the account
and the stream, never the credential (the adapter's errors are scrubbed of it).

A connection is made with the account's policy and credential as they stand when it opens, and
kept only while they do. They are looked at again when the policies in force change
(:meth:`InstanceStreams.policies_changed`), and, while any connection is open, every
``CREDENTIAL_REREAD_SECONDS``: a credential may be rewritten where its policy points (its secret
file, its environment variable) with no policy edited, and it is read again there as a
publication reads it (an environment lookup or a ``stat``, :class:`~gateway.services.platforms.SecretFiles`).
A connection whose account now follows another instance or credential is closed and made again
with the new one, and what its streams heard on it but have not told yet is dropped (what an
app's connection took and has not written yet too: ``Feed.still_told``): an app hears nothing
of the old platform account once the change is seen, but what was handed to its socket before.
A credential that cannot be read closes the connection too (it is tried again after its pauses, as above), and one whose
account is gone from the policies (or from Mastodon) is closed for good, its streams told so
(they then end, as their tokens no longer read the account). No credential stays in use for an
account Byline no longer speaks for, or speaks for with another, and nothing reconnects for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog

from adapters.base import AdapterError
from gateway.services.platforms import CREDENTIAL_REREAD_SECONDS

logger = structlog.get_logger("byline.streaming")

RELAYED_EVENTS: Final = frozenset({"update", "notification", "status.update", "delete", "filters_changed"})
"""The instance's events an app hears through Byline."""
RELAYED_STREAMS: Final = frozenset({
    "user", "user:notification", "public", "public:media", "public:local", "public:local:media",
    "public:remote", "public:remote:media", "hashtag", "hashtag:local", "list",
})
"""The streams followed on the instance (``direct`` is not: conversations are not relayed)."""
LINKS_PER_ACCOUNT: Final = 16
"""Connections to its instance one account may have at once (its streams: home, notifications,
a few hashtags and lists): an app asking for more hears Byline's own events only on the rest,
as the instance is not Byline's to load with an app's every subscription."""
HOLD_SECONDS: Final = 3.0
"""How long an ``update`` by the account itself waits for Byline to know whether it made it."""
BACKOFF_FIRST: Final = 0.5
BACKOFF_MOST: Final = 60.0
STEADY_SECONDS: Final = 30.0
"""A connection that stayed up this long starts its next pause from ``BACKOFF_FIRST`` again."""
_UNREADABLE: Final = "unreadable"
"""A link's identity while its account's credential cannot be read (no digest reads so): closed,
and not closed again at each look while it stays unreadable."""


@dataclass(frozen=True, kw_only=True)
class Heard:
    """One event from the instance, for the stream that names ``stream``."""

    stream: tuple[str, ...]
    event: str
    payload: str


class Sink(Protocol):
    """An open stream that hears the instance's events (a feed)."""

    def heard(self, item: Heard) -> None:
        """Take one event (without waiting: a slow app must not hold up the others)."""
        ...

    def ended(self) -> None:
        """The instance's stream ended for good (the account gone from the policies or from
        Mastodon): look again, at once, whether the stream may still read the account."""
        ...

    def forget(self, stream: tuple[str, ...]) -> None:
        """Drop the events of ``stream`` taken but not told yet: its connection was made with a
        credential or an instance the account no longer has."""
        ...


class Source(Protocol):
    """What follows an account's instance and knows its posts (``MastodonService``)."""

    def instance_stream(self, account: str, stream: Sequence[str]) -> AsyncIterator[tuple[str, str]] | None:
        """The instance's events of ``stream`` as the account, or None off Mastodon."""
        ...

    def instance_identity(self, account: str) -> str | None:
        """What the account's instance is followed with now (instance and credential, as a
        digest), or None once the account is gone or off Mastodon; raises when the credential
        cannot be read. Cheap enough to ask once a second per account: the credential is read
        as a publication reads it (an environment lookup, or a ``stat`` of its file)."""
        ...

    def instance_username(self, account: str) -> str:
        """The account's username on its instance."""
        ...

    async def made_here(self, account: str, remote_id: str) -> bool:
        """Whether Byline published the instance's status ``remote_id`` for the account."""
        ...

    def credential_refused(self, account: str) -> None:
        """The instance refused the account's credential: tell its admin."""
        ...


@dataclass(eq=False)
class _Link:
    """One connection to the instance, and the streams it feeds."""

    sinks: set[Sink] = field(default_factory=set)
    task: asyncio.Task[None] | None = None
    identity: str | None = None
    """What its connection was made with (:meth:`Source.instance_identity`)."""


class InstanceStreams:
    """One connection per account and stream to the account's instance, shared by its streams."""

    def __init__(self, source: Source, *, backoff_first: float = BACKOFF_FIRST, backoff_most: float = BACKOFF_MOST,
                 hold: float = HOLD_SECONDS, now: Callable[[], float] | None = None,
                 reread: float = CREDENTIAL_REREAD_SECONDS) -> None:
        self._source = source
        self._backoff_first = backoff_first
        self._backoff_most = backoff_most
        self._hold = hold
        self._now = now
        self._reread = reread
        self._links: dict[tuple[str, tuple[str, ...]], _Link] = {}
        self._watch: asyncio.Task[None] | None = None
        """Looks at the followed accounts' credentials again while any connection is open."""

    def open_links(self) -> list[tuple[str, tuple[str, ...]]]:
        """The connections open (or being retried) now: (account, stream)."""
        return list(self._links)

    def join(self, account: str, stream: tuple[str, ...], sink: Sink) -> None:
        """``sink`` hears the instance's events of ``stream``; the first to ask opens the connection."""
        if stream[0] not in RELAYED_STREAMS:
            return
        key = (account, stream)
        link = self._links.get(key)
        if link is None:
            if sum(1 for held, _ in self._links if held == account) >= LINKS_PER_ACCOUNT:
                logger.warning("instance_streams_bounded", account=account, stream=stream[0])
                return
            link = self._links[key] = _Link()
            self._start(key, link)
            if self._watch is None or self._watch.done():
                self._watch = asyncio.create_task(self._rereading(), name="byline-instance-credentials")
        link.sinks.add(sink)

    def _start(self, key: tuple[str, tuple[str, ...]], link: _Link) -> None:
        if link.task is not None:
            link.task.cancel()  # its connection closes as the task ends
        link.task = asyncio.create_task(self._follow(*key, link), name="byline-instance-stream")

    def policies_changed(self) -> None:
        """The policies in force changed: the connections are looked at again (:meth:`_look_again`)."""
        self._look_again()

    async def _rereading(self) -> None:
        """While any connection is open, look at them again every ``CREDENTIAL_REREAD_SECONDS``:
        a credential rewritten where its policy points, no policy edited, is seen within it."""
        while self._links:
            await asyncio.sleep(self._reread)
            self._look_again()

    def _look_again(self) -> None:
        """Each connection whose account now follows its instance with another credential, or
        another instance, or no longer at all (the account removed, or off Mastodon), or whose
        credential cannot be read now, is closed and made again; the new one finds out which
        (see :meth:`_follow`). Each account's credential is read once for all its connections."""
        found: dict[str, str | None] = {}
        for key, link in list(self._links.items()):
            account = key[0]
            if account not in found:
                found[account] = self._identity(account)
            if found[account] != link.identity:
                if found[account] == _UNREADABLE:
                    logger.warning("instance_stream_credential_unreadable", account=account, stream=key[1][0])
                else:
                    logger.info("instance_stream_changed", account=account, stream=key[1][0])
                link.identity = found[account]
                for sink in list(link.sinks):
                    sink.forget(key[1])  # heard as the account it was: none of it is told now
                self._start(key, link)

    def _identity(self, account: str) -> str | None:
        """:meth:`Source.instance_identity`, or ``_UNREADABLE`` when the credential cannot be read."""
        try:
            return self._source.instance_identity(account)
        except Exception:  # its connection's attempts say why, in their own log lines
            return _UNREADABLE

    def leave(self, account: str, stream: tuple[str, ...], sink: Sink) -> None:
        """``sink`` no longer hears ``stream``; the last to go closes the connection."""
        key = (account, stream)
        link = self._links.get(key)
        if link is None:
            return
        link.sinks.discard(sink)
        if not link.sinks:
            del self._links[key]
            if link.task is not None:
                link.task.cancel()

    async def close(self) -> None:
        """Close every connection (the gateway is stopping)."""
        links, self._links = list(self._links.values()), {}
        tasks = [link.task for link in links if link.task is not None]
        if self._watch is not None:
            tasks.append(self._watch)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _clock(self) -> float:
        return self._now() if self._now is not None else asyncio.get_running_loop().time()

    async def _follow(self, account: str, stream: tuple[str, ...], link: _Link) -> None:
        """Follow the instance's stream for as long as anyone listens, reconnecting after a pause;
        stop for good once the account is gone from the policies or from Mastodon."""
        pause = self._backoff_first
        named = ":".join(stream[:1])
        while True:
            opened = self._clock()
            try:
                # What it is made with is read first: a credential rewritten between the two
                # reads is then seen as a change at the next look, not taken for the one in use.
                link.identity = _UNREADABLE
                link.identity = self._source.instance_identity(account)
                events = self._source.instance_stream(account, stream)
            except Exception as exc:  # the account gone from the policies, or its credential unreadable now
                logger.warning("instance_stream_failed", account=account, stream=named, error=type(exc).__name__)
                gone = self._gone(account)
            else:
                gone = events is None
                if events is not None:
                    await self._relay(account, stream, link, events)
            if gone:
                self._stopped(account, stream, link)
                return
            if self._clock() - opened >= STEADY_SECONDS:
                pause = self._backoff_first
            await asyncio.sleep(pause)
            pause = min(pause * 2, self._backoff_most)

    def _gone(self, account: str) -> bool:
        """Whether the account is gone from the policies or from Mastodon (not merely its
        credential unreadable for now, which a later attempt may read)."""
        try:
            return self._source.instance_identity(account) is None
        except Exception:
            return False

    async def _relay(self, account: str, stream: tuple[str, ...], link: _Link,
                     events: AsyncIterator[tuple[str, str]]) -> None:
        """Tell the link's streams the instance's events of one connection, until it ends."""
        named = ":".join(stream[:1])
        try:
            logger.info("instance_stream_connecting", account=account, stream=named)
            async for event, payload in events:
                if event not in RELAYED_EVENTS or await self._told_by_byline(account, event, payload):
                    continue
                item = Heard(stream=stream, event=event, payload=payload)
                for sink in list(link.sinks):
                    sink.heard(item)
            logger.info("instance_stream_ended", account=account, stream=named)
        except AdapterError as exc:  # its words are scrubbed of the credential
            logger.warning("instance_stream_failed", account=account, stream=named, error=exc.message,
                           auth_failed=exc.auth_failed)
            if exc.auth_failed:
                self._source.credential_refused(account)
        except Exception as exc:  # whatever breaks, the app's stream carries on
            logger.warning("instance_stream_failed", account=account, stream=named, error=type(exc).__name__)
        finally:
            closing = getattr(events, "aclose", None)  # an async generator's: its socket closes now
            if closing is not None:
                with contextlib.suppress(Exception):
                    await closing()

    def _stopped(self, account: str, stream: tuple[str, ...], link: _Link) -> None:
        """The link follows nothing any more: gone, so nothing retries it (a later stream of an
        account back on Mastodon opens a new one), and its streams told."""
        logger.info("instance_stream_stopped", account=account, stream=stream[0])
        if self._links.get((account, stream)) is link:
            del self._links[(account, stream)]
        for sink in list(link.sinks):
            sink.ended()

    async def _told_by_byline(self, account: str, event: str, payload: str) -> bool:
        """Whether Byline's own log tells this event (a post Byline published), so the app hears
        it once, by Byline's id; an event that is not what the instance's streaming server
        sends is dropped too."""
        if event == "delete":
            return await self._source.made_here(account, payload)
        if event not in ("update", "status.update"):
            return False
        try:
            status: Any = json.loads(payload)
        except ValueError:
            return True
        if not isinstance(status, dict) or not isinstance(status.get("id"), str):
            return True
        if await self._source.made_here(account, status["id"]):
            return True
        by = status.get("account")
        if event != "update" or not isinstance(by, dict) or by.get("acct") != self._source.instance_username(account):
            return False
        # The account's own new status, not known here yet: Byline's publish may be recording it.
        deadline = self._clock() + self._hold
        while self._clock() < deadline:
            await asyncio.sleep(0.2)
            if await self._source.made_here(account, status["id"]):
                return True
        return False
