"""Feed reads for an account on another platform (Mastodon, the sandbox, X), reached through the
XRPC surface: answered from Byline's own record of what the account published, in the
lexicons' shapes, since there is no PDS or AppView to relay them to.

* ``app.bsky.feed.getAuthorFeed`` (the account's own ``actor`` only): its published posts,
  newest first, as ``feedViewPost``\\s, ``limit`` 1 to 100 (50 by default) and ``cursor``
  pagination. ``posts_no_replies`` leaves replies out, ``posts_with_media`` keeps the posts
  with media; the other filters show every post (``posts_with_video``: none).
* ``app.bsky.feed.getPosts``: ``postView``\\s for up to 25 ``uris``, in the order asked; a URI
  that is not one of the account's published posts is left out, as the AppView does.

Addresses: a post not on an AT repository gets the address ``createRecord`` answered for it,
``at://<the session's DID>/app.bsky.feed.post/<rkey>``, whichever surface it was written
through (the key its client chose, else ``rkey_for(post id)``), so the URI a client was given
finds the post. Its ``cid`` is the CID (CIDv1,
DAG-CBOR, SHA-256) of the ``record`` shown: the text as it went out, ``createdAt`` (the time the
client gave, else the time the post was written), ``langs`` and link facets; for a post written
through XRPC and published unchanged it is the CID ``createRecord`` answered, unless the post
was a reply (its reply references are not kept). ``indexedAt`` is the time it was published.
Counts of likes and reposts are left out: Byline does not know them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final
from urllib.parse import parse_qs

from adapters.bluesky import (
    POST_COLLECTION,
    fitting_facets,
    iso_datetime,
    link_facets,
    post_record,
    record_cid,
    rkey_for,
)
from gateway.errors import BylineError, Code
from gateway.lifecycle import State
from gateway.policy.loader import LoadedPolicy
from gateway.services.announcements import record_url
from gateway.services.posts import PostService, PostView
from gateway.services.xrpc_sessions import AccountId, XrpcSession, XrpcSessions, xrpc_error
from gateway.storage.db import Row
from gateway.types import from_micros

GET_AUTHOR_FEED: Final = "app.bsky.feed.getAuthorFeed"
GET_POSTS: Final = "app.bsky.feed.getPosts"
OWN_READS: Final = frozenset({GET_AUTHOR_FEED, GET_POSTS})
"""The reads Byline answers itself for an account with no PDS."""

MAX_URIS: Final = 25
_FILTERS: Final = frozenset({
    "posts_with_replies", "posts_no_replies", "posts_with_media", "posts_and_author_threads",
    "posts_with_video",
})
_PAGE: Final = 100


def _invalid(message: str) -> BylineError:
    return xrpc_error(Code.VALIDATION, "InvalidRequest", message)


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise _invalid(f"Params may have the property \"{name}\" once")
    return values[0]


def _limit(params: dict[str, list[str]]) -> int:
    given = _one(params, "limit")
    if given is None:
        return 50
    # ASCII digits, three at most: ``isdigit`` also takes "¹", which ``int`` refuses.
    if not (given.isascii() and given.isdigit() and len(given) <= 3) or not 1 <= int(given) <= 100:
        raise _invalid("limit must be an integer from 1 to 100")
    return int(given)


class XrpcReads:
    """``getAuthorFeed`` and ``getPosts`` from the posts Byline published for the account."""

    def __init__(
        self, *, posts: PostService, sessions: XrpcSessions,
        find: Callable[[str, str], Awaitable[Row | None]], public_url: str,
    ) -> None:
        self._posts = posts
        self._sessions = sessions
        self._find = find
        self._public_url = public_url

    async def answer(self, session: XrpcSession, loaded: LoadedPolicy, nsid: str, query: str) -> dict[str, Any]:
        """The answer to one of ``OWN_READS``, given its raw query string."""
        params = parse_qs(query, keep_blank_values=True)
        ident = AccountId(did=session.did, handle=self._sessions.handle_of(loaded))
        if nsid == GET_AUTHOR_FEED:
            return await self._author_feed(session, loaded, ident, params)
        if nsid == GET_POSTS:
            return await self._get_posts(session, loaded, ident, params)
        raise AssertionError(f"not one of Byline's own reads: {nsid}")  # pragma: no cover

    async def _author_feed(
        self, session: XrpcSession, loaded: LoadedPolicy, ident: AccountId, params: dict[str, list[str]],
    ) -> dict[str, Any]:
        actor = _one(params, "actor")
        if not actor:
            raise _invalid("Params must have the property \"actor\"")
        if not self._sessions.names(loaded, ident, actor):
            raise _invalid("Profile not found")
        limit = _limit(params)
        cursor = _one(params, "cursor")
        if cursor is not None and (not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 24):
            raise _invalid("Malformed cursor")
        chosen = _one(params, "filter") or "posts_with_replies"
        if chosen not in _FILTERS:
            raise _invalid(f"filter must be one of {', '.join(sorted(_FILTERS))}")
        feed: list[dict[str, Any]] = []
        before = cursor
        more = chosen != "posts_with_video"
        # Unfiltered, one more than the page tells whether there is a next one.
        size = _PAGE if chosen in ("posts_no_replies", "posts_with_media") else limit + 1
        while more and len(feed) < limit:
            page = await self._posts.list(
                session.caller, account=session.account, state=State.PUBLISHED.value, limit=size, before=before,
            )
            more = len(page) == size
            for post in page:
                before = post.id
                if chosen == "posts_no_replies" and post.options.get("reply_to"):
                    continue
                if chosen == "posts_with_media" and not post.options.get("media_ids"):
                    continue
                feed.append({"post": self._view(loaded, ident, post)})
                if len(feed) == limit:
                    more = more or post is not page[-1]
                    break
        answer: dict[str, Any] = {"feed": feed}
        if more and feed:
            answer["cursor"] = before
        return answer

    async def _get_posts(
        self, session: XrpcSession, loaded: LoadedPolicy, ident: AccountId, params: dict[str, list[str]],
    ) -> dict[str, Any]:
        uris = params.get("uris") or []
        if not uris:
            raise _invalid("Params must have the property \"uris\"")
        if len(uris) > MAX_URIS:
            raise _invalid(f"uris must not have more than {MAX_URIS} elements")
        found: list[dict[str, Any]] = []
        for uri in uris:
            parts = uri.removeprefix("at://").split("/") if uri.startswith("at://") else []
            if len(parts) != 3 or not all(parts):
                raise _invalid(f"uris: {uri!r} is not an at:// URI")
            repo, collection, rkey = parts
            if collection != POST_COLLECTION or repo.lower() not in (ident.did.lower(), ident.handle.lower()):
                continue
            row = await self._find(session.account, rkey)
            if row is None:
                continue
            try:
                post = await self._posts.view(session.caller, row["id"])
            except BylineError as exc:
                if exc.code in (Code.NOT_FOUND, Code.FORBIDDEN):
                    continue
                raise
            if post.state == State.PUBLISHED.value:
                found.append(self._view(loaded, ident, post))
        return {"posts": found}

    def _view(self, loaded: LoadedPolicy, ident: AccountId, post: PostView) -> dict[str, Any]:
        """A published post as an ``app.bsky.feed.defs#postView`` (see the module docstring)."""
        language = post.options.get("language")
        record = post_record(
            text=post.display_text,
            created_at=str(post.options.get("created_at") or iso_datetime(from_micros(post.created_at))),
            language=language if isinstance(language, str) else None,
            # The client's own facets while the words they were made for hold, as published.
            facets=fitting_facets(post.options.get("facets"), post.display_text) or link_facets(post.display_text),
            byline=record_url(self._public_url, post.id),  # as createRecord's answer counted it
        )
        published = post.publish_at if post.publish_at is not None else post.updated_at
        return {
            "$type": "app.bsky.feed.defs#postView",
            "uri": f"at://{ident.did}/{POST_COLLECTION}/{post.options.get('record_key') or rkey_for(post.id)}",
            "cid": record_cid(record),
            "author": {
                "$type": "app.bsky.actor.defs#profileViewBasic", "did": ident.did, "handle": ident.handle,
                "displayName": loaded.policy.handle or loaded.policy.account,
            },
            "record": record,
            "indexedAt": iso_datetime(from_micros(published)),
            "labels": [],
        }
