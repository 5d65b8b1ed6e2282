"""Mastodon's entities (docs.joinmastodon.org/entities) as this gateway renders them: Status and
ScheduledStatus (each with a ``byline`` object saying where the post is in its life),
MediaAttachment, Application and Instance. Account entities come from the service as the
account's platform shows them (``MastodonService.account``)."""

from __future__ import annotations

import functools
import importlib.metadata
from html import escape
from typing import Any

from gateway.services.mastodon import MISSING_HEADER, Limits, StatusView, account_at, numeric_id
from gateway.services.mastodon_reads import ContextView, EditView, SourceView
from gateway.services.oauth import App
from gateway.services.posts import PostView
from gateway.types import iso

MASTODON_VERSION = "4.3.0"
"""The Mastodon release whose client API this surface follows (``api_versions.mastodon`` 2)."""


def _ms(value: str | None) -> str | None:
    """An RFC 3339 time with milliseconds, as Mastodon writes them."""
    if value is None:
        return None
    return value[:23] + "Z" if len(value) >= 23 else value


def _content(text: str) -> str:
    """Plain text as Mastodon renders it: paragraphs in ``<p>``, line breaks ``<br />``."""
    if "\n" not in text:  # one paragraph of one line, as most posts are
        return "<p>" + escape(text) + "</p>" if text.strip() else ""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join("<p>" + "<br />".join(escape(line) for line in p.split("\n")) + "</p>"
                   for p in paragraphs)


def media_entity(row: dict[str, Any], base: str) -> dict[str, Any]:
    """A MediaAttachment. Its ``meta`` gives the size the picture is shown at, read when it was
    uploaded, so that apps keep its space before it loads: as ``original``, and as ``small``
    too, since ``preview_url`` serves the same picture (Mastodon's ``small`` describes the
    preview). An upload kept before sizes were read has neither."""
    url = f"{base}/media/{row['id']}/{row['digest']}"
    meta: dict[str, Any] = {}
    if row.get("width") and row.get("height"):
        width, height = int(row["width"]), int(row["height"])
        size = {"width": width, "height": height, "size": f"{width}x{height}", "aspect": width / height}
        meta["original"], meta["small"] = size, dict(size)
    if row.get("focus"):
        x, y = (float(n) for n in row["focus"].split(","))
        meta["focus"] = {"x": x, "y": y}
    return {
        "id": row["id"], "type": "image", "url": url, "preview_url": url, "remote_url": None,
        "preview_remote_url": None, "text_url": None, "meta": meta, "description": row["description"],
        "blurhash": None,
    }


def _remote_url(post: PostView) -> str | None:
    return post.remote_url if post.remote_id else None


def _byline(post: PostView) -> dict[str, Any]:
    return {
        "state": post.state, "publish_at": iso(post.publish_at),
        "approvals_needed": post.approvals_needed, "reasons": [dict(r) for r in post.reasons],
        "author": post.author, "version": post.version, "url": _remote_url(post),
        "adopted_into": post.adopted_into, "revises": post.revises,
    }


