"""What a reply answers, as the options that say it, and as its approvers are shown it: the
platform's id of its parent (``reply_to``) with the parent's address, author and words where the
platform gave them (``reply_to_url``, ``reply_to_account``, ``reply_to_text``; or why its words
went unread, ``reply_to_unread``), or, for a post of the account's that has not gone out yet,
that post (``reply_to_post``). One reading for every surface a reply comes through (the Mastodon
API's ``in_reply_to_id``, the native API's ``reply_to`` and ``reply_to_post``, a Bluesky
record's ``reply.parent``): approvers see what the words answer, whichever app sent them."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Awaitable
from dataclasses import replace
from html.parser import HTMLParser
from typing import Any, Final, NoReturn, Protocol, runtime_checkable
from urllib.parse import quote

import structlog

from adapters.base import AdapterError
from adapters.bluesky import POST_COLLECTION, AtUri, BlueskyAdapter
from gateway.errors import BylineError, Code
from gateway.policy.engine import Role, roles
from gateway.policy.loader import LoadedPolicy
from gateway.services.platforms import Platforms
from gateway.services.posts import REPLY_NOT_FOUND, Caller, PostOptions, PostService
from gateway.storage import sandbox as sandbox_sql
from gateway.storage.db import Database

logger = structlog.get_logger("byline.replies")

SHOWN_URL: Final = re.compile(r"https?://[^\s<>\"]{1,2040}")
"""A status's address as approvers are given it to follow: the web's, nothing else."""


def web_link(address: object) -> str | None:
    """``address`` where a page may link to it: a platform-given address is a link only when it
    is the web's (http or https), never ``javascript:`` or ``data:`` from a hostile instance or
    a row written before the check; else None, and the page shows it as text or not at all."""
    return address if isinstance(address, str) and SHOWN_URL.fullmatch(address) else None


@runtime_checkable
class RawReader(Protocol):
    """An adapter that can pass one client-API read through (the Mastodon adapter)."""

    async def get_raw(self, path: str, query: str = "") -> tuple[int, dict[str, str], bytes]:
        """``GET`` a client API path as the account: status, headers, body."""
        ...


WORDS_KEPT: Final = 2000
"""The most characters of a parent's or a quoted post's words kept for its approvers to read
(a Mastodon instance may allow statuses of any length): enough to judge what a reply answers;
the rest is a click away, at its address."""
CONTENT_READ: Final = 100_000
"""The most characters of a status's HTML parsed for its words: bounded before it is parsed."""


def words_kept(text: str) -> str:
    """``text`` as kept for approvers: no control characters but line breaks and tabs (a hostile
    instance's or record's), and at most :data:`WORDS_KEPT` characters, cut with an ellipsis."""
    clean = "".join(c for c in text if c in "\n\t" or unicodedata.category(c) != "Cc")
    return clean if len(clean) <= WORDS_KEPT else clean[:WORDS_KEPT - 1] + "…"


