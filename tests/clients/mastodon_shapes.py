"""Mastodon's entities as docs.joinmastodon.org documents them (the entities pages of
mastodon/documentation, for the API Byline follows: Mastodon 4.3, ``api_versions.mastodon`` 2),
as pydantic models, to validate what Byline answers.

How a documented attribute is written here:

- required, never null: ``name: T``;
- required, may be null ({{<nullable>}}): ``name: T | None`` (no default: the key must be there);
- may be left out ({{%optional%}}), never null when present: ``name: T = omittable()``;
- may be left out, or null: ``name: T | None = None``.

Strings are not numbers and numbers are not strings (strict), ids are strings of digits,
times are RFC 3339 with a zone, URLs absolute http(s). Keys the docs do not name are allowed
(Mastodon adds some, and Byline adds its ``byline`` object); attributes added after 4.3 are not
required. To add an entity: write its model below, then name it in ``SHAPES``; ``check(name,
value)`` validates a decoded JSON answer against it.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def omittable() -> Any:
    """An attribute the docs mark optional: it may be left out, but is never null when present
    (the default is not validated, so only a present value is checked)."""
    return Field(default=None)


def _id(value: str) -> str:
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"an id is a string of digits, not {value!r}")
    return value


def _datetime(value: str) -> str:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None or "T" not in value:
        raise ValueError(f"a Datetime is an RFC 3339 time with its zone, not {value!r}")
    return value


def _date(value: str) -> str:
    date.fromisoformat(value)
    return value


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise ValueError(f"a URL is absolute, not {value!r}")
    return value


Id = Annotated[str, AfterValidator(_id)]
"""String (cast from an integer but not guaranteed to be a number): Byline's are digits."""
Datetime = Annotated[str, AfterValidator(_datetime)]
Date = Annotated[str, AfterValidator(_date)]
Url = Annotated[str, AfterValidator(_url)]
Visibility = Literal["public", "unlisted", "private", "direct"]


class Shape(BaseModel):
    """An entity: strict types, every documented key checked, other keys allowed."""

    model_config = ConfigDict(strict=True, extra="allow", frozen=True)


# -- Account (entities/Account) ----------------------------------------------------------------


class CustomEmoji(Shape):
    shortcode: str
    url: Url
    static_url: Url
    visible_in_picker: bool
    category: str | None


class Field_(Shape):
    name: str
    value: str
    verified_at: Datetime | None


class AccountRole(Shape):
    id: str
    name: str
    color: str


class Account(Shape):
    id: Id
    username: str
    acct: str
    url: Url | None
    uri: Url
    display_name: str
    note: str
    avatar: Url
    """String (URL): for an account with no picture, Mastodon's ``…/avatars/original/missing.png``."""
    avatar_static: Url
    header: Url
    header_static: Url
    locked: bool
    fields: list[Field_]
    emojis: list[CustomEmoji]
    bot: bool
    group: bool
    discoverable: bool | None
    indexable: bool
    hide_collections: bool | None
    noindex: bool | None = None
    moved: Account | None = None
    memorial: bool = omittable()
    suspended: bool = omittable()
    limited: bool = omittable()
    created_at: Datetime
    last_status_at: Date | None
    statuses_count: int
    followers_count: int
    following_count: int
    roles: list[AccountRole] | None


class AccountSource(Shape):
    note: str
    fields: list[Field_]
    privacy: Visibility
    sensitive: bool
    language: str | None
    follow_requests_count: int


class CredentialAccount(Account):
    source: AccountSource


# -- MediaAttachment (entities/MediaAttachment) --------------------------------------------------


class Focus(Shape):
    x: Annotated[float, Field(ge=-1.0, le=1.0)]
    y: Annotated[float, Field(ge=-1.0, le=1.0)]


class MediaMeta(Shape):
    focus: Focus = omittable()


class MediaAttachment(Shape):
    id: Id
    type: Literal["unknown", "image", "gifv", "video", "audio"]
    url: Url | None
    preview_url: Url | None
    remote_url: Url | None
    meta: MediaMeta
    description: str | None
    blurhash: str | None


