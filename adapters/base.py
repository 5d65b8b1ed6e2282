"""The one interface every platform adapter offers, and the values that cross it.

Adapters talk to one platform for one account. They classify what the platform answered
(success, retry later, give up, credentials broken); the gateway's publisher decides what to
do about it. Adapters import nothing from ``gateway``: the gateway resolves credentials and
hands the adapter the secret, a shared ``aiohttp.ClientSession`` and the platform settings
from the policy file.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, runtime_checkable

import aiohttp


@dataclass(frozen=True, kw_only=True)
class MediaItem:
    """One attachment to upload before the post is created."""

    data: bytes
    mime_type: str
    description: str | None = None
    focus: str | None = None
    """The focal point for cropped previews, as Mastodon takes it: ``"x,y"``, each in [-1, 1]."""


@dataclass(frozen=True, kw_only=True)
class OutboundPost:
    """What the publisher asks an adapter to publish.

    ``idempotency_key`` is derived from the post id and the version that first sent these words
    and this content, and is the same on every retry (and on a later version that sends the
    same), so that a retry after a lost response never makes a second copy.
    """

    post_id: str
    idempotency_key: str
    text: str
    reply_to: str | None = None
    reply_to_cid: str | None = None
    """The version of ``reply_to`` the reply was written to, for platforms whose posts are
    content-addressed (Bluesky's CID): another record under its address since (deleted and
    written again, other words) fails the reply rather than have it answer those."""
    spoiler_text: str | None = None
    sensitive: bool = False
    language: str | None = None
    visibility: str | None = None
    media: tuple[MediaItem, ...] = ()
    first_attempt_at: datetime | None = None
    """When the gateway first tried to publish this post (before any crash), so that
    ``find_existing`` knows how far back on the account's timeline to look."""
    created_at: str | None = None
    """The creation time (RFC 3339) a client gave the post, for platforms whose posts carry
    one (Bluesky's ``createdAt``); ``None`` means the time it is published. An adapter may
    ignore it when it is stale."""
    embed: Mapping[str, Any] | None = None
    """An embed a client built for a platform whose posts carry one (Bluesky's
    ``app.bsky.embed.*``, as JSON), to be written as given; the blobs it refers to are in
    ``media``. ``None`` for the others."""
    quotes_own_post: bool = False
    """``embed`` quotes a post of the account that had not gone out when the quote was written
    (at the address answered for it then, with a CID that was a guess): the gateway checked it
    went out since with the words the quote was approved with, and the quote is written with
    the CID its record has now."""
    self_labels: Mapping[str, Any] | None = None
    """Self-labels a client gave the post (Bluesky's ``com.atproto.label.defs#selfLabels``, as
    JSON), to be written as given by platforms whose posts carry them."""
    facets: Mapping[str, Any] | None = None
    """Rich-text facets a client built (Bluesky's ``app.bsky.richtext.facet``) with the bytes
    they were made for: ``{"sha256", "bytes", "facets"}``. Written as given while ``text``
    still begins with those bytes; ``None``, or words since edited, and the adapter finds the
    text's links and mentions itself."""
    record_url: str | None = None
    """The post's public record on Byline (its byline and proof), for platforms whose posts can
    carry it without a character of the text (a field of Bluesky's post record); others ignore it."""
    record_key: str | None = None
    """The key a client chose for the post's record, for platforms whose records are addressed by
    one (Bluesky's rkey, a TID); ``None``, and the adapter derives the key from ``post_id``."""
    gates: Mapping[str, Mapping[str, Any]] | None = None
    """Records a client built to go with the post, by collection (Bluesky's threadgate and
    postgate, as JSON, under the post's record key), written in the same commit as the post."""
    redescribed: tuple[tuple[str | None, str | None], ...] | None = None
    """For an edit of a published post that changes its pictures' alt text or focal point: each
    picture's alt text and focal point (``"x,y"``, or None to keep the one it has), in the post's
    order, for platforms whose edits carry them (Mastodon); None, and the pictures stay as they are."""
    ready: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)
    """Awaited right before the request that puts the post on the platform (after its media are
    uploaded, and at every try): what it raises stops the post there and is raised as it is.
    The caller's last word on whether the post may still go out."""


