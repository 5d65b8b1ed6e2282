"""Reads of the Mastodon client API that Byline answers from its own record.

* Lists page as Mastodon's do (``PageAsk``, ``page_links``): ``max_id`` and ``since_id`` page
  back from the newest, ``min_id`` forward from the oldest, each page newest first, with a
  ``Link`` header naming the next (``max_id``) and previous (``min_id``) page.
* A post Byline made answers ``/source``, ``/context`` and ``/history`` from its record: its
  versions, who wrote each and when, and the options and alt texts kept with each version; a
  status Byline did not make is asked of the platform, as ``GET /api/v1/statuses/:id`` is.
* An account on the sandbox, where everything published went through Byline, answers account
  lookups, its statuses and its home and public timelines from the posts Byline published
  there. Its account id is the one ``verify_credentials`` gives (``numeric_id`` of the account
  name); the app sees only its own account.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.engine import disclosed_text
from gateway.services.mastodon import PENDING, ClientAuth, MastodonService, Raw, StatusView
from gateway.services.posts import PostService, PostView, options_by_version
from gateway.storage import media as media_sql
from gateway.storage import posts as sql
from gateway.storage.posts import PostRecord
from gateway.types import Micros, UserName

_BATCH = 200
"""Posts read at a time while a page that filters some out is filled."""

_THREAD_MOST = 200
"""The most posts a context lists on each side, as a bound on what one read may walk."""

_GONE = (State.CANCELLED, State.DELETED)
"""States in which a status is gone for its app, as ``GET /api/v1/statuses/:id`` has it."""

IDS_MOST = 20
"""The most statuses one ``GET /api/v1/statuses?id[]=`` asks for (Mastodon's
``DEFAULT_STATUSES_LIMIT``; more is a validation error there)."""

@dataclass(frozen=True, kw_only=True)
class PageAsk:
    """A page of a list as a Mastodon app asks for it: its size, its bounds, and the
    parameters (``limit`` and the list's filters, as sent) its links keep."""

    limit: int
    max_id: str | None = None
    since_id: str | None = None
    min_id: str | None = None
    keep: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, kw_only=True)
class Listed:
    """One page of statuses, newest first, and whether a next page may follow."""

    views: list[StatusView]
    more: bool


@dataclass(frozen=True, kw_only=True)
class SourceView:
    """A post's words as written (a StatusSource), for an app about to edit it."""

    id: str
    text: str
    spoiler_text: str


@dataclass(frozen=True, kw_only=True)
class ContextView:
    """The posts of a thread Byline knows around one post: ancestors oldest first, then
    descendants in thread order."""

    ancestors: list[StatusView]
    descendants: list[StatusView]


@dataclass(frozen=True, kw_only=True)
class EditView:
    """One version of a post (a StatusEdit): its words as they go out, its options then, who
    wrote it and when."""

    version: int
    shown: str
    spoiler_text: str
    sensitive: bool
    editor: UserName
    at: Micros
    account: dict[str, Any]
    media: list[dict[str, Any]]


def page_links(url: str, ask: PageAsk, ids: Sequence[str], *, more: bool) -> str | None:
    """The ``Link`` header of a page, as Mastodon writes it: the next page below its last id
    (when ``more`` may follow), the previous above its first; none for an empty page."""
    if not ids:
        return None
    links = []
    if more:
        links.append(f'<{url}?{urlencode([*ask.keep, ("max_id", ids[-1])])}>; rel="next"')
    links.append(f'<{url}?{urlencode([*ask.keep, ("min_id", ids[0])])}>; rel="prev"')
    return ", ".join(links)


def _newest_first(records: list[PostRecord]) -> list[PostRecord]:
    return sorted(records, key=lambda r: (len(r.id), r.id), reverse=True)


Fetch = Callable[[str | None, str | None, bool, int], Awaitable[list[PostRecord]]]


async def paged(ask: PageAsk, fetch: Fetch, keep: Callable[[PostRecord], bool] = lambda _: True) -> list[PostRecord]:
    """A page as Mastodon's ``to_a_paginated_by_id`` makes it: with ``min_id``, the oldest
    ``limit`` above it (and below ``max_id``); else the newest below ``max_id`` and above
    ``since_id``. Newest first either way. ``fetch(above, below, oldest_first, n)`` reads
    posts; ``keep`` filters them, and reading goes on until the page is full."""
    if ask.limit <= 0:
        return []
    oldest_first = ask.min_id is not None
    above = ask.min_id if oldest_first else ask.since_id
    below = ask.max_id
    found: list[PostRecord] = []
    while len(found) < ask.limit:
        batch = await fetch(above, below, oldest_first, _BATCH)
        found += [r for r in batch if keep(r)]
        if len(batch) < _BATCH:
            break
        if oldest_first:
            above = batch[-1].id
        else:
            below = batch[-1].id
    return _newest_first(found[:ask.limit])