# -- Status (entities/Status) ------------------------------------------------------------------


class StatusApplication(Shape):
    name: str
    website: Url | None


class Mention(Shape):
    id: Id
    username: str
    url: Url
    acct: str


class Tag(Shape):
    name: str
    url: Url


class Status(Shape):
    id: Id
    uri: str
    created_at: Datetime
    account: Account
    content: str
    visibility: Visibility
    sensitive: bool
    spoiler_text: str
    media_attachments: list[MediaAttachment]
    application: StatusApplication = omittable()
    mentions: list[Mention]
    tags: list[Tag]
    emojis: list[CustomEmoji]
    reblogs_count: int
    favourites_count: int
    replies_count: int
    url: Url | None
    in_reply_to_id: Id | None
    in_reply_to_account_id: Id | None
    reblog: Status | None
    poll: dict[str, Any] | None
    card: dict[str, Any] | None
    language: str | None
    text: str | None = None
    """Documented nullable; Mastodon (and Byline) send it only where the source is asked for."""
    edited_at: Datetime | None
    favourited: bool = omittable()
    reblogged: bool = omittable()
    muted: bool = omittable()
    bookmarked: bool = omittable()
    pinned: bool = omittable()
    filtered: list[dict[str, Any]] = omittable()


class RelayedAccountStatus(Status):
    """A Status whose ``account`` is the account's instance's own Account entity, passed through
    as that instance answered it (Byline does not build it; the instance answers for its shape)."""

    account: dict[str, Any]  # type: ignore[assignment]


# -- ScheduledStatus (entities/ScheduledStatus) -------------------------------------------------


class ScheduledParams(Shape):
    text: str
    poll: dict[str, Any] | None
    media_ids: list[Id] | None
    sensitive: bool | None
    spoiler_text: str | None
    visibility: Visibility
    in_reply_to_id: Id | None
    language: str | None
    application_id: int
    scheduled_at: None
    idempotency: str | None
    with_rate_limit: bool


class ScheduledStatus(Shape):
    id: Id
    scheduled_at: Datetime
    params: ScheduledParams
    media_attachments: list[MediaAttachment]


# -- StatusSource, Context, StatusEdit (entities/StatusSource, Context, StatusEdit) ---------------


class StatusSource(Shape):
    id: Id
    text: str
    spoiler_text: str


class Context(Shape):
    ancestors: list[Status]
    descendants: list[Status]


class StatusEdit(Shape):
    content: str
    spoiler_text: str
    sensitive: bool
    created_at: Datetime
    account: Account
    poll: dict[str, Any] | None = None
    media_attachments: list[MediaAttachment]
    emojis: list[CustomEmoji]


# -- Application (entities/Application) ---------------------------------------------------------


class Application(Shape):
    id: Id
    name: str
    website: Url | None = None
    scopes: list[str]
    redirect_uris: list[str]
    redirect_uri: str
    vapid_key: str


class CredentialApplication(Application):
    client_id: str
    client_secret: str
    client_secret_expires_at: int


# -- Token, Error (entities/Token, entities/Error) ------------------------------------------------


class Token(Shape):
    access_token: str
    token_type: Literal["Bearer"]
    scope: str
    created_at: int


class Error(Shape):
    error: str
    error_description: str = omittable()


# -- Instance (entities/V1_Instance, entities/Instance) -------------------------------------------


class StatusLimits(Shape):
    max_characters: int
    max_media_attachments: int
    characters_reserved_per_url: int


class MediaLimits(Shape):
    supported_mime_types: list[str]
    image_size_limit: int
    image_matrix_limit: int
    video_size_limit: int
    video_frame_rate_limit: int
    video_matrix_limit: int


class PollLimits(Shape):
    max_options: int
    max_characters_per_option: int
    min_expiration: int
    max_expiration: int


class Rule(Shape):
    id: str
    text: str


class InstanceV1Urls(Shape):
    streaming_api: Url


class InstanceV1Stats(Shape):
    user_count: int
    status_count: int
    domain_count: int