async def ready(post: OutboundPost) -> None:
    """The caller's last word before ``post`` is published (``OutboundPost.ready``), if any."""
    if post.ready is not None:
        await post.ready()


PUBLIC_VISIBILITIES: Final = frozenset({"public", "unlisted"})
"""The visibilities of a post everyone can see (an unlisted one is only left out of public timelines)."""


NO_GATES: Final = ("{name} has no setting of who may reply to or quote a post; refusing to publish open to all "
                   "a post whose threadgate or postgate limits them")
"""Why a platform without gates (``Carries.gates``) refuses a post that has them."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Carries:
    """What a platform's posts can carry as their author meant them.

    A post that asks for more is refused rather than published otherwise (a followers-only
    post made public, the words behind a content warning shown openly): by the adapter when it
    publishes, and at once by Byline's client surfaces, which read it from the adapter's class
    (``Adapter.carries``): each platform's rule is written once, there, and each side words its
    refusal as its callers expect.
    """

    name: str
    """The platform as its users name it, for messages."""
    public_only: bool = False
    """Every post is public: a followers-only or direct one (``private``, ``direct``) cannot be made."""
    content_warnings: bool = True
    """A content warning (``spoiler_text``) goes out with the post, before its words."""
    focal_points: bool = True
    """A picture's focal point (where previews crop it) goes out with it: a platform that has
    none (Bluesky, X) says so, and a new focal point then changes nothing its readers see."""

    gates: bool = False
    """Who may reply to or quote a post (a Bluesky threadgate and postgate) goes out with it.
    A platform without them refuses a post that limits either, rather than publish it open to
    all: its approvers approved it with those limits."""

    def keeps_gates(self, gates: Mapping[str, Any] | None) -> bool:
        """Whether a post with these gates (None or empty: none) goes out as meant."""
        return self.gates or not gates

    def keeps_visibility(self, visibility: str | None) -> bool:
        """Whether a post of ``visibility`` (None: the account's default) goes out as meant."""
        return not self.public_only or visibility is None or visibility in PUBLIC_VISIBILITIES

    def keeps_content_warning(self, spoiler_text: str | None) -> bool:
        """Whether a post with this content warning (None or empty: none) goes out as meant."""
        return self.content_warnings or not spoiler_text


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    """Where the post landed on the platform."""

    remote_id: str
    url: str | None = None
    author: str | None = None
    """The platform's id of the account the post went out as, where its answer names it (a
    Mastodon status's ``account.id``): what later proves a post the credential's own."""


@dataclass(frozen=True, kw_only=True)
class AccountInfo:
    """Who the credentials belong to, as the platform tells it."""

    remote_id: str
    handle: str
    display_name: str | None = None
    url: str | None = None


@dataclass(frozen=True, kw_only=True)
class ScopeCheck:
    """What a credential's scopes leave undone, in words naming the scope and what to do.

    ``blocking``: nothing can be published with it (its posts wait); ``warning``: posts go out,
    but something Byline may need later (a recovery's read, say) will be refused."""

    blocking: str | None = None
    warning: str | None = None


class AdapterError(Exception):
    """A platform call failed; the fields say whether and when trying again makes sense.

    ``retryable``: a transient failure (connection error, 5xx, 429) worth another try.
    ``retry_after``: seconds the platform asked us to wait, when it said so.
    ``auth_failed``: the credential no longer works (401), or lacks a permission the call
    needs (a Mastodon token without its scope, 403); retrying cannot help until an admin fixes it.
    ``status``: the HTTP status, when there was one. ``detail``: the platform's answer, with
    no secret in it.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        auth_failed: bool = False,
        status: int | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.auth_failed = auth_failed
        self.status = status
        self.detail = detail


@dataclass(frozen=True, kw_only=True)
class AdapterConfig:
    """Everything an adapter needs for one account.

    ``options`` carries the platform keys of the policy file (``instance`` for Mastodon,
    ``pds`` for Bluesky, ``api`` for X). ``secret`` is the resolved credential: an access
    token, an app password or an OAuth 2 user token. It is never logged.
    """

    account: str
    handle: str
    secret: str = field(repr=False, default="")
    options: dict[str, str] = field(default_factory=dict)
    profile_secret: str = field(repr=False, default="")
    """A second credential some platforms need to change the profile (X: OAuth 1.0a user keys,
    as JSON ``{"consumer_key", "consumer_secret", "token", "token_secret"}``); never logged."""
    session: aiohttp.ClientSession | None = None


@runtime_checkable
class Adapter(Protocol):
    """A platform client for one account.

    ``publish`` creates the post; ``find_existing`` looks on the platform for a post made with
    this idempotency key (after a crash mid-publish), returning it or ``None``; ``delete``
    removes a published post (an already-deleted post counts as success);
    ``verify_credentials`` answers who the account is. All raise ``AdapterError``.
    ``carries`` (on the class) says what its posts can carry; ``publish`` refuses the rest.
    """

    platform: str
    carries: Carries

    async def publish(self, post: OutboundPost) -> PublishResult: ...

    async def find_existing(self, post: OutboundPost) -> PublishResult | None: ...

    async def delete(self, remote_id: str) -> None: ...

    async def verify_credentials(self) -> AccountInfo: ...


@dataclass(frozen=True, kw_only=True)
class ProfileLine:
    """The one line of an account's profile that the gateway keeps (its byline).

    ``text`` is the line (None: remove the line set before); ``field`` the same as a profile
    field's name and value, for platforms that have fields (Mastodon). ``previous`` are the
    lines set before and ``previous_fields`` the names of the fields set before: whatever of
    the profile is not one of them is the account's own and stays as it is.
    """

    text: str | None
    field: tuple[str, str] | None = None
    previous: tuple[str, ...] = ()
    previous_fields: tuple[str, ...] = ()


@runtime_checkable
class KnowsItsPosts(Protocol):
    """An adapter that can tell whether a published post is in the account its credential
    signs in to (Bluesky: the post's repo is the credential's DID), where a credential may come
    to be another account's with the account's name unchanged. Raises ``AdapterError``."""

    async def owns(self, remote_id: str) -> bool:
        """Whether the post ``remote_id`` is the credential's account's own."""
        ...


@runtime_checkable
class DeletesByAddress(Protocol):
    """An adapter whose deletion is told the address the platform gave the post when it went
    out (``PublishResult.url``, as recorded), where the platform answers a post gone and one
    the credential's account may not see alike (Mastodon's 404): only whose address it is tells
    them apart. Raises ``AdapterError``."""

    async def delete_published(
        self, remote_id: str, *, url: str | None, author: str | None = None, visibility: str | None = None,
    ) -> None:
        """Delete the post ``remote_id``, which went out at ``url`` as the account ``author``
        (``PublishResult.author``; None: not recorded), with the ``visibility`` asked for it
        (None: the account's default)."""
        ...


@runtime_checkable
class ScopeChecking(Protocol):
    """An adapter that can ask its platform, changing nothing, what the account's credential
    may do (optional: only where a platform says it, as Mastodon does of a token's scopes).
    Raises ``AdapterError``."""

    async def scope_check(self) -> ScopeCheck:
        """What the credential's scopes leave undone (see :class:`ScopeCheck`)."""
        ...


@runtime_checkable
class ProfileAdapter(Protocol):
    """An adapter that can keep a line of the account's profile (optional: not every platform
    lets an account's credential change its profile). Raises ``AdapterError``."""

    async def set_profile_line(self, line: ProfileLine) -> None:
        """Set (or remove) the line, keeping the rest of the profile."""
        ...


def with_line(description: str, line: ProfileLine) -> str:
    """A description with the gateway's line set to ``line.text`` (removed when None), every
    other line untouched: the first line equal to one set before (or to the new one) is
    replaced; without one, the new line is added at the end."""
    lines = description.split("\n") if description else []
    mine = {*line.previous, *([line.text] if line.text is not None else [])}
    for i, current in enumerate(lines):
        if current.strip() in mine:
            if line.text is None:
                del lines[i]
            else:
                lines[i] = line.text
            return "\n".join(lines)
    if line.text is None:
        return description
    return "\n".join([*lines, line.text]) if lines else line.text


def ascii_grapheme_count(text: str) -> int:
    """Grapheme clusters in an ASCII ``text``: one a character, but CR LF is one (UAX #29's
    GB3; every other ASCII character is a cluster of its own), without walking it."""
    return len(text) - text.count("\r\n")