def status_entity(view: StatusView, base: str, *, with_source: bool = False) -> dict[str, Any]:
    """A Status (docs.joinmastodon.org/entities/Status), with the ``byline`` object."""
    post = view.post
    options = post.options
    remote_url = _remote_url(post)
    entity: dict[str, Any] = {
        "id": post.id,
        "created_at": _ms(iso(post.created_at)),
        "in_reply_to_id": view.in_reply_to_id,
        "in_reply_to_account_id": view.account["id"] if view.in_reply_to_id != options.get("reply_to") else None,
        "sensitive": bool(options.get("sensitive", False)),
        "spoiler_text": options.get("spoiler_text") or "",
        "visibility": options.get("visibility") or "public",
        "language": options.get("language"),
        "uri": remote_url or f"{base}/api/v1/statuses/{post.id}",
        # Not out yet (or never): the post's own page on Byline, where its people follow it.
        "url": remote_url or f"{base}/posts/{post.id}",
        "replies_count": 0,
        "reblogs_count": 0,
        "favourites_count": 0,
        "quotes_count": 0,
        "edited_at": _ms(iso(post.updated_at)) if post.version > 1 else None,
        "favourited": False,
        "reblogged": False,
        "muted": False,
        "bookmarked": False,
        "pinned": False,
        "content": _content(post.display_text),
        "filtered": [],
        "reblog": None,
        "application": {"name": view.app_name or "Byline", "website": None},
        "account": account_at(view.account, base),
        "media_attachments": [media_entity(m, base) for m in view.media],
        "mentions": [],
        "tags": [],
        "emojis": [],
        "card": None,
        "poll": None,
        "byline": _byline(post),
    }
    if view.pending is not None:
        entity["byline"]["pending_revision"] = _pending_revision(view.pending)
    if with_source:
        entity["text"] = post.text
    return entity


def _pending_revision(pending: PostView) -> dict[str, Any]:
    """The edit of a published status waiting for its approvals or its time: its id (a
    ScheduledStatus's, read or cancelled at ``/api/v1/scheduled_statuses/:id``), where it is,
    the words it would put out, and the new alt text and focal points it holds for the status's
    pictures (as the edit's ``media_attributes[]`` gave them; the status shows the published ones)."""
    held = pending.options.get("media_attributes") or {}
    return {
        "id": pending.id, "state": pending.state, "version": pending.version,
        "publish_at": iso(pending.publish_at), "approvals_needed": pending.approvals_needed,
        "reasons": [dict(r) for r in pending.reasons], "content": _content(pending.display_text),
        "media_attributes": [{"id": m, "description": d, "focus": f} for m, (d, f) in held.items()],
    }


def scheduled_entity(view: StatusView, base: str) -> dict[str, Any]:
    """A ScheduledStatus (docs.joinmastodon.org/entities/ScheduledStatus), with ``byline``."""
    post = view.post
    options = post.options
    return {
        "id": post.id,
        # Held or suggested, a post has no time yet: the time it would go out if released now.
        "scheduled_at": _ms(iso(view.due_at)),
        "params": {
            "text": post.text, "poll": None,
            "media_ids": list(options.get("media_ids", ())) or None,
            "sensitive": bool(options.get("sensitive", False)),
            "spoiler_text": options.get("spoiler_text"), "visibility": options.get("visibility") or "public",
            "scheduled_at": None, "application_id": int(view.app_id) if view.app_id else None,
            "in_reply_to_id": view.in_reply_to_id,
            "language": options.get("language"), "idempotency": None, "with_rate_limit": False,
        },
        "media_attachments": [media_entity(m, base) for m in view.media],
        "byline": _byline(post),
    }


def source_entity(source: SourceView) -> dict[str, Any]:
    """A StatusSource (docs.joinmastodon.org/entities/StatusSource): the words as written."""
    return {"id": source.id, "text": source.text, "spoiler_text": source.spoiler_text}


def context_entity(context: ContextView, base: str) -> dict[str, Any]:
    """A Context (docs.joinmastodon.org/entities/Context)."""
    return {"ancestors": [status_entity(v, base) for v in context.ancestors],
            "descendants": [status_entity(v, base) for v in context.descendants]}


def edit_entity(edit: EditView, base: str) -> dict[str, Any]:
    """A StatusEdit (docs.joinmastodon.org/entities/StatusEdit), with a ``byline`` object
    naming the version and the person who wrote it."""
    return {
        "content": _content(edit.shown), "spoiler_text": edit.spoiler_text, "sensitive": edit.sensitive,
        "created_at": _ms(iso(edit.at)), "account": account_at(edit.account, base), "poll": None,
        "media_attachments": [media_entity(m, base) for m in edit.media], "emojis": [],
        "byline": {"version": edit.version, "editor": edit.editor},
    }