class InstanceV1AccountLimits(Shape):
    max_featured_tags: int


class InstanceV1Configuration(Shape):
    accounts: InstanceV1AccountLimits
    statuses: StatusLimits
    media_attachments: MediaLimits
    polls: PollLimits


class InstanceV1(Shape):
    uri: str
    title: str
    short_description: str
    description: str
    email: str
    version: str
    urls: InstanceV1Urls
    stats: InstanceV1Stats
    thumbnail: Url | None
    languages: list[str]
    registrations: bool
    approval_required: bool
    invites_enabled: bool
    configuration: InstanceV1Configuration
    contact_account: Account | None
    rules: list[Rule]


class InstanceUsers(Shape):
    active_month: int


class InstanceUsage(Shape):
    users: InstanceUsers


class InstanceThumbnail(Shape):
    url: Url
    blurhash: str | None = None
    versions: dict[str, str] = omittable()


class InstanceIcon(Shape):
    src: Url
    size: str


class InstanceUrls(Shape):
    streaming: Url
    status: Url | None


class InstanceAccountLimits(Shape):
    max_featured_tags: int
    max_pinned_statuses: int


class Translation(Shape):
    enabled: bool


class InstanceConfiguration(Shape):
    urls: InstanceUrls
    accounts: InstanceAccountLimits
    statuses: StatusLimits
    media_attachments: MediaLimits
    polls: PollLimits
    translation: Translation


class Registrations(Shape):
    enabled: bool
    approval_required: bool
    message: str | None
    url: Url | None


class Contact(Shape):
    email: str
    account: Account | None


class ApiVersions(Shape):
    mastodon: int


class Instance(Shape):
    domain: str
    title: str
    version: str
    source_url: Url
    description: str
    usage: InstanceUsage
    thumbnail: InstanceThumbnail
    icon: list[InstanceIcon]
    languages: list[str]
    configuration: InstanceConfiguration
    registrations: Registrations
    api_versions: ApiVersions
    contact: Contact
    rules: list[Rule]


SHAPES: dict[str, type[Shape]] = {
    "Account": Account,
    "CredentialAccount": CredentialAccount,
    "MediaAttachment": MediaAttachment,
    "Status": Status,
    "RelayedAccountStatus": RelayedAccountStatus,
    "ScheduledStatus": ScheduledStatus,
    "StatusSource": StatusSource,
    "Context": Context,
    "StatusEdit": StatusEdit,
    "Application": Application,
    "CredentialApplication": CredentialApplication,
    "Token": Token,
    "Error": Error,
    "InstanceV1": InstanceV1,
    "Instance": Instance,
}
"""Every documented entity by name; add new ones here."""


def check(name: str, value: Any) -> Shape:
    """Validate a decoded JSON answer as the entity ``name``; a ``ValidationError`` names every
    attribute that is missing, of another type, or null where it may not be."""
    return SHAPES[name].model_validate(value)


def check_list(name: str, values: Any) -> list[Shape]:
    """Validate a JSON array of the entity ``name``."""
    assert isinstance(values, list), f"expected an array of {name}, got {type(values).__name__}"
    return [check(name, value) for value in values]


def pagination_links(header: str) -> dict[str, dict[str, str]]:
    """A ``Link`` header as Mastodon writes it (api/pagination: ``<url>; rel="next", <url>;
    rel="prev"``), as each relation's query parameters: absolute URLs, only ``next`` (paging
    by ``max_id``) and ``prev`` (by ``min_id``), each once."""
    found: dict[str, dict[str, str]] = {}
    for part in header.split(", "):
        match = re.fullmatch(r'<([^<>]+)>; rel="(next|prev)"', part)
        assert match is not None, f"not a Mastodon pagination link: {part!r}"
        url, rel = match.groups()
        assert rel not in found, f"{rel} given twice in {header!r}"
        _url(url)
        query = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
        bound = "max_id" if rel == "next" else "min_id"
        assert _id(query[bound]) and not {"max_id", "min_id", "since_id"} - {bound} & set(query), url
        found[rel] = query
    return found