class MastodonReads:
    """Reads answered from Byline's record, for one app's account."""

    def __init__(self, *, mastodon: MastodonService, posts: PostService) -> None:
        self._mastodon = mastodon
        self._posts = posts

    # -- lists ---------------------------------------------------------------------------

    async def _records(
        self, auth: ClientAuth, ask: PageAsk, *, states: Sequence[State], author: str | None = None,
        keep: Callable[[PostRecord], bool] = lambda _: True,
    ) -> list[PostRecord]:
        async def fetch(above: str | None, below: str | None, oldest_first: bool, n: int) -> list[PostRecord]:
            async with self._posts.db.read() as txn:
                return await sql.posts_by_id(txn, account=auth.account, states=[s.value for s in states],
                                             limit=n, above=above, below=below, oldest_first=oldest_first,
                                             author=author)

        return await paged(ask, fetch, keep)

    async def _views(self, auth: ClientAuth, records: list[PostRecord], *, scheduled: bool = False) -> list[StatusView]:
        account = await self._mastodon.account(auth) if records else None
        pending = {} if scheduled else await self._mastodon.pending_revisions(auth, records)
        return [await self._mastodon.render(auth, view, scheduled=scheduled, account=account,
                                            pending=pending.get(view.id))
                for view in await self._posts.views(records)]

    async def scheduled(self, auth: ClientAuth, ask: PageAsk) -> Listed:
        """``GET /api/v1/scheduled_statuses``: the caller's posts in this account not out yet.

        Not pending revisions: a ScheduledStatus is a status to come, and an edit waiting for
        its approvals is none. Listed, an app would show it as a new post, and its way of
        changing a scheduled status (delete it, post it again) would make the edit a second
        post. The published status's own answer names it (``byline.pending_revision``), and
        ``/scheduled_statuses/:id`` still reads or cancels it by that id."""
        records = await self._records(auth, ask, states=PENDING, author=auth.caller.user,
                                      keep=lambda r: r.revises is None)
        return Listed(views=await self._views(auth, records, scheduled=True), more=len(records) == ask.limit)

    # -- a post's own endpoints ------------------------------------------------------------

    async def _visible(self, auth: ClientAuth, post_id: str) -> PostView | None:
        """A post of Byline's in the app's account the caller may see, not gone; else None."""
        post = await self._mastodon.own_post(auth, post_id)
        if post is None or State(post.state) in _GONE:
            return None
        return post

    async def _mine(self, auth: ClientAuth, post_id: str, path: str, base: str, *, history: bool = False
                    ) -> PostView | Raw:
        """The post Byline made with this id (with its versions and log events if ``history``),
        or the platform's answer (to ``path``) for a status it did not make."""
        post = await self._mastodon.own_post(auth, post_id, history=history)
        if post is None:
            return await self._mastodon.passthrough(auth, path, "", base=base)
        if State(post.state) in _GONE:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return post

    async def statuses(
        self, auth: ClientAuth, ids: Sequence[str], *, path: str, base: str
    ) -> list[StatusView | dict[str, Any]] | Raw:
        """``GET /api/v1/statuses?id[]=`` (Mastodon 4.3; Phanpy fetches the posts its timeline's
        replies answer with it): each post Byline made in the app's account that the caller may
        see and that is not gone, as ``/statuses/:id`` shows it, and the rest asked of the
        platform (a Mastodon account's instance; none elsewhere), in the order asked, each once.
        What is not found is left out, as Mastodon leaves out what the viewer may not see."""
        wanted = list(dict.fromkeys(ids))
        if len(wanted) > IDS_MOST:
            raise BylineError(Code.VALIDATION, f"Validation failed: at most {IDS_MOST} statuses at a time")
        ours: dict[str, StatusView | dict[str, Any]] = {}
        others: list[str] = []
        found: list[PostView] = []
        for post_id in wanted:
            post = await self._mastodon.own_post(auth, post_id)
            if post is None:
                others.append(post_id)
            elif State(post.state) not in _GONE:
                found.append(post)
        if found:
            account = await self._mastodon.account(auth)
            pending = await self._mastodon.pending_revisions(auth, found)
            for post in found:
                ours[post.id] = await self._mastodon.render(auth, post, account=account, pending=pending.get(post.id))
        if others:
            answer = await self._mastodon.passthrough(auth, path, urlencode([("id[]", i) for i in others]), base=base)
            if answer.status != 200:
                return answer
            relayed = json.loads(answer.body)
            for entity in relayed if isinstance(relayed, list) else ():
                if isinstance(entity, dict) and str(entity.get("id")) in others:
                    ours.setdefault(str(entity["id"]), entity)
        return [ours[i] for i in wanted if i in ours]

    async def source(self, auth: ClientAuth, post_id: str, *, path: str, base: str) -> SourceView | Raw:
        """``GET /api/v1/statuses/:id/source``: the words as written, without the disclosure
        Byline adds, so that an edit sends them back as they were."""
        post = await self._mine(auth, post_id, path, base)
        if isinstance(post, Raw):
            return post
        return SourceView(id=post.id, text=post.text, spoiler_text=post.options.get("spoiler_text") or "")

    async def context(self, auth: ClientAuth, post_id: str, *, path: str, base: str) -> ContextView | Raw:
        """``GET /api/v1/statuses/:id/context``: the posts Byline made that this one replies to,
        and those that reply to it (held ones included, for whoever may see them). A reply to a
        status Byline did not make starts the thread here: the platform's part is not fetched."""
        post = await self._mine(auth, post_id, path, base)
        if isinstance(post, Raw):
            return post
        seen: set[str] = {post.id}
        ancestors: list[PostView] = []
        child = post
        while len(ancestors) < _THREAD_MOST:
            parent_id = await self._parent_id(auth, child)
            if parent_id is None or parent_id in seen:
                break
            view = await self._visible(auth, parent_id)
            if view is None:
                break
            seen.add(view.id)
            ancestors.insert(0, view)
            child = view
        descendants: list[PostView] = []
        await self._replies(auth, post, seen, descendants)
        account = await self._mastodon.account(auth) if ancestors or descendants else None
        pending = await self._mastodon.pending_revisions(auth, [*ancestors, *descendants])

        async def rendered(p: PostView) -> StatusView:
            return await self._mastodon.render(auth, p, account=account, pending=pending.get(p.id))

        return ContextView(ancestors=[await rendered(p) for p in ancestors],
                           descendants=[await rendered(p) for p in descendants])

    async def _parent_id(self, auth: ClientAuth, post: PostView) -> str | None:
        """The id of the post of Byline's that ``post`` replies to, if any: the one it names,
        or the one published with the platform id it names."""
        named = post.options.get("reply_to_post")
        if isinstance(named, str):
            return named
        reply_to = post.options.get("reply_to")
        if not isinstance(reply_to, str):
            return None
        async with self._posts.db.read() as txn:
            parent = await sql.with_remote_id(txn, account=auth.account, remote_id=reply_to)
        return None if parent is None else parent.id

    async def _replies(self, auth: ClientAuth, post: PostView, seen: set[str], out: list[PostView]) -> None:
        """The replies to ``post`` and theirs, depth first, oldest first at each level: those
        written to its platform id, and those written before it went out (to the post)."""
        async with self._posts.db.read() as txn:
            children = await sql.replies_in(txn, account=auth.account, remote_ids=[post.id], key="reply_to_post")
            if post.remote_id:
                children += await sql.replies_in(txn, account=auth.account, remote_ids=[post.remote_id])
        children.sort(key=lambda r: (len(r.id), r.id))
        for child in children:
            if child.id in seen or len(out) >= _THREAD_MOST:
                continue
            seen.add(child.id)
            view = await self._visible(auth, child.id)
            if view is not None:
                out.append(view)
                await self._replies(auth, view, seen, out)

    async def history(self, auth: ClientAuth, post_id: str, *, path: str, base: str) -> list[EditView] | Raw:
        """``GET /api/v1/statuses/:id/history``: every version, oldest first, as it went (or
        would go) out, with the options it had, its editor and its time."""
        post = await self._mine(auth, post_id, path, base, history=True)
        if isinstance(post, Raw):
            return post
        loaded = self._posts.policies.get(post.account)
        by_version = options_by_version(post)
        versions = post.versions or ()
        account = await self._mastodon.account(auth)
        wanted = sorted({m for o in [*by_version.values(), post.options] for m in o.get("media_ids", ())})
        media: dict[str, dict[str, Any]] = {}
        if wanted:
            async with self._posts.db.read() as txn:
                media = {r["id"]: dict(r) for r in await media_sql.info(txn, wanted)}
        edits: list[EditView] = []
        editors: list[UserName] = []
        options: Mapping[str, Any] = post.options
        for i, version in enumerate(versions):
            last = i == len(versions) - 1
            if version.editor != post.author and version.editor not in editors:
                editors.append(version.editor)
            options = by_version.get(version.version, options)
            # Each upload with the alt text (and focal point) it had at this version, where the
            # version kept it: a version kept before focal points were names none, and shows today's.
            then = {m["id"]: {"description": m.get("description"), **({"focus": m["focus"]} if "focus" in m else {})}
                    for m in version.media or ()}
            if last:
                shown = post.display_text
            elif loaded is not None:
                shown = disclosed_text(loaded.policy, author=post.author, text=version.text, editors=editors,
                                       suggested_by=post.suggested_by)
            else:
                shown = version.text
            edits.append(EditView(
                version=version.version, shown=shown, spoiler_text=options.get("spoiler_text") or "",
                sensitive=bool(options.get("sensitive", False)), editor=version.editor, at=version.at,
                account=account, media=[{**media[m], **then[m]} if m in then else media[m]
                                        for m in options.get("media_ids", ()) if m in media],
            ))
        return edits

    # -- an account on the sandbox ----------------------------------------------------------

    def _on_sandbox(self, auth: ClientAuth) -> bool:
        return self._posts.policy(auth.account).policy.platform == "sandbox"

    async def _relayed(self, auth: ClientAuth, path: str, query: str, base: str) -> Raw:
        return await self._mastodon.passthrough(auth, path, query, base=base)

    async def lookup(self, auth: ClientAuth, acct: str | None, *, host: str, path: str, query: str,
                     base: str) -> dict[str, Any] | Raw:
        """``GET /api/v1/accounts/lookup``: on the sandbox, the app's own account by its
        ``acct`` (with or without ``@``, or ``@`` Byline's host); any other is not found."""
        if not self._on_sandbox(auth):
            return await self._relayed(auth, path, query, base)
        entity = await self._mastodon.account(auth)
        asked = (acct or "").strip().lstrip("@").lower()
        mine = str(entity["acct"]).lower()
        if asked and asked in (mine, f"{mine}@{host.lower()}"):
            return entity
        raise BylineError(Code.NOT_FOUND, "Record not found")

    async def account(self, auth: ClientAuth, account_id: str, *, path: str, base: str) -> dict[str, Any] | Raw:
        """``GET /api/v1/accounts/:id``: on the sandbox, the app's own account."""
        if not self._on_sandbox(auth):
            return await self._relayed(auth, path, "", base)
        entity = await self._mastodon.account(auth)
        if account_id != entity["id"]:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        return entity

    async def account_statuses(self, auth: ClientAuth, account_id: str, ask: PageAsk, *, flags: Mapping[str, bool],
                               tagged: str | None, path: str, query: str, base: str) -> Listed | Raw:
        """``GET /api/v1/accounts/:id/statuses``: on the sandbox, what Byline published for the
        app's account, newest first (``only_media``, ``exclude_replies``, ``tagged``; nothing is
        pinned, nothing reblogged)."""
        if not self._on_sandbox(auth):
            return await self._relayed(auth, path, query, base)
        entity = await self._mastodon.account(auth)
        if account_id != entity["id"]:
            raise BylineError(Code.NOT_FOUND, "Record not found")
        if flags.get("pinned"):
            return Listed(views=[], more=False)
        tag = re.compile(rf"(?<![\w#])#{re.escape(tagged)}(?!\w)", re.IGNORECASE) if tagged else None

        def keep(r: PostRecord) -> bool:
            return ((not flags.get("only_media") or bool(r.options.get("media_ids")))
                    and (not flags.get("exclude_replies") or not r.options.get("reply_to"))
                    and (tag is None or tag.search(r.text) is not None))

        records = await self._records(auth, ask, states=(State.PUBLISHED,), keep=keep)
        return Listed(views=await self._views(auth, records), more=len(records) == ask.limit)

    async def timeline(self, auth: ClientAuth, which: str, ask: PageAsk, *, flags: Mapping[str, bool], path: str,
                       query: str, base: str) -> Listed | Raw:
        """``GET /api/v1/timelines/home`` and ``/public``: on the sandbox, what Byline published
        for the app's account (public ones only on the public timeline; nothing is remote)."""
        if not self._on_sandbox(auth):
            return await self._relayed(auth, path, query, base)
        if which == "public" and flags.get("remote"):
            return Listed(views=[], more=False)

        def keep(r: PostRecord) -> bool:
            public = r.options.get("visibility") in (None, "public")
            return ((which == "home" or public)
                    and (not flags.get("only_media") or bool(r.options.get("media_ids"))))

        records = await self._records(auth, ask, states=(State.PUBLISHED,), keep=keep)
        # Mastodon's timelines link to a next page whenever the page is not empty.
        return Listed(views=await self._views(auth, records), more=True)