class _StatusWords(HTMLParser):
    """A Mastodon status's ``content`` (HTML) read as the plain text a reader sees: its text,
    a line break for ``<br>``, a blank line between paragraphs, the whole address of a link
    (Mastodon hides part of it in spans), entities decoded; nothing of tags or attributes, and
    nothing inside a ``script``, ``style`` or ``template`` an instance should never send."""

    _UNSEEN: Final = frozenset({"script", "style", "template"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._unseen = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._UNSEEN:
            self._unseen += 1
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "p" and self.parts:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._UNSEEN and self._unseen:
            self._unseen -= 1

    def handle_data(self, data: str) -> None:
        if not self._unseen:
            self.parts.append(data)


def status_words(content: object) -> str | None:
    """The words of a status whose ``content`` (HTML) an instance gave, as plain text
    (:class:`_StatusWords`), kept as :func:`words_kept` bounds them; None for no HTML."""
    if not isinstance(content, str):
        return None
    reader = _StatusWords()
    reader.feed(content[:CONTENT_READ])
    reader.close()
    return words_kept(re.sub(r"[ \t]*\n[ \t]*", "\n", "".join(reader.parts)).strip())


def _handle(account: object) -> str | None:
    """A Mastodon account's handle (``acct``) as an instance gave it, or None for anything but a
    handle."""
    acct = account.get("acct") if isinstance(account, dict) else None
    return acct if isinstance(acct, str) and 0 < len(acct) <= 320 and acct.isprintable() and " " not in acct else None


def status_shown(status_id: str, body: bytes) -> PostOptions:
    """A reply's options to the Mastodon status ``status_id`` as the instance answered for it:
    its address (``url``, else its ``uri``), its author's handle (``account.acct``), its words
    as plain text and its content warning (``spoiler_text``); None for what it did not give, or
    gave as anything but a web address and a handle (a remote server's ``url`` reaches the
    instance from that server). A boost has no words of its own: those of the status it boosts,
    whose they are and its address, and who boosted it (``reply_to_boost``), as Mastodon apps
    show it. An answer without words says so (``reply_to_unread``)."""
    try:
        status = json.loads(body)
    except ValueError:
        status = None
    if not isinstance(status, dict):
        return PostOptions(reply_to=status_id, reply_to_unread="the instance's answer was not a status")
    booster = None
    if isinstance(boosted := status.get("reblog"), dict):
        booster = _handle(status.get("account")) or "someone"
        status = boosted
    url = next((u for u in (status.get("url"), status.get("uri")) if web_link(u)), None)
    words = status_words(status.get("content"))
    spoiler = status.get("spoiler_text")
    return PostOptions(reply_to=status_id, reply_to_url=url, reply_to_account=_handle(status.get("account")),
                       reply_to_text=words, reply_to_boost=booster,
                       reply_to_warning=words_kept(spoiler) if isinstance(spoiler, str) and spoiler else None,
                       reply_to_unread=None if words is not None else "the instance's answer held no words")


NONE: Final = PostOptions()
"""The options of a post that answers nothing."""


class ReplyTargets:
    """What a reply answers (see the module docstring)."""

    def __init__(self, *, db: Database, posts: PostService, platforms: Platforms) -> None:
        self._db = db
        self._posts = posts
        self._platforms = platforms

    async def named(
        self, caller: Caller, account: str, *, reply_to: str | None, reply_to_post: str | None,
    ) -> PostOptions:
        """What a reply sent through the native API answers: Byline's post ``reply_to_post``
        (:meth:`of_post`; 404 when Byline has none) or the platform's status ``reply_to``
        (:meth:`on_platform`), named once. The platform is asked only for a person who may post
        on the account: for anyone else the post is refused as it is submitted, and whether the
        account's platform has a status is not theirs to learn."""
        if reply_to_post is not None:
            if reply_to is not None:
                raise BylineError(Code.VALIDATION, "name the post answered once: reply_to or reply_to_post",
                                  field="reply_to_post")
            found = await self.of_post(caller, account, reply_to_post)
            if found is None:
                raise BylineError(Code.NOT_FOUND, f"no post {reply_to_post}", field="reply_to_post")
            return found
        if reply_to is None:
            return NONE
        loaded = self._posts.policies.get(account)
        if loaded is None or (caller.account is not None and caller.account != account) or \
                not roles(loaded.policy, caller.user) & {Role.WRITER, Role.SUGGESTER}:
            return PostOptions(reply_to=reply_to)
        return await self.on_platform(account, reply_to)

    async def of_post(self, caller: Caller, account: str, post_id: str) -> PostOptions | None:
        """A reply to Byline's post ``post_id``: that post while it has not gone out (the
        publisher sends the reply after it, as a thread tool posts 2/2 as soon as 1/2 is
        answered), else the platform's id of where it went, at the address Byline recorded for
        it. None when Byline has no such post ``caller`` may see; 404 for one of another
        account's, or one that ended without going out (``PostService.reply_parent``)."""
        found = await self._posts.reply_parent(caller.user, account, post_id)
        if found is None:
            return None
        if found[0] is None:
            return PostOptions(reply_to_post=found[1])
        parent = await self._posts.view(caller, post_id, history=False)
        return PostOptions(reply_to=found[0], reply_to_url=web_link(parent.remote_url),
                           reply_to_text=words_kept(parent.display_text))

    async def on_platform(self, account: str, status_id: str) -> PostOptions:
        """A reply to the platform's status ``status_id``, which Byline did not make: a status an
        app saw in a timeline, passed on as it is, with the address, author and words the
        platform gave for it (:func:`status_shown`), for its approvers to see what the reply
        answers; where its words could not be read, why (``reply_to_unread``), said to them.
        404, as Mastodon answers a reply to a status that is not there, where the platform
        surely has none under that id: the
        sandbox's statuses are Byline's own record, and a Mastodon instance is asked as the
        account (``GET /api/v1/statuses/:id``, which finds the status and checks that the
        account may see it, as Mastodon does before taking a reply). Where the platform cannot
        say (another platform, an instance that does not answer, or answers anything but 404),
        the id is passed on as it is, and the platform judges it when the reply goes out. A
        Bluesky post must be there, and the reply answers that very record (:meth:`bluesky_parent`)."""
        loaded = self._posts.policy(account)
        platform = loaded.policy.platform
        if platform == "sandbox":
            async with self._db.read() as txn:
                row = await sandbox_sql.get(txn, status_id)
            if row is None or row["deleted_at"] is not None:
                self._not_found(account, platform)
            return PostOptions(reply_to=status_id, reply_to_text=words_kept(row["text"]))
        if platform == "bluesky":
            return await self.bluesky_parent(loaded, PostOptions(reply_to=status_id))
        if platform != "mastodon":
            return PostOptions(reply_to=status_id, reply_to_unread=f"Byline does not read posts on {platform}")
        answer = await self._status(loaded, status_id)
        if answer is None:
            return PostOptions(reply_to=status_id, reply_to_unread="the instance could not be asked")
        if answer[0] == 404:
            self._not_found(account, platform)
        if answer[0] != 200:
            return PostOptions(reply_to=status_id, reply_to_unread=f"the instance answered {answer[0]}")
        return status_shown(status_id, answer[1])

    async def bluesky_parent(self, loaded: LoadedPolicy, options: PostOptions) -> PostOptions:
        """``options``, of a reply on a Bluesky account to the post at ``reply_to``, with what it
        answers as the account's PDS says when the reply is written: that very record
        (``reply_to_cid``: :meth:`bluesky_cid`), and for its approvers its words
        (``reply_to_text``), and whose post it is and where to read it in the Bluesky app
        (``reply_to_account``, ``reply_to_url``), where the PDS vouches for its author's handle.
        Kept with the reply, never looked up as its card is shown: an approver reads what the
        reply answered when it was written. Without a handle the PDS vouches for, neither: the
        card shows the ``at://`` address as it is, linking nowhere a handle could mislead."""
        uri = options.reply_to
        if uri is None:  # pragma: no cover - only a reply is read for what it answers
            return options
        adapter = self._bluesky(loaded)
        parent = await self._parent_record(loaded, uri)
        cid = self._cid_of(parent, uri)
        try:
            handle = await adapter.vouched_handle(AtUri.parse(uri).repo)
        except AdapterError as exc:
            # The post is there (its CID read just now); only whose it is went unsaid.
            logger.info("reply_parent_handle_unread", account=loaded.policy.account, error=exc.message)
            handle = None
        return replace(options, reply_to_cid=cid, reply_to_account=handle, reply_to_text=_record_words(parent),
                       reply_to_warning=_record_labels(parent),
                       reply_to_url=None if handle is None else adapter.post_url(uri, handle))

    def _bluesky(self, loaded: LoadedPolicy) -> BlueskyAdapter:
        """The Bluesky account's adapter."""
        adapter = self._platforms.adapter_for(loaded)
        if not isinstance(adapter, BlueskyAdapter):  # pragma: no cover - the platform says bluesky
            raise BylineError(Code.UNAVAILABLE, "the account has no Bluesky adapter", xrpc="UpstreamFailure")
        return adapter

    async def bluesky_cid(self, loaded: LoadedPolicy, uri: str) -> str:
        """The CID of the Bluesky post ``uri`` a reply answers, as the account's PDS holds it now:
        the reply goes out to that record or not at all (``OutboundPost.reply_to_cid``). A PDS
        takes a reply to an address that holds no post, and a post written there later, with
        other words, would be what the reply answers, which its approvers never saw: refused,
        in ``getRecord``'s words (the XRPC surface answers its ``RecordNotFound``)."""
        return self._cid_of(await self._parent_record(loaded, uri), uri)

    async def _parent_record(self, loaded: LoadedPolicy, uri: str) -> dict[str, Any]:
        """The Bluesky post ``uri`` a reply answers, as the account's PDS holds it now, or the
        refusal of a reply to it (:meth:`bluesky_cid`)."""
        return await self._held_now(self._bluesky(loaded).parent_record(uri), uri, field="Record/reply/parent",
                                    why="a reply answers a post that is there",
                                    unread="the post this replies to could not be read, so the reply was not taken")

    @staticmethod
    def _cid_of(parent: dict[str, Any], uri: str) -> str:
        """The CID the PDS gave of the record ``parent`` at ``uri``; 502 where it gave none."""
        cid = parent.get("cid")
        if not isinstance(cid, str) or not cid:
            raise BylineError(Code.UNAVAILABLE, f"the PDS gave no CID for {uri}", xrpc="UpstreamFailure")
        return cid

    async def bluesky_quoted(self, loaded: LoadedPolicy, options: PostOptions, uri: str, cid: str) -> PostOptions:
        """``options`` of a quote of ``uri`` at ``cid``, with what it shows as the account's PDS
        holds it now, for its approvers to read: the post's words (``quote_text``), and whose
        it is and where to read it (``quote_account``, ``quote_url``) where the PDS vouches for
        its author's handle, as :meth:`bluesky_parent` keeps a reply's. Kept with the quote,
        never read again as its card is shown.
        Refused unless the PDS holds that very record now. A PDS takes a quote of an address
        that holds nothing, or another record than the CID names; once something is written
        there, the quote shows it: words its approvers never saw it show. Refused as a reply to
        such an address is (:meth:`bluesky_cid`): ``RecordNotFound``, or ``InvalidRequest``
        naming the CID the record has."""
        why = "a quote shows the record that is there"
        quoted = await self._held_now(self._bluesky(loaded).record(uri, what="the record quoted"), uri,
                                      field="Record/embed/record", why=why,
                                      unread="the record this quotes could not be read, so the post was not taken")
        if quoted.get("cid") != cid:
            raise BylineError(Code.VALIDATION,
                              f"Invalid {POST_COLLECTION} record: Record/embed/record/cid: {uri} is "
                              f"{quoted.get('cid')} on its PDS, not {cid}: {why}", xrpc="InvalidRequest")
        address = AtUri.parse(uri)
        if address.collection != POST_COLLECTION:
            return options  # a feed or a list: its address is what the card shows
        adapter = self._bluesky(loaded)
        try:
            handle = await adapter.vouched_handle(address.repo)
        except AdapterError as exc:
            # The record is there (read just now); only whose it is went unsaid.
            logger.info("quoted_handle_unread", account=loaded.policy.account, error=exc.message)
            handle = None
        return replace(options, quote_text=_record_words(quoted), quote_account=handle,
                       quote_url=None if handle is None else adapter.post_url(uri, handle))

    @staticmethod
    async def _held_now(
        reading: Awaitable[dict[str, Any]], uri: str, *, field: str, why: str, unread: str,
    ) -> dict[str, Any]:
        """The record at ``uri`` as ``reading`` reads it from the account's PDS, or the refusal
        the XRPC surface answers in the PDS's words: ``RecordNotFound`` where it holds none
        (``why`` a post may not name it), ``InvalidRequest`` for no record's address (the record's
        ``field``), ``UpstreamFailure`` where it could not be asked (``unread``)."""
        try:
            return await reading
        except AdapterError as exc:
            if (exc.detail or "").startswith("RecordNotFound"):
                raise BylineError(Code.NOT_FOUND, f"Could not locate record: {uri}: {why}",
                                  xrpc="RecordNotFound") from None
            if exc.status is None and not exc.retryable:  # not a record's address
                raise BylineError(Code.VALIDATION, f"Invalid {POST_COLLECTION} record: {field}: {exc.message}",
                                  xrpc="InvalidRequest") from None
            raise BylineError(Code.UNAVAILABLE, f"{unread}: {exc.message}", xrpc="UpstreamFailure") from None

    async def _status(self, loaded: LoadedPolicy, status_id: str) -> tuple[int, bytes] | None:
        """The instance's answer to ``GET /api/v1/statuses/:id`` as the account, or None where
        it could not be asked."""
        try:
            adapter = self._platforms.adapter_for(loaded)
            if not isinstance(adapter, RawReader):
                return None
            status, _, body = await adapter.get_raw(f"/api/v1/statuses/{quote(status_id, safe='')}")
        except (AdapterError, BylineError, ValueError):
            return None
        return status, body

    @staticmethod
    def _not_found(account: str, platform: str) -> NoReturn:
        logger.info("reply_target_not_found", account=account, platform=platform)
        raise BylineError(Code.NOT_FOUND, REPLY_NOT_FOUND, verbatim=True)


def _record_words(record: dict[str, Any]) -> str:
    """The words of a Bluesky post as ``getRecord`` gave it (its ``value.text``), as
    :func:`words_kept` bounds them; none (``""``) where its record holds none."""
    value = record.get("value")
    text = value.get("text") if isinstance(value, dict) else None
    return words_kept(text) if isinstance(text, str) else ""


def _record_labels(record: dict[str, Any]) -> str | None:
    """The self-labels a Bluesky post carries as ``getRecord`` gave it (``value.labels``, a
    ``com.atproto.label.defs#selfLabels``), as one content warning, bounded as words are; None
    for a post with none."""
    value = record.get("value")
    labels = value.get("labels") if isinstance(value, dict) else None
    values = labels.get("values") if isinstance(labels, dict) else None
    named = [v["val"] for v in values if isinstance(v, dict) and isinstance(v.get("val"), str)] \
        if isinstance(values, list) else []
    return words_kept(", ".join(named)) if named else None