def registered_app(app: App) -> dict[str, Any]:
    """An Application as ``POST /api/v1/apps`` answers it: with its secret, shown this once."""
    return {
        "id": numeric_id(app.client_id), "name": app.name, "website": app.website,
        "scopes": list(app.scopes), "redirect_uri": "\n".join(app.redirect_uris),
        "redirect_uris": list(app.redirect_uris), "vapid_key": "", "client_id": app.client_id,
        "client_secret": app.client_secret, "client_secret_expires_at": 0,
    }


def token_app(app_name: str | None) -> dict[str, Any]:
    """The Application a token belongs to, by its name only (see ``application``)."""
    return {"name": app_name or "Byline token", "website": None, "vapid_key": ""}


def application(app: dict[str, Any]) -> dict[str, Any]:
    """The Application a token belongs to (``GET /api/v1/apps/verify_credentials``), as
    registered (``MastodonService.application``), without its client id and secret, as
    Mastodon 4.3 answers it."""
    return {"id": app["id"], "name": app["name"], "website": app["website"], "scopes": list(app["scopes"]),
            "redirect_uris": list(app["redirect_uris"]), "redirect_uri": "\n".join(app["redirect_uris"]),
            "vapid_key": ""}


def _configuration(limits: Limits) -> dict[str, Any]:
    return {
        "statuses": {"max_characters": limits.max_characters,
                     "max_media_attachments": limits.max_media, "characters_reserved_per_url": 23},
        "media_attachments": {
            "supported_mime_types": list(limits.media_types), "image_size_limit": limits.media_bytes,
            "image_matrix_limit": 33_177_600, "video_size_limit": 0, "video_frame_rate_limit": 0,
            "video_matrix_limit": 0, "description_limit": 1500,
        },
        "polls": {"max_options": 0, "max_characters_per_option": 0, "min_expiration": 300,
                  "max_expiration": 300},
        "accounts": {"max_featured_tags": 0, "max_pinned_statuses": 0},
    }


@functools.cache
def _version() -> str:
    try:
        byline = importlib.metadata.version("byline")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout without installing
        byline = "0"
    return f"{MASTODON_VERSION} (compatible; Byline {byline})"


def instance_v1(base: str, limits: Limits) -> dict[str, Any]:
    """The Instance entity (v1), with the limits an app has to keep to."""
    host = base.split("://", 1)[-1]
    return {
        "uri": host, "title": "Byline", "short_description": "A posting gateway",
        "description": "Posts written here go through each account's policy before they are published.",
        "email": "", "version": _version(), "urls": {"streaming_api": base.replace("http", "ws", 1)},
        "stats": {"user_count": 0, "status_count": 0, "domain_count": 0}, "thumbnail": base + MISSING_HEADER,
        "languages": ["en"], "registrations": False, "approval_required": True, "invites_enabled": False,
        "configuration": _configuration(limits), "contact_account": None, "rules": [],
    }


def instance_v2(base: str, limits: Limits) -> dict[str, Any]:
    """The Instance entity (v2), with ``api_versions``."""
    configuration = _configuration(limits)
    configuration["urls"] = {"streaming": base.replace("http", "ws", 1), "status": None}
    configuration["translation"] = {"enabled": False}
    configuration["vapid"] = {"public_key": ""}
    return {
        "domain": base.split("://", 1)[-1], "title": "Byline", "version": _version(),
        "source_url": "https://github.com/", "description": "A posting gateway",
        "usage": {"users": {"active_month": 0}},
        # A URL, as the docs have it: Ice Cubes decodes it as one, and drops the whole instance
        # (its limits with it) for "". Byline has no picture of its own: the plain header.
        "thumbnail": {"url": base + MISSING_HEADER, "blurhash": None, "versions": {}}, "icon": [],
        "languages": ["en"], "configuration": configuration,
        "registrations": {"enabled": False, "approval_required": True, "message": None, "url": None},
        "api_versions": {"mastodon": 2},
        "contact": {"email": "", "account": None}, "rules": [],
    }
